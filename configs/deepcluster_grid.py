r"""DeepCluster at the faithful miniature: its three regimes and the measured departures.

Run (from the repository root; rerun the same command to resume; ~1.5 h on the 2-core VM):

  python -m mono_ssl.grid --config=configs/deepcluster_grid.py --workdir=runs/mini \
      --config.results_dir=results/deepcluster_mini

The workdir may be the headline grid's (configs/grid.py:scale=mini): the supervised,
random and deepcluster_single runs are the same runs (same names, same configs) and are
read, not retrained. Rows: supervised and random init (3 seeds each, as the headline
table), DeepCluster single / deca / full at its mini-scale default (1,600 steps, 40
clusterings of 5,120 patches into 64 clusters), and single-image variants: Sobel front
end (`deepcluster.sobel=True`, the original's main.sh) and a 3x longer run (4,800 steps,
120 clusterings, a curve point every 600 steps: its 1,600-step curve had not flattened).
Arguments: scale=mini (default) | cpu, probe=tiny_imagenet (default) | cifar10.
"""
from mono_ssl import config_lib, grid

LONG_STEPS = 4800  # 3x the mini default: 120 clusterings


def get_config(arg: str | None = None):
  args = config_lib.parse_arg(arg, scale="mini", probe="tiny_imagenet")
  runs = [
      grid.run_spec("supervised", "supervised", "regime=full", "supervised", seeds=3),
      grid.run_spec("random", "rotnet", "regime=single", "random", {"train.num_steps": 0},
                    seeds=3),
  ]
  runs += [grid.run_spec(f"deepcluster_{r}", "deepcluster", f"regime={r}", f"deepcluster ({r})",
                         seeds=1) for r in ("single", "deca", "full")]
  runs += [
      grid.run_spec("deepcluster_single_sobel", "deepcluster", "regime=single",
                    "deepcluster (single, Sobel)", {"deepcluster.sobel": True}, seeds=1),
      grid.run_spec("deepcluster_single_long", "deepcluster", "regime=single",
                    f"deepcluster (single, {LONG_STEPS} steps)",
                    {"train.num_steps": LONG_STEPS, "probe.curve_every": 600}, seeds=1),
  ]
  return grid.grid_config(runs, args.scale, args.probe,
                          title=f"DeepCluster, scale {args.scale}: linear probes on {args.probe}")
