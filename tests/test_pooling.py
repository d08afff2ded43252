"""The AlexNet's max-pool: flax.linen.max_pool's values and gradients, without select_and_scatter."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mono_ssl.models.pooling import max_pool


def _reference(x, window, stride):
  return nn.max_pool(x, (window, window), strides=(stride, stride), padding="VALID")


@pytest.mark.parametrize("shape,window,stride", [
    ((4, 16, 16, 8), 3, 2),   # conv1's pool at 32 px
    ((3, 7, 7, 5), 3, 2),     # conv2's
    ((2, 3, 3, 4), 3, 2),     # conv5's: one output
    ((2, 9, 12, 3), 3, 2),    # odd, non-square sides leave a remainder
    ((2, 8, 8, 3), 2, 2),     # non-overlapping windows
    ((2, 10, 10, 2), 3, 1),   # heavily overlapping windows
])
def test_values_and_gradients_match_flax_max_pool_with_ties(shape, window, stride):
  key_x, key_g = jax.random.split(jax.random.key(0))
  # Post-ReLU values rounded to quarters: many exact ties inside windows, as after a ReLU.
  x = jnp.round(jax.nn.relu(jax.random.normal(key_x, shape)) * 4) / 4
  want, want_vjp = jax.vjp(lambda v: _reference(v, window, stride), x)
  got, got_vjp = jax.vjp(lambda v: max_pool(v, window, stride), x)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  g = jax.random.normal(key_g, want.shape)
  # Ties go to the same (first, row-major) element; only the order of the sums
  # over overlapping windows may differ, hence the float tolerance.
  np.testing.assert_allclose(np.asarray(got_vjp(g)[0]), np.asarray(want_vjp(g)[0]),
                             rtol=0, atol=1e-5)


def test_gradient_has_no_select_and_scatter_or_reduce_window():
  x = jnp.ones((2, 16, 16, 4))
  hlo = jax.jit(jax.grad(lambda v: max_pool(v, 3, 2).sum())).lower(x).as_text()
  assert "select_and_scatter" not in hlo and "reduce_window" not in hlo
  ref = jax.jit(jax.grad(lambda v: _reference(v, 3, 2).sum())).lower(x).as_text()
  assert "select_and_scatter" in ref  # the op this module exists to avoid


def test_input_smaller_than_the_window_gives_flaxs_empty_output():
  x = jnp.ones((1, 2, 2, 1))
  assert max_pool(x, 3, 2).shape == _reference(x, 3, 2).shape == (1, 0, 0, 1)


def test_alexnet_gradients_match_flax_max_pool_on_one_and_four_devices(monkeypatch):
  # In the network the pool's input is recomputed BatchNorm + ReLU output that
  # XLA may fuse differently per program; the gradient must still match.
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  from mono_ssl.models import alexnet
  model = alexnet.AlexNet(convs=alexnet.conv_specs("cpu", 0.25), hidden=(16,), num_classes=4)
  x = jax.random.normal(jax.random.key(1), (8, 32, 32, 3))
  labels = jnp.arange(8) % 4
  variables = model.init(jax.random.key(0), x[:1])

  def grads(m, inputs):
    def loss(params):
      logits, _ = m.apply({**variables, "params": params}, inputs, train=True,
                          mutable=["batch_stats"])[0]
      return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))
    return jax.jit(jax.grad(loss))(variables["params"])

  mesh = jax.sharding.Mesh(np.array(jax.devices()[:4]), ("data",))
  x4 = jax.device_put(x, NamedSharding(mesh, P("data")))
  ours = [grads(model, x), grads(model, x4)]
  monkeypatch.setattr(alexnet, "max_pool", lambda v, w, s: _reference(v, w, s))
  want = grads(model, x)
  for got in ours:
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-5)
