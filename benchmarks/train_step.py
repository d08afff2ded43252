"""The jitted JAX RotNet training step against a PyTorch reference of the same network.

  python benchmarks/train_step.py [--quick] [--steps 10] [--warmup 2]
                                  [--cases cpu:32:128,paper:64:256,...]

Needs torch (the bench extra: `pip install torch==2.13.0`, the CPU wheel).

Each case is scale:image_size:batch. Both sides run one full RotNet step on
the same shapes:
  * JAX: `mono_ssl.methods.rotnet.make_train_step` on the state of
    `rotnet.create_state(base_config("rotnet", "single", scale))`, jitted
    with the state donated, compiled ahead of time (compilation is not
    timed), called until `block_until_ready`.
  * PyTorch: the same AlexNet-BN (conv specs of `conv_specs(scale)`,
    bias-free convs, BatchNorm, ReLU, 3x3/2 max-pools, bias-free fc layers
    with BatchNorm1d, the config's dropout, a 4-way classifier) in
    channels_last, with the same input pipeline inside the step (ImageNet
    normalisation, the 4 rotations of each image, so the network sees 4B
    images), cross-entropy, and `torch.optim.SGD` with the config's lr,
    momentum, Nesterov flag and weight decay (the PyTorch-style SGD that
    `mono_ssl.train_state.sgd` reproduces).
Steps alternate JAX, PyTorch, JAX, PyTorch, ... after `--warmup` untimed
steps each; a time is the median over `--steps`. img/s counts source images
(B per step), not their 4B rotated copies.

FLOPs/step is XLA's cost analysis of the compiled JAX step (the PyTorch step
does the same arithmetic). The matmul ceiling is a 2048^3 float32 `jnp.dot`
timed in the same run, before and after the cases (the faster of the two), so
"% ceil" says how much of what XLA's matmul reaches on this machine the step
reaches. The load average is printed before and after, because another
process may share the machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp

from mono_ssl import config_lib, sharding
from mono_ssl.methods import rotnet
from mono_ssl.models.alexnet import config_convs
from mono_ssl.train_state import IMAGENET_MEAN, IMAGENET_STD

# 96/224 px at B=128/32: at larger batches a loaded 2-core machine takes > 15 min.
DEFAULT_CASES = "cpu:32:128,paper:64:256,paper:96:128,paper:224:32"
QUICK_CASES = "cpu:32:64"


def loadavg() -> str:
  """The 1/5/15-minute load averages, as `uptime` shows them."""
  return " ".join(f"{x:.2f}" for x in os.getloadavg())


def median_time(fn: Callable[[], object], reps: int) -> float:
  """Median wall seconds of `fn()` (which must block until its work is done)."""
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def matmul_ceiling(n: int = 2048, reps: int = 5) -> float:
  """GFLOP/s of a jitted n x n x n float32 jnp.dot (after a compiling call)."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  dot = jax.jit(jnp.dot)
  dot(a, b).block_until_ready()
  return 2 * n ** 3 / median_time(lambda: dot(a, b).block_until_ready(), reps) / 1e9


def torch_matmul_ceiling(n: int = 2048, reps: int = 5) -> float:
  """GFLOP/s of an n x n x n float32 torch.mm, for reference."""
  import torch
  a, b = torch.randn(n, n), torch.randn(n, n)
  torch.mm(a, b)
  return 2 * n ** 3 / median_time(lambda: torch.mm(a, b), reps) / 1e9


class JaxCase:
  """The compiled JAX RotNet step of one (scale, size, batch) and its live state."""

  def __init__(self, config, size: int, batch: int):
    mesh = sharding.make_mesh()
    self.state = rotnet.create_state(config, size, jax.random.key(0), mesh, total_steps=10_000)
    self.images = jax.random.uniform(jax.random.key(1), (batch, size, size, 3), jnp.float32)
    self.key = jax.random.key(2)
    # Donating the state is what a training loop does; it lets XLA update in place.
    jitted = jax.jit(rotnet.make_train_step(config), donate_argnums=0)
    t0 = time.perf_counter()
    self.compiled = jitted.lower(self.state, self.images, self.key).compile()
    self.compile_s = time.perf_counter() - t0
    cost = self.compiled.cost_analysis()
    # Older jaxlibs return a one-element list of dicts, newer ones the dict.
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    self.flops = float(cost.get("flops", float("nan")))

  def step(self) -> None:
    """One training step, blocked on."""
    self.state, metrics = self.compiled(self.state, self.images, self.key)
    jax.block_until_ready((self.state, metrics))


class TorchCase:
  """The PyTorch reference of the same step, channels_last."""

  def __init__(self, config, size: int, batch: int):
    import torch
    from torch import nn
    self.torch = torch
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    c_in, side = 3, size
    for c in config_convs(config):
      layers += [nn.Conv2d(c_in, c.filters, c.kernel, c.stride, c.pad, bias=False),
                 nn.BatchNorm2d(c.filters, eps=1e-5, momentum=0.1),  # = flax momentum 0.9
                 nn.ReLU(inplace=True)]
      side = (side + 2 * c.pad - c.kernel) // c.stride + 1
      if c.pool:
        layers.append(nn.MaxPool2d(3, 2))
        side = (side - 3) // 2 + 1
      c_in = c.filters
    layers.append(nn.Flatten())
    width = c_in * side * side
    for h in config.model.hidden:
      layers += [nn.Linear(width, h, bias=False), nn.BatchNorm1d(h, eps=1e-5, momentum=0.1),
                 nn.ReLU(inplace=True)]
      if config.model.dropout:
        layers.append(nn.Dropout(config.model.dropout))
      width = h
    layers.append(nn.Linear(width, rotnet.NUM_ROTATIONS))
    self.model = nn.Sequential(*layers).to(memory_format=torch.channels_last).train()
    tc = config.train
    self.opt = torch.optim.SGD(self.model.parameters(), lr=tc.lr, momentum=tc.momentum,
                               nesterov=tc.nesterov, weight_decay=tc.weight_decay)
    self.images = torch.rand(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    self.labels = torch.arange(rotnet.NUM_ROTATIONS).repeat(batch)

  def step(self) -> None:
    """One training step (normalise, rotate x4, forward, backward, SGD)."""
    torch = self.torch
    x = (self.images - self.mean) / self.std
    # Rotations of a patch next to each other, as rotate_batch lays them out.
    x = torch.stack([torch.rot90(x, k, dims=(2, 3)) for k in range(rotnet.NUM_ROTATIONS)], dim=1)
    x = x.reshape(-1, *x.shape[2:]).contiguous(memory_format=torch.channels_last)
    self.opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(self.model(x), self.labels)
    loss.backward()
    self.opt.step()


def run_case(spec: str, steps: int, warmup: int, ceiling: float) -> dict:
  """Times one scale:size:batch case, JAX and PyTorch alternating."""
  scale, size, batch = spec.split(":")
  size, batch = int(size), int(batch)
  config = config_lib.base_config("rotnet", "single", scale)
  jx, tr = JaxCase(config, size, batch), TorchCase(config, size, batch)
  for _ in range(warmup):
    jx.step()
    tr.step()
  tj, tt = [], []
  for _ in range(steps):
    for fn, times in ((jx.step, tj), (tr.step, tt)):
      t0 = time.perf_counter()
      fn()
      times.append(time.perf_counter() - t0)
  sj, st = statistics.median(tj), statistics.median(tt)
  return dict(case=f"{scale} {size}px B={batch}", jax=batch / sj, torch=batch / st,
              ratio=st / sj, gflop=jx.flops / 1e9, jax_gflops=jx.flops / sj / 1e9,
              ceil=jx.flops / sj / 1e9 / ceiling, torch_ceil=jx.flops / st / 1e9 / ceiling,
              compile_s=jx.compile_s, ms_jax=(min(tj) * 1e3, sj * 1e3, max(tj) * 1e3),
              ms_torch=(min(tt) * 1e3, st * 1e3, max(tt) * 1e3))


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--cases", default=DEFAULT_CASES, help="comma-separated scale:size:batch")
  p.add_argument("--steps", type=int, default=10, help="timed steps per side (median)")
  p.add_argument("--warmup", type=int, default=2, help="untimed steps per side first")
  p.add_argument("--quick", action="store_true", help=f"{QUICK_CASES}, 3 steps, 1 warm-up")
  p.add_argument("--torch-threads", type=int, default=0,
                 help="torch.set_num_threads (0: torch's default, one per core). On a machine "
                      "another process loads, torch's OpenMP barriers can stall with 2 threads")
  args = p.parse_args()
  if args.quick:
    args.cases, args.steps, args.warmup = QUICK_CASES, 3, 1
  import torch
  if args.torch_threads:
    torch.set_num_threads(args.torch_threads)

  print(f"date {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}  host {platform.node()}  "
        f"cpus {os.cpu_count()}  jax {jax.__version__}  torch {torch.__version__} "
        f"(threads {torch.get_num_threads()})")
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print(f"load before: {loadavg()}", flush=True)
  ceil0 = matmul_ceiling()
  rows = []
  for c in args.cases.split(","):
    rows.append(run_case(c, args.steps, args.warmup, ceil0))
    r = rows[-1]
    # Printed as it goes, so a run cut short still reports its finished cases.
    print(f"done {r['case']}: JAX {r['jax']:.1f} torch {r['torch']:.1f} img/s  "
          f"load {loadavg()}", flush=True)
  ceil1 = matmul_ceiling()
  ceiling = max(ceil0, ceil1)
  print(f"load after:  {loadavg()}")
  print(f"matmul ceiling (2048^3 f32 jnp.dot): {ceil0:.1f} before, {ceil1:.1f} after GFLOP/s; "
        f"torch.mm {torch_matmul_ceiling():.1f} GFLOP/s")
  print(f"median of {args.steps} alternating steps each, {args.warmup} warm-up; "
        "img/s = source images (the net sees 4x as many rotated copies)")
  hdr = (f"| {'case':<20} | {'JAX img/s':>9} | {'torch img/s':>11} | {'JAX/torch':>9} | "
         f"{'GFLOP/step':>10} | {'JAX GFLOP/s':>11} | {'JAX % ceil':>10} | {'torch % ceil':>12} | "
         f"{'compile s':>9} |")
  print(hdr)
  print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
  for r in rows:
    # % ceil against the better of the two ceiling measurements.
    f = ceil0 / ceiling
    print(f"| {r['case']:<20} | {r['jax']:9.1f} | {r['torch']:11.1f} | {r['ratio']:9.2f} | "
          f"{r['gflop']:10.1f} | {r['jax_gflops']:11.1f} | {100 * r['ceil'] * f:9.1f}% | "
          f"{100 * r['torch_ceil'] * f:11.1f}% | {r['compile_s']:9.1f} |")
  # The spread shows how much the load moved the steps.
  for r in rows:
    print(f"{r['case']}: ms/step min/median/max  JAX {'/'.join(f'{t:.0f}' for t in r['ms_jax'])}"
          f"  torch {'/'.join(f'{t:.0f}' for t in r['ms_torch'])}")


if __name__ == "__main__":
  from mono_ssl import xla_cpu
  xla_cpu.apply()  # faster XLA:CPU convolutions, set before JAX starts (mono_ssl/xla_cpu.py)
  main()
