r"""The paper's grid: RotNet, DeepCluster and BiGAN x single / deca / full, and the baselines.

Run (from the repository root; rerun the same command to resume):

  python -m mono_ssl.grid --config=configs/grid.py:scale=cpu,probe=cifar10 --workdir=runs/grid

Arguments: scale=cpu|paper, probe=cifar10|tiny_imagenet|bundled_cifar10|tfds:<name>
(the probe set, also the `full` regime's and the supervised baseline's
training set; at CPU scale Tiny-ImageNet means 64 px patches). Rows:
supervised (labels, configs/supervised.py), random (the AlexNet at
initialisation: RotNet with train.num_steps=0), scatnet (configs/scatnet.py;
conv1-conv2 only), then each method in each regime. `--config.only=a,b`
runs and reports only the named runs; --config.data_dir=DIR points at the
probe sets.

Wall time at scale=cpu, probe=cifar10, estimated for this project's 2-core CPU
when idle, from full-length runs: RotNet 2,500 steps in 9.5 min (0.23 s/step),
DeepCluster 6,000 steps in 17.3 min with its re-clustering (0.17 s/step), BiGAN
0.22-0.27 s/step (0.22 before its latest changes; 1.2x RotNet's step when both
were timed on the shared machine); one probe of one trunk on CIFAR-10 (50k
images x 10 epochs) 1.2 min; ~0.8 min of start-up, compilation and read-back
per run. The regime barely matters: making a batch of 128 patches took 6 ms
(single), 7 ms (deca) and 2.5 ms (full) against ~230 ms for a RotNet step.
ScatNet's probe runs its scattering on every crop: ~1,250 images/s measured
at a load of 3 (~600 at a load of 8), so 500k crops take 6-7 min. Every run
probes only its trained trunk (the random-init row is its own run), which
saves one probe per run:

  RotNet      3 x (2,500 steps x 0.23 s = 9.6 min + 2 min)  = 35 min
  DeepCluster 3 x (4,000 steps x 0.17 s = 11.3 min + 2 min) = 40 min
  BiGAN       3 x (2,500 steps x 0.22-0.27 s = 9-11 min + 2 min) = 34-40 min
  supervised  4,000 steps x ~0.07 s = 4.7 min + 2 min      =  7 min
  random      probe only                                   =  2 min
  scatnet     probe only                                   =  6-9 min
  total                                                    ~ 2 h 05 min - 2 h 15 min

DeepCluster runs 4,000 steps here (~10 epochs of its 50,000-patch set, 10
clusterings) instead of its config's 6,000: at 6,000 the grid would take
~2 h 25-35 min, over or at 2.5 h. On a machine shared with other jobs expect up
to twice as long. Tiny-ImageNet (64 px, 4x the pixels) should cost about 4x per
pretraining step and ~1.6x per probe epoch (20k images); not measured.
"""
from mono_ssl import config_lib, grid

METHODS = ("rotnet", "deepcluster", "bigan")
REGIMES = ("single", "deca", "full")
# Pretraining steps per run at scale=cpu (see the docstring's time budget);
# scale=paper keeps each config's own (the paper's epochs).
CPU_STEPS = {"rotnet": 2500, "deepcluster": 4000, "bigan": 2500, "supervised": 4000}


def get_config(arg: str | None = None):
  args = config_lib.parse_arg(arg, scale="cpu", probe="cifar10")

  def steps(method: str) -> dict:
    return {"train.num_steps": CPU_STEPS[method]} if args.scale == "cpu" else {}

  runs = [
      grid.run_spec("supervised", "supervised", "regime=full", "supervised", steps("supervised")),
      grid.run_spec("random", "rotnet", "regime=single", "random", {"train.num_steps": 0}),
      grid.run_spec("scatnet", "scatnet", "", "scatnet"),
  ]
  runs += [grid.run_spec(f"{m}_{r}", m, f"regime={r}", f"{m} ({r})", steps(m))
           for m in METHODS for r in REGIMES]
  return grid.grid_config(runs, args.scale, args.probe,
                          title=f"scale {args.scale}: linear probes on {args.probe}")
