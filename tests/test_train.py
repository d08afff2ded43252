"""End to end on a tiny config: pretrain -> checkpoint -> probe, outputs, exact resume, NaN guard."""
import json

import jax
import numpy as np
import pytest
from conftest import tiny_config

from mono_ssl import train
from mono_ssl.errors import TrainingDiverged, UserInputError
from mono_ssl.workdir import saved_config


def _params(workdir, config):
  state, _, _ = train.pretrain(config, workdir, log=lambda s: None)
  return jax.device_get(state.params)


def test_pretrain_checkpoint_probe_writes_every_output(tmp_path):
  config = tiny_config()
  results = train.train_and_evaluate(config, tmp_path, log=lambda s: None)
  for name in ("probe_results.json", "probe_results.md", "probe_results.png", "metrics.jsonl",
               "config.json", "probe_trained.json", "probe_random.json"):
    assert (tmp_path / name).stat().st_size > 0, name
  saved = json.loads((tmp_path / "probe_results.json").read_text())
  for arm in ("trained", "random"):
    assert set(saved[arm]) == {"conv1", "conv2", "conv3", "conv4", "conv5"}
    assert all(0 <= v["top1"] <= v["top5"] <= 100 for v in saved[arm].values())
  assert saved["trained"] == results["trained"]
  assert saved["trained"] != saved["random"]  # the trunks differ, so do their probes
  steps = [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert steps == [2, 4, 6]
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == ["3", "6"]
  assert "| rotnet (single) |" in (tmp_path / "probe_results.md").read_text()
  # A second run finds everything done: no training, same numbers, read from disk.
  logs = []
  again = train.train_and_evaluate(config, tmp_path, log=logs.append)
  assert again["trained"] == results["trained"]
  assert any("already done" in l for l in logs)


class _Interrupt(Exception):
  pass


def test_interrupted_run_resumes_to_the_same_parameters(tmp_path):
  config = tiny_config(**{"train.log_every": 1, "train.num_steps": 7})
  uninterrupted = _params(tmp_path / "a", config)

  def die_at_step_5(line):
    if line.startswith("step 5/"):
      raise _Interrupt  # after the step-3 checkpoint, before the step-6 one

  (tmp_path / "b").mkdir()
  with pytest.raises(_Interrupt):
    train.pretrain(config, tmp_path / "b", log=die_at_step_5)
  logs = []
  state, _, info = train.pretrain(config, tmp_path / "b", log=logs.append)
  assert info["resumed_from"] == 3 and any("resumed from checkpoint at step 3" in l for l in logs)
  for a, b in zip(jax.tree.leaves(uninterrupted), jax.tree.leaves(jax.device_get(state.params))):
    np.testing.assert_array_equal(a, b)
  steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
  assert steps == list(range(1, 8))  # no duplicate lines from the interrupted part


def test_nan_guard_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
  config = tiny_config(**{"train.lr": 1e30, "train.num_steps": 8, "train.ckpt_every": 1,
                          "train.log_every": 100})
  with pytest.raises(TrainingDiverged, match=r"at step \d+.*Last good checkpoint: step \d+"):
    train.pretrain(config, tmp_path, log=lambda s: None)
  steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert steps, "the steps before divergence were checkpointed"
  # Every kept checkpoint is finite.
  from mono_ssl import sharding as shd
  from mono_ssl.checkpoint import Checkpointer
  from mono_ssl.methods import rotnet
  ckpt = Checkpointer(tmp_path / "checkpoints")
  state = rotnet.create_state(config, config.aug.out_size, jax.random.key(0), shd.make_mesh(), 8)
  restored = ckpt.restore(state, steps[-1])
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(restored.params)))


def test_workdir_of_another_experiment_is_refused_and_left_intact(tmp_path):
  train.pretrain(tiny_config(), tmp_path, log=lambda s: None)
  train.check_workdir(tiny_config(), tmp_path)  # same config: fine
  before = (tmp_path / "config.json").read_text()
  with pytest.raises(UserInputError, match="another experiment.*model.width_mult"):
    train.check_workdir(tiny_config(**{"model.width_mult": 0.5}), tmp_path)
  assert (tmp_path / "config.json").read_text() == before
  assert (tmp_path / "checkpoints" / "6").exists()


def test_saved_config_is_the_run_config_and_refuses_a_non_run(tmp_path):
  config = tiny_config()
  (tmp_path / "run").mkdir()
  train.check_workdir(config, tmp_path / "run")  # what main.py does first: it writes config.json
  saved = saved_config(tmp_path / "run")
  assert saved.to_dict() == config.to_dict()  # tuples come back as tuples, not JSON lists
  assert isinstance(saved.probe.layers, tuple)
  with pytest.raises(UserInputError, match="holds no config.json"):
    saved_config(tmp_path)


def test_probe_only_run_from_another_runs_checkpoint(tmp_path):
  trained, _, _ = train.pretrain(tiny_config(), tmp_path / "pre", log=lambda s: None)
  config = tiny_config(**{"init_from": str(tmp_path / "pre"), "train.num_steps": 0})
  logs = []
  results = train.train_and_evaluate(config, tmp_path / "probe", log=logs.append)
  assert any("initialised from" in l and "step 6" in l for l in logs)
  assert not any(l.startswith("step ") for l in logs)  # no training step ran
  assert set(results["trained"]) == {"conv1", "conv2", "conv3", "conv4", "conv5"}
  # The probed trunk is the pretrained one, not a fresh init.
  restored, _, _ = train.pretrain(config, tmp_path / "probe", log=lambda s: None)
  for a, b in zip(jax.tree.leaves(jax.device_get(trained.params)),
                  jax.tree.leaves(jax.device_get(restored.params))):
    np.testing.assert_array_equal(a, b)


def test_init_from_a_missing_folder_is_refused(tmp_path):
  config = tiny_config(**{"init_from": str(tmp_path / "nothing"), "train.num_steps": 0})
  with pytest.raises(UserInputError, match="init_from=.*nothing.*no such folder"):
    train.pretrain(config, tmp_path / "w", log=lambda s: None)


def test_a_new_probe_protocol_reprobes_a_finished_run_and_keeps_the_old_results(tmp_path):
  config = tiny_config(**{"probe.random_baseline": False})
  first = train.train_and_evaluate(config, tmp_path, log=lambda s: None)
  ckpts = {p: p.stat().st_mtime_ns for p in (tmp_path / "checkpoints").rglob("*")}
  logs = []
  second = train.train_and_evaluate(tiny_config(**{"probe.random_baseline": False, "probe.epochs": 2}),
                                    tmp_path, log=logs.append)
  assert any("probed again" in l for l in logs) and not any(l.startswith("step ") for l in logs)
  assert {p: p.stat().st_mtime_ns for p in ckpts} == ckpts
  assert second["pretrain"]["reused"] and second["pretrain"]["steps"] == first["pretrain"]["steps"]
  assert second["pretrain"]["images_per_s"] == first["pretrain"]["images_per_s"]
  (archive,) = tmp_path.glob("probes_before_*")
  assert json.loads((archive / "probe_results.json").read_text())["trained"] == first["trained"]
  assert json.loads((archive / "config.json").read_text())["probe"]["epochs"] == 1
  assert json.loads((tmp_path / "config.json").read_text())["probe"]["epochs"] == 2
  # A training field still binds the workdir.
  with pytest.raises(UserInputError, match="holds another experiment.*train.lr"):
    train.train_and_evaluate(tiny_config(**{"probe.epochs": 2, "train.lr": 0.5}), tmp_path,
                             log=lambda s: None)


def test_a_field_added_since_at_its_neutral_value_is_no_change(tmp_path):
  config = tiny_config(**{"probe.random_baseline": False})
  train.train_and_evaluate(config, tmp_path, log=lambda s: None)
  saved = json.loads((tmp_path / "config.json").read_text())
  del saved["probe"]["image_size"], saved["data"]["image_size"]  # as written before they existed
  (tmp_path / "config.json").write_text(json.dumps(saved))
  train.check_workdir(config, tmp_path, log=lambda s: None)  # 0: the old behaviour, accepted
  (tmp_path / "config.json").write_text(json.dumps(saved))
  with pytest.raises(UserInputError, match=r"data.image_size: None -> 32"):
    train.check_workdir(tiny_config(**{"data.image_size": 32}), tmp_path, log=lambda s: None)


def test_a_new_probe_protocol_before_any_probe_ran_is_accepted(tmp_path):
  """Pretraining interrupted before its probes (here: pretrain alone), then a new probe protocol."""
  train.check_workdir(tiny_config(), tmp_path, log=lambda s: None)
  train.pretrain(tiny_config(), tmp_path, log=lambda s: None)
  logs = []
  results = train.train_and_evaluate(tiny_config(**{"probe.epochs": 2}), tmp_path, log=logs.append)
  assert any("before any probe ran" in l for l in logs)
  assert not list(tmp_path.glob("probes_before_*"))  # nothing to archive
  assert set(results["trained"]) == {"conv1", "conv2", "conv3", "conv4", "conv5"}


def test_eta_leaves_out_the_first_step_which_compiles():
  from mono_ssl.report import hms
  from mono_ssl.train import throughput
  # Started at step 0 at t=0; step 1 (compile) finished at t=30; then 1 s a step.
  # At step 11 (t=40), 89 steps left: 89 s, not 89 * 40/11 s.
  ips, eta = throughput(done=11, total=100, start=0, batch=128, now=40.0, t_last=30.0,
                        n_last=1, t_first=30.0)
  assert eta == pytest.approx(89.0) and ips == pytest.approx(128.0)
  # A resumed run: its first step (from `start`) compiles too.
  _, eta = throughput(done=61, total=100, start=50, batch=128, now=40.0, t_last=30.0,
                      n_last=51, t_first=30.0)
  assert eta == pytest.approx(39.0)
  assert hms(3725.4) == "1:02:05" and hms(-3) == "0:00:00"


def test_a_longer_run_of_a_length_free_schedule_extends_a_finished_one(tmp_path):
  """More steps on a constant schedule go on from the last checkpoint, to a fresh run's weights."""
  flat = {"train.lr_boundaries": (), "train.log_every": 1}
  fresh = _params(tmp_path / "a", tiny_config(**flat, **{"train.num_steps": 6}))
  work, short = tmp_path / "b", tiny_config(**flat, **{"train.num_steps": 3})
  train.check_workdir(short, work, log=lambda s: None)
  _params(work, short)
  (work / "probe_results.json").write_text('{"trained": {}}')  # as a finished run leaves it
  longer, logs = tiny_config(**flat, **{"train.num_steps": 6}), []
  train.check_workdir(longer, work, log=logs.append)
  assert any("extends the run from 3 to 6 steps" in l for l in logs)
  assert not (work / "probe_results.json").exists()
  assert len(list(work.glob("probes_before_*/probe_results.json"))) == 1
  state, _, info = train.pretrain(longer, work, log=lambda s: None)
  assert info["resumed_from"] == 3
  for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(jax.device_get(state.params))):
    np.testing.assert_array_equal(a, b)
  steps = [json.loads(l)["step"] for l in (work / "metrics.jsonl").read_text().splitlines()]
  assert steps == list(range(1, 7))


@pytest.mark.parametrize("saved, new, why", [
    ({"train.num_steps": 6}, {"train.num_steps": 4}, "never shortened"),
    ({"train.lr_boundaries": (0.5,)}, {"train.lr_boundaries": (0.5,), "train.num_steps": 9},
     "boundaries"),
])
def test_a_run_whose_schedule_scales_with_its_length_is_not_extended(tmp_path, saved, new, why):
  (tmp_path / "config.json").write_text(tiny_config(**saved).to_json())
  (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
  before = (tmp_path / "config.json").read_text()
  with pytest.raises(UserInputError, match=f"train.num_steps .* cannot extend this run .*{why}"):
    train.check_workdir(tiny_config(**new), tmp_path, log=lambda s: None)
  assert (tmp_path / "config.json").read_text() == before
