"""Bad input gets one clear line naming the value and the fix, never a deep traceback."""
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, tiny_config
from PIL import Image

from mono_ssl import train
from mono_ssl.data import pretrain_source
from mono_ssl.errors import UserInputError


def _one_line(e: pytest.ExceptionInfo) -> str:
  msg = str(e.value)
  assert "\n" not in msg, msg
  return msg


def _save(path, array, mode=None):
  Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
  return str(path)


def test_missing_image(tmp_path):
  with pytest.raises(UserInputError) as e:
    pretrain_source(tiny_config(**{"data.images": str(tmp_path / "nope.jpg")}))
  assert "nope.jpg" in _one_line(e)


@pytest.mark.parametrize("content", [b"", b"this is not a jpeg", None])
def test_unreadable_image(tmp_path, content):
  path = tmp_path / "bad.jpg"
  if content is None:  # a real JPEG cut in half
    _save(path, np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8))
    content = path.read_bytes()[: path.stat().st_size // 2]
  path.write_bytes(content)
  with pytest.raises(UserInputError) as e:
    pretrain_source(tiny_config(**{"data.images": str(path)}))
  assert "bad.jpg" in _one_line(e)


def test_image_smaller_than_the_patch(tmp_path):
  path = _save(tmp_path / "tiny.png", np.zeros((20, 24, 3), np.uint8))
  with pytest.raises(UserInputError) as e:
    pretrain_source(tiny_config(**{"data.images": path}))
  msg = _one_line(e)
  assert "tiny.png" in msg and "24x20" in msg and "aug.out_size" in msg


@pytest.mark.parametrize("kind", ["grey", "rgba", "16bit"])
def test_grey_rgba_and_16_bit_images_are_converted(tmp_path, kind):
  rng = np.random.default_rng(0)
  if kind == "grey":
    path = _save(tmp_path / "g.png", rng.integers(0, 255, (120, 160), dtype=np.uint8))
  elif kind == "rgba":
    path = _save(tmp_path / "a.png", rng.integers(0, 255, (120, 160, 4), dtype=np.uint8))
  else:
    arr = (np.linspace(0, 65535, 120 * 160).reshape(120, 160)).astype(np.uint16)
    path = str(tmp_path / "w.png")
    Image.fromarray(arr).save(path)
  source = pretrain_source(tiny_config(**{"data.images": path}))
  assert source.bank.pixels.shape[1] == 3 and int(source.bank.heights[0, 0]) == 120
  assert int(np.asarray(source.bank.pixels).max()) > 200  # 16-bit scaled, not clipped to 255


def test_batch_not_divisible_by_the_device_count(tmp_path):
  with pytest.raises(UserInputError) as e:
    train.pretrain(tiny_config(**{"train.batch_size": 6}), tmp_path, log=lambda s: None)
  msg = _one_line(e)
  assert "train.batch_size=6" in msg and "4 devices" in msg


def test_missing_probe_data_set_fails_before_training(tmp_path):
  config = tiny_config(**{"probe.dataset": "cifar10", "probe.data_dir": str(tmp_path / "nodata")})
  with pytest.raises(UserInputError) as e:
    train.train_and_evaluate(config, tmp_path / "work", log=lambda s: None)
  assert "nodata" in _one_line(e)
  assert not (tmp_path / "work" / "checkpoints").exists()  # no minutes of training first


def test_unknown_probe_data_set_name(tmp_path):
  with pytest.raises(UserInputError) as e:
    train.train_and_evaluate(tiny_config(**{"probe.dataset": "cifar11"}), tmp_path, log=lambda s: None)
  assert "cifar11" in _one_line(e)


def test_cli_prints_one_error_line_and_exit_code_2(tmp_path):
  r = subprocess.run([sys.executable, "-m", "mono_ssl.main", "--config=configs/quickstart.py",
                      f"--workdir={tmp_path}", f"--config.data.images={tmp_path}/missing.jpg"],
                     cwd=REPO, capture_output=True, text=True, timeout=300)
  assert r.returncode == 2
  assert "Traceback" not in r.stderr
  errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "missing.jpg" in errors[0]
