"""DeepCluster (Caron et al. 2018): k-means pseudo-labels on the network's own features.

Every epoch (one pass over the cluster set: the run's N virtual patches or images):
features of the whole set (the last hidden layer, inference mode) -> PCA to
`pca_dim` with whitening -> L2 normalisation -> k-means into K clusters (new
seed each epoch, empty clusters split) -> pseudo-labels; the classification
layer is re-initialised (N(0, 0.01), zero bias, fresh momentum) and the
network trains on the pseudo-labels with batches drawn uniformly over clusters.

The assignments and the sampler's tables live in the state, so a resumed
run continues mid-epoch with the same labels (bit-identical resume).
Clustering features come from each base patch without the method's crop and
flip (the original uses centre crops); training index `i + N * (epoch + 1)`
is a fresh loader view (method crop + flip) of base patch i every epoch.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from mono_ssl import kmeans as km
from mono_ssl import sharding as shd
from mono_ssl.errors import UserInputError
from mono_ssl.models.alexnet import alexnet_from_config
from mono_ssl.train_state import TrainState, classification_update, create_classifier_state, normalise


@flax.struct.dataclass
class DeepClusterState(TrainState):
  """TrainState + the current clustering: assignments (N,), members sorted by cluster
  (`order`), each cluster's first position in it (`starts`) and `sizes`; `epoch` = -1
  before the first clustering."""
  assignments: jax.Array = None
  order: jax.Array = None
  starts: jax.Array = None
  sizes: jax.Array = None
  epoch: jax.Array = None


def build_model(config):
  return alexnet_from_config(config, config.deepcluster.num_clusters)


def create_state(config, image_size: int, key: jax.Array, mesh, total_steps: int,
                 data_size: int | None = None) -> DeepClusterState:
  """data_size: the cluster set's size N (the run's data set: virtual patches or images)."""
  model = build_model(config)
  n = int(data_size or config.data.dataset_size)
  k = config.deepcluster.num_clusters
  if not 1 <= k <= n:
    raise UserInputError(f"deepcluster.num_clusters={k} must be between 1 and the data set size {n}.")

  return create_classifier_state(
      model, config, image_size, key, mesh, total_steps, DeepClusterState,
      assignments=lambda: jnp.zeros((n,), jnp.int32), order=lambda: jnp.arange(n, dtype=jnp.int32),
      starts=lambda: jnp.zeros((k,), jnp.int32), sizes=lambda: jnp.zeros((k,), jnp.int32),
      epoch=lambda: jnp.int32(-1))


def trunk(state):
  return state.apply_fn, {"params": state.params, "batch_stats": state.batch_stats}


def epoch_steps(config, n: int) -> int:
  """Steps in one pass over the N patches of the cluster set."""
  return max(1, math.ceil(n / config.train.batch_size))


def sample_indices(state: DeepClusterState, key: jax.Array, batch: int) -> jax.Array:
  """Patch indices drawn uniformly over non-empty clusters, then uniformly within one."""
  k_c, k_m = jax.random.split(key)
  nonempty = (state.sizes > 0).astype(jnp.float32)
  clusters = jax.random.choice(k_c, state.sizes.shape[0], (batch,), p=nonempty / jnp.sum(nonempty))
  u = jax.random.uniform(k_m, (batch,))
  pos = state.starts[clusters] + jnp.floor(u * state.sizes[clusters]).astype(jnp.int32)
  n = state.assignments.shape[0]
  return state.order[pos] + n * (state.epoch + 1)  # this epoch's loader view of the patch


def make_batch(images: jax.Array, indices: jax.Array) -> dict:
  return {"images": images, "indices": indices}


def make_train_step(config=None, axis_name: Any = None) -> Callable:
  """Pure step `(state, batch, key) -> (state, metrics)`; batch = {"images", "indices"}.

  The pseudo-label of each patch is read from state.assignments.
  """

  def step(state: DeepClusterState, batch: dict, key: jax.Array):
    labels = state.assignments[batch["indices"] % state.assignments.shape[0]]
    return classification_update(state, normalise(batch["images"]), labels, key, axis_name)

  return step


def _features(state, generator, n: int, chunk: int, mesh) -> jax.Array:
  """Last-hidden-layer features of patches 0..n-1 (inference mode), sharded over the mesh."""
  feat_fn = jax.jit(lambda v, imgs: state.apply_fn(v, normalise(imgs), train=False)[1])
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  out = []
  bsh = shd.batch_sharded(mesh)
  for start in range(0, n, chunk):
    idx = np.arange(start, start + chunk) % n  # the tail wraps; trimmed below
    feats = feat_fn(variables, generator(shd.to_global(idx.astype(np.int32), bsh)))
    name = max((k for k in feats if k.startswith("fc")), key=lambda k: int(k[2:]))
    out.append(feats[name])
  return jnp.concatenate(out)[:n]


def _reinit_classifier(state: DeepClusterState, key: jax.Array) -> DeepClusterState:
  """Fresh top layer (N(0, 0.01), zero bias) and zero momentum for it, as the original."""
  params = dict(state.params)
  cls = params["classifier"]
  params["classifier"] = {"kernel": 0.01 * jax.random.normal(key, cls["kernel"].shape),
                          "bias": jnp.zeros_like(cls["bias"])}

  def zero_classifier(path, leaf):
    return jnp.zeros_like(leaf) if any(getattr(p, "key", None) == "classifier" for p in path) else leaf

  opt_state = jax.tree_util.tree_map_with_path(zero_classifier, state.opt_state)
  return state.replace(params=params, opt_state=opt_state)


def before_step(state: DeepClusterState, t: int, ctx: dict) -> DeepClusterState:
  """Reclusters at the start of every epoch (and once at step 0 of a fresh run)."""
  config, log = ctx["config"], ctx["log"]
  dc = config.deepcluster
  n = state.assignments.shape[0]
  epoch = t // epoch_steps(config, n)
  if int(jax.device_get(state.epoch)) == epoch:
    return state  # resumed mid-epoch: the clustering is in the checkpoint
  mesh, repl = ctx["mesh"], shd.replicated(ctx["mesh"])
  if "plain_generator" not in ctx:  # base patches without the loader's crop and flip
    g = ctx["generator"]
    plain = dataclasses.replace(g.cfg, method_crop=False, flip=False)
    ctx["plain_generator"] = g.with_config(plain)
  feats = _features(state, ctx["plain_generator"], n, dc.feature_batch, mesh)
  z = km.pca_whiten(feats, min(dc.pca_dim, feats.shape[1]))
  key = jax.random.fold_in(jax.random.key(config.seed + 7), epoch)  # new seed every epoch
  res = km.kmeans(z, dc.num_clusters, key=key, num_iters=dc.kmeans_iters)
  assignments = np.asarray(jax.device_get(res.assignments))
  sizes = np.bincount(assignments, minlength=dc.num_clusters).astype(np.int32)
  order = np.argsort(assignments, kind="stable").astype(np.int32)
  starts = (np.cumsum(sizes) - sizes).astype(np.int32)
  stats = {"epoch": epoch, "inertia": float(res.inertia), "empty_clusters": int((sizes == 0).sum()),
           "size_min": int(sizes.min()), "size_median": float(np.median(sizes)), "size_max": int(sizes.max())}
  if int(jax.device_get(state.epoch)) >= 0:
    stats["nmi_vs_previous"] = km.nmi(np.asarray(jax.device_get(state.assignments)), assignments)
  log("deepcluster " + " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in stats.items()))
  if ctx.get("metrics") is not None:
    ctx["metrics"].write({"step": t, "clustering": stats})
  table = shd.to_global({"assignments": assignments, "order": order, "starts": starts,
                         "sizes": sizes, "epoch": np.int32(epoch)}, repl)
  state = _reinit_classifier(state.replace(**table), jax.random.fold_in(key, 1))
  return jax.device_put(state, repl)  # the new classifier: put it beside the rest
