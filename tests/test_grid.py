"""The grid runner: tiny grid -> four outputs, a second invocation reruns nothing; grid and ablation configs."""
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, load_config_file

from mono_ssl import grid, images, paths
from mono_ssl.checkpoint import Checkpointer
from mono_ssl.errors import UserInputError

# A few steps of a quarter-width AlexNet, probed on a slice of the bundled CIFAR-10 subset.
TINY = {"data.images": "default", "data.max_side": 512, "model.width_mult": 0.25,
        "model.hidden": (32, 32), "train.batch_size": 8, "train.num_steps": 2, "train.log_every": 2,
        "train.ckpt_every": 2, "probe.limit_per_class": 10, "probe.epochs": 1,
        "probe.batch_size": 20, "probe.eval_batch_size": 100, "probe.target_dims": 144,
        "probe.curve_every": 0}  # curves have their own tests (tests/test_curves.py)
# Paper scale (the authors' AlexNet at a quarter width) on 64-px patches instead of 224.
# Probed on 32-px images, its conv3-conv5 maps are 1x1 (96 / 96 / 64 values, never one size):
# conv1 and conv2 only, 576 values each (24 channels x 4x6, 64 x 3x3).
TINY_PAPER = {**TINY, "aug.out_size": 64, "aug.patch_size": 72, "model.dropout": 0.0,
              "probe.target_dims": 576, "probe.layers": ("conv1", "conv2")}
TINY_DC = {"deepcluster.num_clusters": 4, "data.dataset_size": 32, "deepcluster.pca_dim": 8,
           "deepcluster.feature_batch": 16, "deepcluster.kmeans_iters": 5}
# ScatNet keeps its config's probe size (its 51 / 243 channels: 510 values at both layers).
PROBE_ONLY = {k: v for k, v in TINY.items() if k.startswith("probe.") and k != "probe.target_dims"}
OUTPUTS = ("grid_results.json", "grid_results.md", "grid_layers.png", "conv1_filters.png")


def tiny_paper_grid():
  """configs/grid.py at scale=paper, three of its runs (two methods, one baseline), a few steps."""
  config = load_config_file("grid", "scale=paper,probe=bundled_cifar10")
  # ScatNet at J=2 (the paper scale's J=3 costs twice as much here; configs/scatnet.py is checked below).
  tiny = {"rotnet_single": TINY_PAPER, "deepcluster_single": {**TINY_PAPER, **TINY_DC},
          "scatnet": {**PROBE_ONLY, "scatnet.J": 2, "probe.target_dims": 510}}
  config.runs = [dict(r, overrides={**r["overrides"], **tiny[r["name"]]}) if r["name"] in tiny else r
                 for r in config.runs]
  config.only = "rotnet_single,deepcluster_single,scatnet"
  return config


def tiny_grid(**settings):
  runs = [grid.run_spec("rotnet_single", "rotnet", "regime=single", "rotnet (single)", TINY),
          grid.run_spec("scatnet", "scatnet", "", "scatnet", PROBE_ONLY)]
  config = grid.grid_config(runs, "cpu", "bundled_cifar10", title="tiny grid")
  config.update(settings)
  return config


def test_tiny_paper_scale_grid_writes_every_output_and_a_second_run_reruns_nothing(tmp_path):
  logs = []
  out = grid.run_grid(tiny_paper_grid(), tmp_path, log=logs.append)
  for name in OUTPUTS:
    assert (tmp_path / name).stat().st_size > 0, name
  assert sum(": running in " in l for l in logs) == 3
  saved = json.loads((tmp_path / "grid_results.json").read_text())
  assert saved == json.loads(json.dumps(out))
  runs = {r["name"]: r for r in saved["runs"]}
  assert list(runs) == ["scatnet", "rotnet_single", "deepcluster_single"]  # the grid's order
  for name in ("rotnet_single", "deepcluster_single"):
    r = runs[name]
    assert set(r["results"]) == {"conv1", "conv2"}
    assert all(v["dims"] == 576 for v in r["results"].values())
    assert all(0 <= v["top1"] <= v["top5"] <= 100 for v in r["results"].values())
    assert r["steps"] == 2 and r["images_per_s"] > 0 and r["wall_s"] > 0
    c = r["config"]
    assert c["method"] == name.split("_")[0] and c["scale"] == "paper" and c["train"]["num_steps"] == 2
    assert c["probe"]["random_baseline"] is False  # the random row is a run of its own
  assert set(runs["scatnet"]["results"]) == {"conv1", "conv2"}
  assert load_config_file("scatnet", "scale=paper").scatnet.J == 3
  md = (tmp_path / "grid_results.md").read_text()
  assert "| rotnet (single) |" in md and "| scatnet |" in md and "**" in md
  scat_row = next(l for l in md.splitlines() if l.startswith("| scatnet |"))
  assert scat_row.count("–") == 3  # no conv3..conv5
  # conv1 read back from the checkpoints: the authors' 11x11 filters, at a quarter of 96.
  assert np.load(tmp_path / "rotnet_single" / "conv1_filters.npy").shape == (11, 11, 3, 24)
  assert np.load(tmp_path / "scatnet" / "conv1_filters.npy").shape == (17, 17, 1, 16)  # J=2 x L=8 wavelets
  # Second invocation: every run is finished, nothing is trained or probed again.
  mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/probe_*.json")}
  logs2 = []
  again = grid.run_grid(tiny_paper_grid(), tmp_path, log=logs2.append)
  assert not any(": running in " in l or l.startswith("step ") or "probing" in l for l in logs2)
  assert sum("finished earlier" in l for l in logs2) == 3
  assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
  assert [r["results"] for r in again["runs"]] == [r["results"] for r in saved["runs"]]
  # On a new machine: only the runs' small files (what results/ keeps) -> nothing is retrained;
  # a run without its conv1_filters.npy is left out of the filter figure, not rebuilt.
  restored = tmp_path.parent / (tmp_path.name + "_restored")
  for sub in tmp_path.iterdir():
    if sub.is_dir() and (sub / grid.FINISHED).exists():
      (restored / sub.name).mkdir(parents=True)
      for name in grid.RUN_OUTPUTS:
        if (sub / name).exists():
          shutil.copy2(sub / name, restored / sub.name / name)
  assert (restored / "scatnet" / "conv1_filters.npy").exists()  # exported with the small files
  (restored / "rotnet_single" / "conv1_filters.npy").unlink()
  logs3 = []
  back = grid.run_grid(tiny_paper_grid(), restored, log=logs3.append)
  assert not any(": running in " in l or l.startswith("step ") for l in logs3)
  assert not (restored / "rotnet_single" / "checkpoints").exists()
  assert [r["results"] for r in back["runs"]] == [r["results"] for r in saved["runs"]]
  assert [r["wall_s"] for r in back["runs"]] == [r["wall_s"] for r in saved["runs"]]
  assert (restored / "conv1_filters.png").stat().st_size > 0
  # A finished run whose training config has changed since is refused, not silently reported.
  changed = tiny_paper_grid()
  changed.runs[3]["overrides"]["train.lr"] = 0.5
  refused_logs = []
  with pytest.raises(UserInputError, match="rotnet_single holds another experiment.*train.lr"):
    grid.run_grid(changed, tmp_path, log=refused_logs.append)
  assert not any(": running in " in l for l in refused_logs)  # refused before any run
  # A new probe protocol alone: that run is probed again, its pretraining reused and counted.
  reprobe = tiny_paper_grid()
  reprobe.runs[3]["overrides"]["probe.epochs"] = 2
  ckpts = {p: p.stat().st_mtime_ns for p in (tmp_path / "rotnet_single" / "checkpoints").rglob("*")}
  logs3 = []
  third = grid.run_grid(reprobe, tmp_path, log=logs3.append)
  assert sum("probed again" in l for l in logs3) == 1 and not any(l.startswith("step ") for l in logs3)
  assert {p: p.stat().st_mtime_ns for p in ckpts} == ckpts  # pretraining untouched
  old_run = runs["rotnet_single"]
  new_run = next(r for r in third["runs"] if r["name"] == "rotnet_single")
  assert new_run["config"]["probe"]["epochs"] == 2 and old_run["config"]["probe"]["epochs"] == 1
  assert new_run["steps"] == 2 and new_run["images_per_s"] == old_run["images_per_s"]
  kept = json.loads((tmp_path / "rotnet_single" / "pretrain_info.json").read_text())
  assert 0 < kept["grid_wall_s_without_probes"] < old_run["wall_s"]
  assert new_run["wall_s"] > kept["grid_wall_s_without_probes"]  # old pretraining + new probe
  archived = list((tmp_path / "rotnet_single").glob("probes_before_*/probe_results.json"))
  assert len(archived) == 1
  assert json.loads(archived[0].read_text())["trained"] == old_run["results"]  # nothing lost
  assert [r["results"] for r in third["runs"] if r["name"] != "rotnet_single"] == \
      [r["results"] for r in saved["runs"] if r["name"] != "rotnet_single"]


def test_only_restricts_the_runs_and_unknown_names_are_refused(tmp_path):
  with pytest.raises(UserInputError, match="unknown run name.*nope"):
    grid.run_grid(tiny_grid(only="scatnet,nope"), tmp_path, log=lambda s: None)
  assert not any(tmp_path.iterdir())  # refused before anything ran


def test_only_names_one_seed_of_a_row_by_its_seed_run():
  # seeds=3: rotnet_single_seed1 picks that seed alone, _seed0 seed 0 alone, the row name all three.
  def picked(only):
    g = tiny_grid(seeds=3, only=only)
    return {s["name"]: [n for _, n in grid.selected_seed_runs(g, s)] for s in grid.selected_runs(g)}
  assert picked("rotnet_single_seed1") == {"rotnet_single": ["rotnet_single_seed1"]}
  assert picked("rotnet_single_seed0,rotnet_single_seed2,scatnet") == {
      "rotnet_single": ["rotnet_single", "rotnet_single_seed2"],
      "scatnet": ["scatnet", "scatnet_seed1", "scatnet_seed2"]}
  assert picked("rotnet_single,rotnet_single_seed1")["rotnet_single"] == [
      "rotnet_single", "rotnet_single_seed1", "rotnet_single_seed2"]
  assert picked("") == picked("rotnet_single,scatnet")
  with pytest.raises(UserInputError, match="unknown run name.*rotnet_single_seed3.*<row>_seed<k>"):
    grid.selected_runs(tiny_grid(seeds=3, only="rotnet_single_seed3"))


@pytest.mark.parametrize("settings,match", [
    ({"probe": "cifar11"}, "probe='cifar11' is not one of"),
    ({"configs_dir": "/nonexistent"}, "no config file"),
])
def test_bad_grid_settings_fail_before_any_run(tmp_path, settings, match):
  with pytest.raises(UserInputError, match=match):
    grid.run_grid(tiny_grid(**settings), tmp_path, log=lambda s: None)


def test_bad_override_and_missing_data_fail_with_one_line(tmp_path):
  runs = [grid.run_spec("a", "rotnet", "regime=single", overrides={"train.batchsize": 3})]
  with pytest.raises(UserInputError, match="run 'a': cannot set train.batchsize=3"):
    grid.run_grid(grid.grid_config(runs), tmp_path, log=lambda s: None)
  config = grid.grid_config([grid.run_spec("a", "rotnet", "regime=single", overrides=TINY)],
                            probe="tiny_imagenet")
  config.data_dir = str(tmp_path / "no_data")
  with pytest.raises(UserInputError, match="not found: looked for .*no_data"):
    grid.run_grid(config, tmp_path / "w", log=lambda s: None)
  config = grid.grid_config([grid.run_spec("a", "rotnet", "regime=deca",
                                           overrides={"data.images": str(tmp_path / "none.jpg")})])
  with pytest.raises(UserInputError, match="none.jpg"):
    grid.run_grid(config, tmp_path / "w2", log=lambda s: None)
  with pytest.raises(UserInputError, match="repeated: a"):
    grid.grid_config(runs + runs)


@pytest.mark.parametrize("probe,side", [("cifar10", 32), ("tiny_imagenet", 64)])
def test_grid_config_has_every_method_and_regime_and_the_baselines(probe, side):
  config = load_config_file("grid", f"scale=cpu,probe={probe}")
  names = [r["name"] for r in config.runs]
  assert names[:3] == ["supervised", "random", "scatnet"]
  assert sorted(names[3:]) == sorted(f"{m}_{r}" for m in ("rotnet", "deepcluster", "bigan")
                                     for r in ("single", "deca", "full"))
  for spec in config.runs:
    c = grid.run_config(config, spec)
    assert c.probe.dataset == c.data.full_dataset == probe
    assert c.aug.out_size == side and c.scale == "cpu" and c.probe.image_size == c.data.image_size == 0
    if spec["name"] == "random":
      assert c.train.num_steps == 0 and c.method == "rotnet"
    elif c.method != "scatnet":
      assert c.train.num_steps > 0
  by_name = {r["name"]: grid.run_config(config, r) for r in config.runs}
  assert by_name["rotnet_deca"].regime == "deca" and by_name["bigan_full"].method == "bigan"
  # Tiny-ImageNet's 64 px steps cost ~4x: half the step counts keep its grid in budget.
  scale = 0.5 if probe == "tiny_imagenet" else 1.0
  assert by_name["rotnet_single"].train.num_steps == round(2500 * scale)
  assert by_name["deepcluster_full"].train.num_steps == round(4000 * scale)
  # BiGAN keeps its config's length on both probe sets: a cut run would end in its dip.
  bigan_default = load_config_file("bigan", "regime=single,scale=cpu")
  assert by_name["bigan_single"].train.num_steps == bigan_default.train.num_steps == 30_000
  assert by_name["bigan_full"].bigan.disc_arch == "donahue"
  assert by_name["rotnet_single"].aug.patch_size == side * 5 // 4  # 40 px generator patch per 32


def _flat(d, prefix=""):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list) else v
  return out


@pytest.mark.parametrize("arg", ["", "scale=cpu,probe=cifar10"])
def test_ablation_rows_differ_from_the_full_recipe_in_their_own_switches_only(arg):
  config = load_config_file("ablation", arg)
  cfgs = {r["name"]: _flat(grid.run_config(config, r).to_dict()) for r in config.runs}
  seeds = {r["name"]: r["seeds"] for r in config.runs}
  base = load_config_file("grid", arg or "scale=mini")
  base_cfgs = {r["name"]: _flat(grid.run_config(base, r).to_dict()) for r in base.runs}
  # The baselines and the full recipe are configs/grid.py's rows: their finished runs are reused.
  assert cfgs["supervised"] == base_cfgs["supervised"] and cfgs["random"] == base_cfgs["random"]
  full = cfgs.pop("full_recipe")
  assert full == base_cfgs["rotnet_single"] and full["aug.rrc_scale"] == (0.002, 1.0)
  assert seeds["full_recipe"] == 3 and seeds["no_aug"] == seeds["no_jitter"] == 2 and seeds["random"] == seeds["supervised"] == 3
  expected = {
      "no_aug": {"aug.initial_crop_fixed": True, "aug.rrc": False, "aug.affine": False,
                 "aug.jitter_prob": 0.0},
      "no_rrc": {"aug.rrc": False}, "no_affine": {"aug.affine": False},
      "no_jitter": {"aug.jitter_prob": 0.0}, "no_initial_crop": {"aug.initial_crop": False},
      "rrc_min_0.2": {"aug.rrc_scale": (0.2, 1.0)}, "rrc_min_0.02": {"aug.rrc_scale": (0.02, 1.0)},
  }
  for name, want in expected.items():
    got = {k: v for k, v in cfgs[name].items() if v != full[k]}
    assert got == want, name
  images_rows = [n for n in cfgs if n.startswith("image_")]
  assert len(images_rows) == 3
  for name in images_rows:  # another photograph at the default image's size, nothing else
    got = {k: v for k, v in cfgs[name].items() if v != full[k]}
    assert set(got) == {"data.images", "data.max_side"} and got["data.max_side"] == 1024, name
    assert got["data.images"].startswith("deca:")
  assert len({cfgs[n]["data.images"] for n in images_rows}) == 3
  if paths.shared_dir() is not None:  # every named photograph is one of the ten
    for name in images_rows:
      assert len(images.resolve_image_paths(cfgs[name]["data.images"])) == 1


@flax.struct.dataclass
class _State:
  step: jax.Array
  params: dict


@pytest.mark.parametrize("nested", [(), ("encoder",)])
def test_conv1_is_read_from_the_latest_checkpoint(tmp_path, nested):
  ckpt = Checkpointer(tmp_path / "checkpoints")
  kernels = [np.random.default_rng(s).normal(size=(5, 5, 3, 4)).astype(np.float32) for s in (1, 2)]
  for step, kernel in zip((3, 6), kernels):
    params = {"conv1": {"kernel": jnp.asarray(kernel)}, "conv2": {"kernel": jnp.zeros((3, 3, 4, 4))}}
    for key in nested:  # BiGAN keeps the probed encoder under params["encoder"]
      params = {key: params, "generator": {"w": jnp.ones(2)}}
    ckpt.save(_State(step=jnp.int32(step), params=params))
  ckpt.close()
  np.testing.assert_array_equal(grid._read_conv1(tmp_path / "checkpoints"), kernels[1])


def test_cli_refuses_a_bad_probe_in_one_line(tmp_path):
  bad = subprocess.run([sys.executable, "-m", "mono_ssl.grid",
                        "--config=configs/grid.py:scale=cpu,probe=cifar11", f"--workdir={tmp_path}"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2 and "probe='cifar11' is not one of" in bad.stderr
  assert "Traceback" not in bad.stderr and not any(tmp_path.iterdir())


def test_seeds_are_averaged_with_standard_errors_and_fractions_and_results_exported(tmp_path):
  """Two seeds of a row: own workdirs and seeds, mean +- s.e. of their probes; the fraction of
  supervision against the reference rows; the small outputs copied to results_dir."""
  runs = [grid.run_spec("random", "rotnet", "regime=single", "random",
                        {**TINY, "train.num_steps": 0}, seeds=2),
          grid.run_spec("supervised", "rotnet", "regime=single", "pseudo-supervised",
                        {**TINY, "train.num_steps": 4}),
          grid.run_spec("rotnet_single", "rotnet", "regime=single", "rotnet (single)",
                        {**TINY, "probe.curve_every": 1, "probe.curve_epochs": 1,
                         "probe.curve_train_size": 40, "probe.curve_val_size": 20})]
  config = grid.grid_config(runs, "cpu", "bundled_cifar10", title="seeds")
  config.results_dir = str(tmp_path / "results" / "seeds")
  out = grid.run_grid(config, tmp_path / "runs", log=lambda s: None)
  rows = {r["name"]: r for r in out["runs"]}
  rnd = rows["random"]
  assert rnd["n_seeds"] == 2 and [s["name"] for s in rnd["seeds"]] == ["random", "random_seed1"]
  cfg1 = json.loads((tmp_path / "runs" / "random_seed1" / "config.json").read_text())
  assert cfg1["seed"] == 1 and cfg1["probe"]["seed"] == 1
  per_seed = np.array([[s["results"][l]["top1"] for l in rnd["results"]] for s in rnd["seeds"]])
  assert per_seed[0].tolist() != per_seed[1].tolist()  # different inits, different probes
  np.testing.assert_allclose([v["top1"] for v in rnd["results"].values()], per_seed.mean(0))
  np.testing.assert_allclose([v["top1"] for v in rnd["se"].values()],
                             per_seed.std(0, ddof=1) / np.sqrt(2))
  frac = out["fraction_of_supervision"]["rows"]
  assert set(frac) == {"rotnet_single"}
  sup, r = rows["supervised"]["results"], rnd["results"]
  for layer, f in frac["rotnet_single"].items():
    x = rows["rotnet_single"]["results"][layer]["top1"]
    assert abs(f - (x - r[layer]["top1"]) / (sup[layer]["top1"] - r[layer]["top1"])) < 1e-12
  md = (tmp_path / "runs" / "grid_results.md").read_text()
  assert "| random | 2 |" in md and " ± " in md and "Fraction of supervision" in md
  dest = tmp_path / "results" / "seeds"
  for name in ("grid_results.json", "grid_results.md", "grid_fraction.png", "grid_curves.png",
               "grid_gain.png"):
    assert (dest / name).stat().st_size > 0, name
  for run in ("random", "random_seed1", "supervised", "rotnet_single"):
    assert (dest / run / "probe_results.json").exists(), run
  assert len((dest / "rotnet_single" / "probe_curve.jsonl").read_text().splitlines()) == 3  # 0, 1, 2
  assert not list(dest.rglob("checkpoints"))  # never checkpoints
  from mono_ssl import results_doc
  assert "| pseudo-supervised | 1 |" in results_doc.render(json.loads((dest / "grid_results.json")
                                                                      .read_text()))


def test_seeds_below_one_are_refused(tmp_path):
  with pytest.raises(UserInputError, match="seeds=0 for row 'rotnet_single'"):
    grid.run_grid(tiny_grid(seeds=0), tmp_path, log=lambda s: None)


def test_main_refuses_a_grid_config_in_one_line(tmp_path):
  bad = subprocess.run([sys.executable, "-m", "mono_ssl.main", "--config=configs/grid.py",
                        f"--workdir={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2 and "is a grid config" in bad.stderr and "mono_ssl.grid" in bad.stderr
  assert "Traceback" not in bad.stderr and not any(tmp_path.iterdir())


TINY_GRID_FILE = '''"""A one-row grid (the random-init row at a few probe steps) for the install test."""
from mono_ssl import grid, images, paths

TINY = {tiny!r}


def get_config(arg=None):
  runs = [grid.run_spec("random", "rotnet", "regime=single", "random",
                        {{**TINY, "train.num_steps": 0}})]
  return grid.grid_config(runs, "cpu", "bundled_cifar10", title="install test")
'''


@pytest.mark.slow
def test_grid_runs_from_a_non_editable_install(tmp_path):
  """`pip install .` (no checkout beside the package): the grid finds its runs' config files
  beside the grid config it is given, not in a configs/ next to the installed package."""
  site, src = tmp_path / "site", tmp_path / "src"
  # From a copy of what a wheel is built from: pip builds in the source tree (build/).
  shutil.copytree(REPO / "mono_ssl", src / "mono_ssl", ignore=shutil.ignore_patterns("__pycache__"))
  shutil.copy2(REPO / "pyproject.toml", src / "pyproject.toml")
  # pyproject names README.md (the mutation check's copies of the repository lack it).
  readme = REPO / "README.md"
  (src / "README.md").write_text(readme.read_text() if readme.exists() else "mono_ssl\n")
  # Build isolation fetches setuptools from the package index, as any `pip install .` does.
  r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                      "--target", str(site), str(src)],
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  confs = tmp_path / "my_configs"
  shutil.copytree(REPO / "configs", confs)
  (confs / "tiny_grid.py").write_text(TINY_GRID_FILE.format(tiny=TINY))
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
  env["PYTHONPATH"] = str(site)
  where = subprocess.run([sys.executable, "-c", "import mono_ssl; print(mono_ssl.__file__)"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
  assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr  # the installed copy
  assert not (site / "configs").exists()
  run = subprocess.run([sys.executable, "-m", "mono_ssl.grid", f"--config={confs / 'tiny_grid.py'}",
                        "--workdir=grid_out"], cwd=elsewhere, env=env, capture_output=True,
                       text=True, timeout=900)
  assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
  saved = json.loads((elsewhere / "grid_out" / "grid_results.json").read_text())
  assert [r["name"] for r in saved["runs"]] == ["random"] and saved["runs"][0]["results"]["conv1"]["top1"] > 0


def _synthetic_grid_rows(seed: int = 0):
  """The paper grid's 12 rows as `aggregate_row` builds them (made-up accuracies, 2 seeds)."""
  rng = np.random.default_rng(seed)
  specs = [("supervised", "supervised", "full"), ("random", "rotnet", "single"),
           ("scatnet", "scatnet", "")] + [(f"{m}_{r}", m, r) for m in ("rotnet", "deepcluster", "bigan")
                                          for r in ("single", "deca", "full")]
  rows = []
  for name, method, regime in specs:
    layers = LAYERS[:2] if method == "scatnet" else LAYERS
    seeds = [{"name": name, "seed": s, "workdir": f"w/{name}", "steps": 10, "wall_s": 60.0,
              "images_per_s": 100.0, "curve": [], "conv1": None,
              "config": {"method": method, "regime": regime},
              "results": {l: {"top1": float(rng.uniform(10, 40)), "top5": 50.0} for l in layers}}
             for s in range(2)]
    label = name.replace("_", " (") + ")" if "_" in name else name
    rows.append(grid.aggregate_row({"name": name, "label": label}, seeds))
  return rows


LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


def test_grid_layers_figure_has_one_panel_per_method_and_every_baseline_in_each(tmp_path):
  from matplotlib.colors import to_hex

  from mono_ssl import report
  config = grid.grid_config([], "cpu", "cifar10", title="synthetic")
  out = grid.write_grid_results(tmp_path, config, _synthetic_grid_rows(), [])
  baseline = {r["name"]: r["baseline"] for r in out["runs"]}
  assert baseline["random"] == "random" and baseline["supervised"] == "supervised"
  assert baseline["scatnet"] == "scatnet" and baseline["bigan_deca"] == ""
  saved = json.loads((tmp_path / "grid_results.json").read_text())
  assert [r["baseline"] for r in saved["runs"]] == [r["baseline"] for r in out["runs"]]
  assert (tmp_path / "grid_layers.png").stat().st_size > 0
  fig = report.layers_figure(out["runs"], LAYERS, "synthetic")
  axes = fig.axes
  assert [ax.get_title() for ax in axes] == ["rotnet", "deepcluster", "bigan"]
  per_panel = []
  for ax in axes:
    lines = [l for l in ax.get_lines() if l.get_marker() == "o"]  # the data lines, not error caps
    assert len(lines) == 6  # three regimes + three baselines
    styles = {to_hex(l.get_color()): l.get_linestyle() for l in lines}
    assert len(styles) == 6  # no two rows of a panel share a colour
    assert sorted(s for s in styles.values() if s != "-") == ["--", "--", ":"]  # baselines dashed
    per_panel.append(styles)
  assert per_panel[0] == per_panel[1] == per_panel[2]  # a regime is one colour in every panel
  assert fig.legends and not any(ax.get_legend() for ax in axes)  # one legend, outside the panels


def test_export_keeps_bigans_sample_grids_its_last_reconstruction_and_no_checkpoints(tmp_path):
  run, dest = tmp_path / "work" / "bigan_single", tmp_path / "results"
  (run / "checkpoints" / "20").mkdir(parents=True)
  for name in ("probe_results.json", "gan_curves.png", "samples_2500.png", "samples_20000.png",
               "recon_2500.png", "recon_5000.png", "recon_20000.png"):
    (run / name).write_text(name)
  # Temp copies of an export killed mid-copy (its process gone) are removed; a live one's kept.
  dead = subprocess.Popen(["true"])
  dead.wait()
  (dest / "bigan_single").mkdir(parents=True)
  stale = [dest / f".grid_results.json.{dead.pid}{grid.EXPORT_TMP}",
           dest / "bigan_single" / f".metrics.jsonl.{dead.pid}{grid.EXPORT_TMP}"]
  for path in stale:
    path.write_text("half")
  (dest / f".other.{dead.pid}{grid.EXPORT_TMP}").mkdir()
  live = dest / f".x.{os.getpid()}{grid.EXPORT_TMP}"
  live.write_text("being written")
  grid.export_results(tmp_path / "work", dest,
                      {"runs": [{"seeds": [{"workdir": str(run), "name": "bigan_single"}]}]},
                      log=lambda s: None)
  kept = sorted(p.name for p in (dest / "bigan_single").iterdir())
  assert kept == ["gan_curves.png", "probe_results.json", "recon_20000.png", "samples_20000.png",
                  "samples_2500.png"]  # the latest reconstruction by step, not by name
  assert sorted(p.name for p in dest.iterdir()) == [live.name, "bigan_single"]


# The killed grid's child: a quick run (the random init), then one that would take hours but
# exports its step-0 learning-curve point at once.
KILLED_GRID = """
import sys
from pathlib import Path
import jax
jax.config.update("jax_num_cpu_devices", 4)  # as the tests: their compilation cache fits
from mono_ssl import grid
TINY = {tiny!r}
runs = [grid.run_spec("random", "rotnet", "regime=single", "random", {{**TINY, "train.num_steps": 0}}),
        grid.run_spec("slow", "rotnet", "regime=single", "slow",
                      {{**TINY, "train.num_steps": 10**6, "train.log_every": 10**6,
                        "train.ckpt_every": 10**6, "probe.curve_every": 10**6,
                        "probe.curve_epochs": 1, "probe.curve_train_size": 40,
                        "probe.curve_val_size": 20}})]
config = grid.grid_config(runs, "cpu", "bundled_cifar10", title="killed")
config.results_dir = {dest!r}
grid.run_grid(config, Path({workdir!r}), log=lambda s: print(s, flush=True))
"""


def test_a_killed_grid_leaves_its_finished_runs_and_tables_in_results_dir_whole(tmp_path):
  """SIGKILL mid-grid: the finished run and the tables so far are in results_dir (atomically:
  no temp copy, every file whole), the running run's curve so far too; the finished run copied
  into a fresh workdir is reused, not retrained."""
  from PIL import Image

  from mono_ssl import curves, results_doc
  dest, work = tmp_path / "results", tmp_path / "runs"
  code = KILLED_GRID.format(tiny=TINY, dest=str(dest), workdir=str(work))
  child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True,
                           env=dict(os.environ, PYTHONPATH=str(REPO)))
  lines = queue.Queue()
  threading.Thread(target=lambda: [lines.put(l) for l in child.stdout], daemon=True).start()
  wanted = [dest / "random" / "probe_results.json", dest / "grid_results.json",
            dest / "slow" / "probe_curve.jsonl"]
  log, deadline, curve_at = [], time.time() + 300, None
  try:
    # Until everything is exported, or 20 s after the slow run logged its step-0 point (whose
    # export follows at once): a grid that exports only at its end fails here, not at the deadline.
    while not all(p.exists() for p in wanted) and time.time() < deadline and child.poll() is None:
      if curve_at and time.time() > curve_at + 20:
        break
      try:
        log.append(lines.get(timeout=0.2))
      except queue.Empty:
        continue
      if log[-1].startswith("learning curve at step 0"):
        curve_at = time.time()
  finally:
    try:
      os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:  # it ended by itself (the asserts below say how)
      pass
    child.wait()
  tail = "".join(log[-30:])
  assert child.returncode == -signal.SIGKILL, tail  # killed mid-grid, not finished or crashed
  assert all(p.exists() for p in wanted), tail
  assert not (work / "slow" / grid.FINISHED).exists()
  # Nothing half-written: no temp copy left, every file readable whole.
  assert not [p for p in dest.rglob("*") if grid.EXPORT_TMP in p.name]
  for p in dest.rglob("*.json"):
    json.loads(p.read_text())
  for p in dest.rglob("*.png"):
    Image.open(p).verify()
  assert np.load(dest / "random" / "conv1_filters.npy").ndim == 4
  saved = json.loads((dest / "grid_results.json").read_text())
  assert [r["name"] for r in saved["runs"]] == ["random"]  # the tables so far
  assert "| random | 1 |" in results_doc.render(saved)
  assert (dest / "grid_results.md").exists() and not (dest / "slow" / grid.FINISHED).exists()
  assert [p["step"] for p in curves.read_curve(dest / "slow" / "probe_curve.jsonl")] == [0]
  # Restored on another machine: the finished run's folder copied into a workdir is reused.
  restored = tmp_path / "restored"
  shutil.copytree(dest / "random", restored / "random")
  config = grid.grid_config([grid.run_spec("random", "rotnet", "regime=single", "random",
                                           {**TINY, "train.num_steps": 0})],
                            "cpu", "bundled_cifar10", title="killed")
  logs = []
  back = grid.run_grid(config, restored, log=logs.append)
  assert not any(": running in " in l for l in logs) and any("finished earlier" in l for l in logs)
  assert back["runs"][0]["results"] == saved["runs"][0]["results"]
