"""benchmarks/calib_candidates.py: the candidates' geometry, the control's fraction and the
refusal to compare rows read by different probe recipes (no training here)."""
import importlib.util
import json
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "calib_candidates", Path(__file__).resolve().parents[1] / "benchmarks" / "calib_candidates.py")
cc = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cc)


def test_geometry_gates_and_cost_order():
  g = {n: cc.geometry(n) for n in cc.CANDIDATES}
  assert all(g["c64"]["gates"].values()) and all(g["c64n"]["gates"].values())
  assert not g["mini"]["gates"]["conv1 filters/value <= 0.4"]
  assert [k for k, ok in g["mini"]["gates"].items() if not ok] == ["conv1 filters/value <= 0.4"]
  # c64n is c64 at narrower widths: same fields, fewer FLOPs; c64p's extra pool shrinks conv5's map.
  assert g["c64n"]["rf_pct"] == g["c64"]["rf_pct"]
  assert g["c64n"]["conv_mflop_fwd"] < g["c64p"]["conv_mflop_fwd"] < g["c64"]["conv_mflop_fwd"]
  assert g["c64p"]["final_map"] < g["c64"]["final_map"]


def test_fraction_of_gain():
  f = cc.fraction_of_gain({"conv1": 12.0, "conv2": 20.0}, {"conv1": 10.0, "conv2": 12.0},
                          {"conv1": 14.0, "conv2": 22.0})
  assert f == {"conv1": 0.5, "conv2": 0.8}
  # below random is a negative fraction, not clipped
  assert cc.fraction_of_gain({"conv1": 9.0}, {"conv1": 10.0}, {"conv1": 14.0}) == {"conv1": -0.25}


def test_refuses_another_recipe():
  row = {"fit_images": 72000, "probe_epochs": 10, "probe_views": "whole"}
  cc.check_same_recipe(row, "w.json", fit=72000, epochs=10, views="whole")  # same: passes
  for kw in ({"fit": 40000}, {"epochs": 4}, {"views": "crops"}):
    args = {"fit": 72000, "epochs": 10, "views": "whole", **kw}
    with pytest.raises(SystemExit, match="use the same recipe"):
      cc.check_same_recipe(row, "w.json", **args)


def test_table_lists_tagged_windows(tmp_path, capsys):
  row = {"tag": "long", "supervised_steps": 4000, "lr": 0.05, "lr_boundaries": [0.3],
         "probe_views": "whole", "fit_images": 72000, "probe_epochs": 10,
         "random_top1": {"conv1": 10.0}, "supervised_top1": {"conv1": 14.0},
         "random_over_supervised": {"conv1": 0.714}}
  (tmp_path / "window_c64_long.json").write_text(json.dumps(row))
  cc.table(type("A", (), {"out": str(tmp_path)})())
  text = (tmp_path / "candidates_table.md").read_text()
  assert "| c64_long | 4000, 0.05, [0.3] | whole, 72000, 10 | 10.0-14.0 (**0.71**) |" in text
  assert "| c64 | 64 |" in text and "all met" in text
