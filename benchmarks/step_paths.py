r"""The default RotNet step against today's float32 step and PyTorch's fastest CPU step (issue 38).

  PYTHONPATH=. python benchmarks/step_paths.py [--scale calib] [--batch 128] [--steps 6] [--quick]

One process, one scale (default: calib, 64 px, the config's batch of 128 source images, so
4 x 128 rotated images through the net). Every path runs one full RotNet training step on
the same shapes (normalise, four rotations, forward, backward, SGD):
  * jax default: `rotnet.make_train_step` on the state `base_config("rotnet", "single",
    scale)` builds, as a run gets it (its `model.dtype`, and the XLA flags `xla_cpu.apply`
    sets before JAX starts), jitted with the state donated, compiled ahead of time;
  * jax f32: the same with `model.dtype=float32` (today's path);
  * jax bf16: `model.dtype=bfloat16` (bfloat16 compute, float32 parameters, optimiser state
    and BatchNorm statistics: models/alexnet.compute_dtype), a lever row;
  * torch f32: benchmarks/train_step.TorchCase (the same AlexNet-BN, channels_last, eager);
  * torch bf16: the same under `torch.autocast("cpu", torch.bfloat16)`;
  * torch compile: the f32 module through `torch.compile` (its compilation is not timed).
Paths are timed round-robin (one step of each, `--steps` rounds, after `--warmup`
untimed rounds), so a load that comes and goes hits all of them alike; a time is the median.
Without torch (CI installs only the test extra) the torch rows say so and the last line
reads n/a for them. The last line is the issue's summary:

  default/f32 X.XX, default/torch-best Y.YY

(X > 1: the default path is faster than float32; Y > 1: faster than PyTorch's fastest).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train_step.py beside this file

import jax  # noqa: E402
from train_step import JaxCase, TorchCase, loadavg, matmul_ceiling  # noqa: E402

from mono_ssl import config_lib  # noqa: E402
from mono_ssl.models.alexnet import INPUT_SIDE  # noqa: E402


def jax_path(scale: str, batch: int, dtype: str | None) -> tuple[Callable[[], None], float]:
  """(one blocked step, XLA's FLOPs of it) of the config's step; dtype None = the config's."""
  config = config_lib.base_config("rotnet", "single", scale)
  if dtype is not None:
    config.model.dtype = dtype
  case = JaxCase(config, INPUT_SIDE[scale], batch)
  return case.step, case.flops


def torch_paths(scale: str, batch: int, quick: bool) -> dict[str, Callable[[], None]]:
  """The PyTorch steps by name; {} without torch."""
  try:
    import torch
  except ImportError:
    return {}
  config = config_lib.base_config("rotnet", "single", scale)
  eager = TorchCase(config, INPUT_SIDE[scale], batch)
  out = {"torch f32": eager.step}

  auto = TorchCase(config, INPUT_SIDE[scale], batch)

  def autocast_step() -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16):
      auto.step()
  out["torch bf16"] = autocast_step
  if not quick:  # torch.compile takes minutes on two cores
    comp = TorchCase(config, INPUT_SIDE[scale], batch)
    comp.model = torch.compile(comp.model)
    out["torch compile"] = comp.step
  return out


def time_round_robin(paths: dict[str, Callable[[], None]], steps: int, warmup: int) -> dict[str, list]:
  """Seconds per step of each path, one step of each per round."""
  for _ in range(warmup):
    for fn in paths.values():
      fn()
  times: dict[str, list] = {name: [] for name in paths}
  for _ in range(steps):
    for name, fn in paths.items():
      t0 = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t0)
  return times


def summary_line(median_s: dict[str, float]) -> str:
  """'default/f32 X.XX, default/torch-best Y.YY' (n/a where torch did not run)."""
  d = median_s["jax default"]
  torch_best = min((s for n, s in median_s.items() if n.startswith("torch")), default=None)
  best = f"{torch_best / d:.2f}" if torch_best else "n/a (torch not installed)"
  return f"default/f32 {median_s['jax f32'] / d:.2f}, default/torch-best {best}"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--scale", default="calib", choices=config_lib.SCALES)
  p.add_argument("--batch", type=int, default=0, help="source images per step (0: the config's)")
  p.add_argument("--steps", type=int, default=6, help="timed rounds (median)")
  p.add_argument("--warmup", type=int, default=1)
  p.add_argument("--no-bf16", action="store_true", help="skip the jax bf16 lever row")
  p.add_argument("--quick", action="store_true", help="cpu scale, B=16, 2 rounds, no torch.compile")
  args = p.parse_args(argv)
  if args.quick:
    args.scale, args.batch, args.steps, args.warmup = "cpu", 16, 2, 1
  batch = args.batch or int(config_lib.base_config("rotnet", "single", args.scale).train.batch_size)
  print(f"date {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}  host {platform.node()}  "
        f"cpus {os.cpu_count()}  jax {jax.__version__}  scale {args.scale} {INPUT_SIDE[args.scale]}px "
        f"B={batch}")
  flags = [f for f in ("avx512f", "avx512_bf16", "amx_bf16", "avx2")
           if f in Path("/proc/cpuinfo").read_text(errors="ignore")] if Path("/proc/cpuinfo").exists() else []
  print(f"cpu flags (of avx512f, avx512_bf16, amx_bf16, avx2): {' '.join(flags) or '?'}")
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}  load before: {loadavg()}", flush=True)
  default_dtype = config_lib.base_config("rotnet", "single", args.scale).model.dtype
  paths, flops = {}, {}
  for name, dtype in (("jax default", None), ("jax f32", "float32"), ("jax bf16", "bfloat16")):
    if name == "jax bf16" and args.no_bf16:
      continue
    paths[name], flops[name] = jax_path(args.scale, batch, dtype)
  torch_steps = torch_paths(args.scale, batch, args.quick)
  if not torch_steps:
    print("torch: not installed (pip install -e '.[bench]'); its rows are skipped")
  paths.update(torch_steps)
  times = time_round_robin(paths, args.steps, args.warmup)
  ceiling = matmul_ceiling()
  med = {n: statistics.median(t) for n, t in times.items()}
  print(f"load after: {loadavg()}; matmul ceiling (2048^3 f32 jnp.dot) {ceiling:.1f} GFLOP/s; "
        f"jax default is model.dtype={default_dtype}")
  print("| path | ms/step (min/median/max) | img/s | vs jax f32 | GFLOP/s |")
  print("|---|---|---:|---:|---:|")
  for n, t in times.items():
    gf = f"{flops[n] / med[n] / 1e9:.1f}" if n in flops else ""
    print(f"| {n} | {min(t) * 1e3:.0f}/{med[n] * 1e3:.0f}/{max(t) * 1e3:.0f} | {batch / med[n]:.1f} | "
          f"{med['jax f32'] / med[n]:.2f} | {gf} |")
  print(summary_line(med), flush=True)
  return 0


if __name__ == "__main__":
  from mono_ssl import xla_cpu
  xla_cpu.apply()  # the default path's XLA flags, set before JAX starts (mono_ssl/xla_cpu.py)
  sys.exit(main())
