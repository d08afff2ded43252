r"""Run lengths chosen by comparison (issue 39, item 4), with the noise of each comparison.

A step schedule makes a learning curve flat by construction (its last quarter runs at 1%
and 0.1% of the peak lr), so "flat over the last quarter" cannot say a run is long enough.
Instead a method runs at 1x, 2x and 4x a base length, each with its schedule scaled to its
length (`train.lr_boundaries` are fractions of the run), and the default is the shortest
length from which no longer run gains more than one standard error at conv1-conv3.

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
  any order. A pair of consecutive lengths is settled where the longer run gains no more than
  one standard error over the shorter at every layer (diff <= se; a longer run that is worse
  by more than one s.e. is settled too, and flagged "drop": length did not help). The default
  is the shortest length from which every later pair is settled (a gain further on unsettles
  it). Returns {"pairs": [{"from": k, "to": k', "diff": {layer}, "se": {layer}, "settled":
  bool, "drop": [layers]}, ...], "chosen": the multiple, "settled": False where even the
  longest pair gains (the longest is reported), "lengths": the multiples compared}.

  With two seeds a row the s.e. has about two degrees of freedom, and |t| <= 1 happens about
  58% of the time per layer when two lengths do not differ: a lenient test, so three seeds
  are the issue's choice for the rows that are read. Seeds of different lengths share their
  seed number (init, data order), so per-seed differences may be positively correlated; the
  unpaired s.e. here is then the larger, more lenient one.
  """
  rows = sorted(rows, key=lambda r: r["mult"])
  if len(rows) < 2:
    raise ValueError(f"{len(rows)} length(s): a choice needs two or more to compare")
  pairs = []
  for short, long in zip(rows, rows[1:]):
    diff, se = {}, {}
    for layer in layers:
      missing = [r["mult"] for r in (short, long) if any(layer not in s for s in r["seeds"])]
      if missing:
        raise ValueError(f"the {'x, '.join(map(str, missing))}x run(s) have no {layer} probe")
      a = [s[layer] for s in short["seeds"]]
      b = [s[layer] for s in long["seeds"]]
      diff[layer] = float(np.mean(b) - np.mean(a))
      se[layer] = se_of_difference(a, b)
    settled = all(diff[l] <= se[l] for l in layers)
    pairs.append({"from": short["mult"], "to": long["mult"], "from_steps": short.get("steps"),
                  "to_steps": long.get("steps"), "diff": diff, "se": se, "settled": settled,
                  "drop": [l for l in layers if diff[l] < -se[l]]})
  chosen = None
  for i in range(len(pairs) - 1, -1, -1):  # the earliest pair from which all are settled
    if not pairs[i]["settled"]:
      break
    chosen = pairs[i]["from"]
  return {"layers": list(layers), "lengths": [r["mult"] for r in rows], "pairs": pairs,
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
    if "error" in c:
      lines += [f"### {family}: no choice ({c['error']})", ""]
      continue
    lines += [f"### {family}: default {c['chosen']}x"
              + ("" if c["settled"] else " (not settled: the longest pair still gains)")
              + f"; lengths compared: {', '.join(f'{m}x' for m in c['lengths'])}", "",
              "| longer - shorter | " + " | ".join(c["layers"]) + " | settled (gain <= 1 s.e.) |",
              "|---|" + "---:|" * len(c["layers"]) + "---|"]
    for p in c["pairs"]:
      cells = " | ".join(f"{p['diff'][l]:+.2f} ± {p['se'][l]:.2f}" for l in c["layers"])
      drop = f" (longer worse at {', '.join(p['drop'])})" if p["drop"] else ""
      lines.append(f"| {p['to']}x - {p['from']}x ({p['to_steps']} - {p['from_steps']} steps) | "
                   f"{cells} | {'yes' if p['settled'] else 'no'}{drop} |")
    lines.append("")
  return "\n".join(lines)


def choose_all(families: dict[str, list[dict]]) -> dict[str, dict]:
  """compare_lengths of every family; a family that cannot be compared (one length, one seed a
  row, a layer missing) gets {"error": why} and the others are still chosen."""
  out = {}
  for family, rows in families.items():
    try:
      out[family] = compare_lengths(rows)
    except ValueError as e:
      out[family] = {"error": str(e)}
  return out


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m mono_ssl.lengths", description=__doc__.split("\n\n")[0])
  parser.add_argument("grid_results", help="grid_results.json of configs/lengths.py")
  parser.add_argument("--out", default="", help="folder for lengths.json and lengths.md")
  args = parser.parse_args(argv)
  path = Path(args.grid_results)
  try:
    grid_results = json.loads(path.read_text())
    families = families_from_grid(grid_results)
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
    print(f"error: {path} is not a readable grid_results.json ({e}); run "
          "python -m mono_ssl.grid --config=configs/lengths.py first.", file=sys.stderr)
    return 2
  if not families:
    print(f"error: {path} has no rows named <family>_<k>x; it is not a lengths grid "
          "(configs/lengths.py).", file=sys.stderr)
    return 2
  choices = choose_all(families)
  text = render(choices)
  print(text)
  if args.out:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lengths.json").write_text(json.dumps(choices, indent=1) + "\n")
    (out / "lengths.md").write_text(text)
  return 0 if all("error" not in c for c in choices.values()) else 1


if __name__ == "__main__":
  sys.exit(main())
