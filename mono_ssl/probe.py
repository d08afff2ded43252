"""Linear probes on frozen conv1..conv5 features (the authors' `linear-probes` protocol).

Each probe: max-pool the tapped feature map to about `target_dims` values,
BatchNorm without scale or offset, one linear layer (Xavier-uniform, zero
bias). The trunk is frozen: its features pass through `stop_gradient` and its
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
from mono_ssl.streaming import StreamingImages, image_side
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


class ProbeHeads(nn.Module):
  """Max-pool -> BatchNorm(no affine) -> Dense, one head per tapped layer."""
  num_classes: int
  pools: Any  # tuple of (layer, (kernel, stride, pad))
  bn_axis_name: Any = None

  @nn.compact
  def __call__(self, feats: dict, train: bool = False) -> dict:
    logits = {}
    for name, (k, s, p) in self.pools:
      f = nn.max_pool(feats[name], (k, k), strides=(s, s), padding=((p, p), (p, p)))
      f = f.reshape((f.shape[0], -1))
      f = nn.BatchNorm(use_running_average=not train, use_scale=False, use_bias=False,
                       momentum=0.9, axis_name=self.bn_axis_name, name=f"{name}_bn")(f)
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
    feats = jax.lax.stop_gradient(feats)

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

  return step


def eval_views(images: jax.Array, crop: int | None = None, ten_crop: bool = False) -> list:
  """The views of a test batch (B, H, W, C) whose logits are averaged.

  crop None or the images' side, no ten_crop: the images themselves. Otherwise
  crop x crop views: the centre crop, or with ten_crop the four corner crops and
  the centre crop, then each of them flipped left-right (the paper protocol's
  ten-crop evaluation).
  """
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


def run_linear_probes(trunk_apply: Callable, trunk_vars: Any,
                      train: LabelledImages | StreamingImages,
                      test: LabelledImages | StreamingImages, cfg: ProbeConfig, mesh=None,
                      log: Callable[[str], None] = print) -> dict:
  """Trains the five probes on `train`, returns {layer: {"top1": %, "top5": %}} on all of `test`.

  Train-time augmentation: random-resized crop (scale `crop_scale`, resized to
  `crop_size`, default the images' side) and horizontal flip, on device.
  Test: the whole image, its centre `crop_size` crop, or with `ten_crop` the
  mean logits of ten crops. Every test example counts: the last batch is
  padded and masked.
  """
  mesh = mesh or shd.make_mesh()
  shd.check_batch_size(cfg.batch_size, mesh, "probe.batch_size")
  shd.check_batch_size(cfg.eval_batch_size, mesh, "probe.eval_batch_size")
  repl, bsh = shd.replicated(mesh), shd.batch_sharded(mesh)
  n_train, size = len(train), image_side(train)
  crop = cfg.crop_size or size
  test_side = (test.side if isinstance(test, StreamingImages)
               else min(test.images.shape[1], test.images.shape[2]))
  if not 1 <= crop <= min(size, test_side):
    raise UserInputError(f"probe.crop_size={cfg.crop_size} must be between 1 and the images' side "
                         f"({size} px train, {test_side} px test); 0 uses the images' side.")
  if n_train < cfg.batch_size:
    raise UserInputError(f"probe.batch_size={cfg.batch_size} exceeds the {n_train} training "
                         f"images of {train.name}; lower probe.batch_size.")
  trunk_vars = jax.device_put(trunk_vars, repl)  # already global arrays: a no-op or a reshard

  # Pool sizes come from the feature shapes at the probe's input size.
  feat_shapes = jax.eval_shape(lambda v, x: trunk_apply(v, x, train=False, head=False)[1], trunk_vars,
                               jax.ShapeDtypeStruct((1, crop, crop, 3), jnp.float32))
  pools = tuple((n, pool_params(feat_shapes[n].shape[1], feat_shapes[n].shape[3], cfg.target_dims))
                for n in cfg.layers)
  heads = ProbeHeads(num_classes=train.num_classes, pools=pools)
  steps_per_epoch = n_train // cfg.batch_size
  total = steps_per_epoch * cfg.epochs
  tx = sgd(sgd_schedule(cfg.lr, total, cfg.lr_boundaries, cfg.lr_decay), cfg.momentum, False,
           cfg.weight_decay)

  def init(key):
    _, feats = trunk_apply(trunk_vars, jnp.zeros((2, crop, crop, 3)), train=False, head=False)
    v = heads.init(key, feats, train=False)
    return TrainState(step=jnp.int32(0), params=v["params"], batch_stats=v["batch_stats"],
                      opt_state=tx.init(v["params"]), apply_fn=heads.apply, tx=tx)

  state = jax.jit(init, out_shardings=repl)(jax.random.key(cfg.seed))
  step = jax.jit(make_probe_step(trunk_apply, heads), donate_argnums=0,
                 in_shardings=(repl, repl, bsh, bsh, repl), out_shardings=(repl, repl))
  aug = AugmentConfig(out_size=crop, patch_size=size, initial_crop=False, rrc=False, affine=False,
                      method_crop=True, method_crop_scale=cfg.crop_scale, flip=cfg.flip,
                      jitter_prob=0.0, antialias=False)
  aug_key = jax.random.key(cfg.seed + 1)
  streamed = isinstance(train, StreamingImages)
  if streamed:
    # Only this batch's images are on device; `image_ids` points each crop at its
    # image, and the crop's randomness still comes from its global index, so a
    # stream gives the crops of the in-memory path.
    crop = jax.jit(lambda b, idx: sample_geometry(
        b, aug, aug_key, idx, image_ids=jnp.arange(idx.shape[0], dtype=jnp.int32)),
                   out_shardings=bsh)
  else:
    bank = shd.to_global(ImageBank.from_images_array(train.images), repl)
    labels_dev = shd.to_global(np.asarray(train.labels, np.int32), repl)
    crop = jax.jit(lambda b, lab, idx: (sample_geometry(b, aug, aug_key, idx), lab[idx % n_train]),
                   out_shardings=(bsh, bsh))

  rng = np.random.default_rng(cfg.seed)
  t0 = time.time()
  for epoch in range(cfg.epochs):
    # Epoch e's order is a permutation of the data; the patch index also
    # carries the epoch so that every epoch sees fresh crops.
    perm = rng.permutation(n_train)[:steps_per_epoch * cfg.batch_size]
    perm = perm.reshape(steps_per_epoch, cfg.batch_size)
    host_batches = train.batches(perm) if streamed else None
    for s in range(steps_per_epoch):
      idx = shd.to_global((perm[s] + epoch * n_train).astype(np.int32), bsh)
      if streamed:
        imgs, labs = next(host_batches)
        batch_bank = shd.to_global(ImageBank.from_images_array(imgs), repl)
        images = crop(batch_bank, idx)
        labels = shd.to_global(labs, bsh)
      else:
        images, labels = crop(bank, labels_dev, idx)
      state, metrics = step(state, trunk_vars, images, labels, jax.random.key(0))
    if host_batches is not None:
      host_batches.close()  # stops its reader thread
    m = jax.device_get(metrics)
    log(f"probe epoch {epoch + 1}/{cfg.epochs}: loss {float(m['loss']):.3f} "
        + " ".join(f"{n} {100 * float(m['acc_' + n]):.1f}" for n in cfg.layers)
        + f" ({time.time() - t0:.0f}s)")
    if not np.isfinite(float(m["loss"])):
      raise UserInputError(f"probe loss became {float(m['loss'])} in epoch {epoch + 1}; lower probe.lr.")

  return evaluate_probes(trunk_apply, trunk_vars, heads,
                         {"params": state.params, "batch_stats": state.batch_stats}, test, cfg,
                         mesh)


def evaluate_probes(trunk_apply, trunk_vars, heads, heads_vars, test: LabelledImages,
                    cfg: ProbeConfig, mesh) -> dict:
  """Top-1/top-5 (%) per layer on every example of `test`."""
  repl, bsh = shd.replicated(mesh), shd.batch_sharded(mesh)
  evaluate = jax.jit(make_eval_step(trunk_apply, heads, cfg.crop_size or None, cfg.ten_crop),
                     in_shardings=(repl, repl, bsh, bsh, bsh))
  n = len(test)
  bs = cfg.eval_batch_size
  counts = {name: np.zeros(2, np.int64) for name, _ in heads.pools}
  spans = [np.arange(start, min(start + bs, n)) for start in range(0, n, bs)]
  if isinstance(test, StreamingImages):
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
