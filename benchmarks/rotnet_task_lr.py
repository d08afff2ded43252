r"""Full-data RotNet's own task under one lr (issue 39's lr lever): held-out rotation accuracy only.

  PYTHONPATH=. python benchmarks/rotnet_task_lr.py LR STEPS WORKDIR [--scale calib] [--batch 128] [--every 250]

`configs/rotnet.py:regime=full,scale=<scale>` at a constant lr LR for STEPS steps (resumable:
run it again on the same WORKDIR with a larger STEPS and another LR for a decayed leg), a curve
point every 250 steps with the held-out rotation accuracy on 2,000 images of the probes'
validation carve (the run's own-task control; the same images for every run). The curve's linear
probes are cut to 2,000 images x 1 epoch: they are not read, only the task's accuracy is. No
final probes. Compare with results/calib_scale/rotnet_full_const (lr 0.05 constant: 0.500 at
step 500, 0.538 at 1,000). `--batch` (images a step, each in 4 rotations) tries the batch
lever at the same lr: a quarter of the batch is 4x the updates for the images seen; `--every`
sets the curve's spacing in steps (e.g. 1000 at batch 32: a point per 32,000 images, as 250 at 128);
`--convs` the width lever (another `model.convs` stack; a resumed workdir must keep its stack).
"""
import argparse
from pathlib import Path

from mono_ssl import config_lib, datasets, train


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("lr", type=float)
  p.add_argument("steps", type=int)
  p.add_argument("workdir", type=Path)
  p.add_argument("--scale", default="calib")
  p.add_argument("--batch", type=int, default=128, help="train.batch_size (images before rotation)")
  p.add_argument("--every", type=int, default=250, help="steps between curve points and checkpoints")
  p.add_argument("--convs", default="", help="model.convs: another conv stack (the width lever), e.g. "
                 "24:5/2p,96:3,144:3,144:3,96:3p (calib's conv2-conv5 at 1.5x, conv1 kept under the "
                 "0.4 filters-per-value gate)")
  args = p.parse_args(argv)
  if args.batch < 1 or args.every < 1 or args.steps < 1:
    from mono_ssl.errors import UserInputError
    raise UserInputError(f"--batch {args.batch}, --every {args.every} and STEPS {args.steps} must each "
                         "be >= 1 (e.g. --batch 32 --every 1000).")
  cfg = config_lib.load_config_file("configs/rotnet.py", f"regime=full,scale={args.scale}")
  with cfg.unlocked():
    cfg.train.lr, cfg.train.num_steps, cfg.train.lr_boundaries = args.lr, args.steps, ()
    cfg.train.batch_size, cfg.train.ckpt_every = args.batch, args.every
    if args.convs:
      cfg.model.convs = args.convs
    cfg.probe.curve_every, cfg.probe.curve_train_size, cfg.probe.curve_epochs = args.every, 2000, 1
    cfg.probe.curve_val_size, cfg.probe.train_views = 2000, "whole"
  args.workdir.mkdir(parents=True, exist_ok=True)
  probe_train = datasets.load_split(cfg.probe.dataset, "train")
  train.pretrain(cfg, args.workdir, probe_train=probe_train, log=lambda s: print(s, flush=True))
  return 0


if __name__ == "__main__":
  from mono_ssl import xla_cpu
  xla_cpu.apply()  # the runs' XLA flags, set before JAX starts (mono_ssl/xla_cpu.py)
  from mono_ssl.errors import UserInputError
  try:
    raise SystemExit(main())
  except UserInputError as e:  # a bad scale, run folder or data path: one line, no traceback
    raise SystemExit(f"error: {e}") from None
