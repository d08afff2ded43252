"""End-to-end images/s of real pretraining against the jitted step alone, the probe stage's images/s, peak RSS.

  PYTHONPATH=. python benchmarks/pipeline.py [--method rotnet] [--regime single] [--steps 300]
                                             [--log-every 50] [--step-steps 30] [--quick]

The config is the real run's: `configs/<method>.py` with `regime=<regime>,scale=<scale>` (`--scale`, default cpu)
(for RotNet, `base_config("rotnet", regime, scale)`), its batch size and patch size.
Each part runs in its own subprocess of this script (`--part`), so that its peak
RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss` at the end of the child) is its own:
  * step: the step `train.pretrain` jits (same shardings, state donated) on one
    fixed batch already on device (made once by the real patch generator);
    median images/s of `--step-steps` steps, each blocked on, after `--warmup`.
  * augment: the uniform index sampler and the two jitted `PatchGenerator`
    stages alone; median images/s of as many batches, each blocked on.
  * e2e: `train.pretrain` itself (augmentation + step + the loop's host work;
    no probes) with train.num_steps=`--steps`, log_every=`--log-every`, in a
    fresh temporary workdir. images/s = the steady rate between its first and
    last metrics.jsonl records (the first log interval holds the compilations).
  * probe: `train.probe_trunk` (the five linear probes) on a fresh trunk, on real
    CIFAR-10 (`train.load_probe_data`: ../shared/data unless probe.data_dir says
    otherwise) with `--probe-limit` images per class, `--probe-epochs` epochs
    (images/s from the epochs after the first, which compiles) and the first
    `--probe-test` test images. Skipped with a message when the data is missing.
images/s counts source images (B per step; RotNet's network sees 4B rotated
copies). The issue's target: e2e within 10% of the step alone. The load
average is printed before and after, because another process may share the machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import mono_ssl  # noqa: F401 -- sets XLA_FLAGS at import; the children inherit them

REPO = Path(__file__).resolve().parent.parent
PARTS = ("step", "augment", "e2e", "probe")
METHODS = ("rotnet", "deepcluster", "bigan", "supervised")  # scatnet does not pretrain


def loadavg() -> str:
  """The 1/5/15-minute load averages, as `uptime` shows them."""
  return " ".join(f"{x:.2f}" for x in os.getloadavg())


def load_config(method: str, regime: str, scale: str = "cpu"):
  """The real run's config: `configs/<method>.py` at regime=<regime>, scale=<scale>."""
  from mono_ssl import config_lib
  return config_lib.load_config_file(REPO / "configs" / f"{method}.py", f"regime={regime},scale={scale}")


def timed(fn: Callable[[], object], reps: int, warmup: int) -> list[float]:
  """Wall seconds of each of `reps` calls of `fn()` (which must block) after `warmup` calls."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return times


def spread_ms(times: list[float]) -> str:
  return "/".join(f"{1e3 * t:.0f}" for t in (min(times), statistics.median(times), max(times)))


# --- the parts, each run in a child process -----------------------------------------------------


def part_step(args, config) -> dict:
  """The jitted train step alone on a fixed on-device batch."""
  import jax
  import numpy as np

  from mono_ssl import sharding as shd
  from mono_ssl import train
  from mono_ssl.augment import PatchGenerator
  from mono_ssl.data import pretrain_source

  mesh = shd.make_mesh()
  repl, bsh = shd.replicated(mesh), shd.batch_sharded(mesh)
  method = train.method_module(config)
  source = pretrain_source(config)
  batch = config.train.batch_size
  # The real run's schedule length: the step is the same program whatever it is.
  state = method.create_state(config, source.aug.out_size, jax.random.key(0), mesh,
                              int(config.train.num_steps), data_size=source.size)
  # One real batch, made once; the index values do not change the step's cost.
  indices = shd.to_global(np.arange(batch, dtype=np.int32), bsh)
  images = PatchGenerator(shd.to_global(source.bank, repl), source.aug, seed=config.seed,
                          period=source.size)(indices)
  make_batch = getattr(method, "make_batch", None)
  batch_in = images if make_batch is None else make_batch(images, indices)
  key = jax.device_put(jax.random.key(1), repl)
  # As train.pretrain jits it.
  step_fn = jax.jit(method.make_train_step(config=config), donate_argnums=0,
                    in_shardings=(repl, bsh, repl), out_shardings=(repl, repl))
  box = {"state": state}

  def step():
    box["state"], m = step_fn(box["state"], batch_in, key)
    jax.block_until_ready((box["state"], m))

  t0 = time.perf_counter()
  step()
  first_s = time.perf_counter() - t0
  times = timed(step, args.step_steps, args.warmup)
  return {"images_per_s": batch / statistics.median(times), "ms": spread_ms(times),
          "first_step_s": first_s, "batch": batch,
          "note": f"median of {args.step_steps} blocked steps after {args.warmup} warm-up, "
                  f"B={batch}, {source.aug.out_size} px; first call {first_s:.1f} s"}


def part_augment(args, config) -> dict:
  """Index sampling + the two jitted patch-generator stages alone (RotNet's uniform sampler)."""
  import jax
  import jax.numpy as jnp

  from mono_ssl import sharding as shd
  from mono_ssl.augment import PatchGenerator
  from mono_ssl.data import pretrain_source

  mesh = shd.make_mesh()
  repl, bsh = shd.replicated(mesh), shd.batch_sharded(mesh)
  source = pretrain_source(config)
  batch = config.train.batch_size
  generator = PatchGenerator(shd.to_global(source.bank, repl), source.aug, seed=config.seed,
                             period=source.size)
  data_key = jax.random.key(3)
  indices_for = jax.jit(lambda t: jax.random.randint(jax.random.fold_in(data_key, t), (batch,), 0,
                                                     jnp.iinfo(jnp.int32).max), out_shardings=bsh)
  counter = iter(range(10**9))  # fresh indices per batch, as in training

  def make():
    generator(indices_for(next(counter))).block_until_ready()

  times = timed(make, args.step_steps, args.warmup + 1)  # +1: the compiling call
  return {"images_per_s": batch / statistics.median(times), "ms": spread_ms(times),
          "note": f"median of {args.step_steps} blocked batches (indices + geometry + jitter)"}


def part_e2e(args, config) -> dict:
  """`train.pretrain` (no probes) in a fresh workdir; the steady rate from its metrics.jsonl."""
  from mono_ssl import train

  config.train.num_steps = args.steps
  config.train.log_every = args.log_every
  batch = config.train.batch_size
  with tempfile.TemporaryDirectory(prefix="pipeline_e2e_") as wd:
    _, _, info = train.pretrain(config, Path(wd))
    recs = [json.loads(l) for l in (Path(wd) / "metrics.jsonl").read_text().splitlines() if l.strip()]
  first, last = recs[0], recs[-1]
  # The loop syncs on the metrics before it stamps a record, so the stamps are exact.
  ips = (last["step"] - first["step"]) * batch / (last["elapsed_s"] - first["elapsed_s"])
  intervals = [r["images_per_s"] for r in recs[1:]]
  return {"images_per_s": ips, "wall_images_per_s": info["images_per_s"], "wall_s": info["wall_s"],
          "first_interval_s": first["elapsed_s"],
          "ms": "/".join(f"{1e3 * batch / x:.0f}" for x in
                         (max(intervals), statistics.median(intervals), min(intervals))),
          "note": f"train.pretrain steps {first['step']}..{last['step']} of {args.steps}, "
                  f"log_every {args.log_every}"}


def part_probe(args, config) -> dict:
  """The linear probes of one trunk on a limited CIFAR-10 train split."""
  import jax

  from mono_ssl import sharding as shd
  from mono_ssl import train
  from mono_ssl.errors import UserInputError

  config.probe.limit_per_class = args.probe_limit
  config.probe.epochs = args.probe_epochs
  try:
    train_ds, test_ds = train.load_probe_data(config)
  except UserInputError as e:
    return {"skipped": str(e)}
  test_ds = dataclasses.replace(test_ds, images=test_ds.images[:args.probe_test],
                                labels=test_ds.labels[:args.probe_test])
  mesh = shd.make_mesh()
  state = train.method_module(config).create_state(
      config, config.aug.out_size, jax.random.key(0), mesh, int(config.train.num_steps),
      data_size=int(config.data.dataset_size))
  stamps = []  # when each probe epoch ended (run_linear_probes syncs before it logs)

  def log(msg: str) -> None:
    if msg.startswith("probe epoch"):
      stamps.append(time.perf_counter())
    print(msg, flush=True)

  t0 = time.perf_counter()
  train.probe_trunk(state, config, train_ds, test_ds, mesh, log)
  wall = time.perf_counter() - t0
  bs = config.probe.batch_size
  steps = len(train_ds) // bs
  ips = (len(stamps) - 1) * steps * bs / (stamps[-1] - stamps[0]) if len(stamps) > 1 else None
  return {"images_per_s": ips, "wall_s": wall, "eval_s": t0 + wall - stamps[-1],
          "note": f"train.probe_trunk epochs 2..{args.probe_epochs} of {len(train_ds)} images "
                  f"({args.probe_limit}/class), B={bs}; eval of {len(test_ds)} test images "
                  f"{t0 + wall - stamps[-1]:.1f} s incl. compile"}


def run_part(args) -> None:
  """Child: runs one part, writes its results and peak RSS to `args.result`."""
  config = load_config(args.method, args.regime, args.scale)
  t0 = time.perf_counter()
  out = globals()[f"part_{args.part}"](args, config)
  out["child_s"] = time.perf_counter() - t0
  # ru_maxrss is in kB on Linux: the child's own peak, JAX's buffers included.
  out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  Path(args.result).write_text(json.dumps(out))


# --- the parent -----------------------------------------------------------------------------------


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--method", default="rotnet", choices=METHODS)
  p.add_argument("--regime", default="single", choices=("single", "deca", "full"))
  p.add_argument("--scale", default="cpu", choices=("cpu", "mini", "calib", "paper"),
                 help="the config's scale (the probe part reads that scale's probe set)")
  p.add_argument("--steps", type=int, default=300, help="train.num_steps of the e2e run")
  p.add_argument("--log-every", type=int, default=50, help="train.log_every of the e2e run")
  p.add_argument("--step-steps", type=int, default=30, help="timed steps (batches) of step/augment")
  p.add_argument("--warmup", type=int, default=3, help="untimed steps (batches) of step/augment first")
  p.add_argument("--probe-limit", type=int, default=500, help="probe train images per class")
  p.add_argument("--probe-epochs", type=int, default=3, help="probe epochs (the first is not timed)")
  p.add_argument("--probe-test", type=int, default=2000, help="probe test images evaluated")
  p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
  p.add_argument("--quick", action="store_true",
                 help="30 e2e steps (log every 10), 5 timed steps, 64/class x 2 probe epochs")
  p.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # internal: run one part
  p.add_argument("--result", help=argparse.SUPPRESS)  # internal: where the child writes
  args = p.parse_args()
  if args.quick:
    args.steps, args.log_every, args.step_steps, args.warmup = 30, 10, 5, 1
    args.probe_limit, args.probe_epochs, args.probe_test = 64, 2, 500
  if args.steps < 2 * args.log_every:
    p.error("--steps must be >= 2 x --log-every: the first log interval (compilation) is not timed")
  if args.part:
    run_part(args)
    return

  parts = [s.strip() for s in args.parts.split(",") if s.strip()]
  for s in parts:
    if s not in PARTS:
      p.error(f"unknown part {s!r}; known: {', '.join(PARTS)}")
  print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
  print(f"date {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}  host {platform.node()}  "
        f"cpus {os.cpu_count()}  jax {importlib.metadata.version('jax')}  "
        f"jaxlib {importlib.metadata.version('jaxlib')}")
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print(f"load before: {loadavg()}", flush=True)
  results: dict[str, dict] = {}
  with tempfile.TemporaryDirectory(prefix="pipeline_") as tmp:
    for part in parts:
      path = Path(tmp) / f"{part}.json"
      t0 = time.perf_counter()
      rc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *sys.argv[1:],
                           "--part", part, "--result", str(path)]).returncode
      if rc or not path.exists():
        results[part] = {"failed": f"child exited with {rc}"}
      else:
        results[part] = json.loads(path.read_text())
      # Printed as it goes, so a run cut short still reports its finished parts.
      r = results[part]
      shown = (f"{r['images_per_s']:.1f} img/s" if r.get("images_per_s")
               else r.get("skipped") or r.get("failed") or "no rate")
      print(f"done {part}: {shown}  ({time.perf_counter() - t0:.0f} s)  load {loadavg()}", flush=True)
  print(f"load after:  {loadavg()}")
  report(args, results)


def report(args, results: dict) -> None:
  """The markdown table and the derived lines."""
  base = results.get("step", {}).get("images_per_s")
  print(f"\n{args.method}, regime {args.regime}, scale {args.scale}; img/s = source images per second")
  hdr = (f"| {'part':<8} | {'img/s':>8} | {'/ step':>6} | {'peak RSS MiB':>12} | "
         f"{'ms/step min/med/max':>19} | notes |")
  print(hdr)
  print("|" + "|".join("-" * len(c) for c in hdr.split("|")[1:-1]) + "|")
  for part, r in results.items():
    if "images_per_s" not in r or r["images_per_s"] is None:
      print(f"| {part:<8} | {'-':>8} | {'-':>6} | {r.get('rss_mib', float('nan')):12.0f} | {'-':>19} | "
            f"{r.get('skipped') or r.get('failed') or r.get('note', '')} |")
      continue
    ips = r["images_per_s"]
    ratio = f"{ips / base:6.2f}" if base else f"{'-':>6}"
    print(f"| {part:<8} | {ips:8.1f} | {ratio} | {r['rss_mib']:12.0f} | {r.get('ms', '-'):>19} | "
          f"{r['note']} |")
  step, aug, e2e = (results.get(k, {}).get("images_per_s") for k in ("step", "augment", "e2e"))
  if "e2e" in results and e2e:
    r = results["e2e"]
    print(f"e2e incl. compilation and the final checkpoint: {r['wall_images_per_s']:.1f} img/s over "
          f"{r['wall_s']:.1f} s (first log interval {r['first_interval_s']:.1f} s)")
  if step and e2e:
    print(f"e2e / step alone: {e2e / step:.3f} (target >= 0.90: {'met' if e2e >= 0.9 * step else 'NOT met'})")
    if aug:
      batch = results["step"]["batch"]
      ms_step, ms_aug, ms_e2e = (batch * 1e3 / x for x in (step, aug, e2e))
      print(f"per step: step {ms_step:.0f} ms + augment {ms_aug:.0f} ms = {ms_step + ms_aug:.0f} ms "
            f"back to back; e2e {ms_e2e:.0f} ms; the rest (the loop's host work, or overlap if "
            f"negative) {ms_e2e - ms_step - ms_aug:+.0f} ms")
  if results.get("probe", {}).get("wall_s"):
    print(f"probe stage wall {results['probe']['wall_s']:.1f} s (compile, "
          f"{args.probe_epochs} epochs, eval)")


if __name__ == "__main__":
  from mono_ssl import xla_cpu
  xla_cpu.apply()  # faster XLA:CPU convolutions, set before JAX starts (mono_ssl/xla_cpu.py)
  main()
