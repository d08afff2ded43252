"""The 1-D device mesh every step runs data-parallel over."""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

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
