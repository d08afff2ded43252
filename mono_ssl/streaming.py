"""Labelled image sets read batch by batch from disk, for sets too large to hold in memory.

ImageNet's 1.28 M training images at 256 px are ~250 GB decoded; the paper's
probes (and the supervised and full-data rows at paper scale) read it as a
stream: each batch's images are decoded by worker threads (Pillow releases
the GIL while it decodes and resizes), brought to one square size on the host,
and a background thread keeps the next batches ready while the device works.

A stream opened with `keep_aspect` instead hands each image to a *view*: the
probes' train view is the authors' random-resized crop of the decoded image,
their test view the ten crops of the image resized to a short side of 256
with its aspect kept (`yukimasano/linear-probes` data.py, `get_standard_data_loader`:
`RandomResizedCrop(224)` + flip for training, `Resize(256)` + `TenCrop(224)` for
validation); a centre 256 x 256 square would lose the rectangle's corners.

`datasets.open_stream(name, split, data_dir, side)` builds one from the same
sources as `datasets.load_split`.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import queue
import threading
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

# indices -> [(uint8 image (H, W, 3) of any size, label), ...]
Reader = Callable[[np.ndarray], list]
# (decoded uint8 image (H, W, 3), the view's id) -> uint8 array of a fixed shape
View = Callable[[np.ndarray, int], np.ndarray]


def square_resize(img: np.ndarray, side: int) -> np.ndarray:
  """Short side resized to `side` (bicubic, antialiased), then the centre side x side crop.

  An image already side x side is returned unchanged (no resampling), so a
  stream at a set's own size equals the in-memory set.
  """
  h, w = img.shape[:2]
  if (h, w) == (side, side):
    return img
  scale = side / min(h, w)
  nh, nw = max(side, round(h * scale)), max(side, round(w * scale))
  pil = Image.fromarray(img).resize((nw, nh), Image.BICUBIC)
  top, left = (nh - side) // 2, (nw - side) // 2
  return np.asarray(pil.crop((left, top, left + side, top + side)))


def short_side_resize(img: np.ndarray, side: int) -> np.ndarray:
  """Short side resized to `side`, aspect kept (torchvision `Resize(side)` on a PIL image:
  bilinear, the long side int(side * long / short))."""
  h, w = img.shape[:2]
  if min(h, w) == side:
    return img
  nh, nw = (side, int(side * w / h)) if h <= w else (int(side * h / w), side)
  return np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))


def five_crops(img: np.ndarray, crop: int) -> np.ndarray:
  """The four corner crops and the centre crop, uint8 (5, crop, crop, 3), in torchvision
  `FiveCrop`'s order (top-left, top-right, bottom-left, bottom-right, centre); the
  evaluation adds their mirror images for the ten crops."""
  h, w = img.shape[:2]
  if crop > min(h, w):
    raise ValueError(f"crop {crop} is larger than the {h}x{w} image")
  ct, cl = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
  offsets = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), (ct, cl)]
  return np.stack([img[t:t + crop, s:s + crop] for t, s in offsets])


def random_resized_crop(img: np.ndarray, rng: np.random.Generator, out: int,
                        scale: tuple = (0.08, 1.0), ratio: tuple = (3 / 4, 4 / 3),
                        flip: bool = True) -> np.ndarray:
  """torchvision `RandomResizedCrop(out, scale, ratio)` (+ `RandomHorizontalFlip`) of one
  image on the host: ten tries at a box of area fraction U(scale) and log-uniform
  aspect ratio, else the centre crop of the clamped ratio; resized bilinear to out x out."""
  h, w = img.shape[:2]
  area = h * w
  box = None
  for _ in range(10):
    target = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
    if 0 < cw <= w and 0 < ch <= h:
      top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
      box = (left, top, left + cw, top + ch)
      break
  if box is None:  # torchvision's fallback: the whole image, its ratio clamped, centred
    in_ratio = w / h
    if in_ratio < min(ratio):
      cw, ch = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
      cw, ch = int(round(h * max(ratio))), h
    else:
      cw, ch = w, h
    top, left = (h - ch) // 2, (w - cw) // 2
    box = (left, top, left + cw, top + ch)
  # Cut, then resize (torchvision's resized_crop): PIL's `box=` would let the filter read
  # pixels outside the box.
  left, top, right, bottom = box
  crop = np.asarray(Image.fromarray(img[top:bottom, left:right]).resize((out, out), Image.BILINEAR))
  if flip and rng.uniform() < 0.5:
    crop = crop[:, ::-1]
  return np.ascontiguousarray(crop)


def train_view(crop: int, scale: tuple, seed: int, flip: bool = True) -> View:
  """The probes' train view: `random_resized_crop` of the decoded image, drawn from a
  generator seeded by (seed, view id): crop i is a pure function of (seed, i)."""
  def view(img: np.ndarray, view_id: int) -> np.ndarray:
    rng = np.random.default_rng([seed, int(view_id)])
    return random_resized_crop(img, rng, crop, tuple(scale), flip=flip)
  return view


def test_view(side: int, crop: int, ten_crop: bool = True) -> View:
  """The probes' test view of the image resized to short side `side`: its `five_crops`
  (the evaluation mirrors them: ten crops), or without ten_crop its centre crop, (1, crop, crop, 3)."""
  def view(img: np.ndarray, _: int) -> np.ndarray:
    crops = five_crops(short_side_resize(img, side), crop)
    return crops if ten_crop else crops[4:]
  return view


@dataclasses.dataclass(frozen=True)
class StreamingImages:
  """A labelled image set read on demand: `fetch(indices)` -> (uint8 (B, side, side, 3), int32 (B,))."""

  reader: Reader
  size: int
  side: int
  num_classes: int
  name: str
  workers: int = 8  # decode threads per batch
  label_reader: Callable[[], np.ndarray] | None = None  # every label, in index order
  # The probes read this stream through views of each decoded image (`train_view`,
  # `test_view`) instead of the centre side x side square.
  keep_aspect: bool = False

  def __len__(self) -> int:
    return self.size

  @functools.cached_property
  def labels(self) -> np.ndarray:
    """Every label (int32, read once): the supervised baseline's label table."""
    if self.label_reader is None:
      labels = np.concatenate([self.fetch(np.arange(lo, min(lo + 256, self.size)))[1]
                               for lo in range(0, self.size, 256)])
    else:
      labels = np.asarray(self.label_reader(), np.int32)
    labels.setflags(write=False)
    return labels

  def fetch(self, indices: np.ndarray, pool: concurrent.futures.Executor | None = None,
            view: View | None = None, view_ids: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels at `indices` (0 <= i < len), in that order.

    Each decoded image becomes `view(image, view_id)` (`view_ids` default: `indices`),
    by default its centre side x side square.
    """
    indices = np.asarray(indices, np.int64)
    ids = indices if view_ids is None else np.asarray(view_ids, np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= self.size):
      raise IndexError(f"{self.name}: indices must lie in [0, {self.size}), got "
                       f"[{indices.min()}, {indices.max()}]")
    n_chunks = max(1, min(self.workers, len(indices) // 16))
    chunks = list(zip(np.array_split(indices, n_chunks), np.array_split(ids, n_chunks)))
    view = view or (lambda img, _: square_resize(img, self.side))

    def one_chunk(chunk: tuple) -> list:
      return [(view(img, i), label) for (img, label), i in zip(self.reader(chunk[0]), chunk[1])]

    if pool is None or len(chunks) == 1:
      parts = [one_chunk(c) for c in chunks]
    else:
      parts = list(pool.map(one_chunk, chunks))
    items = [item for part in parts for item in part]
    shape = items[0][0].shape if items else (self.side, self.side, 3)
    images = np.empty((len(items),) + shape, np.uint8)
    for j, (img, _) in enumerate(items):
      images[j] = img
    labels = np.fromiter((label for _, label in items), np.int32, len(items))
    return images, labels

  def batches(self, index_batches: Iterable[np.ndarray], prefetch: int = 2,
              view: View | None = None, id_offset: int = 0
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`fetch` of each index batch in turn, `prefetch` batches read ahead in a background thread.

    `view` as in `fetch`, each image's view id its index + `id_offset` (the probe adds
    epoch x size, so every epoch draws fresh crops).

    An error while reading (a corrupt file) is raised here, in the caller's thread.
    """
    ready: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()
    done = object()

    def produce() -> None:
      with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
        try:
          for idx in index_batches:
            if stop.is_set():
              return
            idx = np.asarray(idx, np.int64)
            ready.put(self.fetch(idx, pool, view, idx + id_offset))
          ready.put(done)
        except BaseException as e:  # handed to the consumer, which raises it
          ready.put(e)

    thread = threading.Thread(target=produce, daemon=True, name=f"stream {self.name}")
    thread.start()
    try:
      while True:
        item = ready.get()
        if item is done:
          return
        if isinstance(item, BaseException):
          raise item
        yield item
    finally:
      stop.set()
      while thread.is_alive():  # unblock a producer waiting on a full queue
        try:
          ready.get_nowait()
        except queue.Empty:
          thread.join(timeout=0.05)


def image_side(ds) -> int:
  """The square side of a set's images: a stream's `side` or an in-memory set's height."""
  return ds.side if isinstance(ds, StreamingImages) else int(ds.images.shape[1])
