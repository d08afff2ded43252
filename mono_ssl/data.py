"""From a config to the pretraining data: an image bank, its augmentation and the virtual size."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mono_ssl import datasets, images
from mono_ssl.augment import AugmentConfig, ImageBank, check_sizes
from mono_ssl.errors import UserInputError

REGIMES = ("single", "deca", "full")


@dataclasses.dataclass(frozen=True)
class PretrainSource:
  """What a pretraining run samples patches from."""
  bank: ImageBank | None  # None when the images stream from disk
  aug: AugmentConfig
  size: int          # number of distinct patch indices (the virtual data set size)
  description: str
  stream: Any = None  # streaming.StreamingImages of the full regime with data.image_size > 0
  warnings: tuple[str, ...] = ()  # one line each, for the log (e.g. upsampled source images)


def _labels_note(config) -> str:
  return "(with labels)" if config.method == "supervised" else "(labels unused)"


def full_train_split(config):
  """The full regime's (and supervision's) in-memory train split of `data.full_dataset`.

  With `data.exclude_val` the probe's validation carve (`curves.validation_split` of
  `probe.val_fraction`, seed 0: the learning curve's and the recipe choices' images) is left
  out, so that a trunk is never pretrained on the images its choices are scored on.
  """
  ds = datasets.load_split(config.data.full_dataset, "train", config.data.data_dir or None)
  if not config.data.get("exclude_val", False):
    return ds
  if config.data.full_dataset != config.probe.dataset:
    raise UserInputError(f"data.exclude_val=True holds out {config.probe.dataset}'s validation carve, but "
                         f"data.full_dataset={config.data.full_dataset!r} is another set; make them "
                         "equal or set data.exclude_val=False.")
  from mono_ssl import curves  # curves imports the probes; only this path needs it
  keep, _ = curves.validation_split(np.asarray(ds.labels), ds.num_classes, config.probe.val_fraction, seed=0)
  return curves.subset(ds, keep, f"{ds.name} less its validation carve")


def default_images(config) -> str:
  """The image spec of `data.images=''`: the ten photographs for deca; for single, the
  bundled photograph, at full resolution (3088x2056, a 1028 px initial crop for the
  363 px canvas, like the paper's 960 px) at scale=paper, else its 1024 px copy."""
  if config.regime == "deca":
    return "deca"
  return "default_full" if config.scale == "paper" else "default"


def pretrain_source(config) -> PretrainSource:
  """Loads the regime's images (host, once) and packs them for on-device patches.

  single/deca: one or several photographs, heavy augmentation, a virtual data
  set of `data.dataset_size` patches. full: the train split of `data.full_dataset`
  (labels ignored), one patch index per image, the method's own crop and flip.
  """
  regime = config.regime
  aug = AugmentConfig.from_config(config.aug)
  if regime in ("single", "deca"):
    spec = config.data.images or default_images(config)
    paths = images.resolve_image_paths(spec)
    max_side = config.data.max_side or None
    imgs = images.load_images(paths, max_side=max_side)
    warnings = check_sizes(imgs, aug, [str(p) for p in paths])
    if config.data.dataset_size < 1:
      raise UserInputError(f"data.dataset_size={config.data.dataset_size} must be >= 1.")
    shapes = ", ".join(f"{im.shape[1]}x{im.shape[0]}" for im in imgs)
    return PretrainSource(ImageBank.from_images(imgs), aug, int(config.data.dataset_size),
                          f"{regime}: {len(imgs)} image(s) [{shapes}] from {spec}, "
                          f"{config.data.dataset_size} virtual patches",
                          warnings=tuple(warnings))
  if regime == "full":
    if config.data.image_size and config.data.get("exclude_val", False):
      raise UserInputError("data.exclude_val=True needs the train split in memory; set data.image_size=0 "
                           "or data.exclude_val=False.")
    if config.data.image_size:  # too large for memory (ImageNet): decoded batch by batch
      stream = datasets.open_stream(config.data.full_dataset, "train", config.data.data_dir or None,
                                    config.data.image_size, field="data.image_size")
      if stream.side < aug.patch_size:
        raise UserInputError(f"data.image_size={stream.side} is smaller than the patches' source "
                             f"side aug.patch_size={aug.patch_size}; raise data.image_size.")
      return PretrainSource(None, aug, len(stream), f"full: {len(stream)} images of {stream.name} "
                            f"streamed at {stream.side} px {_labels_note(config)}", stream=stream)
    ds = full_train_split(config)
    if ds.images.shape[1] != ds.images.shape[2]:
      raise UserInputError(f"{ds.name} images are {ds.images.shape[2]}x{ds.images.shape[1]}: "
                           "the full regime needs square images.")
    return PretrainSource(ImageBank.from_images_array(np.asarray(ds.images)), aug, len(ds),
                          f"full: {len(ds)} images of {ds.name} {_labels_note(config)}")
  raise UserInputError(f"regime={regime!r} is not one of {REGIMES}.")
