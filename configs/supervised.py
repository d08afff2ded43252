r"""Full supervision: the same AlexNet-BN trained with labels on the probe set's train split.

Run (from the repository root):

  python -m mono_ssl.main --config=configs/supervised.py:regime=full,scale=cpu --workdir=runs/supervised

Arguments: regime=full (the only one: labels come from a labelled set),
scale=cpu|mini|calib|paper (narrow AlexNet at 32 px trained on CIFAR-10's train split / the
miniature AlexNet at 48 px on Tiny-ImageNet's / the calibrated 64 px AlexNet on its 80,000 /
the authors' AlexNet at 224 px trained on ImageNet, 90 epochs, lr 0.01 /10
every 30 epochs, dropout 0.5). The training set is data.full_dataset, which
must equal probe.dataset: override both together, e.g.
--config.probe.dataset=tiny_imagenet --config.data.full_dataset=tiny_imagenet
(mono_ssl.grid does this for you). supervised.num_classes=0 takes the data
set's class count.
"""
from mono_ssl import config_lib


def get_config(arg: str | None = None):
  args = config_lib.parse_arg(arg, regime="full", scale="cpu")
  config_lib.check_choice("regime (supervised)", args.regime, ("full",))
  config = config_lib.base_config("supervised", args.regime, args.scale)
  cpu = args.scale != "paper"  # cpu and mini
  config.data.full_dataset = config.probe.dataset
  config.supervised = dict(num_classes=0)
  if args.scale == "calib":
    # The paper's AlexNet head drops 0.5 before fc6 and fc7 (torchvision's alexnet.py); a step
    # costs about a quarter of RotNet's. Length and lr: results/calib_scale (issue 39).
    config.model.dropout = 0.5
    config.train.update(dict(num_steps=6000, lr=0.05))
    config.probe.curve_every = 1000
  elif args.scale == "mini":
    # A step costs about a quarter of RotNet's (128 images against 4 x 128): 6,000 steps
    # (~7.7 Tiny-ImageNet epochs) cost about RotNet's 1,500; a curve point every 1,000.
    config.train.update(dict(num_steps=6000, lr=0.05))
    config.probe.curve_every = 1000
  elif cpu:
    # A step is one forward/backward of 128 images (RotNet's is 4 x 128), so
    # 4,000 steps (~10 CIFAR-10 epochs) cost about a third of RotNet's 2,500.
    config.train.update(dict(num_steps=4000, lr=0.05))
    # Its steps cost about a third of RotNet's: every 250 steps its 17 curve points took
    # 22-24% of the pretraining (results/cifar10_cpu, benchmarks/curve_cost.py); every 800
    # (6 points) keeps it near 10%.
    config.probe.curve_every = 800
  else:
    config.train.update(dict(num_steps=90 * 1_281_167 // 256, batch_size=256, lr=0.01,
                             nesterov=False, weight_decay=5e-4,
                             lr_boundaries=(1 / 3, 2 / 3)))
  config.lock()
  return config
