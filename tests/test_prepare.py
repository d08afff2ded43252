"""`python -m mono_ssl.prepare`: the official archives' formats (built here, small) -> the npz layout
the loaders read, pixels and labels intact; bad archives and existing files refused in one line."""
import io
import os
import pickle
import shlex
import struct
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


class _Py2Pickler(pickle._Pickler):
  """Pickles as the official batches were (Python 2's cPickle, protocol 2): every str a
  BINSTRING (bytes, with encoding="bytes"), NumPy's rebuild function named numpy.core.multiarray."""
  dispatch = dict(pickle._Pickler.dispatch)

  def save_bytes(self, obj):
    n = len(obj)
    self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else
                pickle.BINSTRING + struct.pack("<i", n)) + obj)
    self.memoize(obj)
  dispatch[bytes] = save_bytes

  def save_str(self, obj):
    self.save_bytes(obj.encode("latin1"))
  dispatch[str] = save_str


def _py2_dumps(obj) -> bytes:
  buf = io.BytesIO()
  _Py2Pickler(buf, protocol=2).dump(obj)
  return buf.getvalue().replace(b"cnumpy._core.multiarray\n_reconstruct\n",
                                b"cnumpy.core.multiarray\n_reconstruct\n")


def _cifar_archive(path, per_batch=4, test=3, seed=0, replace=None):
  """A cifar-10-python.tar.gz in the official layout: pickled batches of CHW rows, the odd
  batches and the test batch as the official file pickles them, the even ones as NumPy 2 does.
  `replace`: {member: object pickled instead of that batch}."""
  rng = np.random.default_rng(seed)
  originals = {}
  with tarfile.open(path, "w:gz") as tar:
    def add(name, obj, dumps=pickle.dumps):
      data = dumps((replace or {}).get(name, obj))
      info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
    for i, (name, n) in enumerate([(f"data_batch_{i}", per_batch) for i in range(1, 6)]
                                  + [("test_batch", test)]):
      images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
      labels = [int(x) for x in rng.integers(0, 10, n)]
      add(name, {b"data": images.transpose(0, 3, 1, 2).reshape(n, 3072), b"labels": labels,
                 b"batch_label": name.encode(), b"filenames": [b"x_%d.png" % k for k in range(n)]},
          _py2_dumps if i % 2 == 0 else pickle.dumps)
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


class _RunsOnLoad:
  """Unpickled, this runs a shell command that creates `marker`: what a tampered batch could do."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.mark.parametrize("payload", ["call", "object_array"])
def test_a_cifar_batch_that_would_call_a_function_is_refused_before_it_runs(tmp_path, capsys, payload):
  marker = tmp_path / "it_ran"
  evil = (_RunsOnLoad(marker) if payload == "call" else
          np.array([_RunsOnLoad(marker)], dtype=object))  # its elements are pickles of their own
  _cifar_archive(tmp_path / "c.tar.gz", replace={"data_batch_2": {b"data": evil, b"labels": [0]}})
  code = prepare.main(["cifar10", str(tmp_path / "c.tar.gz"), "--out", str(tmp_path / "d")])
  err = capsys.readouterr().err
  assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
  assert "c.tar.gz: cifar-10-batches-py/data_batch_2 is not an official CIFAR-10 batch" in err
  assert (f"{os.system.__module__}.system" if payload == "call" else "of Python objects") in err
  assert not marker.exists()  # refused before the call, not after it
  assert not (tmp_path / "d" / "cifar10" / "train.npz").exists()
  pickle.loads(pickle.dumps(_RunsOnLoad(marker)))  # the payload is live: plain pickle runs it
  assert marker.exists()


def _name_order(n):
  """Image numbers of a class in file-name order as strings: 0, 1, 10, 100, 101, ..., 11, ..."""
  return [int(name[len("w_"):-len(".JPEG")]) for name in sorted(f"w_{j}.JPEG" for j in range(n))]


def test_tiny_imagenet_train_files_are_the_shared_split_100_then_the_next_300(tmp_path):
  """Both train files of ../shared/data: positions 0-99 and 100-399 of each class's images
  sorted by file name as strings, class by class (two classes of 402 here)."""
  assert prepare.TINY_TRAIN_SPLITS == (("train_100_per_class.npz", 100),
                                       ("train_next_300_per_class.npz", 300))
  wnids = ("n09999999", "n00000002")
  train, _ = _tiny_archive(tmp_path / "t.zip", wnids=wnids, per_class=402)
  written = prepare.prepare_tiny_imagenet(tmp_path / "t.zip", tmp_path / "data")
  assert [p.name for p in written] == ["train_100_per_class.npz", "train_next_300_per_class.npz",
                                       "val.npz"]
  order = _name_order(402)
  assert order[:4] == [0, 1, 10, 100]
  for name, lo, hi in (("train_100_per_class.npz", 0, 100), ("train_next_300_per_class.npz", 100, 400)):
    with np.load(tmp_path / "data" / "tiny_imagenet_200" / name) as z:
      assert sorted(z.files) == ["data", "labels", "offsets", "wnids"]
      assert z["data"].dtype == np.uint8 and z["offsets"].dtype == np.int64 and z["labels"].dtype == np.uint8
      assert list(z["wnids"]) == sorted(wnids)
      assert z["labels"].tolist() == [0] * (hi - lo) + [1] * (hi - lo)
      got = [z["data"][a:b].tobytes() for a, b in zip(z["offsets"][:-1], z["offsets"][1:])]
    assert got == [train[(w, k)] for w in sorted(wnids) for k in order[lo:hi]], name
  _tiny_archive(tmp_path / "short.zip", wnids=wnids[1:], per_class=399)
  with pytest.raises(UserInputError, match="class n00000002 has 399 training images, fewer than 400"):
    prepare.prepare_tiny_imagenet(tmp_path / "short.zip", tmp_path / "short")


def test_tiny_imagenet_zip_keeps_its_jpegs_byte_for_byte(tmp_path):
  train, val = _tiny_archive(tmp_path / "t.zip")
  # 200 classes of 101 images (not 500): 100 for the first file, one for the second.
  prepare.prepare_tiny_imagenet(tmp_path / "t.zip", tmp_path / "data",
                                splits=(("train_100_per_class.npz", 100), ("train_next_300_per_class.npz", 1)))
  folder = tmp_path / "data" / "tiny_imagenet_200"
  with np.load(folder / "train_100_per_class.npz") as z:
    wnids, data, offsets, labels = list(z["wnids"]), z["data"], z["offsets"], z["labels"]
  assert wnids == sorted(WNIDS)  # label i is wnids[i]
  assert len(labels) == 20_000 and np.bincount(labels).tolist() == [100] * 200
  order = _name_order(101)
  for i in (0, 3, 99, 100, 250, 19_999):  # class by class, the first 100 in file-name order
    w, k = wnids[labels[i]], order[i % 100]
    assert data[offsets[i]:offsets[i + 1]].tobytes() == train[(w, k)]
  with np.load(folder / "train_next_300_per_class.npz") as z:  # the one image left of each class
    assert z["labels"].tolist() == list(range(200))
    assert z["data"][z["offsets"][0]:z["offsets"][1]].tobytes() == train[(wnids[0], order[100])]
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
