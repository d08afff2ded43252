r"""Run lengths chosen by comparison (issue 39, item 4), with the noise of each comparison.

A step schedule makes a learning curve flat by construction (its last quarter runs at 1%
and 0.1% of the peak lr), so "flat over the last quarter" cannot say a run is long enough.
Instead a method runs at 1x, 2x and 4x a base length, each with its schedule scaled to its
length (`train.lr_boundaries` are fractions of the run), and the default is the shortest
length whose probes are within one standard error of the next longer one at conv1-conv3.

  python -m mono_ssl.grid --config=configs/lengths.py:scale=calib,seeds=2 --workdir=runs/lengths
  python -m mono_ssl.lengths runs/lengths/grid_results.json --out results/lengths

The standard error of a difference between two rows comes from their seeds
(`se_of_difference`): each row's seed-to-seed variance over its seed count, pooled
across the two rows when one of them has a single seed. Two rows of one seed each
have no such estimate, and the comparison says so instead of reading 0.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

LENGTH_LAYERS = ("conv1", "conv2", "conv3")
# Row names of configs/lengths.py: <family>_<k>x, k the multiple of the base length.
LENGTH_ROW = re.compile(r"^(?P<family>.+)_(?P<mult>\d+)x$")


def se_of_difference(a: Sequence[float], b: Sequence[float]) -> float:
  """The standard error of mean(b) - mean(a), two rows' per-seed values (independent seeds).

  Each row contributes s^2 / n (s its seed-to-seed s.d., ddof 1). Where one row has a single
  seed its s.d. is taken from the other (the pooled estimate, both rows assumed equally
  noisy); where neither has two seeds there is no estimate: ValueError.
  """
  a, b = np.asarray(a, float), np.asarray(b, float)
  if a.size == 0 or b.size == 0:
    raise ValueError("each row needs at least one seed's value")
  if a.size < 2 and b.size < 2:
    raise ValueError("one seed a row gives no standard error; run seeds=2 or more")
  ss = float(((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum())
  if a.size >= 2 and b.size >= 2:
    var_a, var_b = a.var(ddof=1), b.var(ddof=1)
  else:  # pooled: the degrees of freedom are the seeds beyond each row's first
    var_a = var_b = ss / (a.size + b.size - 2)
  return float(math.sqrt(var_a / a.size + var_b / b.size))


def compare_lengths(rows: Sequence[dict], layers: Sequence[str] = LENGTH_LAYERS) -> dict:
  """The length choice of one family of runs.

  rows: [{"mult": k, "steps": S, "seeds": [{layer: top-1}, ...]}, ...], one per length, in
  any order. Returns {"pairs": [{"from": k, "to": k', "diff": {layer}, "se": {layer},
  "within": bool}, ...] for consecutive lengths, "chosen": the multiple chosen, "settled":
  whether a pair was within (False: even the longest two differ; the longest is reported)}.
  """
  rows = sorted(rows, key=lambda r: r["mult"])
  if len(rows) < 2:
    raise ValueError(f"{len(rows)} length(s): a choice needs two or more to compare")
  pairs = []
  for short, long in zip(rows, rows[1:]):
    diff, se = {}, {}
    for layer in layers:
      a = [s[layer] for s in short["seeds"]]
      b = [s[layer] for s in long["seeds"]]
      diff[layer] = float(np.mean(b) - np.mean(a))
      se[layer] = se_of_difference(a, b)
    within = all(abs(diff[l]) <= se[l] for l in layers)
    pairs.append({"from": short["mult"], "to": long["mult"], "from_steps": short.get("steps"),
                  "to_steps": long.get("steps"), "diff": diff, "se": se, "within": within})
  chosen = next((p["from"] for p in pairs if p["within"]), None)
  return {"layers": list(layers), "pairs": pairs,
          "chosen": chosen if chosen is not None else rows[-1]["mult"],
          "settled": chosen is not None}


def families_from_grid(grid_results: dict) -> dict[str, list[dict]]:
  """{family: rows for compare_lengths} from a grid_results.json whose rows are named
  <family>_<k>x (configs/lengths.py); other rows are left out."""
  out: dict[str, list[dict]] = {}
  for row in grid_results["runs"]:
    m = LENGTH_ROW.match(row["name"])
    if not m:
      continue
    seeds = [{l: s["results"][l]["top1"] for l in s["results"]} for s in row["seeds"]]
    out.setdefault(m["family"], []).append(
        {"mult": int(m["mult"]), "steps": row.get("steps"), "seeds": seeds})
  return out


def render(choices: dict[str, dict]) -> str:
  """Markdown: per family and pair of lengths, the difference +- its s.e. at each layer."""
  lines = []
  for family, c in choices.items():
    lines += [f"### {family}: default {c['chosen']}x"
              + ("" if c["settled"] else " (not settled: the longest two still differ)"), "",
              "| longer - shorter | " + " | ".join(c["layers"]) + " | within one s.e. |",
              "|---|" + "---:|" * len(c["layers"]) + "---|"]
    for p in c["pairs"]:
      cells = " | ".join(f"{p['diff'][l]:+.2f} ± {p['se'][l]:.2f}" for l in c["layers"])
      lines.append(f"| {p['to']}x - {p['from']}x ({p['to_steps']} - {p['from_steps']} steps) | "
                   f"{cells} | {'yes' if p['within'] else 'no'} |")
    lines.append("")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m mono_ssl.lengths", description=__doc__.split("\n\n")[0])
  parser.add_argument("grid_results", help="grid_results.json of configs/lengths.py")
  parser.add_argument("--out", default="", help="folder for lengths.json and lengths.md")
  args = parser.parse_args(argv)
  path = Path(args.grid_results)
  try:
    grid_results = json.loads(path.read_text())
    families = families_from_grid(grid_results)
  except (OSError, ValueError, KeyError) as e:
    print(f"error: {path} is not a readable grid_results.json ({e}); run "
          "python -m mono_ssl.grid --config=configs/lengths.py first.", file=sys.stderr)
    return 2
  if not families:
    print(f"error: {path} has no rows named <family>_<k>x; it is not a lengths grid "
          "(configs/lengths.py).", file=sys.stderr)
    return 2
  try:
    choices = {f: compare_lengths(rows) for f, rows in families.items()}
  except ValueError as e:
    print(f"error: {path}: {e}", file=sys.stderr)
    return 2
  text = render(choices)
  print(text)
  if args.out:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lengths.json").write_text(json.dumps(choices, indent=1) + "\n")
    (out / "lengths.md").write_text(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
