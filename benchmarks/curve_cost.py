r"""The learning curve's share of a run's pretraining time (target: at most 15%).

  python benchmarks/curve_cost.py runs/grid/rotnet_single runs/grid/supervised ...
  python benchmarks/curve_cost.py results/cifar10_cpu    # every run of a kept grid

Reads each run's probe_results.json (`pretrain.curve_wall_s`, the seconds its
curve points took inside pretraining, and `pretrain.wall_s`, the whole
pretraining including them) and prints the ratio per run and over all runs
(`mono_ssl.results_doc.render_curve_cost`, the README's table). Both are
measured in the same process, so the ratio holds whatever else the machine
was doing.
"""
import sys

from mono_ssl.results_doc import render_curve_cost

if __name__ == "__main__":
  from mono_ssl import xla_cpu
  xla_cpu.apply()  # faster XLA:CPU convolutions, set before JAX starts (mono_ssl/xla_cpu.py)
  if len(sys.argv) < 2:
    print(__doc__)
    sys.exit(2)
  print(render_curve_cost(sys.argv[1:]))
