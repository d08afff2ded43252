"""DeepCluster on real single-image patches: clustering each epoch, uniform-over-clusters batches, resume."""
import json

import jax
import numpy as np
from conftest import apply_overrides, load_config_file

from mono_ssl import train
from mono_ssl.methods import deepcluster


def tiny_dc(**overrides):
  c = load_config_file("deepcluster", "regime=single,scale=cpu")
  settings = {"data.images": "default", "data.max_side": 512, "model.width_mult": 0.25,
              "model.hidden": (32, 32), "train.batch_size": 16, "train.num_steps": 10,
              "train.log_every": 1, "train.ckpt_every": 3, "deepcluster.num_clusters": 8,
              "data.dataset_size": 64, "deepcluster.pca_dim": 16,
              "deepcluster.feature_batch": 32, "probe.dataset": "bundled_cifar10",
              "probe.limit_per_class": 20, "probe.epochs": 1, "probe.batch_size": 20,
              "probe.eval_batch_size": 100, "probe.target_dims": 144,
              "probe.curve_every": 0}
  settings.update(overrides)
  return apply_overrides(c, settings)


def test_reclusters_every_epoch_and_trains_on_pseudo_labels(tmp_path):
  logs = []
  state, _, _ = train.pretrain(tiny_dc(), tmp_path, log=logs.append)
  clusterings = [l for l in logs if l.startswith("deepcluster epoch")]
  assert len(clusterings) == 3  # epochs of 64/16 = 4 steps start at steps 0, 4, 8
  assert "nmi_vs_previous" in clusterings[1]
  sizes = np.asarray(state.sizes)
  assert sizes.sum() == 64 and (sizes > 0).all()
  # The sampler's tables describe the assignments.
  order, starts, assign = np.asarray(state.order), np.asarray(state.starts), np.asarray(state.assignments)
  for c in range(8):
    assert (assign[order[starts[c]:starts[c] + sizes[c]]] == c).all()
  losses = [json.loads(l)["loss"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
            if "loss" in json.loads(l)]
  assert len(losses) == 10 and np.isfinite(losses).all()
  assert any("clustering" in l for l in (tmp_path / "metrics.jsonl").read_text().splitlines())
  assert (tmp_path / deepcluster.CLUSTERS_PLOT).stat().st_size > 0  # NMI per clustering, sizes


def test_sampler_is_uniform_over_clusters():
  sizes = np.array([1, 5, 94], np.int32)
  assign = np.repeat(np.arange(3), sizes).astype(np.int32)
  state = type("S", (), {})()
  state.sizes, state.order = sizes, np.arange(100, dtype=np.int32)
  state.starts, state.assignments = (np.cumsum(sizes) - sizes).astype(np.int32), assign
  state.epoch = np.int32(0)
  idx = np.asarray(deepcluster.sample_indices(state, jax.random.key(0), 30000))
  assert idx.min() >= 100  # epoch 0 draws its fresh loader views: i + N
  freq = np.bincount(assign[idx % 100], minlength=3) / len(idx)
  np.testing.assert_allclose(freq, 1 / 3, atol=0.02)  # a 1-patch cluster is drawn as often as a 94-patch one


class _Stop(Exception):
  pass


def test_resume_mid_epoch_is_bit_identical(tmp_path):
  ref, _, _ = train.pretrain(tiny_dc(), tmp_path / "a", log=lambda s: None)

  def stop(line):
    if line.startswith("step 7/"):
      raise _Stop  # after the step-6 checkpoint, mid-way through epoch 1

  (tmp_path / "b").mkdir()
  try:
    train.pretrain(tiny_dc(), tmp_path / "b", log=stop)
  except _Stop:
    pass
  resumed, _, info = train.pretrain(tiny_dc(), tmp_path / "b", log=lambda s: None)
  assert info["resumed_from"] == 6
  for a, b in zip(jax.tree.leaves(jax.device_get(ref.params)), jax.tree.leaves(jax.device_get(resumed.params))):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(np.asarray(ref.assignments), np.asarray(resumed.assignments))


def test_end_to_end_probe_table(tmp_path):
  results = train.train_and_evaluate(tiny_dc(**{"train.num_steps": 4}), tmp_path, log=lambda s: None)
  assert set(results["trained"]) == {"conv1", "conv2", "conv3", "conv4", "conv5"}
  assert "| deepcluster (single) |" in (tmp_path / "probe_results.md").read_text()


# --- the original's choices (facebookresearch/deepcluster) --------------------------------------

def _tables(sizes, n=None):
  sizes = np.asarray(sizes, np.int32)
  n = n or int(sizes.sum())
  state = type("S", (), {})()
  state.sizes, state.order = sizes, np.arange(n, dtype=np.int32)
  state.starts = (np.cumsum(sizes) - sizes).astype(np.int32)
  state.assignments = np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)
  state.epoch = np.int32(0)
  return state


def test_every_draw_is_a_fresh_view_with_the_same_pseudo_label():
  from mono_ssl.augment import PatchGenerator
  from mono_ssl.data import pretrain_source
  config = tiny_dc()
  state = _tables([1, 63])  # patch 0 is alone in its cluster: drawn ~half the time
  source = pretrain_source(config)
  gen = PatchGenerator(source.bank, source.aug, seed=0, period=64)
  for fresh in (True, False):
    idx = np.asarray(deepcluster.sample_indices(state, jax.random.key(0), 64, fresh_views=fresh))
    zero = idx[idx % 64 == 0][:4]
    assert len(zero) == 4 and (state.assignments[zero % 64] == 0).all()  # label lookup unchanged
    imgs = np.asarray(gen(jax.numpy.asarray(zero)))
    if fresh:  # the original crops and flips every draw anew
      assert len(set(zero.tolist())) == 4
      assert all(np.abs(imgs[0] - imgs[j]).max() > 1e-3 for j in (1, 2, 3))
    else:  # one view per epoch: the same image each draw (the old behaviour)
      assert len(set(zero.tolist())) == 1 and np.abs(imgs[0] - imgs[1]).max() == 0
  assert deepcluster.make_sampler(config) is not None and config.deepcluster.fresh_views


def test_clustered_features_are_fc7_before_its_relu_in_a_head_without_batchnorm():
  config = tiny_dc()
  model = deepcluster.build_model(config)
  assert not model.head_bn and model.dropout == 0.5
  v = model.init(jax.random.key(0), jax.numpy.zeros((2, 32, 32, 3)))
  assert not any(k.startswith("fc") and k.endswith("_bn") for k in v["params"])  # no BatchNorm
  assert "bias" in v["params"]["fc7"]
  x = jax.random.normal(jax.random.key(1), (8, 32, 32, 3))
  _, feats = model.apply(v, x, train=False)
  name = deepcluster.feature_name(feats, config.deepcluster.feature_tap)
  assert name == "fc7_pre"
  pre = np.asarray(feats[name])
  assert pre.min() < 0  # before the ReLU: no block of exact zeros
  np.testing.assert_allclose(np.maximum(pre, 0), np.asarray(feats["fc7"]), atol=1e-6)
  assert deepcluster.feature_name(feats, "fc") == "fc7"


def test_clustering_is_faiss_random_init_kmeans_reproducible_by_seed(tmp_path):
  from mono_ssl import kmeans as km
  x = jax.random.normal(jax.random.key(0), (200, 8))
  a = km.kmeans(x, 10, key=jax.random.key(3), init="random")
  b = km.kmeans(x, 10, key=jax.random.key(3), init="random")
  c = km.kmeans(x, 10, key=jax.random.key(4), init="random")
  np.testing.assert_array_equal(np.asarray(a.assignments), np.asarray(b.assignments))
  assert not np.array_equal(np.asarray(a.centroids), np.asarray(c.centroids))
  # The run's first clustering is exactly that k-means (random init, the run's epoch-0 key)
  # on the PCA-whitened fc7 features of the base patches.
  config = tiny_dc(**{"train.num_steps": 1})
  state, _, _ = train.pretrain(config, tmp_path, log=lambda s: None)
  init = train.initial_state(config, deepcluster_source(config), train.shd.make_mesh())
  ctx_gen = _plain_generator(config)
  feats = deepcluster._features(init, ctx_gen, 64, 32, train.shd.make_mesh(), "fc_pre_relu")
  z = km.pca_whiten(feats, 16)
  want = km.kmeans(z, 8, key=jax.random.fold_in(jax.random.key(config.seed + 7), 0), num_iters=20,
                   init="random")
  np.testing.assert_array_equal(np.asarray(state.assignments), np.asarray(want.assignments))


def deepcluster_source(config):
  from mono_ssl.data import pretrain_source
  return pretrain_source(config)


def _plain_generator(config):
  import dataclasses

  from mono_ssl.augment import PatchGenerator
  source = deepcluster_source(config)
  plain = dataclasses.replace(source.aug, method_crop=False, flip=False)
  return PatchGenerator(train.shd.to_global(source.bank, train.shd.replicated(train.shd.make_mesh())),
                        plain, seed=config.seed, period=source.size)


def test_top_layer_sgd_has_no_momentum_and_is_reset_at_each_clustering():
  import jax.numpy as jnp
  config = tiny_dc(**{"train.weight_decay": 0.0})
  tx = deepcluster.optimiser(config, 100)
  params = {"classifier": {"kernel": jnp.ones((3, 2))}, "conv1": {"kernel": jnp.ones((2, 2))}}
  grads = jax.tree.map(jnp.ones_like, params)
  st = tx.init(params)
  u1, st = tx.update(grads, st, params)
  u2, st = tx.update(grads, st, params)
  np.testing.assert_allclose(np.asarray(u2["classifier"]["kernel"]), np.asarray(u1["classifier"]["kernel"]))
  np.testing.assert_allclose(np.asarray(u2["conv1"]["kernel"]), 1.9 * np.asarray(u1["conv1"]["kernel"]),
                             rtol=1e-6)  # the trunk keeps momentum 0.9
  # With top-layer momentum (the option), a clustering resets its state and only its state.
  mesh = train.shd.make_mesh()
  c2 = tiny_dc(**{"deepcluster.top_momentum": 0.5})
  state = deepcluster.create_state(c2, 32, jax.random.key(0), mesh, 10, data_size=64)
  g = jax.tree.map(jnp.ones_like, state.params)
  _, opt = state.tx.update(g, state.opt_state, state.params)
  state = state.replace(opt_state=opt)
  fresh = deepcluster._reinit_classifier(state, jax.random.key(1))

  def leaves(tree, top):
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [np.asarray(v) for p, v in flat
            if any(getattr(k, "key", None) == "classifier" for k in p) == top and np.ndim(v)]
  assert any(np.abs(v).max() > 0 for v in leaves(state.opt_state, True))
  assert all(np.abs(v).max() == 0 for v in leaves(fresh.opt_state, True))
  for a, b in zip(leaves(state.opt_state, False), leaves(fresh.opt_state, False)):
    np.testing.assert_array_equal(a, b)


def test_sobel_front_end_matches_numpy():
  from mono_ssl.models.alexnet import sobel_front_end
  x = np.random.default_rng(0).normal(size=(2, 7, 9, 3)).astype(np.float32)
  grey = np.pad(x.mean(-1), ((0, 0), (1, 1), (1, 1)))
  kx = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32)
  ky = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32)
  want = np.zeros((2, 7, 9, 2), np.float32)
  for i in range(7):
    for j in range(9):
      win = grey[:, i:i + 3, j:j + 3]
      want[:, i, j, 0] = (win * kx).sum((1, 2))
      want[:, i, j, 1] = (win * ky).sum((1, 2))
  np.testing.assert_allclose(np.asarray(sobel_front_end(jax.numpy.asarray(x))), want, atol=1e-5)
  # The probes read through it: the trunk's conv1 sees 2 channels.
  model = deepcluster.build_model(tiny_dc(**{"deepcluster.sobel": True}))
  v = model.init(jax.random.key(0), jax.numpy.zeros((1, 32, 32, 3)))
  assert v["params"]["conv1"]["kernel"].shape[2] == 2


def test_mini_default_run_reclusters_at_least_40_times():
  c = load_config_file("deepcluster", "regime=single,scale=mini")
  n = c.data.dataset_size
  assert c.train.num_steps / deepcluster.epoch_steps(c, n) >= 40
  half = apply_overrides(load_config_file("deepcluster", "regime=single,scale=mini"),
                         {"deepcluster.reassign": 0.5})
  assert deepcluster.epoch_steps(half, n) == deepcluster.epoch_steps(c, n) // 2
