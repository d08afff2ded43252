"""Linear probes: the authors' pooling table, learning a separable problem, every test example counted."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mono_ssl import sharding as shd
from mono_ssl.datasets import LabelledImages
from mono_ssl.errors import UserInputError
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
  # 13 does not split over the 4 devices: it runs as 12, the last batch padded and masked.
  refitted = evaluate_probes(model.apply, variables, heads, heads_vars, test,
                             dataclasses.replace(cfg, eval_batch_size=13), shd.make_mesh())
  for name in ("conv1", "conv2"):
    mean = np.mean([np.asarray(v[name]) for v in per_view], axis=0)
    top1 = 100.0 * np.mean(mean.argmax(-1) == test.labels)
    assert abs(got[name]["top1"] - top1) < 1e-9, (name, got[name], top1)
    assert abs(refitted[name]["top1"] - top1) < 1e-9, (name, refitted[name], top1)
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


def _trunk_shapes(scale: str, side: int) -> dict:
  model = AlexNet(convs=conv_specs(scale), hidden=(16,), num_classes=4)
  variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, side, side, 3)))
  feats = jax.eval_shape(lambda v, x: model.apply(v, x, head=False)[1], variables,
                         jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32))
  return {n: f.shape for n, f in feats.items()}


def test_probes_are_one_size_at_every_layer_at_both_scales():
  """Within +-10% of probe.target_dims at every layer: the configs' own targets, both scales."""
  from mono_ssl import config_lib
  from mono_ssl.models.alexnet import LAYER_NAMES
  from mono_ssl.probe import DIMS_TOLERANCE, pool_dims, probe_pools
  for scale, side in (("paper", 224), ("cpu", 32), ("cpu", 64)):  # 64: Tiny-ImageNet at CPU scale
    target = config_lib.base_config("rotnet", "single", scale).probe.target_dims
    shapes = _trunk_shapes(scale, side)
    pools = probe_pools(shapes, LAYER_NAMES, target)
    dims = [pool_dims(spec, *shapes[n][1:]) for n, spec in pools]
    assert max(dims) <= (1 + DIMS_TOLERANCE) * min(dims), (scale, side, dims)
    assert all(abs(d - target) <= DIMS_TOLERANCE * target for d in dims), (scale, side, dims)
    if scale == "paper":  # the authors' table exactly (paper-protocol.md)
      assert dict(pools) == {"conv1": (6, 6, 3), "conv2": (4, 4, 0), "conv3": (3, 3, 1),
                             "conv4": (3, 3, 1), "conv5": (2, 2, 0)}
      assert dims == [9600, 9216, 9600, 9600, 9216]


def test_a_target_no_layer_can_meet_is_refused_with_a_size_that_works():
  import pytest

  from mono_ssl.errors import UserInputError
  from mono_ssl.models.alexnet import LAYER_NAMES
  from mono_ssl.probe import probe_pools
  shapes = _trunk_shapes("cpu", 32)
  with pytest.raises(UserInputError, match=r"probe.target_dims=2048 .*conv3 \(3x3x96 map.*"
                                           r"set probe.target_dims=640"):
    probe_pools(shapes, LAYER_NAMES, 2048)


def _adaptive_max_pool_np(x, rows, cols):
  """torch.nn.AdaptiveMaxPool2d's bins, written out."""
  h, w = x.shape[1:3]
  out = np.zeros((x.shape[0], rows, cols, x.shape[3]), x.dtype)
  for i in range(rows):
    for j in range(cols):
      a, b = (i * h) // rows, -(-((i + 1) * h) // rows)
      c, d = (j * w) // cols, -(-((j + 1) * w) // cols)
      out[:, i, j] = x[:, a:b, c:d].max(axis=(1, 2))
  return out


def test_probe_batchnorm_is_per_channel_on_the_pooled_map_against_numpy():
  """BatchNorm2d on the pooled map, no affine: statistics per channel over (batch, rows, cols)."""
  from mono_ssl.probe import ProbeHeads, adaptive_max_pool
  x = np.random.default_rng(0).normal(1.0, 2.0, (8, 7, 7, 4)).astype(np.float32)
  x[..., 1] *= 10.0  # channels on different scales: per-(position, channel) or global stats differ
  pooled = _adaptive_max_pool_np(x, 2, 3)
  np.testing.assert_allclose(np.asarray(adaptive_max_pool(jnp.asarray(x), 2, 3)), pooled)
  mean, var = pooled.mean(axis=(0, 1, 2)), pooled.var(axis=(0, 1, 2))
  want = (pooled - mean) / np.sqrt(var + 1e-5)
  heads = ProbeHeads(num_classes=3, pools=(("conv1", (2, 3)),))
  feats = {"conv1": jnp.asarray(x)}
  variables = heads.init(jax.random.key(0), feats)
  _, state = heads.apply(variables, feats, train=True, mutable=["batch_stats", "intermediates"],
                         capture_intermediates=True)
  got = np.asarray(state["intermediates"]["conv1_bn"]["__call__"][0])
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  stats = state["batch_stats"]["conv1_bn"]
  assert stats["mean"].shape == (4,)  # one statistic per channel
  np.testing.assert_allclose(np.asarray(stats["mean"]), 0.1 * mean, rtol=1e-5)  # momentum 0.9
  np.testing.assert_allclose(np.asarray(stats["var"]), 0.9 + 0.1 * var, rtol=1e-4)
  assert "conv1_bn" not in variables.get("params", {})  # no scale, no offset


def test_whole_view_probes_train_on_cached_features_as_through_the_trunk():
  # train_views='whole': features computed once per image and mirror, then the heads' SGD on
  # them equals the same SGD on features computed through the trunk at every step (same
  # batches, same mirrors), up to the cache's float16 rounding; and it learns the toy problem.
  from mono_ssl.probe import LinearProbe, head_update, pool_features
  from mono_ssl.train_state import normalise
  model = AlexNet(convs=conv_specs("cpu", 0.25), hidden=(16, 16), num_classes=4)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  train, test = _toy(400, 0, 32), _toy(203, 1, 32)
  cfg = ProbeConfig(epochs=2, batch_size=40, eval_batch_size=100, lr=0.05, target_dims=144,
                    train_views="whole")
  probe = LinearProbe(model.apply, variables, train, test, cfg, mesh=shd.make_mesh(), log=lambda s: None)
  cached = probe._train_whole(probe._init(variables, jax.random.key(0)), variables,
                              np.random.default_rng(0), 0.0, probe._cached_features(variables))
  state, rng = probe._init(variables, jax.random.key(0)), np.random.default_rng(0)
  step = jax.jit(lambda st, x, y: head_update(probe.heads, st, jax.lax.stop_gradient(
      model.apply(variables, normalise(x), train=False, head=False)[1]), y))
  mirrored = 0
  for _ in range(cfg.epochs):
    perm = rng.permutation(400)[:probe.steps_per_epoch * 40]
    flips = rng.integers(0, 2, len(perm))
    mirrored += flips.sum()
    for s in range(probe.steps_per_epoch):
      idx, fl = perm[s * 40:(s + 1) * 40], flips[s * 40:(s + 1) * 40]
      x = train.images[idx].astype(np.float32) / 255.0
      x[fl == 1] = x[fl == 1][:, :, ::-1]
      state, _ = step(state, jnp.asarray(x), jnp.asarray(train.labels[idx]))
  assert 0 < mirrored < len(perm) * cfg.epochs  # both views were drawn
  for a, b in zip(jax.tree.leaves(jax.device_get(cached.params)), jax.tree.leaves(jax.device_get(state.params))):
    np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-3)
  # Unmirrored features would differ: the check can fail.
  feats = pool_features(model.apply(variables, normalise(jnp.asarray(train.images[:8] / 255.0)),
                                    head=False)[1], probe.heads.pools)
  back = pool_features(model.apply(variables, normalise(jnp.asarray(train.images[:8, :, ::-1] / 255.0)),
                                   head=False)[1], probe.heads.pools)
  assert not np.allclose(feats["conv1"], back["conv1"])
  res = run_linear_probes(model.apply, variables, train, test,
                          dataclasses.replace(cfg, epochs=4), mesh=shd.make_mesh(), log=lambda s: None)
  assert all(r["top1"] > 80.0 for r in res.values()), res


def test_whole_view_probes_refuse_crops_and_unknown_views():
  from mono_ssl.probe import LinearProbe
  model = AlexNet(convs=conv_specs("cpu", 0.25), hidden=(16, 16), num_classes=4)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  train, test = _toy(100, 0, 32), _toy(50, 1, 32)
  for cfg, says in ((ProbeConfig(target_dims=144, batch_size=20, train_views="whole", crop_size=24,
                                 layers=("conv1",)),
                     "probe.crop_size=0"),
                    (ProbeConfig(target_dims=144, batch_size=20, train_views="crop"), "train_views='crop'")):
    with pytest.raises(UserInputError, match=says) as e:
      LinearProbe(model.apply, variables, train, test, cfg, mesh=shd.make_mesh())
    assert "\n" not in str(e.value)


def test_head_seeds_average_probes_each_as_its_own_seed_would():
  # probe.head_seeds=3: three heads (seeds 5, 6, 7) on one trunk, whole-view features cached
  # once; each seed's top-1 is what a probe of that seed alone gives, the reported top-1 their
  # mean, with the standard error of that mean. Chance-level labels make the seeds differ.
  from mono_ssl.probe import LinearProbe, mean_over_head_seeds
  model = AlexNet(convs=conv_specs("cpu", 0.25), hidden=(16, 16), num_classes=4)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  train, test = _toy(200, 0, 32), _toy(120, 1, 32)
  rng = np.random.default_rng(3)
  train = dataclasses.replace(train, labels=rng.integers(0, 10, len(train)).astype(np.int32))
  cfg = ProbeConfig(epochs=1, batch_size=40, eval_batch_size=60, lr=0.05, target_dims=144,
                    train_views="whole", layers=("conv1", "conv2"), seed=5, head_seeds=3)
  calls = []
  probe = LinearProbe(model.apply, variables, train, test, cfg, mesh=shd.make_mesh(), log=lambda s: None)
  cache = probe._cached_features
  probe._cached_features = lambda tv: calls.append(1) or cache(tv)
  res = probe(variables)
  assert len(calls) == 1  # the features once, for every head seed
  singles = [run_linear_probes(model.apply, variables, train, test,
                               dataclasses.replace(cfg, seed=s, head_seeds=1), mesh=shd.make_mesh(),
                               log=lambda s: None) for s in (5, 6, 7)]
  for layer in ("conv1", "conv2"):
    want = [r[layer]["top1"] for r in singles]
    np.testing.assert_allclose(res[layer]["top1_seeds"], want, atol=1e-9)
    assert res[layer]["top1"] == pytest.approx(np.mean(want))
    assert res[layer]["top1_se"] == pytest.approx(np.std(want, ddof=1) / np.sqrt(3))
  assert len(set(want)) > 1  # the seeds differ, so the mean and its s.e. are tested
  assert mean_over_head_seeds([{"top1": 10.0, "top5": 30.0}]) == {"top1": 10.0, "top5": 30.0}
  with pytest.raises(UserInputError, match="head_seeds=0"):
    LinearProbe(model.apply, variables, train, test, dataclasses.replace(cfg, head_seeds=0),
                mesh=shd.make_mesh(), log=lambda s: None)(variables)


def test_head_seeds_with_crops_draw_other_crops():
  # With redrawn crops, each crop is a function of its index: head seed k's indices lie past
  # those of seeds < k (offset k x epochs x N), so the seeds' spread includes the crops' noise.
  from mono_ssl.probe import LinearProbe
  model = AlexNet(convs=conv_specs("cpu", 0.25), hidden=(16, 16), num_classes=4)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  train, test = _toy(80, 0, 32), _toy(40, 1, 32)
  cfg = ProbeConfig(epochs=2, batch_size=40, eval_batch_size=40, lr=0.05, target_dims=144,
                    layers=("conv1",), head_seeds=2)
  probe = LinearProbe(model.apply, variables, train, test, cfg, mesh=shd.make_mesh(), log=lambda s: None)
  seen, crop = [], probe._crop
  probe._crop = lambda bank, labels, idx: seen.append(np.asarray(jax.device_get(idx))) or crop(bank, labels, idx)
  res = probe(variables)
  assert len(res["conv1"]["top1_seeds"]) == 2
  per_seed = probe.steps_per_epoch * cfg.epochs
  first, second = np.concatenate(seen[:per_seed]), np.concatenate(seen[per_seed:])
  assert len(seen) == 2 * per_seed
  assert not set(first) & set(second)  # other crops
  assert sorted(set(first % 80)) == sorted(set(second % 80))  # of the same images
  assert second.min() >= cfg.epochs * 80


def test_whole_view_features_reused_by_another_probe_give_its_own_result():
  # LinearProbe.features + __call__(features=): a second probe of the same trunk and size (another
  # lr) trained on the first probe's cached features equals that probe computing its own, with no
  # trunk pass; features of another probe size or a crops probe are refused in one line.
  from mono_ssl.probe import LinearProbe
  model = AlexNet(convs=conv_specs("cpu", 0.25), hidden=(16, 16), num_classes=4)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  train, test = _toy(200, 0, 32), _toy(120, 1, 32)
  cfg = ProbeConfig(epochs=1, batch_size=40, eval_batch_size=60, lr=0.05, target_dims=144,
                    train_views="whole", layers=("conv1", "conv2"))
  first = LinearProbe(model.apply, variables, train, test, cfg, mesh=shd.make_mesh(), log=lambda s: None)
  feats = first.features(variables)
  other = dataclasses.replace(cfg, lr=0.2, epochs=2)
  second = LinearProbe(model.apply, variables, train, test, other, mesh=shd.make_mesh(), log=lambda s: None)
  calls = []
  cache = second._cached_features
  second._cached_features = lambda tv: calls.append(1) or cache(tv)
  reused = second(variables, features=feats)
  assert not calls  # no trunk pass of its own
  own = run_linear_probes(model.apply, variables, train, test, other, mesh=shd.make_mesh(),
                          log=lambda s: None)
  for layer in ("conv1", "conv2"):
    assert reused[layer]["top1"] == pytest.approx(own[layer]["top1"])
  first_res = first(variables, features=feats)
  assert any(first_res[l]["top1"] != reused[l]["top1"] for l in ("conv1", "conv2"))  # lr/epochs matter
  bigger = LinearProbe(model.apply, variables, train, test, dataclasses.replace(cfg, target_dims=288),
                       mesh=shd.make_mesh(), log=lambda s: None)
  with pytest.raises(UserInputError, match="target_dims") as e:
    bigger(variables, features=feats)
  assert "\n" not in str(e.value)
  no_flip = LinearProbe(model.apply, variables, train, test, dataclasses.replace(cfg, flip=False),
                        mesh=shd.make_mesh(), log=lambda s: None)
  with pytest.raises(UserInputError, match="probe.flip"):  # 2 views cached, 1 wanted
    no_flip(variables, features=feats)
  smaller = LinearProbe(model.apply, variables, _toy(160, 0, 32), test, cfg, mesh=shd.make_mesh(),
                        log=lambda s: None)
  with pytest.raises(UserInputError, match="160 images"):  # another train set's count
    smaller(variables, features=feats)
  with pytest.raises(UserInputError, match="shapes {}"):
    first(variables, features={})
  crops = LinearProbe(model.apply, variables, train, test, dataclasses.replace(cfg, train_views="crops"),
                      mesh=shd.make_mesh(), log=lambda s: None)
  with pytest.raises(UserInputError, match="train_views='crops'"):
    crops(variables, features=feats)
  with pytest.raises(UserInputError, match="train_views='whole'"):
    crops.features(variables)
