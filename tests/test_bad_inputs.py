"""Bad input gets one clear line naming the value and the fix, never a deep traceback."""
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, load_config_file, tiny_config
from PIL import Image, JpegImagePlugin

from mono_ssl import images, train
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


def test_image_smaller_than_the_patch_is_warned_about(tmp_path):
  # Upsampled patches are blurred, not wrong: one warning line naming the file, no refusal.
  path = _save(tmp_path / "tiny.png", np.zeros((20, 24, 3), np.uint8))
  (line,) = pretrain_source(tiny_config(**{"data.images": path})).warnings
  assert "tiny.png" in line and "24x20" in line and "upsampled" in line and "\n" not in line


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
  if kind == "16bit":  # a 0..65535 ramp scaled to 0..255 averages ~127; clipped at 255, ~254
    assert 110 < float(np.asarray(images.load_image(path)).mean()) < 145


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


def _cli(workdir, *flags, config="configs/quickstart.py"):
  return subprocess.run([sys.executable, "-m", "mono_ssl.main", f"--config={config}",
                         f"--workdir={workdir}", *flags],
                        cwd=REPO, capture_output=True, text=True, timeout=300)


def _cli_error(r) -> str:
  """The single `error:` line of a refused CLI run (exit code 2, no traceback)."""
  assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
  assert "Traceback" not in r.stderr, r.stderr[-3000:]
  errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1, r.stderr[-3000:]
  return errors[0]


def _trained(workdir) -> bool:
  """Whether any training step was checkpointed under workdir."""
  ckpts = workdir / "checkpoints"
  return ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())


def _huge_flat_jpeg(path, side=20000):
  """A side x side mid-grey greyscale JPEG of ~side^2/85 bytes, written without decoding it.

  Mid-grey (128) level-shifts to 0, so every 8x8 block codes as DC difference 0
  ('00') then end-of-block ('1010') in the standard Huffman tables: 4 blocks are
  the 3 bytes 28 a2 8a. The header comes from Pillow's 32x32 encoding with the
  size in the SOF0 segment patched.
  """
  buf = io.BytesIO()
  Image.new("L", (32, 32), 128).save(buf, "JPEG", quality=75)
  small = buf.getvalue()
  sos = small.index(b"\xff\xda")
  scan_start = sos + 2 + int.from_bytes(small[sos + 2:sos + 4], "big")
  pattern = b"\x28\xa2\x8a"
  assert small[scan_start:] == pattern * 4 + b"\xff\xd9"  # 16 blocks, then EOI
  sof = small.index(b"\xff\xc0")
  header = bytearray(small[:scan_start])
  header[sof + 5:sof + 9] = side.to_bytes(2, "big") * 2  # height, width
  blocks = (side // 8) ** 2
  path.write_bytes(bytes(header) + pattern * (blocks // 4) + b"\xff\xd9")
  return path


def test_non_image_file_with_an_image_name(tmp_path):
  path = tmp_path / "notes.png"
  path.write_text("these are my notes, not a picture\n" * 20)
  with pytest.raises(UserInputError) as e:
    pretrain_source(tiny_config(**{"data.images": str(path)}))
  msg = _one_line(e)
  assert "notes.png" in msg and "JPEG/PNG" in msg


def test_huge_image_is_downscaled_by_max_side_or_refused_clearly(tmp_path):
  path = _huge_flat_jpeg(tmp_path / "huge.jpg")
  assert path.stat().st_size < 10 * 2**20  # small on disk, 20000x20000 = 400 MP decoded
  header = JpegImagePlugin.JpegImageFile(io.BytesIO(path.read_bytes()[:4096]))  # no bomb check
  assert header.size == (20000, 20000)
  arr = images.load_image(path, max_side=512)
  assert arr.shape == (512, 512, 3) and arr.dtype == np.uint8
  assert abs(int(arr.min()) - 128) <= 2 and abs(int(arr.max()) - 128) <= 2
  # The pipeline's data.max_side does the same ...
  source = pretrain_source(tiny_config(**{"data.images": str(path), "data.max_side": 256}))
  assert int(source.bank.heights[0, 0]) == 256 and int(source.bank.widths[0, 0]) == 256
  # ... and full resolution (max_side 0) is refused with the way out named.
  with pytest.raises(UserInputError) as e:
    pretrain_source(tiny_config(**{"data.images": str(path), "data.max_side": 0}))
  msg = _one_line(e)
  assert "huge.jpg" in msg and "max_side" in msg and "too large" in msg


@pytest.mark.parametrize("flag,fix", [("--config.train.num_stpes=3", 'Did you mean "num_steps"'),
                                      ("--config.train.colour=red", "valid fields")])
def test_cli_unknown_config_key(tmp_path, flag, fix):
  line = _cli_error(_cli(tmp_path / "w", flag))
  assert flag.split("=")[0] in line and fix in line  # the key, and what to do about it
  assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("flag,named", [("--config.train.num_steps=abc", "abc"),
                                        ("--config.model.hidden=abc", "hidden")])
def test_cli_wrong_value_type(tmp_path, flag, named):
  line = _cli_error(_cli(tmp_path / "w", flag, "--config.train.batch_size=8"))
  assert named in line
  assert not _trained(tmp_path / "w")


@pytest.mark.parametrize("flag,named", [("aug.out_size=-3", "aug.out_size=-3"),
                                        ("train.batch_size=-8", "train.batch_size=-8"),
                                        ("train.num_steps=-1", "train.num_steps=-1"),
                                        ("probe.batch_size=0", "probe.batch_size=0"),
                                        ("model.width_mult=-1", "model.width_mult=-1"),
                                        ("probe.head_seeds=0", "probe.head_seeds=0")])
def test_cli_negative_or_zero_sizes(tmp_path, flag, named):
  # Small settings, so that a check that came too late would cost seconds, not minutes.
  small = ["--config.train.num_steps=2", "--config.train.batch_size=8", "--config.model.width_mult=0.25",
           "--config.data.max_side=512", "--config.probe.limit_per_class=20", "--config.probe.epochs=1"]
  line = _cli_error(_cli(tmp_path / "w", *small, f"--config.{flag}"))
  assert named in line
  assert not _trained(tmp_path / "w")  # refused before any training


# The evaluation batch is not refused: it is refitted to the devices (tests/test_probe.py).
@pytest.mark.parametrize("field,value", [("batch_size", 6)])
def test_probe_batch_not_divisible_by_the_device_count_fails_before_training(tmp_path, field, value):
  with pytest.raises(UserInputError) as e:
    train.train_and_evaluate(tiny_config(**{f"probe.{field}": value}), tmp_path, log=lambda s: None)
  msg = _one_line(e)
  assert f"probe.{field}={value}" in msg and "4 devices" in msg
  assert not _trained(tmp_path)


def _write_probe_npz(path, num_images, labels):
  """An npz in shared/README.md's format: concatenated JPEG files, offsets, uint8 labels."""
  files = []
  for i in range(num_images):
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 20 * i % 256, np.uint8)).save(buf, "JPEG")
    files.append(buf.getvalue())
  offsets = np.cumsum([0] + [len(f) for f in files]).astype(np.int64)
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez(path, data=np.frombuffer(b"".join(files), np.uint8), offsets=offsets,
           labels=np.asarray(labels, np.uint8))


@pytest.mark.parametrize("bad", ["none", "label_out_of_range", "fewer_labels_than_images"])
def test_probe_data_set_with_mismatched_labels(tmp_path, bad):
  good = np.arange(20) % 10
  _write_probe_npz(tmp_path / "data" / "cifar10" / "test.npz", 20, good)
  train_labels = {"none": good, "label_out_of_range": np.where(good == 3, 12, good),
                  "fewer_labels_than_images": good[:19]}[bad]
  _write_probe_npz(tmp_path / "data" / "cifar10" / "train.npz", 20, train_labels)
  config = tiny_config(**{"probe.dataset": "cifar10", "probe.data_dir": str(tmp_path / "data"),
                          "probe.limit_per_class": 0})
  if bad == "none":  # the control: the same files with good labels load
    probe_train, probe_test = train.load_probe_data(config)
    assert len(probe_train) == len(probe_test) == 20 and probe_train.num_classes == 10
    return
  with pytest.raises(UserInputError) as e:
    train.train_and_evaluate(config, tmp_path / "work", log=lambda s: None)
  msg = _one_line(e)
  assert "cifar10/train.npz" in msg and "label" in msg and "replace it" in msg
  assert ("12" in msg) if bad == "label_out_of_range" else ("19 labels for 20 images" in msg)
  assert not _trained(tmp_path / "work")


def test_cli_workdir_of_another_experiment_is_refused(tmp_path):
  work = tmp_path / "w"
  other = tiny_config(**{"train.num_steps": 0})  # saves its step-0 checkpoint, trains nothing
  train.check_workdir(other, work)
  train.pretrain(other, work, log=lambda s: None)
  before = (work / "config.json").read_text()
  line = _cli_error(_cli(work))  # the quickstart config: another experiment
  assert str(work) in line and "another experiment" in line and "--workdir" in line
  assert "model.width_mult" in line  # names a field that differs
  assert (work / "config.json").read_text() == before
  assert (work / "checkpoints" / "0").exists()


def test_a_refused_config_does_not_lock_the_workdir(tmp_path):
  # A run refused for bad input trained nothing: the corrected rerun may use the same workdir.
  with pytest.raises(UserInputError, match="aug.out_size=-3"):
    train.train_and_evaluate(tiny_config(**{"aug.out_size": -3}), tmp_path, log=lambda s: None)
  train.check_workdir(tiny_config(), tmp_path)
  assert json.loads((tmp_path / "config.json").read_text())["aug"]["out_size"] == 32


def test_more_clusters_than_the_data_set(tmp_path):
  c = load_config_file("deepcluster", "regime=single,scale=cpu")
  c.data.images, c.data.max_side, c.data.dataset_size = "default", 512, 64
  c.model.width_mult, c.model.hidden = 0.25, (32, 32)
  c.train.batch_size, c.train.num_steps = 8, 2  # tiny, should the check ever be skipped
  c.deepcluster.num_clusters = 100
  with pytest.raises(UserInputError) as e:
    train.pretrain(c, tmp_path, log=lambda s: None)
  msg = _one_line(e)
  assert "deepcluster.num_clusters=100" in msg and "64" in msg
  assert not _trained(tmp_path)


@pytest.mark.parametrize("kind", ["plain_folder", "step_named_folder"])
def test_init_from_a_folder_that_holds_no_checkpoint(tmp_path, kind):
  src = tmp_path / "src"
  if kind == "plain_folder":  # e.g. a folder of photos
    src.mkdir()
    _save(src / "photo.png", np.zeros((40, 40, 3), np.uint8))
  else:  # looks like a checkpoint folder (a step number), holds none
    (src / "checkpoints" / "3").mkdir(parents=True)
    (src / "checkpoints" / "3" / "notes.txt").write_text("not a checkpoint")
  config = tiny_config(**{"init_from": str(src), "train.num_steps": 0})
  with pytest.raises(UserInputError) as e:
    train.pretrain(config, tmp_path / "w", log=lambda s: None)
  msg = _one_line(e)
  assert f"init_from='{src}'" in msg and "earlier run" in msg
  assert "delete" not in msg  # never advise deleting the folder a run starts from
  assert sorted(p.name for p in src.rglob("*")) == (  # the source folder is left as it was
      ["photo.png"] if kind == "plain_folder" else ["3", "checkpoints", "notes.txt"])
