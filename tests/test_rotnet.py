"""RotNet: rotations and labels, a loss that goes down on real patches, 1 vs 4 devices, pmap."""
import jax
import jax.numpy as jnp
import numpy as np
from conftest import tiny_config

from mono_ssl import sharding as shd
from mono_ssl.augment import PatchGenerator
from mono_ssl.data import pretrain_source
from mono_ssl.methods import rotnet


def test_rotate_batch_labels_match_rotations():
  x = jax.random.uniform(jax.random.key(0), (3, 8, 8, 3))
  rots, labels = rotnet.rotate_batch(x)
  assert rots.shape == (12, 8, 8, 3)
  np.testing.assert_array_equal(labels, np.tile(np.arange(4), 3))
  for i in range(3):
    for k in range(4):
      np.testing.assert_array_equal(rots[4 * i + k], np.rot90(np.asarray(x[i]), k, axes=(0, 1)))


def _setup(mesh, lr=0.05, batch=16):
  config = tiny_config(**{"train.batch_size": batch, "train.lr": lr, "train.lr_boundaries": (0.9,)})
  source = pretrain_source(config)
  state = rotnet.create_state(config, source.aug.out_size, jax.random.key(0), mesh, 100)
  gen = PatchGenerator(jax.device_put(source.bank, shd.replicated(mesh)), source.aug, seed=0)
  step = jax.jit(rotnet.make_train_step(), donate_argnums=0,
                 in_shardings=(shd.replicated(mesh), shd.batch_sharded(mesh), shd.replicated(mesh)),
                 out_shardings=(shd.replicated(mesh), shd.replicated(mesh)))
  return state, gen, step


def test_loss_decreases_on_real_patches():
  mesh = shd.make_mesh()
  state, gen, step = _setup(mesh, lr=0.1)
  losses = []
  for t in range(50):
    idx = jax.device_put(jnp.arange(16 * t, 16 * t + 16), shd.batch_sharded(mesh))
    state, m = step(state, gen(idx), jax.random.key(t))
    losses.append(float(m["loss"]))
  assert np.isfinite(losses).all()
  assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.05, losses


def test_same_parameters_on_one_and_four_devices():
  results = []
  for devices in (jax.devices()[:1], jax.devices()[:4]):
    mesh = shd.make_mesh(devices)
    state, gen, step = _setup(mesh, batch=8)
    for t in range(3):
      idx = jax.device_put(jnp.arange(8 * t, 8 * t + 8), shd.batch_sharded(mesh))
      state, _ = step(state, gen(idx), jax.random.key(t))
    results.append(jax.device_get(state.params))
  for a, b in zip(jax.tree.leaves(results[0]), jax.tree.leaves(results[1])):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_step_under_pmap_with_axis_name_matches_jit():
  mesh1 = shd.make_mesh(jax.devices()[:1])
  state, gen, step = _setup(mesh1, batch=8)
  images = gen(jnp.arange(8))
  jit_state, jit_m = step(jax.tree.map(lambda x: x.copy(), state), images, jax.random.key(0))

  model = rotnet.build_model(tiny_config()).clone(bn_axis_name="batch")
  # Host copies: pmap places them itself.
  pstate = jax.tree.map(lambda x: np.stack([np.asarray(x)] * 4), state.replace(apply_fn=model.apply))
  pstep = jax.pmap(rotnet.make_train_step(axis_name="batch"), axis_name="batch")
  keys = jnp.stack([jax.random.key_data(jax.random.key(0))] * 4)
  p_state, p_m = pstep(pstate, np.asarray(images).reshape(4, 2, *images.shape[1:]),
                       jax.random.wrap_key_data(np.asarray(keys)))
  np.testing.assert_allclose(float(p_m["loss"][0]), float(jit_m["loss"]), rtol=1e-5)
  for a, b in zip(jax.tree.leaves(jax.device_get(jit_state.params)),
                  jax.tree.leaves(jax.device_get(p_state.params))):
    np.testing.assert_allclose(a, b[0], rtol=2e-4, atol=2e-5)


def test_heldout_rotation_accuracy_counts_every_image_in_all_four_rotations():
  # Against a direct count with the model's own inference-mode logits; 7 images in batches of
  # 4 (the padded last batch is masked), and a trained-to-one-answer head is scored 1/4.
  from mono_ssl.train_state import normalise
  mesh = shd.make_mesh()
  state, gen, step = _setup(mesh, lr=0.1)
  for t in range(20):
    idx = jax.device_put(jnp.arange(16 * t, 16 * t + 16), shd.batch_sharded(mesh))
    state, _ = step(state, gen(idx), jax.random.key(t))
  imgs = np.asarray(gen(jnp.arange(1000, 1007)) * 255).round().astype(np.uint8)
  acc = rotnet.make_rotation_accuracy(state, imgs, batch=4)(state)
  r, labels = rotnet.rotate_batch(normalise(jnp.asarray(imgs, jnp.float32) / 255.0))
  logits, _ = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats}, r, train=False)
  direct = float(np.mean(np.argmax(np.asarray(logits), -1) == np.asarray(labels)))
  assert acc == direct and 0 <= acc <= 1
  # A head that answers "0 degrees" whatever it sees gets exactly a quarter.
  params = jax.tree.map(lambda x: x, state.params)
  params["classifier"]["bias"] = params["classifier"]["bias"].at[0].set(1e6)
  assert rotnet.make_rotation_accuracy(state, imgs, batch=4)(state.replace(params=params)) == 0.25


def test_rotnet_curve_points_carry_the_heldout_rotation_accuracy(tmp_path):
  from mono_ssl import curves, train
  curve = {"probe.curve_every": 3, "probe.curve_epochs": 1, "probe.curve_train_size": 100,
           "probe.curve_val_size": 40, "probe.val_fraction": 0.2}
  config = tiny_config(**curve)
  train.pretrain(config, tmp_path / "on", log=lambda s: None, probe_train=train.load_probe_data(config)[0])
  points = curves.read_curve(tmp_path / "on" / curves.CURVE_FILE)
  assert [p["step"] for p in points] == [0, 3, 6]
  assert all(0 <= p["rotation_acc_heldout"] <= 1 for p in points)
  assert "rotation_acc_heldout" not in curves.curve_layers(points)
  off = tiny_config(**curve, **{"probe.curve_rotation_heldout": 0})
  train.pretrain(off, tmp_path / "off", log=lambda s: None, probe_train=train.load_probe_data(off)[0])
  assert not any("rotation_acc_heldout" in p for p in curves.read_curve(tmp_path / "off" / curves.CURVE_FILE))
