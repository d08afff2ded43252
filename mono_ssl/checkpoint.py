"""Orbax checkpoints of a TrainState's arrays, with restore into an already-sharded state."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import serialization

from mono_ssl.errors import UserInputError


class CheckpointMismatch(UserInputError):
  """A readable checkpoint whose arrays do not fit the state this config builds."""


def _path_name(path) -> str:
  return ".".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


class Checkpointer:
  """Keeps the last `max_to_keep` checkpoints of one training stage under `directory`."""

  def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
    self.directory = Path(directory).absolute()
    # Synchronous saves: a run killed right after `save` returns must find the
    # checkpoint complete (orbax writes to a temporary folder, then renames).
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                             enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def save(self, state: Any) -> int:
    """Saves the arrays of a flax-struct state (static fields such as apply_fn are code, not data)."""
    step = int(jax.device_get(state.step))
    self.manager.save(step, args=ocp.args.StandardSave(serialization.to_state_dict(state)), force=True)
    self.manager.wait_until_finished()
    return step

  def restore(self, state: Any, step: int | None = None) -> Any:
    """Restores into the structure, dtypes and shardings of `state`.

    Tries the requested (default: latest) step, then older ones, so a
    corrupted newest checkpoint leaves the previous good one usable; the
    error names every step it tried.
    """
    steps = [step] if step is not None else list(reversed(self.all_steps()))
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, serialization.to_state_dict(state))
    errors = []
    for s in steps:
      differences = self._differences(s, abstract)
      if differences:
        # A readable checkpoint of another model or config: refuse (falling
        # back or reinitialising would silently train something else).
        raise CheckpointMismatch(
            f"the checkpoint {self.directory}/{s} holds a different model or training state "
            f"than this config builds ({'; '.join(differences)}); restore it with the config it "
            "was written with (its run's config.json), or start in a fresh --workdir.")
      try:
        arrays = self.manager.restore(s, args=ocp.args.StandardRestore(abstract))
        if errors:  # fell back: set the damaged newer ones aside so training can save again
          self._set_aside(steps[:steps.index(s)])
        return serialization.from_state_dict(state, arrays)
      except Exception as e:  # noqa: BLE001 -- orbax raises many types for a damaged checkpoint
        errors.append(f"step {s}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        print(f"warning: checkpoint {self.directory}/{s} could not be restored ({errors[-1]}); "
              "trying an older one.")
    raise UserInputError(
        f"no usable checkpoint in {self.directory} ({'; '.join(errors) or 'none found'}); "
        "delete that folder to start over, or point --workdir elsewhere.")

  def _differences(self, step: int, abstract: Any, limit: int = 6) -> list[str]:
    """Fields whose shape or presence differ between checkpoint `step` and `abstract`.

    Read from the checkpoint's metadata alone; unreadable metadata gives []
    so that the restore itself reports the damage (and falls back).
    """
    try:
      meta = ocp.StandardCheckpointHandler().metadata(self.directory / str(step) / "default")
      tree = getattr(meta, "tree", meta)
      saved = {_path_name(p): tuple(m.shape) for p, m in jax.tree_util.tree_leaves_with_path(tree)}
    except Exception:  # noqa: BLE001 -- damaged metadata: let restore() report it
      return []
    if not saved:
      return []
    wanted = {_path_name(p): tuple(a.shape) for p, a in jax.tree_util.tree_leaves_with_path(abstract)}
    # Parameters first: they name the model change (optimiser slots only echo it).
    order = lambda k: (not k.startswith("params"), k)  # noqa: E731
    out = [f"{k}: checkpoint {saved[k]} vs config {wanted[k]}"
           for k in sorted(saved.keys() & wanted.keys(), key=order) if saved[k] != wanted[k]]
    out += [f"{k}: only in the checkpoint" for k in sorted(saved.keys() - wanted.keys(), key=order)]
    out += [f"{k}: only in this config's state"
            for k in sorted(wanted.keys() - saved.keys(), key=order)]
    return out[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])

  def _set_aside(self, steps: list[int]) -> None:
    """Renames damaged step folders to '<step>.damaged' (kept for inspection, never deleted)."""
    if jax.process_index() == 0:
      for s in steps:
        src = self.directory / str(s)
        if src.exists():
          dst = self.directory / f"{s}.damaged"
          n = 1
          while dst.exists():
            n += 1
            dst = self.directory / f"{s}.damaged{n}"
          src.rename(dst)
          print(f"warning: moved the unreadable checkpoint {src} to {dst}.")
    self.manager.reload()

  def close(self) -> None:
    self.manager.close()
