"""BiGAN: finite losses, gradients reach E, D learns, 1 vs 4 devices, pmap, end to end."""
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import apply_overrides, load_config_file

from mono_ssl import config_lib, train
from mono_ssl import sharding as shd
from mono_ssl.augment import PatchGenerator
from mono_ssl.checkpoint import Checkpointer
from mono_ssl.data import pretrain_source
from mono_ssl.errors import UserInputError
from mono_ssl.methods import bigan
from mono_ssl.models import bigan as nets
from mono_ssl.models.alexnet import PAPER_CONVS, AlexNet


def tiny_bigan_config(**overrides):
  """Single-image BiGAN small enough for a test: 32 px, quarter-width E, 8-wide G and D."""
  c = config_lib.bigan_fields(config_lib.base_config("bigan", "single", "cpu"), "cpu")
  c.data.images = "default"
  c.data.max_side = 512
  c.model.width_mult = 0.25
  c.model.hidden = (32, 32)
  # E moves from step 0: these runs are a few steps long (e_start has its own test).
  c.bigan.update(dict(latent_dim=16, gen_width=8, disc_width=8, disc_z_hidden=32,
                      disc_joint_hidden=32, e_start=0.0))
  c.train.update(dict(batch_size=8, num_steps=4, log_every=2, ckpt_every=2, sample_every=2))
  c.probe.update(dict(dataset="bundled_cifar10", limit_per_class=20, epochs=1, batch_size=20,
                      eval_batch_size=100, target_dims=144, curve_every=0))
  apply_overrides(c, overrides)
  c.lock()
  return c


# Building a state and compiling a step cost seconds each on a 2-core CPU, so
# the tests share them: one state per device count (copied before each use,
# since steps donate it), one jitted step per device count, one set of patches.
_CONFIG = None


def _config():
  global _CONFIG
  if _CONFIG is None:
    # No weight decay: with it Adam moves every parameter even at zero gradient.
    _CONFIG = tiny_bigan_config(**{"train.weight_decay": 0.0})
  return _CONFIG


@functools.lru_cache(maxsize=None)
def _mesh_state_step(n_devices: int):
  mesh = shd.make_mesh(jax.devices()[:n_devices])
  state = bigan.create_state(_config(), 32, jax.random.key(0), mesh, 100)
  step = jax.jit(bigan.make_train_step(_config()), donate_argnums=0,
                 in_shardings=(shd.replicated(mesh), shd.batch_sharded(mesh), shd.replicated(mesh)),
                 out_shardings=(shd.replicated(mesh), shd.replicated(mesh)))
  return mesh, state, step


def _fresh(n_devices: int):
  """(mesh, a copy of the initial state, the jitted step) for the first n devices."""
  mesh, state, step = _mesh_state_step(n_devices)
  return mesh, jax.tree.map(lambda x: x.copy(), state), step


@functools.lru_cache(maxsize=None)
def _real_patches(num_batches: int = 3, batch: int = 8) -> np.ndarray:
  """(num_batches, batch, 32, 32, 3) patches of the default image, on the host."""
  source = pretrain_source(_config())
  gen = PatchGenerator(source.bank, source.aug, seed=0)
  return np.asarray(gen(jnp.arange(num_batches * batch))).reshape(num_batches, batch, 32, 32, 3)


def _on(mesh, images):
  return jax.device_put(images, shd.batch_sharded(mesh))


def test_configs_load_and_networks_have_the_documented_shapes():
  for scale, size, gen_size in (("cpu", 32, 32), ("paper", 224, 64)):
    c = load_config_file("bigan", f"regime=single,scale={scale}")
    assert c.method == "bigan" and c.aug.out_size == size and c.bigan.gen_size == gen_size
    assert c.train.sample_every > 0 and c.train.lr == 2e-4
    enc = train.build_model(c)
    assert isinstance(enc, AlexNet) and enc.num_classes == c.bigan.latent_dim
    z = jnp.zeros((2, c.bigan.latent_dim))
    g = nets.generator_from_config(c)
    out = jax.eval_shape(lambda g=g, z=z: g.init_with_output(jax.random.key(0), z)[0])
    assert out.shape == (2, gen_size, gen_size, 3)
    d = nets.discriminator_from_config(c)
    logits = jax.eval_shape(
        lambda d=d, z=z, s=out.shape: d.init_with_output(jax.random.key(0), jnp.zeros(s), z)[0])
    assert logits.shape == (2,)
  assert train.build_model(load_config_file("bigan", "scale=paper")).convs == PAPER_CONVS
  with pytest.raises(UserInputError, match="gen_size=48"):
    bigan.create_state(tiny_bigan_config(**{"bigan.gen_size": 48}), 32, jax.random.key(0),
                       shd.make_mesh(), 1)
  with pytest.raises(UserInputError, match=r"bigan.e_lr_mult=-1.0 must be >= 0"):
    bigan.create_state(tiny_bigan_config(**{"bigan.e_lr_mult": -1.0}), 32, jax.random.key(0),
                       shd.make_mesh(), 1)


def test_losses_finite_and_every_network_gets_gradients():
  mesh, state, step = _fresh(4)
  before = jax.device_get(state.params)
  for t in range(3):
    state, m = step(state, _on(mesh, _real_patches()[t]), jax.random.key(t))
    m = jax.device_get(m)
    assert set(m) >= {"loss", "d_loss", "g_loss", "d_acc_real", "d_acc_fake"}
    assert all(np.isfinite(float(v)) for v in m.values()), m
  after = jax.device_get(state.params)
  # The probed trunk (conv1..conv5) and E's code layer all moved: gradients reach E through D.
  for layer in ("conv1", "conv3", "conv5", "classifier"):
    for a, b in zip(jax.tree.leaves(before["encoder"][layer]),
                    jax.tree.leaves(after["encoder"][layer])):
      assert np.abs(a - b).max() > 0, layer
  for net in ("generator", "discriminator"):
    assert any(np.abs(a - b).max() > 0 for a, b in
               zip(jax.tree.leaves(before[net]), jax.tree.leaves(after[net]))), net


def test_discriminator_accuracy_leaves_chance_on_a_fixed_batch():
  # G and E are put back after every step (same shapes: no recompilation), so
  # D trains against fixed pairs and must learn to separate real from fake.
  mesh, state, step = _fresh(4)
  frozen = {k: state.params[k] for k in ("encoder", "generator")}
  frozen = jax.tree.map(lambda x: x.copy(), (frozen, state.ge_opt_state))
  images = _on(mesh, _real_patches()[0])
  history = []
  for t in range(30):
    state, m = step(state, images, jax.random.key(t))
    ge, ge_opt = jax.tree.map(lambda x: x.copy(), frozen)
    state = state.replace(params={**state.params, **ge}, ge_opt_state=ge_opt)
    history.append({k: float(v) for k, v in jax.device_get(m).items()})
  last = history[-5:]
  assert np.mean([(h["d_acc_real"] + h["d_acc_fake"]) / 2 for h in last]) > 0.8, history
  # DCGAN's N(0, 0.02) init keeps D's logits small at first, so its loss
  # falls slowly from log 4 while the accuracy is already far from 0.5.
  assert np.mean([h["d_loss"] for h in last]) < history[0]["d_loss"] - 0.03, history


def assert_same_on_one_and_four_devices(setup):
  """setup(n) -> (mesh, state, jitted step): three steps on the same patches give the same
  parameters, statistics and metrics on 1 and on 4 devices."""
  results = []
  for n in (1, 4):
    mesh, state, step = setup(n)
    for t in range(3):
      state, m = step(state, _on(mesh, _real_patches()[t]), jax.random.key(t))
    results.append(jax.device_get((state.params, state.batch_stats, m)))
  for a, b in zip(jax.tree.leaves(results[0]), jax.tree.leaves(results[1])):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_same_parameters_on_one_and_four_devices():
  assert_same_on_one_and_four_devices(_fresh)


def test_step_under_pmap_with_axis_name_matches_jit():
  # Dropout off: under pmap each device draws its own masks (see make_train_step).
  config = tiny_bigan_config(**{"train.weight_decay": 0.0, "bigan.disc_dropout": 0.0})
  mesh, state, _ = _fresh(1)
  state = bigan.with_networks(state, config)
  images = _on(mesh, _real_patches()[0])
  step = jax.jit(bigan.make_train_step(config))
  jit_state, jit_m = step(jax.tree.map(lambda x: x.copy(), state), images, jax.random.key(0))

  assert_pmap_matches_jit(config, state, [np.asarray(images)], jit_state, jit_m, rtol=1e-5)


def assert_pmap_matches_jit(config, state, batches, jit_state, jit_m, rtol):
  """The pmap step over 4 devices (2 patches each), from `state` through `batches` with keys
  0, 1, ..., ends where the jitted step did: the last metrics and every parameter."""
  # Host copies: pmap places them itself.
  pstate = jax.tree.map(lambda x: np.stack([np.asarray(x)] * 4),
                        bigan.with_networks(state, config, axis_name="batch"))
  pstep = jax.pmap(bigan.make_train_step(config, axis_name="batch"), axis_name="batch")
  for t, images in enumerate(batches):
    keys = np.stack([np.asarray(jax.random.key_data(jax.random.key(t)))] * 4)
    pstate, p_m = pstep(pstate, images.reshape(4, 2, *images.shape[1:]),
                        jax.random.wrap_key_data(keys))
  for k in ("d_loss", "g_loss", "d_acc_real", "d_acc_fake"):
    np.testing.assert_allclose(float(p_m[k][0]), float(jit_m[k]), rtol=rtol, atol=rtol / 10)
  for a, b in zip(jax.tree.leaves(jax.device_get((jit_state.params, jit_state.batch_stats))),
                  jax.tree.leaves(jax.device_get((pstate.params, pstate.batch_stats)))):
    np.testing.assert_allclose(a, b[0], rtol=2e-4, atol=2e-5)


def test_end_to_end_writes_grids_and_probes_then_probe_only_run_restores_it(tmp_path):
  # No random-init arm: the probes are the slow part, and test_train covers that arm.
  config = tiny_bigan_config(**{"probe.random_baseline": False})
  results = train.train_and_evaluate(config, tmp_path / "pre", log=lambda s: None)
  pre = tmp_path / "pre"
  saved = json.loads((pre / "probe_results.json").read_text())
  assert saved["method"] == "bigan" and saved["trained"] == results["trained"]
  assert set(saved["trained"]) == {"conv1", "conv2", "conv3", "conv4", "conv5"}
  for step in (2, 4):  # sample_every=2, 4 steps
    for kind in ("samples", "recon"):
      assert (pre / f"{kind}_{step}.png").stat().st_size > 0, (kind, step)
  records = [json.loads(l) for l in (pre / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [2, 4] and "d_acc_real" in records[0]
  assert (pre / bigan.GAN_CURVES).stat().st_size > 0  # D's accuracy and the losses against step

  # Probe only: init_from the BiGAN workdir, no training.
  probe_config = tiny_bigan_config(**{"init_from": str(pre), "train.num_steps": 0,
                                      "probe.random_baseline": False})
  logs = []
  probed = train.train_and_evaluate(probe_config, tmp_path / "probe", log=logs.append)
  assert any("initialised from" in l and "step 4" in l for l in logs)
  assert not any(l.startswith("step ") for l in logs)  # no training step ran
  assert set(probed["trained"]) == {"conv1", "conv2", "conv3", "conv4", "conv5"}
  # The probe-only run holds the pretrained BiGAN, not a fresh init.
  trained, restored = (_restore(d / "checkpoints") for d in (pre, tmp_path / "probe"))
  assert int(trained.step) == int(restored.step) == 4
  for a, b in zip(jax.tree.leaves(trained.params), jax.tree.leaves(restored.params)):
    np.testing.assert_array_equal(a, b)


def _restore(directory):
  """The latest checkpoint in `directory`, restored into the shape of the shared tiny state."""
  ckpt = Checkpointer(directory)
  try:
    return jax.device_get(ckpt.restore(_fresh(4)[1]))
  finally:
    ckpt.close()


def test_standardised_codes_have_the_priors_marginals_and_global_statistics():
  logits = jax.random.normal(jax.random.key(0), (4096, 3)) * jnp.array([5.0, 0.1, 2.0]) + 3.0
  codes = np.asarray(nets.code_from_logits(logits, "uniform", standardise=True))
  assert np.abs(codes).max() < 1.0
  for d in range(3):  # uniform on (-1, 1) whatever the logits' scale and offset
    hist = np.histogram(codes[:, d], bins=4, range=(-1, 1))[0] / len(codes)
    np.testing.assert_allclose(hist, 0.25, atol=0.03)
  normal = np.asarray(nets.code_from_logits(logits, "normal", standardise=True))
  np.testing.assert_allclose(normal.mean(0), 0.0, atol=1e-4)
  np.testing.assert_allclose(normal.std(0), 1.0, atol=1e-3)
  # Under pmap the statistics are the global batch's, so devices agree with one big batch.
  per_device = jax.pmap(lambda l: nets.code_from_logits(l, "uniform", True, axis_name="d"),
                        axis_name="d")(logits.reshape(4, 1024, 3))
  np.testing.assert_allclose(np.asarray(per_device).reshape(4096, 3), codes, atol=1e-4)


def _first_steps(num_steps: int, **overrides):
  """(params before, params after `num_steps` steps) of a fresh 1-device tiny BiGAN."""
  config = tiny_bigan_config(**{"train.weight_decay": 0.0, **overrides})
  mesh = shd.make_mesh(jax.devices()[:1])
  state = bigan.create_state(config, 32, jax.random.key(0), mesh, config.train.num_steps)
  before = jax.device_get(state.params)
  step = jax.jit(bigan.make_train_step(config))
  metrics = []
  for t in range(num_steps):
    state, m = step(state, _on(mesh, _real_patches()[t % 3]), jax.random.key(t))
    metrics.append(jax.device_get(m))
  return before, jax.device_get(state.params), metrics


def _moved(before, after) -> bool:
  return any(np.abs(a - b).max() > 0 for a, b in
             zip(jax.tree.leaves(before), jax.tree.leaves(after)))


def test_unary_scores_give_d_three_read_outs_and_train_them():
  config = tiny_bigan_config(**{"bigan.unary_scores": True})
  d = nets.discriminator_from_config(config)
  x, z = jnp.zeros((5, 32, 32, 3)), jnp.zeros((5, config.bigan.latent_dim))
  scores, variables = d.init_with_output(jax.random.key(0), x, z)
  assert scores.shape == (5, 3) and {"x_out", "z_out", "joint_out"} <= set(variables["params"])
  before, after, metrics = _first_steps(2, **{"bigan.unary_scores": True})
  assert all(np.isfinite(float(v)) for m in metrics for v in m.values()), metrics
  # log 2 per score at D's near-zero initial logits: three scores, 2 log 2 each side.
  assert abs(float(metrics[0]["d_loss"]) - 6 * np.log(2)) < 0.1, metrics[0]
  for head in ("x_out", "z_out", "joint_out"):
    assert _moved(before["discriminator"][head], after["discriminator"][head]), head
  assert _moved(before["encoder"], after["encoder"])


def test_encoder_waits_for_e_start_while_g_and_d_train():
  # num_steps=4, e_start=0.5: E is still at its initialisation after steps 0 and 1.
  before, after, _ = _first_steps(2, **{"bigan.e_start": 0.5})
  assert not _moved(before["encoder"], after["encoder"])
  assert _moved(before["generator"], after["generator"])
  assert _moved(before["discriminator"], after["discriminator"])
  _, after3, _ = _first_steps(3, **{"bigan.e_start": 0.5})
  assert _moved(before["encoder"]["conv1"], after3["encoder"]["conv1"])
  with pytest.raises(UserInputError, match=r"bigan.e_start=1.0 must be a fraction"):
    bigan.create_state(tiny_bigan_config(**{"bigan.e_start": 1.0}), 32, jax.random.key(0),
                       shd.make_mesh(), 1)


def test_encoder_sgd_steps_follow_the_gradient_not_its_sign():
  # Same batch and key: Adam's first step is -lr * sign(g) for every weight,
  # SGD's is -c * g, so the two agree in sign while only SGD's sizes vary.
  before, adam, _ = _first_steps(1)
  _, sgd, _ = _first_steps(1, **{"bigan.e_optimizer": "sgd", "bigan.e_lr_mult": 100.0})
  w0 = before["encoder"]["conv1"]["kernel"]
  d_adam, d_sgd = adam["encoder"]["conv1"]["kernel"] - w0, sgd["encoder"]["conv1"]["kernel"] - w0
  assert np.abs(d_adam).max() <= 2e-4 * 1.001
  big = np.abs(d_adam) > 0.9 * 2e-4  # gradients well above Adam's epsilon: steps of ~lr
  assert big.mean() > 0.5, big.mean()
  size = np.abs(d_sgd[big])
  assert size.max() > 5 * np.median(size)  # proportional to |g|, not constant
  # Where |g| is not tiny (two compiled programs may round the smallest ones
  # to the other sign), both step against the same gradient.
  clear = size > np.median(size)
  assert (np.sign(d_sgd[big][clear]) == np.sign(d_adam[big][clear])).mean() > 0.99
  # G keeps Adam: its first step is the same under both encoder optimisers.
  for a, b in zip(jax.tree.leaves(adam["generator"]), jax.tree.leaves(sgd["generator"])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  with pytest.raises(UserInputError, match="bigan.e_optimizer='rmsprop'"):
    bigan.create_state(tiny_bigan_config(**{"bigan.e_optimizer": "rmsprop"}), 32,
                       jax.random.key(0), shd.make_mesh(), 1)


def test_icnr_generator_starts_as_nearest_neighbour_upsampling():
  config = tiny_bigan_config(**{"bigan.gen_icnr": True})
  g = nets.generator_from_config(config)
  z = jax.random.normal(jax.random.key(1), (4, config.bigan.latent_dim))
  images, variables = g.init_with_output(jax.random.key(0), z)
  # The last stage's four sub-pixel positions share filters: every 2x2 block is one colour.
  for di, dj in ((0, 1), (1, 0), (1, 1)):
    np.testing.assert_array_equal(images[:, di::2, dj::2], images[:, 0::2, 0::2])
  # DCGAN's N(0, 0.02) init keeps G's first images within ~1e-4 of grey, but not constant.
  assert float(jnp.std(images)) > 1e-6
  # Without ICNR the sub-pixel positions differ (the checkerboard at the start).
  plain = nets.generator_from_config(tiny_bigan_config()).init_with_output(
      jax.random.key(0), z)[0]
  assert float(jnp.abs(plain[:, 1::2, 1::2] - plain[:, 0::2, 0::2]).max()) > 1e-6
  kernel = variables["params"]["up1"]["kernel"]
  c = kernel.shape[-1] // 4
  for k in range(1, 4):
    np.testing.assert_array_equal(kernel[..., k * c:(k + 1) * c], kernel[..., :c])


def test_workdir_of_a_run_made_before_the_new_options_is_still_accepted(tmp_path):
  config = tiny_bigan_config()
  saved = json.loads(config.to_json())
  for field in ("unary_scores", "e_start", "e_optimizer", "gen_icnr", "disc_mbstd", "r1_gamma"):
    del saved["bigan"][field]  # a config.json written before these options existed
  (tmp_path / "config.json").write_text(json.dumps(saved))
  (tmp_path / "metrics.jsonl").write_text("{}\n")  # outputs: the config binds the workdir
  train.check_workdir(config, tmp_path, log=lambda s: None)  # the old behaviour: accepted
  (tmp_path / "config.json").write_text(json.dumps(saved))
  with pytest.raises(UserInputError, match=r"bigan.e_optimizer: None -> 'sgd'"):
    train.check_workdir(tiny_bigan_config(**{"bigan.e_optimizer": "sgd"}), tmp_path,
                        log=lambda s: None)



def test_a_run_whose_e_start_is_a_fraction_of_its_length_is_not_extended(tmp_path):
  # E's start step is e_start x train.num_steps: a longer run would have moved E later.
  (tmp_path / "config.json").write_text(tiny_bigan_config(**{"bigan.e_start": 0.5}).to_json())
  (tmp_path / "metrics.jsonl").write_text("{}\n")
  longer = tiny_bigan_config(**{"bigan.e_start": 0.5, "train.num_steps": 40})
  with pytest.raises(UserInputError, match=r"cannot extend this run \(bigan.e_start=0.5"):
    train.check_workdir(longer, tmp_path, log=lambda s: None)
  (tmp_path / "config.json").write_text(tiny_bigan_config().to_json())  # E moves at once
  train.check_workdir(tiny_bigan_config(**{"train.num_steps": 40}), tmp_path, log=lambda s: None)

def test_minibatch_std_sees_each_group_alone_and_flags_a_collapsed_one():
  h = jax.random.normal(jax.random.key(0), (8, 4, 4, 5))
  collapsed = h.at[4:].set(h[4])  # the second group of 4: one image repeated
  s = nets.minibatch_std(collapsed, 4)
  assert s.shape == (8, 4, 4, 1)
  np.testing.assert_allclose(s[4:], 1e-4, rtol=1e-3)  # sqrt(0 + 1e-8)
  with pytest.raises(UserInputError, match=r"bigan.disc_mbstd=4 does not divide .* \(6 = real"):
    nets.minibatch_std(h[:6], 4)  # e.g. a per-device batch under jax.pmap
  expected = jnp.mean(jnp.sqrt(jnp.var(h[:4], axis=0) + 1e-8))
  np.testing.assert_allclose(s[:4], expected, rtol=1e-5)  # the first group: its own spread only
  # D reads that channel: the same images with a collapsed partner group score differently.
  config = tiny_bigan_config(**{"bigan.disc_mbstd": 4})
  d = nets.discriminator_from_config(config)
  x = jax.random.uniform(jax.random.key(1), (8, 32, 32, 3))
  z = jnp.zeros((8, config.bigan.latent_dim))
  variables = d.init(jax.random.key(0), x, z)
  variables = jax.tree.map(lambda a: a * 10, variables)  # away from DCGAN's near-zero init
  a = d.apply(variables, x, z)
  b = d.apply(variables, x.at[4:].set(x[4]), z)
  assert float(jnp.abs(a[4] - b[4])) > 1e-3
  np.testing.assert_allclose(a[:4], b[:4], rtol=1e-6)  # other groups untouched
  with pytest.raises(UserInputError, match=r"bigan.disc_mbstd=3 must be 0 \(off\) or divide"):
    bigan.create_state(tiny_bigan_config(**{"bigan.disc_mbstd": 3}), 32, jax.random.key(0),
                       shd.make_mesh(), 1)


def test_r1_penalises_ds_input_gradient_on_real_pairs_and_moves_only_d():
  # Two steps so that D's weights are off their near-zero init and R1 is not ~0.
  before, plain, m_plain = _first_steps(2)
  _, r1, m_r1 = _first_steps(2, **{"bigan.r1_gamma": 10.0})
  assert "r1" in m_r1[0] and "r1" not in m_plain[0]
  # Step 0 is the same forward pass: D's loss differs by exactly the penalty.
  np.testing.assert_allclose(m_r1[0]["d_loss"] - m_plain[0]["d_loss"], m_r1[0]["r1"],
                             rtol=1e-4, atol=1e-7)
  assert m_r1[1]["r1"] > 0
  assert _moved(plain["discriminator"], r1["discriminator"])
  # The penalty is D's alone: after one step (same D before it) G and E are unchanged.
  _, plain1, _ = _first_steps(1)
  _, r1_1, _ = _first_steps(1, **{"bigan.r1_gamma": 10.0})
  for side in ("generator", "encoder"):
    for a, b in zip(jax.tree.leaves(plain1[side]), jax.tree.leaves(r1_1[side])):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  with pytest.raises(UserInputError, match=r"bigan.r1_gamma=-1.0 must be >= 0"):
    bigan.create_state(tiny_bigan_config(**{"bigan.r1_gamma": -1.0}), 32, jax.random.key(0),
                       shd.make_mesh(), 1)
