"""mono_ssl.api: the README's reuse snippet runs as written in a fresh interpreter; the plain-argument
pieces are what the config path uses."""
import re
import subprocess
import sys

import jax
import numpy as np
from conftest import REPO

from mono_ssl import api


def readme_snippet() -> str:
  text = (REPO / "README.md").read_text()
  m = re.search(r"<!-- api snippet -->\n```python\n(.*?)```", text, re.S)
  assert m, "README.md lost its api snippet block"
  return m.group(1)


def test_readme_snippet_runs_in_a_fresh_interpreter(tmp_path):
  code = readme_snippet()
  for piece in ("rotnet_step", "patch_generator", "recluster", "probe_parts"):
    assert f"api.{piece}" in code, piece
  check = ("\nimport numpy as np\nassert np.isfinite(float(metrics['loss']))\n"
           "assert clusters.sizes.sum() == 64 and len(clusters.sizes) == 4\n"
           "assert np.isfinite(float(probe_metrics['loss'])) and int(state.step) == 3\n"
           "print('snippet ok')\n")
  (tmp_path / "snippet.py").write_text(code + check)
  r = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True,
                     timeout=600)
  assert r.returncode == 0 and "snippet ok" in r.stdout, (r.stdout + r.stderr)[-3000:]


def test_plain_pieces_are_what_the_config_path_builds():
  """classifier_state from plain arguments equals the config layer's state for the same model and key."""
  from conftest import tiny_config

  from mono_ssl import sharding
  from mono_ssl.methods import rotnet
  from mono_ssl.train_state import sgd_from_config
  config = tiny_config()
  mesh = sharding.make_mesh()
  via_config = rotnet.create_state(config, 32, jax.random.key(3), mesh, 10)
  model = rotnet.build_model(config)
  plain = api.classifier_state(model, sgd_from_config(config.train, 10)[0], jax.random.key(3), 32, mesh)
  jax.tree.map(np.testing.assert_array_equal, via_config.params, plain.params)
  step = jax.jit(api.rotnet_step())
  imgs = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3))
  a, ma = step(via_config, imgs, jax.random.key(1))
  b, mb = step(plain, imgs, jax.random.key(1))
  np.testing.assert_allclose(float(ma["loss"]), float(mb["loss"]), rtol=1e-6)
  # recluster: the same clustering as pca_whiten + kmeans by hand, and a sampler table.
  x = jax.random.normal(jax.random.key(4), (40, 6))
  c = api.recluster(x, 3, jax.random.key(5), pca_dim=4, kmeans_iters=5)
  want = api.kmeans(api.pca_whiten(x, 4), 3, key=jax.random.key(5), num_iters=5, init="random")
  np.testing.assert_array_equal(c.assignments, np.asarray(want.assignments))
  assert c.sizes.tolist() == np.bincount(c.assignments, minlength=3).tolist()
  np.testing.assert_array_equal(c.assignments[c.order], np.sort(c.assignments))
  assert c.starts.tolist() == [0, int(c.sizes[0]), int(c.sizes[0] + c.sizes[1])]
