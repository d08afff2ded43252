"""Tests for mono_ssl.images: loading source images, resolving image specs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mono_ssl import images, paths
from mono_ssl.errors import UserInputError


def _rgb_noise(h: int, w: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(arr_or_im, path: Path, **kw) -> Path:
  im = (
      arr_or_im
      if isinstance(arr_or_im, Image.Image)
      else Image.fromarray(arr_or_im)
  )
  im.save(path, **kw)
  return path


def _assert_one_line_naming(err: pytest.ExceptionInfo, path: Path) -> None:
  msg = str(err.value)
  assert str(path) in msg, msg
  assert "\n" not in msg, msg


# --- bad input -------------------------------------------------------------


def test_missing_file(tmp_path):
  p = tmp_path / "nope.jpg"
  with pytest.raises(UserInputError) as err:
    images.load_image(p)
  _assert_one_line_naming(err, p)
  assert "not found" in str(err.value)


def test_directory(tmp_path):
  with pytest.raises(UserInputError) as err:
    images.load_image(tmp_path)
  _assert_one_line_naming(err, tmp_path)
  assert "directory" in str(err.value)


def test_zero_byte_file(tmp_path):
  p = tmp_path / "empty.jpg"
  p.write_bytes(b"")
  with pytest.raises(UserInputError) as err:
    images.load_image(p)
  _assert_one_line_naming(err, p)
  assert "empty" in str(err.value)


def test_text_file_named_jpg(tmp_path):
  p = tmp_path / "notes.jpg"
  p.write_text("this is not\nan image\n")
  with pytest.raises(UserInputError) as err:
    images.load_image(p)
  _assert_one_line_naming(err, p)


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg(tmp_path, progressive):
  buf = io.BytesIO()
  Image.fromarray(_rgb_noise(200, 300)).save(
      buf, format="JPEG", quality=90, progressive=progressive
  )
  raw = buf.getvalue()
  p = tmp_path / "half.jpg"
  p.write_bytes(raw[: len(raw) // 2])
  with pytest.raises(UserInputError) as err:
    images.load_image(p)
  _assert_one_line_naming(err, p)
  # Also through the draft (downscaled JPEG decode) path.
  with pytest.raises(UserInputError):
    images.load_image(p, max_side=64)


def test_corrupt_png(tmp_path):
  buf = io.BytesIO()
  Image.fromarray(_rgb_noise(64, 64)).save(buf, format="PNG")
  raw = bytearray(buf.getvalue())
  raw[100:200] = b"\x00" * 100  # Breaks the IDAT data and its CRC.
  p = tmp_path / "broken.png"
  p.write_bytes(bytes(raw))
  with pytest.raises(UserInputError) as err:
    images.load_image(p)
  _assert_one_line_naming(err, p)


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_bad_max_side(tmp_path, bad):
  p = _save(_rgb_noise(8, 8), tmp_path / "a.png")
  with pytest.raises(UserInputError, match="max_side"):
    images.load_image(p, max_side=bad)


# --- modes -----------------------------------------------------------------


def test_rgb_png_roundtrip(tmp_path):
  arr = _rgb_noise(17, 23)
  out = images.load_image(_save(arr, tmp_path / "rgb.png"))
  assert out.dtype == np.uint8 and out.shape == (17, 23, 3)
  np.testing.assert_array_equal(out, arr)
  assert out.flags.writeable


def test_greyscale_to_rgb(tmp_path):
  grey = np.arange(20 * 30, dtype=np.uint32).reshape(20, 30) % 256
  grey = grey.astype(np.uint8)
  p = _save(Image.fromarray(grey, mode="L"), tmp_path / "grey.png")
  out = images.load_image(p)
  assert out.shape == (20, 30, 3) and out.dtype == np.uint8
  for c in range(3):
    np.testing.assert_array_equal(out[..., c], grey)


def test_one_bit_to_rgb(tmp_path):
  bits = np.zeros((10, 12), bool)
  bits[:, 6:] = True
  p = _save(Image.fromarray(bits), tmp_path / "bits.png")
  out = images.load_image(p)
  assert out.shape == (10, 12, 3)
  assert out[:, :6].max() == 0 and out[:, 6:].min() == 255


def test_rgba_composited_on_black(tmp_path):
  rgba = np.zeros((4, 6, 4), np.uint8)
  rgba[..., :3] = (200, 100, 50)
  rgba[:2, :, 3] = 255  # Top half opaque.
  rgba[2:, :, 3] = 0  # Bottom half fully transparent.
  p = _save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "rgba.png")
  out = images.load_image(p)
  assert out.shape == (4, 6, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(
      out[:2], np.broadcast_to([200, 100, 50], (2, 6, 3))
  )
  np.testing.assert_array_equal(out[2:], 0)


def test_la_and_palette_with_transparency(tmp_path):
  la = np.zeros((4, 4, 2), np.uint8)
  la[..., 0] = 120
  la[..., 1] = 255
  la[0, 0, 1] = 0
  out = images.load_image(
      _save(Image.fromarray(la, mode="LA"), tmp_path / "la.png")
  )
  assert out.shape == (4, 4, 3)
  assert out[1, 1].tolist() == [120, 120, 120] and out[0, 0].tolist() == [
      0,
      0,
      0,
  ]

  pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
  pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
  pal.info["transparency"] = 0
  out = images.load_image(_save(pal, tmp_path / "pal.png", transparency=0))
  assert out.shape == (2, 2, 3)
  assert out[0, 1].tolist() == [0, 255, 0]  # Opaque green.
  assert out[0, 0].tolist() == [0, 0, 0]  # Transparent red -> black.


def test_palette_without_transparency(tmp_path):
  pal = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
  pal.putpalette([10, 20, 30, 40, 50, 60] + [0] * (256 * 3 - 6))
  out = images.load_image(_save(pal, tmp_path / "pal.png"))
  assert out.tolist() == [[[10, 20, 30], [40, 50, 60]]]


def test_16bit_gradient_scaled_not_clipped(tmp_path):
  grad = np.linspace(0, 65535, 256).round().astype(np.uint16)
  grad = np.tile(grad, (8, 1))
  p = tmp_path / "deep.png"
  Image.fromarray(grad).save(p)
  with Image.open(p) as im:
    assert im.mode.startswith("I"), im.mode  # The test must exercise 16 bit.
  out = images.load_image(p)
  assert out.shape == (8, 256, 3) and out.dtype == np.uint8
  row = out[0, :, 0].astype(int)
  assert row[0] == 0 and row[-1] == 255
  assert np.all(np.diff(row) >= 0)  # Monotone, i.e. not clipped to 255.
  np.testing.assert_allclose(row, np.arange(256), atol=1)


def test_16bit_dim_image_uses_actual_range(tmp_path):
  # A 12-bit scan in a 16-bit container must not come back nearly black.
  arr = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (4, 1))
  p = tmp_path / "twelve_bit.png"
  Image.fromarray(arr).save(p)
  out = images.load_image(p)
  assert out[..., 0].max() == 255 and out[..., 0].min() == 0


def test_cmyk_jpeg(tmp_path):
  rgb = np.zeros((16, 16, 3), np.uint8)
  rgb[:, :8] = (255, 0, 0)
  rgb[:, 8:] = (0, 0, 255)
  p = tmp_path / "cmyk.jpg"
  Image.fromarray(rgb).convert("CMYK").save(p, quality=95)
  with Image.open(p) as im:
    assert im.mode == "CMYK"
  out = images.load_image(p)
  assert out.shape == (16, 16, 3) and out.dtype == np.uint8
  left, right = out[:, :4].mean((0, 1)), out[:, 12:].mean((0, 1))
  assert left[0] > 200 and left[2] < 60, left
  assert right[2] > 200 and right[0] < 60, right


def test_exif_orientation_applied(tmp_path):
  arr = _rgb_noise(20, 40)  # Stored landscape...
  exif = Image.Exif()
  exif[0x0112] = 6  # ...but tagged "rotate 90 CW to display".
  p = tmp_path / "rotated.jpg"
  Image.fromarray(arr).save(p, exif=exif, quality=95)
  out = images.load_image(p)
  assert out.shape == (40, 20, 3)
  out = images.load_image(p, max_side=20)
  assert out.shape == (20, 10, 3)


# --- sizes -----------------------------------------------------------------


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory) -> Path:
  # Smooth content: compresses well, so a 24 MP JPEG stays small and quick.
  y = np.linspace(0, 255, 4000, dtype=np.float32)[:, None]
  x = np.linspace(0, 255, 6000, dtype=np.float32)[None, :]
  arr = np.empty((4000, 6000, 3), np.uint8)
  arr[..., 0] = (y + 0 * x).astype(np.uint8)
  arr[..., 1] = (0 * y + x).astype(np.uint8)
  arr[..., 2] = 128
  p = tmp_path_factory.mktemp("big") / "big.jpg"
  Image.fromarray(arr).save(p, quality=85)
  return p


def test_big_jpeg_downscaled(big_jpeg):
  out = images.load_image(big_jpeg, max_side=512)
  assert out.shape == (341, 512, 3) and out.dtype == np.uint8
  # Content survives the draft + resize: a horizontal ramp in green.
  assert out[:, 0, 1].mean() < 10 and out[:, -1, 1].mean() > 245


def test_big_portrait_png_downscaled(tmp_path):
  p = _save(_rgb_noise(1500, 600), tmp_path / "tall.png")
  out = images.load_image(p, max_side=500)
  assert out.shape == (500, 200, 3)


def test_small_image_not_upscaled(tmp_path):
  p = _save(_rgb_noise(30, 40), tmp_path / "small.png")
  assert images.load_image(p, max_side=512).shape == (30, 40, 3)


def test_min_side_refused(tmp_path):
  p = _save(_rgb_noise(10, 20), tmp_path / "tiny.png")
  with pytest.raises(UserInputError) as err:
    images.load_image(p, min_side=16)
  _assert_one_line_naming(err, p)
  msg = str(err.value)
  assert "20x10" in msg and "16" in msg
  assert images.load_image(p, min_side=10).shape == (10, 20, 3)


def test_min_side_after_downscale_mentions_max_side(tmp_path):
  p = _save(_rgb_noise(100, 400), tmp_path / "wide.png")
  with pytest.raises(UserInputError, match="max_side"):
    images.load_image(p, max_side=200, min_side=64)  # -> 200x50.


def test_decompression_bomb(tmp_path, monkeypatch):
  jpg = tmp_path / "bomb.jpg"
  Image.fromarray(_rgb_noise(200, 300)).save(jpg, quality=90)
  png = _save(_rgb_noise(200, 300), tmp_path / "bomb.png")
  # Lower Pillow's limit instead of writing a real 180 MP file.
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2_000)
  with pytest.raises(UserInputError, match="max_side") as err:
    images.load_image(jpg)
  _assert_one_line_naming(err, jpg)
  # A JPEG decodes at 1/8 scale, so with max_side it still loads cheaply.
  out = images.load_image(jpg, max_side=30)
  assert out.shape == (20, 30, 3)
  # A PNG cannot be decoded at reduced size: refused, naming the file.
  with pytest.raises(UserInputError) as err:
    images.load_image(png, max_side=30)
  _assert_one_line_naming(err, png)


# --- bundled image and specs ----------------------------------------------


def test_bundled_default_image():
  assert images.DEFAULT_IMAGE.is_file()
  assert "Aitzol Berasategi" in images.DEFAULT_IMAGE_ATTRIBUTION
  assert "CC BY 4.0" in images.DEFAULT_IMAGE_ATTRIBUTION
  out = images.load_image(images.DEFAULT_IMAGE)
  assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
  assert max(out.shape[:2]) <= 1024 and min(out.shape[:2]) >= 600
  assert out.std() > 20  # A real photograph, not a blank.
  assert images.resolve_image_paths("default") == [images.DEFAULT_IMAGE]


def test_load_images(tmp_path):
  a = _save(_rgb_noise(10, 10), tmp_path / "a.png")
  b = _save(_rgb_noise(20, 10), tmp_path / "b.png")
  out = images.load_images([a, b])
  assert [x.shape for x in out] == [(10, 10, 3), (20, 10, 3)]
  with pytest.raises(UserInputError, match="no image"):
    images.load_images([])


def test_resolve_file_and_list(tmp_path):
  a = _save(_rgb_noise(4, 4), tmp_path / "a.png")
  b = _save(_rgb_noise(4, 4), tmp_path / "b.jpg")
  assert images.resolve_image_paths(str(a)) == [a]
  assert images.resolve_image_paths(f"{b}, {a}") == [b, a]
  with pytest.raises(UserInputError) as err:
    images.resolve_image_paths(f"{a},{tmp_path / 'missing.jpg'}")
  _assert_one_line_naming(err, tmp_path / "missing.jpg")
  with pytest.raises(UserInputError, match="empty entry"):
    images.resolve_image_paths(f"{a},,{b}")
  with pytest.raises(UserInputError, match="empty image spec"):
    images.resolve_image_paths("  ")


def test_resolve_directory(tmp_path):
  for name in ("b.JPG", "a.png", "c.jpeg"):
    _save(_rgb_noise(4, 4), tmp_path / name, format="PNG")
  (tmp_path / "notes.txt").write_text("x")
  (tmp_path / ".hidden.jpg").write_bytes(b"")
  (tmp_path / "sub.jpg").mkdir()
  got = [p.name for p in images.resolve_image_paths(str(tmp_path))]
  assert got == ["a.png", "b.JPG", "c.jpeg"]


def test_resolve_empty_directory(tmp_path):
  (tmp_path / "readme.txt").write_text("no images")
  with pytest.raises(UserInputError) as err:
    images.resolve_image_paths(str(tmp_path))
  _assert_one_line_naming(err, tmp_path)


def test_resolve_deca_from_env(tmp_path, monkeypatch):
  deca = tmp_path / "images" / "deca"
  deca.mkdir(parents=True)
  _save(_rgb_noise(4, 4), deca / "x.jpg")
  monkeypatch.setenv(paths.SHARED_ENV, str(tmp_path))
  assert images.resolve_image_paths("deca") == [(deca / "x.jpg").resolve()]


def test_resolve_one_deca_image_by_name(tmp_path, monkeypatch):
  deca = tmp_path / "images" / "deca"
  deca.mkdir(parents=True)
  for name in ("a.jpg", "b.jpg"):
    _save(_rgb_noise(4, 4), deca / name)
  monkeypatch.setenv(paths.SHARED_ENV, str(tmp_path))
  assert images.resolve_image_paths("deca:b.jpg") == [(deca / "b.jpg").resolve()]
  with pytest.raises(UserInputError) as err:  # a typo names the spec and the ten it may be
    images.resolve_image_paths("deca:c.jpg")
  msg = str(err.value)
  assert "'deca:c.jpg'" in msg and "a.jpg, b.jpg" in msg and "\n" not in msg


def test_resolve_deca_missing(tmp_path, monkeypatch):
  monkeypatch.setenv(paths.SHARED_ENV, str(tmp_path / "nowhere"))
  with pytest.raises(UserInputError) as err:
    images.resolve_image_paths("deca")
  msg = str(err.value)
  assert str(tmp_path / "nowhere" / "images" / "deca") in msg
  assert paths.SHARED_ENV in msg and "\n" not in msg


def test_real_deca_set():
  if paths.shared_dir() is None:
    pytest.skip(f"no shared folder (looked at {paths.shared_dir_candidates()})")
  files = images.resolve_image_paths("deca")
  assert len(files) == 10
  assert any(f.name == "life_by_Aitzol_Berasategi.jpg" for f in files)
  out = images.load_image(files[0], max_side=256)
  assert max(out.shape[:2]) == 256
