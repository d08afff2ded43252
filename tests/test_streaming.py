"""Streamed data sets: the same pixels as the in-memory sets, mixed sizes, errors, and probes."""
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from test_datasets import _png  # PNG bytes of an array: tfds encodes them without TensorFlow

from mono_ssl import datasets, streaming
from mono_ssl import sharding as shd
from mono_ssl.errors import UserInputError
from mono_ssl.models.alexnet import AlexNet, conv_specs
from mono_ssl.probe import ProbeConfig, run_linear_probes

SHARED_TINY = datasets.Path(datasets.DEFAULT_DATA_DIR) / "tiny_imagenet_200" / "val.npz"


def test_square_resize_keeps_square_images_and_centre_crops_the_rest():
  rng = np.random.default_rng(0)
  img = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
  assert streaming.square_resize(img, 24) is img
  # 40 x 80: short side 40 -> 20, long 80 -> 40, centre crop keeps columns 10..30 of the half.
  wide = np.zeros((40, 80, 3), np.uint8)
  wide[:, 20:60] = 255  # a white centre band as wide as the short side
  out = streaming.square_resize(wide, 20)
  assert out.shape == (20, 20, 3) and out.dtype == np.uint8
  assert out[:, 2:-2].min() > 200  # the crop is the white centre, not the black sides
  tall = np.zeros((90, 30, 3), np.uint8)
  assert streaming.square_resize(tall, 64).shape == (64, 64, 3)  # upsampled when smaller


def test_stream_equals_the_in_memory_bundled_set():
  mem = datasets.load_split("bundled_cifar10", "test", limit_per_class=7)
  st = datasets.open_stream("bundled_cifar10", "test", side=32, limit_per_class=7)
  assert len(st) == len(mem) == 70 and st.num_classes == 10
  order = np.random.default_rng(1).permutation(len(st))[:33]
  imgs, labs = st.fetch(order)
  np.testing.assert_array_equal(imgs, mem.images[order])
  np.testing.assert_array_equal(labs, mem.labels[order])
  got = list(st.batches([order[:20], order[20:]]))  # prefetched, in order
  np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), mem.images[order])


@pytest.mark.skipif(not SHARED_TINY.is_file(), reason=f"real data not here: {SHARED_TINY} is absent")
def test_stream_equals_load_split_on_real_tiny_imagenet():
  mem = datasets.load_split("tiny_imagenet", "test", limit_per_class=3)
  st = datasets.open_stream("tiny_imagenet", "test", side=64, limit_per_class=3)
  assert len(st) == len(mem) == 600 and st.num_classes == 200
  idx = np.arange(0, 600, 7)
  imgs, labs = st.fetch(idx)
  np.testing.assert_array_equal(imgs, mem.images[idx])  # greyscale ones come back RGB alike
  np.testing.assert_array_equal(labs, mem.labels[idx])
  small, _ = datasets.open_stream("tiny_imagenet", "test", side=40, limit_per_class=3).fetch(idx[:4])
  assert small.shape == (4, 40, 40, 3)


def test_a_reading_error_reaches_the_caller():
  def reader(indices):
    if 5 in indices:
      raise UserInputError("bad data file x.npz: image 5 does not decode")
    return [(np.zeros((8, 8, 3), np.uint8), 0) for _ in indices]
  st = streaming.StreamingImages(reader, 10, 8, 2, "broken")
  it = st.batches([np.arange(0, 4), np.arange(4, 8)])
  assert next(it)[0].shape == (4, 8, 8, 3)
  with pytest.raises(UserInputError, match="image 5 does not decode"):
    next(it)
  with pytest.raises(IndexError, match=r"\[0, 10\)"):
    st.fetch(np.array([3, 10]))


def test_bad_stream_side_is_refused():
  for side in (0, -3, 2.5, True):
    with pytest.raises(UserInputError, match="side must be a positive integer"):
      datasets.open_stream("bundled_cifar10", "train", side=side)
  from conftest import tiny_config

  from mono_ssl import train
  with pytest.raises(UserInputError, match=r"probe.image_size must be a positive integer .* got -3"):
    train.load_probe_data(tiny_config(**{"probe.image_size": -3}))


def test_streamed_probe_equals_the_in_memory_probe():
  """Same crops (keyed by global index, image by position in the batch), same results."""
  model = AlexNet(convs=conv_specs("cpu", 0.25), hidden=(16, 16), num_classes=4)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  cfg = ProbeConfig(epochs=2, batch_size=20, eval_batch_size=64, lr=0.05, target_dims=144)
  mesh = shd.make_mesh()
  mem = [datasets.load_split("bundled_cifar10", s, limit_per_class=n) for s, n in (("train", 10), ("test", 10))]
  st = [datasets.open_stream("bundled_cifar10", s, side=32, limit_per_class=10) for s in ("train", "test")]
  res_mem = run_linear_probes(model.apply, variables, *mem, cfg, mesh=mesh, log=lambda s: None)
  res_st = run_linear_probes(model.apply, variables, *st, cfg, mesh=mesh, log=lambda s: None)
  assert res_st == res_mem
  assert any(r["top1"] > 10.0 for r in res_mem.values())  # it trained on something


def test_tfds_set_of_mixed_image_sizes_streams(tmp_path):
  """ImageNet-like: images of several sizes; in memory it is refused with the fix, streamed it reads."""
  tfds = pytest.importorskip("tensorflow_datasets")
  rng = np.random.default_rng(2)
  shapes = [(30, 40), (50, 20), (24, 24), (33, 61), (40, 40)]
  items = [(rng.integers(0, 256, (*s, 3), dtype=np.uint8), i % 2) for i, s in enumerate(shapes)]

  class MonoSslFakeMixed(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
          {"image": tfds.features.Image(shape=(None, None, 3)),
           "label": tfds.features.ClassLabel(num_classes=2)}))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {"train": self._generate_examples(items), "validation": self._generate_examples(items)}

    def _generate_examples(self, its):
      for i, (img, label) in enumerate(its):
        yield i, {"image": _png(img), "label": label}

  MonoSslFakeMixed(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
  with pytest.raises(UserInputError, match="probe.image_size"):
    datasets.load_split("tfds:mono_ssl_fake_mixed", "train", tmp_path)
  st = datasets.open_stream("tfds:mono_ssl_fake_mixed", "test", tmp_path, side=16)
  assert len(st) == 5 and st.num_classes == 2 and st.name == "tfds:mono_ssl_fake_mixed/test"
  imgs, labs = st.fetch(np.arange(5))
  assert imgs.shape == (5, 16, 16, 3) and sorted(labs.tolist()) == [0, 0, 0, 1, 1]
  # Each streamed image is the square resize of one of the originals.
  want = sorted(streaming.square_resize(img, 16).tobytes() for img, _ in items)
  assert sorted(im.tobytes() for im in imgs) == want
  assert sorted(st.labels.tolist()) == [0, 0, 0, 1, 1]
  np.testing.assert_array_equal(st.labels, labs)  # the label table is in index order
  one = datasets.open_stream("tfds:mono_ssl_fake_mixed", "train", tmp_path, side=16, limit_per_class=1)
  assert sorted(one.fetch(np.arange(len(one)))[1].tolist()) == [0, 1]
  assert sorted(one.labels.tolist()) == [0, 1]


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_with_the_same_content():
  yy, xx = np.mgrid[0:300, 0:420]
  img = np.stack([yy * 255 // 300, xx * 255 // 420, (yy + xx) * 255 // 720], -1).astype(np.uint8)
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, format="JPEG", quality=95)
  fast = datasets._decode_encoded(buf.getvalue(), 64, "test image")
  assert 64 <= min(fast.shape[:2]) < 300  # DCT-scaled, yet never below the stream's side
  full = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
  diff = np.abs(streaming.square_resize(fast, 64).astype(int)
                - streaming.square_resize(full, 64).astype(int))
  assert diff.mean() < 3.0, diff.mean()
  with pytest.raises(UserInputError, match="record 9 does not decode"):
    datasets._decode_encoded(b"not an image", 64, "record 9")


def test_run_with_a_streamed_probe_set(tmp_path):
  """probe.image_size > 0: the probe sets stream (resized to that side) through a whole run."""
  from conftest import tiny_config

  from mono_ssl import train
  config = tiny_config(**{"probe.image_size": 40, "train.num_steps": 2, "probe.limit_per_class": 4,
                          "probe.random_baseline": False})
  probe_train, probe_test = train.load_probe_data(config)
  assert isinstance(probe_train, streaming.StreamingImages) and probe_train.side == 40
  assert len(probe_train) == 40 and len(probe_test) == 1000  # the test split is never limited
  results = train.train_and_evaluate(config, tmp_path, log=lambda s: None)
  assert set(results["trained"]) == {"conv1", "conv2", "conv3", "conv4", "conv5"}
  assert all(0 <= r["top1"] <= r["top5"] <= 100 for r in results["trained"].values())
  assert (tmp_path / "probe_results.json").is_file()


def test_stream_patch_generator_equals_the_in_memory_one():
  """Full-regime patches from a streamed set equal those of the whole set's bank, on a mesh."""
  from mono_ssl import config_lib
  from mono_ssl.augment import AugmentConfig, ImageBank, PatchGenerator, StreamPatchGenerator
  mem = datasets.load_split("bundled_cifar10", "test", limit_per_class=5)
  st = datasets.open_stream("bundled_cifar10", "test", side=32, limit_per_class=5)
  cfg = AugmentConfig.from_config(config_lib.full_data_aug("cpu"))
  mesh = shd.make_mesh()
  bsh, repl = shd.batch_sharded(mesh), shd.replicated(mesh)
  # A period that is not a multiple of the set's size: image = (index mod period) mod size.
  in_memory = PatchGenerator(shd.to_global(ImageBank.from_images_array(mem.images), repl), cfg,
                             seed=3, period=37)
  streamed = StreamPatchGenerator(st, cfg, seed=3, period=37)
  idx = shd.to_global(np.array([0, 7, 49, 50, 123, 3, 3, 2**30 + 11], np.int32), bsh)
  want = np.asarray(in_memory(idx))
  np.testing.assert_array_equal(np.asarray(streamed(idx)), want)
  # DeepCluster's plain generator: the same data under another augmentation.
  plain = {"method_crop": False, "flip": False}
  import dataclasses
  np.testing.assert_array_equal(
      np.asarray(streamed.with_config(dataclasses.replace(cfg, **plain))(idx)),
      np.asarray(in_memory.with_config(dataclasses.replace(cfg, **plain))(idx)))


def test_full_regime_and_supervised_train_from_a_stream(tmp_path):
  from conftest import tiny_config

  from mono_ssl import train
  from mono_ssl.data import pretrain_source
  from mono_ssl.methods import supervised
  stream_cfg = {"regime": "full", "data.full_dataset": "bundled_cifar10", "data.image_size": 32,
                "aug.patch_size": 32, "aug.initial_crop": False, "aug.rrc": False,
                "aug.affine": False, "aug.jitter_prob": 0.0, "train.num_steps": 2,
                "probe.epochs": 1, "probe.limit_per_class": 4, "probe.random_baseline": False}
  config = tiny_config(**stream_cfg)
  source = pretrain_source(config)
  assert source.bank is None and len(source.stream) == source.size == 5000
  _, _, info = train.pretrain(config, tmp_path / "rotnet", log=lambda s: None)
  assert info["steps"] == 2
  sup = tiny_config(**stream_cfg)
  sup.unlock()
  sup.method = "supervised"
  sup.supervised = {"num_classes": 0}
  sup.lock()
  split = supervised._train_split(sup)
  assert isinstance(split, streaming.StreamingImages)
  np.testing.assert_array_equal(split.labels, datasets.load_split("bundled_cifar10", "train").labels)
  state, _, _ = train.pretrain(sup, tmp_path / "supervised", log=lambda s: None)
  assert int(state.step) == 2
  big = tiny_config(**{**stream_cfg, "aug.patch_size": 40, "aug.out_size": 32})
  with pytest.raises(UserInputError, match="data.image_size=32 is smaller"):
    pretrain_source(big)


def test_authors_views_of_a_rectangle():
  """keep_aspect views: torchvision's Resize(256) + FiveCrop and RandomResizedCrop semantics."""
  rng = np.random.default_rng(4)
  img = rng.integers(0, 256, (60, 150, 3), dtype=np.uint8)  # a 2.5:1 landscape
  rect = streaming.short_side_resize(img, 30)
  assert rect.shape == (30, 75, 3)  # aspect kept: int(30 * 150 / 60)
  assert streaming.short_side_resize(img.transpose(1, 0, 2), 30).shape == (75, 30, 3)
  crops = streaming.five_crops(rect, 24)
  assert crops.shape == (5, 24, 24, 3)
  np.testing.assert_array_equal(crops[1], rect[:24, 75 - 24:])  # the rectangle's top-right corner
  np.testing.assert_array_equal(crops[3], rect[30 - 24:, 75 - 24:])
  np.testing.assert_array_equal(crops[4], rect[3:27, 26:50])  # centre: round((75 - 24) / 2) = 26
  assert streaming.test_view(30, 24, ten_crop=False)(img, 0).shape == (1, 24, 24, 3)
  # Train view: a pure function of (seed, id); whole-image boxes when scale and ratio force them.
  view = streaming.train_view(16, (0.08, 1.0), seed=5)
  np.testing.assert_array_equal(view(img, 7), view(img, 7))
  assert view(img, 7).shape == (16, 16, 3) and not np.array_equal(view(img, 7), view(img, 8))
  whole = streaming.random_resized_crop(img, np.random.default_rng(0), 16, (1.0, 1.0),
                                        (2.5, 2.5), flip=False)
  np.testing.assert_array_equal(whole, np.asarray(Image.fromarray(img).resize((16, 16), Image.BILINEAR)))
  # Impossible boxes (area 1 at ratio 1 of a 2.5:1 image): the centre crop at the clamped ratio.
  fallback = streaming.random_resized_crop(img, np.random.default_rng(0), 16, (1.0, 1.0),
                                           (1.0, 1.0), flip=False)
  np.testing.assert_array_equal(fallback, np.asarray(Image.fromarray(img[:, 45:105]).resize(
      (16, 16), Image.BILINEAR)))


def _corner_coded_stream(keep_aspect: bool, n: int, seed: int):
  """Wide images whose class shows only in their left and right thirds (red or blue bands);
  the centre third is the same noise for both classes."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 2
  imgs = []
  for lab in labels:
    im = rng.integers(100, 156, (32, 96, 3), dtype=np.uint8)
    band = np.array([255, 0, 0] if lab else [0, 0, 255], np.uint8)
    im[:, :32], im[:, 64:] = band, band
    imgs.append(im)

  def reader(indices):
    return [(imgs[i], int(labels[i])) for i in indices]
  return streaming.StreamingImages(reader, n, 32, 2, "corner-coded", workers=2,
                                   keep_aspect=keep_aspect)


def test_keep_aspect_probes_see_the_rectangle_a_centre_square_loses():
  """The square stream (the old paper-scale path) cannot tell the classes apart: its centre
  crop drops the coded thirds; the authors' views of the rectangle keep them."""
  def trunk(variables, x, train=False, head=False):
    del variables, train, head
    return None, {"conv1": x}
  cfg = ProbeConfig(epochs=3, batch_size=16, eval_batch_size=32, lr=0.1, target_dims=48,
                    crop_scale=(0.5, 1.0), crop_size=24, ten_crop=True, layers=("conv1",))
  mesh = shd.make_mesh()
  top1 = {}
  for keep in (False, True):
    res = run_linear_probes(trunk, {}, _corner_coded_stream(keep, 64, 0),
                            _corner_coded_stream(keep, 40, 1), cfg, mesh=mesh, log=lambda s: None)
    top1[keep] = res["conv1"]["top1"]
  assert top1[False] <= 60.0 and top1[True] >= 95.0, top1


def test_keep_aspect_reaches_both_probe_streams():
  from conftest import tiny_config

  from mono_ssl import config_lib, train
  assert config_lib.base_config("rotnet", "single", "paper").probe.keep_aspect
  for keep in (True, False):
    probe_train, probe_test = train.load_probe_data(tiny_config(**{
        "probe.keep_aspect": keep, "probe.image_size": 32, "probe.limit_per_class": 2}))
    assert probe_train.keep_aspect is keep and probe_test.keep_aspect is keep
