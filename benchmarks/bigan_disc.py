"""Donahue's D: the 5x5 stride-2 conv as XLA's strided conv against its space-to-depth form.

  python benchmarks/bigan_disc.py [--batch 128] [--reps 10]

Times, in one process and interleaved (so a shared machine slows both alike), the
forward and backward pass (gradients of parameters and inputs, as the BiGAN step takes
them) of `DonahueDiscriminator` at CPU scale (32 px, width 32, latent 64) with
`models.bigan.space_to_depth_conv5` (what the model runs) and with
`jax.lax.conv_general_dilated(stride 2)` (the plain form), per layer and for the
whole D, and prints a Markdown table with the ratio. The command-line XLA flag of
the entry points (`mono_ssl.xla_cpu.apply`) is applied first, as in a run.
"""
from __future__ import annotations

import argparse
import time

from mono_ssl import xla_cpu

xla_cpu.apply()

import jax  # noqa: E402  (after the XLA flag)
import jax.numpy as jnp  # noqa: E402

from mono_ssl.models import bigan as nets  # noqa: E402


def plain_conv5(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (2, 2), ((2, 2), (2, 2)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def timed(fns: dict, args: tuple, reps: int) -> dict:
  """Mean seconds per call of each jitted fn, the calls interleaved."""
  jitted = {k: jax.jit(f) for k, f in fns.items()}
  for f in jitted.values():
    jax.block_until_ready(f(*args))  # compile
  total = dict.fromkeys(jitted, 0.0)
  for _ in range(reps):
    for k, f in jitted.items():
      t = time.perf_counter()
      jax.block_until_ready(f(*args))
      total[k] += time.perf_counter() - t
  return {k: v / reps for k, v in total.items()}


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--batch", type=int, default=128)
  ap.add_argument("--reps", type=int, default=10)
  a = ap.parse_args()
  rows = []
  for side, cin, cout in ((32, 3, 32), (16, 32, 64), (8, 64, 128)):  # D's three layers
    x = jax.random.normal(jax.random.key(0), (a.batch, side, side, cin))
    w = 0.05 * jax.random.normal(jax.random.key(1), (5, 5, cin, cout))
    fns = {k: jax.grad(lambda x, w, f=f: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1))
           for k, f in (("strided", plain_conv5), ("s2d", nets.space_to_depth_conv5))}
    t = timed(fns, (x, w), a.reps)
    rows.append((f"{side} px, {cin} -> {cout}", t["strided"], t["s2d"]))

  x = jax.random.uniform(jax.random.key(2), (a.batch, 32, 32, 3))
  z = jax.random.uniform(jax.random.key(3), (a.batch, 64), minval=-1, maxval=1)
  d = nets.DonahueDiscriminator(width=32)
  params = jax.tree.map(lambda p: p + 0.01, d.init(jax.random.key(4), x, z)["params"])
  orig = nets.space_to_depth_conv5

  def whole(conv):
    def loss(p, x, z):
      nets.space_to_depth_conv5 = conv  # traced once per jit: the swap holds for that trace
      try:
        return jnp.sum(d.apply({"params": p}, x, z))
      finally:
        nets.space_to_depth_conv5 = orig
    return jax.grad(loss, argnums=(0, 1, 2))

  t = timed({"strided": whole(plain_conv5), "s2d": whole(orig)}, (params, x, z), a.reps)
  rows.append(("whole D (one half of a step)", t["strided"], t["s2d"]))
  print(f"forward + backward (params and inputs), batch {a.batch}, {a.reps} interleaved reps, "
        f"{jax.devices()[0].platform}\n")
  print("| | strided conv ms | space-to-depth ms | speed-up |\n|---|---:|---:|---:|")
  for name, ts, tz in rows:
    print(f"| {name} | {ts * 1e3:.1f} | {tz * 1e3:.1f} | {ts / tz:.2f}x |")


if __name__ == "__main__":
  main()
