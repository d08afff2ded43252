"""benchmarks/calib_recipe.py: candidate parsing and the choice among candidates probed on every
trunk (no training here)."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from mono_ssl.errors import UserInputError

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(_BENCH))  # calib_recipe imports calib_candidates beside it
_SPEC = importlib.util.spec_from_file_location("calib_recipe", _BENCH / "calib_recipe.py")
cr = importlib.util.module_from_spec(_SPEC)
sys.modules["calib_recipe"] = cr  # its dataclass looks its module up there
_SPEC.loader.exec_module(cr)


def test_parse_candidate_and_its_one_line_errors():
  c = cr.parse_candidate("crops:0.5-1:0.03:10:2304")
  assert (c.views, c.crop, c.lr, c.epochs, c.dims) == ("crops", (0.5, 1.0), 0.03, 10, 2304)
  assert cr.parse_candidate(c.name) == c  # the name it is stored under parses back
  for bad, says in (("whole:1-1:0.1:10", "views:lo-hi:lr:epochs:dims"),
                    ("whole:1:0.1:10:2304", "views:lo-hi:lr:epochs:dims"),
                    ("crop:1-1:0.1:10:2304", "views must be whole or crops"),
                    ("whole:0-1:0.1:10:2304", "0 < lo <= hi <= 1"),
                    ("whole:1-1:0:10:2304", "lr > 0")):
    with pytest.raises(UserInputError, match=says) as e:
      cr.parse_candidate(bad)
    assert "\n" not in str(e.value) and repr(bad) in str(e.value)


def _result(trunk, cand, top1):
  return {"trunk": trunk, "candidate": cand, "top1": dict(zip(cr.LAYERS, top1)),
          "dims": dict.fromkeys(cr.LAYERS, 2304), "wall_s": 60.0}


def test_render_chooses_the_best_mean_among_candidates_probed_on_every_trunk(tmp_path):
  a, b, c = "whole:1-1:0.1:10:2304", "whole:1-1:0.03:10:2304", "crops:1-1:0.03:10:2304"
  results = {}
  for trunk, base in (("random", 10.0), ("supervised", 20.0), ("rotnet", 15.0)):
    results[f"{trunk}|{a}"] = _result(trunk, a, [base] * 5)
    results[f"{trunk}|{b}"] = _result(trunk, b, [base + 1] * 5)
  # c is best on the one trunk it has been probed on so far: not a choice yet.
  results[f"random|{c}"] = _result("random", c, [40.0] * 5)
  (tmp_path / "recipe.json").write_text(json.dumps(
      {"fit": 72000, "validation": 8000, "results": results,
       "trunks": {"supervised": "/w/sup", "rotnet": "/w/rot", "random": "init"}}))
  text = cr.render(tmp_path)
  assert f"**{b}** (16.00)" in text
  assert "(not every trunk)" in text
  assert "| 0.524, 0.524 |" in text  # random / supervised at conv1, conv2 for b: 11 / 21
  assert (tmp_path / "recipe.md").read_text() == text


def test_a_study_refuses_results_of_another_trunk():
  record = {"trunks": {"rotnet": "/w/rot"}, "results": {
      "rotnet|a": {"trunk": "rotnet", "candidate": "a"},  # made before sources were kept
      "supervised|a": {"trunk": "supervised", "candidate": "a", "source": "/w/sup @ step 12000"}}}
  cr.check_sources(record, {"rotnet": "/w/rot @ step 1250", "supervised": "/w/sup @ step 12000"}, "r.json")
  cr.check_sources(record, {"random": "init"}, "r.json")  # a pass without those trunks
  for sources, says in (({"rotnet": "/w/rot2 @ step 1250"}, "rotnet results read from /w/rot,"),
                        ({"supervised": "/w/sup @ step 6000"}, "read from /w/sup @ step 12000")):
    with pytest.raises(UserInputError, match=says) as e:
      cr.check_sources(record, sources, "r.json")
    assert "another --out" in str(e.value) and "\n" not in str(e.value)


def test_a_candidate_lr_must_be_finite():
  for bad in ("whole:1-1:nan:10:2304", "whole:1-1:inf:10:2304", "whole:1-1:0.1:0:2304"):
    with pytest.raises(UserInputError, match="lr > 0, epochs >= 1"):
      cr.parse_candidate(bad)
