r"""The probes' two training views on one trunk, paired over probe seeds (issue 38's equivalence check
for `probe.train_views='whole'` as a scale's default).

  PYTHONPATH=. python benchmarks/probe_views.py [--scale calib] [--run WORKDIR] [--fit 20000] \
      [--epochs 10] [--seeds 0,1] [--out results/calib_scale/probe_views.json]

The trunk: a finished run's latest checkpoint (`--run`), or the scale's random-init RotNet trunk
(seed 0). The probes: the config's recipe (`configs/rotnet.py:regime=single,scale=<scale>`,
whose crop scale is (1, 1): whole images, aspect jitter and flips drawn each step) with
`--fit` images of the train split's carve for `--epochs`, scored on 8,000 images of its
validation carve (`curves.CurveProbe`; never the test split), once with
`train_views='crops'` (through the trunk every step) and once with `'whole'` (each image's and
its mirror's features computed once, the heads trained on them), for each probe seed. Prints
each top-1, the mean whole - crops difference per layer with its standard error over seeds,
and the wall seconds of each view.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import jax

from mono_ssl import config_lib, curves, datasets, sharding, train
from mono_ssl.models.alexnet import LAYER_NAMES


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--scale", default="calib", choices=("cpu", "mini", "calib"))
  p.add_argument("--run", default="", help="a finished run's workdir (default: the random-init trunk)")
  p.add_argument("--fit", type=int, default=20_000)
  p.add_argument("--epochs", type=int, default=10)
  p.add_argument("--seeds", default="0,1", type=lambda s: [int(x) for x in s.split(",")])
  p.add_argument("--out", default="")
  args = p.parse_args(argv)
  if args.run:
    from mono_ssl.workdir import saved_config
    cfg = saved_config(Path(args.run))
    state = train.state_at(cfg, Path(args.run))
  else:
    cfg = config_lib.base_config("rotnet", "single", args.scale)
    state = train.method_module(cfg).create_state(cfg, cfg.aug.out_size, jax.random.key(cfg.seed),
                                                  sharding.make_mesh(), int(cfg.train.num_steps))
  apply_fn, variables = train.method_module(cfg).trunk(state)
  probe_train = datasets.load_split(cfg.probe.dataset, "train")
  rows: dict = {"crops": {}, "whole": {}}
  wall: dict = {"crops": [], "whole": []}
  for seed in args.seeds:
    for view in ("crops", "whole"):
      pc = cfg.probe.copy_and_resolve_references()
      with pc.unlocked():
        pc.train_views, pc.seed = view, seed
        pc.curve_train_size, pc.curve_epochs, pc.curve_val_size = args.fit, args.epochs, 8000
      t0 = time.time()
      res = curves.CurveProbe(apply_fn, variables, probe_train, pc)(variables)
      wall[view].append(time.time() - t0)
      rows[view][seed] = {l: res[l]["top1"] for l in LAYER_NAMES}
      print(f"seed {seed} {view:5s}: " + " / ".join(f"{rows[view][seed][l]:.2f}" for l in LAYER_NAMES)
            + f"  ({wall[view][-1]:.0f} s)", flush=True)
  diff = {}
  for l in LAYER_NAMES:
    d = [rows["whole"][s][l] - rows["crops"][s][l] for s in args.seeds]
    se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else float("nan")
    diff[l] = {"mean": round(statistics.mean(d), 2), "se": round(se, 2)}
  print("whole - crops, mean (s.e. over seeds): "
        + " / ".join(f"{diff[l]['mean']:+.2f} ({diff[l]['se']:.2f})" for l in LAYER_NAMES))
  print(f"wall s per probe: crops {statistics.mean(wall['crops']):.0f}, whole {statistics.mean(wall['whole']):.0f}")
  if args.out:
    out = {"trunk": args.run or f"random init, {args.scale}", "fit": args.fit, "epochs": args.epochs,
           "val_images": 8000, "seeds": args.seeds, "top1": rows, "whole_minus_crops": diff,
           "wall_s": {v: [round(w, 1) for w in ws] for v, ws in wall.items()}}
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, args.out)
  return 0


if __name__ == "__main__":
  from mono_ssl import xla_cpu
  xla_cpu.apply()  # the runs' XLA flags, set before JAX starts (mono_ssl/xla_cpu.py)
  from mono_ssl.errors import UserInputError
  try:
    raise SystemExit(main())
  except UserInputError as e:  # a bad scale, run folder or data path: one line, no traceback
    raise SystemExit(f"error: {e}") from None
