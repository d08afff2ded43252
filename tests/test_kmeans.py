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


def test_fast_argmin_is_jnp_argmin_bit_for_bit():
  # The reduction-only argmin must keep argmin's first-index rule on ties,
  # one-ulp differences, denormals and signed zeros.
  rng = np.random.default_rng(0)
  tiny = np.nextafter(np.float32(0), np.float32(1))
  below_one = np.nextafter(np.float32(1), np.float32(0))
  cases = [
      np.round(rng.normal(0, 2, (500, 37))).astype(np.float32),  # many ties
      np.where(rng.random((200, 64)) < 0.05, below_one, np.float32(1)).astype(np.float32),
      (tiny * rng.integers(0, 5, (100, 30))).astype(np.float32),
      np.where(rng.random((100, 20)) < 0.5, np.float32(-0.0), np.float32(0.0)).astype(np.float32),
      (rng.normal(0, 1, (100, 1000)) * 1e37).astype(np.float32),
      rng.normal(0, 1, (10, 1)).astype(np.float32),
  ]
  fast = jax.jit(km._argmin_rows)
  ref = jax.jit(lambda s: jnp.argmin(s, axis=1))  # not numpy's: XLA:CPU flushes denormals to zero
  for s in cases:
    np.testing.assert_array_equal(np.asarray(fast(s)), np.asarray(ref(s)))


@pytest.mark.parametrize("tile_k", [2048, 4])
@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_assign_is_exact_for_any_chunk_and_tile(chunk, tile_k, monkeypatch):
  # Ragged last block and padded last centroid tile included: every row gets
  # its true nearest centroid, and a duplicated centroid loses to its first copy.
  monkeypatch.setattr(km, "_TILE_K", tile_k)
  rng = np.random.default_rng(2)
  x = rng.normal(0, 1, (301, 5)).astype(np.float32)
  c = rng.normal(0, 1, (13, 5)).astype(np.float32)
  c[11] = c[2]
  d2 = ((x[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1)
  idx, dist = km.assign(jnp.asarray(x), jnp.asarray(c), chunk)
  np.testing.assert_array_equal(np.asarray(idx), d2.argmin(1))
  assert not np.any(np.asarray(idx) == 11)
  np.testing.assert_allclose(np.asarray(dist), d2.min(1), rtol=1e-5, atol=1e-6)


def test_benchmark_quick_mode_matches_faiss(tmp_path):
  """benchmarks/kmeans.py --quick: runs in seconds and ends where faiss does (inertia within 0.1%)."""
  import importlib.util
  import json
  import subprocess
  import sys
  from pathlib import Path

  if importlib.util.find_spec("faiss") is None:
    pytest.skip("faiss-cpu is not installed (pip install -e .[bench]); the benchmark compares against it")
  repo = Path(__file__).resolve().parent.parent
  out = tmp_path / "bench.json"
  proc = subprocess.run([sys.executable, str(repo / "benchmarks" / "kmeans.py"), "--quick", "--iters", "3",
                         "--impls", "jax,faiss", "--json", str(out)], capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "| N | D | K |" in proc.stdout
  rows = json.loads(out.read_text())["rows"]
  assert len(rows) == 2
  for row in rows:
    faiss_keys = [k for k in row["inertia"] if k.startswith("faiss")]
    assert faiss_keys and row["time"]["jax"] > 0
    for k in faiss_keys:
      assert row["inertia"]["jax"] == pytest.approx(row["inertia"][k], rel=1e-3)
