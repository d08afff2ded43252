"""Labelled image sets read batch by batch from disk, for sets too large to hold in memory.

ImageNet's 1.28 M training images at 256 px are ~250 GB decoded; the paper's
probes (and the supervised and full-data rows at paper scale) read it as a
stream: each batch's images are decoded by worker threads (Pillow releases
the GIL while it decodes and resizes), brought to one square size on the host,
and a background thread keeps the next batches ready while the device works.

`datasets.open_stream(name, split, data_dir, side)` builds one from the same
sources as `datasets.load_split`.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import queue
import threading
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

# indices -> [(uint8 image (H, W, 3) of any size, label), ...]
Reader = Callable[[np.ndarray], list]


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

  def fetch(self, indices: np.ndarray, pool: concurrent.futures.Executor | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels at `indices` (0 <= i < len), in that order."""
    indices = np.asarray(indices, np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= self.size):
      raise IndexError(f"{self.name}: indices must lie in [0, {self.size}), got "
                       f"[{indices.min()}, {indices.max()}]")
    chunks = np.array_split(indices, max(1, min(self.workers, len(indices) // 16)))

    def one_chunk(chunk: np.ndarray) -> list:
      return [(square_resize(img, self.side), label) for img, label in self.reader(chunk)]

    if pool is None or len(chunks) == 1:
      parts = [one_chunk(c) for c in chunks]
    else:
      parts = list(pool.map(one_chunk, chunks))
    items = [item for part in parts for item in part]
    images = np.empty((len(items), self.side, self.side, 3), np.uint8)
    for j, (img, _) in enumerate(items):
      images[j] = img
    labels = np.fromiter((label for _, label in items), np.int32, len(items))
    return images, labels

  def batches(self, index_batches: Iterable[np.ndarray], prefetch: int = 2
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`fetch` of each index batch in turn, `prefetch` batches read ahead in a background thread.

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
            ready.put(self.fetch(idx, pool))
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
