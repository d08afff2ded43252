"""Linear probes on frozen conv1..conv5 features (the authors' `linear-probes` protocol).

Each probe: max-pool the tapped feature map to about `target_dims` values
(the same size at every layer, within `DIMS_TOLERANCE`), BatchNorm without
scale or offset per channel of the pooled map (the authors' `BatchNorm2d`),
one linear layer (Xavier-uniform, zero bias). The trunk is frozen: its features pass through `stop_gradient` and its
BatchNorm runs in inference mode. The five heads train together on the sum of
their cross-entropies, with SGD (momentum 0.9, weight decay 1e-5) and a
step-wise learning rate.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mono_ssl import sharding as shd
from mono_ssl.augment import AugmentConfig, ImageBank, sample_geometry
from mono_ssl.datasets import LabelledImages
from mono_ssl.errors import UserInputError
from mono_ssl.models.alexnet import LAYER_NAMES
from mono_ssl.streaming import StreamingImages, image_side, test_view, train_view
from mono_ssl.train_state import TrainState, normalise, sgd, sgd_schedule


def pool_params(size: int, channels: int, target_dims: int) -> tuple[int, int, int]:
  """(kernel, stride, pad) of a square max-pool (stride = kernel) whose output
  size^2 * channels comes closest to target_dims.

  Padding stays below half a window so no window is all padding; ties go to
  no padding, then the smaller kernel. For the paper's AlexNet at 224 px and
  9216 dims this gives the authors' table: conv1 (6,6,3) -> 10x10, conv2
  (4,4,0) -> 6x6, conv3/4 (3,3,1) -> 5x5, conv5 (2,2,0) -> 6x6.
  """
  best = None
  for k in range(1, size + 1):
    for p in range(0, k // 2 + 1):
      out = (size + 2 * p - k) // k + 1
      if out < 1:
        continue
      cost = (abs(out * out * channels - target_dims), p, k)
      if best is None or cost < best[0]:
        best = (cost, (k, k, p))
  return best[1]


# Probe sizes may differ from probe.target_dims by this fraction at most (the paper's
# 9,216-9,600 dims are within 4.2%); a layer whose best pooling misses it is refused.
DIMS_TOLERANCE = 0.10


def grid_params(height: int, width: int, channels: int, target_dims: int) -> tuple[int, int]:
  """(rows, cols) of an adaptive max-pool whose rows * cols * channels comes closest to
  target_dims; ties go to the squarer grid, then fewer rows.

  For maps too small for the authors' strided pool to land near the target
  (a 3x3x96 map has 96, 384 or 864 values as a square): rectangular output
  grids reach any multiple of the channel count up to the whole map.
  """
  best = None
  for r in range(1, height + 1):
    for c in range(1, width + 1):
      cost = (abs(r * c * channels - target_dims), abs(r - c), r)
      if best is None or cost < best[0]:
        best = (cost, (r, c))
  return best[1]


def pool_dims(spec: tuple, height: int, width: int, channels: int) -> int:
  """The number of values a probe pool `spec` (see `ProbeHeads`) leaves of an (H, W, C) map."""
  if len(spec) == 2:
    return spec[0] * spec[1] * channels
  k, s, p = spec
  return ((height + 2 * p - k) // s + 1) * ((width + 2 * p - k) // s + 1) * channels


def probe_pool(height: int, width: int, channels: int, target_dims: int) -> tuple:
  """The pool of one probe: the authors' strided square pool where it lands within
  DIMS_TOLERANCE of target_dims (at 224 px their table exactly), else the adaptive
  grid closest to it (which may still miss a target larger than the whole map).
  """
  window = pool_params(min(height, width), channels, target_dims)
  if abs(pool_dims(window, height, width, channels) - target_dims) <= DIMS_TOLERANCE * target_dims:
    return window
  return grid_params(height, width, channels, target_dims)


def probe_pools(shapes: dict, layers, target_dims: int) -> tuple:
  """((layer, spec), ...) for the probed layers' (B, H, W, C) feature shapes, every
  probe within DIMS_TOLERANCE of target_dims; a map too small for it is refused
  with the largest target every layer can meet."""
  pools, missed = [], []
  for name in layers:
    _, h, w, c = shapes[name]
    spec = probe_pool(h, w, c, target_dims)
    dims = pool_dims(spec, h, w, c)
    if abs(dims - target_dims) > DIMS_TOLERANCE * target_dims:
      missed.append(f"{name} ({h}x{w}x{c} map: {dims} values at the closest)")
    pools.append((name, spec))
  if missed:
    near = nearest_feasible_target(shapes, layers, target_dims)
    fix = (f"set probe.target_dims={near} (the closest size every layer's probe can have)"
           if near else "probe fewer layers (probe.layers)")
    raise UserInputError(f"probe.target_dims={target_dims} cannot be met within {DIMS_TOLERANCE:.0%} "
                         f"by {', '.join(missed)}; {fix}.")
  return tuple(pools)


def nearest_feasible_target(shapes: dict, layers, target_dims: int) -> int | None:
  """The target closest to `target_dims` that every layer's pool meets within DIMS_TOLERANCE."""
  sizes = {}
  for n in layers:
    _, h, w, c = shapes[n]
    sizes[n] = np.array(sorted({r * q * c for r in range(1, h + 1) for q in range(1, w + 1)}))
  candidates = np.unique(np.concatenate(list(sizes.values())))
  ok = []
  for t in candidates:
    if all(np.min(np.abs(v - t)) <= DIMS_TOLERANCE * t for v in sizes.values()):
      ok.append(int(t))
  return min(ok, key=lambda t: (abs(t - target_dims), t)) if ok else None


def adaptive_max_pool(x: jax.Array, rows: int, cols: int) -> jax.Array:
  """(B, H, W, C) -> (B, rows, cols, C): torch's AdaptiveMaxPool2d bins
  [floor(i H / rows), ceil((i + 1) H / rows)), likewise along W.

  Separable (a max over rectangles is a max over its rows' maxima): rows + cols
  slices instead of rows x cols, and none along an axis whose side is kept.
  """

  def along(x: jax.Array, axis: int, m: int) -> jax.Array:
    n = x.shape[axis]
    if n == m:
      return x
    bins = [(i * n // m, -(-(i + 1) * n // m)) for i in range(m)]
    return jnp.stack([jnp.max(jax.lax.slice_in_dim(x, a, b, axis=axis), axis=axis) for a, b in bins],
                     axis=axis)

  return along(along(x, 1, rows), 2, cols)


def pool_features(feats: dict, pools) -> dict:
  """Each probed layer's map max-pooled by its spec: the probes' inputs before BatchNorm."""
  out = {}
  for name, spec in pools:
    if len(spec) == 2:
      out[name] = adaptive_max_pool(feats[name], *spec)
    else:
      k, s, p = spec
      out[name] = nn.max_pool(feats[name], (k, k), strides=(s, s), padding=((p, p), (p, p)))
  return out


class ProbeHeads(nn.Module):
  """Max-pool -> BatchNorm (per channel, no affine) -> flatten -> Dense, one head per tapped layer.

  pools: ((layer, spec), ...); spec (k, s, p) is a square max-pool window k,
  stride s, zero padding p (the authors' probes); spec (rows, cols) an
  adaptive max-pool to that output grid (`adaptive_max_pool`).
  """
  num_classes: int
  pools: Any  # tuple of (layer, (kernel, stride, pad) or (rows, cols))
  bn_axis_name: Any = None
  prepooled: bool = False  # feats already pooled by `pool_features` (cached-feature probes)

  @nn.compact
  def __call__(self, feats: dict, train: bool = False) -> dict:
    logits = {}
    pooled = feats if self.prepooled else pool_features(feats, self.pools)
    for name, _ in self.pools:
      f = pooled[name]
      # Statistics per channel over (batch, rows, cols), as BatchNorm2d on the pooled map.
      f = nn.BatchNorm(use_running_average=not train, use_scale=False, use_bias=False,
                       momentum=0.9, axis_name=self.bn_axis_name, name=f"{name}_bn")(f)
      f = f.reshape((f.shape[0], -1))
      logits[name] = nn.Dense(self.num_classes, kernel_init=nn.initializers.xavier_uniform(),
                              name=f"{name}_linear")(f)
    return logits


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
  """Probe training settings (see configs' `probe` block)."""
  epochs: int = 10
  batch_size: int = 128
  eval_batch_size: int = 500
  lr: float = 0.01
  momentum: float = 0.9
  weight_decay: float = 1e-5
  lr_boundaries: tuple = (10 / 36, 20 / 36, 30 / 36)
  lr_decay: float = 0.1
  target_dims: int = 9216
  crop_scale: tuple = (0.35, 1.0)
  flip: bool = True
  crop_size: int = 0      # side the probes see: train crops and test crops (0 = the images' side)
  ten_crop: bool = False  # test logits averaged over 4 corner + centre crops and their flips
  layers: tuple = LAYER_NAMES
  seed: int = 0
  # "crops": every step crops (crop_scale) and flips afresh, through the trunk; "whole": the
  # whole image or its mirror at random, from features computed once per image and mirror
  # (crop_scale unused): 2 trunk passes over the train split instead of one an epoch.
  train_views: str = "crops"
  # Heads trained per trunk (probe seeds seed, seed + 1, ...; their top-1/top-5 averaged, each
  # seed's top-1 and the standard error kept): the probe's own share of a comparison's noise
  # at a fraction of a trunk seed's cost, most of all with whole views (features cached once).
  head_seeds: int = 1

  @classmethod
  def from_config(cls, cfg) -> "ProbeConfig":
    kw = {f.name: (tuple(cfg[f.name]) if isinstance(cfg[f.name], (list, tuple)) else cfg[f.name])
          for f in dataclasses.fields(cls) if f.name in cfg}
    return cls(**kw)


def make_probe_step(trunk_apply: Callable, heads: ProbeHeads, axis_name: Any = None) -> Callable:
  """Pure probe step `(state, trunk_vars, images, labels, key) -> (state, metrics)`.

  images: float [0, 1] (B, H, W, 3). Only the heads' params change.
  """

  def step(state: TrainState, trunk_vars, images, labels, key):
    del key  # the probes are deterministic given the batch
    _, feats = trunk_apply(trunk_vars, normalise(images), train=False, head=False)
    return head_update(heads, state, jax.lax.stop_gradient(feats), labels, axis_name)

  return step


def head_update(heads: ProbeHeads, state: TrainState, feats: dict, labels: jax.Array,
                axis_name: Any = None):
  """One SGD step of the heads on (frozen) features -> (state, metrics)."""
  def loss_fn(params):
    logits, updates = heads.apply({"params": params, "batch_stats": state.batch_stats}, feats,
                                  train=True, mutable=["batch_stats"])
    losses = {n: optax.softmax_cross_entropy_with_integer_labels(l, labels).mean()
              for n, l in logits.items()}
    return sum(losses.values()), (losses, logits, updates["batch_stats"])

  (loss, (losses, logits, bstats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  metrics = {"loss": loss, **{f"loss_{n}": v for n, v in losses.items()},
             **{f"acc_{n}": jnp.mean(jnp.argmax(l, -1) == labels) for n, l in logits.items()}}
  if axis_name is not None:
    grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                       batch_stats=bstats, opt_state=opt_state), metrics


def eval_views(images: jax.Array, crop: int | None = None, ten_crop: bool = False) -> list:
  """The views of a test batch (B, H, W, C) whose logits are averaged.

  crop None or the images' side, no ten_crop: the images themselves. Otherwise
  crop x crop views: the centre crop, or with ten_crop the four corner crops and
  the centre crop, then each of them flipped left-right (the paper protocol's
  ten-crop evaluation). A (B, V, crop, crop, C) batch holds views already cut
  (`streaming.test_view`): those, and with ten_crop their mirror images.
  """
  if images.ndim == 5:  # views cut on the host (a `keep_aspect` stream): (B, V, crop, crop, C)
    views = [images[:, v] for v in range(images.shape[1])]
    return views + [v[:, :, ::-1] for v in views] if ten_crop else views
  h, w = images.shape[1], images.shape[2]
  crop = crop or min(h, w)
  if crop > min(h, w):
    raise ValueError(f"crop {crop} is larger than the {h}x{w} test images")
  centre = ((h - crop) // 2, (w - crop) // 2)
  if not ten_crop:
    if (crop, crop) == (h, w):
      return [images]
    offsets = [centre]
  else:
    offsets = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), centre]
  views = [images[:, i:i + crop, j:j + crop] for i, j in offsets]
  if ten_crop:
    views += [v[:, :, ::-1] for v in views]
  return views


def make_eval_step(trunk_apply: Callable, heads: ProbeHeads, crop: int | None = None,
                   ten_crop: bool = False) -> Callable:
  """`(heads_vars, trunk_vars, images, labels, mask) -> {layer: (top1 count, top5 count)}`.

  images: uint8 (converted on device) or float in [0, 1]; each layer's logits
  are averaged over `eval_views(images, crop, ten_crop)`.
  """

  def evaluate(heads_vars, trunk_vars, images, labels, mask):
    if images.dtype == jnp.uint8:
      images = images.astype(jnp.float32) / 255.0
    views = eval_views(images, crop, ten_crop)
    logits = None
    for view in views:
      _, feats = trunk_apply(trunk_vars, normalise(view), train=False, head=False)
      out = heads.apply(heads_vars, feats, train=False)
      logits = out if logits is None else jax.tree.map(jnp.add, logits, out)
    logits = jax.tree.map(lambda l: l / len(views), logits)
    out = {}
    for name, l in logits.items():
      k = min(5, l.shape[-1])
      topk = jax.lax.top_k(l, k)[1]
      hit1 = (topk[:, 0] == labels) & mask
      hit5 = jnp.any(topk == labels[:, None], axis=-1) & mask
      out[name] = (jnp.sum(hit1), jnp.sum(hit5))
    return out

  return evaluate


@dataclasses.dataclass(frozen=True)
class ProbeParts:
  """The linear probes of one trunk architecture as plain functions (`probe_parts`).

  init(trunk_vars, key) -> the heads' TrainState; step(state, trunk_vars, images, labels, key)
  -> (state, metrics), images float [0, 1] (B, crop, crop, 3); evaluate(heads_vars, trunk_vars,
  images, labels, mask) -> {layer: (top-1 hits, top-5 hits)}. None is jitted: jit them your way.
  """
  heads: ProbeHeads
  dims: dict
  init: Callable
  step: Callable
  evaluate: Callable


def probe_parts(trunk_apply: Callable, trunk_vars: Any, image_size: int, num_classes: int,
                cfg: ProbeConfig = ProbeConfig(), total_steps: int = 1000,
                axis_name: Any = None) -> ProbeParts:
  """Probe heads, their state constructor, pure step and evaluation, from plain arguments.

  trunk_apply(variables, normalised images, train=False, head=False) -> (_, {layer: map}):
  the AlexNet contract. The heads pool each of `cfg.layers` to about `cfg.target_dims`
  values at `image_size` input; their SGD follows `cfg` over `total_steps` steps.
  `LinearProbe` is these parts, jitted over a mesh, with the data loop around them.
  """
  feat_shapes = jax.eval_shape(lambda v, x: trunk_apply(v, x, train=False, head=False)[1], trunk_vars,
                               jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32))
  shapes = {n: feat_shapes[n].shape for n in cfg.layers}
  pools = probe_pools(shapes, cfg.layers, cfg.target_dims)
  dims = {n: pool_dims(spec, *shapes[n][1:]) for n, spec in pools}
  heads = ProbeHeads(num_classes=num_classes, pools=pools)
  tx = sgd(sgd_schedule(cfg.lr, max(1, total_steps), cfg.lr_boundaries, cfg.lr_decay),
           cfg.momentum, False, cfg.weight_decay)

  def init(trunk_vars, key):
    _, feats = trunk_apply(trunk_vars, jnp.zeros((2, image_size, image_size, 3)), train=False, head=False)
    v = heads.init(key, feats, train=False)
    return TrainState(step=jnp.int32(0), params=v["params"], batch_stats=v["batch_stats"],
                      opt_state=tx.init(v["params"]), apply_fn=heads.apply, tx=tx)

  return ProbeParts(heads, dims, init, make_probe_step(trunk_apply, heads, axis_name),
                    cfg_eval_step(trunk_apply, heads, cfg))


TRAIN_VIEWS = ("crops", "whole")
F16_MAX = 6e4  # below float16's largest finite value (65504)


def _whole_views_features(trunk_apply: Callable, pools, flip: bool) -> Callable:
  """`(trunk_vars, uint8 images) -> {layer: (B, views, ...)}`: the pooled probe inputs of each
  image and (with `flip`) its mirror, the trunk in inference mode."""

  def features(trunk_vars, images):
    x = images.astype(jnp.float32) / 255.0
    views = [x, x[:, :, ::-1]] if flip else [x]
    out = [pool_features(trunk_apply(trunk_vars, normalise(v), train=False, head=False)[1], pools)
           for v in views]
    return {name: jnp.stack([o[name] for o in out], axis=1) for name, _ in pools}  # batch first: sharded

  return features


class LinearProbe:
  """The five probes of one trunk architecture on one (train, test) pair, compiled once.

  `probe(trunk_vars)` trains fresh heads on `train` and returns
  {layer: {"top1": %, "top5": %, "dims": probe size}} on all of `test`. The
  jitted functions are built here, so probing many checkpoints of one run
  (the learning curve) compiles once; given the same trunk variables the
  result is the same on every call.

  Train-time augmentation: random-resized crop (scale `crop_scale`, resized to
  `crop_size`, default the images' side) and horizontal flip, on device.
  With `train_views='whole'` the heads train instead on the whole image or its mirror, from
  pooled features computed once per image and mirror (2 trunk passes, not one an epoch).
  Test: the whole image, its centre `crop_size` crop, or with `ten_crop` the
  mean logits of ten crops. Every test example counts: the last batch is
  padded and masked.
  """

  def __init__(self, trunk_apply: Callable, trunk_vars: Any,
               train: LabelledImages | StreamingImages, test: LabelledImages | StreamingImages,
               cfg: ProbeConfig, mesh=None, log: Callable[[str], None] = print):
    """trunk_vars: any variables of the architecture (only their shapes are read here)."""
    mesh = mesh or shd.make_mesh()
    shd.check_batch_size(cfg.batch_size, mesh, "probe.batch_size")
    eval_bs = shd.fit_batch_size(cfg.eval_batch_size, mesh)
    if eval_bs != cfg.eval_batch_size:
      log(f"probe.eval_batch_size={cfg.eval_batch_size} runs as {eval_bs}, a multiple of the "
          f"{mesh.size} devices")
      cfg = dataclasses.replace(cfg, eval_batch_size=eval_bs)
    self.train, self.test, self.cfg, self.mesh, self.log = train, test, cfg, mesh, log
    self.trunk_apply = trunk_apply
    repl, bsh = shd.replicated(mesh), shd.batch_sharded(mesh)
    n_train, size = len(train), image_side(train)
    crop = self.crop = cfg.crop_size or size
    test_side = (test.side if isinstance(test, StreamingImages)
                 else min(test.images.shape[1], test.images.shape[2]))
    if not 1 <= crop <= min(size, test_side):
      raise UserInputError(f"probe.crop_size={cfg.crop_size} must be between 1 and the images' side "
                           f"({size} px train, {test_side} px test); 0 uses the images' side.")
    if n_train < cfg.batch_size:
      raise UserInputError(f"probe.batch_size={cfg.batch_size} exceeds the {n_train} training "
                           f"images of {train.name}; lower probe.batch_size.")
    # Pool sizes come from the feature shapes at the probe's input size.
    self.steps_per_epoch = n_train // cfg.batch_size
    parts = probe_parts(trunk_apply, trunk_vars, crop, train.num_classes, cfg,
                        self.steps_per_epoch * cfg.epochs)
    self.dims, self.heads = parts.dims, parts.heads
    if cfg.train_views not in TRAIN_VIEWS:
      raise UserInputError(f"probe.train_views={cfg.train_views!r} is not one of {', '.join(TRAIN_VIEWS)}.")
    self.whole = cfg.train_views == "whole"
    if self.whole:
      if isinstance(train, StreamingImages) or crop != size:
        raise UserInputError(f"probe.train_views='whole' reads the whole {size} px images held in memory; "
                             "set probe.crop_size=0 and probe.image_size=0, or probe.train_views='crops'.")
      self._features = jax.jit(_whole_views_features(trunk_apply, self.heads.pools, cfg.flip),
                               in_shardings=(repl, bsh), out_shardings=bsh)
      prepooled = self.heads.clone(prepooled=True)
      self._cached_step = jax.jit(  # the float16 cache goes to the device as it is (half the copy)
          lambda st, feats, labels: head_update(
              prepooled, st, {k: v.astype(jnp.float32) for k, v in feats.items()}, labels),
          donate_argnums=0,
          in_shardings=(repl, bsh, bsh), out_shardings=(repl, repl))
    self._init = jax.jit(parts.init, out_shardings=repl)
    self._step = jax.jit(parts.step, donate_argnums=0,
                         in_shardings=(repl, repl, bsh, bsh, repl), out_shardings=(repl, repl))
    self._evaluate = jax.jit(parts.evaluate, in_shardings=(repl, repl, bsh, bsh, bsh))
    aug = AugmentConfig(out_size=crop, patch_size=size, initial_crop=False, rrc=False, affine=False,
                        method_crop=True, method_crop_scale=cfg.crop_scale, flip=cfg.flip,
                        jitter_prob=0.0, antialias=False)
    aug_key = jax.random.key(cfg.seed + 1)
    self.streamed = isinstance(train, StreamingImages)
    self.host_views = self.streamed and train.keep_aspect
    if self.host_views:
      # The authors' crops of each decoded rectangle, cut on the host by the stream's
      # workers (`streaming.train_view`); the device only scales them to [0, 1].
      self._train_view = train_view(crop, cfg.crop_scale, cfg.seed + 1, cfg.flip)
      self._crop = jax.jit(lambda x: x.astype(jnp.float32) / 255.0, out_shardings=bsh)
    elif self.streamed:
      # Only this batch's images are on device; `image_ids` points each crop at its
      # image, and the crop's randomness still comes from its global index, so a
      # stream gives the crops of the in-memory path.
      self._crop = jax.jit(lambda b, idx: sample_geometry(
          b, aug, aug_key, idx, image_ids=jnp.arange(idx.shape[0], dtype=jnp.int32)),
                           out_shardings=bsh)
    else:
      self._bank = shd.to_global(ImageBank.from_images_array(train.images), repl)
      self._labels = shd.to_global(np.asarray(train.labels, np.int32), repl)
      self._crop = jax.jit(lambda b, lab, idx: (sample_geometry(b, aug, aug_key, idx),
                                                lab[idx % n_train]), out_shardings=(bsh, bsh))

  def _cached_features(self, trunk_vars) -> dict:
    """{layer: (N, views, ...) pooled features} of every train image (views: it and its mirror,
    or it alone without flips), host float16 where every value of a layer fits it (its rounding,
    ~5e-4 relative, is below what a linear probe resolves), else float32: one pass of the trunk
    per view instead of one per epoch."""
    images, n = self.train.images, len(self.train)
    bs = shd.fit_batch_size(self.cfg.eval_batch_size, self.mesh)
    out = None
    for lo in range(0, n, bs):
      block = images[lo:lo + bs]
      if len(block) < bs:  # one compiled shape: pad the last block
        block = np.concatenate([block, np.zeros((bs - len(block),) + block.shape[1:], block.dtype)])
      feats = jax.device_get(self._features(trunk_vars, shd.to_global(block, shd.batch_sharded(self.mesh))))
      if out is None:  # float16 halves the cache (80,000 images x 2 views x 2,304 values x 5 layers: 3.7 GB)
        out = {k: np.empty((n,) + v.shape[1:], np.float16) for k, v in feats.items()}
      for k, v in feats.items():
        v = v[:min(bs, n - lo)]
        if out[k].dtype == np.float16 and not np.abs(v).max() < F16_MAX:
          out[k] = out[k].astype(np.float32)  # a layer beyond float16's range keeps float32
        out[k][lo:lo + bs] = v
    return out

  def _train_crops(self, state, trunk_vars, rng, t0, id_offset: int = 0):
    """The heads' epochs through the trunk: a fresh random-resized crop and flip every step
    (crop j of an epoch is drawn from index `id_offset` + epoch x N + image: another head seed
    passes another offset and so draws other crops)."""
    cfg, train, repl, bsh = self.cfg, self.train, shd.replicated(self.mesh), shd.batch_sharded(self.mesh)
    n_train, steps_per_epoch = len(train), self.steps_per_epoch
    for epoch in range(cfg.epochs):
      # Epoch e's order is a permutation of the data; the patch index also
      # carries the epoch so that every epoch sees fresh crops.
      perm = rng.permutation(n_train)[:steps_per_epoch * cfg.batch_size]
      perm = perm.reshape(steps_per_epoch, cfg.batch_size)
      host_batches = None
      if self.host_views:
        host_batches = train.batches(perm, view=self._train_view, id_offset=id_offset + epoch * n_train)
      elif self.streamed:
        host_batches = train.batches(perm)
      for s in range(steps_per_epoch):
        if self.host_views:  # cut on the host: no crop indices to send
          imgs, labs = next(host_batches)
          images, labels = self._crop(shd.to_global(imgs, bsh)), shd.to_global(labs, bsh)
          state, metrics = self._step(state, trunk_vars, images, labels, jax.random.key(0))
          continue
        idx = shd.to_global((perm[s] + id_offset + epoch * n_train).astype(np.int32), bsh)
        if self.streamed:
          imgs, labs = next(host_batches)
          batch_bank = shd.to_global(ImageBank.from_images_array(imgs), repl)
          images = self._crop(batch_bank, idx)
          labels = shd.to_global(labs, bsh)
        else:
          images, labels = self._crop(self._bank, self._labels, idx)
        state, metrics = self._step(state, trunk_vars, images, labels, jax.random.key(0))
      if host_batches is not None:
        host_batches.close()  # stops its reader thread
      self._log_epoch(epoch, metrics, t0)
    return state

  def _train_whole(self, state, trunk_vars, rng, t0, feats):
    """The heads' epochs on cached whole-image features (`_cached_features`): each step a random
    batch, each example the image or its mirror at random (as `flip`), the same SGD as `crops`."""
    cfg, bsh = self.cfg, shd.batch_sharded(self.mesh)
    labels_all = np.asarray(self.train.labels, np.int32)
    n_train, views = len(self.train), next(iter(feats.values())).shape[1]
    metrics = None
    for epoch in range(cfg.epochs):
      perm = rng.permutation(n_train)[:self.steps_per_epoch * cfg.batch_size]
      flips = rng.integers(0, views, len(perm))
      for s in range(self.steps_per_epoch):
        idx, fl = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size], flips[s * cfg.batch_size:(s + 1) * cfg.batch_size]
        batch = {k: v[idx, fl] for k, v in feats.items()}
        state, metrics = self._cached_step(state, shd.to_global(batch, bsh),
                                           shd.to_global(labels_all[idx], bsh))
      self._log_epoch(epoch, metrics, t0)
    return state

  def _log_epoch(self, epoch: int, metrics, t0: float) -> None:
    cfg = self.cfg
    m = jax.device_get(metrics)
    self.log(f"probe epoch {epoch + 1}/{cfg.epochs}: loss {float(m['loss']):.3f} last-batch acc "
             + " ".join(f"{n} {100 * float(m['acc_' + n]):.1f}" for n in cfg.layers)
             + f" ({time.time() - t0:.0f}s)")
    if not np.isfinite(float(m["loss"])):
      raise UserInputError(f"probe loss became {float(m['loss'])} in epoch {epoch + 1}; "
                           "lower probe.lr.")

  def features(self, trunk_vars: Any) -> dict:
    """The whole views' pooled train features (train_views='whole'): pass them to another
    probe of the same trunk and probe size (`__call__(..., features=)`) to try other head
    settings (lr, epochs, seeds) without the trunk passes again."""
    if not self.whole:
      raise UserInputError("LinearProbe.features needs probe.train_views='whole' (crops go through "
                           "the trunk every step and have no cache).")
    return self._cached_features(jax.device_put(trunk_vars, shd.replicated(self.mesh)))

  def __call__(self, trunk_vars: Any, features: dict | None = None) -> dict:
    """Trains the heads (probe.head_seeds of them) and scores them on the test set. `features`:
    this trunk's `features()` from a probe of the same size, reused (whole views only)."""
    cfg, mesh = self.cfg, self.mesh
    check_head_seeds(cfg.head_seeds)
    trunk_vars = jax.device_put(trunk_vars, shd.replicated(mesh))  # already global arrays: a no-op or a reshard
    if features is not None and not self.whole:
      raise UserInputError("features= are whole views' cached features; this probe trains on crops "
                           "(probe.train_views='crops').")
    feats = None
    if self.whole:  # once for every head seed
      feats = features if features is not None else self._cached_features(trunk_vars)
      # Shapes only: the caller vouches that they are this trunk's features of this train set.
      got = {k: tuple(v.shape) for k, v in feats.items()}
      want_views = 2 if cfg.flip else 1
      if not got or any(got.get(n, (0,))[0] != len(self.train) or got[n][1] != want_views
                        or int(np.prod(got[n][2:])) != d for n, d in self.dims.items()):
        raise UserInputError(f"features= have shapes {got}; this probe needs {len(self.train)} images x "
                             f"{want_views} view(s) x {self.dims} values: pass the features of a probe "
                             "with the same train set, probe.target_dims and probe.flip.")
    per_seed = []
    for seed in range(cfg.seed, cfg.seed + cfg.head_seeds):
      state = self._init(trunk_vars, jax.random.key(seed))
      rng = np.random.default_rng(seed)
      t0 = time.time()
      if self.whole:
        state = self._train_whole(state, trunk_vars, rng, t0, feats)
      else:  # head seed k's crops: indices past those of seeds < k (each crop is a function of its index)
        state = self._train_crops(state, trunk_vars, rng, t0,
                                  id_offset=(seed - cfg.seed) * cfg.epochs * len(self.train))
      heads_vars = {"params": state.params, "batch_stats": state.batch_stats}
      per_seed.append(evaluate_probes(self.trunk_apply, trunk_vars, self.heads, heads_vars, self.test,
                                      cfg, mesh, evaluate=self._evaluate))
    return {n: {**mean_over_head_seeds([r[n] for r in per_seed]), "dims": self.dims[n]}
            for n in per_seed[0]}


def check_head_seeds(head_seeds: int) -> None:
  """Refuses a head count that cannot probe (checked before pretraining, and again by the probe)."""
  if not isinstance(head_seeds, int) or head_seeds < 1:
    raise UserInputError(f"probe.head_seeds={head_seeds!r} must be a whole number >= 1 "
                         "(heads trained per trunk; 1 is one probe).")


def mean_over_head_seeds(results: list[dict]) -> dict:
  """One layer's {"top1", "top5"} from its head seeds' results: the means; with two seeds or
  more also each seed's top-1 ("top1_seeds") and the standard error of the mean ("top1_se",
  s.d. / sqrt(n), ddof 1). One seed: its result unchanged."""
  if len(results) == 1:
    return dict(results[0])
  top1 = np.array([r["top1"] for r in results], float)
  return {"top1": float(top1.mean()), "top5": float(np.mean([r["top5"] for r in results])),
          "top1_seeds": [float(v) for v in top1],
          "top1_se": float(top1.std(ddof=1) / np.sqrt(len(top1)))}


def run_linear_probes(trunk_apply: Callable, trunk_vars: Any,
                      train: LabelledImages | StreamingImages,
                      test: LabelledImages | StreamingImages, cfg: ProbeConfig, mesh=None,
                      log: Callable[[str], None] = print) -> dict:
  """Trains the five probes on `train`, returns {layer: {"top1": %, "top5": %, "dims": n}}
  on all of `test` (`LinearProbe`, built and called once)."""
  return LinearProbe(trunk_apply, trunk_vars, train, test, cfg, mesh, log)(trunk_vars)


def cfg_eval_step(trunk_apply, heads, cfg: ProbeConfig) -> Callable:
  """`make_eval_step` with cfg's test crops (its crop size, ten crops or one)."""
  return make_eval_step(trunk_apply, heads, cfg.crop_size or None, cfg.ten_crop)


def jitted_eval_step(trunk_apply, heads, cfg: ProbeConfig, mesh) -> Callable:
  """`make_eval_step` for cfg's crops, jitted over the mesh (heads and trunk replicated)."""
  repl, bsh = shd.replicated(mesh), shd.batch_sharded(mesh)
  return jax.jit(cfg_eval_step(trunk_apply, heads, cfg),
                 in_shardings=(repl, repl, bsh, bsh, bsh))


def evaluate_probes(trunk_apply, trunk_vars, heads, heads_vars, test: LabelledImages,
                    cfg: ProbeConfig, mesh, evaluate: Callable | None = None) -> dict:
  """Top-1/top-5 (%) per layer on every example of `test` (`evaluate`: a jitted eval step to reuse)."""
  bsh = shd.batch_sharded(mesh)
  evaluate = evaluate or jitted_eval_step(trunk_apply, heads, cfg, mesh)
  n = len(test)
  bs = shd.fit_batch_size(cfg.eval_batch_size, mesh)  # the last batch is padded to it anyway
  counts = {name: np.zeros(2, np.int64) for name, _ in heads.pools}
  spans = [np.arange(start, min(start + bs, n)) for start in range(0, n, bs)]
  if isinstance(test, StreamingImages) and test.keep_aspect:  # the crops of each rectangle
    batches = test.batches(spans, view=test_view(test.side, cfg.crop_size or test.side,
                                                 cfg.ten_crop))
  elif isinstance(test, StreamingImages):
    batches = test.batches(spans)
  else:
    batches = ((test.images[sp[0]:sp[-1] + 1], test.labels[sp[0]:sp[-1] + 1]) for sp in spans)
  for imgs, labs in batches:
    labs = np.asarray(labs, np.int32)
    mask = np.ones(len(imgs), bool)
    if len(imgs) < bs:  # pad the last batch; the mask keeps padding out of the counts
      pad = bs - len(imgs)
      imgs = np.concatenate([imgs, np.zeros((pad,) + imgs.shape[1:], imgs.dtype)])
      labs = np.concatenate([labs, np.zeros(pad, np.int32)])
      mask = np.concatenate([mask, np.zeros(pad, bool)])
    imgs, labs, mask = shd.to_global((imgs, labs, mask), bsh)
    out = evaluate(heads_vars, trunk_vars, imgs, labs, mask)
    for name, (t1, t5) in jax.device_get(out).items():
      counts[name] += (int(t1), int(t5))
  return {name: {"top1": 100.0 * c[0] / n, "top5": 100.0 * c[1] / n} for name, c in counts.items()}
