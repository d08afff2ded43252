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
