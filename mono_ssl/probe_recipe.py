r"""Choosing the probe recipe on a validation split, never on the test split.

  python -m mono_ssl.probe_recipe --workdir=runs/rotnet_single --out=results/probe_recipe

Reads a finished run's workdir (its config and last checkpoint): probes its
trained trunk and its random-init trunk (the state its pretraining started
from) with each candidate recipe (`--grid`: crop scales x learning rates) for
`--epochs` epochs, trained on the probe set's train split less a validation
split (`curves.validation_split`, `probe.val_fraction` of each class) and
scored on that validation split. Then the best recipe (highest mean top-1
over both trunks and all layers) is probed again for `--long_epochs` epochs,
to check that a longer probe changes no ranking (trained vs random per
layer, and the layers' order within each trunk). Writes `recipe.json` and
`recipe.md` in `--out`.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import numpy as np
from ml_collections import ConfigDict

from mono_ssl import curves, report, train
from mono_ssl.datasets import LabelledImages
from mono_ssl.probe import ProbeConfig, run_linear_probes
from mono_ssl.workdir import saved_config


def _parse_crops(text: str) -> list[tuple[float, float]]:
  out = []
  for item in text.split(","):
    lo, hi = (float(v) for v in item.split(":"))
    out.append((lo, hi))
  return out


def split_sets(probe_train, fraction: float, fit_size: int = 0
               ) -> tuple[LabelledImages, LabelledImages]:
  """The probe set's train split as (fit, validation), the validation part held out per class
  (the learning curve's split); `fit_size` > 0 keeps that many fit images, balanced over classes."""
  labels = np.asarray(probe_train.labels)
  fit_idx, val_idx = curves.validation_split(labels, probe_train.num_classes, fraction, seed=0)
  if fit_size:
    fit_idx = curves.balanced_subset(fit_idx, labels, probe_train.num_classes, fit_size, seed=1)
  return (curves.subset(probe_train, fit_idx, f"{probe_train.name} (fit)"),
          curves.subset(probe_train, val_idx, f"{probe_train.name} (validation)"))


def rankings(results: dict, layers) -> dict:
  """The orderings a recipe must not change: per layer, trained vs random; per trunk, layers by top-1."""
  out = {f"{l}: trained > random": bool(results["trained"][l]["top1"] > results["random"][l]["top1"])
         for l in layers}
  for trunk in ("trained", "random"):
    out[f"{trunk}: layers by top-1"] = sorted(layers, key=lambda l: -results[trunk][l]["top1"])
  return out


def main() -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--workdir", required=True, help="a finished run's workdir")
  ap.add_argument("--out", required=True, help="folder for recipe.json and recipe.md")
  ap.add_argument("--crops", default="1:1,0.5:1", help="crop scales lo:hi, comma-separated")
  ap.add_argument("--lrs", default="0.01,0.1", help="probe learning rates, comma-separated")
  ap.add_argument("--epochs", type=int, default=10)
  ap.add_argument("--long_epochs", type=int, default=30)
  ap.add_argument("--spread_only", action="store_true",
                  help="only measure the curve point's spread over probe seeds (recipe.json kept)")
  ap.add_argument("--spread_seeds", type=int, default=5)
  ap.add_argument("--curve_epochs", default="", help="curve epoch counts to measure (default: the config's)")
  ap.add_argument("--fit_size", type=int, default=0,
                  help="fit images kept of the train split less validation (0: all), for time")
  args = ap.parse_args()
  workdir, out = Path(args.workdir), Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  config = saved_config(workdir)
  trained, initial, _ = train.pretrain(config, workdir, log=lambda s: None)
  method = train.method_module(config)
  probe_train, _ = train.load_probe_data(config)  # the test split is never read here
  fit, val = split_sets(probe_train, config.probe.val_fraction, args.fit_size)
  base = ProbeConfig.from_config(config.probe)
  layers = list(base.layers)
  if args.spread_only:
    chosen = json.loads((out / "recipe.json").read_text()).get("best") \
        if (out / "recipe.json").exists() else None
    if chosen:  # the curve at the recipe this study chose
      config.probe.crop_scale, config.probe.lr = tuple(chosen["crop_scale"]), chosen["lr"]
    spread = curve_spread(config, method, trained, initial, probe_train, args)
    spread["recipe"] = {"crop_scale": list(config.probe.crop_scale), "lr": config.probe.lr,
                        "curve_train_size": config.probe.curve_train_size,
                        "curve_val_size": config.probe.curve_val_size}
    report.write_json(out / "curve_spread.json", spread)
    print(json.dumps(spread["summary"], indent=1))
    return 0
  record = {"workdir": str(workdir), "fit": len(fit), "validation": len(val),
            "base": dataclasses.asdict(base), "candidates": []}
  # Candidates already probed on the same split (an interrupted or widened study) are reused.
  old = json.loads((out / "recipe.json").read_text()) if (out / "recipe.json").exists() else {}
  cached = {(tuple(c["crop_scale"]), c["lr"], c["epochs"]): c for c in old.get("candidates", [])
            if (old["fit"], old["validation"], old["workdir"]) == (len(fit), len(val), str(workdir))
            # the same probe otherwise: views and heads per trunk (recipes made before these were options: crops, 1)
            and (old["base"].get("train_views", "crops"), old["base"].get("head_seeds", 1))
            == (base.train_views, base.head_seeds)}

  def probe(cfg: ProbeConfig) -> dict:
    res = {}
    for trunk, state in (("trained", trained), ("random", initial)):
      t0 = time.time()
      apply_fn, variables = method.trunk(state)
      res[trunk] = run_linear_probes(apply_fn, variables, fit, val, cfg, log=lambda s: None)
      print(f"  {trunk}: " + " ".join(f"{l} {res[trunk][l]['top1']:.1f}" for l in layers)
            + f" ({time.time() - t0:.0f}s)", flush=True)
    return res

  for crop, lr in itertools.product(_parse_crops(args.crops), [float(v) for v in args.lrs.split(",")]):
    cfg = dataclasses.replace(base, crop_scale=crop, lr=lr, epochs=args.epochs)
    if (crop, lr, args.epochs) in cached:
      record["candidates"].append(cached[(crop, lr, args.epochs)])
      print(f"recipe crop_scale={crop} lr={lr} epochs={args.epochs}: read from recipe.json", flush=True)
      continue
    print(f"recipe crop_scale={crop} lr={lr} epochs={args.epochs}", flush=True)
    res = probe(cfg)
    score = float(np.mean([res[t][l]["top1"] for t in res for l in layers]))
    record["candidates"].append({"crop_scale": crop, "lr": lr, "epochs": args.epochs, "results": res,
                                 "mean_top1": score})
    report.write_json(out / "recipe.json", record)
  best = max(record["candidates"], key=lambda c: c["mean_top1"])
  long_cfg = dataclasses.replace(base, crop_scale=tuple(best["crop_scale"]), lr=best["lr"],
                                 epochs=args.long_epochs)
  print(f"best: crop_scale={best['crop_scale']} lr={best['lr']}; {args.long_epochs} epochs:", flush=True)
  long_res = probe(long_cfg)
  record["best"] = {"crop_scale": best["crop_scale"], "lr": best["lr"]}
  record["long"] = {"epochs": args.long_epochs, "results": long_res}
  short_rank, long_rank = rankings(best["results"], layers), rankings(long_res, layers)
  record["rankings"] = {"short": short_rank, "long": long_rank,
                        "changed": [k for k in short_rank if short_rank[k] != long_rank[k]]}
  report.write_json(out / "recipe.json", record)
  (out / "recipe.md").write_text(render(record, layers))
  print(render(record, layers))
  return 0


def curve_spread(config, method, trained, initial, probe_train, args) -> dict:
  """A curve point's spread over probe seeds (same trunk, same subsets): per trunk, curve epoch
  count and layer, the mean and standard deviation of top-1 over `--spread_seeds` seeds, and the
  seconds one point costs."""
  epochs = [int(e) for e in args.curve_epochs.split(",")] if args.curve_epochs else \
      [int(config.probe.curve_epochs)]
  out = {"workdir": str(args.workdir), "seeds": args.spread_seeds, "points": [], "summary": {}}
  for trunk, state in (("trained", trained), ("random", initial)):
    apply_fn, variables = method.trunk(state)
    for e in epochs:
      tops, secs = [], []
      for seed in range(args.spread_seeds):
        pc = ConfigDict(config.probe.to_dict())
        pc.curve_epochs, pc.seed = e, seed
        t0 = time.time()
        res = curves.CurveProbe(apply_fn, variables, probe_train, pc)(variables)
        secs.append(time.time() - t0)
        tops.append({l: res[l]["top1"] for l in res})
        out["points"].append({"trunk": trunk, "curve_epochs": e, "seed": seed, "top1": tops[-1],
                              "wall_s": secs[-1]})
      key = f"{trunk}, {e} epochs"
      out["summary"][key] = {l: {"mean": float(np.mean([t[l] for t in tops])),
                                 "sd": float(np.std([t[l] for t in tops], ddof=1))} for l in tops[0]}
      out["summary"][key]["seconds_per_point"] = float(np.median(secs[1:] or secs))
      print(key, {l: f"{v['mean']:.1f} +- {v['sd']:.2f}" for l, v in out["summary"][key].items()
                  if isinstance(v, dict)}, flush=True)
  return out


def render(record: dict, layers) -> str:
  """recipe.md: every candidate's validation top-1, the chosen one, the long-probe check."""
  head = "| crop scale | lr | epochs | trunk | " + " | ".join(layers) + " | mean of both trunks |"
  lines = [f"Probe recipe on a validation split ({record['fit']} fit / {record['validation']} "
           f"validation images of the train split; run {record['workdir']})\n", head,
           "|---|---:|---:|---|" + "---:|" * (len(layers) + 1)]
  rows = [(c["crop_scale"], c["lr"], c["epochs"], c["results"], c["mean_top1"])
          for c in record["candidates"]]
  if "long" in record:
    long = record["long"]["results"]
    score = float(np.mean([long[t][l]["top1"] for t in long for l in layers]))
    rows.append((record["best"]["crop_scale"], record["best"]["lr"], record["long"]["epochs"], long,
                 score))
  for crop, lr, epochs, res, score in rows:
    for trunk in ("trained", "random"):
      lines.append(f"| {crop[0]:g}-{crop[1]:g} | {lr:g} | {epochs} | {trunk} | "
                   + " | ".join(f"{res[trunk][l]['top1']:.1f}" for l in layers) + f" | {score:.1f} |")
  if "best" in record:
    changed = record["rankings"]["changed"]
    crop = record["best"]["crop_scale"]
    lines.append(f"\nChosen (highest mean over both trunks and all layers): crop scale "
                 f"{crop[0]:g}-{crop[1]:g}, lr {record['best']['lr']:g}. "
                 f"{record['long']['epochs']} against {record['candidates'][0]['epochs']} epochs: "
                 + ("no ranking changed." if not changed else f"rankings changed: {', '.join(changed)}."))
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  from mono_ssl import xla_cpu
  xla_cpu.apply()  # faster XLA:CPU convolutions, set before JAX starts (mono_ssl/xla_cpu.py)
  raise SystemExit(main())
