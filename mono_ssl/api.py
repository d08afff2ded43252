"""mono_ssl's pieces for your own JAX code: plain arguments in, pure functions out.

    from mono_ssl import api

Everything here takes arrays, flax modules and optax optimisers, never an ml_collections
config; the configs of `configs/` are one layer above (each method's `create_state(config,
...)` calls `classifier_state` with the config's SGD). The README's snippet uses it and a
test runs that snippet. Nothing here changes a process-wide setting; `apply_xla_cpu_flag()`
(call it first, before JAX starts) picks XLA's faster CPU convolutions, as the entry points do.

The AlexNet contract: `model.apply(variables, normalise(images), train=False, head=True)`
returns `(logits, feats)`, `feats` = {"conv1".."conv5": post-ReLU maps (conv1/conv2 before
their max-pool, the probes' taps), "fc<k>", ...}; with `head=False`, logits are None and the
head is skipped (any input size). Images enter the steps as float [0, 1] NHWC; the steps and
the probes apply the ImageNet mean/std (`normalise`) themselves.

Host/jit boundary: `kmeans` and `recluster` check their input on the host (and return
host-readable results): call them between jitted steps. `pca_whiten`, the steps and the
probe parts are pure and jittable. `make_patches` and `PatchGenerator` run two compiled
programs (XLA:CPU miscompiles them as one; `augment.make_patches` says more).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np

from mono_ssl import config_lib, images
from mono_ssl.augment import (
  AugmentConfig,
  ImageBank,
  PatchGenerator,
  jitter_patches,
  make_patches,
  sample_geometry,
)
from mono_ssl.errors import UserInputError
from mono_ssl.kmeans import KMeansResult, kmeans, nmi, pca_whiten
from mono_ssl.methods import rotnet
from mono_ssl.methods.deepcluster import Clustering, recluster
from mono_ssl.models.alexnet import LAYER_NAMES, AlexNet, conv_specs, receptive_fields
from mono_ssl.probe import LinearProbe, ProbeConfig, ProbeParts, probe_parts, run_linear_probes
from mono_ssl.train_state import TrainState, classifier_state, normalise, sgd, sgd_schedule
from mono_ssl.xla_cpu import apply as apply_xla_cpu_flag

__all__ = [
    "AlexNet", "AugmentConfig", "Clustering", "ImageBank", "KMeansResult", "LAYER_NAMES", "LinearProbe",
    "PatchGenerator", "ProbeConfig", "ProbeParts", "TrainState", "alexnet", "apply_xla_cpu_flag",
    "classifier_state", "conv_specs", "default_image", "jitter_patches", "kmeans", "make_patches",
    "nmi", "normalise", "patch_generator", "pca_whiten", "probe_parts", "receptive_fields", "recluster",
    "rotnet_step", "run_linear_probes", "sample_geometry", "sgd", "sgd_schedule",
]

SCALES = ("cpu", "mini", "paper")


def alexnet(scale: str = "cpu", num_classes: int = 4, *, width_mult: float = 1.0,
            hidden: Sequence[int] | None = None, dropout: float = 0.0, dtype: Any = "float32",
            **kwargs) -> AlexNet:
  """The AlexNet-BN of a scale ("cpu": 32 px, "mini": 48 px, "paper": the authors' 224 px),
  `num_classes` outputs (RotNet: 4). hidden: the FC widths (default (512, 512), paper (4096,
  4096)); kwargs: the other `AlexNet` fields (bn_axis_name for `jax.pmap`, head_bn, sobel)."""
  config_lib.check_choice("scale", scale, SCALES)
  if hidden is None:
    hidden = (4096, 4096) if scale == "paper" else (512, 512)
  return AlexNet(convs=conv_specs(scale, width_mult), hidden=tuple(hidden), num_classes=num_classes,
                 dropout=dropout, dtype=jax.numpy.dtype(dtype), **kwargs)


def default_image(max_side: int | None = 1024) -> np.ndarray:
  """The bundled photograph ("life", CC BY 4.0), uint8 (H, W, 3), long side at most max_side."""
  return images.load_image(images.DEFAULT_IMAGE, max_side=max_side)


def patch_generator(source: Sequence[np.ndarray], scale: str = "cpu", seed: int = 0,
                    aug: AugmentConfig | None = None, period: int = 0) -> PatchGenerator:
  """`indices -> patches` (float32 (B, S, S, 3) in [0, 1]) from source images (uint8 (H, W, 3)),
  by default under the scale's single-image augmentation (the paper's at "paper"). Patch i is
  a pure function of (images, seed, i); shard the indices over a mesh and each device makes
  its own. Build it once and call it many times: it compiles on the first call."""
  config_lib.check_choice("scale", scale, SCALES)
  if not len(source):
    raise UserInputError("patch_generator needs at least one source image")
  aug = aug or AugmentConfig.from_config(config_lib.single_image_aug(scale))
  return PatchGenerator(ImageBank.from_images(list(source)), aug, seed, period)


def rotnet_step(axis_name: Any = None) -> Callable:
  """RotNet's pure step `(state, images, key) -> (state, {"loss", "accuracy"})` on a
  `classifier_state` of a 4-class model: each image in its four rotations, cross-entropy on
  which. With `axis_name`, gradients, metrics and BatchNorm statistics are averaged over that
  `jax.pmap` axis (build the model with bn_axis_name=axis_name); else jit it with the batch
  sharded over a mesh."""
  return rotnet.make_train_step(None, axis_name)
