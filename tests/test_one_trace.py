"""Each method's step is traced (and so compiled) once per run: no recompiles while training.

A retrace would mean a shape, dtype or Python value changed between steps
(DeepCluster's re-clustering, logging, checkpointing and resuming all happen
between steps), costing a compilation each time.
"""
import pytest
from test_scaleout import scaleout_config

from mono_ssl import train


@pytest.mark.parametrize("method", ["rotnet", "deepcluster", "bigan"])
def test_step_is_traced_once_across_logging_checkpoints_and_reclustering(method, tmp_path,
                                                                         monkeypatch):
  config = scaleout_config(method)  # locked: existing fields may change, none be added
  config.train.num_steps = 7          # crosses two checkpoints and three log lines
  config.train.log_every = 2
  config.train.ckpt_every = 3
  if method == "deepcluster":
    config.data.dataset_size = 16  # 2 steps per epoch of 8-patch batches: re-clusters 4 times
  module = train.METHODS[method]
  traces = []
  original = module.make_train_step

  def counting_make_train_step(*args, **kwargs):
    step = original(*args, **kwargs)

    def traced(*a):
      traces.append(1)  # Python side effect: runs once per trace, not per call
      return step(*a)
    return traced

  monkeypatch.setattr(module, "make_train_step", counting_make_train_step)
  logs = []
  trained, _, info = train.pretrain(config, tmp_path, log=logs.append)
  assert info["steps"] == 7 and int(trained.step) == 7
  if method == "deepcluster":
    assert sum("cluster" in line.lower() for line in logs) >= 3, logs
  assert len(traces) == 1, f"{method}: step traced {len(traces)} times in 7 steps"
