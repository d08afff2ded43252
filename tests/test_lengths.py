"""Run lengths by comparison (mono_ssl/lengths.py, configs/lengths.py): issue 39, item 4."""
import json
import math

import pytest

from mono_ssl import lengths
from mono_ssl.errors import UserInputError


def test_se_of_difference_of_two_seeded_rows():
  a, b = [10.0, 11.0, 12.0], [13.0, 13.0]
  # s^2/n each: var(a) = 1 over 3 seeds, var(b) = 0 over 2.
  assert lengths.se_of_difference(a, b) == pytest.approx(math.sqrt(1 / 3))


def test_se_of_difference_pools_when_one_row_has_one_seed():
  # Pooled s^2 = (2 + 0) / (3 + 1 - 2) = 1, so se = sqrt(1/3 + 1/1).
  assert lengths.se_of_difference([10.0, 11.0, 12.0], [20.0]) == pytest.approx(math.sqrt(4 / 3))
  with pytest.raises(ValueError, match="one seed a row"):
    lengths.se_of_difference([10.0], [11.0])


def _row(mult, conv1, conv2=None, conv3=None):
  conv2 = conv2 or [v + 5 for v in conv1]
  conv3 = conv3 or [v + 6 for v in conv1]
  return {"mult": mult, "steps": 100 * mult,
          "seeds": [{"conv1": a, "conv2": b, "conv3": c} for a, b, c in zip(conv1, conv2, conv3)]}


def test_compare_lengths_picks_the_shortest_that_no_longer_run_beats():
  # 1x -> 2x: +2 points (se 0.71): unsettled; 2x -> 4x: +0.2 (se 0.71): settled.
  rows = [_row(4, [12.2, 13.2]), _row(1, [10.0, 11.0]), _row(2, [12.0, 13.0])]  # any order
  c = lengths.compare_lengths(rows)
  assert c["chosen"] == 2 and c["settled"] and c["lengths"] == [1, 2, 4]
  assert [(p["from"], p["to"], p["settled"]) for p in c["pairs"]] == [(1, 2, False), (2, 4, True)]
  assert c["pairs"][0]["diff"]["conv1"] == pytest.approx(2.0)
  assert c["pairs"][0]["se"]["conv1"] == pytest.approx(math.sqrt(0.5 / 2 + 0.5 / 2))
  # A longer run that falls 2 points did not need the length: settled, the drop flagged.
  falling = lengths.compare_lengths([_row(1, [12.0, 13.0]), _row(2, [10.0, 11.0])])
  assert falling["chosen"] == 1 and falling["settled"]
  assert falling["pairs"][0]["drop"] == ["conv1", "conv2", "conv3"]


def test_compare_lengths_a_later_gain_unsettles_an_earlier_pair():
  # 1x -> 2x settled (+0.2), but 2x -> 4x gains 3 points: 1x is not the default, 4x is.
  rows = [_row(1, [10.0, 11.0]), _row(2, [10.2, 11.2]), _row(4, [13.2, 14.2])]
  c = lengths.compare_lengths(rows)
  assert [p["settled"] for p in c["pairs"]] == [True, False]
  assert c["chosen"] == 4 and not c["settled"]


def test_compare_lengths_needs_every_layer_settled():
  # conv1 and conv2 settle at 1x -> 2x, but conv3 still gains 3 points.
  rows = [_row(1, [10.0, 11.0], conv3=[20.0, 21.0]), _row(2, [10.2, 11.2], conv3=[23.0, 24.0])]
  c = lengths.compare_lengths(rows)
  assert not c["pairs"][0]["settled"] and not c["settled"] and c["chosen"] == 2
  bad = [_row(1, [10.0, 11.0]), _row(2, [10.0, 11.0])]
  del bad[1]["seeds"][0]["conv3"]
  with pytest.raises(ValueError, match="2x run"):
    lengths.compare_lengths(bad)


def test_compare_lengths_wants_two_lengths():
  with pytest.raises(ValueError, match="two or more"):
    lengths.compare_lengths([_row(1, [10.0, 11.0])])


def _grid_results(tmp_path):
  def row(name, steps, conv1s):
    return {"name": name, "steps": steps,
            "seeds": [{"results": {l: {"top1": v + d} for l, d in
                                   (("conv1", 0), ("conv2", 5), ("conv3", 6))}} for v in conv1s]}
  data = {"runs": [row("supervised_1x", 3000, [10.0, 11.0]), row("supervised_2x", 6000, [12.0, 13.0]),
                   row("supervised_4x", 12000, [12.1, 13.1]), row("random", 0, [5.0])]}
  path = tmp_path / "grid_results.json"
  path.write_text(json.dumps(data))
  return path


def test_lengths_cli_reads_a_lengths_grid(tmp_path, capsys):
  path = _grid_results(tmp_path)
  assert lengths.main([str(path), "--out", str(tmp_path / "out")]) == 0
  choice = json.loads((tmp_path / "out" / "lengths.json").read_text())
  assert list(choice) == ["supervised"]  # "random" is not a <family>_<k>x row
  assert choice["supervised"]["chosen"] == 2
  md = (tmp_path / "out" / "lengths.md").read_text()
  assert "### supervised: default 2x" in md and "| 4x - 2x (12000 - 6000 steps) | +0.10 ± 0.71" in md
  assert "lengths compared: 1x, 2x, 4x" in md


def test_lengths_cli_bad_input_is_one_line(tmp_path, capsys):
  assert lengths.main([str(tmp_path / "missing.json")]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "configs/lengths.py" in err
  (tmp_path / "g.json").write_text(json.dumps({"runs": [{"name": "random", "seeds": []}]}))
  assert lengths.main([str(tmp_path / "g.json")]) == 2
  assert "no rows named <family>_<k>x" in capsys.readouterr().err
  (tmp_path / "list.json").write_text("[1, 2]")
  assert lengths.main([str(tmp_path / "list.json")]) == 2
  assert capsys.readouterr().err.count("\n") == 1
  # One family that cannot be compared (a single seed a row) does not stop the others.
  data = json.loads(_grid_results(tmp_path).read_text())
  data["runs"] += [{"name": "rotnet_full_1x", "steps": 5, "seeds": [{"results": {"conv1": {"top1": 1.0}}}]},
                   {"name": "rotnet_full_2x", "steps": 10, "seeds": [{"results": {"conv1": {"top1": 2.0}}}]}]
  (tmp_path / "two.json").write_text(json.dumps(data))
  assert lengths.main([str(tmp_path / "two.json"), "--out", str(tmp_path / "two")]) == 1
  choice = json.loads((tmp_path / "two" / "lengths.json").read_text())
  assert choice["supervised"]["chosen"] == 2 and "one seed a row" in choice["rotnet_full"]["error"]


def test_lengths_config_scales_each_family():
  from pathlib import Path

  from mono_ssl.config_lib import load_config_file
  from mono_ssl.grid import run_config
  path = Path(__file__).resolve().parent.parent / "configs" / "lengths.py"
  g = load_config_file(path, "families=supervised:rotnet_single,supervised=100,rotnet_single=7,mults=4:1")
  names = [r["name"] for r in g.runs]
  assert names == ["supervised_1x", "supervised_4x", "rotnet_single_1x", "rotnet_single_4x"]
  assert g.probe == "tiny_imagenet_400" and g.scale == "calib" and g.seeds == 2
  cfg = run_config(g, g.runs[1])
  # The schedule is a fraction of the run, so it scales with the length.
  assert cfg.train.num_steps == 400 and cfg.method == "supervised"
  assert cfg.probe.dataset == cfg.data.full_dataset == "tiny_imagenet_400"
  assert run_config(g, g.runs[3]).train.num_steps == 28
  # Trunk seed k's head seeds (probe.head_seeds = 3) are probe seeds 3k..3k+2: no two trunks
  # share one; with one head seed a trunk's probe seed is k, as before head seeds.
  spec = {**g.runs[0], "overrides": {**g.runs[0]["overrides"], "probe.head_seeds": 3}}
  assert [run_config(g, spec, seed=k).probe.seed for k in (0, 1, 2)] == [0, 3, 6]
  assert run_config(g, g.runs[0], seed=2).probe.seed == 2
  for bad, msg in (("mults=1", "two or more"), ("mults=1:x", "whole numbers"),
                   ("families=bigan", "unknown bigan"), ("supervised=0", "supervised=0"),
                   ("seeds=1", "two seeds or more")):
    with pytest.raises(UserInputError, match=msg):
      load_config_file(path, bad)
