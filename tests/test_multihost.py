"""Two processes on this machine (jax.distributed + CPU collectives) train RotNet to identical parameters."""
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO, tiny_config

from mono_ssl import train

CHILD = """
import sys, jax, numpy as np
sys.path.insert(0, {tests!r})
from conftest import tiny_config  # sets 4 devices for the test process; this child wants 2
jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
from mono_ssl import sharding, train
cfg = tiny_config(**{overrides!r})
sharding.initialize_distributed(cfg.distributed)
assert jax.process_count() == 2 and jax.device_count() == 4, (jax.process_count(), jax.device_count())
state, _, _ = train.pretrain(cfg, __import__("pathlib").Path({workdir!r}), log=lambda s: None)
leaves = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state.params))]
np.savez({out!r}, *leaves)
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_to_identical_parameters(tmp_path):
  port = _free_port()
  overrides = {"train.num_steps": 4, "train.ckpt_every": 2, "train.batch_size": 8}
  procs = []
  for pid in range(2):
    ov = dict(overrides, **{"distributed.enabled": True,
                            "distributed.coordinator_address": f"127.0.0.1:{port}",
                            "distributed.num_processes": 2, "distributed.process_id": pid})
    code = CHILD.format(tests=str(REPO / "tests"), overrides=ov, workdir=str(tmp_path / "work"),
                        out=str(tmp_path / f"params{pid}.npz"))
    procs.append(subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outs = [p.communicate(timeout=300)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  a, b = np.load(tmp_path / "params0.npz"), np.load(tmp_path / "params1.npz")
  assert len(a.files) == len(b.files) > 0
  for k in a.files:
    np.testing.assert_array_equal(a[k], b[k])
  # Only process 0 wrote the metrics; both wrote the (shared) checkpoints.
  assert (tmp_path / "work" / "metrics.jsonl").read_text().count("\n") == 2
  assert (tmp_path / "work" / "checkpoints" / "4").exists()
  # And the two-process run matches one process with the same 4-device global batch.
  single, _, _ = train.pretrain(tiny_config(**overrides), tmp_path / "single", log=lambda s: None)
  for k, leaf in zip(a.files, jax.tree.leaves(jax.device_get(single.params))):
    np.testing.assert_allclose(a[k], leaf, rtol=1e-4, atol=1e-5)
