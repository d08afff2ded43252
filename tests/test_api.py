"""mono_ssl.api: the README's reuse snippet runs as written in a fresh interpreter; the plain-argument
pieces are what the config path uses."""
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
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


def test_bigan_from_plain_arguments_is_the_config_paths_bigan():
  """Donahue's BiGAN built from flax modules, optax optimisers and BiGANStepOptions'
  defaults: the same initial arrays and the same first step as the config path."""
  from test_bigan_donahue import donahue_config

  from mono_ssl import sharding
  from mono_ssl.methods import bigan
  config = donahue_config(**{"model.hidden": ()})
  mesh, key = sharding.make_mesh(), jax.random.key(2)
  via_config = bigan.create_state(config, 32, key, mesh, 10)
  ge_tx, d_tx = bigan.optimisers(config, 10)
  plain = api.bigan_state(api.bigan_encoder("cpu", 16, width_mult=0.25),
                          api.Generator(out_size=32, width=8, z_every_layer=True),
                          api.DonahueDiscriminator(width=8), ge_tx, d_tx, key, 32,
                          latent_dim=16, gen_size=32, mesh=mesh)
  jax.tree.map(np.testing.assert_array_equal, via_config.params, plain.params)
  imgs = jax.random.uniform(jax.random.key(0), (8, 32, 32, 3))
  a, ma = jax.jit(bigan.make_train_step(config))(via_config, imgs, jax.random.key(1))
  b, mb = jax.jit(api.bigan_step(api.BiGANStepOptions(latent_dim=16)))(plain, imgs,
                                                                       jax.random.key(1))
  for name in ("d_loss", "g_loss", "e_code_std", "d_acc_real", "d_acc_fake"):
    np.testing.assert_allclose(float(ma[name]), float(mb[name]), rtol=1e-6, err_msg=name)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7),
               a.params, b.params)


def test_deepcluster_from_plain_arguments_installs_a_clustering_and_trains_on_it():
  import optax

  from mono_ssl.errors import UserInputError
  model = api.alexnet("cpu", num_classes=4, width_mult=0.25, hidden=(32, 32))
  state = api.deepcluster_state(model, optax.sgd(0.05, momentum=0.9), jax.random.key(0),
                                image_size=32, data_size=64, num_clusters=4)
  patches = api.patch_generator([api.default_image(512)], seed=0)(jax.numpy.arange(64))
  trunk = {"params": state.params, "batch_stats": state.batch_stats}
  _, feats = model.apply(trunk, api.normalise(patches), head=False)
  clusters = api.recluster(feats["conv5"].reshape(64, -1), 4, jax.random.key(1), pca_dim=8)
  state = api.install_clustering(state, clusters, jax.random.key(2), epoch=0)
  np.testing.assert_array_equal(np.asarray(state.assignments), clusters.assignments)
  assert int(state.epoch) == 0 and np.asarray(state.sizes).sum() == 64
  idx = jax.numpy.arange(8)
  new, metrics = jax.jit(api.deepcluster_step())(state, {"images": patches[:8], "indices": idx},
                                                 jax.random.key(3))
  assert np.isfinite(float(metrics["loss"])) and int(new.step) == 1
  # The step's labels are the installed pseudo-labels: a wrong table changes the loss.
  relabelled = new.replace(assignments=(state.assignments + 1) % 4)
  _, other = jax.jit(api.deepcluster_step())(state.replace(assignments=relabelled.assignments),
                                             {"images": patches[:8], "indices": idx},
                                             jax.random.key(3))
  assert float(other["loss"]) != float(metrics["loss"])
  with pytest.raises(UserInputError, match="does not fit this state's 64 patches"):
    api.install_clustering(state, api.recluster(feats["conv5"][:32].reshape(32, -1), 4,
                                                jax.random.key(1), pca_dim=8), jax.random.key(2))
