"""Scale-out: one global batch gives the same update on 1, 2 and 8 devices, and under pmap.

conftest fixes this process at 4 fake CPU devices, so the 1/2/8-device runs
happen in a child process that raises the count to 8 before JAX starts its
backend, then trains each method on meshes of the first 1, 2 and 8 devices.
"""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, apply_overrides, load_config_file, tiny_config

from mono_ssl import config_lib, train
from mono_ssl import sharding as shd
from mono_ssl.augment import PatchGenerator
from mono_ssl.data import pretrain_source
from mono_ssl.methods import deepcluster

METHODS = ("rotnet", "deepcluster", "bigan")
DEVICE_COUNTS = (1, 2, 8)
BATCH = 8       # one patch per device on 8 devices
STEPS = 3
DC_SIZE = 64    # DeepCluster's cluster set: data set size N


def scaleout_config(method: str):
  """The tiny config of each method: quarter-width AlexNet, hidden (32, 32), 32 px patches."""
  if method == "rotnet":
    return tiny_config(**{"train.batch_size": BATCH, "train.lr": 0.05, "train.lr_boundaries": (0.9,)})
  small = {"data.images": "default", "data.max_side": 512, "model.width_mult": 0.25,
           "model.hidden": (32, 32), "train.batch_size": BATCH}
  if method == "deepcluster":
    c = load_config_file("deepcluster", "regime=single,scale=cpu")
    # No dropout: under pmap each device would draw its own masks. The head with BatchNorm
    # (an option; the original's has none): its statistics are what pmap must average.
    return apply_overrides(c, dict(small, **{"deepcluster.num_clusters": 8, "data.dataset_size": DC_SIZE,
                                  "model.dropout": 0.0, "deepcluster.head_bn": True,
                                  "train.lr": 0.05}))
  c = config_lib.bigan_fields(config_lib.base_config("bigan", "single", "cpu"), "cpu")
  apply_overrides(c, small)
  # No weight decay: Adam would turn float noise in near-zero gradients into full steps.
  c.bigan.update(dict(latent_dim=16, gen_width=8, disc_width=8, disc_z_hidden=32,
                      disc_joint_hidden=32))
  c.train.weight_decay = 0.0
  c.lock()
  return c


def fixed_batches(seed: int = 0) -> dict:
  """STEPS global batches of real patches of the default image, plus DeepCluster's indices (host)."""
  source = pretrain_source(scaleout_config("rotnet"))
  gen = PatchGenerator(source.bank, source.aug, seed=seed)
  images = np.asarray(gen(jnp.arange(STEPS * BATCH)))
  rng = np.random.default_rng(seed)
  return {"images": images.reshape(STEPS, BATCH, *images.shape[1:]),
          # any index; the step reads the label of index mod N
          "indices": rng.integers(0, 10 * DC_SIZE, (STEPS, BATCH)).astype(np.int32)}


def dc_assignments(seed: int = 0) -> np.ndarray:
  """Fixed pseudo-labels: every one of the 8 clusters used."""
  return np.random.default_rng(seed).permutation(np.arange(DC_SIZE) % 8).astype(np.int32)


def run_on_devices(method: str, n: int, batches: dict) -> dict:
  """STEPS jitted steps over a mesh of the first n devices; returns host arrays to compare."""
  config = scaleout_config(method)
  module = train.METHODS[method]
  mesh = shd.make_mesh(jax.devices()[:n])
  repl, bsh = shd.replicated(mesh), shd.batch_sharded(mesh)
  state = module.create_state(config, config.aug.out_size, jax.random.key(0), mesh, 100,
                              data_size=DC_SIZE)
  if method == "deepcluster":
    state = state.replace(assignments=shd.to_global(dc_assignments(), repl))
  initial = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state.params))]
  step = jax.jit(module.make_train_step(config=config), donate_argnums=0,
                 in_shardings=(repl, bsh, repl), out_shardings=(repl, repl))
  for t in range(STEPS):
    images = jax.device_put(batches["images"][t], bsh)
    batch = images
    if method == "deepcluster":
      batch = {"images": images, "indices": jax.device_put(batches["indices"][t], bsh)}
    state, metrics = step(state, batch, jax.random.key(t))
  leaves = jax.tree.leaves(jax.device_get((state.params, state.batch_stats)))
  out = {f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)}
  out["loss"] = np.asarray(jax.device_get(metrics["loss"]))
  out["moved"] = np.float32(max(np.abs(a - b).max() for a, b in
                                zip(initial, jax.tree.leaves(jax.device_get(state.params)))))
  # What the run really used: the state's devices and how many rows each device held.
  out["state_devices"] = np.int32(len(jax.tree.leaves(state.params)[0].sharding.device_set))
  out["batch_devices"] = np.int32(len(images.sharding.device_set))
  out["rows_per_device"] = np.int32(images.addressable_shards[0].data.shape[0])
  return out


CHILD = """
import sys
sys.path.insert(0, {tests!r})
import test_scaleout as T  # imports conftest, which asks for 4 devices; this child wants 8
import jax
jax.config.update("jax_num_cpu_devices", 8)
import numpy as np
assert jax.device_count() == 8, jax.devices()
batches = T.fixed_batches()
for method in T.METHODS:
  for n in T.DEVICE_COUNTS:
    np.savez({out!r} + f"/{{method}}_{{n}}.npz", **T.run_on_devices(method, n, batches))
    print(method, n, "done", flush=True)
"""


@pytest.fixture(scope="module")
def scaleout_runs(tmp_path_factory):
  """{(method, n): arrays} from one child process with 8 fake CPU devices."""
  out = tmp_path_factory.mktemp("scaleout")
  code = CHILD.format(tests=str(REPO / "tests"), out=str(out))
  # LLVM optimisation off: compiling 9 states and steps takes ~40 s instead of ~140 s on 2 cores.
  # The sharding (XLA's SPMD partitioning) happens before that stage and is what is tested.
  xla_flags = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
  env = dict(os.environ, PYTHONPATH=str(REPO), XLA_FLAGS=xla_flags)
  r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                     timeout=600)
  assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
  return {(m, n): dict(np.load(out / f"{m}_{n}.npz")) for m in METHODS for n in DEVICE_COUNTS}


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_same_parameters_on_one_two_and_eight_devices(scaleout_runs, method):
  runs = {n: scaleout_runs[(method, n)] for n in DEVICE_COUNTS}
  for n, r in runs.items():  # each run really spread over n devices
    assert int(r["state_devices"]) == int(r["batch_devices"]) == n, (n, r["batch_devices"])
    assert int(r["rows_per_device"]) == BATCH // n
  ref = runs[1]
  assert float(ref["moved"]) > 1e-4  # the steps changed the parameters: matching is not trivial
  leaves = sorted(k for k in ref if k.startswith("leaf"))
  assert len(leaves) > 10
  for n in DEVICE_COUNTS[1:]:
    assert sorted(k for k in runs[n] if k.startswith("leaf")) == leaves
    np.testing.assert_allclose(runs[n]["loss"], ref["loss"], rtol=1e-4, err_msg=f"{method} n={n}")
    for k in leaves:
      np.testing.assert_allclose(runs[n][k], ref[k], rtol=2e-4, atol=2e-5,
                                 err_msg=f"{method}: {k} on {n} devices vs 1")


def test_deepcluster_step_under_pmap_with_axis_name_matches_jit():
  config = scaleout_config("deepcluster")
  mesh1 = shd.make_mesh(jax.devices()[:1])
  state = deepcluster.create_state(config, 32, jax.random.key(0), mesh1, 100, data_size=DC_SIZE)
  state = state.replace(assignments=jax.device_put(dc_assignments(), shd.replicated(mesh1)))
  batches = fixed_batches()
  images, indices = batches["images"][0], batches["indices"][0]
  step = jax.jit(deepcluster.make_train_step(config))
  jit_state, jit_m = step(jax.tree.map(lambda x: x.copy(), state),
                          {"images": jnp.asarray(images), "indices": jnp.asarray(indices)},
                          jax.random.key(0))

  model = deepcluster.build_model(config).clone(bn_axis_name="batch")
  # Host copies: pmap places them itself. Each device holds all assignments, 2 of the 8 rows.
  pstate = jax.tree.map(lambda x: np.stack([np.asarray(x)] * 4), state.replace(apply_fn=model.apply))
  pstep = jax.pmap(deepcluster.make_train_step(config, axis_name="batch"), axis_name="batch")
  keys = np.stack([np.asarray(jax.random.key_data(jax.random.key(0)))] * 4)
  pbatch = {"images": images.reshape(4, 2, *images.shape[1:]), "indices": indices.reshape(4, 2)}
  p_state, p_m = pstep(pstate, pbatch, jax.random.wrap_key_data(keys))
  for k in ("loss", "accuracy"):
    np.testing.assert_allclose(np.asarray(p_m[k]), float(jit_m[k]), rtol=1e-5, atol=1e-6)
  # The update moved the parameters (so matching is not trivially true) ...
  moved = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(jax.device_get(state.params)),
                                                jax.tree.leaves(jax.device_get(jit_state.params)))]
  assert max(moved) > 1e-4
  # ... and every device of the pmap run holds the jit run's parameters and BN statistics.
  for a, b in zip(jax.tree.leaves(jax.device_get((jit_state.params, jit_state.batch_stats))),
                  jax.tree.leaves(jax.device_get((p_state.params, p_state.batch_stats)))):
    for d in range(4):
      np.testing.assert_allclose(a, b[d], rtol=2e-4, atol=2e-5)


QUICKSTART_ON_8 = """
import sys, json
sys.path.insert(0, {tests!r})
import conftest  # asks for 4 devices; this child wants 8
import jax
jax.config.update("jax_num_cpu_devices", 8)
assert jax.device_count() == 8, jax.devices()
from mono_ssl import train
c = conftest.load_config_file("quickstart", None)
# The quickstart as it is (probe batch 128, evaluation batch 500: not a multiple of 8),
# its pretraining skipped and its probes shortened: the probe stage is what is tested.
c = conftest.apply_overrides(c, {{"train.num_steps": 0, "probe.limit_per_class": 16,
                                  "probe.epochs": 1, "probe.random_baseline": False,
                                  "probe.curve_every": 0}})
logs = []
res = train.train_and_evaluate(c, {out!r}, log=logs.append)
print(json.dumps({{"trained": res["trained"], "logs": logs}}))
"""


@pytest.mark.slow
def test_quickstart_probe_stage_runs_on_eight_devices(tmp_path):
  code = QUICKSTART_ON_8.format(tests=str(REPO / "tests"), out=str(tmp_path / "run"))
  xla_flags = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
  env = dict(os.environ, PYTHONPATH=str(REPO), XLA_FLAGS=xla_flags)
  r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                     timeout=600)
  assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
  import json
  out = json.loads(r.stdout.strip().splitlines()[-1])
  assert any("probe.eval_batch_size=500 runs as 496" in line for line in out["logs"]), out["logs"]
  assert set(out["trained"]) == {"conv1", "conv2", "conv3", "conv4", "conv5"}
  for layer, v in out["trained"].items():  # every one of the 1,000 test images counted once
    assert abs(v["top1"] * 10 - round(v["top1"] * 10)) < 1e-6, (layer, v)
