"""Builds the probe sets' `.npz` files (docs/data.md) from the official archives, offline.

  python -m mono_ssl.prepare cifar10 cifar-10-python.tar.gz --out DATA
  python -m mono_ssl.prepare tiny_imagenet tiny-imagenet-200.zip --out DATA

then point the runs at DATA (`--config.probe.data_dir=DATA`, or `MONO_SSL_DATA_DIR=DATA`).
The archives are the ones their authors publish (CIFAR-10's "python version" from
cs.toronto.edu/~kriz/cifar.html; Tiny-ImageNet-200 from cs231n.stanford.edu); this
command never downloads anything.

Written (the layout `mono_ssl.datasets` reads; each npz holds encoded images, not pixels:
`data` uint8[total bytes] of the files concatenated, `offsets` int64[n + 1], `labels`
uint8[n], Tiny-ImageNet also `wnids` str[200], sorted, label i = wnids[i]):
- `DATA/cifar10/train.npz` (50,000 images, the five data batches in order) and `test.npz`
  (10,000). CIFAR-10 ships raw pixels: they are encoded as JPEG at `--quality` (75, as
  the shared copies) or, with `--format png`, losslessly.
- `DATA/tiny_imagenet_200/train_100_per_class.npz` (positions 0-99 of each class's 500
  train images sorted by file name as strings, `<wnid>_0`, `_1`, `_10`, `_100`, ..., class
  by class), `train_next_300_per_class.npz` (positions 100-399, same order: the two hold
  400 a class, 80,000 images) and `val.npz` (the 10,000 labelled validation images, in file
  order, labels from `val_annotations.txt`): the layout of ../shared/data (its README). The
  archive's JPEG files are kept byte for byte.
Existing files are not overwritten unless `--overwrite` is given. The CIFAR-10 batches are
unpickled admitting only what an official batch holds (dicts, lists, bytes, ints and NumPy
arrays of plain dtypes): an archive whose pickles would call anything else is refused.
"""
from __future__ import annotations

import argparse
import io
import pickle
import re
import sys
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from mono_ssl.errors import UserInputError

# The train files, in order, and how many images of each class each takes (the next ones in
# file-name order): ../shared/data's split (datasets.py reads train_100_per_class.npz).
TINY_TRAIN_SPLITS = (("train_100_per_class.npz", 100), ("train_next_300_per_class.npz", 300))


def write_npz(path: Path, files: list[bytes], labels, wnids=None) -> None:
  """One npz of encoded images in the loaders' layout, written whole then renamed."""
  offsets = np.cumsum([0] + [len(f) for f in files]).astype(np.int64)
  arrays = {"data": np.frombuffer(b"".join(files), np.uint8), "offsets": offsets,
            "labels": np.asarray(labels, np.uint8)}
  if wnids is not None:
    arrays["wnids"] = np.asarray(wnids)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp.npz")
  np.savez(tmp, **arrays)
  tmp.replace(path)


def encode(pixels: np.ndarray, fmt: str, quality: int) -> bytes:
  buf = io.BytesIO()
  if fmt == "png":
    Image.fromarray(pixels).save(buf, format="PNG")
  else:
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
  return buf.getvalue()


class _Refused(pickle.UnpicklingError):
  """A global (or dtype) an official CIFAR-10 batch never holds; the message names it."""


def _plain_dtype(*args):
  """numpy.dtype for an unpickled batch: an array of objects would unpickle arbitrary ones."""
  dt = np.dtype(*args)
  if dt.hasobject:
    raise _Refused(f"numpy.dtype({dt}) of Python objects")
  return dt


# What an official batch's pickle (Python 2, protocol 2) names, and what NumPy 2 pickles name.
_RECONSTRUCT = np.ndarray((0,), np.uint8).__reduce__()[0]  # numpy(._)core.multiarray._reconstruct
_BATCH_GLOBALS = {("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
                  ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
                  ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _plain_dtype}


class _BatchUnpickler(pickle.Unpickler):
  """Unpickles a CIFAR-10 batch admitting only the globals NumPy needs to rebuild an ndarray:
  pickle.load runs whatever callable a pickle names, so a tampered archive could run code."""

  def find_class(self, module: str, name: str):
    try:
      return _BATCH_GLOBALS[module, name]
    except KeyError:
      raise _Refused(f"{module}.{name}") from None


def _cifar_batch(tar: tarfile.TarFile, member: str) -> tuple[np.ndarray, list]:
  path = f"cifar-10-batches-py/{member}"
  try:
    f = tar.extractfile(path)
  except KeyError:
    raise UserInputError(f"{tar.name}: no {path}; give the official "
                         "cifar-10-python.tar.gz (the 'python version')") from None
  not_official = f"{tar.name}: {path} is not an official CIFAR-10 batch"
  fix = "give the official cifar-10-python.tar.gz"
  try:
    batch = _BatchUnpickler(f, encoding="bytes").load()
  except _Refused as e:  # refused before it ran: nothing the pickle names has been called
    raise UserInputError(f"{not_official}: its pickle would call {e}, which no batch holds; "
                         f"{fix}") from None
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
          KeyError, OSError, tarfile.TarError, zlib.error) as e:
    reason = (str(e).splitlines() or [""])[0][:100]
    raise UserInputError(f"{not_official}: it cannot be unpickled ({type(e).__name__}: {reason}); "
                         f"{fix}") from None
  data = batch.get(b"data") if isinstance(batch, dict) else None
  labels = batch.get(b"labels") if isinstance(batch, dict) else None
  if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
      or data.shape[1] != 3072 or not isinstance(labels, list) or len(labels) != len(data)):
    raise UserInputError(f"{not_official}: no b'data' uint8 rows of 3072 values with as many "
                         f"b'labels'; {fix}")
  # Rows of 3072 values: the 1024 red, then green, then blue values of a 32x32 image.
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return images, list(labels)


def prepare_cifar10(archive: Path, out: Path, fmt: str = "jpeg", quality: int = 75,
                    overwrite: bool = False) -> list[Path]:
  """`out/cifar10/{train,test}.npz` from the official cifar-10-python.tar.gz."""
  targets = {"train": out / "cifar10" / "train.npz", "test": out / "cifar10" / "test.npz"}
  _check_targets(targets.values(), overwrite)
  try:
    tar = tarfile.open(archive, "r:gz")
  except (OSError, tarfile.TarError) as e:
    raise UserInputError(f"{archive} is not a readable .tar.gz ({e}); give the official "
                         "cifar-10-python.tar.gz") from None
  with tar:
    splits = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    for split, members in splits.items():
      parts = [_cifar_batch(tar, m) for m in members]
      images = np.concatenate([p[0] for p in parts])
      labels = [label for p in parts for label in p[1]]
      write_npz(targets[split], [encode(im, fmt, quality) for im in images], labels)
  return list(targets.values())


def prepare_tiny_imagenet(archive: Path, out: Path, overwrite: bool = False,
                          splits=TINY_TRAIN_SPLITS) -> list[Path]:
  """`out/tiny_imagenet_200/{train_100_per_class,train_next_300_per_class,val}.npz` from the
  official zip. `splits`: the train files and their images per class (tests take fewer)."""
  folder = out / "tiny_imagenet_200"
  targets = {name: folder / name for name, _ in splits}
  targets["test"] = folder / "val.npz"
  _check_targets(targets.values(), overwrite)
  if not zipfile.is_zipfile(archive):
    raise UserInputError(f"{archive} is not a zip archive; give the official tiny-imagenet-200.zip")
  with zipfile.ZipFile(archive) as z:
    names = set(z.namelist())
    root = "tiny-imagenet-200/"
    for need in ("wnids.txt", "val/val_annotations.txt"):
      if root + need not in names:
        raise UserInputError(f"{archive}: no {root}{need}; give the official tiny-imagenet-200.zip")
    wnids = sorted(z.read(root + "wnids.txt").decode().split())
    index = {w: i for i, w in enumerate(wnids)}
    needed = sum(n for _, n in splits)
    per_class = {}
    for w in wnids:
      prefix = f"{root}train/{w}/images/"
      # By file name as strings (_0, _1, _10, _100, ...): the order ../shared/data's files were
      # cut from, so a prepared copy and the shared one hold the same images.
      mine = sorted(n for n in names if n.startswith(prefix) and n.endswith(".JPEG"))
      if len(mine) < needed:
        raise UserInputError(f"{archive}: class {w} has {len(mine)} training images, fewer than "
                             f"{needed}; the archive is incomplete")
      per_class[w] = mine
    start = 0
    for name, n in splits:  # one file at a time: each holds its own slice of every class
      write_npz(targets[name], [z.read(f) for w in wnids for f in per_class[w][start:start + n]],
                [index[w] for w in wnids for _ in range(n)], wnids)
      start += n
    number = re.compile(r"_(\d+)\.JPEG$")
    annotations = [line.split("\t") for line in
                   z.read(root + "val/val_annotations.txt").decode().splitlines() if line.strip()]
    val = sorted(annotations, key=lambda a: int(number.search(a[0]).group(1)))
    unknown = sorted({a[1] for a in val} - set(index))
    if unknown:
      raise UserInputError(f"{archive}: val_annotations.txt names classes not in wnids.txt "
                           f"({', '.join(unknown[:3])}); the archive is inconsistent")
    write_npz(targets["test"], [z.read(f"{root}val/images/{a[0]}") for a in val],
              [index[a[1]] for a in val], wnids)
  return list(targets.values())


def _check_targets(paths, overwrite: bool) -> None:
  existing = [str(p) for p in paths if p.exists()]
  if existing and not overwrite:
    raise UserInputError(f"{', '.join(existing)} already exist(s); pass --overwrite to replace, "
                         "or another --out")


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(prog="python -m mono_ssl.prepare",
                               description="Builds the probe sets' .npz files from the official archives.")
  ap.add_argument("dataset", choices=("cifar10", "tiny_imagenet"))
  ap.add_argument("archive", type=Path, help="cifar-10-python.tar.gz or tiny-imagenet-200.zip")
  ap.add_argument("--out", type=Path, required=True, help="the data dir (probe.data_dir)")
  ap.add_argument("--format", choices=("jpeg", "png"), default="jpeg",
                  help="CIFAR-10's encoding (default jpeg, as the shared copies)")
  ap.add_argument("--quality", type=int, default=75, help="JPEG quality for CIFAR-10 (default 75)")
  ap.add_argument("--overwrite", action="store_true", help="replace existing files")
  args = ap.parse_args(argv)
  try:
    if not args.archive.is_file():
      raise UserInputError(f"{args.archive}: no such file; give the path of the downloaded archive")
    if not 1 <= args.quality <= 95:
      raise UserInputError(f"--quality={args.quality} must be in [1, 95] (Pillow's JPEG range)")
    if args.dataset == "cifar10":
      written = prepare_cifar10(args.archive, args.out, args.format, args.quality, args.overwrite)
    else:
      written = prepare_tiny_imagenet(args.archive, args.out, args.overwrite)
  except UserInputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for p in written:
    print(f"wrote {p} ({p.stat().st_size / 2**20:.1f} MiB)")
  print(f"use it with --config.probe.data_dir={args.out} (or MONO_SSL_DATA_DIR={args.out})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
