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
           "bigan.decay_gains": False, "bigan.standardise_codes": False,
           "bigan.encoder_init_fan_in": 4096, "bigan.disc_input": "unit",
           "bigan.gen_z_every_layer": True}


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
  assert (b.encoder_init_fan_in, b.disc_input, b.gen_z_every_layer) == (4096, "unit", True)
  cpu_recipe = load_config_file("bigan", "regime=single,scale=cpu,recipe=cpu")
  assert cpu_recipe.bigan.disc_arch == "joint_mlp" and cpu_recipe.train.num_steps == 2500


def test_default_is_donahues_recipe_run_past_its_dip_with_a_curve():
  # The default config is the recipe and length the curves support (results/bigan_long30):
  # the donahue recipe, 30k steps at CPU scale with a curve point every 2,500; paper keeps 100 epochs.
  for scale in ("cpu", "mini"):
    c = load_config_file("bigan", f"regime=single,scale={scale}")
    assert (c.bigan.disc_arch, c.bigan.encoder_head, c.bigan.e_start) == ("donahue", "linear", 0.0)
    assert c.train.num_steps == 30_000 and c.train.lr_boundaries == ()
    assert c.probe.curve_every == c.train.sample_every == 2500
  paper = load_config_file("bigan", "regime=single,scale=paper")
  assert paper.bigan.disc_arch == "donahue" and paper.train.num_steps > 500_000
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


@pytest.mark.parametrize("side,cin,cout", [(32, 3, 8), (8, 16, 12), (6, 4, 4)])
def test_space_to_depth_conv_equals_the_5x5_stride_2_conv_and_its_gradients(side, cin, cout):
  # D's convs run as a 3x3 conv of the space-to-depth map (XLA:CPU's strided-conv gradient
  # is ~4x slower); the result and both gradients must be the plain conv's.
  x = jax.random.normal(jax.random.key(0), (2, side, side, cin))
  w = jax.random.normal(jax.random.key(1), (5, 5, cin, cout))
  probe = jax.random.normal(jax.random.key(2), (2, side // 2, side // 2, cout))

  def plain(x, w):
    return jax.lax.conv_general_dilated(x, w, (2, 2), ((2, 2), (2, 2)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  np.testing.assert_allclose(nets.space_to_depth_conv5(x, w), plain(x, w), atol=1e-4, rtol=1e-5)
  grads = [jax.grad(lambda x, w, f=f: jnp.sum(f(x, w) * probe), argnums=(0, 1))(x, w)
           for f in (nets.space_to_depth_conv5, plain)]
  for a, b in zip(*grads):
    np.testing.assert_allclose(a, b, atol=1e-3, rtol=1e-4)
  with pytest.raises(ValueError, match="even sides"):
    nets.space_to_depth_conv5(x[:, :-1], w)


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


def test_encoder_codes_start_with_donahues_spread_near_the_priors():
  # His head: N(0, 0.02) over 4,096 conv5 features. Over the CPU trunk's 64 pool5 features
  # the same init gives codes ~5x narrower than the uniform prior's (std 0.577), and D
  # then tells real pairs by z alone (it won by step 50); the fan-in scaling restores it.
  c = load_config_file("bigan", "regime=single,scale=cpu,recipe=donahue")
  x = jnp.asarray(_real_patches(1, 128)[0])
  stds = {}
  for fan_in in (0, 4096):
    c.bigan.encoder_init_fan_in = fan_in
    enc = nets.encoder_from_config(c)
    v = enc.init(jax.random.key(0), x, train=False)
    k = v["params"]["classifier"]["kernel"]
    want = 0.02 * (np.sqrt(fan_in / k.shape[0]) if fan_in else 1.0)
    assert float(jnp.std(k)) == pytest.approx(want, rel=0.1)
    (logits, _), _ = enc.apply(v, bigan.normalise(x), train=True, mutable=["batch_stats"])
    stds[fan_in] = float(jnp.std(nets.code_from_logits(bigan._code_logits(logits, True),
                                                       "uniform")))
  assert stds[0] < 0.2 and 0.4 < stds[4096] < 0.75, stds


def test_d_reads_images_in_minus_one_to_one_and_the_step_passes_them():
  x = jnp.linspace(0.0, 1.0, 12).reshape(1, 2, 2, 3)
  np.testing.assert_allclose(np.asarray(bigan.disc_view(x, "unit")), 2 * np.asarray(x) - 1)
  np.testing.assert_allclose(np.asarray(bigan.disc_view(x, "imagenet")),
                             np.asarray(bigan.normalise(x)))
  # The step hands D that view: D's first update differs between the two scalings.
  d_updates = {}
  for view in ("unit", "imagenet"):
    c = donahue_config(**{"bigan.disc_input": view})
    mesh = shd.make_mesh(jax.devices()[:1])
    state = bigan.create_state(c, 32, jax.random.key(0), mesh, 10)
    new, m = jax.jit(bigan.make_train_step(c))(state, jnp.asarray(_real_patches(1, 16)[0]),
                                          jax.random.key(1))
    d_updates[view] = jax.tree.map(lambda a, b: a - b, new.params["discriminator"],
                                   state.params["discriminator"])
    assert 0.0 < float(m["e_code_std"]) < 1.0
  diff = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), d_updates["unit"],
                      d_updates["imagenet"])
  assert max(jax.tree.leaves(diff)) > 1e-6
  with pytest.raises(UserInputError, match="bigan.disc_input='rgb'"):
    bigan.create_state(donahue_config(**{"bigan.disc_input": "rgb"}), 32, jax.random.key(0),
                       shd.make_mesh(), 1)


def test_g_takes_z_at_every_hidden_layer_as_a_per_channel_bias():
  c = donahue_config()
  g = nets.generator_from_config(c)
  z = jax.random.uniform(jax.random.key(0), (4, c.bigan.latent_dim), minval=-1, maxval=1)
  v = g.init(jax.random.key(1), z)
  n = nets.num_doublings(c.bigan.gen_size)
  maps = {k: p["kernel"] for k, p in v["params"].items() if k.startswith("z_to_up")}
  assert sorted(maps) == [f"z_to_up{i + 1}" for i in range(n - 1)]  # hidden layers, not the output
  for i in range(n - 1):
    assert maps[f"z_to_up{i + 1}"].shape == (c.bigan.latent_dim, c.bigan.gen_width * 2 ** (n - 2 - i))
  # With G's input layer silenced z still shapes the image, through those maps only.
  silent = {**v["params"], "fc": {"kernel": jnp.zeros_like(v["params"]["fc"]["kernel"])}}

  def out(z, params):
    return g.apply({**v, "params": params}, z, train=True, mutable=["batch_stats"])[0].sum()

  assert float(jnp.abs(jax.grad(out)(z, silent)).max()) > 1e-4
  none = {**silent, **{k: {"kernel": jnp.zeros_like(m)} for k, m in maps.items()}}
  assert float(jnp.abs(jax.grad(out)(z, none)).max()) == 0.0
  plain = nets.generator_from_config(donahue_config(**{"bigan.gen_z_every_layer": False}))
  assert not any(k.startswith("z_to") for k in plain.init(jax.random.key(1), z)["params"])


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
