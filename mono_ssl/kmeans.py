"""k-means in JAX, jitted end to end, plus the PCA-whitening DeepCluster applies first.

`kmeans(x, k, key=...)` runs k-means++ (or random) initialisation and Lloyd
iterations inside `lax` loops. Squared distances come from matrix products,
||x||^2 - 2 x.c + ||c||^2, computed over chunks of rows so memory stays bounded
(chunk x K floats) for N up to millions and K up to 10,000. Empty clusters are
re-seeded by splitting the largest cluster, as faiss and DeepCluster do.
Features may be sharded over a device mesh: every sum is global, so 1 and 4
devices give the same clustering. Pure: no global state, reusable from any
JAX project.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from mono_ssl.errors import UserInputError


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class KMeansResult:
  """centroids (K, D), assignments (N,) int32, inertia (sum of squared distances), sizes (K,)."""
  centroids: jax.Array
  assignments: jax.Array
  inertia: jax.Array
  sizes: jax.Array


def _chunk_rows(n: int, k: int, budget_bytes: int = 64 * 2**20) -> int:
  """Rows per distance chunk: the (rows, K) float32 block stays under budget_bytes."""
  rows = max(8, budget_bytes // (4 * max(k, 1)))
  return int(min(n, rows))


def assign(x: jax.Array, centroids: jax.Array, chunk: int) -> tuple[jax.Array, jax.Array]:
  """Nearest centroid of every row and its squared distance, chunk rows at a time."""
  n, d = x.shape
  pad = (-n) % chunk
  xp = jnp.pad(x, ((0, pad), (0, 0)))
  c_sq = jnp.sum(centroids * centroids, axis=1)

  def one(block):
    # argmin of ||c||^2 - 2 x.c (||x||^2 is the same for every centroid); the
    # winner's distance is then computed directly, since the expanded form
    # loses precision in float32 when ||x|| is large against the distance.
    scores = c_sq[None, :] - 2.0 * block @ centroids.T
    idx = jnp.argmin(scores, axis=1).astype(jnp.int32)
    return idx, jnp.sum((block - centroids[idx]) ** 2, axis=1)

  idx, dist = jax.lax.map(one, xp.reshape(-1, chunk, d))
  return idx.reshape(-1)[:n], dist.reshape(-1)[:n]


def _kmeans_pp(key: jax.Array, x: jax.Array, k: int, chunk: int) -> jax.Array:
  """k-means++ seeding (D^2 sampling), one centroid per `fori_loop` iteration."""
  n, d = x.shape
  k0, key = jax.random.split(key)
  first = x[jax.random.randint(k0, (), 0, n)]
  cents = jnp.zeros((k, d), x.dtype).at[0].set(first)
  d2 = jnp.sum((x - first) ** 2, axis=1)

  def body(i, carry):
    cents, d2 = carry
    ki = jax.random.fold_in(key, i)
    p = d2 / jnp.maximum(jnp.sum(d2), 1e-30)
    j = jax.random.choice(ki, n, p=p)
    c = x[j]
    return cents.at[i].set(c), jnp.minimum(d2, jnp.sum((x - c) ** 2, axis=1))

  cents, _ = jax.lax.fori_loop(1, k, body, (cents, d2))
  return cents


def _split_empty(centroids: jax.Array, sizes: jax.Array, eps: float = 1e-4):
  """Re-seeds every empty cluster from the currently largest one, split symmetrically.

  As in faiss: the empty centroid becomes c*(1+eps), the donor c*(1-eps), and
  the donor's count is shared between them; the loop runs once per empty cluster.
  """
  def cond(carry):
    _, sizes = carry
    return jnp.min(sizes) == 0

  def body(carry):
    cents, sizes = carry
    j = jnp.argmin(sizes)
    m = jnp.argmax(sizes)
    cm = cents[m]
    cents = cents.at[j].set(cm * (1 + eps)).at[m].set(cm * (1 - eps))
    half = sizes[m] // 2
    sizes = sizes.at[j].set(jnp.maximum(half, 1)).at[m].set(sizes[m] - jnp.maximum(half, 1))
    return cents, sizes

  # A degenerate input (fewer distinct points than K) could make this spin:
  # the caller guarantees K <= N, and each split strictly empties no cluster.
  return jax.lax.while_loop(cond, body, (centroids, sizes))


@functools.partial(jax.jit, static_argnames=("k", "num_iters", "init", "chunk"))
def _kmeans_jit(x, key, init_centroids, *, k, num_iters, init, chunk):
  if init_centroids is not None:
    cents = init_centroids.astype(x.dtype)
  elif init == "kmeans++":
    cents = _kmeans_pp(key, x, k, chunk)
  else:
    cents = x[jax.random.choice(key, x.shape[0], (k,), replace=False)]

  def lloyd(_, cents):
    idx, _ = assign(x, cents, chunk)
    sums = jax.ops.segment_sum(x, idx, num_segments=k)
    sizes = jax.ops.segment_sum(jnp.ones_like(idx), idx, num_segments=k)
    new = jnp.where(sizes[:, None] > 0, sums / jnp.maximum(sizes, 1)[:, None], cents)
    new, _ = _split_empty(new, sizes)
    return new

  cents = jax.lax.fori_loop(0, num_iters, lloyd, cents)
  idx, dist = assign(x, cents, chunk)
  sizes = jax.ops.segment_sum(jnp.ones_like(idx), idx, num_segments=k)
  return KMeansResult(cents, idx, jnp.sum(dist), sizes)


def kmeans(x: jax.Array, k: int, *, key: jax.Array | None = None, num_iters: int = 20,
           init: str = "kmeans++", init_centroids: jax.Array | None = None,
           chunk: int | None = None) -> KMeansResult:
  """Clusters the rows of x (N, D) into k clusters.

  Args:
    x: float features; may be sharded over devices along N.
    k: number of clusters, 1 <= k <= N.
    key: PRNG key of the initialisation (same key -> same result).
    num_iters: Lloyd iterations after the initialisation.
    init: "kmeans++" or "random" (k distinct rows); ignored if init_centroids given.
    init_centroids: (k, D) starting centroids (e.g. to match another library).
    chunk: rows per distance block (default: (chunk, k) floats stay under 64 MiB).
  Returns:
    KMeansResult with centroids after num_iters updates, the final assignments,
    their inertia and cluster sizes.
  """
  if x.ndim != 2:
    raise UserInputError(f"kmeans needs features of shape (N, D); got {x.shape}.")
  n = x.shape[0]
  if not isinstance(k, (int, np.integer)) or k < 1 or k > n:
    raise UserInputError(f"kmeans: k={k} clusters is impossible for N={n} points; use 1 <= k <= N.")
  if init not in ("kmeans++", "random"):
    raise UserInputError(f"kmeans: init={init!r} is not 'kmeans++' or 'random'.")
  if num_iters < 0:
    raise UserInputError(f"kmeans: num_iters={num_iters} must be >= 0.")
  if not bool(jnp.all(jnp.isfinite(x))):
    raise UserInputError("kmeans: the features contain NaN or inf; check the network that made them.")
  if init_centroids is not None and init_centroids.shape != (k, x.shape[1]):
    raise UserInputError(f"kmeans: init_centroids shape {init_centroids.shape} != {(k, x.shape[1])}.")
  key = jax.random.key(0) if key is None else key
  return _kmeans_jit(x.astype(jnp.float32), key, init_centroids, k=int(k), num_iters=int(num_iters),
                     init=init, chunk=chunk or _chunk_rows(n, k))


@functools.partial(jax.jit, static_argnames=("dim",))
def pca_whiten(x: jax.Array, dim: int, eps: float = 1e-5) -> jax.Array:
  """DeepCluster's preprocessing: centre, project on the top `dim` principal axes,
  scale each by 1/sqrt(eigenvalue + eps) (whitening), then L2-normalise rows."""
  x = x.astype(jnp.float32)
  xc = x - jnp.mean(x, axis=0)
  cov = xc.T @ xc / x.shape[0]
  evals, evecs = jnp.linalg.eigh(cov)  # ascending
  top = evecs[:, ::-1][:, :dim]
  scale = 1.0 / jnp.sqrt(evals[::-1][:dim] + eps)
  z = (xc @ top) * scale
  return z / jnp.maximum(jnp.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def nmi(a: np.ndarray, b: np.ndarray) -> float:
  """Normalised mutual information between two labelings (DeepCluster's stability signal)."""
  a, b = np.asarray(a), np.asarray(b)
  n = a.size
  _, ai = np.unique(a, return_inverse=True)
  _, bi = np.unique(b, return_inverse=True)
  joint = np.zeros((ai.max() + 1, bi.max() + 1))
  np.add.at(joint, (ai, bi), 1)
  pxy = joint / n
  px, py = pxy.sum(1), pxy.sum(0)
  nz = pxy > 0
  mi = np.sum(pxy[nz] * np.log(pxy[nz] / (px[:, None] * py[None, :])[nz]))
  hx = -np.sum(px[px > 0] * np.log(px[px > 0]))
  hy = -np.sum(py[py > 0] * np.log(py[py > 0]))
  return float(mi / max(np.sqrt(hx * hy), 1e-12)) if hx > 0 and hy > 0 else float(hx == hy)
