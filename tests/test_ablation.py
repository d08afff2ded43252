"""configs/ablation.py's report: the two tables against the full recipe, edge density, the image figure."""
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from mono_ssl import ablation, results_doc
from mono_ssl.errors import UserInputError
from mono_ssl.models.alexnet import LAYER_NAMES


def _row(name, label, top1, seeds=1, images=""):
  return {"name": name, "label": label, "n_seeds": seeds,
          "results": {l: {"top1": top1 + i, "top5": 0.0} for i, l in enumerate(LAYER_NAMES)},
          "se": {l: {"top1": 0.25, "top5": 0.0} for l in LAYER_NAMES},
          "config": {"data": {"images": images}}}


def _grid():
  rows = [_row("supervised", "supervised", 20.0, 3), _row("random", "random", 10.0, 3),
          _row("full_recipe", "full recipe", 14.0, 2), _row("no_aug", "no augmentation", 11.0, 2),
          _row("no_rrc", "no rrc", 12.5), _row("image_x", "image: x", 13.0, images="deca:x.jpg")]
  frac = {r["name"]: {l: (r["results"][l]["top1"] - 10.0 - i) / 10.0
                      for i, l in enumerate(LAYER_NAMES)}
          for r in rows if r["name"] not in ("supervised", "random")}
  return {"title": "t", "runs": rows,
          "fraction_of_supervision": {"supervised_row": "supervised", "random_row": "random",
                                      "rows": frac}}


def _line(md, label):
  return next(l for l in md.splitlines() if l.startswith(f"| {label} |"))


def test_tables_put_each_row_against_the_full_recipe():
  g = _grid()
  aug = ablation.augmentation_table(g)
  assert "image: x" not in aug  # the image rows have their own table
  no_aug = _line(aug, "no augmentation").split("|")
  # | label | seeds | conv1 | Δ | frac | ...: no_aug is 3.0 below the full recipe, frac 0.10
  assert no_aug[2].strip() == "2" and no_aug[3].strip() == "11.0 ± 0.2"
  assert no_aug[4].strip() == "-3.0" and no_aug[5].strip() == "0.10"
  assert _line(aug, "no rrc").split("|")[3:6] == [" 12.5 ", " -1.5 ", " 0.25 "]
  assert _line(aug, "full recipe").split("|")[4].strip() == "–"
  assert _line(aug, "random").split("|")[5].strip() == "–"  # no fraction for the baselines
  img = ablation.image_table(g, {"image_x": 0.123})
  assert [l.split("|")[1].strip() for l in img.splitlines()[2:]] == ["full recipe", "image: x"]
  x = _line(img, "image: x").split("|")
  assert x[3].strip() == "0.12" and x[5].strip() == "-1.0"
  assert _line(img, "full recipe").split("|")[3].strip() == "–"  # no density measured: a dash


def test_gap_to_random_init_carries_the_standard_error_of_the_difference():
  g = _grid()
  gap = ablation.random_gap_table(g)
  assert "| supervised |" not in gap and "| random |" not in gap
  no_aug = _line(gap, "no augmentation").split("|")
  # 11.0 - 10.0 with se 0.25 each: +1.0 ± 0.35, which is at least 2 of them
  assert no_aug[3].strip() == "+1.0 ± 0.4 (2σ)"
  full = _line(gap, "full recipe").split("|")
  assert full[3].strip() == "+4.0 ± 0.4 (2σ)"
  g["runs"][3]["results"]["conv1"]["top1"] = 10.5  # +0.5: under two standard errors
  assert _line(ablation.random_gap_table(g), "no augmentation").split("|")[3].strip() == "+0.5 ± 0.4"
  assert _line(gap, "no rrc").split("|")[3].strip() == "+2.5"  # one seed: no error to give
  g["runs"] = [r for r in g["runs"] if r["name"] != "random"]
  with pytest.raises(UserInputError, match="no random-init row.*full_recipe"):
    ablation.random_gap_table(g)


def test_without_the_full_recipe_row_the_error_names_the_rows():
  g = _grid()
  g["runs"] = [r for r in g["runs"] if r["name"] != "full_recipe"]
  with pytest.raises(UserInputError, match="no 'full_recipe' row.*no_aug"):
    ablation.augmentation_table(g)


def test_edge_density_orders_flat_stripes_and_noise():
  flat = np.full((300, 400, 3), 128, np.uint8)
  stripes = np.zeros((300, 400, 3), np.uint8)
  stripes[:, ::40] = 255  # a few hard edges
  noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
  d = [ablation.edge_density(x) for x in (flat, stripes, noise)]
  assert d[0] == 0.0 and 0.0 < d[1] < 0.2 and d[2] > 0.8


def test_cli_writes_densities_tables_and_figure_and_the_doc_block_renders_them(tmp_path):
  g = _grid()
  g["runs"][-1]["config"]["data"]["images"] = ""  # the bundled default: on every machine
  (tmp_path / "grid_results.json").write_text(json.dumps(g))
  (tmp_path / "image_x").mkdir()
  np.save(tmp_path / "image_x" / "conv1_filters.npy", np.random.default_rng(0).normal(size=(5, 5, 3, 8)))
  out = subprocess.run([sys.executable, "-m", "mono_ssl.ablation", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  dens = json.loads((tmp_path / "image_densities.json").read_text())
  assert set(dens) == {"full_recipe", "image_x"} and dens["full_recipe"] > 0.3  # the dense default
  md = (tmp_path / "ablation.md").read_text()
  assert f"{dens['image_x']:.2f}" in _line(md, "image: x")
  assert (tmp_path / "images_conv1.png").stat().st_size > 10_000
  doc = tmp_path / "doc.md"
  doc.write_text(f"<!-- results: ablation:{tmp_path / 'grid_results.json'} -->\nold\n<!-- end results -->\n")
  assert results_doc.stale_blocks(doc) == [f"ablation:{tmp_path / 'grid_results.json'}"]
  results_doc.update(doc)
  assert md.strip() in doc.read_text() and results_doc.stale_blocks(doc) == []
  missing = subprocess.run([sys.executable, "-m", "mono_ssl.ablation", str(tmp_path / "none")],
                           cwd=REPO, capture_output=True, text=True)
  assert missing.returncode == 2 and "Traceback" not in missing.stderr
  assert "--config.results_dir=" in missing.stderr


def test_the_figure_takes_the_first_seed_that_kept_its_conv1_filters(tmp_path):
  row = _row("full_recipe", "full recipe", 14.0, seeds=4)
  assert ablation.filters_run(tmp_path, row) is None  # restored runs: no filters anywhere
  for run in ("full_recipe_seed3", "full_recipe_seed2"):
    (tmp_path / run).mkdir()
    np.save(tmp_path / run / "conv1_filters.npy", np.zeros((5, 5, 3, 8)))
  assert ablation.filters_run(tmp_path, row) == "full_recipe_seed2"
  assert ablation.filters_run(tmp_path, _row("full_recipe", "full recipe", 14.0, seeds=2)) is None
