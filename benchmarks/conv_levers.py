r"""Each conv layer of a scale's stack, forward and forward+backward, by formulation and dtype (issue 38).

  PYTHONPATH=. python benchmarks/conv_levers.py [--scale calib] [--batch 512] [--reps 5] [--quick]

The batch is the images a RotNet step puts through the net (4 x 128 rotated copies at the
config's batch of 128). Per layer, on the layer's own input shape, medians of `--reps` calls:
  * lax: `lax.conv_general_dilated` (what flax's nn.Conv lowers to; XLA:CPU's convolution),
  * i2c: the convolution as one explicit patch-matrix product (im2col: k*k shifted slices
    concatenated on the channel axis, then one `jnp.dot`), the issue's lever for a CPU whose
    dot has bfloat16 units and whose convolution does not;
each in float32 and in bfloat16 (inputs and weights cast, float32 accumulation);
"fwd+bwd" is the gradient of a scalar of the output with respect to the input and the
weights (conv1: the weights only, as in a real step, where the data needs no gradient). conv1 also gets the space-to-depth form of a
stride-2 kernel (the input folded 2x2 into channels, the kernel padded to even size and
folded alike: a stride-1 convolution with 4x the input channels), checked equal to lax.
The CPU's vector flags are printed: on a CPU without avx512_bf16, bfloat16 has no units of
its own.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from jax import lax

from mono_ssl.models.alexnet import INPUT_SIDE, conv_specs

DN = ("NHWC", "HWIO", "NHWC")


def conv_lax(x, w, stride: int, pad: int):
  return lax.conv_general_dilated(x, w, (stride, stride), ((pad, pad), (pad, pad)), dimension_numbers=DN,
                                  preferred_element_type=jnp.float32)


def conv_im2col(x, w, stride: int, pad: int):
  """The same convolution as one (B*H*W, k*k*Cin) x (k*k*Cin, Cout) product."""
  k, _, cin, cout = w.shape
  xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  out = (x.shape[1] + 2 * pad - k) // stride + 1
  span = stride * (out - 1) + 1
  cols = [xp[:, i:i + span:stride, j:j + span:stride, :] for i in range(k) for j in range(k)]
  patches = jnp.concatenate(cols, -1)  # (i, j, c) order: HWIO's flattening
  y = jnp.dot(patches.reshape(-1, k * k * cin), w.reshape(k * k * cin, cout),
              preferred_element_type=jnp.float32)
  return y.reshape(x.shape[0], out, out, cout)


def conv_space_to_depth(x, w, stride: int, pad: int):
  """A stride-2 convolution as a stride-1 one on the 2x2-folded input (stride 2 only)."""
  assert stride == 2
  b, h, _, c = x.shape
  k, o = w.shape[0], w.shape[-1]
  extra = (h + 2 * pad) % 2  # fold an even side
  xp = jnp.pad(x, ((0, 0), (pad, pad + extra), (pad, pad + extra), (0, 0)))
  hs = xp.shape[1] // 2
  xs = xp.reshape(b, hs, 2, hs, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, hs, hs, 4 * c)
  ke = k + k % 2
  wp = jnp.pad(w, ((0, ke - k), (0, ke - k), (0, 0), (0, 0)))
  ws = wp.reshape(ke // 2, 2, ke // 2, 2, c, o).transpose(0, 2, 1, 3, 4, 5).reshape(ke // 2, ke // 2, 4 * c, o)
  out = (h + 2 * pad - k) // 2 + 1
  y = lax.conv_general_dilated(xs, ws, (1, 1), "VALID", dimension_numbers=DN,
                               preferred_element_type=jnp.float32)
  return y[:, :out, :out]


def median_ms(fn, *args, reps: int) -> float:
  jax.block_until_ready(fn(*args))  # compiles
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return 1e3 * statistics.median(times)


def layer_shapes(scale: str):
  """(name, input side, Cin, spec) of each conv layer of a scale's stack."""
  side, cin, out = INPUT_SIDE[scale], 3, []
  for i, c in enumerate(conv_specs(scale)):
    out.append((f"conv{i + 1}", side, cin, c))
    side = (side + 2 * c.pad - c.kernel) // c.stride + 1
    if c.pool:
      side = (side - 3) // 2 + 1
    cin = c.filters
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--scale", default="calib", choices=tuple(INPUT_SIDE))
  p.add_argument("--batch", type=int, default=512)
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--quick", action="store_true", help="cpu scale, batch 8, 1 rep")
  args = p.parse_args(argv)
  if args.quick:
    args.scale, args.batch, args.reps = "cpu", 8, 1
  cpuinfo = Path("/proc/cpuinfo").read_text(errors="ignore") if Path("/proc/cpuinfo").exists() else ""
  print(f"scale {args.scale}, batch {args.batch}; cpu flags: "
        f"{' '.join(f for f in ('avx512f', 'avx512_bf16', 'amx_bf16', 'avx2') if f in cpuinfo) or '?'}")
  print("| layer | path | fwd ms | fwd+bwd ms | fwd+bwd vs lax f32 |")
  print("|---|---|---:|---:|---:|")
  totals: dict[str, float] = {}
  for name, side, cin, c in layer_shapes(args.scale):
    x = jax.random.normal(jax.random.key(0), (args.batch, side, side, cin))
    w = jax.random.normal(jax.random.key(1), (c.kernel, c.kernel, cin, c.filters)) * 0.1
    forms = {"lax": conv_lax, "i2c": conv_im2col}
    if c.stride == 2:
      forms["s2d"] = conv_space_to_depth
      err = float(jnp.max(jnp.abs(conv_space_to_depth(x, w, 2, c.pad) - conv_lax(x, w, 2, c.pad))))
      assert err < 1e-3, f"space-to-depth differs from lax by {err}"
    base = None
    for form, fn in forms.items():
      for dt in (jnp.float32, jnp.bfloat16):
        def out(x, w, fn=fn, dt=dt, c=c):
          return fn(x.astype(dt), w.astype(dt), c.stride, c.pad)
        fwd = jax.jit(out)
        # conv1 reads the data: a step needs only its weight gradient (XLA drops the other).
        wrt = (1,) if name == "conv1" else (0, 1)
        grad = jax.jit(jax.grad(lambda x, w, out=out: jnp.sum(out(x, w) ** 2), argnums=wrt))
        tf, tg = median_ms(fwd, x, w, reps=args.reps), median_ms(grad, x, w, reps=args.reps)
        key = f"{form} {jnp.dtype(dt).name}"
        base = tg if base is None else base
        if form != "s2d":
          totals[key] = totals.get(key, 0.0) + tg
        print(f"| {name} | {key} | {tf:.1f} | {tg:.1f} | {base / tg:.2f} |", flush=True)
  ref = totals["lax float32"]
  print("sum over layers, fwd+bwd: " + ", ".join(f"{k} {v:.0f} ms ({ref / v:.2f}x)" for k, v in totals.items()))
  return 0


if __name__ == "__main__":
  from mono_ssl import xla_cpu
  xla_cpu.apply()  # the runs' XLA flags, set before JAX starts (mono_ssl/xla_cpu.py)
  raise SystemExit(main())
