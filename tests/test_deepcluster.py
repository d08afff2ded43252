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
