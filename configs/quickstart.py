r"""Quickstart: single-image RotNet at CPU scale, probed on the bundled CIFAR-10 subset.

Runs offline on a fresh machine in a few minutes (2-core CPU) and needs
nothing outside the package: the bundled image (a 1024-px copy of "life" by
Aitzol Berasategi, CC BY 4.0) and 500 + 100 CIFAR-10 images per class.

  python -m mono_ssl.main --config=configs/quickstart.py --workdir=runs/quickstart
"""
from mono_ssl import config_lib


def get_config(arg: str | None = None):
  config_lib.parse_arg(arg)  # takes no arguments; refuses any
  config = config_lib.base_config("rotnet", "single", "cpu")
  config.data.images = "default"
  config.data.max_side = 1024
  config.train.num_steps = 1600
  config.probe.dataset = "bundled_cifar10"
  config.probe.epochs = 30
  config.lock()
  return config
