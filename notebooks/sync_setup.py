"""The notebooks' setup cell, kept once: `notebooks/setup_cell.py`, copied into each notebook.

That cell installs the package in Colab before anything of it can be imported, so it cannot
live in `mono_ssl`; a notebook opened from GitHub has no file beside it to run either, so
each notebook carries the cell itself. Edit setup_cell.py, then:

  python notebooks/sync_setup.py          # rewrites the first code cell of every notebook
  python notebooks/sync_setup.py --check  # exit 1 naming the notebooks whose cell differs

tests/test_notebooks.py runs the check.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETUP = HERE / "setup_cell.py"


def setup_source() -> str:
  """The cell's text as a notebook holds it (no final newline)."""
  return SETUP.read_text().rstrip("\n")


def stale_notebooks(folder: Path = HERE) -> list[Path]:
  """The notebooks whose first code cell is not setup_cell.py."""
  want = setup_source()
  return [p for p in sorted(folder.glob("*.ipynb")) if _first_code_cell(p)[1] != want]


def _first_code_cell(path: Path) -> tuple[dict, str]:
  nb = json.loads(path.read_text())
  cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
  return nb, "".join(cell["source"])


def sync(folder: Path = HERE) -> list[Path]:
  """Writes setup_cell.py into every stale notebook's first code cell; returns them."""
  lines = setup_source().splitlines(keepends=True)
  stale = stale_notebooks(folder)
  for path in stale:
    nb, _ = _first_code_cell(path)
    next(c for c in nb["cells"] if c["cell_type"] == "code")["source"] = lines
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
  return stale


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true", help="only report stale notebooks")
  args = parser.parse_args(argv)
  if args.check:
    stale = stale_notebooks()
    for p in stale:
      print(f"{p.name}: its setup cell differs from {SETUP.name}; run python notebooks/sync_setup.py")
    return 1 if stale else 0
  for p in sync():
    print(f"{p.name}: setup cell rewritten from {SETUP.name}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
