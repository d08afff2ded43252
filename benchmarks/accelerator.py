"""One prepared accelerator check: paper-scale throughput, memory and projected run times.

  python benchmarks/accelerator.py            # on a GPU/TPU host, <= 8 min end to end
  python benchmarks/accelerator.py --quick    # the same code at tiny sizes on CPU (a test runs it)

Prints one Markdown table and writes it (with the raw figures as JSON) to `--out`:
- for RotNet, DeepCluster and BiGAN at scale=paper (224 px AlexNet, the configs' own
  batches; BiGAN with `recipe=donahue`), in float32 and bfloat16 (`model.dtype`):
  compile time; images/s of the jitted step alone (one batch held on device); images/s of
  pretraining end to end (each step's patches made on device from the full-resolution
  photograph, then the step); the fraction of the end-to-end time the step waits for its
  data (1 - step alone / end to end); peak device memory (`memory_stats`, cumulative over
  the cases run so far; none on CPU); forward-only images/s (DeepCluster's feature pass);
- DeepCluster's k-means at the paper's size (1.28M x 256 features, K = 10,000, 20 Lloyd
  iterations) in seconds;
- the streamed ImageNet-style loader (`datasets.open_stream`, decode + short side 256 +
  centre crop on host threads): decoded images/s per host core, on synthetic JPEGs the
  script writes with ImageNet's typical sizes (there is no ImageNet here);
- from those, the projected wall time of each paper-scale run on this device: steps x
  batch / end-to-end images/s, plus for DeepCluster every epoch's feature pass and k-means.
Compilation is timed once per case and excluded from the rates; each rate is the median
of `--reps` timed repetitions after a warm-up.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.loader import write_jpegs  # noqa: E402
from mono_ssl import config_lib, datasets, train  # noqa: E402
from mono_ssl import kmeans as km  # noqa: E402
from mono_ssl import sharding as shd  # noqa: E402
from mono_ssl.augment import PatchGenerator  # noqa: E402
from mono_ssl.data import pretrain_source  # noqa: E402

METHODS = {"rotnet": ("rotnet", "regime=single"), "deepcluster": ("deepcluster", "regime=single"),
           "bigan": ("bigan", "regime=single,recipe=donahue")}
DTYPES = ("float32", "bfloat16")


def load_config(name: str, arg: str):
  return config_lib.load_config_file(REPO / "configs" / f"{name}.py", arg)


def median_s(fn, reps: int, warmup: int = 1) -> float:
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def peak_memory_gib() -> float | None:
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  return None if peak is None else peak / 2**30


def method_case(method: str, dtype: str, args) -> dict:
  """Compile time, step-alone and end-to-end images/s, data wait, memory, forward images/s."""
  name, arg = METHODS[method]
  config = load_config(name, f"{arg},scale={'cpu' if args.quick else 'paper'}")
  config.unlock()
  config.model.dtype = dtype
  if args.quick:  # tiny: a quarter-width AlexNet, small batches, a small image
    config.model.width_mult, config.model.hidden = 0.25, (32, 32)
    config.train.batch_size, config.data.max_side = 8, 512
    if method == "deepcluster":
      config.deepcluster.num_clusters, config.data.dataset_size = 8, 64
  mesh = shd.make_mesh()
  repl, bsh = shd.replicated(mesh), shd.batch_sharded(mesh)
  source = pretrain_source(config)
  module = train.method_module(config)
  state = train.initial_state(config, source, mesh)
  gen = PatchGenerator(shd.to_global(source.bank, repl), source.aug, seed=0, period=source.size)
  batch = config.train.batch_size
  make_batch = getattr(module, "make_batch", None)

  def batch_for(t: int):
    idx = shd.to_global(((np.arange(batch) + t * batch) % source.size).astype(np.int32), bsh)
    images = gen(idx)
    return images if make_batch is None else make_batch(images, idx)

  step = jax.jit(module.make_train_step(config=config), donate_argnums=0,
                 in_shardings=(repl, bsh, repl), out_shardings=(repl, repl))
  first = batch_for(0)
  t0 = time.perf_counter()
  compiled = step.lower(state, first, jax.random.key(0)).compile()
  compile_s = time.perf_counter() - t0
  box = {"state": state}

  def step_alone():
    box["state"], m = compiled(box["state"], first, jax.random.key(1))
    return m

  counter = {"t": 1}

  def end_to_end():
    counter["t"] += 1
    box["state"], m = compiled(box["state"], batch_for(counter["t"]), jax.random.key(counter["t"]))
    return m

  alone_s = median_s(step_alone, args.reps)
  e2e_s = median_s(end_to_end, args.reps)
  apply_fn, variables = module.trunk(box["state"])
  fwd = jax.jit(lambda v, x: apply_fn(v, x, train=False)[0])
  images = first["images"] if isinstance(first, dict) else first
  fwd_s = median_s(lambda: fwd(variables, images), args.reps)
  total = config.train.num_steps
  return {"method": method, "dtype": dtype, "batch": batch, "steps": int(total),
          "compile_s": compile_s, "step_ips": batch / alone_s, "e2e_ips": batch / e2e_s,
          "data_wait": max(0.0, 1.0 - alone_s / e2e_s), "fwd_ips": batch / fwd_s,
          "peak_gib": peak_memory_gib(), "dataset_size": int(source.size),
          "reassign": float(config.deepcluster.reassign) if method == "deepcluster" else None}


def kmeans_case(args) -> dict:
  n, d, k = (4000, 16, 20) if args.quick else (1_281_167, 256, 10_000)
  x = jax.random.normal(jax.random.key(0), (n, d))
  x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
  t0 = time.perf_counter()
  res = km.kmeans(x, k, key=jax.random.key(1), num_iters=20, init="random")
  jax.block_until_ready(res.assignments)
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  res = km.kmeans(x, k, key=jax.random.key(2), num_iters=20, init="random")
  jax.block_until_ready(res.assignments)
  return {"n": n, "d": d, "k": k, "first_s": first, "s": time.perf_counter() - t0}


def loader_case(args) -> dict:
  count = 48 if args.quick else 1024
  cores = os.cpu_count() or 1
  with tempfile.TemporaryDirectory() as tmp:
    write_jpegs(Path(tmp), count)
    stream = datasets.open_stream("cifar10", "train", tmp, 256)
    batch = 16 if args.quick else 128
    spans = [np.arange(lo, min(lo + batch, count)) for lo in range(0, count, batch)]
    stream.fetch(spans[0])  # warm the pool and the file cache
    t0 = time.perf_counter()
    n = sum(len(stream.fetch(sp)[1]) for sp in spans)
    rate = n / (time.perf_counter() - t0)
  return {"images": n, "cores": cores, "workers": stream.workers, "ips": rate,
          "ips_per_core": rate / min(cores, stream.workers)}


def project(case: dict, kmeans_s: float | None) -> float:
  """Projected seconds of the paper-scale run: its steps at the end-to-end rate, plus for
  DeepCluster each clustering's feature pass over the cluster set and its k-means."""
  seconds = case["steps"] * case["batch"] / case["e2e_ips"]
  if case["method"] == "deepcluster":
    per_epoch = math.ceil(case["reassign"] * case["dataset_size"] / case["batch"])
    clusterings = math.ceil(case["steps"] / per_epoch)
    seconds += clusterings * (case["dataset_size"] / case["fwd_ips"] + (kmeans_s or 0.0))
  return seconds


def _h(seconds: float) -> str:
  return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def table(cases: list[dict], kmeans: dict, loader: dict, device: str) -> str:
  lines = [f"Device: {device}; JAX {jax.__version__}.", "",
           "| method | dtype | batch | compile s | step img/s | end-to-end img/s | data wait "
           "| forward img/s | peak GiB | projected run |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for c in cases:
    peak = "–" if c["peak_gib"] is None else f"{c['peak_gib']:.1f}"
    lines.append(f"| {c['method']} | {c['dtype']} | {c['batch']} | {c['compile_s']:.1f} | "
                 f"{c['step_ips']:.0f} | {c['e2e_ips']:.0f} | {100 * c['data_wait']:.0f}% | "
                 f"{c['fwd_ips']:.0f} | {peak} | {_h(c['projected_s'])} ({c['steps']} steps) |")
  lines += ["", f"k-means {kmeans['n']} x {kmeans['d']}, K = {kmeans['k']}, 20 iterations: "
            f"{kmeans['s']:.1f} s (first call, with compilation: {kmeans['first_s']:.1f} s).",
            f"Streamed loader (decode, short side 256, centre crop; {loader['images']} synthetic "
            f"ImageNet-sized JPEGs, {loader['workers']} threads on {loader['cores']} cores): "
            f"{loader['ips']:.0f} images/s, {loader['ips_per_core']:.0f} per core."]
  return "\n".join(lines)


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--quick", action="store_true", help="tiny sizes on CPU (the test)")
  ap.add_argument("--reps", type=int, default=5)
  ap.add_argument("--methods", default=",".join(METHODS))
  ap.add_argument("--dtypes", default=",".join(DTYPES))
  ap.add_argument("--out", default="", help="write the table (.md) and figures (.json) here")
  args = ap.parse_args(argv)
  if args.quick:
    args.reps = min(args.reps, 2)
  device = f"{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.devices()[0].platform})"
  print(f"# accelerator check on {device}", flush=True)
  cases = []
  for method in [m for m in args.methods.split(",") if m]:
    if method not in METHODS:
      print(f"--methods: {method!r} is not one of {', '.join(METHODS)}", file=sys.stderr)
      return 2
    for dtype in [d for d in args.dtypes.split(",") if d]:
      t0 = time.perf_counter()
      cases.append(method_case(method, dtype, args))
      print(f"{method} {dtype}: {cases[-1]['e2e_ips']:.0f} img/s end to end "
            f"({time.perf_counter() - t0:.0f} s)", flush=True)
  kmeans = kmeans_case(args)
  loader = loader_case(args)
  for c in cases:
    c["projected_s"] = project(c, kmeans["s"])
  out = table(cases, kmeans, loader, device)
  print(out)
  if args.out:
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "accelerator.md").write_text(out + "\n")
    (Path(args.out) / "accelerator.json").write_text(json.dumps(
        {"device": device, "cases": cases, "kmeans": kmeans, "loader": loader}, indent=1))
  return 0


if __name__ == "__main__":
  from mono_ssl import xla_cpu
  xla_cpu.apply()  # faster XLA:CPU convolutions, set before JAX starts (mono_ssl/xla_cpu.py)
  sys.exit(main())
