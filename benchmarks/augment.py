"""Patches/s of the on-device single-image generator (issue: >= 20,000/s at 32 px on a 2-core CPU).

  python benchmarks/augment.py [--out 32] [--batch 4096] [--repeats 10]

Also prints, as a reference measured in the same run, Pillow doing the
same crop+resize on the host for one patch at a time (no affine/jitter),
and the ratio between the two.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from mono_ssl import images
from mono_ssl.augment import AugmentConfig, ImageBank, PatchGenerator


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--out", type=int, default=32)
  ap.add_argument("--batch", type=int, default=4096)
  ap.add_argument("--repeats", type=int, default=10)
  args = ap.parse_args()

  img = images.load_image(images.DEFAULT_IMAGE)
  bank = ImageBank.from_images([img])
  cfg = AugmentConfig(out_size=args.out, patch_size=int(round(args.out * 1.25)))
  gen = PatchGenerator(bank, cfg, seed=0)
  idx = jnp.arange(args.batch)
  gen(idx).block_until_ready()  # compile
  times = []
  for r in range(args.repeats):
    t = time.perf_counter()
    gen(idx + (r + 1) * args.batch).block_until_ready()
    times.append(time.perf_counter() - t)
  ours = args.batch / float(np.median(times))

  # Reference: Pillow, one random crop + bicubic resize per patch on the host.
  rng = np.random.default_rng(0)
  pil = Image.fromarray(img)
  n_ref = 2000
  t = time.perf_counter()
  for _ in range(n_ref):
    s = int(rng.uniform(0.05, 0.5) * min(img.shape[:2]))
    y, x = rng.integers(0, img.shape[0] - s), rng.integers(0, img.shape[1] - s)
    pil.resize((args.out, args.out), Image.BICUBIC, box=(x, y, x + s, y + s))
  ref = n_ref / (time.perf_counter() - t)

  print(f"device: {jax.device_count()} x {jax.devices()[0].platform}, image {img.shape[1]}x{img.shape[0]}")
  print(f"| generator | patches/s at {args.out} px |")
  print("|---|---:|")
  print(f"| mono_ssl on-device (full pipeline, batch {args.batch}) | {ours:,.0f} |")
  print(f"| Pillow crop+resize only, 1 thread (reference) | {ref:,.0f} |")
  print(f"ratio mono_ssl / Pillow: {ours / ref:.2f}x; target >= 20,000/s: "
        f"{'met' if ours >= 20000 else 'NOT met'}")


if __name__ == "__main__":
  from mono_ssl import xla_cpu
  xla_cpu.apply()  # faster XLA:CPU convolutions, set before JAX starts (mono_ssl/xla_cpu.py)
  main()
