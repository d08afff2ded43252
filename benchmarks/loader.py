"""The streamed ImageNet-style loader against grain's, on the same synthetic JPEGs (issue 20).

  python benchmarks/loader.py            # 512 JPEGs of ImageNet's sizes, 4 passes, ~2 min on 2 cores
  python benchmarks/loader.py --quick    # 48 JPEGs (a test runs it)

Both read the same npz of JPEG bytes (the layout of `datasets.open_stream`) and produce
the same batches: each image decoded (libjpeg DCT scaling toward 256, as the stream
does) and brought to 256 x 256 (short side 256, centre crop). Measured in one process, one
after the other, on this host's cores:
- `stream`: `StreamingImages.batches` (this project: a thread pool, Pillow releases the GIL);
- `stream+views`: the same with the probes' train view (`streaming.train_view`: the
  authors' random-resized 224 crop of each decoded image, `probe.keep_aspect`);
- `grain threads`: `grain.MapDataset.source(...).map(decode).batch(B)` read through
  `to_iter_dataset(ReadOptions(num_threads=N))`;
- `grain processes`: the same with `mp_prefetch` over one worker process per core.
Each figure is decoded images/s and per host core, and the ratio to `stream` in the same
run. grain is optional (`pip install grain`); without it its rows are skipped.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mono_ssl import datasets, streaming  # noqa: E402

SIDE = 256
# ImageNet's train images: mostly 500 x 375 / 375 x 500 / 500 x 333, some larger.
JPEG_SIZES = ((500, 375), (375, 500), (500, 333), (640, 480), (500, 500), (800, 600))


def write_jpegs(folder: Path, count: int) -> Path:
  """`count` JPEGs of ImageNet's typical sizes in the npz layout (cifar10/train.npz)."""
  from PIL import Image
  rng = np.random.default_rng(0)
  files = []
  for i in range(count):
    w, h = JPEG_SIZES[i % len(JPEG_SIZES)]
    # Smooth noise: compresses about as a photograph does (~100-150 kB at quality 90).
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((w, h), Image.BICUBIC).save(buf, "JPEG", quality=90)
    files.append(buf.getvalue())
  offsets = np.cumsum([0] + [len(f) for f in files]).astype(np.int64)
  (folder / "cifar10").mkdir(parents=True, exist_ok=True)
  path = folder / "cifar10" / "train.npz"
  np.savez(path, data=np.frombuffer(b"".join(files), np.uint8), offsets=offsets,
           labels=(np.arange(count) % 10).astype(np.uint8))
  return path


class NpzJpegSource:
  """grain's random-access source over the same npz: record i -> (JPEG bytes, label).
  Picklable (it holds the path and opens the file lazily), so worker processes can read it."""

  def __init__(self, path: Path):
    self.path, self._arrays = str(path), None

  def _load(self):
    if self._arrays is None:
      with np.load(self.path) as z:
        self._arrays = (z["data"].tobytes(), z["offsets"], z["labels"])
    return self._arrays

  def __len__(self) -> int:
    return len(self._load()[2])

  def __getitem__(self, i: int):
    raw, offsets, labels = self._load()
    return raw[offsets[i]:offsets[i + 1]], int(labels[i])

  def __getstate__(self):
    return {"path": self.path, "_arrays": None}


def decode_square(record) -> dict:
  data, label = record
  img = datasets._decode_image(data, SIDE)  # the stream's own decoder (DCT-scaled toward SIDE)
  return {"image": streaming.square_resize(img, SIDE), "label": np.int32(label)}


def time_batches(batches, count: int, passes: int) -> float:
  """Images/s of an iterator of batches over `passes` - 1 passes of `count` images, read
  after one warm-up pass (thread pools and worker processes started, the file cache warm).
  Each loader reads at most 2 batches ahead, so over many timed batches the figure is a
  steady-state rate, not a read-ahead buffer drained."""
  it = iter(batches)
  size = lambda b: len(b[1]) if isinstance(b, tuple) else len(b["label"])  # noqa: E731
  n = 0
  while n < count:
    n += size(next(it))
  t0 = time.perf_counter()
  n = 0
  while n < (passes - 1) * count:
    n += size(next(it))
  return n / (time.perf_counter() - t0)


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--quick", action="store_true", help="48 images (the test's size)")
  ap.add_argument("--count", type=int, default=0, help="images (default 512; --quick 48)")
  ap.add_argument("--batch", type=int, default=0, help="batch size (default 64; --quick 16)")
  ap.add_argument("--passes", type=int, default=0,
                  help="passes over the images, the first a warm-up (default 4; --quick 2)")
  args = ap.parse_args(argv)
  count = args.count or (48 if args.quick else 512)
  batch = args.batch or (16 if args.quick else 64)
  passes = args.passes or (2 if args.quick else 4)
  cores = os.cpu_count() or 1
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    path = write_jpegs(Path(tmp), count)
    stream = datasets.open_stream("cifar10", "train", tmp, SIDE)
    spans = [np.arange(lo, min(lo + batch, count)) for lo in range(0, count, batch)]
    spans = spans * passes  # the first pass warms up (`time_batches`)
    rows.append(("stream", time_batches(stream.batches(spans), count, passes), stream.workers))
    view = streaming.train_view(224, (0.08, 1.0), seed=0)
    rows.append(("stream+views", time_batches(stream.batches(spans, view=view), count, passes),
                 stream.workers))
    try:
      import grain
      from absl import flags
      flags.FLAGS.mark_as_parsed()  # grain reads absl flags; this script has none of its own
    except ImportError:
      print("grain is not installed (pip install grain): its rows are skipped")
      grain = None
    if grain is not None:
      # grain's own pattern: decode per record, read ahead per record, batch after. Read-ahead
      # is bounded to about one batch so that the timed passes measure decoding, not a buffer.
      ds = grain.MapDataset.source(NpzJpegSource(path)).repeat(passes).map(decode_square)
      threads = ds.to_iter_dataset(grain.ReadOptions(num_threads=stream.workers,
                                                     prefetch_buffer_size=batch)).batch(batch)
      rows.append(("grain threads", time_batches(threads, count, passes), stream.workers))
      per_worker = ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=1))
      procs = per_worker.batch(batch).mp_prefetch(grain.MultiprocessingOptions(
          num_workers=cores, per_worker_buffer_size=1))
      rows.append(("grain processes", time_batches(procs, count, passes), cores))
  ref = rows[0][1]
  print(f"{count} synthetic JPEGs of ImageNet's sizes -> {SIDE} px, batches of {batch}, "
        f"{cores} host cores")
  print("| loader | workers | images/s | per core | vs stream |")
  print("|---|---:|---:|---:|---:|")
  for name, ips, workers in rows:
    print(f"| {name} | {workers} | {ips:.0f} | {ips / min(cores, workers):.0f} | "
          f"{ips / ref:.2f} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
