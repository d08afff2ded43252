"""Loading the source images of the single-image and few-image ("deca") regimes.

Every problem a user can fix (missing, empty, corrupt, truncated, too small or
too large file) raises `UserInputError` with one line naming the file and the
fix; no Pillow traceback escapes for bad input.

Mode handling: everything comes back as uint8 (H, W, 3) RGB. Alpha is
composited on black, palette and 1-bit images are expanded, CMYK is converted
by Pillow, and 16-bit / 32-bit integer or float greyscale is scaled to 0..255
by its actual value range (so a 12-bit scan stored in 16 bits is not nearly
black).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, JpegImagePlugin

from mono_ssl import paths as paths_lib
from mono_ssl.errors import UserInputError

_ASSETS = Path(__file__).resolve().parent / "assets"

# The bundled default single image (made by `mono_ssl/assets/make_assets.py`).
DEFAULT_IMAGE: Path = _ASSETS / "life_1024.jpg"
# The same photograph unmodified (3088x2056): the single image at scale=paper, where
# the 1024 px copy's 341 px initial crop would be upsampled to the 363 px canvas.
FULL_IMAGE: Path = _ASSETS / "life_3088.jpg"
DEFAULT_IMAGE_ATTRIBUTION = (
    '"life" (c) 2018 Aitzol Berasategi, CC BY 4.0 (downscaled to 1024 px)'
)

# Extensions picked up when a directory is given; other files there (notes,
# licences, thumbnails in other formats) are ignored.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# Pillow's reducing_gap=3.0 is its own "fair" setting: first an integer box
# reduction, then bicubic over at most 3x, which is close to a full antialiased
# bicubic at a fraction of the cost on 10+ MP photos.
_REDUCING_GAP = 3.0

_SPEC_HELP = (
    "pass 'default', 'default_full', 'deca', 'deca:<file>' (one of the ten), an image file,"
    " a directory of .jpg/.jpeg/.png images, or a comma-separated list of files"
)


def _one_line(e: BaseException) -> str:
  """Formats an exception from Pillow/numpy as a single line."""
  text = " ".join(str(e).split())
  return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _is_int(x: object) -> bool:
  """True for Python and numpy integers, but not bools (True is not a size)."""
  return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _show(path: Path) -> str:
  """The path as given, plus where it resolves to when relative."""
  return str(path) if path.is_absolute() else f"{path} (= {path.absolute()})"


def _target_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
  """(w, h) scaled so that the long side is exactly max_side."""
  w, h = size
  if w >= h:
    return max_side, max(1, round(h * max_side / w))
  return max(1, round(w * max_side / h)), max_side


def _bomb_limit() -> int | None:
  """Pixel count above which Pillow refuses to open a file (read per call)."""
  limit = Image.MAX_IMAGE_PIXELS
  return None if limit is None else 2 * limit


def _open(path: Path, max_side: int | None) -> tuple[Image.Image, bool]:
  """Opens without decoding; sets up a cheap DCT downscale for big JPEGs.

  Returns:
    The opened image and whether max_side will shrink it.
  """
  try:
    im = Image.open(path)
  except Image.DecompressionBombError as e:
    if max_side is None:
      raise UserInputError(
          f"image {path} is too large to decode safely ({_one_line(e)}); pass"
          " max_side (e.g. 2048) to load it downscaled, or downscale the file"
      ) from e
    # A JPEG can be decoded at 1/2, 1/4 or 1/8 scale by the codec itself, so
    # a huge one is still cheap to load once draft() is set. Constructing the
    # plugin class directly skips Image.open's pixel-count check; the check is
    # redone below on the size that will actually be decoded.
    try:
      im = JpegImagePlugin.JpegImageFile(os.fspath(path))
    except Exception as e2:  # Any failure here means "not a JPEG".
      raise UserInputError(
          f"image {path} is too large to decode safely ({_one_line(e)}) and is"
          " not a JPEG that can be decoded at reduced size; downscale the file"
          " first (e.g. to a long side of 4096 px)"
      ) from e2
  shrink = max_side is not None and max(im.size) > max_side
  if shrink and im.format == "JPEG":
    im.draft("RGB", _target_size(im.size, max_side))
  limit = _bomb_limit()
  if limit is not None and im.size[0] * im.size[1] > limit:
    im.close()
    raise UserInputError(
        f"image {path} is {im.size[0]}x{im.size[1]} px even at the reduced"
        f" decode size, above Pillow's safety limit of {limit} pixels;"
        " downscale the file first (e.g. to a long side of 4096 px)"
    )
  return im, shrink


def _to_rgb(im: Image.Image) -> Image.Image:
  """Converts any Pillow mode to 8-bit RGB (see the module docstring)."""
  mode = im.mode
  if mode == "RGB":
    return im
  if mode in ("I", "F") or mode.startswith("I;16"):
    # High bit depth: scale by the actual range rather than clipping, which
    # would turn most 16-bit images white.
    a = np.asarray(im).astype(np.float64)
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo = min(0.0, float(a.min()))
    hi = float(a.max())
    a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    grey = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return Image.fromarray(np.stack([grey] * 3, axis=-1))
  has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
      mode == "P" and "transparency" in im.info
  )
  if has_alpha:
    rgba = np.asarray(im.convert("RGBA")).astype(np.uint16)
    # Composite on black: rgb * alpha / 255, rounded.
    rgb = (rgba[..., :3] * rgba[..., 3:4] + 127) // 255
    return Image.fromarray(rgb.astype(np.uint8))
  return im.convert("RGB")


def load_image(
    path: str | os.PathLike[str], max_side: int | None = None, min_side: int = 0
) -> np.ndarray:
  """Loads an image file as uint8 (H, W, 3) RGB.

  Args:
    path: image file (anything Pillow reads; JPEG and PNG are the usual).
    max_side: if given and the long side is larger, downscale (bicubic,
      antialiased) so that the long side is exactly max_side.
    min_side: refuse images whose short side (after any downscale) is smaller.

  Returns:
    The image, orientation from EXIF applied.

  Raises:
    UserInputError: naming the file and the fix, for every bad-input case.
  """
  path = Path(path).expanduser()
  if max_side is not None and not (_is_int(max_side) and max_side >= 1):
    raise UserInputError(
        f"max_side must be a positive integer or None, got {max_side!r}"
    )
  if not (_is_int(min_side) and min_side >= 0):
    raise UserInputError(f"min_side must be an integer >= 0, got {min_side!r}")
  max_side = None if max_side is None else int(max_side)
  if not path.exists():
    raise UserInputError(f"image file not found: {_show(path)}; {_SPEC_HELP}")
  if path.is_dir():
    raise UserInputError(
        f"image path {path} is a directory, not a file; pass an image file"
        " (resolve_image_paths expands a directory into its images)"
    )
  try:
    size_bytes = path.stat().st_size
  except OSError as e:
    raise UserInputError(f"cannot read image {path}: {_one_line(e)}") from e
  if size_bytes == 0:
    raise UserInputError(
        f"image file {path} is empty (0 bytes); replace it with a valid"
        " JPEG/PNG file"
    )

  try:
    im, shrunk = _open(path, max_side)
    with im:
      # load() forces the full decode now so that truncated or corrupt data
      # fails here, with the path, instead of later inside numpy.
      im.load()
      rgb = _to_rgb(im)
      if max_side is not None and max(rgb.size) > max_side:
        rgb = rgb.resize(
            _target_size(rgb.size, max_side),
            Image.Resampling.BICUBIC,
            reducing_gap=_REDUCING_GAP,
        )
      # Rotation is lossless and does not change the long side, so do it last.
      transpose = _exif_transpose_method(im)
      if transpose is not None:
        rgb = rgb.transpose(transpose)
      arr = np.asarray(rgb, dtype=np.uint8)
  except UserInputError:
    raise
  except MemoryError:
    raise
  except Exception as e:  # Pillow raises many types for bad data.
    raise UserInputError(
        f"cannot decode image {path} ({_one_line(e)}); the file is not an"
        " image or is corrupt/truncated: replace it with a valid JPEG/PNG"
    ) from e

  if arr.ndim != 3 or arr.shape[2] != 3:  # Should not happen; guards _to_rgb.
    raise UserInputError(
        f"image {path} decoded to an unexpected shape {arr.shape}; convert it"
        " to an RGB JPEG/PNG"
    )
  h, w = arr.shape[:2]
  if min(h, w) < min_side:
    hint = (
        f" after downscaling to max_side={max_side}; raise max_side or use"
        " a larger image"
        if shrunk
        else "; use a larger image or lower min_side"
    )
    raise UserInputError(
        f"image {path} is {w}x{h} px but needs a short side of at least"
        f" {min_side} px{hint}"
    )
  # np.asarray on a Pillow image can be read-only; callers may crop in place.
  return np.ascontiguousarray(arr) if arr.flags.writeable else arr.copy()


# EXIF orientation tag value -> the transpose that displays the image upright
# (the same table as PIL.ImageOps.exif_transpose).
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _exif_transpose_method(im: Image.Image) -> Image.Transpose | None:
  """The transpose that undoes the file's EXIF orientation, if any.

  Phone photos are often stored sideways with an orientation tag; the rotation
  pretext task must see them upright.
  """
  try:
    orientation = im.getexif().get(0x0112, 1)
  except Exception:  # noqa: BLE001 - broken EXIF must not fail a good image.
    return None
  return _ORIENTATION_TRANSPOSE.get(orientation)


def load_images(
    paths: Iterable[str | os.PathLike[str]],
    max_side: int | None = None,
    min_side: int = 0,
) -> list[np.ndarray]:
  """Loads several images with `load_image`; refuses an empty list."""
  paths = list(paths)
  if not paths:
    raise UserInputError(f"no image files given; {_SPEC_HELP}")
  return [load_image(p, max_side=max_side, min_side=min_side) for p in paths]


def _images_in_dir(d: Path) -> list[Path]:
  """Sorted .jpg/.jpeg/.png files directly inside d (hidden files skipped)."""
  try:
    entries = list(d.iterdir())
  except OSError as e:
    raise UserInputError(
        f"cannot list image directory {d}: {_one_line(e)}"
    ) from e
  files = sorted(
      (
          p
          for p in entries
          if p.is_file()
          and not p.name.startswith(".")
          and p.suffix.lower() in IMAGE_SUFFIXES
      ),
      key=lambda p: p.name,
  )
  if not files:
    raise UserInputError(
        f"image directory {d} contains no {'/'.join(IMAGE_SUFFIXES)} files;"
        " put images there or pass another directory or file"
    )
  return files


def _resolve_one(item: str) -> list[Path]:
  """Resolves one (comma-free) item of an image spec."""
  if item in ("default", "default_full"):
    path = DEFAULT_IMAGE if item == "default" else FULL_IMAGE
    if not path.is_file():
      raise UserInputError(
          f"the bundled image {path} is missing; reinstall"
          " mono_ssl or run `python -m mono_ssl.assets.make_assets`"
      )
    return [path]
  if item == "deca":
    return _images_in_dir(paths_lib.find_in_shared("images", "deca"))
  if item.startswith("deca:"):  # one of the ten by name: a config that works on any machine
    folder = paths_lib.find_in_shared("images", "deca")
    names = [f.name for f in _images_in_dir(folder)]
    name = item[len("deca:"):]
    if name not in names:
      raise UserInputError(f"image spec {item!r}: no {name!r} in {_show(folder)}; "
                           f"its images: {', '.join(names)}.")
    return [folder / name]
  p = Path(item).expanduser()
  if p.is_dir():
    return _images_in_dir(p)
  if p.exists():
    return [p]
  raise UserInputError(f"image path not found: {_show(p)}; {_SPEC_HELP}")


def resolve_image_paths(spec: str) -> list[Path]:
  """Turns an image-set spec into a list of image files (not yet loaded).

  Args:
    spec: one of `"default"` (the bundled 1024 px image), `"default_full"`
      (the same photograph at full resolution, 3088x2056), `"deca"` (the ten
      photos in `<shared>/images/deca`, see `mono_ssl.paths`), `"deca:<file>"`
      (one of them by file name), an image file, a
      directory (its .jpg/.jpeg/.png files in name order), or a comma-separated
      list of any of these (files are the usual case). The names `default` and
      `deca` win over files so named; write `./deca` for such a file.

  Returns:
    The files in order. Whether each is a readable image is checked by
    `load_image`.

  Raises:
    UserInputError: for an empty spec, missing paths or empty directories.
  """
  if not isinstance(spec, (str, os.PathLike)):
    raise UserInputError(
        f"image spec must be a string, got {spec!r}; {_SPEC_HELP}"
    )
  spec = os.fspath(spec).strip()
  if not spec:
    raise UserInputError(f"empty image spec; {_SPEC_HELP}")
  items: Sequence[str] = [s.strip() for s in spec.split(",")]
  if any(not s for s in items):
    raise UserInputError(
        f"image spec {spec!r} has an empty entry between commas; {_SPEC_HELP}"
    )
  out: list[Path] = []
  for item in items:
    out.extend(_resolve_one(item))
  return out
