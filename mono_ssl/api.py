"""mono_ssl's pieces for your own JAX code: plain arguments in, pure functions out.

    from mono_ssl import api

Everything here takes arrays, flax modules and optax optimisers, never an ml_collections
config; the configs of `configs/` are one layer above: each method's `create_state(config,
...)` builds the config's networks and optimisers and calls the constructor here
(`classifier_state`, `deepcluster_state`'s fields, `bigan.init_state`), and its
`make_train_step(config)` is the step here with the config's settings
(`BiGANStepOptions.from_config`). `tests/test_api.py` checks that both paths give the same
state and the same first step. The README's snippet uses it and a
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
from mono_ssl.methods import bigan, deepcluster, rotnet
from mono_ssl.methods.bigan import BiGANState
from mono_ssl.methods.bigan import StepOptions as BiGANStepOptions
from mono_ssl.methods.deepcluster import Clustering, install_clustering, recluster
from mono_ssl.models.alexnet import LAYER_NAMES, AlexNet, conv_specs, receptive_fields
from mono_ssl.models.bigan import DonahueDiscriminator, Generator, JointDiscriminator
from mono_ssl.probe import LinearProbe, ProbeConfig, ProbeParts, probe_parts, run_linear_probes
from mono_ssl.train_state import TrainState, classifier_state, normalise, sgd, sgd_schedule
from mono_ssl.xla_cpu import apply as apply_xla_cpu_flag

__all__ = [
    "AlexNet", "AugmentConfig", "BiGANState", "BiGANStepOptions", "Clustering",
    "DonahueDiscriminator", "Generator", "JointDiscriminator", "bigan_encoder", "bigan_state",
    "bigan_step", "deepcluster_state", "deepcluster_step", "install_clustering", "ImageBank", "KMeansResult", "LAYER_NAMES", "LinearProbe",
    "PatchGenerator", "ProbeConfig", "ProbeParts", "TrainState", "alexnet", "apply_xla_cpu_flag",
    "classifier_state", "conv_specs", "default_image", "jitter_patches", "kmeans", "make_patches",
    "nmi", "normalise", "patch_generator", "pca_whiten", "probe_parts", "receptive_fields", "recluster",
    "rotnet_step", "run_linear_probes", "sample_geometry", "sgd", "sgd_schedule",
]

SCALES = config_lib.SCALES


def alexnet(scale: str = "cpu", num_classes: int = 4, *, width_mult: float = 1.0,
            hidden: Sequence[int] | None = None, dropout: float = 0.0, dtype: Any = "float32",
            **kwargs) -> AlexNet:
  """The AlexNet-BN of a scale ("cpu": 32 px, "mini": 48 px, "calib": 64 px, "paper": the authors' 224 px),
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


def deepcluster_state(model: AlexNet, tx, key: jax.Array, image_size: int, data_size: int,
                      num_clusters: int, mesh=None) -> deepcluster.DeepClusterState:
  """A fresh DeepCluster state (`methods.deepcluster.init_state`): `classifier_state` of a
  `num_clusters`-class model plus the pseudo-labels of the N = `data_size` patches and the
  cluster sampler's table (empty until the first `install_clustering`). tx: any optax
  optimiser (the configs use SGD on the trunk and a momentum-free SGD, reset at every
  clustering, on the top layer)."""
  return deepcluster.init_state(model, tx, key, image_size, data_size, num_clusters, mesh)


def deepcluster_step(axis_name: Any = None) -> Callable:
  """DeepCluster's pure step `(state, {"images", "indices"}, key) -> (state, metrics)`:
  cross-entropy of each patch against its pseudo-label, `state.assignments[index]`. Between
  steps, `recluster` the features and install its result (`deepcluster.install_clustering`)."""
  return deepcluster.make_train_step(None, axis_name)


def bigan_encoder(scale: str = "cpu", latent_dim: int = 200, *, width_mult: float = 1.0,
                  **kwargs) -> AlexNet:
  """BiGAN's E as Donahue's: the scale's AlexNet-BN trunk, then one bias-free linear map of
  pool5 to `latent_dim` code logits (no fc6/fc7), N(0, 0.02 * sqrt(4096 / fan_in)) at init,
  so its codes start as spread as his over 4,096 conv5 features."""
  return alexnet(scale, latent_dim, width_mult=width_mult, hidden=(), classifier_bias=False,
                 classifier_init_std=0.02, classifier_init_fan_in=4096, **kwargs)


def bigan_state(encoder: AlexNet, generator, discriminator, ge_tx, d_tx, key: jax.Array,
                image_size: int, *, latent_dim: int, gen_size: int, mesh=None,
                disc_group: int = 1) -> BiGANState:
  """A fresh BiGAN state from flax modules and optax optimisers (`methods.bigan.init_state`):
  ge_tx updates {"encoder", "generator"} together, d_tx the discriminator."""
  return bigan.init_state(encoder, generator, discriminator, ge_tx, d_tx, key, image_size,
                          latent_dim=latent_dim, gen_size=gen_size, mesh=mesh,
                          disc_group=disc_group)


def bigan_step(options: BiGANStepOptions | None = None, axis_name: Any = None) -> Callable:
  """BiGAN's pure step `(state, images, key) -> (state, metrics)` (`methods.bigan.make_step`):
  D's cross-entropy on real (x, E(x)) and fake (G(z), z) pairs, E and G's non-saturating
  loss, one forward pass and two backward passes. Metrics: losses, D's accuracy per half and
  E's code spread (`e_code_std`). options: default `BiGANStepOptions()`, Donahue's recipe."""
  return bigan.make_step(options or BiGANStepOptions(), axis_name)
