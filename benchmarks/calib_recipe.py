r"""The probe recipe at the calibrated scale (issue 39 item 2), on the validation carve only.

  PYTHONPATH=. python benchmarks/calib_recipe.py --out results/calib_scale/probe_recipe \
      --supervised /work/calib/c64_long12k --rotnet /work/calib/rotnet_full_lr0.1 \
      --cands whole:1-1:0.1:10:2304,whole:1-1:0.1:30:2304,crops:0.5-1:0.1:10:2304

Three trunks of the calib stack (`c64`): its random init (the supervised window's step 0, the
same seed), a supervised trunk (a `calib_candidates.py window` workdir's last checkpoint) and a
full-data RotNet trunk (a `rotnet_task_lr.py` workdir's last checkpoint). Each candidate recipe
`views:crop_lo-crop_hi:lr:epochs:dims` (views `whole`: the image or its mirror from features
computed once, crop scale unused; `crops`: a fresh random-resized crop and flip every step
through the trunk) trains the five probes on the train carve less the validation carve (72,000
images, the windows' split: `curves.curve_sets`) and scores them on the carve (8,000 images,
40 a class). The test split is never read. Whole-view candidates of one trunk and probe size
share one feature pass (`LinearProbe.features`). Resumable: every (trunk, candidate) result is
written to `recipe.json` as soon as it is done and skipped when run again; `--render` writes
`recipe.md` from it (each candidate's top-1 per trunk and layer, the mean over trunks and
layers, random/supervised at conv1-conv2, and the choice: highest mean over the three trunks
and five layers, among candidates probed on every trunk).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calib_candidates import DATASET, config_for  # noqa: E402  (the windows' supervised config)

from mono_ssl import config_lib, curves, datasets, sharding, train, xla_cpu  # noqa: E402
from mono_ssl.errors import UserInputError  # noqa: E402
from mono_ssl.probe import LinearProbe, ProbeConfig  # noqa: E402

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
TRUNKS = ("random", "supervised", "rotnet")


@dataclasses.dataclass(frozen=True)
class Candidate:
  views: str
  crop: tuple[float, float]
  lr: float
  epochs: int
  dims: int

  @property
  def name(self) -> str:
    return f"{self.views}:{self.crop[0]:g}-{self.crop[1]:g}:{self.lr:g}:{self.epochs}:{self.dims}"


def parse_candidate(text: str) -> Candidate:
  """`views:lo-hi:lr:epochs:dims` -> Candidate; a one-line error naming the bad part."""
  parts = text.split(":")
  try:
    views, crop, lr, epochs, dims = parts
    lo, hi = (float(v) for v in crop.split("-"))
    cand = Candidate(views, (lo, hi), float(lr), int(epochs), int(dims))
  except ValueError:
    raise UserInputError(f"candidate {text!r} is not views:lo-hi:lr:epochs:dims, "
                         "e.g. whole:1-1:0.1:10:2304 or crops:0.5-1:0.1:10:2304.") from None
  if views not in ("whole", "crops") or not 0 < lo <= hi <= 1 or not 0 < cand.lr < math.inf \
      or cand.epochs < 1 or cand.dims < 1:
    raise UserInputError(f"candidate {text!r}: views must be whole or crops, 0 < lo <= hi <= 1, "
                         "lr > 0, epochs >= 1, dims >= 1.")
  return cand


def trunk_states(args) -> dict:
  """{trunk name: (method config, state)}; the random trunk is the supervised run's init."""
  sup_cfg = config_for("c64", "supervised", steps=args.supervised_steps, fit=72_000,
                       lr_boundaries=(0.5, 0.75))
  rot_cfg = config_lib.load_config_file("configs/rotnet.py", "regime=full,scale=calib")
  out = {}
  out["random"] = (sup_cfg, train.initial_state(sup_cfg, train.pretrain_source(sup_cfg),
                                                  sharding.make_mesh()))
  for name, cfg, workdir in (("supervised", sup_cfg, args.supervised), ("rotnet", rot_cfg, args.rotnet)):
    if workdir:
      if not (Path(workdir) / "checkpoints").is_dir():
        raise UserInputError(f"--{name} {workdir}: no checkpoints/ folder there; give the workdir of a "
                             f"finished {name} run of the calib stack.")
      if (Path(workdir) / "config.json").exists():  # a run of main.py: its own config (e.g. another stack)
        from mono_ssl.workdir import saved_config
        cfg = saved_config(Path(workdir))
      out[name] = (cfg, train.state_at(cfg, workdir))
  return out


def trunk_sources(args, states) -> dict:
  """{trunk: what its numbers were read from}: a result is reused only from the same source."""
  import jax
  src = {"random": "the supervised window's init (seed 0)"}
  for name, workdir in (("supervised", args.supervised), ("rotnet", args.rotnet)):
    if name in states:
      src[name] = f"{workdir} @ step {int(jax.device_get(states[name][1].step))}"
  return src


def probe_config(base_cfg, cand: Candidate) -> ProbeConfig:
  return dataclasses.replace(ProbeConfig.from_config(base_cfg.probe), train_views=cand.views,
                             crop_scale=cand.crop, lr=cand.lr, epochs=cand.epochs,
                             target_dims=cand.dims, head_seeds=1, seed=0)


def check_sources(record: dict, sources: dict, path) -> None:
  """Refuses (one line) to add to a study whose results were read from other trunks: a result is
  reused by its trunk and candidate name, so another workdir or step must go to another --out."""
  for r in record["results"].values():
    # results made before sources were kept name the workdir alone (record["trunks"])
    was = r.get("source", record.get("trunks", {}).get(r["trunk"]))
    now = sources.get(r["trunk"])
    if now is not None and was is not None and was != now and not now.startswith(f"{was} @ "):
      raise UserInputError(f"{path} holds {r['trunk']} results read from {was}, not {now}: "
                           "give another --out for another trunk.")


def run(args) -> None:
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  path = out / "recipe.json"
  record = json.loads(path.read_text()) if path.exists() else {"results": {}}
  cands = [parse_candidate(c) for c in args.cands.split(",")]
  probe_train = datasets.load_split(DATASET, "train")
  states = trunk_states(args)
  sources = trunk_sources(args, states)
  check_sources(record, sources, path)
  # A pass on fewer trunks (e.g. costly crops on random and supervised only) keeps the others' names.
  record.setdefault("trunks", {}).update({k: v for k, v in (
      ("supervised", args.supervised), ("rotnet", args.rotnet),
      ("random", "the supervised window's init (seed 0)")) if v})
  pc = window_split(states["random"][0])
  fit, val = curves.curve_sets(probe_train, pc)
  record["fit"], record["validation"] = len(fit), len(val)
  for trunk, (cfg, state) in states.items():
    apply_fn, variables = train.method_module(cfg).trunk(state)
    feats = {}  # dims -> whole views' features of this trunk
    for cand in cands:
      key = f"{trunk}|{cand.name}"
      if key in record["results"]:
        continue
      t0 = time.time()
      probe = LinearProbe(apply_fn, variables, fit, val, probe_config(cfg, cand), log=lambda s: None)
      features_s = 0.0
      if cand.views == "whole" and cand.dims not in feats:
        feats[cand.dims] = probe.features(variables)
        features_s = time.time() - t0
      res = probe(variables, features=feats.get(cand.dims) if cand.views == "whole" else None)
      record["results"][key] = {"trunk": trunk, "candidate": cand.name, "source": sources[trunk],
                                "top1": {l: res[l]["top1"] for l in LAYERS},
                                "dims": {l: res[l]["dims"] for l in LAYERS},
                                "wall_s": round(time.time() - t0, 1),
                                # the whole views' feature pass, paid by the first candidate of a size
                                "features_s": round(features_s, 1)}
      tmp = path.with_suffix(".tmp")
      tmp.write_text(json.dumps(record, indent=1))
      os.replace(tmp, path)  # a result is there whole or not at all
      print(key, " ".join(f"{res[l]['top1']:.1f}" for l in LAYERS), f"({time.time() - t0:.0f}s)", flush=True)
  render(out)


def window_split(cfg):
  """The windows' split: 72,000 fit images (all the train carve) and the 8,000-image carve."""
  pc = cfg.probe
  with cfg.unlocked():
    pc.curve_train_size, pc.curve_val_size = 72_000, 8_000
  return pc


def _by_candidate(record: dict) -> tuple[dict, list]:
  by_cand: dict = {}
  for r in record["results"].values():
    by_cand.setdefault(r["candidate"], {})[r["trunk"]] = r
  return by_cand, [t for t in TRUNKS if any(t in v for v in by_cand.values())]


def choose(record: dict) -> str:
  """The chosen candidate's name: the highest mean top-1 over trunks and layers, among the
  candidates probed on every trunk of the study."""
  by_cand, trunks = _by_candidate(record)
  scores = {name: float(np.mean([rows[t]["top1"][l] for t in rows for l in LAYERS]))
            for name, rows in by_cand.items() if all(t in rows for t in trunks)}
  if not scores:
    raise UserInputError("no candidate has been probed on every trunk yet; run calib_recipe.py on.")
  return max(scores, key=scores.get)


def _features_note(row: dict) -> str:
  return f" ({row['features_s'] / 60:.1f} of it features)" if row.get("features_s") else ""


def render(out: Path) -> str:
  if not (out / "recipe.json").exists():
    raise UserInputError(f"--out {out}: no recipe.json there yet; run calib_recipe.py with --cands first.")
  record = json.loads((out / "recipe.json").read_text())
  by_cand, trunks = _by_candidate(record)
  lines = [f"Probe recipe at the calib scale: {record['fit']} fit / {record['validation']} validation "
           "images of Tiny-ImageNet's 80,000-image train split (the test split is not read). Trunks: "
           + "; ".join(f"{k}: {v}" for k, v in record["trunks"].items() if v) + ".", "",
           "| candidate (views:crop:lr:epochs:dims) | trunk | " + " | ".join(LAYERS)
           + " | mean over trunks, layers | random/supervised conv1, conv2 | minutes |",
           "|---|---|" + "---:|" * (len(LAYERS) + 3)]
  for name, rows in by_cand.items():
    complete = all(t in rows for t in trunks)
    mean = float(np.mean([rows[t]["top1"][l] for t in rows for l in LAYERS]))
    ratio = ""
    if "random" in rows and "supervised" in rows:
      ratio = ", ".join(f"{rows['random']['top1'][l] / rows['supervised']['top1'][l]:.3f}"
                        for l in ("conv1", "conv2"))
    for t in trunks:
      if t in rows:
        lines.append(f"| {name} | {t} | " + " | ".join(f"{rows[t]['top1'][l]:.1f}" for l in LAYERS)
                     + f" | {mean:.2f}{'' if complete else ' (not every trunk)'} | {ratio} | "
                     f"{rows[t]['wall_s'] / 60:.1f}{_features_note(rows[t])} |")
  lines += ["", "Minutes: the first whole-view candidate of a trunk and size in each pass also pays the "
            "trunk's feature pass (4-5 min here; shown where recorded), the others reuse it; crops go "
            "through the trunk every step. One probe seed per cell."]
  if any(all(t in rows for t in trunks) for rows in by_cand.values()):
    best = choose(record)
    mean = float(np.mean([r["top1"][l] for r in by_cand[best].values() for l in LAYERS]))
    lines += ["", f"Highest mean top-1 over the {len(trunks)} trunks and five layers: **{best}** "
              f"({mean:.2f})."]
  text = "\n".join(lines) + "\n"
  (out / "recipe.md").write_text(text)
  print(text)
  return text


def main(argv) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--out", required=True)
  ap.add_argument("--supervised", default="", help="a calib_candidates window workdir (c64)")
  ap.add_argument("--supervised_steps", type=int, default=12_000, help="that run's train.num_steps")
  ap.add_argument("--rotnet", default="", help="a rotnet_task_lr.py workdir (calib)")
  ap.add_argument("--cands", default="whole:1-1:0.1:10:2304")
  ap.add_argument("--render", action="store_true", help="only write recipe.md from recipe.json")
  args = ap.parse_args(argv)
  if args.render:
    render(Path(args.out))
    return 0
  xla_cpu.apply()
  run(args)
  return 0


if __name__ == "__main__":
  try:
    sys.exit(main(sys.argv[1:]))
  except UserInputError as e:
    raise SystemExit(f"error: {e}") from None
