r"""ScatNet: the hand-designed baseline, a 2-layer Morlet scattering transform, probed like a trunk.

Run (from the repository root):

  python -m mono_ssl.main --config=configs/scatnet.py:scale=cpu --workdir=runs/scatnet

Nothing is trained (train.num_steps=0): the run probes the scattering
coefficients of the probe set's images, orders <= 1 as "conv1" and orders
<= 2 as "conv2", with the same linear probes as every AlexNet layer.
Arguments: scale=cpu|mini|paper (J=2 at 32 px, J=3 at 224 px; L=8 orientations;
CIFAR-10 / ImageNet probes). There is no pretraining data; the regime is
`single` only because every run names one, and the one default image is the
cheapest source to load (the run never uses it).
"""
from mono_ssl import config_lib, scatnet


def get_config(arg: str | None = None):
  args = config_lib.parse_arg(arg, scale="cpu")
  config = config_lib.base_config("scatnet", "single", args.scale)
  cpu = args.scale != "paper"  # cpu and mini
  config.scatnet = dict(J=2 if cpu else 3, L=8)
  config.train.num_steps = 0
  config.probe.layers = scatnet.LAYERS  # ("conv1", "conv2"): orders <= 1 and <= 2
  config.probe.random_baseline = False  # a fixed transform has no random init
  config.probe.curve_every = 0  # nothing is trained: no learning curve
  # One probe size at both layers (within 10%) nearest the AlexNet's: 51 / 243 channels at
  # 8x8 (cpu) give 510 / 486 values; at 12x12 (mini, 48 px) 2,295 against the AlexNet's
  # 2,304; 75 / 651 at 28x28 (paper) 9,075 / 9,114 (probe.nearest_feasible_target).
  # calib (64 px, 16x16 maps): 2,295 as mini's, nearest the AlexNet's 2,304 (checked by
  # tests/test_scatnet.py's feasibility test).
  config.probe.target_dims = {"cpu": 510, "mini": 2295, "calib": 2295, "paper": 9114}[args.scale]
  config.lock()
  return config
