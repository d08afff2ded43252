"""Tests for mono_ssl.datasets: npz probe sets, the bundled subset and tfds."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mono_ssl import datasets, paths
from mono_ssl.errors import UserInputError


def _jpeg(arr: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(arr).save(buf, format="JPEG", quality=95)
  return buf.getvalue()


def _write_npz(
    path: Path,
    imgs: list[np.ndarray] | None = None,
    labels=None,
    *,
    offsets=None,
    data=None,
    drop: str | None = None,
) -> Path:
  """Writes a JPEG-bytes npz; keyword args override parts to corrupt it."""
  if imgs is None:
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(6)]
  blobs = [_jpeg(a) for a in imgs]
  if data is None:
    data = np.frombuffer(b"".join(blobs), np.uint8)
  if offsets is None:
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])])
  if labels is None:
    labels = np.arange(len(imgs)) % 3
  arrays = {
      "data": np.asarray(data, np.uint8),
      "offsets": np.asarray(offsets, np.int64),
      "labels": np.asarray(labels, np.uint8),
  }
  if drop:
    del arrays[drop]
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez(path, **arrays)
  return path


def _need_shared() -> Path:
  shared = paths.shared_dir()
  if shared is None or not (shared / "data").is_dir():
    pytest.skip(
        "shared data folder absent (looked at"
        f" {[str(c) for c in paths.shared_dir_candidates()]}); set"
        f" {paths.SHARED_ENV} to run this test"
    )
  return shared / "data"


def _assert_one_line_naming(err: pytest.ExceptionInfo, text: str) -> None:
  msg = str(err.value)
  assert text in msg, msg
  assert "\n" not in msg, msg


# --- bundled set -----------------------------------------------------------


@pytest.mark.parametrize("split,per_class", [("train", 500), ("test", 100)])
def test_bundled_cifar10(split, per_class):
  ds = datasets.load_split("bundled_cifar10", split)
  assert len(ds) == 10 * per_class
  assert ds.images.shape == (10 * per_class, 32, 32, 3)
  assert ds.images.dtype == np.uint8 and ds.labels.dtype == np.int32
  assert ds.num_classes == 10
  assert ds.name == f"bundled_cifar10/{split}"
  np.testing.assert_array_equal(np.bincount(ds.labels, minlength=10), per_class)
  assert 80 < ds.images.mean() < 160 and ds.images.std() > 40  # Real pictures.
  # Cached arrays are shared, so they must be read-only.
  assert not ds.images.flags.writeable and not ds.labels.flags.writeable


def test_bundled_asset_is_small():
  assert datasets.BUNDLED_CIFAR10.stat().st_size <= 6 * 1024 * 1024


def test_bundled_matches_shared_cifar10():
  data_dir = _need_shared()
  full = datasets.load_npz(
      data_dir / "cifar10" / "test.npz", limit_per_class=100
  )
  small = datasets.load_split("bundled_cifar10", "test")
  np.testing.assert_array_equal(
      small.images, full.images
  )  # Bytes copied as is.
  np.testing.assert_array_equal(small.labels, full.labels)


def test_cache_returns_same_arrays():
  a = datasets.load_split("bundled_cifar10", "test")
  b = datasets.load_split("bundled_cifar10", "test")
  assert a.images is b.images


def test_limit_per_class_keeps_first_of_each_class(tmp_path):
  rng = np.random.default_rng(1)
  imgs = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(9)]
  labels = [0, 1, 0, 2, 0, 1, 1, 2, 2]
  p = _write_npz(tmp_path / "x.npz", imgs, labels)
  ds = datasets.load_npz(p, limit_per_class=2)
  assert ds.labels.tolist() == [0, 1, 0, 2, 1, 2]  # File order kept.
  full = datasets.load_npz(p)
  np.testing.assert_array_equal(ds.images, full.images[[0, 1, 2, 3, 5, 7]])
  assert full.num_classes == 3 and len(full) == 9
  with pytest.raises(UserInputError, match="limit_per_class"):
    datasets.load_npz(p, limit_per_class=0)


def test_load_split_limit_per_class():
  ds = datasets.load_split("bundled_cifar10", "train", limit_per_class=20)
  assert ds.images.shape == (200, 32, 32, 3)
  np.testing.assert_array_equal(np.bincount(ds.labels, minlength=10), 20)
  full = datasets.load_split("bundled_cifar10", "train")
  first_cat = np.flatnonzero(full.labels == 3)[:20]
  np.testing.assert_array_equal(
      ds.images[ds.labels == 3], full.images[first_cat]
  )


def test_edited_file_is_reread(tmp_path):
  p = _write_npz(tmp_path / "x.npz")
  assert len(datasets.load_npz(p)) == 6
  rng = np.random.default_rng(2)
  _write_npz(
      p, [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(4)]
  )
  assert len(datasets.load_npz(p)) == 4


def test_greyscale_jpegs_become_rgb(tmp_path):
  grey = np.full((8, 8), 77, np.uint8)
  p = tmp_path / "g.npz"
  blob = np.frombuffer(_jpeg(grey), np.uint8)
  np.savez(
      p,
      data=blob,
      offsets=np.array([0, len(blob)]),
      labels=np.array([0], np.uint8),
  )
  ds = datasets.load_npz(p)
  assert ds.images.shape == (1, 8, 8, 3)
  assert abs(int(ds.images[0, 4, 4, 0]) - 77) <= 2
  assert (ds.images[..., 0] == ds.images[..., 2]).all()


# --- real shared data --------------------------------------------------------


def test_real_cifar10_test():
  data_dir = _need_shared()
  ds = datasets.load_split("cifar10", "test", data_dir)
  assert ds.images.shape == (10000, 32, 32, 3) and ds.images.dtype == np.uint8
  assert ds.num_classes == 10 and ds.name == "cifar10/test"
  np.testing.assert_array_equal(np.bincount(ds.labels, minlength=10), 1000)


def test_real_tiny_imagenet_val():
  data_dir = _need_shared()
  ds = datasets.load_split("tiny_imagenet", "test", data_dir)
  assert ds.images.shape == (10000, 64, 64, 3) and ds.images.dtype == np.uint8
  assert ds.num_classes == 200
  np.testing.assert_array_equal(np.bincount(ds.labels, minlength=200), 50)


def test_default_data_dir(monkeypatch, tmp_path):
  monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path))
  assert datasets.default_data_dir() == str(tmp_path)
  monkeypatch.delenv(datasets.DATA_DIR_ENV)
  monkeypatch.setenv(paths.SHARED_ENV, str(tmp_path))
  assert datasets.default_data_dir() == str(tmp_path / "data")


# --- bad names, missing and corrupt data ------------------------------------


def test_missing_npz_names_path(tmp_path):
  with pytest.raises(UserInputError) as err:
    datasets.load_split("cifar10", "test", tmp_path)
  _assert_one_line_naming(err, str(tmp_path / "cifar10" / "test.npz"))
  assert "data_dir" in str(err.value)
  with pytest.raises(UserInputError) as err:
    datasets.load_split("tiny_imagenet", "train", tmp_path)
  _assert_one_line_naming(
      err, str(tmp_path / "tiny_imagenet_200" / "train_100_per_class.npz")
  )


def test_unknown_name_lists_valid_names():
  with pytest.raises(UserInputError) as err:
    datasets.load_split("cifar100", "test")
  msg = str(err.value)
  assert "'cifar100'" in msg
  for name in ("bundled_cifar10", "cifar10", "tiny_imagenet", "tfds:"):
    assert name in msg


def test_bad_split():
  with pytest.raises(UserInputError, match="'val'"):
    datasets.load_split("cifar10", "val")


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({"offsets": [0, 10, 5, 20, 30, 40, 50]}, "offsets"),
        ({"offsets": [0, 100, 200, 300, 400, 500, 99999]}, "offsets"),
        ({"labels": [0, 1, 2]}, "3 labels for 6 images"),
        ({"drop": "labels"}, "labels"),
    ],
)
def test_corrupt_npz(tmp_path, kwargs, expected):
  p = _write_npz(tmp_path / "bad.npz", **kwargs)
  with pytest.raises(UserInputError) as err:
    datasets.load_npz(p)
  _assert_one_line_naming(err, str(p))
  assert expected in str(err.value)


def test_label_out_of_range_via_load_split(tmp_path):
  _write_npz(tmp_path / "cifar10" / "test.npz", labels=[0, 1, 2, 3, 10, 4])
  with pytest.raises(UserInputError) as err:
    datasets.load_split("cifar10", "test", tmp_path)
  _assert_one_line_naming(err, str(tmp_path / "cifar10" / "test.npz"))
  assert "[0, 10)" in str(err.value)


def test_undecodable_image_in_npz(tmp_path):
  p = _write_npz(tmp_path / "bad.npz")
  with np.load(p) as z:
    arrays = dict(z)
  arrays["data"] = arrays["data"].copy()
  start = arrays["offsets"][2]
  arrays["data"][start : start + 40] = 0  # Wipe image 2's JPEG header.
  np.savez(p, **arrays)
  with pytest.raises(UserInputError) as err:
    datasets.load_npz(p)
  _assert_one_line_naming(err, str(p))
  assert "image 2" in str(err.value)


def test_mixed_image_sizes(tmp_path):
  rng = np.random.default_rng(3)
  imgs = [
      rng.integers(0, 256, s, dtype=np.uint8) for s in [(8, 8, 3), (8, 16, 3)]
  ]
  p = _write_npz(tmp_path / "mixed.npz", imgs, [0, 1])
  with pytest.raises(UserInputError) as err:
    datasets.load_npz(p)
  _assert_one_line_naming(err, str(p))
  assert "same size" in str(err.value)


def test_not_an_npz(tmp_path):
  p = tmp_path / "text.npz"
  p.write_text("hello")
  with pytest.raises(UserInputError) as err:
    datasets.load_npz(p)
  _assert_one_line_naming(err, str(p))
  with pytest.raises(UserInputError) as err:
    datasets.load_npz(tmp_path / "absent.npz")
  _assert_one_line_naming(err, str(tmp_path / "absent.npz"))


# --- tfds ---------------------------------------------------------------------


def test_tfds_missing_data_set(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(UserInputError) as err:
    datasets.load_split("tfds:cifar10", "test", tmp_path)
  _assert_one_line_naming(err, "cifar10")
  msg = str(err.value)
  assert str(tmp_path) in msg and "tfds build cifar10" in msg
  assert not (tmp_path / "cifar10").exists()  # Nothing downloaded or created.


def test_tfds_unknown_data_set(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(UserInputError) as err:
    datasets.load_split("tfds:no_such_data_set_xyz", "train", tmp_path)
  _assert_one_line_naming(err, "no_such_data_set_xyz")
  assert str(tmp_path) in str(err.value)


def test_tfds_empty_name():
  with pytest.raises(UserInputError, match="tfds:cifar10"):
    datasets.load_split("tfds:", "train")


def _png(arr: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(arr).save(buf, format="PNG")
  return buf.getvalue()


def test_tfds_reads_prepared_array_record(tmp_path):
  """Builds a tiny array_record data set (TF-free) and reads it back."""
  tfds = pytest.importorskip("tensorflow_datasets")
  rng = np.random.default_rng(4)
  train = [
      (rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), i % 3) for i in range(7)
  ]
  val = [
      (rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), i % 3) for i in range(5)
  ]

  # skip_registration: the reader must find the data set from its files in
  # data_dir, as it would for a copy prepared elsewhere.
  class MonoSslFakeProbe(
      tfds.core.GeneratorBasedBuilder, skip_registration=True
  ):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          features=tfds.features.FeaturesDict(
              {
                  # PNG bytes in: encoding an ndarray would need TensorFlow.
                  "image": tfds.features.Image(shape=(8, 8, 3)),
                  "label": tfds.features.ClassLabel(num_classes=3),
              }
          ),
      )

    def _split_generators(self, dl_manager):
      del dl_manager
      return {
          "train": self._generate_examples(train),
          "validation": self._generate_examples(val),
      }

    def _generate_examples(self, items):
      for i, (img, label) in enumerate(items):
        yield i, {"image": _png(img), "label": label}

  builder = MonoSslFakeProbe(data_dir=str(tmp_path), file_format="array_record")
  builder.download_and_prepare()

  limited = datasets.load_split(
      "tfds:mono_ssl_fake_probe", "train", tmp_path, limit_per_class=1
  )
  assert sorted(limited.labels.tolist()) == [0, 1, 2]

  for split, items in (("train", train), ("test", val)):  # test -> validation.
    ds = datasets.load_split("tfds:mono_ssl_fake_probe", split, tmp_path)
    assert (
        ds.images.shape == (len(items), 8, 8, 3) and ds.images.dtype == np.uint8
    )
    assert ds.labels.dtype == np.int32 and ds.num_classes == 3
    assert ds.name == f"tfds:mono_ssl_fake_probe/{split}"
    # Records may come back in another order (tfds shuffles on write): compare
    # as multisets keyed on the image bytes.
    want = sorted((img.tobytes(), lab) for img, lab in items)
    got = sorted(
        (img.tobytes(), int(lab))
        for img, lab in zip(ds.images, ds.labels, strict=True)
    )
    assert got == want


def test_imagenet_probes_on_its_labelled_validation_split():
  # imagenet2012's `test` split is the unlabelled challenge set: never the probe's test.
  assert datasets.test_split_order("imagenet2012") == ("validation",)
  assert datasets.test_split_order("imagenet2012:5.1.0") == ("validation",)
  assert datasets.test_split_order("cifar10")[0] == "test"


def test_tfds_unlabelled_test_split_is_refused_when_opened(tmp_path):
  """A split whose labels are -1 (tfds' 'no label') fails at load, before any training."""
  tfds = pytest.importorskip("tensorflow_datasets")
  rng = np.random.default_rng(5)
  items = [(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), i % 3) for i in range(4)]

  class MonoSslFakeUnlabelled(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
          {"image": tfds.features.Image(shape=(8, 8, 3)),
           "label": tfds.features.ClassLabel(num_classes=3)}))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {"train": self._generate_examples(items, False),
              "test": self._generate_examples(items, True)}

    def _generate_examples(self, rows, unlabelled):
      for i, (img, label) in enumerate(rows):
        yield i, {"image": _png(img), "label": -1 if unlabelled else label}

  MonoSslFakeUnlabelled(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
  assert len(datasets.load_split("tfds:mono_ssl_fake_unlabelled", "train", tmp_path)) == 4
  with pytest.raises(UserInputError) as e:
    datasets.load_split("tfds:mono_ssl_fake_unlabelled", "test", tmp_path)
  msg = str(e.value)
  assert "'test' is unlabelled" in msg and "['train']" in msg and "\n" not in msg


# --- tiny_imagenet_400: two train files read as one split ------------------------------------


def _two_part_tiny(tmp_path: Path) -> Path:
  """A tiny_imagenet_200 folder (200 classes, 3 of them used): 2 images a class in the first file, 3 in the next;
  each image's pixels hold its (file, position) so the order can be read back."""
  folder = tmp_path / "tiny_imagenet_200"
  def imgs(part, n):
    return [np.full((8, 8, 3), 40 * part + 10 * i, np.uint8) for i in range(n)]
  _write_npz(folder / "train_100_per_class.npz", imgs(0, 6), np.arange(6) % 3)
  _write_npz(folder / "train_next_300_per_class.npz", imgs(1, 9), np.arange(9) % 3)
  _write_npz(folder / "val.npz", imgs(2, 3), np.arange(3) % 3)
  return tmp_path


def test_tiny_imagenet_400_is_the_first_file_then_the_next(tmp_path):
  data_dir = _two_part_tiny(tmp_path)
  whole = datasets.load_split("tiny_imagenet_400", "train", data_dir)
  first = datasets.load_split("tiny_imagenet", "train", data_dir)
  assert len(whole) == 15 and whole.num_classes == 200 and whole.name == "tiny_imagenet_400/train"
  np.testing.assert_array_equal(whole.images[:6], first.images)
  np.testing.assert_array_equal(whole.labels, np.r_[np.arange(6) % 3, np.arange(9) % 3])
  # The first N a class of the whole: the first file's, then the next file's in order.
  two = datasets.load_split("tiny_imagenet_400", "train", data_dir, limit_per_class=2)
  np.testing.assert_array_equal(two.images, first.images)
  three = datasets.load_split("tiny_imagenet_400", "train", data_dir, limit_per_class=3)
  assert len(three) == 9 and np.bincount(three.labels).tolist() == [3, 3, 3]
  np.testing.assert_array_equal(three.images[6:], whole.images[6:9])
  assert len(datasets.load_split("tiny_imagenet_400", "test", data_dir)) == 3


def test_tiny_imagenet_400_names_the_missing_file_and_refuses_streaming(tmp_path):
  data_dir = _two_part_tiny(tmp_path)
  (data_dir / "tiny_imagenet_200" / "train_next_300_per_class.npz").unlink()
  with pytest.raises(UserInputError) as e:
    datasets.load_split("tiny_imagenet_400", "train", data_dir)
  _assert_one_line_naming(e, "train_next_300_per_class.npz")
  data_dir = _two_part_tiny(tmp_path / "again")
  with pytest.raises(UserInputError) as e:
    datasets.open_stream("tiny_imagenet_400", "train", data_dir, 8, field="probe.image_size")
  _assert_one_line_naming(e, "probe.image_size=0")


def test_exclude_val_leaves_the_validation_carve_out_of_pretraining(tmp_path):
  # The full regime and supervision train on the train split less the curve's validation
  # carve, so that a choice scored on the carve never sees a pretrained-on image.
  from mono_ssl import config_lib, curves
  from mono_ssl import data as data_lib
  data_dir = _two_part_tiny(tmp_path)
  c = config_lib.base_config("supervised", "full", "mini")
  c.probe.dataset = c.data.full_dataset = "tiny_imagenet_400"
  c.data.data_dir = c.probe.data_dir = str(data_dir)
  c.probe.val_fraction = 0.34
  whole = datasets.load_split("tiny_imagenet_400", "train", data_dir)
  assert len(data_lib.full_train_split(c)) == 15
  c.data.exclude_val = True
  kept = data_lib.full_train_split(c)
  _, val_idx = curves.validation_split(np.asarray(whole.labels), whole.num_classes, 0.34, seed=0)
  assert len(kept) == 15 - len(val_idx) and len(val_idx) == 6  # 2 of each class's 5
  seen = {a.tobytes() for a in kept.images}
  assert not any(whole.images[i].tobytes() in seen for i in val_idx)
  c.data.full_dataset = "tiny_imagenet"
  with pytest.raises(UserInputError) as e:
    data_lib.full_train_split(c)
  _assert_one_line_naming(e, "data.exclude_val=True")
