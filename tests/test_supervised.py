"""Full supervision: the loss goes down on real CIFAR-10, labels follow the patch index, bad setups are refused."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import apply_overrides, load_config_file

from mono_ssl import datasets, train
from mono_ssl import sharding as shd
from mono_ssl.errors import UserInputError
from mono_ssl.methods import supervised

TINY = {"model.width_mult": 0.25, "model.hidden": (32, 32), "train.batch_size": 32, "train.lr_boundaries": (),
        "train.log_every": 1, "train.ckpt_every": 1000}


def test_loss_goes_down_on_real_cifar10(tmp_path, shared_dir):
  config = apply_overrides(load_config_file("supervised", "regime=full,scale=cpu"),
                           {**TINY, "train.num_steps": 40, "probe.data_dir": str(shared_dir / "data"),
                            "data.data_dir": str(shared_dir / "data")})
  assert config.data.full_dataset == config.probe.dataset == "cifar10"
  state, _, _ = train.pretrain(config, tmp_path, log=lambda s: None)
  np.testing.assert_array_equal(jax.device_get(state.labels),
                                datasets.load_split("cifar10", "train", shared_dir / "data").labels)
  losses = [json.loads(l)["loss"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert len(losses) == 40
  assert np.mean(losses[:5]) > 2.1  # ~ln 10 = 2.30 at the start: ten classes, chance
  assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.15, losses


def test_each_patch_index_carries_its_images_label(monkeypatch):
  labels = np.arange(10, dtype=np.int32) % 7
  state = supervised.SupervisedState(step=jnp.int32(0), params={}, batch_stats={}, opt_state=(),
                                     apply_fn=None, tx=None, labels=jnp.asarray(labels))
  seen = {}

  def fake_update(st, x, y, key, axis_name):
    seen["labels"] = y
    return st, {}

  monkeypatch.setattr(supervised, "classification_update", fake_update)
  idx = jnp.asarray([0, 1, 10 + 2, 3 * 10 + 9])  # index i -> image i mod N
  supervised.make_train_step()(state, {"images": jnp.zeros((4, 8, 8, 3)), "indices": idx},
                               jax.random.key(0))
  np.testing.assert_array_equal(seen["labels"], labels[[0, 1, 2, 9]])


def test_num_classes_zero_means_the_data_sets():
  config = apply_overrides(load_config_file("supervised", "regime=full,scale=cpu"),
                           {"probe.dataset": "bundled_cifar10", "data.full_dataset": "bundled_cifar10"})
  assert config.supervised.num_classes == 0
  assert supervised.build_model(config).num_classes == 10


@pytest.mark.parametrize("overrides,match", [
    ({"data.full_dataset": "cifar10"}, "full_dataset='cifar10' and probe.dataset='bundled_cifar10'"),
    ({"supervised.num_classes": 7}, "num_classes=7 but bundled_cifar10/train has 10 classes"),
    ({"regime": "single"}, "needs labelled images"),
])
def test_bad_setups_are_refused(overrides, match):
  config = apply_overrides(load_config_file("supervised", "regime=full,scale=cpu"),
                           {"probe.dataset": "bundled_cifar10", "data.full_dataset": "bundled_cifar10",
                            **overrides})
  with pytest.raises(UserInputError, match=match):
    supervised.create_state(config, 32, jax.random.key(0), shd.make_mesh(), 10)


def test_config_takes_the_full_regime_only():
  with pytest.raises(UserInputError, match="regime \\(supervised\\)='deca'"):
    load_config_file("supervised", "regime=deca")
  assert load_config_file("supervised", "scale=paper").train.num_steps == 90 * 1_281_167 // 256
