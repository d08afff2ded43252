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
  variables = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  train, test = _toy(800, 0), _toy(203, 1)  # 203: the last eval batch is partial
  cfg = ProbeConfig(epochs=4, batch_size=40, eval_batch_size=100, lr=0.05, target_dims=256)
  logs = []
  res = run_linear_probes(model.apply, variables, train, test, cfg, mesh=shd.make_mesh(),
                          log=logs.append)
  assert set(res) == {"conv1", "conv2", "conv3", "conv4", "conv5"}
  for layer, r in res.items():
    assert r["top1"] > 80.0, (layer, r)
    assert r["top5"] >= r["top1"]
    # Counts over 203 examples: every percentage is a multiple of 100/203.
    assert abs(r["top1"] * 203 / 100 - round(r["top1"] * 203 / 100)) < 1e-6
  assert len(logs) == 4


def test_random_labels_stay_near_chance():
  """The probe must not 'learn' test labels it cannot see: shuffled labels give ~10%."""
  model = AlexNet(convs=conv_specs("cpu", 0.25), hidden=(16, 16), num_classes=4)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  train, test = _toy(400, 0), _toy(300, 1)
  rng = np.random.default_rng(0)
  test = LabelledImages(test.images, rng.permutation(test.labels), 10, "shuffled")
  cfg = ProbeConfig(epochs=2, batch_size=40, eval_batch_size=100, lr=0.05, target_dims=256)
  res = run_linear_probes(model.apply, variables, train, test, cfg, mesh=shd.make_mesh(),
                          log=lambda s: None)
  assert all(r["top1"] < 25.0 for r in res.values()), res
