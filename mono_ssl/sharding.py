"""The 1-D device mesh every step runs data-parallel over."""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mono_ssl.errors import UserInputError

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all (or the given) devices, axis name 'data'."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the mesh, the rest whole."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh, field: str) -> None:
  """A global batch must split evenly over the devices."""
  n = mesh.size
  if batch_size < 1 or batch_size % n:
    raise UserInputError(
        f"{field}={batch_size} is not a positive multiple of the {n} devices; "
        f"use a multiple of {n} (e.g. {max(n, (batch_size // n) * n or n)}).")


def fit_batch_size(batch_size: int, mesh: Mesh) -> int:
  """The largest multiple of the device count not above `batch_size` (at least one per device).

  For evaluation batches, which pad and mask their last batch anyway: a config's
  500 runs as 496 on 8 devices instead of being refused (a training batch is
  not refitted: it changes the optimisation, so `check_batch_size` refuses it).
  """
  n = mesh.size
  if batch_size < 1:
    raise UserInputError(f"an evaluation batch of {batch_size} must be >= 1.")
  return max(n, batch_size // n * n)


def to_global(tree, sharding: NamedSharding):
  """Host data (identical on every process) -> global jax.Arrays with `sharding`.

  Each process materialises only the shards its own devices hold, so this is
  the same call on one host and on many (plain `device_put` of host data is
  single-process only).
  """
  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])
  return jax.tree.map(put, tree)


def is_chief() -> bool:
  """Process 0 writes metrics and results; every process writes its checkpoint shards."""
  return jax.process_index() == 0


def initialize_distributed(cfg) -> None:
  """Calls `jax.distributed.initialize` from a config's `distributed` block (before any JAX work).

  On a TPU pod or a SLURM/MPI cluster JAX detects everything itself: set only
  enabled=True. Elsewhere give coordinator_address ('host:port'), num_processes
  and process_id.
  """
  if not cfg.enabled:
    return
  kwargs = {}
  if cfg.coordinator_address:
    kwargs["coordinator_address"] = cfg.coordinator_address
  if cfg.num_processes > 0:
    kwargs["num_processes"] = cfg.num_processes
  if cfg.process_id >= 0:
    kwargs["process_id"] = cfg.process_id
  try:
    jax.distributed.initialize(**kwargs)
  except (RuntimeError, ValueError) as e:
    raise UserInputError(f"jax.distributed.initialize({kwargs}) failed: {str(e).splitlines()[0]}; "
                         "check distributed.coordinator_address/num_processes/process_id.") from None
