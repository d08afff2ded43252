"""ScatNet as a "method": a fixed scattering transform (mono_ssl/scatnet.py) with nothing to train.

It plugs into `train.train_and_evaluate` like the learned trunks, so its rows
come from the same probes and the same result files: the state holds no
parameters, `train.num_steps` must be 0, and the probes read orders <= 1 as
"conv1" and orders <= 2 as "conv2" (configs/scatnet.py sets probe.layers).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from mono_ssl import scatnet
from mono_ssl.errors import UserInputError
from mono_ssl.methods.protocol import Hooks
from mono_ssl.train_state import TrainState, create_sharded


def build_model(config) -> scatnet.ScatNet:
  """The scattering network of `config.scatnet` (J scales, L orientations)."""
  J, L = config.scatnet.J, config.scatnet.L
  if not (isinstance(J, int) and J >= 1 and isinstance(L, int) and L >= 1):
    raise UserInputError(f"scatnet.J={J!r} and scatnet.L={L!r} must be positive integers.")
  return scatnet.ScatNet(J=J, L=L)


def create_state(config, image_size: int, key: jax.Array, mesh, total_steps: int,
                 data_size: int | None = None) -> TrainState:
  """A parameter-free TrainState (step 0); refuses a run that asks for training steps."""
  del image_size, data_size
  if total_steps:
    raise UserInputError(f"train.num_steps={total_steps}: scatnet is hand-designed and has "
                         "nothing to train; use train.num_steps=0.")
  model = build_model(config)
  tx = optax.identity()

  def init(key):
    del key
    return TrainState(step=jnp.int32(0), params={}, batch_stats={}, opt_state=tx.init({}),
                      apply_fn=model.apply, tx=tx)

  return create_sharded(init, key, mesh)


def trunk(state: TrainState):
  """(apply_fn, variables) the probes read: `apply_fn({}, x, train=False, head=False)`."""
  return state.apply_fn, {}


def make_train_step(config=None, axis_name: Any = None) -> Callable:
  """A step that only counts (never run: create_state refuses num_steps > 0)."""
  del config, axis_name

  def step(state: TrainState, images: jax.Array, key: jax.Array):
    del images, key
    return state.replace(step=state.step + 1), {"loss": jnp.float32(0.0)}

  return step


HOOKS = Hooks()  # the loop's defaults (nothing trains)
