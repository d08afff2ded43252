r"""BiGAN: an encoder (the probed AlexNet-BN), a generator and a joint discriminator D(x, z).

Run (from the repository root):

  python -m mono_ssl.main --config=configs/bigan.py:regime=single,scale=cpu --workdir=runs/bigan_single

Arguments: recipe=donahue|cpu (default donahue: Donahue's released BiGAN, his
discriminator, E head and losses, see `donahue_recipe`; cpu: the 2,500-step CPU
recipe of docs/bigan.md, kept for its variant tables),
regime=single|deca|full (one image / the ten photographs in
../shared/images/deca / the probe data set's train split without labels),
scale=cpu|mini|paper (narrow AlexNet encoder, G and D at 32 px, CIFAR-10 probes /
the authors' AlexNet encoder at 224 px with G and D at 64 px, ImageNet
probes). BiGAN's own fields live under `config.bigan` (latent_dim, prior,
gen_size, widths, d_lr_mult, Adam betas, Donahue's D options, and the options
measured in docs/bigan.md); `train.lr` is the Adam rate.
Length at scale cpu/mini with recipe=donahue: DONAHUE_SMALL_STEPS x 128 patches, a
learning-curve point and sample grids every 2,500 steps (about 80 min on 2 cores,
~830 patches/s). Its encoder probes below its random init for the first ~10k
steps, as Donahue's own does (jeffdonahue/bigan README: CLS_e- 48.8% at init, 37.9
after epoch 1, 46.1 after 25, 51.8 after 100): a shorter run measures the dip,
not the method (results/bigan_long30, docs/bigan.md). scale=paper keeps
Donahue's 100 epochs.
PNG grids (samples_<step>.png, recon_<step>.png) go to the workdir every
train.sample_every steps. Any field can be overridden, e.g.
--config.train.num_steps=500 --config.bigan.latent_dim=128.
"""
from mono_ssl import config_lib

RECIPES = ("donahue", "cpu")
DONAHUE_CONV5_FEATURES = 4 * 4 * 256  # his E head's input at 64 px (net.py alexnet_group_padpool)
# Steps of the donahue recipe at scale cpu/mini: past the dip below random init that his own
# BiGAN shows until ~10k iterations; the length results/bigan_long30's curves support.
DONAHUE_SMALL_STEPS = 30_000
DONAHUE_SMALL_CURVE_EVERY = 2500


def get_config(arg: str | None = None):
  args = config_lib.parse_arg(arg, regime="single", scale="cpu", recipe="donahue")
  config = config_lib.base_config("bigan", args.regime, args.scale)
  config_lib.bigan_fields(config, args.scale)
  if args.recipe not in RECIPES:
    raise config_lib.UserInputError(f"recipe={args.recipe!r} is not one of {', '.join(RECIPES)}.")
  if args.recipe == "donahue":
    donahue_recipe(config)
    if args.scale != "paper":
      config.train.num_steps = DONAHUE_SMALL_STEPS
      config.probe.curve_every = config.train.sample_every = DONAHUE_SMALL_CURVE_EVERY
  config.lock()
  return config


def donahue_recipe(config):
  """Donahue's released BiGAN (jeffdonahue/bigan train_imagenet.sh, train_gan.py, net.py), the
  probed AlexNet trunk unchanged: his D (5x5 stride-2 convs, LeakyReLU, z as a per-channel
  bias of conv2.., batch norm with real and generated pairs as separate batches, a
  zero-initialised linear output), his E head (conv5 -> z, no fc6/fc7, 2 sigmoid - 1), the
  losses as means of their real and fake terms, no L2 on BatchNorm gains, and none of the
  CPU recipe's departures (batch-standardised codes, E held still for half the run).
  His --encode_normalize only weighs the latent-regression and KL losses, which a BiGAN
  does not use (dist.py lines 290-295; gan.py lines 250-268): nothing to carry over.
  Also his: D's images in [-1, 1] (train_gan.py lines 265-280; E keeps the probed trunk's
  ImageNet normalisation), z as a per-channel bias before each BN of G (net.py
  deconvnet_64, lines 908-954), and E's initial code spread: his head's N(0, 0.02) over
  4,096 conv5 features, here 0.02 * sqrt(4096 / fan_in) over the probed trunk's pool5."""
  config.bigan.update(dict(disc_arch="donahue", disc_bn=True, disc_cat_inputs=False,
                           encoder_head="linear", loss_scale=0.5, decay_gains=False,
                           standardise_codes=False, e_start=0.0,
                           encoder_init_fan_in=DONAHUE_CONV5_FEATURES, disc_input="unit",
                           gen_z_every_layer=True))
  return config
