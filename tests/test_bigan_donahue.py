"""Donahue's BiGAN (recipe=donahue): his D's pieces against references, his E head, his losses,
and the 1-vs-4-device and pmap equalities with batch norm in D."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config_file
from test_bigan import (
  _on,
  _real_patches,
  assert_pmap_matches_jit,
  assert_same_on_one_and_four_devices,
  tiny_bigan_config,
)

from mono_ssl import sharding as shd
from mono_ssl.errors import UserInputError
from mono_ssl.methods import bigan
from mono_ssl.models import bigan as nets

DONAHUE = {"bigan.disc_arch": "donahue", "bigan.encoder_head": "linear", "bigan.loss_scale": 0.5,
           "bigan.decay_gains": False, "bigan.standardise_codes": False}


def donahue_config(**overrides):
  return tiny_bigan_config(**{**DONAHUE, "train.weight_decay": 0.0, **overrides})


def _with_random_readout(params, key=3):
  """D's zero-initialised read-out replaced by random weights, so its logits depend on x and z."""
  out = params["out"]["kernel"]
  return {**params, "out": {"kernel": 0.1 * jax.random.normal(jax.random.key(key), out.shape)}}


def test_recipe_sets_donahues_fields():
  c = load_config_file("bigan", "regime=single,scale=cpu,recipe=donahue")
  b = c.bigan
  assert (b.disc_arch, b.disc_bn, b.disc_cat_inputs, b.encoder_head) == ("donahue", True, False,
                                                                          "linear")
  assert (b.loss_scale, b.decay_gains, b.standardise_codes, b.e_start) == (0.5, False, False, 0.0)
  assert load_config_file("bigan", "regime=single,scale=cpu").bigan.disc_arch == "joint_mlp"
  with pytest.raises(UserInputError, match="recipe='donahoe'"):
    load_config_file("bigan", "recipe=donahoe")
  with pytest.raises(UserInputError, match="bigan.disc_arch='mlp'"):
    bigan.create_state(tiny_bigan_config(**{"bigan.disc_arch": "mlp"}), 32, jax.random.key(0),
                       shd.make_mesh(), 1)


def test_batch_stat_norm_matches_numpy():
  x = np.random.default_rng(0).normal(2.0, 3.0, (6, 4, 4, 5)).astype(np.float32)
  norm = nets.BatchStatNorm()
  v = norm.init(jax.random.key(0), x)
  gain, bias = np.linspace(0.5, 1.5, 5), np.linspace(-1, 1, 5)
  v = {"params": {"scale": jnp.asarray(gain, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}}
  mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))  # biased variance, as Donahue's
  want = (x - mean) / np.sqrt(var + 1e-8) * gain + bias
  np.testing.assert_allclose(np.asarray(norm.apply(v, x)), want, rtol=1e-5, atol=1e-5)
  assert "batch_stats" not in v  # no running averages: D is only used with batch statistics
  # bf16 compute: the statistics are still reduced in float32 (mean 20, sd 1: E[x^2] - mean^2
  # in bf16 would lose the variance entirely).
  xb = jnp.asarray(np.random.default_rng(1).normal(20.0, 1.0, (64, 4, 4, 5)), jnp.bfloat16)
  xf = np.asarray(xb, np.float32)
  want = (xf - xf.mean((0, 1, 2))) / np.sqrt(xf.var((0, 1, 2)) + 1e-8) * gain + bias
  got = norm.apply(v, xb)
  assert got.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(got, np.float32), want, atol=0.05)


def test_d_is_five_by_five_stride_two_with_z_entering_from_conv2():
  d = nets.DonahueDiscriminator(width=8)
  x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
  z = jax.random.uniform(jax.random.key(1), (4, 16), minval=-1, maxval=1)
  params = d.init(jax.random.key(2), x, z)["params"]
  assert params["conv1"]["kernel"].shape == (5, 5, 3, 8) and "bias" not in params["conv1"]
  assert "z_to_conv1" not in params and "conv1_bn" not in params  # conv1: no z, no BN
  assert params["z_to_conv2"]["kernel"].shape == (16, 16)
  assert params["z_to_conv3"]["kernel"].shape == (16, 32)
  assert params["out"]["kernel"].shape == (4 * 4 * 32, 1) and "bias" not in params["out"]
  # z's projections start at N(0, 0.02 * 5^2) = N(0, 0.5), Donahue's conditioning init.
  assert 0.4 < float(jnp.std(params["z_to_conv3"]["kernel"])) < 0.6
  # D(x, z) = 0.5 for every pair at init: the read-out is zero.
  assert np.all(np.asarray(d.apply({"params": params}, x, z)) == 0.0)
  p = _with_random_readout(params)
  grad_z = jax.grad(lambda z: d.apply({"params": p}, x, z).sum())(z)
  assert float(jnp.abs(grad_z).max()) > 1e-4  # z conditions D ...
  silent = {**p, **{k: {"kernel": jnp.zeros_like(v["kernel"])} for k, v in p.items()
                    if k.startswith("z_to_")}}
  grad_silent = jax.grad(lambda z: d.apply({"params": silent}, x, z).sum())(z)
  assert float(jnp.abs(grad_silent).max()) == 0.0  # ... only through its per-layer projections


def test_d_nonlinearity_is_leaky_relu_0_2():
  # 8 px: one conv (no BN, no z) and the read-out, so D(x) = w . leaky_relu(conv(x)).
  d = nets.DonahueDiscriminator(width=4)
  x, z = jnp.ones((1, 8, 8, 3)), jnp.zeros((1, 16))
  params = d.init(jax.random.key(0), x, z)["params"]
  params["out"] = {"kernel": jnp.ones_like(params["out"]["kernel"])}
  pos = {**params, "conv1": {"kernel": jnp.full_like(params["conv1"]["kernel"], 0.01)}}
  neg = {**params, "conv1": {"kernel": jnp.full_like(params["conv1"]["kernel"], -0.01)}}
  a, b = float(d.apply({"params": pos}, x, z)[0]), float(d.apply({"params": neg}, x, z)[0])
  assert a > 0 and b == pytest.approx(-0.2 * a, rel=1e-5)


@pytest.mark.parametrize("separate", [True, False])
def test_real_scores_do_not_depend_on_the_generated_half_when_batches_are_separate(separate):
  d = nets.DonahueDiscriminator(width=8)
  k = jax.random.split(jax.random.key(0), 4)
  real = (jax.random.normal(k[0], (8, 32, 32, 3)), jax.random.uniform(k[1], (8, 16)))
  fake1 = (jax.random.normal(k[2], (8, 32, 32, 3)), jax.random.uniform(k[3], (8, 16)))
  fake2 = (3.0 * fake1[0] + 1.0, -fake1[1])  # other statistics altogether
  p = _with_random_readout(d.init(jax.random.key(1), *real)["params"])
  r1, f1 = bigan.disc_scores(d.apply, p, real, fake1, separate, jax.random.key(2))
  r2, _ = bigan.disc_scores(d.apply, p, real, fake2, separate, jax.random.key(2))
  if separate:  # Donahue's default: each half normalised by its own statistics
    np.testing.assert_array_equal(np.asarray(r1), np.asarray(r2))
    alone = d.apply({"params": p}, *fake1)
    np.testing.assert_allclose(np.asarray(f1), np.asarray(alone), rtol=1e-6)
  else:  # --cat_inputs: one BN batch couples them (the control: the test can tell)
    assert float(jnp.abs(r1 - r2).max()) > 1e-3


def test_encoder_head_is_one_bias_free_map_to_z_squashed_as_2_sigmoid_minus_1():
  c = donahue_config()
  enc = nets.encoder_from_config(c)
  assert enc.hidden == () and not enc.classifier_bias
  v = enc.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)))
  assert not any(k.startswith("fc") for k in v["params"])  # no fc6 / fc7
  assert set(v["params"]["classifier"]) == {"kernel"}
  a = jnp.linspace(-6, 6, 25)
  codes = nets.code_from_logits(bigan._code_logits(a, True), "uniform")
  np.testing.assert_allclose(np.asarray(codes), np.asarray(2 * jax.nn.sigmoid(a) - 1), atol=1e-6)


def test_gains_are_not_decayed_and_everything_else_is():
  mesh = shd.make_mesh(jax.devices()[:1])
  state = bigan.create_state(donahue_config(), 32, jax.random.key(0), mesh, 10)
  mask = bigan._not_gains(state.params)
  flat = jax.tree_util.tree_flatten_with_path(mask)[0]
  names = {"/".join(str(getattr(k, "key", "")) for k in path): m for path, m in flat}
  assert names["discriminator/conv2_bn/scale"] is False
  assert names["encoder/conv1_bn/scale"] is False
  assert names["discriminator/conv2_bn/bias"] is True and names["encoder/conv1/kernel"] is True
  assert names["discriminator/z_to_conv2/kernel"] is True


@functools.lru_cache(maxsize=None)
def _state_step(n_devices: int):
  mesh = shd.make_mesh(jax.devices()[:n_devices])
  c = donahue_config()
  state = bigan.create_state(c, 32, jax.random.key(0), mesh, 100)
  step = jax.jit(bigan.make_train_step(c),
                 in_shardings=(shd.replicated(mesh), shd.batch_sharded(mesh), shd.replicated(mesh)),
                 out_shardings=(shd.replicated(mesh), shd.replicated(mesh)))
  return mesh, state, step


def test_first_step_losses_are_log_2_as_donahues_logged_0_6932():
  mesh, state, step = _state_step(4)
  _, m = step(state, _on(mesh, _real_patches()[0]), jax.random.key(0))
  assert float(m["d_loss"]) == pytest.approx(np.log(2), abs=1e-6)
  assert float(m["g_loss"]) == pytest.approx(np.log(2), abs=1e-6)


def test_donahue_d_same_parameters_on_one_and_four_devices():
  assert_same_on_one_and_four_devices(_state_step)  # its step does not donate the cached state


def test_donahue_step_under_pmap_with_axis_name_matches_jit():
  # D's batch statistics under pmap are averaged over the axis: the same as jit's global batch.
  config = donahue_config()
  mesh, state, step = _state_step(1)
  images = _on(mesh, _real_patches()[0])
  jit_state, _ = step(jax.tree.map(lambda x: x.copy(), state), images, jax.random.key(0))
  jit_state, jit_m2 = step(jit_state, _on(mesh, _real_patches()[1]), jax.random.key(1))
  assert_pmap_matches_jit(config, state, [np.asarray(_real_patches()[t]) for t in (0, 1)],
                          jit_state, jit_m2, rtol=1e-4)
