"""ScatNet: coefficient counts and shapes, zero-mean wavelets, invariance to small shifts, the trunk interface."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, load_config_file
from PIL import Image

from mono_ssl import scatnet
from mono_ssl import sharding as shd
from mono_ssl.errors import UserInputError
from mono_ssl.images import DEFAULT_IMAGE
from mono_ssl.methods import scatnet as scatnet_method
from mono_ssl.train_state import normalise


def test_matches_kymatio():
  # tests/data/kymatio_scattering2d_J2_L8_16px.npz: kymatio 0.3.0's numpy Scattering2D(J=2,
  # shape=(16, 16), L=8) of x = default_rng(0).random((1, 3, 16, 16)) (made with
  # scipy.special.sph_harm stubbed: kymatio's unused 3-D module imports it, SciPy >= 1.15 lacks it).
  ref = np.load(REPO / "tests" / "data" / "kymatio_scattering2d_J2_L8_16px.npz")
  s0, s1, s2 = scatnet.scattering(jnp.asarray(np.moveaxis(ref["x"], 1, -1)), J=2, L=8)
  ours = np.concatenate([np.asarray(o).reshape(1, 4, 4, 3, -1) for o in (s0, s1, s2)], axis=-1)
  np.testing.assert_allclose(np.moveaxis(ours, (1, 2), (3, 4)), ref["s"], atol=1e-4)


@pytest.mark.parametrize("J,size,per_channel", [(2, 32, 81), (3, 32, 217)])
def test_output_shapes_and_coefficient_counts(J, size, per_channel):
  x = jnp.asarray(np.random.default_rng(0).random((2, size, size, 3), np.float32))
  _, feats = scatnet.ScatNet(J=J, L=8).apply({}, x, train=False, head=False)
  n0, n1, n2 = scatnet.num_coefficients(J, 8)
  assert n0 + n1 + n2 == per_channel  # 1 + JL + L^2 J (J-1) / 2
  side = size // 2**J
  assert feats["conv1"].shape == (2, side, side, 3 * (n0 + n1))
  assert feats["conv2"].shape == (2, side, side, 3 * per_channel)
  np.testing.assert_array_equal(feats["conv1"], feats["conv2"][..., :3 * (n0 + n1)])
  assert bool(jnp.all(feats["conv2"][..., 3:] >= 0))  # orders 1-2 are averaged moduli


def test_a_constant_image_has_only_its_average():
  # Morlet wavelets have zero mean: nothing of a constant survives |x * psi|.
  s0, s1, s2 = scatnet.scattering(jnp.full((1, 32, 32, 3), 0.7), J=2, L=8)
  np.testing.assert_allclose(s0, 0.7, rtol=1e-4)
  assert float(jnp.max(s1)) < 1e-4 and float(jnp.max(s2)) < 1e-4


@pytest.mark.parametrize("J,shift", [(2, 1), (2, 2), (3, 1), (3, 2)])
def test_small_translations_barely_change_the_coefficients(J, shift):
  img = np.asarray(Image.open(DEFAULT_IMAGE).convert("RGB").resize((128, 85)), np.float32) / 255
  a, b = img[10:42, 20:52], img[10:42, 20 + shift:52 + shift]  # the same scene moved by `shift` px
  x = normalise(jnp.asarray(np.stack([a, b])))
  s = np.asarray(scatnet.ScatNet(J=J).apply({}, x)[1]["conv2"])

  def rel(u):
    return np.linalg.norm(u[0] - u[1]) / np.linalg.norm(u[0])

  raw, scat = rel(np.asarray(x)), rel(s)
  assert raw > 0.5  # the pixels themselves change a lot
  assert scat < 0.35 * raw, (raw, scat)


def test_the_method_wraps_it_as_a_trunk_with_nothing_to_train():
  config = load_config_file("scatnet", "scale=cpu")
  assert config.train.num_steps == 0 and tuple(config.probe.layers) == ("conv1", "conv2")
  mesh = shd.make_mesh()
  state = scatnet_method.create_state(config, 32, jax.random.key(0), mesh, 0)
  apply_fn, variables = scatnet_method.trunk(state)
  assert variables == {} and jax.tree.leaves(state.params) == []
  x = jnp.zeros((2, 32, 32, 3))
  _, feats = apply_fn(variables, x, train=False, head=False)
  assert feats["conv2"].shape == (2, 8, 8, 243)
  with pytest.raises(UserInputError, match="nothing to train"):
    scatnet_method.create_state(config, 32, jax.random.key(0), mesh, 10)


@pytest.mark.parametrize("scale", ["cpu", "mini", "calib"])
def test_probe_size_is_met_at_both_orders(scale):
  # The config's one probe size is feasible (within the tolerance) at conv1 and conv2 of the
  # transform at the scale's input side, so a ScatNet row probes like the AlexNet rows.
  from mono_ssl.probe import DIMS_TOLERANCE, pool_dims, probe_pools
  c = load_config_file("scatnet", f"scale={scale}")
  side = c.probe.resize or c.aug.out_size
  state = scatnet_method.create_state(c, side, jax.random.key(0), shd.make_mesh(), total_steps=0)
  apply_fn, variables = scatnet_method.trunk(state)
  x = jnp.zeros((1, side, side, 3))
  _, feats = jax.eval_shape(lambda x: apply_fn(variables, x, train=False, head=False), x)
  shapes = {k: v.shape for k, v in feats.items()}
  for name, spec in probe_pools(shapes, c.probe.layers, c.probe.target_dims):
    dims = pool_dims(spec, *shapes[name][1:])
    assert abs(dims - c.probe.target_dims) <= DIMS_TOLERANCE * c.probe.target_dims
