"""The virtual patch data set: patch i is a pure function of (images, seed, i), made on device.

The authors' generator (single_img_pretraining) writes 1.28M JPEG patches to
disk. Here every patch is computed on demand on device, by two jitted programs
run just before each train step (`PatchGenerator`; `make_patches` for one-off
calls): the geometry (`sample_geometry`), then the colour jitter (`jitter_patches`):

  1. random square crop, side = `initial_crop_frac` x the image's short side
     (at the image centre with `initial_crop_fixed`: the ablation's "no augmentation");
  2. random-resized crop of that square (area fraction in `rrc_scale`, aspect
     ratio log-uniform in `rrc_ratio`), resized to a canvas of ceil(sqrt(2) S);
  3. random affine: rotation and x-shear, each uniform in +-`rotation_deg` /
     +-`shear_deg`, black fill;
  4. centre crop to S (`patch_size`), which removes the corners a rotation leaves;
  5. the method's own random-resized crop (`method_crop_scale`) to `out_size`
     and a horizontal flip;
  6. colour jitter (brightness, contrast, saturation, hue) with probability
     `jitter_prob`.

Steps 1-5 are all affine maps of the output pixel grid, so they are composed
into ONE map from output pixels to source pixels and the image is sampled
once. Downscaling a 1000-px crop to a 32-px patch must be antialiased: the
source image is stored as a mip-map pyramid (levels made by Pillow's bicubic
resize, which is antialiased) and each patch is sampled trilinearly at the
level that matches its own scale factor. All pyramids of all source images
live in one flat uint8 array, so a batch is a handful of gathers.

Colour jitter runs after the method's crop (the authors run it before); only
contrast depends on the crop, through the image mean, so the difference is
small and it lets the whole geometry be one resample.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import math
from typing import Sequence

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from mono_ssl import sharding as shd
from mono_ssl.errors import UserInputError


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Switches and parameters of every augmentation step (see module docstring)."""
  out_size: int = 32
  patch_size: int = 64
  initial_crop: bool = True
  initial_crop_frac: float = 0.5
  initial_crop_fixed: bool = False  # True: the square sits at the centre, the same for every patch
  rrc: bool = True
  rrc_scale: tuple[float, float] = (0.002, 1.0)
  rrc_ratio: tuple[float, float] = (3 / 4, 4 / 3)
  affine: bool = True
  rotation_deg: float = 30.0
  shear_deg: float = 30.0
  corner_free: bool = True
  method_crop: bool = True
  method_crop_scale: tuple[float, float] = (0.08, 1.0)
  flip: bool = True
  jitter_prob: float = 0.5
  brightness: float = 0.4
  contrast: float = 0.4
  saturation: float = 0.4
  hue: float = 0.1
  antialias: bool = True

  @classmethod
  def from_config(cls, cfg) -> "AugmentConfig":
    """Builds from a ConfigDict/mapping; tuples may come as lists."""
    kw = {}
    for f in dataclasses.fields(cls):
      if f.name in cfg:
        v = cfg[f.name]
        kw[f.name] = tuple(v) if isinstance(v, (list, tuple)) else v
    out = cls(**kw)
    out.validate()
    return out

  def validate(self) -> None:
    """Refuses impossible sizes and ranges with a message naming the field."""
    for name in ("out_size", "patch_size"):
      if getattr(self, name) < 1:
        raise UserInputError(f"aug.{name}={getattr(self, name)} must be a positive pixel count.")
    for name in ("rrc_scale", "method_crop_scale"):
      lo, hi = getattr(self, name)
      if not 0 < lo <= hi <= 1:
        raise UserInputError(f"aug.{name}={getattr(self, name)} must satisfy 0 < low <= high <= 1.")
    lo, hi = self.rrc_ratio
    if not 0 < lo <= hi:
      raise UserInputError(f"aug.rrc_ratio={self.rrc_ratio} must satisfy 0 < low <= high.")
    if not 0 < self.initial_crop_frac <= 1:
      raise UserInputError(f"aug.initial_crop_frac={self.initial_crop_frac} must be in (0, 1].")
    if self.initial_crop_fixed and not self.initial_crop:
      raise UserInputError("aug.initial_crop_fixed=True fixes the initial crop, but "
                           "aug.initial_crop=False turns it off; set one of them the other way.")
    if not 0 <= self.jitter_prob <= 1:
      raise UserInputError(f"aug.jitter_prob={self.jitter_prob} must be in [0, 1].")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ImageBank:
  """Mip-map pyramids of one or more source images, packed for gathers on device.

  pixels:  uint8 (P, 3), every level of every image, row-major, concatenated.
  offsets: int32 (n_images, n_levels), flat index of each level's first pixel.
  heights, widths: int32 (n_images, n_levels), each level's size.
  """
  pixels: jax.Array
  offsets: jax.Array
  heights: jax.Array
  widths: jax.Array

  @property
  def num_images(self) -> int:
    return self.offsets.shape[0]

  @property
  def num_levels(self) -> int:
    return self.offsets.shape[1]

  @classmethod
  def from_images(cls, images: Sequence[np.ndarray], num_levels: int | None = None,
                  min_level_side: int = 8) -> "ImageBank":
    """Builds the pyramids on the host (Pillow bicubic, antialiased) once per run.

    num_levels defaults to as many halvings as the smallest image allows
    while its short side stays >= min_level_side.
    """
    if not images:
      raise UserInputError("no source images given: pass at least one image.")
    shapes = [im.shape for im in images]
    for im in images:
      if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
        raise UserInputError(f"source images must be uint8 (H, W, 3); got {im.dtype} {im.shape}.")
    if num_levels is None:
      short = min(min(s[0], s[1]) for s in shapes)
      num_levels = max(1, int(math.floor(math.log2(max(short, 1) / min_level_side))) + 1)
    chunks, offsets, heights, widths = [], [], [], []
    pos = 0
    for im in images:
      h0, w0 = im.shape[:2]
      pil = Image.fromarray(im)
      row_o, row_h, row_w = [], [], []
      for level in range(num_levels):
        h, w = max(1, round(h0 / 2**level)), max(1, round(w0 / 2**level))
        arr = im if level == 0 else np.asarray(pil.resize((w, h), Image.BICUBIC))
        chunks.append(arr.reshape(-1, 3))
        row_o.append(pos)
        row_h.append(h)
        row_w.append(w)
        pos += h * w
      offsets.append(row_o)
      heights.append(row_h)
      widths.append(row_w)
    if pos >= 2**31:
      raise UserInputError(f"source images hold {pos} pixels with their pyramids, over the "
                           "2^31 a gather can index: lower data.max_side.")
    return cls(pixels=jnp.asarray(np.concatenate(chunks)),
               offsets=jnp.asarray(offsets, jnp.int32),
               heights=jnp.asarray(heights, jnp.int32),
               widths=jnp.asarray(widths, jnp.int32))


  @classmethod
  def from_images_array(cls, images: np.ndarray) -> "ImageBank":
    """A one-level bank of N same-size images (N, H, W, 3): a labelled data set.

    Its arrays stay on the host (numpy): callers place them once with
    `sharding.to_global`, so no copy goes to a device and back first.
    """
    n, h, w, _ = images.shape
    if n * h * w >= 2**31:
      raise UserInputError(f"{n} images of {h}x{w} px exceed the 2^31 pixels a gather can index.")
    return cls(pixels=np.ascontiguousarray(images).reshape(-1, 3),
               offsets=(np.arange(n) * h * w)[:, None].astype(np.int32),
               heights=np.full((n, 1), h, np.int32), widths=np.full((n, 1), w, np.int32))


def _sample_level(bank: ImageBank, img: jax.Array, level: jax.Array,
                  ys: jax.Array, xs: jax.Array) -> jax.Array:
  """Bilinear sample of one pyramid level at level-0 continuous coords (pixel centres at +0.5)."""
  h0 = bank.heights[img, 0].astype(jnp.float32)
  w0 = bank.widths[img, 0].astype(jnp.float32)
  hl, wl = bank.heights[img, level], bank.widths[img, level]
  y = ys * (hl.astype(jnp.float32) / h0) - 0.5
  x = xs * (wl.astype(jnp.float32) / w0) - 0.5
  # Clamping per level keeps a bilinear tap from reading the next level's pixels.
  y = jnp.clip(y, 0.0, (hl - 1).astype(jnp.float32))
  x = jnp.clip(x, 0.0, (wl - 1).astype(jnp.float32))
  y0f, x0f = jnp.floor(y), jnp.floor(x)
  wy, wx = (y - y0f)[..., None], (x - x0f)[..., None]
  y0, x0 = y0f.astype(jnp.int32), x0f.astype(jnp.int32)
  y1, x1 = jnp.minimum(y0 + 1, hl - 1), jnp.minimum(x0 + 1, wl - 1)
  base = bank.offsets[img, level]

  def tap(yy, xx):
    return bank.pixels[base + yy * wl + xx].astype(jnp.float32)

  top = tap(y0, x0) * (1 - wx) + tap(y0, x1) * wx
  bottom = tap(y1, x0) * (1 - wx) + tap(y1, x1) * wx
  return top * (1 - wy) + bottom * wy


def _random_box(key: jax.Array, region_h, region_w, scale, ratio, tries: int = 10):
  """torchvision-style random-resized-crop box inside a region: (top, left, h, w).

  Retries `tries` times (vectorised) like the authors' generator; if every try
  is invalid (only possible for area fractions near 1), the box is clipped to
  the region rather than falling back to a centre crop.
  """
  k_area, k_ratio, k_y, k_x = jax.random.split(key, 4)
  area = region_h * region_w * jax.random.uniform(k_area, (tries,), minval=scale[0], maxval=scale[1])
  log_r = jax.random.uniform(k_ratio, (tries,), minval=math.log(ratio[0]), maxval=math.log(ratio[1]))
  r = jnp.exp(log_r)
  w = jnp.sqrt(area * r)
  h = jnp.sqrt(area / r)
  valid = (w <= region_w) & (h <= region_h)
  first = jnp.argmax(valid)
  h = jnp.minimum(h[first], region_h)
  w = jnp.minimum(w[first], region_w)
  top = jax.random.uniform(k_y) * (region_h - h)
  left = jax.random.uniform(k_x) * (region_w - w)
  return top, left, h, w


def colour_jitter(key: jax.Array, x: jax.Array, cfg: AugmentConfig) -> jax.Array:
  """torchvision-style ColorJitter of a batch of float images in [0, 1], (B, H, W, 3).

  Each image draws its own factors from its own key (`key` has one key per
  image): brightness, contrast and saturation uniform in [1 - a, 1 + a], hue
  shift uniform in [-hue, hue]; the whole jitter applies with prob jitter_prob.
  Fixed order brightness, contrast, saturation, hue (torchvision shuffles it).
  """
  u = jax.vmap(lambda k: jax.random.uniform(k, (5,)))(key)

  def per_image(col: int, amount: float) -> jax.Array:
    lo = max(0.0, 1.0 - amount)
    return (lo + (1.0 + amount - lo) * u[:, col])[:, None, None, None]

  y = jnp.clip(x * per_image(1, cfg.brightness), 0.0, 1.0)
  grey_mean = jnp.mean(pix.rgb_to_grayscale(y, keep_dims=True), axis=(1, 2, 3), keepdims=True)
  y = jnp.clip(grey_mean + per_image(2, cfg.contrast) * (y - grey_mean), 0.0, 1.0)
  grey = pix.rgb_to_grayscale(y, keep_dims=True)
  y = jnp.clip(grey + per_image(3, cfg.saturation) * (y - grey), 0.0, 1.0)
  h, s, v = jnp.split(pix.rgb_to_hsv(y), 3, axis=-1)
  h = (h + ((2.0 * u[:, 4] - 1.0) * cfg.hue)[:, None, None, None]) % 1.0
  y = pix.hsv_to_rgb(jnp.concatenate([h, s, v], axis=-1))
  y = jnp.clip(y, 0.0, 1.0)
  return jnp.where((u[:, 0] < cfg.jitter_prob)[:, None, None, None], y, x)


def patch_geometry(key: jax.Array, src_h: jax.Array, src_w: jax.Array, cfg: AugmentConfig,
                   loader_key: jax.Array | None = None):
  """The composed map from output pixels to source coordinates for one patch.

  Returns (ys, xs, inside, scale): level-0 source coordinates of every output
  pixel centre, a mask of pixels that fall inside the resized crop (outside is
  the affine's black fill), and the source pixels per output pixel.
  """
  k_sq, k_rrc, k_rot, k_shear, k_mc, k_flip = jax.random.split(key, 6)
  if loader_key is not None:  # the method's crop and flip draw from their own key
    k_mc, k_flip = jax.random.split(loader_key)
  src_h = src_h.astype(jnp.float32)
  src_w = src_w.astype(jnp.float32)
  # 1. Square crop of half the short side (not to focus too much on the centre).
  if cfg.initial_crop:
    side = cfg.initial_crop_frac * jnp.minimum(src_h, src_w)
    ky, kx = jax.random.split(k_sq)
    # Fixed: one square for every patch, so that with rrc, affine and jitter off only the
    # method's own crop and flip vary (the paper's "no augmentation" single image).
    uy, ux = (0.5, 0.5) if cfg.initial_crop_fixed else (jax.random.uniform(ky), jax.random.uniform(kx))
    sq_y = uy * (src_h - side)
    sq_x = ux * (src_w - side)
    reg_h = reg_w = side
  else:
    sq_y = sq_x = jnp.float32(0.0)
    reg_h, reg_w = src_h, src_w
  # 2. Random-resized crop of that region.
  if cfg.rrc:
    by, bx, bh, bw = _random_box(k_rrc, reg_h, reg_w, cfg.rrc_scale, cfg.rrc_ratio)
  else:
    by = bx = jnp.float32(0.0)
    bh, bw = reg_h, reg_w
  by, bx = by + sq_y, bx + sq_x
  # 3-4. Affine about the canvas centre; the canvas is sqrt(2) S so that the
  # centre S x S crop has no black corners after a rotation.
  S = float(cfg.patch_size)
  L = float(math.ceil(math.sqrt(2) * S)) if (cfg.affine and cfg.corner_free) else S
  if cfg.affine:
    theta = jnp.deg2rad(jax.random.uniform(k_rot, minval=-cfg.rotation_deg, maxval=cfg.rotation_deg))
    phi = jnp.deg2rad(jax.random.uniform(k_shear, minval=-cfg.shear_deg, maxval=cfg.shear_deg))
    c, s = jnp.cos(theta), jnp.sin(theta)
    # Forward map A = R(theta) @ Shear(phi) in (y, x) order, shear x += tan(phi) y;
    # its inverse in closed form: Shear(-phi) @ R(theta)^T.
    rot_t = jnp.array([[c, s], [-s, c]])
    shear_inv = jnp.array([[1.0, 0.0], [-jnp.tan(phi), 1.0]])
    inv = shear_inv @ rot_t
  else:
    inv = jnp.eye(2)
  # 5. The method's random-resized crop of the S patch, then the flip.
  if cfg.method_crop:
    my, mx, mh, mw = _random_box(k_mc, jnp.float32(S), jnp.float32(S), cfg.method_crop_scale,
                                 (3 / 4, 4 / 3))
  else:
    my = mx = jnp.float32(0.0)
    mh = mw = jnp.float32(S)
  n = cfg.out_size
  u = (jnp.arange(n, dtype=jnp.float32) + 0.5) / n
  uy, ux = jnp.meshgrid(u, u, indexing="ij")
  if cfg.flip:
    ux = jnp.where(jax.random.bernoulli(k_flip), 1.0 - ux, ux)
  qy, qx = my + uy * mh, mx + ux * mw                      # in the S patch
  dy, dx = qy + (L - S) / 2 - L / 2, qx + (L - S) / 2 - L / 2  # about the canvas centre
  cy = inv[0, 0] * dy + inv[0, 1] * dx + L / 2           # before the affine
  cx = inv[1, 0] * dy + inv[1, 1] * dx + L / 2
  inside = (cy >= 0) & (cy <= L) & (cx >= 0) & (cx <= L)
  ys = by + cy / L * bh
  xs = bx + cx / L * bw
  # Source pixels per output pixel: the geometric mean of the two axes' factors
  # (rotation and shear have determinant 1).
  scale = jnp.sqrt(bh * bw) / L * jnp.sqrt(mh * mw) / n
  return ys, xs, inside, scale


def _one_patch(bank: ImageBank, cfg: AugmentConfig, key: jax.Array, loader_key: jax.Array,
               img: jax.Array) -> jax.Array:
  """Geometry only: the composed crop/affine/flip, sampled once with antialiasing."""
  ys, xs, inside, scale = patch_geometry(key, bank.heights[img, 0], bank.widths[img, 0], cfg,
                                         loader_key)
  if cfg.antialias and bank.num_levels > 1:
    level = jnp.clip(jnp.log2(jnp.maximum(scale, 1e-6)), 0.0, bank.num_levels - 1.0)
    l0 = jnp.floor(level).astype(jnp.int32)
    l1 = jnp.minimum(l0 + 1, bank.num_levels - 1)
    t = level - l0
    out = (1 - t) * _sample_level(bank, img, l0, ys, xs) + t * _sample_level(bank, img, l1, ys, xs)
  else:
    out = _sample_level(bank, img, jnp.int32(0), ys, xs)
  return jnp.where(inside[..., None], out, 0.0) / 255.0


def _base(indices: jax.Array, period: int) -> jax.Array:
  indices = indices.astype(jnp.uint32)
  return indices % jnp.uint32(period) if period else indices


def _patch_keys(key: jax.Array, indices: jax.Array, period: int):
  """(patch keys, loader keys, jitter keys) of a batch of indices.

  The patch (steps 1-4) and its colour jitter depend on the base index
  i mod period, as in the authors' fixed set of generated patches; the
  method's crop and flip (the loader's augmentation) depend on i itself, so
  index i + e * period is epoch e's fresh view of base patch i.
  """
  base = _base(indices, period)
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(base)
  geo_keys, jitter_keys = jnp.moveaxis(jax.vmap(jax.random.split)(keys), 1, 0)
  loader_root = jax.random.fold_in(key, 0x10ad)
  loader_keys = jax.vmap(lambda i: jax.random.fold_in(loader_root, i))(indices.astype(jnp.uint32))
  return geo_keys, loader_keys, jitter_keys


def sample_geometry(bank: ImageBank, cfg: AugmentConfig, key: jax.Array,
                    indices: jax.Array, period: int = 0,
                    image_ids: jax.Array | None = None) -> jax.Array:
  """Stage 1 of `make_patches`: crops, affine, flip, antialiased resample.

  `image_ids` (int32, like `indices`) picks each patch's bank image instead of
  base index mod n_images: a bank holding only this batch's images (streamed
  from disk) then gives the same patches as the whole set's bank.
  """
  geo_keys, loader_keys, _ = _patch_keys(key, indices, period)
  if image_ids is None:
    imgs = (_base(indices, period) % jnp.uint32(bank.num_images)).astype(jnp.int32)
  else:
    imgs = image_ids.astype(jnp.int32)
  return jax.vmap(lambda k, lk, im: _one_patch(bank, cfg, k, lk, im))(geo_keys, loader_keys, imgs)


def jitter_patches(cfg: AugmentConfig, key: jax.Array, indices: jax.Array,
                   patches: jax.Array, period: int = 0) -> jax.Array:
  """Stage 2 of `make_patches`: the colour jitter, with each patch's own key."""
  if cfg.jitter_prob <= 0:
    return patches
  _, _, jitter_keys = _patch_keys(key, indices, period)
  return colour_jitter(jitter_keys, patches, cfg)


# The two stages as two compiled programs (see make_patches), shared by every caller.
_geometry_program = jax.jit(sample_geometry, static_argnames=("cfg", "period"))
_jitter_program = jax.jit(jitter_patches, static_argnames=("cfg", "period"), donate_argnames="patches")


def make_patches(bank: ImageBank, cfg: AugmentConfig, key: jax.Array,
                 indices: jax.Array, period: int = 0) -> jax.Array:
  """Patches for a batch of indices: float32 (B, out, out, 3) in [0, 1].

  Patch i depends only on (images, key, i): the data set is virtual and any
  size is free. With `period` = the data set size N, index i is a view of
  base patch b = i mod N (source image b mod n_images; crops, affine and
  jitter keyed by b) under its own method crop and flip (keyed by i).

  Runs its two stages (`sample_geometry`, `jitter_patches`) as two compiled
  programs: on XLA:CPU (jaxlib 0.10) one program holding the gathers of stage 1
  and the jitter of stage 2 gives wrong jitter values (up to 0.95 off against
  eager execution) and runs 5x slower, even with an optimization barrier between
  them; `tests/test_augment.py` keeps a check that the one-program form still
  differs, so this can go when XLA is fixed. Called under a trace on a CPU
  backend (inside your own `jax.jit`) it refuses with one line: jit each stage
  on its own, or use `PatchGenerator` (the same two programs, built once).
  """
  if isinstance(indices, jax.core.Tracer) and jax.default_backend() == "cpu":
    raise UserInputError("augment.make_patches was traced inside jax.jit on CPU, where XLA "
                         "miscompiles its two stages as one program; call it outside jit, or "
                         "jit sample_geometry and jitter_patches separately (PatchGenerator does).")
  patches = _geometry_program(bank, cfg=cfg, key=key, indices=indices, period=period)
  return _jitter_program(cfg=cfg, key=key, indices=indices, patches=patches, period=period)


class PatchGenerator:
  """Callable `indices -> patches` for one image bank, config and seed: two jitted stages.

  The output follows the sharding of `indices` (shard the indices over the
  device mesh and every device makes its own patches; no host data moves).
  """

  def __init__(self, bank: ImageBank, cfg: AugmentConfig, seed: int, period: int = 0):
    self.bank, self.cfg, self.seed, self.period = bank, cfg, seed, period
    self.key = jax.random.key(seed)
    self._geometry = jax.jit(lambda b, k, i: sample_geometry(b, cfg, k, i, period))
    self._jitter = jax.jit(lambda k, i, p: jitter_patches(cfg, k, i, p, period), donate_argnums=2)

  def __call__(self, indices: jax.Array) -> jax.Array:
    patches = self._geometry(self.bank, self.key, indices)
    return self._jitter(self.key, indices, patches)

  def with_config(self, cfg: AugmentConfig) -> "PatchGenerator":
    """The same images, seed and period under another augmentation."""
    return PatchGenerator(self.bank, cfg, self.seed, self.period)


class StreamPatchGenerator:
  """`PatchGenerator` for a labelled set streamed from disk (`streaming.StreamingImages`).

  Each call brings the batch's images (index mod the set's size) to the host,
  decodes them and puts only them on the device; `image_ids` then points each
  patch at its image, so the patches equal `PatchGenerator`'s over the whole
  set held in memory. The read blocks the host, not the device: the previous
  step is already dispatched and runs meanwhile.
  """

  def __init__(self, stream, cfg: AugmentConfig, seed: int, period: int = 0):
    self.stream, self.cfg, self.seed, self.period = stream, cfg, seed, period
    self.key = jax.random.key(seed)
    self._geometry = jax.jit(
        lambda b, k, i: sample_geometry(b, cfg, k, i, period,
                                        image_ids=jnp.arange(i.shape[0], dtype=jnp.int32)))
    self._jitter = jax.jit(lambda k, i, p: jitter_patches(cfg, k, i, p, period), donate_argnums=2)
    self._pool = concurrent.futures.ThreadPoolExecutor(stream.workers)

  def __call__(self, indices: jax.Array) -> jax.Array:
    # The one device->host copy per step: which images this batch needs.
    host = np.asarray(jax.device_get(indices)).astype(np.uint32).astype(np.int64)
    base = host % self.period if self.period else host
    images, _ = self.stream.fetch(base % len(self.stream), self._pool)
    bank = ImageBank.from_images_array(images)
    mesh = getattr(getattr(indices, "sharding", None), "mesh", None)
    if mesh is not None:  # the batch's images on every device (one host->device copy)
      bank = shd.to_global(bank, shd.replicated(mesh))
    patches = self._geometry(bank, self.key, indices)
    return self._jitter(self.key, indices, patches)

  def with_config(self, cfg: AugmentConfig) -> "StreamPatchGenerator":
    """The same stream, seed and period under another augmentation."""
    return StreamPatchGenerator(self.stream, cfg, self.seed, self.period)


def canvas_side(cfg: AugmentConfig) -> int:
  """The side of the canvas a patch's crop is resized to (step 2): ceil(sqrt(2) S) with a
  corner-free affine, else S = `patch_size` (363 px for the paper's 256)."""
  S = cfg.patch_size
  return math.ceil(math.sqrt(2) * S) if (cfg.affine and cfg.corner_free) else S


def check_sizes(images: Sequence[np.ndarray], cfg: AugmentConfig, names: Sequence[str]
                ) -> list[str]:
  """Warnings (one line each) for source images whose crop is upsampled to the canvas.

  The authors' photograph (2560x1920) gives a 960 px initial crop for a 363 px
  canvas: every patch is a downscale. A smaller image still works (the patches
  are magnified and blurred), so it is warned about, not refused.
  """
  canvas, out = canvas_side(cfg), []
  for im, name in zip(images, names):
    short = min(im.shape[:2])
    side = cfg.initial_crop_frac * short if cfg.initial_crop else short
    if side < canvas:
      out.append(f"image {name} is {im.shape[1]}x{im.shape[0]} px: its crop side {side:.0f} px is "
                 f"upsampled to the {canvas} px canvas (x{canvas / side:.2f} before any "
                 f"random-resized crop), so its patches are blurred; use an image with a short side "
                 f"of at least {math.ceil(canvas / (cfg.initial_crop_frac if cfg.initial_crop else 1))}"
                 f" px for sharp patches.")
  return out
