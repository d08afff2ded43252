r"""The paper's grid: RotNet, DeepCluster and BiGAN x single / deca / full, and the baselines.

Run (from the repository root; rerun the same command to resume):

  python -m mono_ssl.grid --config=configs/grid.py:scale=cpu,probe=cifar10 --workdir=runs/grid

Arguments: scale=cpu|mini|paper, probe=tiny_imagenet (default)|cifar10|bundled_cifar10|tfds:<name>
(the probe set, also the `full` regime's and the supervised baseline's
training set; at CPU scale Tiny-ImageNet means 64 px patches), seeds=N
(runs per row, seeds 0..N-1, reported as mean +- standard error; seed k > 0
in <workdir>/<row>_seed<k>), seeded=a:b (only rows a and b run `seeds` seeds,
the others one; the rows are joined by ":" as "," separates arguments). Rows:
supervised (labels, configs/supervised.py), random (the AlexNet at
initialisation: RotNet with train.num_steps=0), scatnet (configs/scatnet.py;
conv1-conv2 only), then each method in each regime. `--config.only=a,b`
runs and reports only the named runs; --config.data_dir=DIR points at the
probe sets.

Wall time at scale=cpu, probe=cifar10, measured (2026-11-26, commit 5647f6a, this
project's 2-core CPU shared with the test suite; each run's pretraining + probe):
supervised 5.1 min, random 1.3, scatnet 7.2, RotNet 6.6-7.3 (13.3 for the first,
which shared the cores with benchmarks), DeepCluster 4.4-5.2, BiGAN 9.2-10.0:
1 h 24 min for the 12 runs (estimated before the 2x faster step: 2 h 05-2 h 15).
The BiGAN rows rerun with the 2026-11-26 CPU recipe (commit 413f764, the
machine shared with two other jobs): 10.2-12.6 min each (7.4 alone), 1 h 28 min
for the 12 runs with the re-probes.
Since 2026-12-05 the BiGAN rows run configs/bigan.py's default, Donahue's recipe
for 30,000 steps (~80 min each at probe=cifar10, ~830 patches/s alone; the grid
grows by about 3 h 45 min): the BiGAN times above are of the earlier 2,500-step recipe.
DeepCluster runs 4,000 steps here (~10 epochs of its 50,000-patch set, 10
clusterings) instead of its config's 6,000, a choice made for the old budget.
Tiny-ImageNet (64 px, 4x the pixels) costs about 4x per pretraining step, so
its step counts are halved (CPU_STEP_FACTOR). Measured (2026-11-26, shared
machine): supervised 5.4 min, random 3.1, scatnet 12.4, RotNet 12.8-15.3,
DeepCluster 6.7-7.5, BiGAN 6.0-6.1: 1 h 43 min for the 12 runs.
scale=mini (the faithful miniature, 48 px; each config's own step counts), probe
tiny_imagenet, measured 2026-12-02 on the slow 2-core VM (each run's pretraining +
curve + probe): supervised 50.5 min (shared with the test suite), random 4.5,
RotNet single 32.6, RotNet full 35.0: 2 h 03 min for seed 0 of those four rows.
"""
from mono_ssl import config_lib, grid

METHODS = ("rotnet", "deepcluster", "bigan")
REGIMES = ("single", "deca", "full")
# Pretraining steps per run at scale=cpu (see the docstring's time budget);
# scale=paper keeps each config's own (the paper's epochs).
# BiGAN (None) keeps configs/bigan.py's own length on either probe set: Donahue's recipe
# probes below its random init for its first ~10k steps (results/bigan_long30), so a run
# cut to the budget would measure that dip, not the method (~80 min a row on 2 cores).
CPU_STEPS = {"rotnet": 2500, "deepcluster": 4000, "bigan": None, "supervised": 4000}
# Tiny-ImageNet's 64 px patches cost ~3-4x per step (RotNet 427 vs 95 ms measured): half the
# steps keep its grid inside the same 2.5 h budget (each run still sees ~2x CIFAR's pixels).
CPU_STEP_FACTOR = {"tiny_imagenet": 0.5}


def get_config(arg: str | None = None):
  # Tiny-ImageNet (200 classes) is the headline CPU probe set, CIFAR-10 the second.
  args = config_lib.parse_arg(arg, scale="cpu", probe="tiny_imagenet", seeds=1,
                               seeded="")

  def steps(method: str) -> dict:
    if args.scale != "cpu" or CPU_STEPS[method] is None:
      return {}
    return {"train.num_steps": round(CPU_STEPS[method] * CPU_STEP_FACTOR.get(args.probe, 1.0))}

  runs = [
      grid.run_spec("supervised", "supervised", "regime=full", "supervised", steps("supervised")),
      grid.run_spec("random", "rotnet", "regime=single", "random", {"train.num_steps": 0}),
      grid.run_spec("scatnet", "scatnet", "", "scatnet"),
  ]
  runs += [grid.run_spec(f"{m}_{r}", m, f"regime={r}", f"{m} ({r})", steps(m))
           for m in METHODS for r in REGIMES]
  if args.seeded:  # only these rows run `seeds` seeds, the others one
    names = [n.strip() for n in args.seeded.split(":") if n.strip()]
    unknown = sorted(set(names) - {r["name"] for r in runs})
    if unknown:
      raise config_lib.UserInputError(
          f"seeded={':'.join(unknown)} names no row of this grid; its rows: "
          + ", ".join(r["name"] for r in runs) + ".")
    for r in runs:
      r["seeds"] = args.seeds if r["name"] in names else 1
  config = grid.grid_config(runs, args.scale, args.probe,
                            title=f"scale {args.scale}: linear probes on {args.probe}")
  config.seeds = args.seeds
  return config
