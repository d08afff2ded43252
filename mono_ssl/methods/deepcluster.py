"""DeepCluster (Caron et al. 2018): k-means pseudo-labels on the network's own features.

Every `deepcluster.reassign` epochs (passes over the cluster set: the run's N
virtual patches or images): features of the whole set (fc7 before its ReLU,
inference mode) -> PCA to `pca_dim` with whitening -> L2 normalisation ->
k-means into K clusters (faiss' random init, new seed each time, empty clusters
split) -> pseudo-labels; the top layer is re-initialised (N(0, 0.01), zero
bias) with its own momentum-free SGD state, and the network trains on the
pseudo-labels with batches drawn uniformly over clusters, each draw a fresh
crop and flip. These are the original's choices (facebookresearch/deepcluster
main.py, clustering.py, models/alexnet.py), each an option of `deepcluster.*`.

The assignments and the sampler's tables live in the state, so a resumed
run continues mid-epoch with the same labels (bit-identical resume).
Clustering features come from each base patch without the method's crop and
flip (the original uses centre crops); training index `i + N * v` is loader
view v (method crop + flip) of base patch i.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mono_ssl import kmeans as km
from mono_ssl import report
from mono_ssl import sharding as shd
from mono_ssl.errors import UserInputError
from mono_ssl.methods.protocol import Hooks
from mono_ssl.models.alexnet import alexnet_from_config
from mono_ssl.train_state import (
  TrainState,
  classification_update,
  classifier_state,
  normalise,
  sgd,
  sgd_from_config,
)


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
  """The AlexNet with a `num_clusters` top layer; `deepcluster.head_bn` False is the original's
  head (Dropout -> Linear -> ReLU, no BatchNorm); `deepcluster.sobel` its grey + Sobel input."""
  dc = config.deepcluster
  return alexnet_from_config(config, dc.num_clusters).clone(head_bn=bool(dc.head_bn),
                                                            sobel=bool(dc.sobel))


def _top_layer_labels(params) -> Any:
  return {k: ("top" if k == "classifier" else "trunk") for k in params}


def optimiser(config, total_steps: int) -> optax.GradientTransformation:
  """The train block's SGD for the network; for the top layer, as the original (main.py,
  `train`: `optimizer_tl`, created anew every epoch), SGD with `deepcluster.top_momentum`
  (0: none) and the same rate and weight decay. Its state is reset at every clustering."""
  tc = config.train
  trunk_tx, schedule = sgd_from_config(tc, total_steps)
  top_tx = sgd(schedule, float(config.deepcluster.top_momentum), False, tc.weight_decay)
  return optax.multi_transform({"trunk": trunk_tx, "top": top_tx}, _top_layer_labels)


def init_state(model, tx: optax.GradientTransformation, key: jax.Array, image_size: int,
               data_size: int, num_clusters: int, mesh=None) -> DeepClusterState:
  """A fresh DeepCluster state from plain arguments: `classifier_state` of a
  `num_clusters`-class model plus the pseudo-labels of the N = `data_size` patches and the
  cluster sampler's table (empty until the first `install_clustering`)."""
  if not 1 <= num_clusters <= data_size:
    raise UserInputError(f"deepcluster.num_clusters={num_clusters} must be between 1 and the "
                         f"data set size {data_size}.")
  n, k = int(data_size), int(num_clusters)
  return classifier_state(
      model, tx, key, image_size, mesh, DeepClusterState,
      assignments=lambda: jnp.zeros((n,), jnp.int32), order=lambda: jnp.arange(n, dtype=jnp.int32),
      starts=lambda: jnp.zeros((k,), jnp.int32), sizes=lambda: jnp.zeros((k,), jnp.int32),
      epoch=lambda: jnp.int32(-1))


def create_state(config, image_size: int, key: jax.Array, mesh, total_steps: int,
                 data_size: int | None = None) -> DeepClusterState:
  """`init_state` with the config's model and optimiser; data_size: the cluster set's size N
  (the run's data set: virtual patches or images)."""
  _check(config)
  return init_state(build_model(config), optimiser(config, total_steps), key, image_size,
                    int(data_size or config.data.dataset_size), config.deepcluster.num_clusters, mesh)


def trunk(state):
  return state.apply_fn, {"params": state.params, "batch_stats": state.batch_stats}


FEATURE_TAPS = ("fc_pre_relu", "fc")


def _check(config) -> None:
  dc = config.deepcluster
  if not dc.reassign > 0:
    raise UserInputError(f"deepcluster.reassign={dc.reassign} must be > 0 (epochs of training "
                         "between two clusterings; 1 = the original's default).")
  if dc.kmeans_init not in ("random", "kmeans++"):
    raise UserInputError(f"deepcluster.kmeans_init={dc.kmeans_init!r} is not one of random "
                         "(faiss' default, the original's), kmeans++.")
  if dc.feature_tap not in FEATURE_TAPS:
    raise UserInputError(f"deepcluster.feature_tap={dc.feature_tap!r} is not one of "
                         f"{', '.join(FEATURE_TAPS)}.")
  if not 0 <= dc.top_momentum < 1:
    raise UserInputError(f"deepcluster.top_momentum={dc.top_momentum} must be in [0, 1).")


def epoch_steps(config, n: int) -> int:
  """Steps between two clusterings: `deepcluster.reassign` passes over the N patches of the
  cluster set (the original's --reassign; its sampler draws int(reassign * N) samples)."""
  return max(1, math.ceil(config.deepcluster.reassign * n / config.train.batch_size))


def views_per_patch(n: int) -> int:
  """How many distinct loader views of each of N base patches an int32 index can name."""
  return max(1, (2**31 - 1) // n - 1)


def sample_indices(state: DeepClusterState, key: jax.Array, batch: int,
                   fresh_views: bool = True) -> jax.Array:
  """Patch indices drawn uniformly over non-empty clusters, then uniformly within one.

  Index i + N * v is loader view v (the method's crop and flip) of base patch i; its
  pseudo-label is that of i. `fresh_views`: every draw gets a random view, as the
  original's loader crops and flips each draw anew (clustering.py `cluster_assign`:
  RandomResizedCrop + RandomHorizontalFlip), so a member of a small cluster, drawn
  many times an epoch, is not the same image each time. Else one view per epoch.
  """
  k_c, k_m, k_v = jax.random.split(key, 3)
  nonempty = (state.sizes > 0).astype(jnp.float32)
  clusters = jax.random.choice(k_c, state.sizes.shape[0], (batch,), p=nonempty / jnp.sum(nonempty))
  u = jax.random.uniform(k_m, (batch,))
  pos = state.starts[clusters] + jnp.floor(u * state.sizes[clusters]).astype(jnp.int32)
  n = state.assignments.shape[0]
  if fresh_views:
    view = 1 + jax.random.randint(k_v, (batch,), 0, views_per_patch(n))
  else:
    view = state.epoch + 1  # this epoch's loader view of the patch
  return state.order[pos] + n * view


def make_sampler(config) -> Callable:
  """`sample_indices` with the config's `deepcluster.fresh_views`."""
  fresh = bool(config.deepcluster.fresh_views)
  return lambda state, key, batch: sample_indices(state, key, batch, fresh)


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


def feature_name(feats: dict, tap: str) -> str:
  """The last hidden FC layer's key: before its ReLU ("fc_pre_relu", the original's: main.py
  drops the classifier's last ReLU before computing features) or after it ("fc")."""
  last = max(int(k[2:]) for k in feats if k.startswith("fc") and k[2:].isdigit())
  return f"fc{last}_pre" if tap == "fc_pre_relu" else f"fc{last}"


def _features(state, generator, n: int, chunk: int, mesh, tap: str = "fc_pre_relu") -> jax.Array:
  """Last-hidden-layer features of patches 0..n-1 (inference mode), sharded over the mesh."""
  feat_fn = jax.jit(lambda v, imgs: state.apply_fn(v, normalise(imgs), train=False)[1])
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  out = []
  bsh = shd.batch_sharded(mesh)
  for start in range(0, n, chunk):
    idx = np.arange(start, start + chunk) % n  # the tail wraps; trimmed below
    feats = feat_fn(variables, generator(shd.to_global(idx.astype(np.int32), bsh)))
    out.append(feats[feature_name(feats, tap)].astype(jnp.float32))  # k-means in float32
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


CLUSTERS_PLOT = "clusters.png"


def _earlier_clusterings(workdir: Path, epoch: int) -> list[dict]:
  """The clustering records of metrics.jsonl before `epoch` (a resumed run's history)."""
  return [r["clustering"] for r in report.read_jsonl(workdir / "metrics.jsonl", "clustering")
          if r["clustering"]["epoch"] < epoch]


def plot_clusters(path: Path, history: list[dict], sizes: np.ndarray) -> None:
  """clusters.png: NMI between successive clusterings against clustering, and the cluster
  size histogram of the latest one (with its empty clusters)."""
  from matplotlib.figure import Figure
  fig = Figure(figsize=(9, 3.4))
  ax1, ax2 = fig.subplots(1, 2)
  pts = [(h["epoch"], h["nmi_vs_previous"]) for h in history if "nmi_vs_previous" in h]
  if pts:
    ax1.plot(*zip(*pts), marker=".")
  ax1.set(xlabel="clustering", ylabel="NMI with the previous one", ylim=(0, 1),
          title=f"{len(history)} clusterings")
  ax2.hist(sizes, bins=min(50, max(5, len(sizes) // 4)))
  ax2.set(xlabel="cluster size (patches)", ylabel="clusters",
          title=f"clustering {history[-1]['epoch'] if history else 0}: "
                f"{int((sizes == 0).sum())} empty of {len(sizes)}")
  fig.tight_layout()
  fig.savefig(path, dpi=90)


@dataclasses.dataclass(frozen=True)
class Clustering:
  """One re-clustering: host numpy arrays (int32) and the k-means inertia."""
  assignments: np.ndarray  # (N,) cluster of each image
  sizes: np.ndarray        # (K,) images per cluster
  order: np.ndarray        # (N,) image indices sorted by cluster (the sampler's table)
  starts: np.ndarray       # (K,) where each cluster begins in `order`
  inertia: float


def recluster(features: jax.Array, num_clusters: int, key: jax.Array, *, pca_dim: int = 256,
              kmeans_iters: int = 20, init: str = "random") -> Clustering:
  """DeepCluster's re-clustering of (N, D) features, from plain arguments: PCA to `pca_dim`
  with whitening and L2 rows (`kmeans.pca_whiten`), then k-means (`kmeans.kmeans`; "random":
  faiss' k distinct points, the original's). Host side, like `kmeans` (it checks the
  features and returns numpy): call it between jitted steps, not inside one."""
  z = km.pca_whiten(features, min(pca_dim, features.shape[1]))
  res = km.kmeans(z, num_clusters, key=key, num_iters=kmeans_iters, init=init)
  assignments = np.asarray(jax.device_get(res.assignments)).astype(np.int32)
  sizes = np.bincount(assignments, minlength=num_clusters).astype(np.int32)
  order = np.argsort(assignments, kind="stable").astype(np.int32)
  starts = (np.cumsum(sizes) - sizes).astype(np.int32)
  return Clustering(assignments, sizes, order, starts, float(res.inertia))


def before_step(state: DeepClusterState, t: int, ctx: dict) -> DeepClusterState:
  """Reclusters at the start of every epoch (and once at step 0 of a fresh run)."""
  config, log = ctx["config"], ctx["log"]
  dc = config.deepcluster
  n = state.assignments.shape[0]
  epoch = t // epoch_steps(config, n)
  if int(jax.device_get(state.epoch)) == epoch:
    return state  # resumed mid-epoch: the clustering is in the checkpoint
  mesh = ctx["mesh"]
  if "plain_generator" not in ctx:  # base patches without the loader's crop and flip
    g = ctx["generator"]
    plain = dataclasses.replace(g.cfg, method_crop=False, flip=False)
    ctx["plain_generator"] = g.with_config(plain)
  feats = _features(state, ctx["plain_generator"], n, dc.feature_batch, mesh, dc.feature_tap)
  key = jax.random.fold_in(jax.random.key(config.seed + 7), epoch)  # new seed every epoch
  # faiss' default initialisation (the original's): k distinct random points, a new seed each time.
  c = recluster(feats, dc.num_clusters, key, pca_dim=dc.pca_dim, kmeans_iters=dc.kmeans_iters,
                init=dc.kmeans_init)
  assignments, sizes = c.assignments, c.sizes
  stats = {"epoch": epoch, "inertia": c.inertia, "empty_clusters": int((sizes == 0).sum()),
           "size_min": int(sizes.min()), "size_median": float(np.median(sizes)), "size_max": int(sizes.max())}
  if int(jax.device_get(state.epoch)) >= 0:
    stats["nmi_vs_previous"] = km.nmi(np.asarray(jax.device_get(state.assignments)), assignments)
  log("deepcluster " + " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in stats.items()))
  if ctx.get("metrics") is not None:
    ctx["metrics"].write({"step": t, "clustering": stats})
  if ctx.get("workdir") is not None and shd.is_chief():
    history = ctx.setdefault("clusterings", _earlier_clusterings(Path(ctx["workdir"]), epoch))
    history.append(stats)
    plot_clusters(Path(ctx["workdir"]) / CLUSTERS_PLOT, history, sizes)
  return install_clustering(state, c, jax.random.fold_in(key, 1), epoch, mesh)


def install_clustering(state: DeepClusterState, clustering: Clustering, key: jax.Array,
                       epoch: int = 0, mesh=None) -> DeepClusterState:
  """The state with `clustering`'s pseudo-labels and sampler table, and a freshly initialised
  top layer (key) with its optimiser state reset, as the original does after each k-means
  (main.py: a new top layer every epoch). Host side, between jitted steps; replicated over
  `mesh` (default: all devices)."""
  if mesh is None:
    mesh = shd.make_mesh()
  n = state.assignments.shape[0]
  if clustering.assignments.shape != (n,) or clustering.sizes.shape != state.sizes.shape:
    raise UserInputError(f"a clustering of {clustering.assignments.shape[0]} patches into "
                         f"{clustering.sizes.shape[0]} clusters does not fit this state's "
                         f"{n} patches and {state.sizes.shape[0]} clusters.")
  repl = shd.replicated(mesh)
  table = shd.to_global({"assignments": clustering.assignments, "order": clustering.order,
                         "starts": clustering.starts, "sizes": clustering.sizes,
                         "epoch": np.int32(epoch)}, repl)
  state = _reinit_classifier(state.replace(**table), key)
  return jax.device_put(state, repl)  # the new classifier: put it beside the rest


HOOKS = Hooks(make_sampler=make_sampler, make_batch=make_batch, before_step=before_step)
