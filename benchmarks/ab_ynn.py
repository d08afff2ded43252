"""One-off A/B: the mini RotNet step with XLA:CPU Eigen convolutions (default) vs YNNPACK.

  PYTHONPATH=. python benchmarks/ab_ynn.py; MONO_SSL_KEEP_XLA_FLAGS=1 PYTHONPATH=. python benchmarks/ab_ynn.py
"""
import os
import statistics
import time

import jax

from mono_ssl import config_lib, sharding, xla_cpu
from mono_ssl.methods import rotnet

xla_cpu.apply()  # faster XLA:CPU convolutions unless MONO_SSL_KEEP_XLA_FLAGS=1 (mono_ssl/xla_cpu.py)

cfg = config_lib.base_config("rotnet", "single", "mini")
mesh = sharding.make_mesh()
st = rotnet.create_state(cfg, 48, jax.random.key(0), mesh, total_steps=10000)
x = jax.random.uniform(jax.random.key(1), (128, 48, 48, 3))
f = jax.jit(rotnet.make_train_step(cfg), donate_argnums=0).lower(st, x, jax.random.key(2)).compile()
ts = []
for _ in range(7):
  t0 = time.perf_counter()
  st, m = f(st, x, jax.random.key(2))
  jax.block_until_ready((st, m))
  ts.append(time.perf_counter() - t0)
print(os.environ.get("XLA_FLAGS", ""), "median ms", round(statistics.median(ts[1:]) * 1e3), "min", round(min(ts[1:]) * 1e3), flush=True)
