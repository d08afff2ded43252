"""Results on disk: JSON, Markdown tables, a per-layer plot and a figure of conv1 filters."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def hms(seconds: float) -> str:
  """Seconds as H:MM:SS (rounded; negative counts as 0), for logs, ETAs and wall-time tables."""
  s = int(round(max(seconds, 0)))
  return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def read_jsonl(path: str | os.PathLike, key: str | None = None) -> list[dict]:
  """The records of a JSON-lines file ([] if there is none), optionally only those holding
  `key`; a torn last line (a run killed mid-write) is skipped."""
  path, out = Path(path), []
  if path.exists():
    for line in path.read_text().splitlines():
      try:
        rec = json.loads(line)
      except json.JSONDecodeError:
        continue
      if key is None or key in rec:
        out.append(rec)
  return out


def write_json(path: str | os.PathLike, obj) -> None:
  """Writes atomically (temp file + rename) so a kill never leaves half a file."""
  path = Path(path)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
  os.replace(tmp, path)


def markdown_table(rows: dict[str, dict], layers, metric: str = "top1",
                   bold_best: bool = False) -> str:
  """rows: {row name: {layer: {"top1": x, "top5": y}}} -> a Markdown table, layers as columns."""
  best = {l: max((r[l][metric] for r in rows.values() if l in r), default=None) for l in layers}
  lines = ["| | " + " | ".join(layers) + " |", "|---|" + "---:|" * len(layers)]
  for name, r in rows.items():
    cells = []
    for l in layers:
      if l not in r:
        cells.append("–")
        continue
      v = f"{r[l][metric]:.1f}"
      cells.append(f"**{v}**" if bold_best and r[l][metric] == best[l] else v)
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot_layers(path: str | os.PathLike, rows: dict[str, dict], layers, title: str) -> None:
  """Top-1 against depth, one line per row."""
  _plot_per_layer(path, {name: {l: v["top1"] for l, v in r.items()} for name, r in rows.items()},
                  layers, title, "top-1 accuracy (%)")


# grid_layers.png: a colour per regime, a dashed style per baseline (the same in every panel).
REGIME_COLOURS = {"single": "tab:blue", "deca": "tab:orange", "full": "tab:green"}
BASELINE_STYLES = {"supervised": ("black", "--"), "random": ("grey", "--"), "scatnet": ("tab:brown", ":")}


def layers_figure(runs: list[dict], layers, title: str):
  """Top-1 against depth from a grid's rows (grid_results.json's `runs`: `label`, `method`,
  `regime`, `baseline`, `results` {layer: {"top1"}}, optional `se`): one panel per method,
  its regimes by colour, every baseline dashed in every panel, standard errors as bars,
  one legend outside the panels. Returns a matplotlib Figure (no pyplot: headless-safe)."""
  from matplotlib.figure import Figure

  layers = list(layers)
  baselines = [r for r in runs if r.get("baseline")]
  methods = list(dict.fromkeys(r["method"] for r in runs if not r.get("baseline"))) or ["baselines"]
  fig = Figure(figsize=(4.2 * len(methods) + 1.8, 3.6))
  axes = fig.subplots(1, len(methods), sharey=True, squeeze=False)[0]
  handles = {}
  extra = iter(["tab:red", "tab:purple", "tab:pink", "tab:olive", "tab:cyan"])
  colours = dict(REGIME_COLOURS)
  for ax, method in zip(axes, methods):
    own = [r for r in runs if r["method"] == method and not r.get("baseline")]
    for r in own + baselines:
      have = [j for j, l in enumerate(layers) if l in r["results"]]
      ys = [r["results"][layers[j]]["top1"] for j in have]
      err = [r.get("se", {}).get(layers[j], {}).get("top1", 0.0) for j in have]
      if r.get("baseline"):
        colour, style = BASELINE_STYLES.get(r["baseline"], ("grey", "-."))
        key = r["label"]
      else:
        colour = colours.setdefault(r["regime"], next(extra, "tab:gray"))
        style, key = "-", r["regime"]
      line = ax.errorbar(have, ys, yerr=err if any(err) else None, marker="o", ms=4, ls=style,
                         color=colour, capsize=2, lw=1.3)
      handles.setdefault(key, line)
    ax.set_xticks(range(len(layers)), layers)
    ax.set_xlabel("probed layer")
    ax.set_title(method, fontsize=10)
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("top-1 accuracy (%)")
  fig.legend(list(handles.values()), list(handles), loc="center right", fontsize=8, frameon=False)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout(rect=(0, 0, 1 - 1.6 / fig.get_figwidth(), 1))
  return fig


def plot_layers_by_method(path: str | os.PathLike, runs: list[dict], layers, title: str) -> None:
  """`layers_figure`, saved to `path`."""
  layers_figure(runs, layers, title).savefig(path, dpi=120)


def _plot_per_layer(path, rows: dict[str, dict], layers, title: str, ylabel: str,
                    marks: tuple = ()) -> None:
  """One line per row ({name: {layer: value}}; a row may lack layers, e.g. ScatNet's conv3-5),
  20 distinct colours, and horizontal reference lines `marks` ((y, label, style), ...)."""
  # A bare Figure (no pyplot): works headless and leaves a notebook's backend alone.
  from matplotlib import colormaps
  from matplotlib.figure import Figure

  fig = Figure(figsize=(5.5, 3.8))
  ax = fig.subplots()
  layers = list(layers)
  colours = colormaps["tab20"].colors
  for i, (name, r) in enumerate(rows.items()):
    have = [j for j, l in enumerate(layers) if l in r]
    ax.plot(have, [r[layers[j]] for j in have], marker="o", label=name, color=colours[i % 20])
  for y, label, style in marks:
    ax.axhline(y, color="k" if y else "grey", ls=style, lw=1, label=label)
  ax.set_xticks(range(len(layers)), layers)
  ax.set_xlabel("probed layer")
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def tile_filters(kernel, cols: int | None = None, pad: int = 1):
  """(k, k, 1|2|3, C) conv kernel -> one RGB image of its C filters in a grid.

  Each filter is scaled to [0, 1] on its own (the usual way to show conv1),
  so its colours and orientation show whatever its norm. A 1-channel kernel is
  shown grey; a 2-channel one (behind DeepCluster's Sobel front end: the x and y
  gradients) with x in red and y in green.
  """
  w = np.asarray(kernel, np.float32)
  if w.ndim != 4 or w.shape[2] not in (1, 2, 3):
    raise ValueError(f"conv kernel of shape {w.shape}: expected (k, k, 1|2|3, C)")
  if w.shape[2] == 1:
    w = np.repeat(w, 3, axis=2)
  elif w.shape[2] == 2:  # Sobel's (gx, gy) -> (red, green); blue at each filter's own minimum (0 once scaled)
    w = np.concatenate([w, np.broadcast_to(w.min(axis=(0, 1, 2), keepdims=True), w[:, :, :1].shape)],
                       axis=2)
  k, _, _, c = w.shape
  cols = cols or int(np.ceil(np.sqrt(c)))
  rows = int(np.ceil(c / cols))
  out = np.ones((rows * (k + pad) + pad, cols * (k + pad) + pad, 3), np.float32)
  for i in range(c):
    f = w[..., i]
    f = (f - f.min()) / max(float(f.max() - f.min()), 1e-12)
    r, q = divmod(i, cols)
    out[pad + r * (k + pad):pad + r * (k + pad) + k, pad + q * (k + pad):pad + q * (k + pad) + k] = f
  return out


def plot_filters(path: str | os.PathLike, panels: dict, title: str) -> None:
  """One panel per trunk: {name: (k, k, 1|2|3, C) kernel} -> a figure of tiled filters."""
  from matplotlib.figure import Figure

  n = max(len(panels), 1)
  cols = min(4, n)
  rows = -(-n // cols)
  fig = Figure(figsize=(3.0 * cols, 3.2 * rows + 0.4))
  axes = fig.subplots(rows, cols, squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for ax, (name, kernel) in zip(axes.ravel(), panels.items()):
    ax.imshow(tile_filters(kernel), interpolation="nearest")
    ax.set_title(name, fontsize=9)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def plot_fractions(path: str | os.PathLike, rows: dict[str, dict], layers, title: str) -> None:
  """The fraction of supervision's gain per layer, one line per row; 1.0 (labels) and 0 (random
  init) marked."""
  _plot_per_layer(path, rows, layers, title, "fraction of supervision's gain",
                  marks=((1.0, "supervised (1.0)", "--"), (0.0, "random init (0)", ":")))
