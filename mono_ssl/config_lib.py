"""Helpers for `configs/*.py`: typed `key=value` arguments and the shared base config."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import ml_collections

from mono_ssl.errors import UserInputError

PAPER_DATASET_SIZE = 1_281_167  # ImageNet's train size, the authors' default patch count
SCALES = ("cpu", "mini", "calib", "paper")  # the conv stacks of models.alexnet.conv_specs


def load_config_file(path: str | os.PathLike, arg: str | None = None):
  """Imports a config file (e.g. configs/rotnet.py) and returns its get_config(arg), as
  `--config=path:arg` does on the command line."""
  path = Path(path)
  if not path.is_file():
    raise UserInputError(f"no config file {path}; pass a path such as configs/rotnet.py.")
  spec = importlib.util.spec_from_file_location(f"mono_ssl_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def parse_arg(arg: str | None, **defaults):
  """Parses 'a=1,b=x' into a locked ConfigDict typed like `defaults`.

  `--config=configs/rotnet.py:regime=deca,scale=cpu` reaches get_config as
  'regime=deca,scale=cpu'. Unknown keys and values of the wrong type fail
  with a message naming them.
  """
  out = ml_collections.ConfigDict(defaults)
  for item in filter(None, (arg or "").split(",")):
    if "=" not in item:
      known = f"known keys: {', '.join(defaults)}" if defaults else "this config takes none"
      raise UserInputError(f"config argument {item!r} is not key=value ({known}).")
    key, value = (s.strip() for s in item.split("=", 1))
    if key not in defaults:
      known = f"known: {', '.join(defaults)}." if defaults else "this config takes no arguments."
      raise UserInputError(f"unknown config argument {key!r}; {known}")
    kind = type(defaults[key])
    try:
      if kind is bool:
        if value.lower() not in ("true", "false", "1", "0"):
          raise ValueError(value)
        out[key] = value.lower() in ("true", "1")
      else:
        out[key] = kind(value)
    except ValueError:
      raise UserInputError(f"config argument {key}={value!r} is not a valid {kind.__name__}.") from None
  out.lock()
  return out


def check_choice(name: str, value: str, choices) -> None:
  if value not in choices:
    raise UserInputError(f"{name}={value!r} is not one of {', '.join(choices)}.")


def single_image_aug(scale: str) -> ml_collections.ConfigDict:
  """The authors' patch generator, at the given scale (see mono_ssl/augment.py)."""
  # mini: 48 px from 56, about the paper's 224 from 256.
  # calib: 64 px from 73 (Tiny-ImageNet's own side, the paper's ratio).
  out_size, patch_size = {"cpu": (32, 40), "mini": (48, 56), "calib": (64, 73),
                          "paper": (224, 256)}[scale]
  return ml_collections.ConfigDict(dict(
      out_size=out_size, patch_size=patch_size,
      initial_crop=True, initial_crop_frac=0.5, initial_crop_fixed=False,
      rrc=True, rrc_scale=(0.002, 1.0), rrc_ratio=(3 / 4, 4 / 3),
      affine=True, rotation_deg=30.0, shear_deg=30.0, corner_free=True,
      method_crop=True, method_crop_scale=(0.08, 1.0) if scale == "paper" else (0.5, 1.0),
      flip=True,
      jitter_prob=0.5, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
      antialias=True))


def full_data_aug(scale: str) -> ml_collections.ConfigDict:
  """A labelled data set's images used without labels: the method's crop and flip only."""
  aug = single_image_aug(scale)
  aug.update(dict(initial_crop=False, rrc=False, affine=False, jitter_prob=0.0,
                  patch_size=aug.out_size))
  return aug


# The head's dropout at scale=paper, per method, as the originals' AlexNets have it:
# Gidaris et al.'s RotNet AlexNet has none (FeatureLearningRotNet architectures/AlexNet.py:
# Linear -> BatchNorm -> ReLU in the classifier); DeepCluster's head is Dropout -> Linear ->
# ReLU -> Dropout -> Linear -> ReLU, and torchvision's supervised AlexNet likewise drops 0.5.
HEAD_DROPOUT = {"rotnet": 0.0, "deepcluster": 0.5, "supervised": 0.5}


def base_config(method: str, regime: str, scale: str) -> ml_collections.ConfigDict:
  """Every field a run reads, with this project's CPU- or paper-scale defaults."""
  check_choice("regime", regime, ("single", "deca", "full"))
  check_choice("scale", scale, SCALES)
  small = scale != "paper"  # cpu and mini: this project's 2-core-CPU sizes
  c = ml_collections.ConfigDict()
  c.method = method
  c.regime = regime
  c.scale = scale
  c.seed = 0
  # Multi-host: enabled=True calls jax.distributed.initialize (TPU pods/SLURM: auto-detected).
  c.distributed = dict(enabled=False, coordinator_address="", num_processes=0, process_id=-1)
  c.init_from = ""  # a workdir of an earlier run to start from (with train.num_steps=0: probe only)
  c.data = dict(
      images="",              # '' = the regime's default: bundled image / deca folder
      max_side=2048 if small else 0,  # 0 = full resolution
      dataset_size=PAPER_DATASET_SIZE,
      full_dataset="cifar10" if small else "tfds:imagenet2012",
      data_dir="",
      # full regime and supervised: 0 = the set decoded into memory at its own size;
      # N = streamed from disk, short side resized to N, centre crop (ImageNet).
      image_size=0 if small else 256,
      # True: the full regime and supervision train without the probe's validation carve
      # (data.full_train_split), so choices made on the carve are not scored on seen images.
      exclude_val=False)
  c.aug = full_data_aug(scale) if regime == "full" else single_image_aug(scale)
  c.model = dict(width_mult=1.0, hidden=(512, 512) if small else (4096, 4096),
                 convs="",  # '' = the scale's stack; a spec string tries another (alexnet.parse_convs)
                 dropout=0.0 if small else HEAD_DROPOUT.get(method, 0.5),
                 dtype="float32")  # bfloat16: mixed precision (models/alexnet.compute_dtype)
  c.train = dict(
      batch_size=128 if small else 192,
      num_steps=2500 if small else 50 * PAPER_DATASET_SIZE // 192,
      lr=0.05 if small else 0.01,
      momentum=0.9, nesterov=True, weight_decay=5e-4,
      # RotNet's schedule: /10 after 15, 30 and 45 of 50 epochs.
      lr_boundaries=(0.3, 0.6, 0.9), lr_decay=0.1,
      log_every=50, ckpt_every=500,
      sample_every=500)       # methods with image outputs (BiGAN's sample grids)
  c.probe = dict(
      dataset="cifar10" if small else "tfds:imagenet2012",
      data_dir="",
      limit_per_class=0,      # 0 = every example; N = the first N per class (train split only)
      epochs=10 if small else 36,
      batch_size=128 if small else 192,
      eval_batch_size=500 if small else 200,
      # cpu: chosen on a validation split of CIFAR-10's train split with a trained and a random
      # trunk, among lr 0.01 / 0.1 / 0.3 x crop scale 1-1 / 0.5-1 (results/probe_recipe_cpu_cifar10/).
      # paper: the authors' 0.01.
      lr=0.1 if small else 0.01, momentum=0.9, weight_decay=1e-5,
      lr_boundaries=(10 / 36, 20 / 36, 30 / 36), lr_decay=0.1,
      # One size at every layer (within probe.DIMS_TOLERANCE), as the paper's 9.2k-9.6k.
      # cpu: 576 is what conv5's 3x3x64 map holds unpooled at 32 px (conv3/conv4: 2x3 grids
      # of 96 channels, conv1: 3x6 of 32); the old 2048 gave 2048/1024/864/864/576.
      target_dims=576 if small else 9216,
      # cpu: whole-image crops (area 1; aspect jitter clips them slightly) and flips, as
      # the test images are seen whole; chosen on the validation split (above): crops of
      # 50-100% of the area cost 0.7-3.2 points at lr 0.1, at every layer of both trunks.
      crop_scale=(1.0, 1.0) if small else (0.08, 1.0),
      # crops: crop_scale and flip drawn afresh every step, through the trunk; whole: the
      # whole image or its mirror, features computed once (probe.LinearProbe).
      train_views="crops",
      # Heads trained per trunk, top-1 averaged over them (probe.ProbeConfig.head_seeds): the
      # probe's share of the noise in a comparison; whole views cache the features once for all.
      head_seeds=1,
      # paper: train on random-resized 224 crops, test on ten 224 crops of the 256 px
      # test images (4 corners + centre, and flips; logits averaged). cpu: the whole image.
      crop_size=0 if small else 224,
      # 0: the set is decoded into memory at its own size (CIFAR, Tiny-ImageNet);
      # N: streamed from disk, each image's short side resized to N and centre-cropped
      # (ImageNet: too large for memory, and of mixed sizes).
      image_size=0 if small else 256,
      # paper: the probes read each streamed image as the authors do (linear-probes
      # data.py): random-resized crops of the decoded image, ten crops of its
      # short-side-256 rectangle; False: the centre 256 x 256 square of each.
      keep_aspect=not small,
      ten_crop=not small,
      flip=True, random_baseline=True, seed=0,
      layers=("conv1", "conv2", "conv3", "conv4", "conv5"),  # the probed taps
      # Learning curve (mono_ssl/curves.py): every curve_every steps (0 = off) a probe of
      # curve_epochs epochs on curve_train_size train-split images, scored on a validation
      # split of val_fraction of each class of the train split (never the test split).
      curve_every=250 if small else 25_000,
      curve_epochs=3 if small else 2,
      curve_train_size=5000 if small else 10_000,
      curve_val_size=5000 if small else 10_000,
      val_fraction=0.1,
      # RotNet: at each curve point, the rotation head's accuracy on this many images of the
      # validation carve (the run's own-task control, "rotation_acc_heldout"; 0 = off).
      curve_rotation_heldout=2000,
      # N: the probe images (in memory) resized to N x N at load, so that a stack designed
      # for N px sees them at its own scale (mini: Tiny-ImageNet 64 -> 48, CIFAR 32 -> 48).
      resize=0)
  if scale == "mini":
    mini_fields(c)
  if scale == "calib":
    calib_fields(c)
  return c


def mini_fields(c: ml_collections.ConfigDict) -> None:
  """The mini scale's departures from the cpu defaults (in place): see models/alexnet.py.

  Probes on Tiny-ImageNet (200 classes, 64 px resized to the stack's 48), the headline
  set at this scale; the full regime and supervision train on its train split at native
  size, cropped and resized to 48 by the method's crop.
  """
  c.data.full_dataset = c.probe.dataset = "tiny_imagenet"
  c.probe.resize = c.aug.out_size
  # 2304 = 6x6x64: conv3/conv4 pooled to 6x6, conv1 (24 ch) to 8x12, conv2/conv5 (48 ch)
  # to 6x8 (probe.probe_pools), against 48x48x24 ... 11x11x48 unpooled.
  c.probe.target_dims = 2304
  # RotNet's length: sized to the budget of one run with its probes in 45 min on this
  # project's 2-core CPU (~1.1 s a step), then checked on its learning curves (conv1-conv3
  # move < 0.5 points over the last quarter: results/mini_tiny/, README "mini scale").
  c.train.num_steps = 1500
  # 200 classes: 50 images a class for a curve point (5,000 leaves 25).
  c.probe.curve_train_size = 10_000



def calib_fields(c: ml_collections.ConfigDict) -> None:
  """The calibrated scale's departures from the cpu defaults (in place): see
  models/alexnet.py `CALIB_CONVS` and results/calib_scale/.

  Tiny-ImageNet at its own 64 px (no resize), its 80,000-image train split (400 a class) for
  the probes, the full regime and supervision, which train without the probes' validation
  carve (data.exclude_val) so that recipes and lengths chosen on the carve are honest.
  """
  c.data.full_dataset = c.probe.dataset = "tiny_imagenet_400"
  c.data.exclude_val = True
  c.probe.resize = 0
  # 2304 at every layer, as mini (conv1's 32x32x24 and conv2-conv5's 15x15 maps pooled);
  # 4608 read lower on the random and supervised trunks (results/calib_scale/probe_recipe/).
  c.probe.target_dims = 2304
  # Chosen on the validation carve with a random, a supervised and a full-data RotNet trunk,
  # among 0.003 / 0.01 / 0.03 / 0.1 / 0.3 (10 epochs; 30 epochs at 0.1 read lower): 0.01, the
  # authors' own, reads highest on every trunk, 2.6-6.1 points above the cpu scale's 0.1
  # (results/calib_scale/probe_recipe/, README section 8).
  c.probe.lr = 0.01
  # Whole views (the image or its mirror, features computed once): at lr 0.01 they read as high
  # as crops of the whole area redrawn every step (mean of random and supervised 21.6 vs 21.4),
  # at a third of the time (6 vs 20 minutes a trunk here).
  c.probe.train_views = "whole"
  c.probe.curve_train_size = 20_000
  c.train.num_steps = 1500


def bigan_fields(config: ml_collections.ConfigDict, scale: str) -> ml_collections.ConfigDict:
  """Adds `config.bigan` and sets the train block to BiGAN's Adam recipe (in place; returns config).

  Donahue et al.'s ImageNet BiGAN: z ~ U(-1, 1)^200, batch 128, Adam lr 2e-4,
  beta1 0.5, L2 weight decay 2.5e-5, G/D at 64 px, 50 epochs at a constant
  lr then 50 decaying to 1% (here: /10 after 50% and again after 75%).
  `train.lr` is both optimisers' Adam rate (D's times `d_lr_mult`), so the
  loop's logged lr is the real one.

  CPU scale (2,500 steps) departs from that recipe in two ways, measured on
  the CIFAR-10 probes (docs/bigan.md): E's codes are batch-standardised to
  the prior's marginals, and E stays at its initialisation for the first half
  of the run while G and D train. With Donahue et al.'s recipe E's filters
  moved before G made anything worth inverting, and every layer probed below
  E's own random init.
  """
  cpu = scale != "paper"
  config.bigan = dict(
      latent_dim=64 if cpu else 200,
      prior="uniform",              # uniform | normal
      gen_size=32 if cpu else 64,   # G's output side and D's input side (<= aug.out_size)
      gen_width=32 if cpu else 64,  # G's last hidden width, doubled per earlier stage
      gen_icnr=False,  # ICNR init of G's sub-pixel convs (no checkerboard at the start)
      disc_width=32 if cpu else 64,  # D's first conv width, doubled per stage
      disc_z_hidden=256 if cpu else 1024,
      disc_joint_hidden=512 if cpu else 1024,
      disc_dropout=0.2,
      disc_mbstd=0,      # ProGAN minibatch-std channel in D over groups of this size (0: off)
      r1_gamma=0.0,      # R1 penalty gamma/2 E||grad D(x, E(x))||^2 on real pairs (0: off)
      d_lr_mult=1.0,
      e_lr_mult=1.0,     # E's conv/dense weights (see methods/bigan.optimisers)
      e_bn_lr_mult=1.0,  # E's BatchNorm scale and bias; 0 freezes them
      standardise_codes=cpu,  # E's codes: batch-standardised to the prior's marginals
      unary_scores=False,  # BigBiGAN: D's loss also on s_x(x) and s_z(z) (models/bigan.py)
      e_optimizer="adam",  # adam | sgd (E only; sgd uses train.momentum, lr train.lr * e_lr_mult)
      e_start=0.5 if cpu else 0.0,  # fraction of the run before E's weights move (0: at once)
      b1=0.5, b2=0.999,
      # Donahue's released BiGAN (configs/bigan.py recipe=donahue sets these):
      disc_arch="joint_mlp",  # joint_mlp | donahue (models/bigan.py)
      disc_bn=True,           # donahue D: batch norm after conv2.. (his default; --nobn: off)
      disc_cat_inputs=False,  # donahue D: real and fake pairs in one BN batch (his --cat_inputs)
      encoder_head="alexnet",  # alexnet (model.hidden FC layers) | linear (conv5 -> z, 2 sigmoid - 1)
      loss_scale=1.0,         # 0.5: each side's loss is the mean of its real and fake terms
      decay_gains=True,       # False: no L2 decay on BatchNorm gains (his --no_decay_gain)
      # Donahue's linear E head reads 4x4x256 = 4096 conv5 features; N(0, 0.02) over the
      # probed trunk's far fewer gives codes ~5x narrower than the prior (std 0.11 vs his
      # ~0.4-0.5). >0: init std 0.02 * sqrt(this / fan_in), his initial code spread.
      encoder_init_fan_in=0,
      disc_input="imagenet",  # D's images: imagenet (E's normalisation) | unit ([-1, 1], his)
      gen_z_every_layer=False)  # G: z as a per-channel bias before each hidden BN (his deconvnet)
  config.train.update(dict(
      batch_size=128,
      # cpu: RotNet's step count; a BiGAN step costs about a RotNet step
      # (~650 patches/s on 2 cores), so the run with probes fits in 15 min.
      num_steps=2500 if cpu else 100 * PAPER_DATASET_SIZE // 128,
      lr=2e-4,
      lr_boundaries=() if cpu else (0.5, 0.75), lr_decay=0.1,
      weight_decay=2.5e-5))
  return config
