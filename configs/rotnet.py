r"""RotNet: an AlexNet-BN learns to predict 0/90/180/270-degree rotations.

Run (from the repository root):

  python -m mono_ssl.main --config=configs/rotnet.py:regime=single,scale=cpu --workdir=runs/rotnet_single

Arguments: regime=single|deca|full (one image / the ten photographs in
../shared/images/deca / the probe data set's train split without labels),
scale=cpu|mini|paper (narrow AlexNet at 32 px on CIFAR-10 probes / the paper's
AlexNet in miniature at 48 px on Tiny-ImageNet probes, models/alexnet.py / the authors'
AlexNet at 224 px on ImageNet probes). Any field can be overridden, e.g.
--config.train.num_steps=500 --config.probe.data_dir=/data.
"""
from mono_ssl import config_lib


def get_config(arg: str | None = None):
  args = config_lib.parse_arg(arg, regime="single", scale="cpu")
  config = config_lib.base_config("rotnet", args.regime, args.scale)
  config.lock()
  return config
