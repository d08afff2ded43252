"""One-off: step cost of candidate mini-scale stacks (results/mini_scale/candidates.md).

  PYTHONPATH=. python benchmarks/scale_candidates.py cpu32,m48,m48n [batch]

Swaps each candidate ConvSpec list into scale=cpu and times the RotNet step (B=128).
"""
import json
import statistics
import sys
import time

import jax

from mono_ssl import config_lib, sharding, xla_cpu
from mono_ssl.methods import rotnet
from mono_ssl.models import alexnet as A

xla_cpu.apply()  # faster XLA:CPU convolutions unless MONO_SSL_KEEP_XLA_FLAGS=1 (mono_ssl/xla_cpu.py)

C = A.ConvSpec
W = (32, 64, 96, 96, 64)
def mk(spec, widths=W):
  return tuple(C(w, k, s, p, pl) for w, (k, s, p, pl) in zip(widths, spec))
CANDS = {
  "m48t": (mk([(3,2,1,False),(5,1,2,True),(3,1,1,False),(3,1,1,False),(3,1,1,True)], (24,48,64,64,48)), 48),
  "m48tw": (mk([(3,2,1,False),(5,1,2,True),(3,1,1,False),(3,1,1,False),(3,1,1,True)]), 48),
  "m64t": (mk([(3,2,1,False),(5,1,2,True),(3,1,1,False),(3,1,1,False),(3,1,1,True)], (24,48,64,64,48)), 64),
  "m48q": (mk([(3,1,1,True),(3,1,1,True),(3,1,1,False),(3,1,1,False),(3,1,1,True)], (24,64,96,96,64)), 48),
  "m48n": (mk([(3,1,1,True),(3,1,1,True),(3,1,1,False),(3,1,1,False),(3,1,1,True)], (24,48,64,64,48)), 48),
  "m48s": (mk([(3,1,1,True),(3,1,1,True),(3,1,1,False),(3,1,1,False),(3,1,1,True)], (16,48,64,64,48)), 48),
  "cpu32": (A.CPU_CONVS, 32),
  "cpu96": (A.CPU_CONVS, 96),
  "m56": (mk([(3,1,1,True),(5,1,2,True),(3,1,1,False),(3,1,1,False),(3,1,1,True)]), 56),
  "m56n": (mk([(3,1,1,True),(5,1,2,True),(3,1,1,False),(3,1,1,False),(3,1,1,True)], (24,48,64,64,48)), 56),
  "m48": (mk([(3,1,1,True),(3,1,1,True),(3,1,1,False),(3,1,1,False),(3,1,1,True)]), 48),
  "m64a": (mk([(3,1,1,True),(5,1,2,True),(3,1,1,False),(3,1,1,False),(3,1,1,True)]), 64),
}
names = sys.argv[1].split(",")
B = int(sys.argv[2]) if len(sys.argv) > 2 else 128
out = {}
for n in names:
  convs, size = CANDS[n]
  rf = A.receptive_fields(convs, size)
  A.CPU_CONVS_SAVED = getattr(A, "CPU_CONVS_SAVED", A.CPU_CONVS)
  A.CPU_CONVS = convs
  cfg = config_lib.base_config("rotnet", "single", "cpu")
  mesh = sharding.make_mesh()
  st = rotnet.create_state(cfg, size, jax.random.key(0), mesh, total_steps=10000)
  x = jax.random.uniform(jax.random.key(1), (B, size, size, 3))
  f = jax.jit(rotnet.make_train_step(cfg), donate_argnums=0).lower(st, x, jax.random.key(2)).compile()
  cost = f.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  ts = []
  for _ in range(6):
    t0 = time.perf_counter()
    st, m = f(st, x, jax.random.key(2))
    jax.block_until_ready((st, m))
    ts.append(time.perf_counter() - t0)
  step = statistics.median(ts[1:])
  # probe-style forward, eval batch 500, head=False
  model = A.AlexNet(convs=convs)
  v = {"params": st.params, "batch_stats": st.batch_stats}
  fwd = jax.jit(lambda v, x, model=model: model.apply(v, x, train=False, head=False)[1])
  xe = jax.random.uniform(jax.random.key(3), (500, size, size, 3))
  jax.block_until_ready(fwd(v, xe))
  fs = []
  for _ in range(3):
    t0 = time.perf_counter()
    jax.block_until_ready(fwd(v, xe))
    fs.append(time.perf_counter() - t0)
  A.CPU_CONVS = A.CPU_CONVS_SAVED
  r = dict(size=size, step_ms=step*1e3, img_s=B/step, gflop=cost.get("flops", 0)/1e9,
           fwd500_ms=min(fs)*1e3,
           rf=[round(100*rf[l]["fraction"], 1) for l in A.LAYER_NAMES],
           maps=[rf[l]["map"] for l in A.LAYER_NAMES] + [rf["final_map"]])
  print(n, json.dumps(r), flush=True)
