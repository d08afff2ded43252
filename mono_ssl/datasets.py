"""Labelled image data sets: the linear-probe sets and the full-data regime.

Sources (`load_split(name, split, data_dir)`):
  * `bundled_cifar10`: a 500 + 100 per class CIFAR-10 subset shipped in
    `mono_ssl/assets/cifar10_small.npz` (one npz, keys prefixed `train_` and
    `test_`), so tests and demos run without the shared folder.
  * `cifar10`: `<data_dir>/cifar10/{train,test}.npz`.
  * `tiny_imagenet`: `<data_dir>/tiny_imagenet_200/` files
    `train_100_per_class.npz` (train) and `val.npz` (test).
  * `tiny_imagenet_400`: the same folder, train = `train_100_per_class.npz`
    followed by `train_next_300_per_class.npz` (400 a class, 80,000 images;
    its first 100 a class are `tiny_imagenet`'s train split), test = `val.npz`.
  * `tfds:<name>`: a data set already prepared by tensorflow-datasets in
    `data_dir` (array_record or parquet format), read TensorFlow-free through
    its random-access data source (`builder.as_data_source`, which is what
    `tfds.data_source` calls). Never downloads.

The npz format (see `shared/README.md`): `data` uint8 concatenated JPEG files,
`offsets` int64[n+1], `labels` uint8[n], optionally `wnids` str[classes].

Decoded sets are cached in-process (keyed on path, mtime and size, so an edited
file is re-read); the cached arrays are read-only so that no caller can
corrupt the cache for the next one. Copy before writing into them.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mono_ssl import paths as paths_lib
from mono_ssl import streaming
from mono_ssl.errors import UserInputError

DATA_DIR_ENV = "MONO_SSL_DATA_DIR"

BUNDLED_CIFAR10: Path = (
    Path(__file__).resolve().parent / "assets" / "cifar10_small.npz"
)

# name -> (sub directory of data_dir, {split: file name, or file names read one after the
# other}, number of classes).
_NPZ_SETS: dict[str, tuple[str, dict[str, str | tuple[str, ...]], int]] = {
    "cifar10": ("cifar10", {"train": "train.npz", "test": "test.npz"}, 10),
    "tiny_imagenet": (
        "tiny_imagenet_200",
        {"train": "train_100_per_class.npz", "test": "val.npz"},
        200,
    ),
    # shared/README.md: positions 0-99 then 100-399 of each class's train files, same class order.
    "tiny_imagenet_400": (
        "tiny_imagenet_200",
        {"train": ("train_100_per_class.npz", "train_next_300_per_class.npz"), "test": "val.npz"},
        200,
    ),
}
SPLITS = ("train", "test")
VALID_NAMES = ("bundled_cifar10", *_NPZ_SETS, "tfds:<name>")

# Chunk of records fetched per tfds __getitems__ call: amortises the
# per-call overhead without holding many undecoded records at once.
_TFDS_CHUNK = 1024


def default_data_dir() -> str:
  """`$MONO_SSL_DATA_DIR` if set, else `<shared>/data` (see `mono_ssl.paths`).

  When no shared folder exists the first candidate is still returned, so the
  "file not found" error later names a concrete path.
  """
  env = os.environ.get(DATA_DIR_ENV, "").strip()
  if env:
    return str(Path(env).expanduser())
  shared = paths_lib.shared_dir()
  if shared is None:
    shared = paths_lib.shared_dir_candidates()[0]
  return str(shared / "data")


# A str (not a Path) so that it can be a default in ml_collections configs and
# be overridden from the command line.
DEFAULT_DATA_DIR: str = default_data_dir()


@dataclasses.dataclass(frozen=True)
class LabelledImages:
  """A labelled image set held in memory."""

  images: np.ndarray  # uint8 (N, H, W, 3)
  labels: np.ndarray  # int32 (N,)
  num_classes: int
  name: str

  def __len__(self) -> int:
    return int(self.labels.shape[0])


def _fail(path: os.PathLike[str] | str, what: str) -> UserInputError:
  return UserInputError(
      f"bad data file {path}: {what}; replace it with a valid copy (format in"
      " shared/README.md)"
  )


def _readonly(a: np.ndarray) -> np.ndarray:
  a.setflags(write=False)
  return a


def _decode_image(data: bytes, min_side: int = 0) -> np.ndarray:
  """Encoded image bytes (JPEG, PNG) as uint8 RGB (H, W, 3). With `min_side`, a large
  JPEG is decoded at a reduced scale (libjpeg's DCT scaling, short side still >=
  min_side), which saves most of the decode. Raises Pillow's errors for bad bytes."""
  with Image.open(io.BytesIO(data)) as im:
    w, h = im.size
    if min_side and min(w, h) >= 2 * min_side:
      im.draft("RGB", (max(1, w * min_side // min(w, h)), max(1, h * min_side // min(w, h))))
    im.load()
    # Some Tiny-ImageNet JPEGs are greyscale, some ImageNet ones CMYK.
    return np.asarray(im.convert("RGB") if im.mode != "RGB" else im)


def _decode_one(path: Path, raw: bytes, offsets: np.ndarray, i: int, min_side: int = 0
                ) -> np.ndarray:
  """Image i of an npz's JPEG bytes as uint8 (H, W, 3)."""
  try:
    return _decode_image(raw[offsets[i] : offsets[i + 1]], min_side)
  except Exception as e:  # Pillow raises many types for bad bytes.
    raise _fail(
        path, f"image {i} does not decode ({type(e).__name__}: {e})"
    ) from e


def _decode_jpegs(
    path: Path, data: np.ndarray, offsets: np.ndarray, indices: np.ndarray
) -> np.ndarray:
  """Decodes the chosen images of an npz into one uint8 (N, H, W, 3) array.

  A plain loop: on 2 cores a ThreadPoolExecutor was measured slower for
  32x32 and 64x64 JPEGs (per-image Python overhead holds the GIL; 50k CIFAR
  images take ~2.7 s either way).
  """
  raw = data.tobytes()  # Slicing bytes is cheaper than slicing numpy per image.

  def decode(i: int) -> np.ndarray:
    return _decode_one(path, raw, offsets, i)

  if len(indices) == 0:
    raise _fail(path, "it holds no images (or none survive limit_per_class)")
  first = decode(int(indices[0]))
  out = np.empty((len(indices), *first.shape), np.uint8)
  out[0] = first
  for j in range(1, len(indices)):
    i = int(indices[j])
    img = decode(i)
    if img.shape != first.shape:
      raise _fail(
          path,
          f"image {i} is {img.shape[1]}x{img.shape[0]} but image"
          f" {int(indices[0])} is {first.shape[1]}x{first.shape[0]}; all"
          " images must have the same size",
      )
    out[j] = img
  return out


@functools.lru_cache(maxsize=8)
def _load_npz_cached(
    path: str,
    mtime_ns: int,
    size: int,
    limit_per_class: int | None,
    key_prefix: str,
    num_classes: int | None,
) -> LabelledImages:
  """Reads, validates and decodes an npz; mtime_ns and size only key the cache."""
  del mtime_ns, size
  p = Path(path)
  data, offsets, labels, num_classes = read_npz_records(p, key_prefix, num_classes)
  if limit_per_class is None:
    indices = np.arange(len(labels))
  else:
    # Chosen before decoding so that a small probe set is cheap to load.
    indices = _first_per_class(labels, num_classes, limit_per_class)
  images = _decode_jpegs(p, data, offsets, indices)
  return LabelledImages(
      images=_readonly(images),
      labels=_readonly(labels[indices].copy()),
      num_classes=num_classes,
      name=p.stem,
  )


def read_npz_records(
    p: Path, key_prefix: str = "", num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
  """An npz's validated (JPEG bytes, offsets, int32 labels, class count), nothing decoded."""
  keys = {k: key_prefix + k for k in ("data", "offsets", "labels", "wnids")}
  # np.load would guess at a non-zip file (as .npy, or as pickle) and report
  # something confusing; an npz is always a zip archive.
  if not zipfile.is_zipfile(p):
    raise _fail(p, "not an .npz (zip) archive")
  try:
    with np.load(p, allow_pickle=False) as z:
      missing = [
          keys[k] for k in ("data", "offsets", "labels") if keys[k] not in z
      ]
      if missing:
        raise _fail(p, f"missing key(s) {missing} (has {sorted(z.files)})")
      data = z[keys["data"]]
      offsets = z[keys["offsets"]]
      labels = z[keys["labels"]]
      wnids = z.get(keys["wnids"])
  except UserInputError:
    raise
  except Exception as e:  # zipfile and numpy raise many types.
    raise _fail(p, f"cannot be read as .npz ({type(e).__name__}: {e})") from e

  if data.dtype != np.uint8 or data.ndim != 1:
    raise _fail(p, f"'data' must be 1-D uint8, got {data.dtype} {data.shape}")
  if not np.issubdtype(offsets.dtype, np.integer) or offsets.ndim != 1:
    raise _fail(p, f"'offsets' must be 1-D integers, got {offsets.dtype}")
  if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1:
    raise _fail(p, f"'labels' must be 1-D integers, got {labels.dtype}")
  n = len(offsets) - 1
  if n < 1:
    raise _fail(p, "'offsets' must have n + 1 >= 2 entries")
  if offsets[0] != 0 or offsets[-1] != len(data):
    raise _fail(
        p,
        f"offsets run from {offsets[0]} to {offsets[-1]} but must run from 0"
        f" to len(data) = {len(data)}",
    )
  steps = np.diff(offsets)
  if np.any(steps <= 0):
    bad = int(np.argmax(steps <= 0))
    raise _fail(
        p,
        f"offsets are not strictly increasing (image {bad} has"
        f" {steps[bad]} bytes)",
    )
  if len(labels) != n:
    raise _fail(p, f"{len(labels)} labels for {n} images")
  if num_classes is None:
    num_classes = len(wnids) if wnids is not None else int(labels.max()) + 1
  if wnids is not None and len(wnids) != num_classes:
    raise _fail(p, f"{len(wnids)} wnids but {num_classes} classes expected")
  if labels.min() < 0 or labels.max() >= num_classes:
    raise _fail(
        p,
        f"labels range over [{labels.min()}, {labels.max()}] but must lie in"
        f" [0, {num_classes})",
    )

  return data, offsets, labels.astype(np.int32), int(num_classes)


def _check_limit(limit_per_class: object) -> None:
  ok = limit_per_class is None or (
      isinstance(limit_per_class, (int, np.integer))
      and not isinstance(limit_per_class, bool)
      and limit_per_class >= 1
  )
  if not ok:
    raise UserInputError(
        "limit_per_class must be a positive integer or None, got"
        f" {limit_per_class!r}"
    )


def _first_per_class(
    labels: np.ndarray, num_classes: int, limit: int
) -> np.ndarray:
  """Indices of the first `limit` items of each class, in their file order."""
  return np.sort(
      np.concatenate(
          [np.flatnonzero(labels == c)[:limit] for c in range(num_classes)]
      )
  )


def load_npz(
    path: str | os.PathLike[str],
    limit_per_class: int | None = None,
    *,
    key_prefix: str = "",
    num_classes: int | None = None,
) -> LabelledImages:
  """Loads a JPEG-bytes npz (format in `shared/README.md`).

  Args:
    path: the .npz file.
    limit_per_class: keep only the first this-many images of each class.
    key_prefix: prefix of the keys inside the file (e.g. "test_" for the
      bundled two-split file).
    num_classes: expected number of classes; labels must lie in
      [0, num_classes). Default: len(wnids) if present, else max label + 1.

  Returns:
    The decoded set; arrays are read-only and shared with an in-process cache.

  Raises:
    UserInputError: missing or malformed file, naming it and what is wrong.
  """
  p = Path(path).expanduser()
  _check_limit(limit_per_class)
  if not p.is_file():
    raise UserInputError(f"data file not found: {p}")
  st = p.stat()
  return _load_npz_cached(
      str(p.resolve()),
      st.st_mtime_ns,
      st.st_size,
      None if limit_per_class is None else int(limit_per_class),
      key_prefix,
      num_classes,
  )


def clear_cache() -> None:
  """Drops every cached data set (frees memory)."""
  _load_npz_cached.cache_clear()
  _load_tfds_cached.cache_clear()


def _with_name(ds: LabelledImages, name: str) -> LabelledImages:
  return dataclasses.replace(ds, name=name)


@functools.lru_cache(maxsize=None)
def _resizer(side: int):
  """One jitted uint8 resize per target side (train and test splits share its compile)."""
  import jax
  import jax.numpy as jnp
  return jax.jit(lambda x: jnp.clip(jnp.round(jax.image.resize(
      x.astype(jnp.float32), (x.shape[0], side, side, x.shape[3]), "linear", antialias=True)),
      0, 255).astype(jnp.uint8))


def resize_images(ds: LabelledImages, side: int, chunk: int = 2048) -> LabelledImages:
  """The set with every image resized to side x side (bilinear, antialiased when shrinking).

  For a network designed for one input side probed on a set stored at another (the mini
  scale's 48 px stack on Tiny-ImageNet's 64 px or CIFAR-10's 32 px images): the whole
  image is kept, as the probes see it whole. A set already at `side` is returned as is.
  """
  if not isinstance(side, int) or isinstance(side, bool) or side < 1:
    raise UserInputError(f"resize side {side!r} must be a positive integer (e.g. 48), or 0 for "
                         "the images' own size.")
  n, h, w, c = ds.images.shape
  if (h, w) == (side, side):
    return ds
  shrink = _resizer(side)
  out = np.empty((n, side, side, c), np.uint8)
  for i in range(0, n, chunk):
    block = ds.images[i:i + chunk]
    if len(block) < chunk:  # one compiled shape: pad the last block
      block = np.concatenate([block, np.zeros((chunk - len(block),) + block.shape[1:], block.dtype)])
    out[i:i + chunk] = np.asarray(shrink(block))[:min(chunk, n - i)]
  return dataclasses.replace(ds, images=_readonly(out), name=f"{ds.name}@{side}px")


def load_split(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    limit_per_class: int | None = None,
) -> LabelledImages:
  """Loads split "train" or "test" of a named labelled data set.

  Args:
    name: "bundled_cifar10", "cifar10", "tiny_imagenet" or "tfds:<tfds name>"
      (e.g. "tfds:cifar10", "tfds:imagenet2012:5.1.0").
    split: "train" or "test" (for tiny_imagenet and tfds sets without a test
      split, "test" is the validation split).
    data_dir: folder holding `cifar10/`, `tiny_imagenet_200/` or the tfds data
      sets; default `DEFAULT_DATA_DIR`. Ignored for "bundled_cifar10".
    limit_per_class: keep only the first this-many images of each class (for
      npz sets only those are decoded; a tfds split is read whole first).

  Returns:
    The set, named "<name>/<split>".

  Raises:
    UserInputError: unknown name or split, missing or malformed data.
  """
  kind, where, key_prefix, num_classes, data_dir = _locate(name, split, data_dir, limit_per_class)
  if kind == "npz":
    ds = load_npz(where, limit_per_class, key_prefix=key_prefix, num_classes=num_classes)
    return _with_name(ds, f"{name.strip()}/{split}")
  if kind == "npz_parts":
    return _with_name(_load_parts(where, limit_per_class, num_classes), f"{name.strip()}/{split}")
  ds = _load_tfds_cached(where, split, str(data_dir.resolve()))
  if limit_per_class is None:
    return ds
  keep = _first_per_class(ds.labels, ds.num_classes, int(limit_per_class))
  return dataclasses.replace(
      ds,
      images=_readonly(ds.images[keep]),
      labels=_readonly(ds.labels[keep]),
  )


def _load_parts(paths: tuple[Path, ...], limit_per_class: int | None, num_classes: int
                ) -> LabelledImages:
  """Several npz files of one split, concatenated in order; `limit_per_class` keeps the first
  that-many images of each class of the whole, so the parts are decoded only as far as needed."""
  parts, taken = [], np.zeros(num_classes, np.int64)
  for path in paths:
    if limit_per_class is not None and taken.min() >= limit_per_class:
      break
    part = load_npz(path, num_classes=num_classes)
    labels = np.asarray(part.labels)
    if limit_per_class is None:
      keep = np.arange(len(labels))
    else:  # per class, only what the earlier parts left of the limit
      rank = np.zeros(len(labels), np.int64)
      for c in range(num_classes):
        where = np.flatnonzero(labels == c)
        rank[where] = taken[c] + np.arange(len(where))
      keep = np.flatnonzero(rank < limit_per_class)
    taken += np.bincount(labels[keep], minlength=num_classes)
    parts.append((part.images[keep], labels[keep]))
  images = np.concatenate([p[0] for p in parts])
  labels = np.concatenate([p[1] for p in parts])
  return LabelledImages(images=_readonly(images), labels=_readonly(labels), num_classes=num_classes,
                        name="+".join(p.stem for p in paths))


def _locate(
    name: str, split: str, data_dir: str | os.PathLike[str] | None, limit_per_class: object
) -> tuple[str, Any, str, int | None, Path]:
  """Checks a (name, split) and finds it: ("npz", path, key prefix, classes, data_dir)
  or ("tfds", tfds name, "", None, data_dir)."""
  if split not in SPLITS:
    raise UserInputError(f"unknown split {split!r}; use one of {list(SPLITS)}")
  _check_limit(limit_per_class)
  if not isinstance(name, str) or not name.strip():
    raise UserInputError(
        f"data set name must be a non-empty string, got {name!r}; valid names:"
        f" {', '.join(VALID_NAMES)}"
    )
  name = name.strip()
  data_dir = Path(
      DEFAULT_DATA_DIR if data_dir is None else data_dir
  ).expanduser()

  if name == "bundled_cifar10":
    if not BUNDLED_CIFAR10.is_file():
      raise UserInputError(
          f"the bundled probe set {BUNDLED_CIFAR10} is missing; reinstall"
          " mono_ssl or run `python -m mono_ssl.assets.make_assets`"
      )
    return "npz", BUNDLED_CIFAR10, f"{split}_", 10, data_dir

  if name in _NPZ_SETS:
    sub, files, num_classes = _NPZ_SETS[name]
    names = files[split] if isinstance(files[split], tuple) else (files[split],)
    paths = [data_dir / sub / f for f in names]
    for path, f in zip(paths, names):
      if not path.is_file():
        raise UserInputError(
            f"data set {name!r} ({split}) not found: looked for {path}; pass"
            " --config.probe.data_dir=DIR (or set data_dir / $MONO_SSL_DATA_DIR)"
            f" pointing at a folder containing {sub}/{f}"
            " (e.g. shared/data, or `python -m mono_ssl.prepare tiny_imagenet`), or use 'bundled_cifar10'"
        )
    if len(paths) > 1:
      return "npz_parts", tuple(paths), "", num_classes, data_dir
    return "npz", paths[0], "", num_classes, data_dir

  if name.startswith("tfds:"):
    tfds_name = name[len("tfds:") :].strip()
    if not tfds_name:
      raise UserInputError(
          f"data set name {name!r} lacks the tfds name; use e.g. 'tfds:cifar10'"
      )
    return "tfds", tfds_name, "", None, data_dir

  raise UserInputError(
      f"unknown data set name {name!r}; valid names: {', '.join(VALID_NAMES)}"
  )


def open_stream(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    side: int = 256,
    limit_per_class: int | None = None,
    field: str = "side",
    keep_aspect: bool = False,
) -> "streaming.StreamingImages":
  """Split "train" or "test" of a named data set, read batch by batch from disk.

  Each image is decoded when a batch asks for it, its short side resized to
  `side` and centre-cropped to side x side: a set of any size and of mixed
  image sizes (ImageNet) without holding it in memory. Same names as
  `load_split`; at an image's own (square) size the pixels equal `load_split`'s.
  `field` names `side` in errors (the config key it came from). With `keep_aspect`
  the probes read it through the authors' views of each rectangle instead
  (`streaming.train_view`, `streaming.test_view`).
  """
  if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 1:
    raise UserInputError(f"{field} must be a positive integer (the side, in px, of the streamed "
                         f"images), got {side!r}")
  kind, where, key_prefix, num_classes, data_dir = _locate(name, split, data_dir, limit_per_class)
  name = f"{name.strip()}/{split}"
  if kind == "npz_parts":
    raise UserInputError(f"data set {name!r} is held in several files and is read into memory, not "
                         f"streamed; set {field}=0 (its images are 64 px, they fit in memory).")
  if kind == "npz":
    path = Path(where)
    data, offsets, labels, num_classes = read_npz_records(path, key_prefix, num_classes)
    raw = data.tobytes()
    keep = (np.arange(len(labels)) if limit_per_class is None
            else _first_per_class(labels, num_classes, int(limit_per_class)))
    if len(keep) == 0:
      raise _fail(path, "it holds no images (or none survive limit_per_class)")

    def read(indices: np.ndarray) -> list[tuple[np.ndarray, int]]:
      return [(_decode_one(path, raw, offsets, int(keep[i]), side), int(labels[keep[i]]))
              for i in indices]

    return streaming.StreamingImages(read, len(keep), int(side), num_classes, name,
                                     label_reader=lambda: labels[keep], keep_aspect=keep_aspect)

  tfds_name = where
  source, num_classes, _ = tfds_source(tfds_name, split, str(data_dir.resolve()), encoded=True)

  def records(ids: list[int]) -> list[dict]:
    return source.__getitems__(ids) if hasattr(source, "__getitems__") else [source[i] for i in ids]

  @functools.cache
  def read_labels() -> np.ndarray:
    # One pass over the records, images left encoded (ImageNet: minutes of reading, once).
    out = np.empty(len(source), np.int32)
    for lo in range(0, len(source), _TFDS_CHUNK):
      ids = list(range(lo, min(lo + _TFDS_CHUNK, len(source))))
      out[lo:lo + len(ids)] = [int(r["label"]) for r in records(ids)]
    if len(out) and (out.min() < 0 or out.max() >= num_classes):
      raise UserInputError(f"tfds data set {tfds_name!r}: labels range over [{out.min()}, "
                           f"{out.max()}] outside [0, {num_classes}); the prepared data is "
                           "inconsistent, rebuild it")
    return out

  keep = None
  if limit_per_class is not None:
    keep = _first_per_class(read_labels(), num_classes, int(limit_per_class))

  def read_tfds(indices: np.ndarray) -> list[tuple[np.ndarray, int]]:
    ids = [int(i) if keep is None else int(keep[i]) for i in indices]
    out = []
    for i, rec in zip(ids, records(ids), strict=True):
      label = int(rec["label"])
      if not 0 <= label < num_classes:
        raise UserInputError(f"tfds data set {tfds_name!r}: record {i} has label {label} outside "
                             f"[0, {num_classes}); the prepared data is inconsistent, rebuild it")
      out.append((_decode_encoded(rec["image"], side, f"tfds data set {tfds_name!r} record {i}"),
                  label))
    return out

  def tfds_labels() -> np.ndarray:
    labels = read_labels()
    return labels if keep is None else labels[keep]

  size = len(source) if keep is None else len(keep)
  return streaming.StreamingImages(read_tfds, size, int(side), num_classes, name,
                                   label_reader=tfds_labels, keep_aspect=keep_aspect)


def _decode_encoded(data: bytes, side: int, what: str) -> np.ndarray:
  """A tfds record's encoded image as uint8 RGB, DCT-scaled toward `side` (`_decode_image`)."""
  try:
    return _decode_image(data, side)
  except Exception as e:  # Pillow raises many types for bad bytes.
    raise UserInputError(f"{what} does not decode ({type(e).__name__}: {e}); "
                         "rebuild the prepared data set") from e


def _tfds_missing(tfds_name: str, data_dir: str, why: str) -> UserInputError:
  return UserInputError(
      f"tfds data set {tfds_name!r} is not usable in data_dir {data_dir}"
      f" ({why}); nothing is downloaded: run `tfds build {tfds_name}"
      f" --data_dir={data_dir} --file_format=array_record` on a machine with"
      " internet and copy the folder here, or point data_dir at a prepared copy"
  )


def tfds_image(rec: dict, i: int, tfds_name: str) -> np.ndarray:
  """A tfds record's image as uint8 RGB (H, W, 3); greyscale is repeated to RGB."""
  img = np.asarray(rec["image"])
  if img.ndim == 2:
    img = img[..., None]
  if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] not in (1, 3):
    raise UserInputError(
        f"tfds data set {tfds_name!r}: image {i} is {img.dtype}"
        f" {img.shape}; only uint8 greyscale or RGB images are supported"
    )
  if img.shape[-1] == 1:
    img = np.repeat(img, 3, axis=-1)
  return img


def tfds_source(tfds_name: str, split: str, data_dir: str, encoded: bool = False
                ) -> tuple[Any, int, str]:
  """A prepared tfds split's random-access source, its class count and tfds split name.

  Never downloads; TensorFlow-free (array_record or parquet files). `encoded`:
  records hold the image file's bytes, decoded by the caller.
  """
  # Imported lazily: tensorflow_datasets is heavy and only this path needs it.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  try:
    builder = tfds.builder(tfds_name, data_dir=data_dir)
  except Exception as e:  # DatasetNotFoundError, bad version, ...
    why = " ".join(str(e).split("\n")[0].split())[:300]
    raise _tfds_missing(
        tfds_name, data_dir, f"{type(e).__name__}: {why}"
    ) from e
  if not builder.is_prepared():
    raise _tfds_missing(
        tfds_name, data_dir, f"not prepared: no data in {builder.data_dir}"
    )
  file_format = getattr(builder.info, "file_format", None)
  fmt = getattr(file_format, "value", str(file_format))
  if fmt not in ("array_record", "parquet"):
    raise _tfds_missing(
        tfds_name,
        data_dir,
        f"prepared as {fmt!r}, which has no random access without TensorFlow",
    )

  available = list(builder.info.splits.keys())
  if split == "train":
    tfds_split = "train" if "train" in available else None
  else:
    tfds_split = next(
        (s for s in test_split_order(tfds_name) if s in available), None
    )
  if tfds_split is None:
    raise UserInputError(
        f"tfds data set {tfds_name!r} has no split for {split!r} (it has"
        f" {available}); use a data set with train and test/validation splits"
    )

  features = builder.info.features
  for key in ("image", "label"):
    if key not in features:
      raise UserInputError(
          f"tfds data set {tfds_name!r} has no {key!r} feature (it has"
          f" {list(features.keys())}); use an image classification data set"
      )
  num_classes = getattr(features["label"], "num_classes", None)
  if not num_classes:
    raise UserInputError(
        f"tfds data set {tfds_name!r}: 'label' is not a ClassLabel feature;"
        " use an image classification data set"
    )

  try:
    decoders = {"image": tfds.decode.SkipDecoding()} if encoded else None
    source = builder.as_data_source(split=tfds_split, decoders=decoders)
  except Exception as e:
    raise _tfds_missing(
        tfds_name,
        data_dir,
        f"{type(e).__name__}: {' '.join(str(e).split())[:300]}",
    ) from e
  if len(source) == 0:
    raise _tfds_missing(tfds_name, data_dir, f"split {tfds_split!r} is empty")
  check_labelled(tfds_name, tfds_split, source[0]["label"], available)
  return source, int(num_classes), tfds_split


def test_split_order(tfds_name: str) -> tuple[str, ...]:
  """The tfds splits a probe's "test" reads, first found first.

  imagenet2012's `test` split (tfds 5.1.0 on) holds the 100k unlabelled challenge
  images (every label -1): its labelled held-out set is `validation`, the
  authors' evaluation set too.
  """
  if tfds_name.split("/")[0].split(":")[0] == "imagenet2012":
    return ("validation",)
  return ("test", "validation")


def check_labelled(tfds_name: str, split: str, first_label: Any, available: list[str]) -> None:
  """Refuses a split without labels (tfds writes -1), when the data is opened, before any
  training: otherwise the probes would train for hours and fail at the first test batch."""
  if int(np.asarray(first_label)) < 0:
    others = [s for s in available if s != split]
    raise UserInputError(
        f"tfds data set {tfds_name!r}: split {split!r} is unlabelled (its labels are -1); probe "
        f"on a labelled split (this set also has {others})" if others else
        f"tfds data set {tfds_name!r}: split {split!r} is unlabelled (its labels are -1); use a "
        "data set whose train and test/validation splits carry labels")



@functools.lru_cache(maxsize=4)
def _load_tfds_cached(
    tfds_name: str, split: str, data_dir: str
) -> LabelledImages:
  """Reads a prepared tfds split fully into memory, TensorFlow-free.

  Everything is held in memory: right for CIFAR/Tiny-ImageNet sized sets; a
  full ImageNet streams instead (`open_stream`).
  """
  source, num_classes, tfds_split = tfds_source(tfds_name, split, data_dir)
  n = len(source)
  images: np.ndarray | None = None
  labels = np.empty(n, np.int32)
  for lo in range(0, n, _TFDS_CHUNK):
    idx = list(range(lo, min(lo + _TFDS_CHUNK, n)))
    records: list[dict[str, Any]]
    if hasattr(source, "__getitems__"):
      records = source.__getitems__(idx)
    else:
      records = [source[i] for i in idx]
    for i, rec in zip(idx, records, strict=True):
      img = tfds_image(rec, i, tfds_name)
      if images is None:
        images = np.empty((n, *img.shape), np.uint8)
      elif img.shape != images.shape[1:]:
        raise UserInputError(
            f"tfds data set {tfds_name!r} ({tfds_split}): image {i} is"
            f" {img.shape[1]}x{img.shape[0]} but image 0 is"
            f" {images.shape[2]}x{images.shape[1]}; only data sets of one image"
            " size are held in memory: set probe.image_size (e.g. 256) to stream"
            " and resize it"
        )
      images[i] = img
      labels[i] = int(rec["label"])
  assert images is not None
  if labels.min() < 0 or labels.max() >= num_classes:
    raise UserInputError(
        f"tfds data set {tfds_name!r}: labels range over [{labels.min()},"
        f" {labels.max()}] outside [0, {num_classes}); the prepared data is"
        " inconsistent, rebuild it"
    )
  return LabelledImages(
      images=_readonly(images),
      labels=_readonly(labels),
      num_classes=int(num_classes),
      name=f"tfds:{tfds_name}/{split}",
  )
