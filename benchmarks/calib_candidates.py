r"""Candidate stacks for the calibrated scale (issue 39): receptive fields, conv1's filters per
input value, step cost, and the random-vs-supervised window at every layer.

  PYTHONPATH=. python benchmarks/calib_candidates.py window --cands mini,c64,c64n \
      --steps 1500 --workroot /work/calib --out results/calib_scale
  PYTHONPATH=. python benchmarks/calib_candidates.py cost --cands mini,c64,c64n --out results/calib_scale

`window`: per candidate, a short supervised run (configs/supervised.py at scale=mini with the
candidate's stack in `model.convs`, input side and probe resize; head dropout 0.5 as the
paper's AlexNet; trained on Tiny-ImageNet's 80,000-image train split less its validation
carve) with a learning-curve point at step 0 (the random-init trunk) and at its last step
(the supervised trunk): linear probes at every layer fitted on `--fit` images of the train
carve and scored on the validation carve (`probe.val_fraction` of each class), never the
test split. Resumable (the workdir keeps checkpoints and curve points); each candidate's
row is written into --out as soon as it is done (`window_<name>.json`).
`cost`: the jitted RotNet step (B=128, state donated) and the supervised step, medians.
`table`: candidates.md from the JSON files in --out.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import jax

from mono_ssl import config_lib, curves, datasets, sharding, train, xla_cpu
from mono_ssl.models import alexnet as A

# name -> (model.convs spec, input side, probe resize (0: the images' own 64 px)).
CANDIDATES = {
    # today's mini stack at 48 px (Tiny-ImageNet resized 64 -> 48): the reference row.
    "mini": ("24:3p,48:3p,64:3,64:3,48:3p", 48, 48),
    # 64 px, no upsampling: conv1 5x5/2 (24 filters over 75 values: 0.32), the paper's map
    # layout one pool earlier (maps 32/15/15/15/15, head 7x7; the paper 55/27/13/13/13, 6x6).
    "c64": ("24:5/2p,64:3,96:3,96:3,64:3p", 64, 0),
    "c64n": ("24:5/2p,48:3,64:3,64:3,48:3p", 64, 0),   # the same at mini's widths
    "c64p": ("24:5/2p,64:3,96:3,96:3p,64:3p", 64, 0),  # conv5 after a 4th pool (7x7, 89%)
}
DATASET = "tiny_imagenet_400"


def geometry(name: str) -> dict:
  spec, side, _ = CANDIDATES[name]
  convs = A.parse_convs(spec)
  rf = A.receptive_fields(convs, side)
  flops, c_in = 0, 3
  for c, l in zip(convs, A.LAYER_NAMES):
    flops += 2 * rf[l]["map"] ** 2 * c.kernel ** 2 * c_in * c.filters
    c_in = c.filters
  return {"convs": spec, "input": side,
          "rf_pct": [round(100 * rf[l]["fraction"], 1) for l in A.LAYER_NAMES],
          "maps": [rf[l]["map"] for l in A.LAYER_NAMES], "final_map": rf["final_map"],
          "conv1_filters_per_value": round(A.conv1_filters_per_value(convs), 3),
          "conv_mflop_fwd": round(flops / 1e6, 1), "gates": A.scale_gates(convs, side)}


def config_for(name: str, method: str, steps: int, fit: int, lr: float = 0.0, views: str = "crops",
               curve_every: int = 0, probe_epochs: int = 4, lr_boundaries: tuple = ()):
  spec, side, resize = CANDIDATES[name]
  path = "configs/supervised.py:scale=mini" if method == "supervised" else "configs/rotnet.py:scale=mini,regime=full"
  cfg = config_lib.load_config_file(*path.split(":", 1))
  with cfg.unlocked():
    cfg.model.convs = spec
    cfg.aug.out_size = cfg.aug.patch_size = side
    cfg.probe.resize = resize
    cfg.probe.dataset = cfg.data.full_dataset = DATASET
    cfg.data.exclude_val = True  # never pretrain on the validation carve the window is read on
    cfg.train.num_steps = steps
    cfg.train.ckpt_every = 250
    cfg.probe.curve_every = curve_every or steps
    cfg.probe.train_views = views
    if lr:
      cfg.train.lr = lr
    if lr_boundaries:
      cfg.train.lr_boundaries = tuple(lr_boundaries)
    cfg.probe.curve_train_size = fit
    cfg.probe.curve_val_size = 8000
    cfg.probe.curve_epochs = probe_epochs
    if method == "supervised":
      cfg.model.dropout = 0.5  # the paper's AlexNet head (torchvision's: Dropout 0.5 before fc6, fc7)
  return cfg


def window(args) -> None:
  probe_train = datasets.load_split(DATASET, "train")
  for name in args.cands:
    tag = f"_{args.tag}" if args.tag else ""
    out = Path(args.out) / f"window_{name}{tag}.json"
    if out.exists():
      print(f"{name}: done already ({out})", flush=True)
      continue
    cfg = config_for(name, "supervised", args.steps, args.fit, args.lr, args.views, args.curve_every,
                     args.probe_epochs, args.lr_boundaries)
    if CANDIDATES[name][2]:
      ds = datasets.resize_images(probe_train, CANDIDATES[name][2])
    else:
      ds = probe_train
    workdir = Path(args.workroot) / f"{name}{tag}"
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    _, _, info = train.pretrain(cfg, workdir, probe_train=ds, log=lambda s, name=name: print(name, s, flush=True))
    points = curves.read_curve(workdir / curves.CURVE_FILE)
    first, last = points[0], points[-1]
    layers = [l for l in A.LAYER_NAMES if l in first]
    rand = {l: first[l]["top1"] for l in layers}
    sup = {l: last[l]["top1"] for l in layers}
    row = {"name": name, "tag": args.tag, **geometry(name), "supervised_steps": args.steps,
           "lr": cfg.train.lr, "lr_boundaries": list(cfg.train.lr_boundaries), "probe_views": args.views,
           "curve": points, "fit_images": args.fit,
           "val_images": cfg.probe.curve_val_size, "probe_epochs": cfg.probe.curve_epochs,
           "probe_dims": {l: first[l].get("dims") for l in layers},
           "random_top1": rand, "supervised_top1": sup,
           "random_over_supervised": {l: round(rand[l] / sup[l], 3) for l in layers},
           "wall_s": round(time.time() - t0, 1), "pretrain": info}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(row, indent=1))
    os.replace(tmp, out)  # a row is there whole or not at all
    print(name, json.dumps(row["random_over_supervised"]), flush=True)


def check_same_recipe(row: dict, name: str, fit: int, epochs: int, views: str) -> None:
  """Refuses (one line) to compare a trunk with a window row read by another probe recipe."""
  for key, want in (("fit_images", fit), ("probe_epochs", epochs), ("probe_views", views)):
    if row.get(key) != want:
      raise SystemExit(f"--against {name} was read with {key}={row.get(key)!r}, this with {want!r}: "
                       "use the same recipe.")


def fraction_of_gain(top1: dict, rand: dict, sup: dict) -> dict:
  """(trunk - random) / (supervised - random) per layer, the issue's control measure."""
  return {l: round((top1[l] - rand[l]) / (sup[l] - rand[l]), 3) for l in top1}


def evalrun(args) -> None:
  """The window's probes (--fit images of the train carve, --probe_epochs, --views; scored on the
  validation carve) on the latest checkpoint of a finished run (--run: its workdir), and its
  fraction of supervision's gain against a window row (--against) read with the same recipe."""
  from mono_ssl.methods import rotnet
  from mono_ssl.workdir import saved_config
  run = Path(args.run)
  cfg = saved_config(run)
  against = json.loads(Path(args.against).read_text())
  check_same_recipe(against, args.against, fit=args.fit, epochs=args.probe_epochs, views=args.views)
  with cfg.unlocked():
    cfg.probe.curve_train_size, cfg.probe.curve_val_size = args.fit, against["val_images"]
    cfg.probe.curve_epochs, cfg.probe.train_views = args.probe_epochs, args.views
  t0 = time.time()
  state = train.state_at(cfg, run)
  probe_train = datasets.load_split(cfg.probe.dataset, "train")
  apply, variables = train.method_module(cfg).trunk(state)
  res = curves.CurveProbe(apply, variables, probe_train, cfg.probe)(variables)
  top1 = {l: r["top1"] for l, r in res.items()}
  rand, sup = against["random_top1"], against["supervised_top1"]
  row = {"run": str(run), "method": cfg.method, "regime": cfg.regime, "scale": cfg.scale,
         "step": int(jax.device_get(state.step)), "against": args.against, "fit_images": args.fit,
         "val_images": against["val_images"], "probe_epochs": args.probe_epochs, "probe_views": args.views,
         "top1": top1, "random_top1": rand, "supervised_top1": sup,
         "fraction_of_supervised_gain": fraction_of_gain(top1, rand, sup)}
  if cfg.method == "rotnet":
    held = curves.heldout_images(probe_train, cfg.probe, int(cfg.probe.curve_rotation_heldout))
    row["rotation_acc_heldout"] = rotnet.make_rotation_accuracy(state, held)(state)
  row["wall_s"] = round(time.time() - t0, 1)
  out = Path(args.out) / f"eval_{args.tag or run.name}.json"
  tmp = out.with_suffix(".tmp")
  tmp.write_text(json.dumps(row, indent=1))
  os.replace(tmp, out)
  print(json.dumps({k: row[k] for k in ("top1", "fraction_of_supervised_gain")}), flush=True)


def cost(args) -> None:
  from mono_ssl.methods import rotnet, supervised
  mesh = sharding.make_mesh()
  res = {}
  for name in args.cands:
    side = CANDIDATES[name][1]
    row = {}
    for method, mod in (("rotnet", rotnet), ("supervised", supervised)):
      cfg = config_for(name, method, 10000, 1000)
      if method == "supervised":
        with cfg.unlocked():
          cfg.supervised.num_classes = 200
      st = mod.create_state(cfg, side, jax.random.key(0), mesh, total_steps=10000)
      b = cfg.train.batch_size
      x = jax.random.uniform(jax.random.key(1), (b, side, side, 3))
      batch = x if method == "rotnet" else (x, jax.random.randint(jax.random.key(3), (b,), 0, 200))
      f = jax.jit(mod.make_train_step(cfg), donate_argnums=0).lower(st, batch, jax.random.key(2)).compile()
      ts = []
      for _ in range(args.reps + 1):
        t0 = time.perf_counter()
        st, m = f(st, batch, jax.random.key(2))
        jax.block_until_ready((st, m))
        ts.append(time.perf_counter() - t0)
      row[f"{method}_step_ms"] = round(1e3 * statistics.median(ts[1:]), 1)
    row["loadavg"] = os.getloadavg()
    res[name] = row
    print(name, row, flush=True)
  p = Path(args.out) / "cost.json"
  p.write_text(json.dumps(res, indent=1))


def table(args) -> None:
  out = Path(args.out)
  cost_rows = json.loads((out / "cost.json").read_text()) if (out / "cost.json").exists() else {}
  lines = ["| name | input | convs | conv1 filters/value | RF % conv1..conv5 | maps, head | gates | "
           "conv MFLOP/img | RotNet step ms | random / supervised top-1 conv1..conv5 (validation) |",
           "|---|---:|---|---:|---|---|---|---:|---:|---|"]
  for name in CANDIDATES:
    p = out / f"window_{name}.json"
    g = {**(json.loads(p.read_text()) if p.exists() else {}), **geometry(name)}  # geometry from today's code
    ok = "all met" if all(g["gates"].values()) else ", ".join(k for k, v in g["gates"].items() if not v) + " missed"
    win = ""
    if "random_top1" in g:
      win = " / ".join(f"{g['random_top1'][l]:.1f}-{g['supervised_top1'][l]:.1f} "
                       f"(**{g['random_over_supervised'][l]:.2f}**)" for l in g["random_top1"])
    step = cost_rows.get(name, {}).get("rotnet_step_ms", "")
    lines.append(f"| {name} | {g['input']} | `{g['convs']}` | {g['conv1_filters_per_value']:.2f} | "
                 f"{' / '.join(map(str, g['rf_pct']))} | {'/'.join(map(str, g['maps']))}, {g['final_map']} | "
                 f"{ok} | {g['conv_mflop_fwd']} | {step} | {win} |")
  lines += ["", "Longer supervised runs of one candidate (tagged windows; probes as in each row):", "",
            "| window | supervised steps, lr, drops | probe views, fit images, epochs | "
            "random / supervised top-1 conv1..conv5 (validation) |", "|---|---|---|---|"]
  for p in sorted(out.glob("window_*_*.json")):
    g = json.loads(p.read_text())
    win = " / ".join(f"{g['random_top1'][l]:.1f}-{g['supervised_top1'][l]:.1f} "
                     f"(**{g['random_over_supervised'][l]:.2f}**)" for l in g["random_top1"])
    lines.append(f"| {p.stem[len('window_'):]} | {g['supervised_steps']}, {g.get('lr')}, "
                 f"{g.get('lr_boundaries')} | {g.get('probe_views')}, {g['fit_images']}, {g['probe_epochs']} | "
                 f"{win} |")
  text = "\n".join(lines) + "\n"
  (out / "candidates_table.md").write_text(text)
  print(text)


def main(argv) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("what", choices=("window", "cost", "table", "evalrun"))
  ap.add_argument("--run", default="", help="evalrun: a finished run's workdir")
  ap.add_argument("--against", default="", help="evalrun: the window row (JSON) of random and supervised")
  ap.add_argument("--cands", default=",".join(CANDIDATES), type=lambda s: s.split(","))
  ap.add_argument("--steps", type=int, default=1500)
  ap.add_argument("--fit", type=int, default=40_000)
  ap.add_argument("--reps", type=int, default=5)
  ap.add_argument("--lr", type=float, default=0.0, help="the supervised lr (0: the config's)")
  ap.add_argument("--lr_boundaries", default=(), type=lambda s: tuple(float(x) for x in s.split(",")),
                  help="the supervised lr drops (x0.1), fractions of --steps (default: the config's)")
  ap.add_argument("--views", default="crops", help="probe.train_views of the curve probes")
  ap.add_argument("--curve_every", type=int, default=0, help="curve points (0: first and last step)")
  ap.add_argument("--probe_epochs", type=int, default=4)
  ap.add_argument("--tag", default="", help="a name suffix: a second window of one candidate")
  ap.add_argument("--workroot", default="/work/calib")
  ap.add_argument("--out", default="results/calib_scale")
  args = ap.parse_args(argv)
  for n in args.cands:
    if n not in CANDIDATES:
      ap.error(f"unknown candidate {n!r}; known: {', '.join(CANDIDATES)}")
  Path(args.out).mkdir(parents=True, exist_ok=True)
  xla_cpu.apply()
  {"window": window, "cost": cost, "table": table, "evalrun": evalrun}[args.what](args)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
