r"""The augmentation ablation's and the which-image study's tables and figure (configs/ablation.py).

  python -m mono_ssl.ablation results/ablation

reads `results/ablation/grid_results.json` (the grid's export) and writes
`image_densities.json` (each photograph's edge density, so the tables render
without the shared photographs), `ablation.md` (the two tables below) and
`images_conv1.png` (each image row's source photograph beside its conv1
filters) into the same folder.

- `augmentation_table`: every non-image row's top-1 per layer (mean ± s.e.
  where it has seeds), its difference from the full recipe and its fraction of
  supervision's gain, (x − random) / (supervised − random).
- `image_table`: the full recipe (the default image) and the image rows, with
  each photograph's `edge_density`, the measure the images were chosen by.
The docs show both through a results block, `<!-- results: ablation:PATH -->`
(mono_ssl/results_doc.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from mono_ssl.errors import UserInputError
from mono_ssl.models.alexnet import LAYER_NAMES

FULL_ROW = "full_recipe"
IMAGE_PREFIX = "image_"
EDGE_THRESHOLD = 0.05  # gradient magnitude (intensity in [0, 1] per pixel) that counts as an edge
EDGE_SIDE = 512        # short side the photograph is measured at, so the measure ignores its size


def edge_density(image: np.ndarray, side: int = EDGE_SIDE, threshold: float = EDGE_THRESHOLD) -> float:
  """Fraction of a photograph's pixels on an edge: grey-level gradient magnitude > threshold,
  measured with the short side resized to `side` (bicubic). Dense street scenes score high
  (the default image, 0.56), a bokeh photograph low (0.04)."""
  from PIL import Image

  im = Image.fromarray(np.asarray(image, np.uint8)).convert("L")
  w, h = im.size
  s = side / min(w, h)
  grey = np.asarray(im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC),
                    np.float32) / 255.0
  gy, gx = np.gradient(grey)
  return float((np.hypot(gx, gy) > threshold).mean())


def _rows(grid_results: dict) -> dict[str, dict]:
  rows = {r["name"]: r for r in grid_results["runs"]}
  if FULL_ROW not in rows:
    raise UserInputError(f"no {FULL_ROW!r} row in this grid_results.json (rows: "
                         f"{', '.join(rows)}); it is configs/ablation.py's reference row.")
  return rows


def _cell(row: dict, layer: str) -> str:
  v = row["results"][layer]["top1"]
  if row.get("n_seeds", 1) > 1:
    return f"{v:.1f} ± {row['se'][layer]['top1']:.1f}"
  return f"{v:.1f}"


def _delta(row: dict, full: dict, layer: str) -> str:
  d = row["results"][layer]["top1"] - full["results"][layer]["top1"]
  return f"{d:+.1f}"


def _fraction(grid_results: dict, name: str, layer: str) -> str:
  f = grid_results.get("fraction_of_supervision", {}).get("rows", {}).get(name, {}).get(layer)
  return "–" if f is None else f"{f:.2f}"


def _table(grid_results: dict, names: list[str], extra: dict[str, str] | None = None,
           extra_header: str = "") -> str:
  rows, full = _rows(grid_results), _rows(grid_results)[FULL_ROW]
  layers = [l for l in LAYER_NAMES if l in full["results"]]
  head = "| | seeds |" + (f" {extra_header} |" if extra else "")
  lines = [head + "".join(f" {l} | Δ | frac |" for l in layers),
           "|---|---:|" + ("---:|" if extra else "") + "---:|---:|---:|" * len(layers)]
  for n in names:
    r = rows[n]
    cells = "".join(f" {_cell(r, l)} | {_delta(r, full, l) if n != FULL_ROW else '–'} | "
                    f"{_fraction(grid_results, n, l)} |" for l in layers)
    lines.append(f"| {r['label']} | {r.get('n_seeds', 1)} |" + (f" {extra[n]} |" if extra else "")
                 + cells)
  return "\n".join(lines) + "\n"


def augmentation_table(grid_results: dict) -> str:
  """Markdown: the reference rows and each ablation row against the full recipe."""
  rows = _rows(grid_results)
  names = [n for n in rows if not n.startswith(IMAGE_PREFIX)]
  return _table(grid_results, names)


def image_table(grid_results: dict, densities: dict[str, float]) -> str:
  """Markdown: the full recipe (default image) and each image row, with its edge density."""
  rows = _rows(grid_results)
  names = [FULL_ROW] + [n for n in rows if n.startswith(IMAGE_PREFIX)]
  extra = {n: f"{densities[n]:.2f}" if n in densities else "–" for n in names}
  return _table(grid_results, names, extra, "edges")


def random_gap_table(grid_results: dict) -> str:
  """Markdown: each trained row's top-1 minus random init's, per layer, ± the standard error of
  that difference, sqrt(se_row² + se_random²), where both rows have several seeds; (2σ) marks a
  difference of at least two of them. This is how the reading asks "back to random init?"."""
  rows = _rows(grid_results)
  frac = grid_results.get("fraction_of_supervision", {})
  baselines = {frac.get("supervised_row", "supervised"), frac.get("random_row", "random")}
  rand = rows.get(frac.get("random_row", "random"))
  if rand is None:
    raise UserInputError(f"no random-init row in this grid_results.json (rows: {', '.join(rows)}); "
                         "configs/ablation.py's 'random' row is the reference for this table.")
  layers = [l for l in LAYER_NAMES if l in rows[FULL_ROW]["results"]]
  lines = ["| | seeds | " + " | ".join(layers) + " |", "|---|---:|" + "---:|" * len(layers)]
  for n, r in rows.items():
    if n in baselines:
      continue
    cells = []
    for l in layers:
      d = r["results"][l]["top1"] - rand["results"][l]["top1"]
      if r.get("n_seeds", 1) > 1 and rand.get("n_seeds", 1) > 1:
        se = float(np.hypot(r["se"][l]["top1"], rand["se"][l]["top1"]))
        cells.append(f"{d:+.1f} ± {se:.1f}" + (" (2σ)" if abs(d) >= 2 * se else ""))
      else:
        cells.append(f"{d:+.1f}")
    lines.append(f"| {r['label']} | {r.get('n_seeds', 1)} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def row_image_spec(row: dict) -> str:
  """The image spec a row trained on ("default" where the config leaves it to the regime)."""
  return row["config"]["data"]["images"] or "default"


def image_densities(grid_results: dict) -> dict[str, float]:
  """Each single-image row's photograph -> edge density (rows whose image is missing: none)."""
  from mono_ssl import images

  out = {}
  for name, row in _rows(grid_results).items():
    if name != FULL_ROW and not name.startswith(IMAGE_PREFIX):
      continue
    try:
      (path,) = images.resolve_image_paths(row_image_spec(row))
    except (UserInputError, ValueError):
      continue  # the shared photographs are not on this machine: the column shows "–"
    out[name] = edge_density(images.load_image(path))
  return out


DENSITIES_FILE = "image_densities.json"


def render_file(grid_results_path: Path) -> str:
  """Both tables from a grid_results.json and the image_densities.json beside it (if any)."""
  densities = grid_results_path.parent / DENSITIES_FILE
  return render(json.loads(grid_results_path.read_text()),
                json.loads(densities.read_text()) if densities.exists() else {})


def render(grid_results: dict, densities: dict[str, float]) -> str:
  """Both tables, as docs/ablation.md and results/ablation/ablation.md show them."""
  title = grid_results["title"]
  walls = {r["label"]: r.get("wall_s", 0.0) for r in grid_results["runs"]}
  wall = ("\nWall time (pretraining + curve + probe, every seed; 2-core CPU): "
          + ", ".join(f"{k} {v / 60:.0f} min" for k, v in walls.items())
          + f"; summed {sum(walls.values()) / 3600:.1f} h.\n")
  return ("Augmentation ablation, top-1 (%) per layer; Δ: minus the full recipe; frac: fraction "
          f"of supervision's gain ({title}):\n\n" + augmentation_table(grid_results)
          + "\nWhich image (the full recipe on each photograph; edges: its edge density):\n\n"
          + image_table(grid_results, densities)
          + "\nDifference from random init, top-1 points (± its standard error where both rows "
          "have seeds; (2σ): at least two of them):\n\n" + random_gap_table(grid_results) + wall)


def filters_run(results_dir: Path, row: dict) -> str | None:
  """The first of a row's seed runs (mono_ssl.grid.seed_run_name) that kept its
  conv1_filters.npy, or None. Runs restored from results/ keep none, so a row whose seed 0
  was restored still shows the filters of another seed."""
  from mono_ssl.grid import seed_run_name

  runs = (seed_run_name(row["name"], k) for k in range(row.get("n_seeds", 1)))
  return next((r for r in runs if (results_dir / r / "conv1_filters.npy").exists()), None)


def plot_images(path: str | Path, grid_results: dict, results_dir: Path) -> int:
  """Each image row's photograph beside its conv1 filters (from <results_dir>/<run>/
  conv1_filters.npy). Returns the number of rows drawn."""
  from matplotlib.figure import Figure

  from mono_ssl import images
  from mono_ssl.report import tile_filters

  rows = _rows(grid_results)
  names = [FULL_ROW] + [n for n in rows if n.startswith(IMAGE_PREFIX)]
  fig = Figure(figsize=(6.0, 2.6 * len(names)))
  axes = fig.subplots(len(names), 2, squeeze=False)
  for (ax_img, ax_f), name in zip(axes, names):
    ax_img.axis("off")
    ax_f.axis("off")
    try:
      (src,) = images.resolve_image_paths(row_image_spec(rows[name]))
      ax_img.imshow(images.load_image(src, max_side=512))
    except (UserInputError, ValueError):
      ax_img.text(0.5, 0.5, "(image not on this machine)", ha="center", fontsize=8)
    ax_img.set_title(rows[name]["label"], fontsize=8)
    run = filters_run(results_dir, rows[name])
    if run is not None:
      ax_f.imshow(tile_filters(np.load(results_dir / run / "conv1_filters.npy")),
                  interpolation="nearest")
      ax_f.set_title(f"conv1 of {run}; row's conv2 top-1 {rows[name]['results']['conv2']['top1']:.1f}",
                     fontsize=8)
    else:
      ax_f.text(0.5, 0.5, "(conv1 filters not kept for this run)", ha="center", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  return len(names)


def main(argv: list[str]) -> int:
  if len(argv) != 2:
    print("usage: python -m mono_ssl.ablation RESULTS_DIR (holding grid_results.json)", file=sys.stderr)
    return 2
  results_dir = Path(argv[1])
  src = results_dir / "grid_results.json"
  if not src.is_file():
    print(f"error: no {src}; run configs/ablation.py through mono_ssl.grid with "
          f"--config.results_dir={results_dir} first.", file=sys.stderr)
    return 2
  try:
    grid_results = json.loads(src.read_text())
    (results_dir / DENSITIES_FILE).write_text(json.dumps(image_densities(grid_results), indent=1) + "\n")
    (results_dir / "ablation.md").write_text(render_file(src) + "\n")
    plot_images(results_dir / "images_conv1.png", grid_results, results_dir)
  except UserInputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {results_dir / DENSITIES_FILE}, {results_dir / 'ablation.md'} and "
        f"{results_dir / 'images_conv1.png'}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
