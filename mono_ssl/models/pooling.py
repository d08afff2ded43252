"""Max-pooling whose gradient is cheap on XLA:CPU, with the same values and gradients.

`flax.linen.max_pool` lowers to `reduce_window`, whose gradient is XLA's
`select_and_scatter`. XLA:CPU rewrites that into a variadic reduce-window that
tracks the argmax position in four int32 index tensors the size of the input,
plus a scatter: profiled on the CPU-scale RotNet step (32 px, B=128) it was
about 40% of the whole step. Here the pool is the maximum of its k*k strided
views; the forward pass also records which view won each window (the first
maximal element in row-major order, the one select_and_scatter picks), and
the gradient routes each cotangent there through strided pads that XLA fuses
into one elementwise loop.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


def _out_size(size: int, window: int, stride: int) -> int:
  return (size - window) // stride + 1


def _views(x: jax.Array, window: int, stride: int):
  """The window*window strided views of x (N, H, W, C), in row-major window order."""
  _, h, w, _ = x.shape
  ho, wo = _out_size(h, window, stride), _out_size(w, window, stride)
  for di in range(window):
    for dj in range(window):
      yield di, dj, lax.slice(x, (0, di, dj, 0),
                              (x.shape[0], di + stride * (ho - 1) + 1,
                               dj + stride * (wo - 1) + 1, x.shape[3]),
                              (1, stride, stride, 1))


def max_pool(x: jax.Array, window: int = 3, stride: int = 2) -> jax.Array:
  """VALID max-pool of NHWC `x` over window x window patches at `stride`.

  Same values as `flax.linen.max_pool(x, (window, window), (stride, stride))`
  and the same gradient (ties go to the first element in row-major order).
  An input smaller than the window gives an empty output, as flax's does.
  """
  if window * window > 127:  # the winner's index is int8
    raise ValueError(f"max_pool: a {window}x{window} window has more than 127 elements")
  if x.shape[1] < window or x.shape[2] < window:
    return nn.max_pool(x, (window, window), strides=(stride, stride))  # empty: nothing to speed up
  return _max_pool(x, window, stride)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _max_pool(x: jax.Array, window: int, stride: int) -> jax.Array:
  out = None
  for _, _, view in _views(x, window, stride):
    out = view if out is None else jnp.maximum(out, view)
  return out


def _max_pool_fwd(x, window, stride):
  # The winner of each window is chosen here, once, and saved as an int8 index.
  # Comparing recomputed views with the saved output in the backward pass is
  # not safe: XLA may recompute the producer (BatchNorm + ReLU) inside the
  # backward fusion with different rounding, and then no element equals the max.
  out = best = winner = None
  for k, (_, _, view) in enumerate(_views(x, window, stride)):
    if out is None:
      out, best, winner = view, view, jnp.zeros(view.shape, jnp.int8)
      continue
    out = jnp.maximum(out, view)  # NaN-propagating, as lax.reduce_window's max
    better = view > best          # strict: ties stay with the first element
    best = jnp.where(better, view, best)
    winner = jnp.where(better, jnp.int8(k), winner)
  # Residuals must be arrays: x's height and width travel as the shape of an empty one.
  return out, (winner, jnp.zeros((0, x.shape[1], x.shape[2], 0), x.dtype))


def _max_pool_bwd(window, stride, residuals, g):
  winner, x_shape = residuals
  n, ho, wo, c = winner.shape
  h, w = x_shape.shape[1], x_shape.shape[2]
  dx = jnp.zeros((n, h, w, c), g.dtype)
  zero = jnp.zeros((), g.dtype)
  for k in range(window * window):
    di, dj = divmod(k, window)
    # A strided slice's transpose: pad back to x's shape with stride-1 interior zeros.
    dx = dx + lax.pad(jnp.where(winner == k, g, zero), zero,
                      ((0, 0, 0),
                       (di, h - di - stride * (ho - 1) - 1, stride - 1),
                       (dj, w - dj - stride * (wo - 1) - 1, stride - 1),
                       (0, 0, 0)))
  return (dx,)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
