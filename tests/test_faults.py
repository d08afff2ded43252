"""Long runs are safe: SIGKILL + restart is bit-identical, a damaged checkpoint falls back, bad workdirs are refused."""
import json
import os
import signal
import subprocess
import sys
import time
from collections import namedtuple

import jax
import numpy as np
import pytest
from conftest import REPO, tiny_config

from mono_ssl import train
from mono_ssl import workdir as workdir_policy
from mono_ssl.errors import UserInputError

# Dropout on, so the per-step keys (fold_in(seed, step)) matter to the result.
OVERRIDES = {"train.num_steps": 12, "train.ckpt_every": 3, "train.log_every": 1, "model.dropout": 0.5}

# The child builds the same config through conftest.tiny_config, on 4 fake devices like the tests.
CHILD = """
import sys, jax
jax.config.update("jax_num_cpu_devices", 4)
sys.path.insert(0, {tests!r})
from conftest import tiny_config
from mono_ssl import train
from mono_ssl import workdir as workdir_policy
cfg = tiny_config(**{overrides!r})
train.pretrain(cfg, __import__("pathlib").Path({workdir!r}), log=lambda s: print(s, flush=True))
"""


def _leaves(state):
  return jax.tree.leaves(jax.device_get(state.params))


@pytest.mark.slow
def test_sigkill_mid_training_then_restart_is_bit_identical(tmp_path):
  reference, _, _ = train.pretrain(tiny_config(**OVERRIDES), tmp_path / "ref", log=lambda s: None)
  work = tmp_path / "killed"
  work.mkdir()
  code = CHILD.format(tests=str(REPO / "tests"), overrides=OVERRIDES, workdir=str(work))
  env = dict(os.environ, PYTHONPATH=str(REPO))
  child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  for line in child.stdout:  # kill it once it is past the step-6 checkpoint, mid-way to step 9
    if line.startswith("step 7/") or time.time() > deadline:
      os.kill(child.pid, signal.SIGKILL)
      break
  child.wait()
  assert child.returncode == -signal.SIGKILL
  assert (work / "checkpoints" / "6").exists() and not (work / "checkpoints" / "12").exists()
  logs = []
  resumed, _, info = train.pretrain(tiny_config(**OVERRIDES), work, log=logs.append)
  assert info["resumed_from"] in (6, 9)
  for a, b in zip(_leaves(reference), _leaves(resumed)):
    np.testing.assert_array_equal(a, b)


def _largest_file(folder):
  files = [p for p in folder.rglob("*") if p.is_file()]
  return max(files, key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage):
  config = tiny_config(**{"train.num_steps": 6, "train.ckpt_every": 3})
  reference, _, _ = train.pretrain(config, tmp_path / "ref", log=lambda s: None)
  work = tmp_path / "w"
  train.pretrain(tiny_config(**{"train.num_steps": 6, "train.ckpt_every": 3}), work, log=lambda s: None)
  victim = _largest_file(work / "checkpoints" / "6")
  data = victim.read_bytes()
  victim.write_bytes(data[: len(data) // 3] if damage == "truncate" else os.urandom(len(data)))
  logs = []
  state, _, info = train.pretrain(config, work, log=logs.append)
  assert info["resumed_from"] == 3  # step 6 was unreadable; step 3 was used and training redone
  assert (work / "checkpoints" / "6.damaged").exists()  # kept aside, not deleted
  for a, b in zip(_leaves(reference), _leaves(state)):
    np.testing.assert_array_equal(a, b)


def test_every_checkpoint_damaged_gives_a_clear_error(tmp_path):
  config = tiny_config(**{"train.num_steps": 3, "train.ckpt_every": 3})
  train.pretrain(config, tmp_path, log=lambda s: None)
  for p in (tmp_path / "checkpoints" / "3").rglob("*"):
    if p.is_file():
      p.write_bytes(b"")
  with pytest.raises(UserInputError, match="no usable checkpoint in .*checkpoints.*delete that folder"):
    train.pretrain(config, tmp_path, log=lambda s: None)


def test_unwritable_workdir_is_refused_before_training(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("x")
  with pytest.raises(UserInputError, match="a_file/run is not writable"):
    train.train_and_evaluate(tiny_config(), blocker / "run", log=lambda s: None)


def test_full_disk_is_refused_before_training(tmp_path, monkeypatch):
  usage = namedtuple("usage", "total used free")
  monkeypatch.setattr(workdir_policy.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 10**6, 10**6))
  with pytest.raises(UserInputError, match="only 1 MiB free"):
    train.train_and_evaluate(tiny_config(), tmp_path / "run", log=lambda s: None)
  assert not (tmp_path / "run" / "checkpoints").exists()


def test_results_already_written_survive_a_refused_rerun(tmp_path):
  train.train_and_evaluate(tiny_config(), tmp_path, log=lambda s: None)
  before = json.loads((tmp_path / "probe_results.json").read_text())
  with pytest.raises(UserInputError):
    train.train_and_evaluate(tiny_config(**{"model.width_mult": 0.5}), tmp_path, log=lambda s: None)
  assert json.loads((tmp_path / "probe_results.json").read_text()) == before


def test_checkpoint_of_a_different_model_is_refused_naming_the_fields(tmp_path):
  # Written by a half-width trunk; config.json removed so only the checkpoint can tell.
  train.pretrain(tiny_config(**{"train.num_steps": 3, "train.ckpt_every": 3,
                                "model.width_mult": 0.5}), tmp_path, log=lambda s: None)
  (tmp_path / "config.json").unlink(missing_ok=True)
  with pytest.raises(UserInputError, match=r"different model.*params\.conv1\.kernel: checkpoint "
                                           r"\(5, 5, 3, \d+\) vs config \(5, 5, 3, \d+\)"):
    train.pretrain(tiny_config(**{"train.num_steps": 3}), tmp_path, log=lambda s: None)
  # Refused, not set aside or overwritten: the checkpoint is still there, intact.
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["3"]


def test_init_from_a_different_model_is_refused_naming_the_fields(tmp_path, capfd):
  train.pretrain(tiny_config(**{"train.num_steps": 3, "model.width_mult": 0.5}), tmp_path / "pre",
                 log=lambda s: None)
  config = tiny_config(**{"init_from": str(tmp_path / "pre"), "train.num_steps": 0})
  with pytest.raises(UserInputError, match=r"init_from=.*pre.*params\.conv1\.kernel"):
    train.pretrain(config, tmp_path / "probe", log=lambda s: None)
  assert "Traceback" not in capfd.readouterr().err  # no orbax traceback on the way
