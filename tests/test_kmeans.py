"""The JAX k-means: exact on separated blobs, no empty cluster, deterministic, same on 1 and 4 devices."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mono_ssl import kmeans as km
from mono_ssl import sharding as shd
from mono_ssl.errors import UserInputError


def _blobs(n_per=200, k=8, d=16, seed=0, spread=0.05):
  rng = np.random.default_rng(seed)
  centres = rng.normal(0, 10, (k, d))
  labels = np.repeat(np.arange(k), n_per)
  x = centres[labels] + rng.normal(0, spread, (k * n_per, d))
  perm = rng.permutation(len(x))
  return x[perm].astype(np.float32), labels[perm]


def test_recovers_well_separated_blobs_exactly():
  x, labels = _blobs()
  res = km.kmeans(jnp.asarray(x), 8, key=jax.random.key(0), num_iters=10)
  a = np.asarray(res.assignments)
  # Same partition up to renaming: every blob maps to one cluster and vice versa.
  pairs = set(zip(labels.tolist(), a.tolist()))
  assert len(pairs) == 8 and len({p[1] for p in pairs}) == 8
  assert km.nmi(labels, a) == pytest.approx(1.0)
  assert float(res.inertia) == pytest.approx(float(np.sum((x - np.asarray(res.centroids)[a]) ** 2)), rel=1e-4)


def test_no_empty_cluster_survives():
  # Random init from a cloud with a few far outliers leaves clusters empty in Lloyd's update.
  rng = np.random.default_rng(1)
  x = np.concatenate([rng.normal(0, 1, (500, 4)), rng.normal(0, 1, (5, 4)) + 100]).astype(np.float32)
  init = np.concatenate([x[-5:], x[-5:] + 1e-3, x[:2]])  # duplicated centroids: some must go empty
  res = km.kmeans(jnp.asarray(x), 12, init_centroids=jnp.asarray(init), num_iters=10)
  assert int(np.min(np.asarray(res.sizes))) > 0
  assert np.asarray(res.sizes).sum() == len(x)


def test_same_seed_same_assignments_different_seed_may_differ():
  x, _ = _blobs(n_per=50, k=20, d=8, spread=3.0)
  a = km.kmeans(jnp.asarray(x), 20, key=jax.random.key(3))
  b = km.kmeans(jnp.asarray(x), 20, key=jax.random.key(3))
  np.testing.assert_array_equal(np.asarray(a.assignments), np.asarray(b.assignments))


def test_identical_on_one_and_four_devices():
  x, _ = _blobs(n_per=64, k=10, d=8, spread=2.0)
  results = []
  for n_dev in (1, 4):
    mesh = shd.make_mesh(jax.devices()[:n_dev])
    xs = shd.to_global(x, shd.batch_sharded(mesh))
    results.append(km.kmeans(xs, 10, key=jax.random.key(0), num_iters=5))
  np.testing.assert_array_equal(np.asarray(results[0].assignments), np.asarray(results[1].assignments))
  np.testing.assert_allclose(np.asarray(results[0].centroids), np.asarray(results[1].centroids), rtol=1e-5,
                             atol=1e-5)


@pytest.mark.parametrize("k", [0, -1, 101])
def test_impossible_k_is_refused(k):
  with pytest.raises(UserInputError, match=f"k={k}"):
    km.kmeans(jnp.ones((100, 3)), k)


def test_nan_features_are_refused():
  x = np.ones((10, 3), np.float32)
  x[3, 1] = np.nan
  with pytest.raises(UserInputError, match="NaN"):
    km.kmeans(jnp.asarray(x), 2)


def test_pca_whitening_gives_unit_rows_and_decorrelated_axes():
  rng = np.random.default_rng(0)
  x = rng.normal(0, 1, (2000, 32)) @ rng.normal(0, 1, (32, 32))
  z = np.asarray(km.pca_whiten(jnp.asarray(x, jnp.float32), 8))
  assert z.shape == (2000, 8)
  np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
  c = np.corrcoef(z.T)
  assert np.abs(c - np.diag(np.diag(c))).max() < 0.2
