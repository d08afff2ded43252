"""RotNet (Gidaris et al. 2018): predict which of 0/90/180/270 degrees a patch was rotated by."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mono_ssl.methods.protocol import Hooks
from mono_ssl.models.alexnet import alexnet_from_config
from mono_ssl.train_state import TrainState, classification_update, create_classifier_state, normalise

NUM_ROTATIONS = 4


def build_model(config):
  """The AlexNet-BN of the config with a 4-way rotation classifier."""
  return alexnet_from_config(config, NUM_ROTATIONS)


def create_state(config, image_size: int, key: jax.Array, mesh, total_steps: int,
                 data_size: int | None = None) -> TrainState:
  """A fresh TrainState, already replicated over the mesh (data_size is unused)."""
  model = build_model(config)
  return create_classifier_state(model, config, image_size, key, mesh, total_steps)


def trunk(state: TrainState):
  """(apply_fn, variables) of the AlexNet the probes read."""
  return state.apply_fn, {"params": state.params, "batch_stats": state.batch_stats}


def rotate_batch(images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(B, H, W, C) square images -> (4B, H, W, C) in four rotations and labels 0..3.

  The four rotations of a patch sit next to each other, so a batch sharded
  over devices keeps each patch's rotations on the device that made it.
  """
  b = images.shape[0]
  rots = jnp.stack([jnp.rot90(images, k, axes=(1, 2)) for k in range(NUM_ROTATIONS)], axis=1)
  labels = jnp.tile(jnp.arange(NUM_ROTATIONS, dtype=jnp.int32), b)
  return rots.reshape((b * NUM_ROTATIONS,) + images.shape[1:]), labels


def make_train_step(config=None, axis_name: Any = None) -> Callable:
  """The pure RotNet step `(state, images, key) -> (state, metrics)`.

  images: float (B, H, W, 3) in [0, 1]; `config` is unused (RotNet has no
  step-level settings beyond the optimiser in the state). With `axis_name`, gradients, metrics
  and BatchNorm statistics are averaged over that `jax.pmap` axis (the state's
  apply_fn must then come from a model built with bn_axis_name=axis_name);
  without it, run it under `jax.jit` with the batch sharded over a mesh.
  """

  def step(state: TrainState, images: jax.Array, key: jax.Array):
    x, labels = rotate_batch(normalise(images))
    return classification_update(state, x, labels, key, axis_name)

  return step


def make_rotation_accuracy(state: TrainState, images: np.ndarray, batch: int = 500) -> Callable:
  """`fn(state) -> float`: the rotation head's accuracy on `images` (uint8 NHWC, at the
  network's input side) in all four rotations, BatchNorm in inference mode.

  The control a RotNet row needs before its probes are read (has the run learned its own
  task?), on held-out images: the same images for every regime (`train.pretrain` takes
  them from the probe set's validation carve), so single-image and full-data runs are
  read alike. One compiled batch shape; the last batch is padded and masked.
  """
  n = len(images)
  pad = (-n) % batch
  x = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)]) if pad else images
  valid = np.arange(len(x)) < n
  apply_fn = state.apply_fn

  @jax.jit
  def correct(params, batch_stats, xb, mb):
    r, labels = rotate_batch(normalise(xb.astype(jnp.float32) / 255.0))
    logits, _ = apply_fn({"params": params, "batch_stats": batch_stats}, r, train=False)
    hit = (jnp.argmax(logits, -1) == labels).reshape(-1, NUM_ROTATIONS)
    return jnp.sum(hit * mb[:, None])

  def accuracy(st: TrainState) -> float:
    hits = sum(int(correct(st.params, st.batch_stats, x[i:i + batch], valid[i:i + batch]))
               for i in range(0, len(x), batch))
    return hits / (NUM_ROTATIONS * n)

  return accuracy


HOOKS = Hooks()  # the loop's defaults: uniform indices, the images as the batch
