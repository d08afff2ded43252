"""Linear probes: the authors' pooling table, learning a separable problem, every test example counted."""
import jax
import jax.numpy as jnp
import numpy as np

from mono_ssl import sharding as shd
from mono_ssl.datasets import LabelledImages
from mono_ssl.models.alexnet import AlexNet, conv_specs
from mono_ssl.probe import ProbeConfig, pool_params, run_linear_probes


def test_pool_params_reproduce_the_papers_table():
  # (size, channels) of the big AlexNet at 224 px -> the authors' (kernel, stride, pad).
  assert pool_params(55, 96, 9216) == (6, 6, 3)
  assert pool_params(27, 256, 9216) == (4, 4, 0)
  assert pool_params(13, 384, 9216) == (3, 3, 1)
  assert pool_params(13, 256, 9216) == (2, 2, 0)


def test_pool_params_never_make_an_all_padding_window():
  for size in range(1, 40):
    for channels in (3, 32, 96):
      k, s, p = pool_params(size, channels, 2048)
      assert 2 * p <= k and (size + 2 * p - k) // k + 1 >= 1


def _toy(n, seed, size=16):
  """Ten classes, each a distinct colour plus noise: linearly separable from any features."""
  palette = np.random.default_rng(123).uniform(0, 255, (10, 3))  # the same classes in every split
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, n)
  imgs = palette[labels][:, None, None, :] + rng.normal(0, 12, (n, size, size, 3))
  return LabelledImages(np.clip(imgs, 0, 255).astype(np.uint8), labels.astype(np.int32), 10, "toy")


def test_probes_learn_a_separable_toy_problem():
  model = AlexNet(convs=conv_specs("cpu", 0.25), hidden=(16, 16), num_classes=4)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  train, test = _toy(800, 0, 32), _toy(203, 1, 32)  # 203: the last eval batch is partial
  # 144 values per probe at every layer of the quarter-width AlexNet at 32 px.
  cfg = ProbeConfig(epochs=4, batch_size=40, eval_batch_size=100, lr=0.05, target_dims=144)
  logs = []
  res = run_linear_probes(model.apply, variables, train, test, cfg, mesh=shd.make_mesh(),
                          log=logs.append)
  assert set(res) == {"conv1", "conv2", "conv3", "conv4", "conv5"}
  for layer, r in res.items():
    assert r["top1"] > 80.0, (layer, r)
    assert r["dims"] == 144, (layer, r)  # recorded, the same at every layer
    assert r["top5"] >= r["top1"]
    # Counts over 203 examples: every percentage is a multiple of 100/203.
    assert abs(r["top1"] * 203 / 100 - round(r["top1"] * 203 / 100)) < 1e-6
  assert len(logs) == 4


def test_random_labels_stay_near_chance():
  """The probe must not 'learn' test labels it cannot see: shuffled labels give ~10%."""
  model = AlexNet(convs=conv_specs("cpu", 0.25), hidden=(16, 16), num_classes=4)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  train, test = _toy(400, 0, 32), _toy(300, 1, 32)
  rng = np.random.default_rng(0)
  test = LabelledImages(test.images, rng.permutation(test.labels), 10, "shuffled")
  cfg = ProbeConfig(epochs=2, batch_size=40, eval_batch_size=100, lr=0.05, target_dims=144)
  res = run_linear_probes(model.apply, variables, train, test, cfg, mesh=shd.make_mesh(),
                          log=lambda s: None)
  assert all(r["top1"] < 25.0 for r in res.values()), res


def test_ten_crop_views_are_the_corners_centre_and_their_flips():
  from mono_ssl.probe import eval_views
  images = jnp.arange(2 * 6 * 7 * 1, dtype=jnp.float32).reshape(2, 6, 7, 1)
  views = eval_views(images, crop=4, ten_crop=True)
  a = np.asarray(images)
  want = [a[:, 0:4, 0:4], a[:, 0:4, 3:7], a[:, 2:6, 0:4], a[:, 2:6, 3:7], a[:, 1:5, 1:5]]
  want += [w[:, :, ::-1] for w in want]
  assert len(views) == 10
  for got, w in zip(views, want):
    np.testing.assert_array_equal(np.asarray(got), w)
  np.testing.assert_array_equal(np.asarray(eval_views(images, crop=4)[0]), a[:, 1:5, 1:5])
  assert eval_views(images[:, :6, :6])[0] is not None and len(eval_views(images[:, :6, :6])) == 1


def test_ten_crop_evaluation_averages_the_logits_of_the_ten_views():
  """The probe's ten-crop counts equal those of logits averaged by hand over the ten crops."""
  from mono_ssl.probe import ProbeHeads, eval_views, evaluate_probes
  model = AlexNet(convs=conv_specs("cpu", 0.25), hidden=(16,), num_classes=4)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  test = _toy(30, 1, size=20)
  heads = ProbeHeads(num_classes=10, pools=(("conv1", (2, 2, 0)), ("conv2", (2, 2, 0))))
  _, feats = model.apply(variables, jnp.zeros((1, 16, 16, 3)), head=False)
  heads_vars = heads.init(jax.random.key(1), feats)
  # Non-zero running stats and weights so that every crop gives different logits.
  heads_vars = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(jax.random.key(2), x.shape),
                            heads_vars)
  cfg = ProbeConfig(eval_batch_size=12, crop_size=16, ten_crop=True,
                    layers=("conv1", "conv2"))
  got = evaluate_probes(model.apply, variables, heads, heads_vars, test, cfg, shd.make_mesh())
  images = jnp.asarray(test.images, jnp.float32) / 255.0
  from mono_ssl.train_state import normalise
  per_view = []
  for view in eval_views(images, 16, ten_crop=True):
    _, f = model.apply(variables, normalise(view), head=False)
    per_view.append(heads.apply(heads_vars, f))
  centre_only = evaluate_probes(model.apply, variables, heads, heads_vars, test,
                                ProbeConfig(eval_batch_size=12, crop_size=16,
                                            layers=("conv1", "conv2")), shd.make_mesh())
  for name in ("conv1", "conv2"):
    mean = np.mean([np.asarray(v[name]) for v in per_view], axis=0)
    top1 = 100.0 * np.mean(mean.argmax(-1) == test.labels)
    assert abs(got[name]["top1"] - top1) < 1e-9, (name, got[name], top1)
    centre = np.asarray(per_view[4][name])
    assert abs(centre_only[name]["top1"] - 100.0 * np.mean(centre.argmax(-1) == test.labels)) < 1e-9


def test_crop_larger_than_the_images_is_refused():
  import pytest

  from mono_ssl.errors import UserInputError
  model = AlexNet(convs=conv_specs("cpu", 0.25), hidden=(16,), num_classes=4)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  cfg = ProbeConfig(epochs=1, batch_size=40, eval_batch_size=100, crop_size=20)
  with pytest.raises(UserInputError, match="probe.crop_size=20"):
    run_linear_probes(model.apply, variables, _toy(80, 0), _toy(20, 1), cfg,
                      mesh=shd.make_mesh(), log=lambda s: None)
