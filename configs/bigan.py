r"""BiGAN: an encoder (the probed AlexNet-BN), a generator and a joint discriminator D(x, z).

Run (from the repository root):

  python -m mono_ssl.main --config=configs/bigan.py:regime=single,scale=cpu --workdir=runs/bigan_single

Arguments: regime=single|deca|full (one image / the ten photographs in
../shared/images/deca / the probe data set's train split without labels),
scale=cpu|mini|paper (narrow AlexNet encoder, G and D at 32 px, CIFAR-10 probes /
the authors' AlexNet encoder at 224 px with G and D at 64 px, ImageNet
probes). BiGAN's own fields live under `config.bigan` (latent_dim, prior,
gen_size, widths, d_lr_mult, Adam betas, and the options measured in the
README's BiGAN section: standardise_codes, e_start, unary_scores,
e_optimizer, gen_icnr, disc_mbstd, r1_gamma); `train.lr` is the Adam rate.
At scale=cpu E's codes are batch-standardised and E starts to learn halfway
through the run (with Donahue et al.'s recipe E's features probed below its
random init here).
PNG grids (samples_<step>.png, recon_<step>.png) go to the workdir every
train.sample_every steps. Any field can be overridden, e.g.
--config.train.num_steps=500 --config.bigan.latent_dim=128.
"""
from mono_ssl import config_lib


def get_config(arg: str | None = None):
  args = config_lib.parse_arg(arg, regime="single", scale="cpu")
  config = config_lib.base_config("bigan", args.regime, args.scale)
  config_lib.bigan_fields(config, args.scale)
  config.lock()
  return config
