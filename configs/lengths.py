r"""Run lengths by comparison (issue 39, item 4): RotNet single, RotNet full and supervised at
1x, 2x and 4x a base length, each with its lr schedule scaled to its length.

Run (from the repository root; rerun the same command to resume), then read the choice:

  python -m mono_ssl.grid --config=configs/lengths.py:scale=calib,seeds=2 --workdir=runs/lengths \
      --config.results_dir=results/lengths
  python -m mono_ssl.lengths results/lengths/grid_results.json --out results/lengths

Arguments: scale=calib (default)|mini|cpu, probe=tiny_imagenet_400 (default at calib; the
probe set, as configs/grid.py), seeds=N (runs per row: a difference's standard error needs
two seeds in at least one of its rows, mono_ssl.lengths.se_of_difference), mults=1:2:4
(the multiples of the base), families=rotnet_single:rotnet_full:supervised, and each
family's base length in steps: rotnet_single, rotnet_full, supervised.

The schedule scales with the run because `train.lr_boundaries` are fractions of
`train.num_steps`: a 4x run drops its lr at the same fractions, 4x later. Rows are named
<family>_<k>x (mono_ssl.lengths reads them so); the curve points stay at the config's own
`probe.curve_every`, so every length's curve shares its early points.

Base lengths: 750 RotNet steps (~29 min on the 2-core AVX2 VM of 2026-12-07 at 2.3 s a
calib RotNet step, so 4x is ~2 h: the issue's 150-minute cap on one run), 1,500 full-data
RotNet steps and 3,000 supervised (0.66 s a step). Nine rows x 2 seeds is ~27 h of that
machine: it is a multi-session grid (resumable), or a GPU's.
"""
from mono_ssl import config_lib, grid

# family -> (config file, its arg): the rows of the length comparison.
FAMILIES = {"rotnet_single": ("rotnet", "regime=single"),
            "rotnet_full": ("rotnet", "regime=full"),
            "supervised": ("supervised", "regime=full")}
PROBE_AT = {"calib": "tiny_imagenet_400", "mini": "tiny_imagenet", "cpu": "cifar10"}


def get_config(arg: str | None = None):
  args = config_lib.parse_arg(arg, scale="calib", probe="", seeds=2, mults="1:2:4",
                              families=":".join(FAMILIES), rotnet_single=750, rotnet_full=1500,
                              supervised=3000)
  config_lib.check_choice("scale (lengths)", args.scale, tuple(PROBE_AT))
  if args.seeds < 2:
    raise config_lib.UserInputError(
        f"seeds={args.seeds}: a length comparison needs a standard error, so two seeds or more a row "
        "(seeds=3 for the rows that are read).")
  try:
    mults = [int(m) for m in args.mults.split(":") if m.strip()]
  except ValueError:
    raise config_lib.UserInputError(
        f"mults={args.mults!r} is not a list of whole numbers joined by ':', e.g. mults=1:2:4.") from None
  if len(mults) < 2 or len(set(mults)) != len(mults) or min(mults) < 1:
    raise config_lib.UserInputError(
        f"mults={args.mults!r} needs two or more different multiples >= 1, e.g. mults=1:2:4.")
  families = [f.strip() for f in args.families.split(":") if f.strip()]
  unknown = [f for f in families if f not in FAMILIES]
  if unknown or not families:
    raise config_lib.UserInputError(
        f"families={args.families!r}: unknown {', '.join(unknown) or '(none given)'}; "
        f"known: {':'.join(FAMILIES)}.")
  runs = []
  for family in families:
    base = getattr(args, family)
    if base < 1:
      raise config_lib.UserInputError(f"{family}={base} must be a step count >= 1.")
    config, arg = FAMILIES[family]
    for k in sorted(mults):
      runs.append(grid.run_spec(f"{family}_{k}x", config, arg, f"{family} {k}x ({k * base} steps)",
                                {"train.num_steps": k * base}))
  probe = args.probe or PROBE_AT[args.scale]
  config = grid.grid_config(runs, args.scale, probe,
                            title=f"scale {args.scale}: lengths {':'.join(map(str, sorted(mults)))}"
                                  f" x base, probes on {probe}")
  config.seeds = args.seeds
  return config
