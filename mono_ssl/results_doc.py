r"""README tables generated from the grids' results kept in the repository (`results/`).

A README block

  <!-- results: results/cifar10_cpu/grid_results.json -->
  ...generated Markdown...
  <!-- end results -->

holds the tables its JSON renders to: a grid_results.json's top-1 mean +-
standard error per layer, the fraction of supervision's gain and each layer's
probe size (`render`); a probe recipe study's recipe.json and curve_spread.json
(mono_ssl.probe_recipe); a single run's probe_results.json; `curve_points:DIR[,DIR]`,
`curve_flatness:...`, `curve_gain:...` (gain over the step-0 init) and `curve_cost:...`:
the learning curves of the runs under DIR;
`ablation:PATH` (a grid_results.json of configs/ablation.py): mono_ssl.ablation's two tables.
`python -m mono_ssl.results_doc README.md` rewrites every block from its
JSON; `stale_blocks(README.md)` lists the blocks that differ from their JSON
(tests/test_results_doc.py runs it on the README and docs/*.md).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from mono_ssl.models.alexnet import LAYER_NAMES

BLOCK = re.compile(r"(<!-- results: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end results -->)", re.S)


def render(grid_results: dict) -> str:
  """The Markdown tables of one grid_results.json."""
  from mono_ssl.grid import fraction_table, seeds_table

  rows = grid_results["runs"]
  layers = [l for l in grid_results.get("layers", LAYER_NAMES)
            if any(l in r["results"] for r in rows)]
  out = [f"Top-1 (%), mean ± standard error over seeds ({grid_results['title']}):\n",
         seeds_table(rows, layers, "top1")]
  frac = grid_results.get("fraction_of_supervision", {})
  if frac.get("rows"):
    out += ["", fraction_table(rows, frac["rows"], layers, frac["supervised_row"], frac["random_row"])]
  dims = {l: sorted({r["results"][l]["dims"] for r in rows if l in r["results"] and "dims" in r["results"][l]})
          for l in layers}
  if any(dims.values()):
    out.append("Probe sizes (values per probe): "
               + ", ".join(f"{l} {'/'.join(map(str, d))}" for l, d in dims.items() if d) + ".\n")
  return "\n".join(out)


def render_probe_results(results: dict) -> str:
  """A single run's probe_results.json: top-1 of the trained and the random-init trunk."""
  from mono_ssl.report import markdown_table

  rows = {f"{results['method']} ({results['regime']})": results["trained"]}
  if "random" in results:
    rows["random init"] = results["random"]
  layers = [l for l in LAYER_NAMES if l in results["trained"]]
  return f"Top-1 (%) on {results['probe_dataset']}'s test split:\n\n" + markdown_table(rows, layers, "top1")


def render_curve_spread(spread: dict) -> str:
  """curve_spread.json (mono_ssl.probe_recipe --spread_only): a curve point's mean and s.d.
  over probe seeds, per trunk and curve length, and its cost."""
  summary = spread["summary"]
  layers = [l for l in next(iter(summary.values())) if l != "seconds_per_point"]
  lines = [f"Curve point over {spread['seeds']} probe seeds (same trunk, same subsets): "
           "mean ± s.d. of validation top-1 (%)\n",
           "| trunk, curve epochs | " + " | ".join(layers) + " | s per point (with its compile) |",
           "|---|" + "---:|" * (len(layers) + 1)]
  for key, v in summary.items():
    lines.append(f"| {key} | " + " | ".join(f"{v[l]['mean']:.1f} ± {v[l]['sd']:.2f}" for l in layers)
                 + f" | {v['seconds_per_point']:.1f} |")
  return "\n".join(lines) + "\n"


def _run_dirs(dirs: list[Path], marker: str) -> list[Path]:
  """The run folders under `dirs`: each dir itself if it holds `marker`, else its subfolders that do."""
  runs = []
  for d in map(Path, dirs):
    runs += [d] if (d / marker).exists() else sorted(q.parent for q in d.glob(f"*/{marker}"))
  return runs


def render_curve_cost(dirs: list[Path]) -> str:
  """The learning curve's share of each run's pretraining time: `pretrain.curve_wall_s` (its
  points' seconds) against `pretrain.wall_s` (the pretraining, points included) of each run's
  probe_results.json under `dirs` (a run's folder, or a folder of runs)."""
  runs = _run_dirs(dirs, "probe_results.json")
  lines = ["| run | steps | curve points | curve s | pretraining s | curve share |",
           "|---|---:|---:|---:|---:|---:|"]
  total_curve = total_wall = 0.0
  for run in runs:
    info = json.loads((run / "probe_results.json").read_text())["pretrain"]
    if not info.get("curve_wall_s") or not info.get("steps"):
      continue  # no curve, or nothing trained (a point at step 0 is no share of training)
    total_curve += info["curve_wall_s"]
    total_wall += info["wall_s"]
    lines.append(f"| {run.name} | {info['steps']} | {info.get('curve_points', '?')} | "
                 f"{info['curve_wall_s']:.0f} | {info['wall_s']:.0f} | "
                 f"{100 * info['curve_wall_s'] / info['wall_s']:.1f}% |")
  if total_wall:
    lines.append(f"\nAll of them: {100 * total_curve / total_wall:.1f}% of pretraining time in "
                 "curve points.")
  return "\n".join(lines) + "\n"


def render_curve_flatness(dirs: list[Path], limit: float = 0.5) -> str:
  """Each run's learning-curve movement over the last quarter (`curves.flatness`), from the
  probe_curve.jsonl of every run under `dirs`, and whether conv1-conv3 moved less than
  `limit` points (the stopping rule of the faithful-network issue). The rule is read only
  where the run's lr was constant over that quarter (its metrics.jsonl): under a step
  schedule the last quarter is flat by construction, and the column says "n/a (lr schedule)";
  such runs' lengths are chosen by comparison instead (mono_ssl.lengths)."""
  from mono_ssl.curves import flatness, lr_constant, read_curve
  from mono_ssl.report import read_jsonl
  runs = _run_dirs(dirs, "probe_curve.jsonl")
  lines = ["| run | last quarter (steps) | " + " | ".join(LAYER_NAMES) + " | conv1-conv3 flat |",
           "|---|---|" + "---:|" * len(LAYER_NAMES) + "---|"]
  for run in runs:
    points = read_curve(run / "probe_curve.jsonl")
    if len(points) < 2:
      continue  # nothing trained (random init: one point at step 0)
    f = flatness(points)
    move = f["move"]
    flat = all(move.get(l, float("inf")) < limit for l in LAYER_NAMES[:3])
    metrics = read_jsonl(run / "metrics.jsonl", "lr")  # a torn last line is skipped
    # Read only at one lr, the run's peak: a decayed quarter is flat by construction.
    constant = lr_constant(metrics, f["from_step"], f["to_step"], at_peak=True)
    verdict = "n/a (lr schedule)" if constant is False else ("yes" if flat else "no")
    lines.append(f"| {run.name} | {f['from_step']}–{f['to_step']} | "
                 + " | ".join(f"{move[l]:.2f}" if l in move else "–" for l in LAYER_NAMES)
                 + f" | {verdict} |")
  return "\n".join(lines) + "\n"


def render_curve_points(dirs: list[Path]) -> str:
  """Each run's learning curve as a table (step x layer top-1, step 0 its random init), from
  the probe_curve.jsonl of every run under `dirs` that trained (two points or more)."""
  from mono_ssl.curves import read_curve
  out = []
  for run in _run_dirs(dirs, "probe_curve.jsonl"):
    points = read_curve(run / "probe_curve.jsonl")
    if len(points) < 2:
      continue
    layers = [l for l in LAYER_NAMES if any(l in p for p in points)]
    lines = [f"{run.name}, curve-probe top-1 (%):\n", "| step | " + " | ".join(layers) + " |",
             "|---:|" + "---:|" * len(layers)]
    for p in points:
      step = f"{p['step']:,}" + (" (init)" if p["step"] == 0 else "")
      lines.append(f"| {step} | " + " | ".join(f"{p[l]['top1']:.1f}" if l in p else "–"
                                                for l in layers) + " |")
    out.append("\n".join(lines) + "\n")
  return "\n".join(out)


def render_curve_gain(dirs: list[Path], layers=("conv1", "conv2"), margin: float = 1.0) -> str:
  """Each trained run's largest gain over its own random init (step 0) at `layers`, and the
  first step where all of them are >= `margin` points above it (`curves.gain_over_init`)."""
  from mono_ssl.curves import gain_over_init, read_curve
  lines = ["| run | steps | " + " | ".join(f"{l} init | {l} best gain (step)" for l in layers)
           + f" | first step all ≥ +{margin:g} |",
           "|---|---:|" + "---:|---:|" * len(layers) + "---:|"]
  for run in _run_dirs(dirs, "probe_curve.jsonl"):
    points = read_curve(run / "probe_curve.jsonl")
    if len(points) < 2:
      continue  # nothing trained (random init: one point at step 0)
    g = gain_over_init(points, layers, margin)
    cells = []
    for l in layers:
      gain, step = g["best"][l]
      cells += [f"{g['init'][l]:.1f}", f"{gain:+.1f} ({step:,})"]
    first = f"{g['first_step']:,}" if g["first_step"] is not None else "never"
    lines.append(f"| {run.name} | {g['last_step']:,} | " + " | ".join(cells) + f" | {first} |")
  return "\n".join(lines) + "\n"


GAN_GAME_ROWS = (("d_loss", "D loss", 3), ("g_loss", "G and E loss", 3),
                 ("d_acc_real", "D accuracy, real pairs", 2),
                 ("d_acc_fake", "D accuracy, generated pairs", 2),
                 ("e_code_std", "E's code std (prior 0.577)", 2))


def render_gan_game(dirs: list[Path], stretch: int = 2500) -> str:
  """D's game in each BiGAN run under `dirs`: the mean of each logged metric (GAN_GAME_ROWS)
  over every `stretch` steps of its metrics.jsonl (a step s > 0 counts in the stretch ending at
  or after it, so 0-2.5k holds steps 1..2,500), one table a run."""
  from mono_ssl.report import read_jsonl
  if stretch <= 0:
    raise ValueError(f"stretch={stretch}: a stretch of steps must be positive")
  out = []
  for run in _run_dirs(dirs, "metrics.jsonl"):
    recs = [r for r in read_jsonl(run / "metrics.jsonl", "d_loss") if r.get("step", 0) > 0]
    if not recs:
      continue  # not a BiGAN run
    bins: dict[int, list[dict]] = {}
    for r in recs:
      bins.setdefault((r["step"] - 1) // stretch, []).append(r)
    keys = sorted(bins)
    last = max(r["step"] for r in recs)  # a run may end inside its last stretch
    head = [f"{_k(b * stretch)}-{_k(min((b + 1) * stretch, last))}" for b in keys]
    lines = [f"{run.name}, means over each {stretch:,}-step stretch of its logged steps:\n",
             "| steps | " + " | ".join(head) + " |", "|---|" + "---:|" * len(keys)]
    for metric, label, digits in GAN_GAME_ROWS:
      cells = []
      for b in keys:
        vals = [r[metric] for r in bins[b] if metric in r]
        cells.append(f"{sum(vals) / len(vals):.{digits}f}" if vals else "–")
      lines.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append("\n".join(lines) + "\n")
  return "\n".join(out)


def _k(step: int) -> str:
  """2500 -> '2.5k', 20000 -> '20k', 0 -> '0'."""
  return f"{step / 1000:g}k" if step else "0"


CURVE_BLOCKS = {"curve_flatness": render_curve_flatness, "curve_points": render_curve_points,
                "curve_gain": render_curve_gain,
                "curve_cost": render_curve_cost, "gan_game": render_gan_game}

RF_CASES = (("paper", 224), ("calib", 64), ("mini", 48), ("cpu", 32), ("cpu", 64), ("cpu", 96))


def render_receptive_fields() -> str:
  """Each probed layer's receptive field (px, % of the input side) and map side, both scales."""
  from mono_ssl.models.alexnet import conv1_filters_per_value, conv_specs, receptive_fields

  lines = ["| network, input | " + " | ".join(LAYER_NAMES) + " | final map | conv1 filters per input value |",
           "|---|" + "---:|" * (len(LAYER_NAMES) + 2)]
  for scale, size in RF_CASES:
    rf = receptive_fields(conv_specs(scale), size)
    cells = [f"{rf[l]['rf']} px ({100 * rf[l]['fraction']:.1f}%), {rf[l]['map']}²" for l in LAYER_NAMES]
    lines.append(f"| {scale}, {size} px | " + " | ".join(cells) + f" | {rf['final_map']}² | "
                 f"{conv1_filters_per_value(conv_specs(scale)):.2f} |")
  return "\n".join(lines) + "\n"


def _rendered(root: Path, rel: str) -> str:
  """The Markdown a results file renders to, by its name ("receptive_fields": computed)."""
  if rel == "receptive_fields":
    return render_receptive_fields()
  kind, _, dirs = rel.partition(":")  # curve_<kind>:DIR[,DIR...]
  if kind == "ablation":  # ablation:PATH/grid_results.json (configs/ablation.py's two tables)
    from mono_ssl.ablation import render_file
    return render_file(root / dirs)
  if kind in CURVE_BLOCKS:
    return CURVE_BLOCKS[kind]([root / d for d in dirs.split(",")])
  obj = json.loads((root / rel).read_text())
  name = Path(rel).name
  if name == "recipe.json":
    from mono_ssl.probe_recipe import render as render_recipe
    return render_recipe(obj, obj["base"]["layers"])
  if name == "curve_spread.json":
    return render_curve_spread(obj)
  if name == "probe_results.json":
    return render_probe_results(obj)
  return render(obj)


def stale_blocks(readme: str | Path) -> list[str]:
  """The JSON paths of README blocks whose text is not what their JSON renders to."""
  readme = Path(readme)
  text = readme.read_text()
  return [m["path"] for m in BLOCK.finditer(text) if m["body"] != _rendered(readme.parent, m["path"])]


def update(readme: str | Path) -> int:
  """Rewrites every block from its JSON; returns the number of blocks."""
  readme = Path(readme)
  text = readme.read_text()
  blocks = list(BLOCK.finditer(text))
  new = BLOCK.sub(lambda m: m.group(1) + _rendered(readme.parent, m["path"]) + m.group(4), text)
  readme.write_text(new)
  return len(blocks)


if __name__ == "__main__":
  path = sys.argv[1] if len(sys.argv) > 1 else "README.md"
  print(f"{update(path)} results block(s) in {path} regenerated")
