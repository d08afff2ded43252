"""Regenerates the bundled assets from the shared folder.

    python -m mono_ssl.assets.make_assets --shared ../shared

Writes, next to this file:
  * life_1024.jpg: the default single image, downscaled to a 1024 px long side
    (bicubic, antialiased), JPEG quality 92, metadata stripped;
  * life_3088.jpg: the same photograph, copied unmodified (the single image
    at scale=paper, where the paper's crop of a 2560 px photograph is matched);
  * cifar10_small.npz: the first 500 train and first 100 test images of each
    CIFAR-10 class, JPEG bytes copied unchanged (no re-encoding), both splits in
    one file with keys train_data/train_offsets/train_labels and test_...;
  * ATTRIBUTION.txt: the licence lines of both.

The npz is written with fixed zip timestamps so that rerunning the script
gives byte-identical files (no spurious git diffs).
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from mono_ssl import paths as paths_lib

ASSETS = Path(__file__).resolve().parent
LONG_SIDE = 1024
JPEG_QUALITY = 92
TRAIN_PER_CLASS = 500
TEST_PER_CLASS = 100
NUM_CLASSES = 10
MAX_NPZ_BYTES = 6 * 1024 * 1024

SOURCE_IMAGE = "images/life_by_Aitzol_Berasategi.jpg"
IMAGE_LICENCE = '"life" (c) 2018 Aitzol Berasategi, CC BY 4.0'


def make_image(src: Path, dst: Path) -> tuple[int, int]:
  """Downscales src to a LONG_SIDE long side and saves it as JPEG."""
  with Image.open(src) as im:
    im = im.convert("RGB")  # Full-quality decode: no draft() for the asset.
    w, h = im.size
    s = LONG_SIDE / max(w, h)
    size = (round(w * s), round(h * s))
    small = im.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
  small.save(dst, format="JPEG", quality=JPEG_QUALITY, optimize=True)
  return size


def _subset(
    src: Path, per_class: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """First per_class images of each class, JPEG bytes copied as they are."""
  with np.load(src) as z:
    data, offsets, labels = z["data"], z["offsets"], z["labels"]
  keep = np.sort(
      np.concatenate(
          [np.flatnonzero(labels == c)[:per_class] for c in range(NUM_CLASSES)]
      )
  )
  if len(keep) != per_class * NUM_CLASSES:
    raise SystemExit(f"{src}: fewer than {per_class} images in some class")
  chunks = [data[offsets[i] : offsets[i + 1]] for i in keep]
  new_offsets = np.zeros(len(keep) + 1, np.int64)
  new_offsets[1:] = np.cumsum([len(c) for c in chunks])
  return np.concatenate(chunks), new_offsets, labels[keep].astype(np.uint8)


def _save_npz(dst: Path, arrays: dict[str, np.ndarray]) -> None:
  """np.savez_compressed, but with fixed timestamps for reproducible bytes."""
  with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
    for key, arr in arrays.items():
      info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
      info.compress_type = zipfile.ZIP_DEFLATED
      buf = io.BytesIO()
      np.lib.format.write_array(
          buf, np.ascontiguousarray(arr), allow_pickle=False
      )
      zf.writestr(info, buf.getvalue())


def make_cifar(cifar_dir: Path, dst: Path) -> int:
  """Writes the two-split CIFAR-10 subset; returns its size in bytes."""
  arrays: dict[str, np.ndarray] = {}
  for split, per_class in (
      ("train", TRAIN_PER_CLASS),
      ("test", TEST_PER_CLASS),
  ):
    data, offsets, labels = _subset(cifar_dir / f"{split}.npz", per_class)
    arrays.update(
        {
            f"{split}_data": data,
            f"{split}_offsets": offsets,
            f"{split}_labels": labels,
        }
    )
  _save_npz(dst, arrays)
  size = dst.stat().st_size
  if size > MAX_NPZ_BYTES:
    raise SystemExit(f"{dst} is {size} bytes, above the {MAX_NPZ_BYTES} cap")
  return size


def make_attribution(dst: Path) -> None:
  dst.write_text(
      "Assets bundled with mono_ssl. Anything that ships or shows them must"
      " carry these lines.\n"
      "\n"
      f"life_1024.jpg       {IMAGE_LICENCE}; downscaled to {LONG_SIDE} px on"
      " the long side (from life_by_Aitzol_Berasategi.jpg, 3088x2056, taken"
      " unmodified from the Debian package lomiri-wallpapers-16.04"
      " 20.04.0-2)\n"
      f"life_3088.jpg       {IMAGE_LICENCE}; life_by_Aitzol_Berasategi.jpg"
      " (3088x2056) copied unmodified from the same package\n"
      "cifar10_small.npz   CIFAR-10 data set: A. Krizhevsky, Learning Multiple"
      " Layers of Features from Tiny Images, 2009,"
      " https://www.cs.toronto.edu/~kriz/cifar.html; subset of the first"
      f" {TRAIN_PER_CLASS} train and {TEST_PER_CLASS} test images per class,"
      " stored as JPEG (quality 75)\n"
  )


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
      "--shared",
      type=Path,
      default=None,
      help="the shared folder (default: found as mono_ssl.paths does)",
  )
  args = parser.parse_args(argv)
  shared = args.shared or paths_lib.shared_dir()
  if shared is None or not shared.is_dir():
    raise SystemExit("shared folder not found; pass --shared /path/to/shared")
  size = make_image(shared / SOURCE_IMAGE, ASSETS / "life_1024.jpg")
  shutil.copyfile(shared / SOURCE_IMAGE, ASSETS / "life_3088.jpg")
  print(
      f"life_1024.jpg {size[0]}x{size[1]}"
      f" {(ASSETS / 'life_1024.jpg').stat().st_size} bytes"
  )
  nbytes = make_cifar(shared / "data" / "cifar10", ASSETS / "cifar10_small.npz")
  print(f"cifar10_small.npz {nbytes} bytes")
  make_attribution(ASSETS / "ATTRIBUTION.txt")
  print("ATTRIBUTION.txt written")
  return 0


if __name__ == "__main__":
  sys.exit(main())
