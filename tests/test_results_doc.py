"""The README's result tables are generated from results/ (mono_ssl/results_doc.py) and still match."""
import json
import re

from conftest import REPO

from mono_ssl import results_doc


def test_readme_tables_match_their_json():
  text = (REPO / "README.md").read_text()
  blocks = list(results_doc.BLOCK.finditer(text))
  assert blocks, "the README has no generated results block"
  for m in blocks:
    if m["path"] == "receptive_fields":
      continue
    for path in m["path"].removeprefix("curve_cost:").split(","):
      assert (REPO / path).exists(), m["path"]
  assert results_doc.stale_blocks(REPO / "README.md") == []


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
