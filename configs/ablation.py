r"""Augmentation ablation: single-image RotNet with each augmentation of the patch generator removed in turn.

Run (from the repository root):

  python -m mono_ssl.grid --config=configs/ablation.py:scale=cpu,probe=cifar10 --workdir=runs/ablation

Rows: the full recipe, then one switch off per row: no rotation/shear
(aug.affine=False), no colour jitter (aug.jitter_prob=0), no random-resized
crop (aug.rrc=False: every patch sees the initial crop at one fixed scale),
no initial crop (aug.initial_crop=False: crops come from the whole image).
The method's own crop and flip stay in every row. Same runner, outputs and
table layout as configs/grid.py; steps per run as its single-image RotNet
(5 runs x ~11 min on an idle 2-core CPU: about 55 min).
"""
from mono_ssl import config_lib, grid

# (run name, row label, the one aug field that changes, its "off" value)
ABLATIONS = (
    ("no_affine", "no rotation/shear", "affine", False),
    ("no_jitter", "no colour jitter", "jitter_prob", 0.0),
    ("no_rrc", "no random-resized crop (fixed scale)", "rrc", False),
    ("no_initial_crop", "no initial crop", "initial_crop", False),
)
CPU_STEPS = 2500  # configs/grid.py's single-image RotNet


def get_config(arg: str | None = None):
  args = config_lib.parse_arg(arg, scale="cpu", probe="cifar10")
  steps = {"train.num_steps": CPU_STEPS} if args.scale == "cpu" else {}
  runs = [grid.run_spec("full_recipe", "rotnet", "regime=single", "full recipe", steps)]
  runs += [grid.run_spec(name, "rotnet", "regime=single", label, {**steps, f"aug.{field}": off})
           for name, label, field, off in ABLATIONS]
  return grid.grid_config(runs, args.scale, args.probe,
                          title=f"Augmentation ablation, single-image RotNet, scale {args.scale}: "
                                f"linear probes on {args.probe}")
