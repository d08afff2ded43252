"""Learning curves: points at the scheduled steps, equal to a separate probe of that step's
checkpoint, resumed with the run, drawn; the validation split never overlaps what it is scored on."""
import json
import re

import numpy as np
import pytest
from conftest import tiny_config

from mono_ssl import curves, train
from mono_ssl.errors import UserInputError

CURVE = {"probe.curve_every": 3, "probe.curve_epochs": 1, "probe.curve_train_size": 100,
         "probe.curve_val_size": 40, "probe.val_fraction": 0.2}


class _Interrupt(Exception):
  pass


def _points(workdir):
  return curves.read_curve(workdir / curves.CURVE_FILE)


def test_curve_point_equals_a_separate_probe_of_that_steps_checkpoint(tmp_path):
  config = tiny_config(**CURVE)  # 6 steps, checkpoints at 3 and 6
  probe_train, _ = train.load_probe_data(config)
  _, _, info = train.pretrain(config, tmp_path, log=lambda s: None, probe_train=probe_train)
  points = _points(tmp_path)
  assert [p["step"] for p in points] == [0, 3, 6]
  assert (tmp_path / curves.CURVE_PLOT).stat().st_size > 0
  assert info["curve_points"] == 3 and 0 < info["curve_wall_s"] < info["wall_s"]
  method = train.method_module(config)
  state = train.state_at(config, tmp_path, step=3)
  apply_fn, variables = method.trunk(state)
  separate = curves.CurveProbe(apply_fn, variables, probe_train, config.probe)(variables)
  assert {l: {"top1": r["top1"]} for l, r in separate.items()} == \
      {l: points[1][l] for l in separate}
  # A different step's trunk gives a different point: the comparison can fail.
  other = curves.CurveProbe(apply_fn, variables, probe_train, config.probe)(
      method.trunk(train.state_at(config, tmp_path, step=6))[1])
  assert any(other[l]["top1"] != separate[l]["top1"] for l in separate) or points[1] != points[2]


def test_interrupted_run_keeps_its_points_and_makes_the_rest(tmp_path):
  config = tiny_config(**{**CURVE, "probe.curve_every": 2, "train.log_every": 1, "train.num_steps": 7})
  whole = tmp_path / "a"
  train.pretrain(config, whole, log=lambda s: None, probe_train=train.load_probe_data(config)[0])

  def die_at_step_5(line):
    if line.startswith("step 5/"):
      raise _Interrupt  # after the step-3 checkpoint and the step-4 point

  part = tmp_path / "b"
  part.mkdir()
  probe_train = train.load_probe_data(config)[0]
  with pytest.raises(_Interrupt):
    train.pretrain(config, part, log=die_at_step_5, probe_train=probe_train)
  assert [p["step"] for p in _points(part)] == [0, 2, 4]
  logs = []
  train.pretrain(config, part, log=logs.append, probe_train=probe_train)
  # Resumed at 3: the step-4 point (made past the checkpoint) is made again, identically.
  def strip(ps):
    return [{k: v for k, v in p.items() if k != "wall_s"} for p in ps]
  assert strip(_points(part)) == strip(_points(whole))
  assert [p["step"] for p in _points(part)] == [0, 2, 4, 6, 7]
  assert sum("learning curve at step" in l for l in logs) == 3  # 4, 6, 7


def test_curve_off_writes_nothing(tmp_path):
  train.pretrain(tiny_config(), tmp_path, log=lambda s: None,
                 probe_train=train.load_probe_data(tiny_config())[0])
  assert not (tmp_path / curves.CURVE_FILE).exists()


def test_curve_steps():
  assert curves.curve_steps(250, 1000) == [0, 250, 500, 750, 1000]
  assert curves.curve_steps(300, 1000) == [0, 300, 600, 900, 1000]
  assert curves.curve_steps(0, 1000) == []
  assert curves.curve_steps(5, 0) == [0]


def test_validation_split_is_disjoint_stratified_and_fixed():
  labels = np.repeat(np.arange(4), [10, 20, 30, 40])
  fit, val = curves.validation_split(labels, 4, 0.1)
  assert not set(fit) & set(val) and len(fit) + len(val) == 100
  assert [int(np.sum(labels[val] == c)) for c in range(4)] == [1, 2, 3, 4]
  again = curves.validation_split(labels, 4, 0.1)
  np.testing.assert_array_equal(val, again[1])
  with pytest.raises(UserInputError, match="probe.val_fraction=1.5"):
    curves.validation_split(labels, 4, 1.5)


def test_curve_sets_come_from_the_train_split_and_do_not_overlap():
  config = tiny_config(**CURVE)
  probe_train, _ = train.load_probe_data(config)
  fit, val = curves.curve_sets(probe_train, config.probe)
  assert len(fit) == 100 and len(val) == 40
  # Every image of either set is a train-split image, and none is in both.
  def flat(ds):
    return {im.tobytes() for im in ds.images}
  assert not flat(fit) & flat(val)
  train_images = flat(probe_train)
  assert flat(fit) <= train_images and flat(val) <= train_images
  assert np.bincount(val.labels, minlength=10).tolist() == [4] * 10


def test_too_small_curve_train_set_is_refused_naming_the_field():
  config = tiny_config(**{**CURVE, "probe.curve_train_size": 5})
  probe_train, _ = train.load_probe_data(config)
  with pytest.raises(UserInputError, match="probe.curve_train_size=5"):
    curves.curve_sets(probe_train, config.probe)


def test_grid_curves_figure(tmp_path):
  pts = [{"step": s, "conv1": {"top1": 10.0 + s}, "wall_s": 1.0} for s in (0, 5, 10)]
  curves.plot_curves(tmp_path / "c.png", {"a": pts, "b": pts, "empty": []}, "t")
  assert (tmp_path / "c.png").stat().st_size > 0
  (tmp_path / "x.jsonl").write_text("\n".join(json.dumps(p) for p in reversed(pts)) + "\n")
  assert [p["step"] for p in curves.read_curve(tmp_path / "x.jsonl")] == [0, 5, 10]


def test_curve_settings_changed_on_a_finished_run_reprobe_nothing(tmp_path):
  """The curve's fields shape only the curve made while training: no re-probe, no refusal."""
  old = tiny_config(**CURVE)
  tmp_path.mkdir(exist_ok=True)
  (tmp_path / "config.json").write_text(old.to_json())
  (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
  (tmp_path / "probe_trained.json").write_text("{}")
  logs = []
  train.check_workdir(tiny_config(**{**CURVE, "probe.curve_every": 5, "probe.val_fraction": 0.3}),
                      tmp_path, log=logs.append)
  assert (tmp_path / "probe_trained.json").exists() and not logs  # nothing archived or said
  with pytest.raises(UserInputError, match="probe.lr"):  # a probe field still counts
    train.check_workdir(tiny_config(**{**CURVE, "probe.lr": 0.5, "train.num_steps": 9}), tmp_path)


def test_gain_over_init_series_and_figure(tmp_path):
  # Out of order on purpose: the series is by step and its init is the step-0 point.
  pts = [{"step": 10, "conv1": {"top1": 13.0}, "conv2": {"top1": 9.0}},
         {"step": 0, "conv1": {"top1": 10.0}, "conv2": {"top1": 10.0}},
         {"step": 5, "conv1": {"top1": 8.5}, "conv2": {"top1": 10.5}}]
  assert curves.gain_series(pts, "conv1") == ([0, 5, 10], [0.0, -1.5, 3.0])
  assert curves.gain_series(pts, "conv2") == ([0, 5, 10], [0.0, 0.5, -1.0])
  with pytest.raises(ValueError, match="a curve without its step-0 point"):
    curves.gain_series(pts[:1], "conv1")
  curves.plot_gain_over_init(tmp_path / "g.png", {"seed 0": pts, "seed 1": pts[::-1]}, "t")
  assert (tmp_path / "g.png").stat().st_size > 0


def test_gain_cli_draws_runs_of_several_grids_and_refuses_bad_input_in_one_line(tmp_path, capsys):
  pts = [{"step": s, "conv1": {"top1": 40.0 + s / 1000}, "conv2": {"top1": 30.0}} for s in (0, 2500, 5000)]
  for grid_name, run in (("long20", "bigan_single"), ("long30", "bigan_single_seed1")):
    (tmp_path / grid_name / run).mkdir(parents=True)
    (tmp_path / grid_name / run / curves.CURVE_FILE).write_text("".join(json.dumps(p) + "\n" for p in pts))
  (tmp_path / "long20" / "random").mkdir()  # an untrained run: one point at step 0
  (tmp_path / "long20" / "random" / curves.CURVE_FILE).write_text(json.dumps(pts[0]) + "\n")
  runs = [str(tmp_path / "long20" / "bigan_single"), str(tmp_path / "long30" / "bigan_single_seed1")]
  assert curves.main(["gain", str(tmp_path / "g.png"), *runs]) == 0
  assert (tmp_path / "g.png").stat().st_size > 0
  bad = [(["gain", str(tmp_path / "g.jpg"), *runs], "is not a .png path"),
         (["gain", str(tmp_path / "no" / "g.png"), *runs], "does not exist; create it first"),
         (["gain", str(tmp_path / "h.png"), str(tmp_path / "long20" / "random")], r"\(1 point\(s\)\)"),
         (["gain", str(tmp_path / "h.png"), str(tmp_path / "missing")], "does not exist"),
         (["gain", str(tmp_path / "h.png"), runs[0], runs[0]], "a second run labelled 'long20/bigan_single'"),
         (["gain", str(tmp_path / "h.png")], "required: runs; usage: "),
         (["gian", str(tmp_path / "h.png"), runs[0]], "invalid choice: 'gian'")]
  (tmp_path / "long20" / "rotnet").mkdir()  # a trunk without conv2 at step 0
  (tmp_path / "long20" / "rotnet" / curves.CURVE_FILE).write_text(
      "".join(json.dumps({"step": s, "conv1": {"top1": 1.0}}) + "\n" for s in (0, 10)))
  bad.append((["gain", str(tmp_path / "h.png"), str(tmp_path / "long20" / "rotnet")], "has no conv2"))
  capsys.readouterr()
  for argv, message in bad:
    assert curves.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
  assert not (tmp_path / "h.png").exists() and not (tmp_path / "g.jpg").exists()  # nothing written
