r"""BiGAN past its break-even point: Donahue's recipe for 30,000 steps, single image and full data.

Run (from the repository root; each command resumes; each BiGAN run 80-105 min on the 2-core
VM alone, 830 patches/s on 2026-12-05's VM and 610 on 2026-12-06's; one run per session,
started first):

  python -m mono_ssl.grid --config=configs/bigan_long.py:probe=cifar10 --config.seeds=2 --config.only=random,bigan_single --workdir=runs/bigan_long30 --config.results_dir=results/bigan_long30
  python -m mono_ssl.grid --config=configs/bigan_long.py:probe=cifar10 --config.only=bigan_full --workdir=runs/bigan_long30 --config.results_dir=results/bigan_long30

(`--config.only=bigan_single_seed1` runs that seed's run alone.) results/bigan_long holds the
earlier 20,000-step runs (steps=20000: single seed 0 and full data), results/bigan_long30 the
30,000-step single-image seed 1 with the 20k grid's random and supervised rows; docs/bigan.md.

Arguments: probe=cifar10 (default) | tiny_imagenet, steps=N (default 30,000),
recipe=donahue (default) | cpu, scale=cpu (default) | mini. Rows: random init,
supervised (the grid's CPU length) and BiGAN single / full (the probe set's
train images without labels: the control) for `steps` x 128 patches, with a
learning-curve point and sample / reconstruction grids every 2,500 steps and
gan_curves.png (D's accuracy, losses). Donahue's own BiGAN probes below its
random init until about 10k iterations (jeffdonahue/bigan README: CLS_e- 48.8%
at init, 37.9 after epoch 1, 46.1 after 25, 51.8 after 100, 58.3 after 200).
"""
from mono_ssl import config_lib, grid

CURVE_EVERY = 2500
SUPERVISED_STEPS = {"cpu": 4000}  # configs/grid.py's CPU supervised length


def get_config(arg: str | None = None):
  args = config_lib.parse_arg(arg, scale="cpu", probe="cifar10", steps=30_000, recipe="donahue")
  long = {"train.num_steps": args.steps, "probe.curve_every": CURVE_EVERY,
          "train.sample_every": CURVE_EVERY}
  sup = ({"train.num_steps": SUPERVISED_STEPS[args.scale]} if args.scale in SUPERVISED_STEPS
         else {})
  runs = [
      grid.run_spec("supervised", "supervised", "regime=full", "supervised", sup),
      grid.run_spec("random", "rotnet", "regime=single", "random", {"train.num_steps": 0}),
      grid.run_spec("bigan_single", "bigan", f"regime=single,recipe={args.recipe}",
                    f"bigan {args.recipe} (single)", long),
      grid.run_spec("bigan_full", "bigan", f"regime=full,recipe={args.recipe}",
                    f"bigan {args.recipe} (full)", long),
  ]
  return grid.grid_config(runs, args.scale, args.probe,
                          title=f"BiGAN ({args.recipe}) for {args.steps} steps, scale "
                                f"{args.scale}: linear probes on {args.probe}")
