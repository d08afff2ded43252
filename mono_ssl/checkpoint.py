"""Orbax checkpoints of a TrainState's arrays, with restore into an already-sharded state."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import serialization

from mono_ssl.errors import UserInputError


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
