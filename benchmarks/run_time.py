r"""Where one default RotNet run's time goes: training steps, patch generation, the loop's host
work, learning-curve probes and the final probes, with the probes' two training views (issue 38).

  PYTHONPATH=. python benchmarks/run_time.py [--scale calib] [--probe-limit 25] [--quick]

Everything is measured in this one process, on the config of
`configs/rotnet.py:regime=single,scale=<scale>`, then multiplied out to that run's volumes:
  * step: the jitted step `train.pretrain` runs (benchmarks/pipeline.py `part_step`), median;
  * patches: the patch generator alone (`part_augment`), median per batch;
  * host: the loop's own work per step, from a short real `train.pretrain` (`part_e2e`) minus
    step and patches;
  * probes, per view (`probe.train_views` crops | whole): `run_linear_probes` on the random-init
    trunk with `--probe-limit` train images a class, timed per probe epoch after the first
    (which compiles and, for whole views, computes the cached features: that pass is timed
    in the first epoch's extra), and the evaluation of `--probe-eval` test images; each at two
    sizes (x1 and x2), so that the fixed costs (compilation) and the per-image ones separate. A curve point
    (probe.curve_train_size images, curve_epochs, scored on curve_val_size) and the two final
    probes (trained and random trunk: the whole train split for probe.epochs, the whole test
    split) are these rates times their image-epochs: lines marked "projected".
The steps count is the config's train.num_steps, the curve points its curve_every's.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # pipeline.py beside this file

import pipeline  # noqa: E402

from mono_ssl import datasets  # noqa: E402
from mono_ssl.curves import curve_steps  # noqa: E402


def probe_once(config, view: str, limit: int, n_eval: int, epochs: int) -> dict:
  """One `run_linear_probes` on the random-init trunk: its train size, seconds per epoch after
  the first, the first epoch's extra seconds (compilation; whole views: the feature pass) and
  the evaluation's seconds."""
  import jax

  from mono_ssl import sharding as shd
  from mono_ssl import train
  from mono_ssl.probe import ProbeConfig, run_linear_probes
  config.probe.limit_per_class = limit
  config.probe.epochs = epochs
  config.probe.train_views = view
  train_ds, test_ds = train.load_probe_data(config)
  test_ds = dataclasses.replace(test_ds, images=test_ds.images[:n_eval], labels=test_ds.labels[:n_eval])
  mesh = shd.make_mesh()
  state = train.method_module(config).create_state(config, config.aug.out_size, jax.random.key(0), mesh,
                                                   int(config.train.num_steps))
  apply_fn, variables = train.method_module(config).trunk(state)
  ends: list[float] = []
  log = lambda msg: ends.append(time.perf_counter()) if msg.startswith("probe epoch") else None  # noqa: E731
  t0 = time.perf_counter()
  run_linear_probes(apply_fn, variables, train_ds, test_ds, ProbeConfig.from_config(config.probe), mesh, log)
  t_end = time.perf_counter()
  if len(ends) < 2:
    raise SystemExit(f"the probe logged {len(ends)} epochs; --probe-epochs must be >= 2")
  per_epoch = (ends[-1] - ends[0]) / (len(ends) - 1)
  return {"n": len(train_ds), "per_epoch": per_epoch, "first_extra": ends[0] - t0 - per_epoch,
          "n_eval": len(test_ds), "eval": t_end - ends[-1]}


def fit_line(a: dict, b: dict, key: str, n: str) -> tuple[float, float]:
  """(seconds per image, fixed seconds) of `key` through two measurements at sizes a[n] < b[n];
  both clipped at 0 (timing noise can tip a tiny slope or intercept below it)."""
  slope = (b[key] - a[key]) / (b[n] - a[n])
  return max(slope, 0.0), max(a[key] - slope * a[n], 0.0)


def probe_seconds(r: dict, n: int, epochs: int, n_eval: int) -> float:
  """One probe's projected seconds: `epochs` over n images, the first epoch's fixed and per-image
  extra (compilation; whole views: the feature pass), and the evaluation of n_eval images."""
  return (n * epochs * r["per_image_epoch_s"] + r["first_fixed_s"] + n * r["first_per_image_s"]
          + r["eval_fixed_s"] + n_eval * r["eval_per_image_s"])


def probe_rates(load, view: str, limit: int, n_eval: int, epochs: int) -> dict:
  """Per-image slopes and fixed intercepts of a probe's parts, from two sizes (limit and 2x limit,
  n_eval and 2x n_eval): compilation is a fixed cost, the feature pass and the epochs scale."""
  a = probe_once(load(), view, limit, n_eval, epochs)
  b = probe_once(load(), view, 2 * limit, 2 * n_eval, epochs)
  epoch_slope, _ = fit_line(a, b, "per_epoch", "n")
  first_slope, first_fixed = fit_line(a, b, "first_extra", "n")
  eval_slope, eval_fixed = fit_line(a, b, "eval", "n_eval")
  return {"view": view, "sizes": (a["n"], b["n"]), "per_image_epoch_s": epoch_slope,
          "first_per_image_s": first_slope, "first_fixed_s": first_fixed,
          "eval_per_image_s": eval_slope, "eval_fixed_s": eval_fixed}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--scale", default="calib", choices=("cpu", "mini", "calib"))
  p.add_argument("--probe-limit", type=int, default=25, help="probe train images a class (timing)")
  p.add_argument("--probe-epochs", type=int, default=3)
  p.add_argument("--probe-eval", type=int, default=2000, help="test images evaluated (timing)")
  p.add_argument("--steps", type=int, default=10, help="timed steps of step/patches")
  p.add_argument("--e2e-steps", type=int, default=30)
  p.add_argument("--quick", action="store_true", help="cpu scale, tiny volumes")
  args = p.parse_args(argv)
  if args.quick:
    args.scale, args.probe_limit, args.probe_epochs, args.probe_eval = "cpu", 16, 2, 200
    args.steps, args.e2e_steps = 3, 6
  load = lambda: pipeline.load_config("rotnet", "single", args.scale)  # noqa: E731
  cfg = load()
  steps, pc = int(cfg.train.num_steps), cfg.probe
  ns = argparse.Namespace(step_steps=args.steps, warmup=1, steps=args.e2e_steps,
                          log_every=max(2, args.e2e_steps // 3))
  step = pipeline.part_step(ns, load())
  aug = pipeline.part_augment(ns, load())
  e2e = pipeline.part_e2e(ns, load())
  b = int(cfg.train.batch_size)
  step_s, aug_s, e2e_s = (b / r["images_per_s"] for r in (step, aug, e2e))
  host_s = max(0.0, e2e_s - step_s - aug_s)
  rates = {v: probe_rates(load, v, args.probe_limit, args.probe_eval, args.probe_epochs)
           for v in ("crops", "whole")}
  n_train = len(datasets.load_split(pc.dataset, "train"))
  n_test = len(datasets.load_split(pc.dataset, "test"))
  n_points = len(curve_steps(int(pc.curve_every), steps))

  rows = [("training steps", steps * step_s, "measured x steps"),
          ("patch generation", steps * aug_s, "measured x steps"),
          ("loop host work", steps * host_s, "measured x steps")]
  for view in ("crops", "whole"):
    rows.append((f"curve probes ({view})", n_points * probe_seconds(rates[view], pc.curve_train_size, pc.curve_epochs,
                                                               pc.curve_val_size), "projected"))
    arms = 2 if pc.random_baseline else 1
    rows.append((f"final probes ({view})", arms * probe_seconds(rates[view], n_train, pc.epochs, n_test), "projected"))
  print(f"rotnet single at scale {args.scale}: {steps} steps of B={b}; {n_points} curve points "
        f"({pc.curve_train_size} images x {pc.curve_epochs} epochs, {pc.curve_val_size} scored); "
        f"final probes {n_train} images x {pc.epochs} epochs, {n_test} test, "
        f"{'trained + random' if pc.random_baseline else 'trained'} trunk; config's view: {pc.train_views}")
  for v, r in rates.items():
    print(f"probe rates ({v}, fitted on {r['sizes'][0]} and {r['sizes'][1]} images): "
          f"{1e3 * r['per_image_epoch_s']:.3f} ms per image-epoch; first epoch {r['first_fixed_s']:.1f} s + "
          f"{1e3 * r['first_per_image_s']:.3f} ms/image; eval {r['eval_fixed_s']:.1f} s + "
          f"{1e3 * r['eval_per_image_s']:.3f} ms/image")
  print(f"per step: step {1e3 * step_s:.0f} ms, patches {1e3 * aug_s:.0f} ms, loop host {1e3 * host_s:.0f} ms")
  print("| part | seconds | how |")
  print("|---|---:|---|")
  for name, s, how in rows:
    print(f"| {name} | {s:.0f} | {how} |")
  for view in ("crops", "whole"):
    total = sum(s for n, s, _ in rows if "(" not in n or f"({view})" in n)
    print(f"total with {view} probes: {total:.0f} s ({total / 60:.1f} min)")
  return 0


if __name__ == "__main__":
  from mono_ssl import xla_cpu
  xla_cpu.apply()  # the runs' XLA flags, set before JAX starts (mono_ssl/xla_cpu.py)
  raise SystemExit(main())
