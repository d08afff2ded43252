"""`python -m mono_ssl.prepare`: the official archives' formats (built here, small) -> the npz layout
the loaders read, pixels and labels intact; bad archives and existing files refused in one line."""
import io
import pickle
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from mono_ssl import datasets, prepare
from mono_ssl.errors import UserInputError


def _cifar_archive(path, per_batch=4, test=3, seed=0):
  """A cifar-10-python.tar.gz in the official layout: pickled batches of CHW rows."""
  rng = np.random.default_rng(seed)
  originals = {}
  with tarfile.open(path, "w:gz") as tar:
    def add(name, obj):
      data = pickle.dumps(obj)
      info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test)]:
      images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
      labels = [int(x) for x in rng.integers(0, 10, n)]
      add(name, {b"data": images.transpose(0, 3, 1, 2).reshape(n, 3072), b"labels": labels,
                 b"batch_label": name.encode()})
      originals[name] = (images, labels)
    add("batches.meta", {b"label_names": [b"airplane"] * 10})
  train = [originals[f"data_batch_{i}"] for i in range(1, 6)]
  return ((np.concatenate([t[0] for t in train]), sum((t[1] for t in train), [])),
          originals["test_batch"])


def _jpeg(rng, side=64):
  """A small, distinct JPEG: one random colour (~700 bytes)."""
  buf = io.BytesIO()
  Image.new("RGB", (side, side), tuple(int(c) for c in rng.integers(0, 256, 3))).save(buf, "JPEG")
  return buf.getvalue()


WNIDS = tuple(f"n{i:08d}" for i in np.random.default_rng(5).permutation(200))  # listed unsorted


def _tiny_archive(path, wnids=WNIDS, per_class=101, seed=0):
  """A tiny-imagenet-200.zip in the official layout (101 training images a class, 6 val)."""
  rng = np.random.default_rng(seed)
  train, val = {}, []
  with zipfile.ZipFile(path, "w") as z:
    root = "tiny-imagenet-200/"
    z.writestr(root + "wnids.txt", "\n".join(wnids) + "\n")
    for w in wnids:
      for k in rng.permutation(per_class):  # stored out of order: the numbers decide
        train[(w, int(k))] = _jpeg(rng)
        z.writestr(f"{root}train/{w}/images/{w}_{k}.JPEG", train[(w, int(k))])
    lines = []
    for k in (3, 0, 11, 2, 1, 10):
      w = wnids[k % len(wnids)]
      val.append((k, w, _jpeg(rng)))
      z.writestr(f"{root}val/images/val_{k}.JPEG", val[-1][2])
      lines.append(f"val_{k}.JPEG\t{w}\t0\t0\t63\t63")
    z.writestr(root + "val/val_annotations.txt", "\n".join(lines) + "\n")
    z.writestr(root + "test/images/test_0.JPEG", _jpeg(rng))  # unlabelled: not read
  return train, sorted(val)


def test_cifar10_archive_becomes_the_loaders_npz_with_its_pixels(tmp_path):
  (train_x, train_y), (test_x, test_y) = _cifar_archive(tmp_path / "c.tar.gz")
  written = prepare.prepare_cifar10(tmp_path / "c.tar.gz", tmp_path / "data", fmt="png")
  assert [p.name for p in written] == ["train.npz", "test.npz"]
  train = datasets.load_split("cifar10", "train", tmp_path / "data")
  test = datasets.load_split("cifar10", "test", tmp_path / "data")
  np.testing.assert_array_equal(train.images, train_x)  # lossless: CHW rows -> HWC exactly
  np.testing.assert_array_equal(train.labels, train_y)
  np.testing.assert_array_equal(test.images, test_x)
  np.testing.assert_array_equal(test.labels, test_y)
  prepare.prepare_cifar10(tmp_path / "c.tar.gz", tmp_path / "jpeg", quality=90)
  lossy = datasets.load_split("cifar10", "train", tmp_path / "jpeg")
  assert lossy.images.shape == train_x.shape and not np.array_equal(lossy.images, train_x)
  for i in (0, 7, 19):  # each image is its own JPEG at the asked quality
    want = np.asarray(Image.open(io.BytesIO(prepare.encode(train_x[i], "jpeg", 90))))
    np.testing.assert_array_equal(lossy.images[i], want)


def test_tiny_imagenet_zip_keeps_its_jpegs_byte_for_byte(tmp_path):
  train, val = _tiny_archive(tmp_path / "t.zip")
  prepare.prepare_tiny_imagenet(tmp_path / "t.zip", tmp_path / "data")
  folder = tmp_path / "data" / "tiny_imagenet_200"
  with np.load(folder / "train_100_per_class.npz") as z:
    wnids, data, offsets, labels = list(z["wnids"]), z["data"], z["offsets"], z["labels"]
  assert wnids == sorted(WNIDS)  # label i is wnids[i]
  assert len(labels) == 20_000 and np.bincount(labels).tolist() == [100] * 200
  for i in (0, 99, 100, 250, 19_999):  # class by class, the first 100 by image number (0..99)
    w, k = wnids[labels[i]], i % 100
    assert data[offsets[i]:offsets[i + 1]].tobytes() == train[(w, k)]
  with np.load(folder / "val.npz") as z:
    got = [z["data"][z["offsets"][i]:z["offsets"][i + 1]].tobytes() for i in range(len(z["labels"]))]
    assert got == [v[2] for v in val]  # file order: val_0, val_1, ...
    assert [wnids[j] for j in z["labels"]] == [v[1] for v in val]
  mem = datasets.load_split("tiny_imagenet", "train", tmp_path / "data")
  assert mem.images.shape == (20_000, 64, 64, 3) and mem.num_classes == 200
  assert len(datasets.load_split("tiny_imagenet", "test", tmp_path / "data")) == 6


def test_bad_archives_and_existing_files_are_refused_in_one_line(tmp_path):
  _cifar_archive(tmp_path / "c.tar.gz")
  cmd = [sys.executable, "-m", "mono_ssl.prepare"]
  ok = subprocess.run(cmd + ["cifar10", str(tmp_path / "c.tar.gz"), "--out", str(tmp_path / "d")],
                      capture_output=True, text=True, timeout=300, cwd=REPO)
  assert ok.returncode == 0 and "wrote" in ok.stdout and "probe.data_dir" in ok.stdout, ok.stderr
  before = (tmp_path / "d" / "cifar10" / "train.npz").read_bytes()
  again = subprocess.run(cmd + ["cifar10", str(tmp_path / "c.tar.gz"), "--out", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
  assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
  assert (tmp_path / "d" / "cifar10" / "train.npz").read_bytes() == before  # nothing lost
  (tmp_path / "junk.zip").write_bytes(b"not a zip")
  bad = subprocess.run(cmd + ["tiny_imagenet", str(tmp_path / "junk.zip"), "--out", str(tmp_path / "e")],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
  assert bad.returncode == 2 and "not a zip archive" in bad.stderr and "Traceback" not in bad.stderr
  with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
    z.writestr("something/else.txt", "x")
  with pytest.raises(UserInputError, match="no tiny-imagenet-200/wnids.txt"):
    prepare.prepare_tiny_imagenet(tmp_path / "other.zip", tmp_path / "f")
  with pytest.raises(UserInputError, match="not a readable .tar.gz"):
    prepare.prepare_cifar10(tmp_path / "junk.zip", tmp_path / "g")
  assert not (tmp_path / "f").exists() and not (tmp_path / "g").exists()
