"""Configs: each loads, typed arguments and overrides work, wrong keys fail with one clear line."""
import subprocess
import sys

import pytest
from conftest import REPO, load_config_file

from mono_ssl.errors import UserInputError

CASES = [("quickstart", None)] + [("rotnet", f"regime={r},scale={s}")
                                  for r in ("single", "deca", "full") for s in ("cpu", "mini", "paper")]


@pytest.mark.parametrize("name,arg", CASES)
def test_every_config_loads_and_is_locked(name, arg):
  c = load_config_file(name, arg)
  assert c.method == "rotnet"
  assert c.train.num_steps > 0 and c.train.batch_size > 0 and c.probe.epochs > 0
  with pytest.raises(AttributeError):
    c.no_such_field = 1  # locked: a typo cannot silently add a field
  if arg:
    assert c.regime == arg.split(",")[0].split("=")[1]
    assert c.scale == arg.split("=")[-1]


def test_paper_scale_is_the_authors_alexnet_at_224px():
  from mono_ssl.models.alexnet import PAPER_CONVS
  from mono_ssl.train import build_model
  c = load_config_file("rotnet", "regime=single,scale=paper")
  assert c.aug.out_size == 224 and c.aug.patch_size == 256
  assert [s.filters for s in build_model(c).convs] == [96, 256, 384, 384, 256]
  assert build_model(c).hidden == (4096, 4096)
  assert build_model(c).convs == PAPER_CONVS
  assert c.data.dataset_size == 1_281_167 and c.probe.target_dims == 9216
  # The protocol's evaluation: ten 224 crops; CPU scale probes the whole image.
  assert c.probe.crop_size == 224 and c.probe.ten_crop
  # ImageNet streams from disk at 256 px (mixed sizes, too large for memory).
  assert c.probe.image_size == 256
  cpu = load_config_file("rotnet", "regime=single,scale=cpu")
  assert cpu.probe.crop_size == 0 and not cpu.probe.ten_crop and cpu.probe.image_size == 0


def test_full_regime_has_no_single_image_augmentation():
  c = load_config_file("rotnet", "regime=full,scale=cpu")
  assert not c.aug.affine and not c.aug.initial_crop and not c.aug.rrc and c.aug.jitter_prob == 0
  assert c.aug.method_crop and c.aug.flip


@pytest.mark.parametrize("arg,match", [("regime=triple", "regime='triple'"),
                                       ("colour=red", "unknown config argument 'colour'"),
                                       ("scale", "not key=value")])
def test_bad_config_arguments_fail_clearly(arg, match):
  with pytest.raises(UserInputError, match=match):
    load_config_file("rotnet", arg)


@pytest.mark.parametrize("arg", ["steps=5", "steps"])
def test_a_config_without_arguments_says_so(arg):
  # The quickstart takes none: the message must not list an empty set of keys ("known: .").
  with pytest.raises(UserInputError, match="takes no") as e:
    load_config_file("quickstart", arg)
  assert "known: ." not in str(e.value) and "keys: )" not in str(e.value)


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "mono_ssl.main", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=120)


def test_cli_override_reaches_the_config_and_unknown_keys_fail(tmp_path):
  ok = _cli("--config=configs/quickstart.py", f"--workdir={tmp_path}",
            "--config.train.batch_sizee=3")
  assert ok.returncode != 0
  err = ok.stderr.strip().splitlines()
  assert any("batch_sizee" in l for l in err) and "Traceback" not in ok.stderr
  bad = _cli("--config=configs/rotnet.py:regime=tripple", f"--workdir={tmp_path}")
  assert bad.returncode != 0 and "regime='tripple'" in bad.stderr and "Traceback" not in bad.stderr
  assert not any(tmp_path.iterdir())  # nothing written for a refused config


def test_cli_override_reaches_the_config(tmp_path):
  # The probe data set is loaded before any training, so a bad name set from
  # the command line comes back at once, proving the override took effect.
  r = _cli("--config=configs/quickstart.py", f"--workdir={tmp_path}", "--config.probe.dataset=cifar11")
  assert r.returncode == 2 and "cifar11" in r.stderr and "Traceback" not in r.stderr
  saved = (tmp_path / "config.json").read_text()
  assert '"dataset": "cifar11"' in saved


def test_paper_scale_heads_follow_each_original():
  # Gidaris et al.'s RotNet AlexNet has no dropout in its head; DeepCluster's and the
  # supervised AlexNet's drop 0.5. The CPU scales drop nothing but in DeepCluster's head.
  want = {"rotnet": 0.0, "deepcluster": 0.5, "supervised": 0.5}
  for method, dropout in want.items():
    assert load_config_file(method, "regime=single,scale=paper" if method != "supervised"
                            else "scale=paper").model.dropout == dropout, method
  assert load_config_file("rotnet", "regime=single,scale=cpu").model.dropout == 0.0
  # DeepCluster keeps the original's Dropout(0.5) head at every scale (configs/deepcluster.py).
  assert load_config_file("deepcluster", "regime=single,scale=cpu").model.dropout == 0.5


def test_paper_scale_single_image_is_the_full_resolution_photograph():
  from PIL import Image

  from mono_ssl import augment, data, images
  c = load_config_file("rotnet", "regime=single,scale=paper")
  assert data.default_images(c) == "default_full"
  (path,) = images.resolve_image_paths(data.default_images(c))
  with Image.open(path) as im:
    w, h = im.size
  canvas = augment.canvas_side(augment.AugmentConfig.from_config(c.aug))
  assert canvas == 363  # ceil(sqrt(2) * 256)
  assert max(w, h) >= 2560 and c.aug.initial_crop_frac * min(w, h) >= canvas  # no upsampling
  assert data.default_images(load_config_file("rotnet", "regime=single,scale=cpu")) == "default"
  assert data.default_images(load_config_file("rotnet", "regime=deca,scale=paper")) == "deca"


def test_small_source_images_are_warned_about_not_refused(tmp_path):
  """Half the short side below the canvas: patches are upsampled; a warning, and the run goes on."""
  import numpy as np
  from conftest import tiny_config
  from PIL import Image

  from mono_ssl import augment, data
  small = tmp_path / "small.png"
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), np.uint8)).save(small)
  source = data.pretrain_source(tiny_config(**{"data.images": str(small)}))
  assert len(source.warnings) == 1 and "small.png is 50x40 px" in source.warnings[0]
  assert "upsampled" in source.warnings[0] and "\n" not in source.warnings[0]
  assert source.bank is not None
  # The bundled photograph at the paper's canvas: no warning.
  from mono_ssl import images
  c = load_config_file("rotnet", "regime=single,scale=paper")
  big = images.load_images(images.resolve_image_paths("default_full"))
  assert augment.check_sizes(big, augment.AugmentConfig.from_config(c.aug), ["life"]) == []
  half = images.load_images(images.resolve_image_paths("default"))  # 1024 px: 341 px crop < 363
  assert len(augment.check_sizes(half, augment.AugmentConfig.from_config(c.aug), ["life"])) == 1


def test_grid_seeded_rows_run_the_seeds_and_the_others_one():
  c = load_config_file("grid", "scale=mini,seeds=3,seeded=random:rotnet_single")
  seeds = {r["name"]: r["seeds"] for r in c.runs}
  assert seeds["random"] == seeds["rotnet_single"] == 3
  assert seeds["supervised"] == seeds["rotnet_deca"] == 1
  assert all(r["seeds"] == 0 for r in load_config_file("grid", "seeds=3").runs)  # all: the grid's
  with pytest.raises(UserInputError, match="seeded=rotnet_singel names no row") as e:
    load_config_file("grid", "seeds=3,seeded=rotnet_singel")
  assert "\n" not in str(e.value)


def test_bigan_long_grid_runs_donahues_recipe_past_break_even_with_curves():
  from mono_ssl import grid
  c = load_config_file("bigan_long", "probe=cifar10")
  runs = {s["name"]: grid.run_config(c, s, 0) for s in grid.selected_runs(c)}
  assert set(runs) == {"supervised", "random", "bigan_single", "bigan_full"}
  for name in ("bigan_single", "bigan_full"):
    cfg = runs[name]
    assert cfg.bigan.disc_arch == "donahue" and cfg.train.num_steps >= 20_000
    assert 0 < cfg.probe.curve_every <= 2500 and cfg.train.sample_every <= 2500
  assert runs["bigan_full"].regime == "full" and runs["random"].train.num_steps == 0


def test_calib_probes_use_the_recipe_their_study_chose():
  # scale=calib's probe lr and size are what results/calib_scale/probe_recipe chose on the
  # validation carve (benchmarks/calib_recipe.py: highest mean top-1 over its three trunks).
  import json
  record = json.loads((REPO / "results" / "calib_scale" / "probe_recipe" / "recipe.json").read_text())
  import importlib.util
  spec = importlib.util.spec_from_file_location("calib_recipe_choice", REPO / "benchmarks" / "calib_recipe.py")
  sys.path.insert(0, str(REPO / "benchmarks"))
  cr = importlib.util.module_from_spec(spec)
  sys.modules["calib_recipe_choice"] = cr
  spec.loader.exec_module(cr)
  best = cr.parse_candidate(cr.choose(record))
  for method in ("rotnet", "supervised"):
    cfg = load_config_file(method, "regime=full,scale=calib")
    assert (cfg.probe.lr, cfg.probe.target_dims, cfg.probe.epochs, cfg.probe.train_views) == (
        best.lr, best.dims, best.epochs, best.views)
    if best.views == "crops":
      assert tuple(cfg.probe.crop_scale) == best.crop
