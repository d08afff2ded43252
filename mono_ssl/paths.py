"""Where the shared (never committed) data lives: the one place that decides it.

The project's checkout sits beside a read-only `shared/` folder (see
`shared/README.md`) that holds the real probe data sets and the source images.
Both `mono_ssl.images` (the "deca" image set) and `mono_ssl.datasets` (the
default data dir) find it through this module, so the lookup rules cannot drift
apart.
"""

from __future__ import annotations

import os
from pathlib import Path

from mono_ssl.errors import UserInputError

# Environment variable that overrides every other guess of the shared folder.
SHARED_ENV = "MONO_SSL_SHARED"

# The package dir's parent is the repository root; `shared/` sits beside it.
_REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir_candidates() -> list[Path]:
  """Returns the folders that may be `shared/`, most preferred first.

  `$MONO_SSL_SHARED` if set (then it is the only candidate: a user who names a
  folder wants that one, not a silent fallback), else `../shared` relative to
  the current directory, else `../shared` relative to the repository root.
  """
  env = os.environ.get(SHARED_ENV, "").strip()
  if env:
    return [Path(env).expanduser()]
  candidates = [Path.cwd().parent / "shared", _REPO_ROOT.parent / "shared"]
  unique: list[Path] = []
  for c in candidates:
    # The two guesses coincide when running from the repo root: list it once.
    if all(os.path.abspath(c) != os.path.abspath(u) for u in unique):
      unique.append(c)
  return unique


def shared_dir() -> Path | None:
  """Returns the first existing candidate `shared/` folder, or None."""
  for c in shared_dir_candidates():
    if c.is_dir():
      return c.resolve()
  return None


def find_in_shared(*parts: str) -> Path:
  """Returns `<shared>/<parts...>` from the first candidate where it exists.

  Raises:
    UserInputError: naming every path looked at and how to point at the data.
  """
  looked = [c.joinpath(*parts) for c in shared_dir_candidates()]
  for p in looked:
    if p.exists():
      return p.resolve()
  where = ", ".join(str(p) for p in looked)
  raise UserInputError(
      f"{'/'.join(parts)} not found in the shared folder (looked for: {where});"
      f" set {SHARED_ENV}=/path/to/shared or pass the directory explicitly"
  )
