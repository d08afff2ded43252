"""The JAX k-means (mono_ssl.kmeans) against faiss-cpu and scikit-learn, from the same start.

  python benchmarks/kmeans.py [--iters 10] [--repeats 1] [--case-budget 120] [--quick]
                              [--cases 50000x256x1000,...]
                              [--impls jax,faiss,sklearn] [--json out.json]

Needs the bench extra (`pip install -e .[bench]`: faiss-cpu, scikit-learn);
a library that is missing is left out of the table.

Every implementation gets the same float32 data, the same initial centroids
and the same number of Lloyd iterations, and returns what mono_ssl.kmeans
returns (centroids after `iters` updates and the assignments to them, so
`iters` + 1 assignment passes):
  * JAX: `kmeans(x, k, init_centroids=c0, num_iters=iters)`, timed after a
    compiling warm-up (num_iters is not baked into the program), to
    block_until_ready.
  * faiss: `faiss.Kmeans(niter=iters, max_points_per_centroid=N)` (no
    subsampling; faiss never stops early), `train(x, init_centroids=c0)`, then
    `index.search(x, 1)` for the final assignments.
  * scikit-learn: `KMeans(init=c0, n_init=1, max_iter=iters, tol=0,
    algorithm="lloyd")`; it still stops if the assignments stop changing
    (its n_iter_ is then shown).
The inertia column is each implementation's final centroids evaluated by one
routine (nearest centroid, squared distance computed directly, summed in
float64), so it compares where the runs ended, not how each library sums.

faiss and scikit-learn run on OpenBLAS, which reads OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE when it loads. Machines that set them (to pin a kernel) may
thereby slow those libraries down, or speed them up when OpenBLAS would
mis-detect the CPU, so each runs in two long-lived worker processes: one with
this environment and one without those variables. JAX/faiss is against the
faster faiss of the two. Timings interleave: every repeat runs every
implementation once on the case before the next repeat; a time is the fastest
repeat.

Data: a Gaussian mixture (K components, Zipf-like sizes, per-component
spread) in a 32-d latent space, randomly projected to D dims, plus isotropic
noise, rows L2-normalised (the shape of DeepCluster's normalised features);
the initial centroids are K distinct random rows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FULL_CASES = [(50_000, 256, 100), (50_000, 256, 1000), (100_000, 256, 10_000), (100_000, 4096, 1000)]
QUICK_CASES = [(4000, 32, 20), (6000, 64, 200)]
BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def make_data(n: int, d: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(x (n, d), initial centroids (k, d)), float32, deterministic in the seed."""
  rng = np.random.default_rng([seed, n, d, k])
  latent = 32
  sizes = 1.0 / np.sqrt(np.arange(1, k + 1))
  labels = rng.choice(k, n, p=sizes / sizes.sum())
  means = rng.standard_normal((k, latent), dtype=np.float32)
  spread = rng.uniform(0.3, 0.8, k).astype(np.float32)
  z = means[labels] + spread[labels, None] * rng.standard_normal((n, latent), dtype=np.float32)
  proj = rng.standard_normal((latent, d), dtype=np.float32) * np.float32(latent**-0.5)
  x = z @ proj
  x += np.float32(0.3) * rng.standard_normal((n, d), dtype=np.float32)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  assert x.dtype == np.float32
  return x, x[rng.choice(n, k, replace=False)].copy()


# ----------------------------------------------------------------- workers ---
# A worker is this script with --worker LIB, in the BLAS environment under
# test. It reads one JSON request per line on stdin and answers one per line.

def _blas_info() -> str:
  try:
    from threadpoolctl import threadpool_info
  except ImportError:
    return "?"
  return ", ".join(sorted({f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                           f"x{i.get('num_threads')}" for i in threadpool_info()
                           if i.get("user_api") == "blas"}))


def _run_faiss(x: np.ndarray, init: np.ndarray, iters: int) -> tuple[float, np.ndarray, int]:
  import faiss
  n, d = x.shape
  k = init.shape[0]
  t = time.perf_counter()
  km = faiss.Kmeans(d, k, niter=iters, max_points_per_centroid=n, min_points_per_centroid=1, seed=1234)
  km.train(x, init_centroids=init)
  km.index.search(x, 1)  # the final assignments, as mono_ssl.kmeans returns them
  return time.perf_counter() - t, np.array(km.centroids, np.float32), iters


def _run_sklearn(x: np.ndarray, init: np.ndarray, iters: int) -> tuple[float, np.ndarray, int]:
  from sklearn.cluster import KMeans
  t = time.perf_counter()
  km = KMeans(init.shape[0], init=init, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd",
              random_state=0).fit(x)
  return time.perf_counter() - t, km.cluster_centers_.astype(np.float32), int(km.n_iter_)


RUNNERS = {"faiss": _run_faiss, "sklearn": _run_sklearn}


def worker(lib: str) -> None:
  """Serves timing requests for one library until stdin closes."""
  run = RUNNERS[lib]
  rng = np.random.default_rng(0)  # warm-up: thread pools and BLAS buffers exist before any timing
  wx = rng.standard_normal((2000, 16), dtype=np.float32)
  run(wx, wx[:10].copy(), 2)
  print(json.dumps({"blas": _blas_info()}), flush=True)
  cached = (None, None, None)
  for line in sys.stdin:
    req = json.loads(line)
    if cached[0] != req["data"]:
      cached = (None, None, None)  # drop the previous case before loading the next
      with np.load(req["data"]) as f:
        cached = (req["data"], np.ascontiguousarray(f["x"]), np.ascontiguousarray(f["init"]))
    t, cents, n_iter = run(cached[1], cached[2], req["iters"])
    np.save(req["out"], cents)
    print(json.dumps({"time": t, "n_iter": n_iter}), flush=True)


class Worker:
  """A long-lived worker process for one (library, environment)."""

  def __init__(self, lib: str, env: dict[str, str], label: str):
    self.lib, self.label = lib, label
    self.proc = subprocess.Popen([sys.executable, __file__, "--worker", lib], env=env, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)

  def ready(self) -> None:
    self.blas = json.loads(self._readline())["blas"]

  def _readline(self) -> str:
    line = self.proc.stdout.readline()
    if not line:
      raise RuntimeError(f"{self.label} worker died (exit code {self.proc.wait()})")
    return line

  def run(self, data: str, iters: int, out: str) -> dict:
    self.proc.stdin.write(json.dumps({"data": data, "iters": iters, "out": out}) + "\n")
    self.proc.stdin.flush()
    return json.loads(self._readline())

  def close(self) -> None:
    self.proc.stdin.close()
    try:
      self.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
      self.proc.kill()
      self.proc.wait()


# -------------------------------------------------------------------- main ---

def _parse_cases(spec: str) -> list[tuple[int, int, int]]:
  return [tuple(int(v) for v in c.lower().split("x")) for c in spec.split(",") if c]


def _available(lib: str) -> bool:
  import importlib.util
  return importlib.util.find_spec(lib) is not None


def _run_cases(cases, impls, workers, args) -> list[dict]:
  """Times every implementation on every case; returns one dict per case."""
  import jax
  import jax.numpy as jnp

  from mono_ssl import kmeans as km

  @jax.jit
  def evaluate(x, cents):  # the one inertia routine for every implementation
    return km.assign(x, cents)[1]

  def inertia(xj, cents) -> float:
    return float(np.sum(np.asarray(evaluate(xj, jnp.asarray(cents))), dtype=np.float64))

  rows = []
  with tempfile.TemporaryDirectory(prefix="kmeans_bench_") as tmp:
    for n, d, k in cases:
      x, init = make_data(n, d, k, args.seed)
      data = os.path.join(tmp, f"data_{n}_{d}_{k}.npz")
      if workers:
        np.savez(data, x=x, init=init)
      xj, ij = jnp.asarray(x), jnp.asarray(init)
      if "jax" in impls:  # compile (and a first pass) outside the timing
        jax.block_until_ready(km.kmeans(xj, k, init_centroids=ij, num_iters=0))
      names = (["jax"] if "jax" in impls else []) + list(workers)
      times = {name: [] for name in names}
      ends, n_iters = {}, {}
      start = time.perf_counter()
      for r in range(args.repeats):
        if r and time.perf_counter() - start > args.case_budget:
          break  # the big cases: one interleaved round is minutes already
        for name in names[r % len(names):] + names[:r % len(names)]:
          if name == "jax":
            t = time.perf_counter()
            res = jax.block_until_ready(km.kmeans(xj, k, init_centroids=ij, num_iters=args.iters))
            times[name].append(time.perf_counter() - t)
            ends[name] = np.asarray(res.centroids)
          else:
            out = os.path.join(tmp, "centroids.npy")
            rep = workers[name].run(data, args.iters, out)
            times[name].append(rep["time"])
            ends[name], n_iters[name] = np.load(out), rep["n_iter"]
      if os.path.exists(data):
        os.remove(data)
      row = {"n": n, "d": d, "k": k, "iters": args.iters, "runs": len(times[names[0]]),
             "time": {_key(nm): min(v) for nm, v in times.items()},
             "inertia": {_key(nm): inertia(xj, c) for nm, c in ends.items()},
             "n_iter": {_key(nm): v for nm, v in n_iters.items()}}
      rows.append(row)
      print(f"done {n}x{d}x{k}: " + ", ".join(f"{nm} {t:.3f}s" for nm, t in row["time"].items()),
            file=sys.stderr, flush=True)
      del xj, ij, x, init
  return rows


def main(argv: list[str] | None = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--iters", type=int, default=10, help="Lloyd iterations (updates) for every implementation")
  ap.add_argument("--repeats", type=int, default=1, help="timed runs per implementation and case (fastest shown)")
  ap.add_argument("--case-budget", type=float, default=120.0,
                  help="no further repeat of a case once this many seconds went into it")
  ap.add_argument("--quick", action="store_true", help=f"small cases {QUICK_CASES}, seconds in all")
  ap.add_argument("--cases", type=str, default="", help="NxDxK,... (default: the four issue cases)")
  ap.add_argument("--impls", type=str, default="jax,faiss,sklearn")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--json", type=str, default="", help="also write the results here")
  ap.add_argument("--worker", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
  args = ap.parse_args(argv)
  if args.worker:
    return worker(args.worker)

  sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
  cases = _parse_cases(args.cases) if args.cases else (QUICK_CASES if args.quick else FULL_CASES)
  impls = args.impls.split(",")
  libs = [lib for lib in ("faiss", "sklearn") if lib in impls]
  missing = [lib for lib in libs if not _available(lib)]
  libs = [lib for lib in libs if lib not in missing]
  clean_env = {k: v for k, v in os.environ.items() if k not in BLAS_VARS}
  envs = [("env", dict(os.environ))]
  if len(clean_env) < len(os.environ):
    envs.append(("no OPENBLAS_*", clean_env))
  workers: dict = {}
  try:
    for lib in libs:
      for name, env in envs:
        workers[(lib, name)] = Worker(lib, env, f"{lib} ({name})")
    for w in workers.values():
      w.ready()
    load = os.getloadavg()[0]
    rows = _run_cases(cases, impls, workers, args)
    args.load = (load, os.getloadavg()[0])
  finally:
    for w in workers.values():
      w.close()

  _print_table(rows, libs, envs, workers, missing, args)
  if args.json:
    Path(args.json).write_text(json.dumps({"rows": rows, "blas": {_key(k): w.blas for k, w in workers.items()}},
                                          indent=1))


def _key(name) -> str:
  return name if isinstance(name, str) else f"{name[0]} ({name[1]})"


def _best(row: dict, lib: str) -> str | None:
  """The faster environment's key for lib in this row."""
  keys = [k for k in row["time"] if k.startswith(lib + " ")]
  return min(keys, key=lambda k: row["time"][k]) if keys else None


def _print_table(rows, libs, envs, workers, missing, args) -> None:
  from importlib.metadata import PackageNotFoundError, version

  import jax

  def ver(p):
    try:
      return version(p)
    except PackageNotFoundError:
      return "-"

  cpu = platform.machine()
  try:
    cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
  except (OSError, StopIteration):
    pass
  print(f"machine: {os.cpu_count()} CPU cores ({cpu}), jax {jax.__version__} ({jax.devices()[0].platform}), "
        f"faiss-cpu {ver('faiss-cpu')}, scikit-learn {ver('scikit-learn')}, numpy {np.__version__}")
  env_vals = " ".join(f"{v}={os.environ[v]}" for v in BLAS_VARS if v in os.environ) or "none set"
  print(f"environment: {env_vals}")
  for (lib, name), w in workers.items():
    print(f"  {lib} ({name}): {w.blas}")
  if missing:
    print(f"not installed, left out: {', '.join(missing)} (pip install -e .[bench])")
  print("data: Gaussian mixture (K components, Zipf-like sizes) in 32-d, randomly projected to D, plus noise, "
        "rows L2-normalised; float32; initial centroids = K distinct random rows")
  print(f"1-min load average {args.load[0]:.1f} at the start, {args.load[1]:.1f} at the end (shared machine)")
  print(f"{args.iters} Lloyd iterations from the same initial centroids; seconds = fastest of the case's "
        f"interleaved runs; inertia = final centroids evaluated by one routine")
  cols = ["jax"] + [f"{lib} ({name})" for lib in libs for name, _ in envs]
  head = ["N", "D", "K", "runs"] + [f"{c} s" for c in cols] + (["JAX/faiss"] if "faiss" in libs else [])
  head += ["inertia jax"] + [f"inertia {lib}" for lib in libs] + (["jax vs faiss"] if "faiss" in libs else [])
  print("| " + " | ".join(head) + " |")
  print("|" + "---:|" * len(head))
  for row in rows:
    t, inert = row["time"], row["inertia"]
    cells = [f"{row['n']:,}", str(row["d"]), f"{row['k']:,}", str(row["runs"])]
    for c in cols:
      note = f" ({row['n_iter'][c]} it)" if row["n_iter"].get(c, args.iters) != args.iters else ""
      cells.append(f"{t[c]:.3f}{note}" if c in t else "-")
    best_faiss = _best(row, "faiss")
    if "faiss" in libs:
      cells.append(f"{t['jax'] / t[best_faiss]:.2f}x" if "jax" in t else "-")
    cells.append(f"{inert['jax']:.6g}" if "jax" in inert else "-")
    for lib in libs:
      b = _best(row, lib)
      cells.append(f"{inert[b]:.6g}" if b else "-")
    if "faiss" in libs:
      cells.append(f"{(inert['jax'] - inert[best_faiss]) / inert[best_faiss]:+.3%}" if "jax" in inert else "-")
    print("| " + " | ".join(cells) + " |")
  if "faiss" in libs:
    print("JAX/faiss: JAX time over the faster faiss environment; inertia faiss/sklearn: the faster environment's run;"
          " jax vs faiss: relative inertia difference.")


if __name__ == "__main__":
  from mono_ssl import xla_cpu
  xla_cpu.apply()  # faster XLA:CPU convolutions, set before JAX starts (mono_ssl/xla_cpu.py)
  main()
