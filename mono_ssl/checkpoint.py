"""Orbax checkpoints of a TrainState's arrays, with restore into an already-sharded state."""
from __future__ import annotations

import os
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from mono_ssl.errors import UserInputError
from mono_ssl.train_state import TrainState


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

  def save(self, state: TrainState) -> int:
    step = int(jax.device_get(state.step))
    self.manager.save(step, args=ocp.args.StandardSave(state.arrays()), force=True)
    self.manager.wait_until_finished()
    return step

  def restore(self, state: TrainState, step: int | None = None) -> TrainState:
    """Restores into the structure, dtypes and shardings of `state`.

    Tries the requested (default: latest) step, then older ones, so a
    corrupted newest checkpoint leaves the previous good one usable; the
    error names every step it tried.
    """
    steps = [step] if step is not None else list(reversed(self.all_steps()))
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state.arrays())
    errors = []
    for s in steps:
      try:
        arrays = self.manager.restore(s, args=ocp.args.StandardRestore(abstract))
        return state.replace_arrays(arrays)
      except Exception as e:  # orbax raises many types for a damaged or foreign checkpoint
        errors.append(f"step {s}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        print(f"warning: checkpoint {self.directory}/{s} could not be restored ({errors[-1]}); "
              "trying an older one.")
    raise UserInputError(
        f"no usable checkpoint in {self.directory} ({'; '.join(errors) or 'none found'}); "
        "delete that folder to start over, or point --workdir elsewhere.")

  def close(self) -> None:
    self.manager.close()
