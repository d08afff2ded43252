"""Max-pooling whose gradient is cheap on XLA:CPU, with the same values and gradients.

`flax.linen.max_pool` lowers to `reduce_window`, whose gradient is XLA's
`select_and_scatter`. XLA:CPU rewrites that into a variadic reduce-window that
tracks the argmax position in four int32 index tensors the size of the input,
plus a scatter: profiled on the CPU-scale RotNet step (32 px, B=128) it was
about 40% of the whole step. Here the pool is the maximum of its k*k strided
views, and the gradient routes each output's cotangent to the first maximal
element of its window in row-major order -- the element select_and_scatter
picks -- through strided pads that XLA fuses into one elementwise loop.
"""
from __future__ import annotations

import functools

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


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def max_pool(x: jax.Array, window: int = 3, stride: int = 2) -> jax.Array:
  """VALID max-pool of NHWC `x` over window x window patches at `stride`.

  Same values as `flax.linen.max_pool(x, (window, window), (stride, stride))`
  and the same gradient (ties go to the first element in row-major order).
  """
  _, h, w, _ = x.shape
  if h < window or w < window:
    raise ValueError(f"max_pool: input {h}x{w} is smaller than the {window}x{window} window")
  out = None
  for _, _, view in _views(x, window, stride):
    out = view if out is None else jnp.maximum(out, view)
  return out


def _max_pool_fwd(x, window, stride):
  out = max_pool(x, window, stride)
  return out, (x, out)


def _max_pool_bwd(window, stride, residuals, g):
  x, out = residuals
  n, h, w, c = x.shape
  ho, wo = out.shape[1], out.shape[2]
  taken = jnp.zeros(out.shape, jnp.bool_)
  dx = jnp.zeros_like(x)
  zero = jnp.zeros((), x.dtype)
  for di, dj, view in _views(x, window, stride):
    first = (view == out) & ~taken  # the first maximal element of each window takes it
    taken = taken | first
    # A strided slice's transpose: pad back to x's shape with stride-1 interior zeros.
    dx = dx + lax.pad(jnp.where(first, g, zero), zero,
                      ((0, 0, 0),
                       (di, h - di - stride * (ho - 1) - 1, stride - 1),
                       (dj, w - dj - stride * (wo - 1) - 1, stride - 1),
                       (0, 0, 0)))
  return (dx,)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
