"""The README's result tables are generated from results/ (mono_ssl/results_doc.py) and still match."""
import json
import re

import pytest
from conftest import REPO

from mono_ssl import results_doc


@pytest.mark.parametrize("doc", ["README.md"] + sorted(
    str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")))
def test_readme_and_docs_tables_match_their_json(doc):
  path = REPO / doc
  blocks = list(results_doc.BLOCK.finditer(path.read_text()))
  if doc == "README.md":
    assert blocks, "the README has no generated results block"
  for m in blocks:
    if m["path"] == "receptive_fields":
      continue
    prefixes = "|".join([*results_doc.CURVE_BLOCKS, "ablation"])
    for source in re.sub(rf"^({prefixes}):", "", m["path"]).split(","):
      assert (path.parent / source).exists(), (doc, m["path"])  # relative to the document
  assert results_doc.stale_blocks(path) == []


def _grid(tmp_path):
  runs = [{"name": n, "label": n, "n_seeds": k, "results": {"conv1": {"top1": v, "top5": v + 20, "dims": 576}},
           "se": {"conv1": {"top1": 0.2, "top5": 0.1}}} for n, k, v in
          (("supervised", 3, 63.0), ("random", 3, 58.0), ("rotnet_single", 3, 60.5))]
  out = {"title": "t", "layers": ["conv1"], "runs": runs,
         "fraction_of_supervision": {"supervised_row": "supervised", "random_row": "random",
                                     "rows": {"rotnet_single": {"conv1": 0.5}}}}
  (tmp_path / "g.json").write_text(json.dumps(out))
  (tmp_path / "README.md").write_text("intro\n<!-- results: g.json -->\nold\n<!-- end results -->\nrest\n")


def test_a_tampered_readme_figure_is_found(tmp_path):
  _grid(tmp_path)
  readme = tmp_path / "README.md"
  assert results_doc.stale_blocks(readme) == ["g.json"]  # never generated
  assert results_doc.update(readme) == 1
  text = readme.read_text()
  assert results_doc.stale_blocks(readme) == [] and text.startswith("intro\n") and text.endswith("rest\n")
  assert "| rotnet_single | 3 | 60.5 ± 0.2 |" in text and "| rotnet_single | 0.50 |" in text
  assert "conv1 576" in text
  readme.write_text(re.sub(r"60\.5 ± 0\.2", "60.6 ± 0.2", text))
  assert results_doc.stale_blocks(readme) == ["g.json"]


def test_curve_flatness_measures_the_last_quarter(tmp_path):
  import pytest

  from mono_ssl.curves import flatness
  def pts(values, every=250):
    return [{"step": i * every, "conv1": {"top1": v}, "conv2": {"top1": v / 2},
             "conv3": {"top1": 1.0}} for i, v in enumerate(values)]
  # steps 0..2000: the last quarter is 1500..2000 (three points), range 0.6 at conv1.
  f = flatness(pts([10, 20, 30, 40, 45, 48, 48.4, 47.8, 48.2]))
  assert (f["from_step"], f["to_step"]) == (1500, 2000)
  assert f["move"]["conv1"] == pytest.approx(0.6) and f["move"]["conv2"] == pytest.approx(0.3)
  assert f["move"]["conv3"] == 0.0
  # Sparse points: at least the last two.
  assert flatness(pts([10, 30], every=1000))["move"]["conv1"] == 20
  with pytest.raises(ValueError, match="no tail"):
    flatness(pts([10]))
  for name, values in (("flat", [10, 40, 48, 48.2, 48.1]), ("rising", [10, 20, 30, 40, 50])):
    (tmp_path / name).mkdir()
    (tmp_path / name / "probe_curve.jsonl").write_text(
        "".join(json.dumps(p) + "\n" for p in pts(values)))
  (tmp_path / "random").mkdir()
  (tmp_path / "random" / "probe_curve.jsonl").write_text(json.dumps(pts([5])[0]) + "\n")
  table = results_doc.render_curve_flatness([tmp_path])
  rows = {line.split(" | ")[0][2:]: line for line in table.splitlines()[2:]}
  assert set(rows) == {"flat", "rising"}  # a one-point curve (nothing trained) is left out
  assert rows["flat"].endswith("| yes |") and rows["rising"].endswith("| no |")
  # The rule is read only where the lr was constant over the quarter: a step schedule's
  # last quarter is flat by construction (issue 39).
  def metrics(lrs):
    return "".join(json.dumps({"step": 250 * (i + 1), "lr": lr}) + "\n" for i, lr in enumerate(lrs))
  (tmp_path / "flat" / "metrics.jsonl").write_text(metrics([0.05, 0.05, 0.005, 0.0005]))
  (tmp_path / "rising" / "metrics.jsonl").write_text(metrics([0.05] * 4))
  rows = {line.split(" | ")[0][2:]: line
          for line in results_doc.render_curve_flatness([tmp_path]).splitlines()[2:]}
  assert rows["flat"].endswith("| n/a (lr schedule) |") and rows["rising"].endswith("| no |")
  # One lr over the quarter, but decayed before it (0.005 < the peak 0.05): n/a too; and a
  # torn last line (a run killed mid-write) is skipped, not a traceback.
  (tmp_path / "rising" / "metrics.jsonl").write_text(metrics([0.05, 0.05, 0.005, 0.005]) + '{"step": 12')
  rows = {line.split(" | ")[0][2:]: line
          for line in results_doc.render_curve_flatness([tmp_path]).splitlines()[2:]}
  assert rows["rising"].endswith("| n/a (lr schedule) |")


def test_lr_constant_reads_only_the_stretch_asked():
  from mono_ssl.curves import lr_constant
  rows = [{"step": 100, "lr": 0.05}, {"step": 200, "lr": 0.05}, {"step": 300, "lr": 0.005},
          {"step": 400, "accuracy": 0.5}]
  assert lr_constant(rows, 0, 200) is True
  assert lr_constant(rows, 150, 300) is False
  assert lr_constant(rows, 350, 500) is None  # nothing logged there


def test_curve_points_table_lists_each_trained_runs_curve(tmp_path):
  for name, points in (("bigan_single", [(0, 46.72, 44.0), (2500, 38.86, 36.6), (20000, 49.04, 47.0)]),
                       ("random", [(0, 46.7, 44.0)])):
    (tmp_path / name).mkdir()
    (tmp_path / name / "probe_curve.jsonl").write_text("".join(
        json.dumps({"step": s, "conv1": {"top1": a}, "conv2": {"top1": b}}) + "\n"
        for s, a, b in reversed(points)))  # any order on disk: the table is by step
  table = results_doc.render_curve_points([tmp_path])
  assert table.startswith("bigan_single, curve-probe top-1 (%):")
  assert "random" not in table  # one point: nothing trained
  assert table.splitlines()[2:] == ["| step | conv1 | conv2 |", "|---:|---:|---:|",
                                    "| 0 (init) | 46.7 | 44.0 |", "| 2,500 | 38.9 | 36.6 |",
                                    "| 20,000 | 49.0 | 47.0 |"]


def test_curve_gain_finds_the_first_step_both_layers_clear_their_init(tmp_path):
  from mono_ssl.curves import gain_over_init

  def pts(rows):  # (step, conv1, conv2), written out of order: the table is by step
    return [{"step": s, "conv1": {"top1": a}, "conv2": {"top1": b}} for s, a, b in reversed(rows)]
  # conv1 clears +1 at 5,000 but conv2 only at 10,000; conv1's best is +2.0, first reached at 7,500.
  curve = pts([(0, 40.0, 30.0), (2500, 35.0, 25.0), (5000, 41.5, 30.5), (7500, 42.0, 30.9),
               (10000, 42.0, 31.0), (12500, 39.0, 29.0)])
  g = gain_over_init(curve)
  assert g["init"] == {"conv1": 40.0, "conv2": 30.0} and g["last_step"] == 12500
  assert g["best"]["conv1"] == (2.0, 7500) and g["best"]["conv2"] == (1.0, 10000)
  assert g["first_step"] == 10000
  assert gain_over_init(curve, margin=1.5)["first_step"] is None  # conv2 never +1.5
  assert gain_over_init(curve, layers=("conv1",))["first_step"] == 5000
  with pytest.raises(ValueError, match="step-0 point"):
    gain_over_init(curve[:-1])  # reversed: the last entry is step 0
  for name, rows in (("bigan_single_seed1", [(0, 40.0, 30.0), (2500, 38.0, 29.6)]),
                     ("random", [(0, 40.0, 30.0)])):
    (tmp_path / name).mkdir()
    (tmp_path / name / "probe_curve.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pts(rows)))
  table = results_doc.render_curve_gain([tmp_path]).splitlines()
  assert len(table) == 3  # the header, its rule and one trained run (random has one point)
  assert table[2] == "| bigan_single_seed1 | 2,500 | 40.0 | -2.0 (2,500) | 30.0 | -0.4 (2,500) | never |"


def test_gan_game_means_each_stretch_of_a_bigan_runs_metrics(tmp_path):
  run = tmp_path / "bigan_single"
  run.mkdir()
  # Steps 50..5000 every 50 (a step counts in the stretch ending at or after it); D loss is
  # 0.5 up to step 2,500 and 0.7 after; a probe-only record and a torn line are skipped.
  recs = [{"step": s, "d_loss": 0.5 if s <= 2500 else 0.7, "g_loss": s / 1000,
           "d_acc_real": 0.6, "d_acc_fake": 0.4, "e_code_std": 0.58} for s in range(50, 5001, 50)]
  lines = [json.dumps(r) for r in recs] + [json.dumps({"step": 0, "probe": 1}), '{"step": 51']
  (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
  (tmp_path / "random").mkdir()  # a run without D's metrics gets no table
  (tmp_path / "random" / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss": 1.0}) + "\n")
  table = results_doc.render_gan_game([tmp_path]).strip().splitlines()
  assert table[0].startswith("bigan_single,") and "random" not in "".join(table)
  assert table[2] == "| steps | 0-2.5k | 2.5k-5k |"
  assert table[4] == "| D loss | 0.500 | 0.700 |"
  # g_loss means: steps 50..2500 -> 1.275, 2550..5000 -> 3.775
  assert table[5] == "| G and E loss | 1.275 | 3.775 |"
  assert table[6:] == ["| D accuracy, real pairs | 0.60 | 0.60 |",
                       "| D accuracy, generated pairs | 0.40 | 0.40 |",
                       "| E's code std (prior 0.577) | 0.58 | 0.58 |"]
  assert results_doc._rendered(tmp_path, "gan_game:bigan_single") == results_doc.render_gan_game([run])
  # A run that stops inside a stretch is headed by its last step; a stretch must be positive.
  (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs[:80]))  # to 4,000
  assert "| steps | 0-2.5k | 2.5k-4k |" in results_doc.render_gan_game([run])
  with pytest.raises(ValueError, match="stretch=0"):
    results_doc.render_gan_game([run], stretch=0)
