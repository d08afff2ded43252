"""Full supervision: the same AlexNet-BN trained with labels on a labelled set's train split.

The upper baseline of the paper's tables. It runs in the `full` regime: the
pretraining data is `data.full_dataset`'s train split (configs/supervised.py
sets it to the probe set), one patch index per image with the method's crop
and flip, and index i carries image i mod N's label. The labels live in the
state (like DeepCluster's assignments) and the step is the cross-entropy
update RotNet and DeepCluster share.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import numpy as np

from mono_ssl import data as data_lib
from mono_ssl import datasets
from mono_ssl import sharding as shd
from mono_ssl.errors import UserInputError
from mono_ssl.methods.protocol import Hooks
from mono_ssl.models.alexnet import alexnet_from_config
from mono_ssl.train_state import TrainState, classification_update, create_classifier_state, normalise


@flax.struct.dataclass
class SupervisedState(TrainState):
  """TrainState + the train split's labels (N,), read by patch index mod N."""
  labels: jax.Array = None


def _train_split(config):
  if config.regime != "full":
    raise UserInputError(f"supervised needs labelled images: regime={config.regime!r} has none; "
                         "use regime=full (the probe set's train split).")
  if config.data.image_size:  # streamed (ImageNet): the same images as the full regime's stream
    return datasets.open_stream(config.data.full_dataset, "train", config.data.data_dir or None,
                                config.data.image_size, field="data.image_size")
  return data_lib.full_train_split(config)  # less the validation carve with data.exclude_val


def num_classes(config) -> int:
  """`supervised.num_classes`, or (0) the class count of the training set."""
  return config.supervised.num_classes or _train_split(config).num_classes


def build_model(config):
  """The AlexNet-BN of the config with one output per class."""
  return alexnet_from_config(config, num_classes(config))


def create_state(config, image_size: int, key: jax.Array, mesh, total_steps: int,
                 data_size: int | None = None) -> SupervisedState:
  """A fresh state with the labels of the training split, replicated over the mesh."""
  if config.data.full_dataset != config.probe.dataset:
    raise UserInputError(f"supervised trains on the probe set's train split, but data.full_dataset="
                         f"{config.data.full_dataset!r} and probe.dataset={config.probe.dataset!r}; "
                         "set both to the same data set.")
  ds = _train_split(config)
  k = config.supervised.num_classes
  if k and k != ds.num_classes:
    raise UserInputError(f"supervised.num_classes={k} but {ds.name} has {ds.num_classes} classes; "
                         "use 0 (the data set's count) or the right number.")
  if data_size is not None and data_size != len(ds):
    raise UserInputError(f"supervised: the pretraining data has {data_size} images but "
                         f"{ds.name} has {len(ds)} labels; they must be the same split.")
  model = build_model(config)
  state = create_classifier_state(model, config, image_size, key, mesh, total_steps)
  # Added after init: a traced-in label table would be a constant inside the jitted init.
  labels = shd.to_global(np.asarray(ds.labels, np.int32), shd.replicated(mesh))
  return SupervisedState(**{f: getattr(state, f) for f in
                            ("step", "params", "batch_stats", "opt_state", "apply_fn", "tx")},
                         labels=labels)


def trunk(state: TrainState):
  """(apply_fn, variables) of the AlexNet the probes read."""
  return state.apply_fn, {"params": state.params, "batch_stats": state.batch_stats}


def make_batch(images: jax.Array, indices: jax.Array) -> dict:
  return {"images": images, "indices": indices}


def make_train_step(config=None, axis_name: Any = None) -> Callable:
  """Pure step `(state, batch, key) -> (state, metrics)`; batch = {"images", "indices"}."""
  del config

  def step(state: SupervisedState, batch: dict, key: jax.Array):
    labels = state.labels[batch["indices"] % state.labels.shape[0]]
    return classification_update(state, normalise(batch["images"]), labels, key, axis_name)

  return step


HOOKS = Hooks(make_batch=make_batch)  # labels ride with the images
