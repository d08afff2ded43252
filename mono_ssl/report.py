"""Probe results on disk: JSON, a Markdown table and a per-layer plot."""
from __future__ import annotations

import json
import os
from pathlib import Path


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
  # A bare Figure (no pyplot): works headless and leaves a notebook's backend alone.
  from matplotlib.figure import Figure

  fig = Figure(figsize=(5.5, 3.8))
  ax = fig.subplots()
  for name, r in rows.items():
    ax.plot(list(layers), [r[l]["top1"] for l in layers], marker="o", label=name)
  ax.set_xlabel("probed layer")
  ax.set_ylabel("top-1 accuracy (%)")
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
