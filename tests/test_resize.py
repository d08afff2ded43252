"""Probe images resized in memory for a stack designed for another side (the mini scale)."""
import numpy as np
import pytest

from mono_ssl import config_lib, datasets, train
from mono_ssl.errors import UserInputError


def _set(images):
  n = len(images)
  return datasets.LabelledImages(images=images, labels=np.zeros(n, np.int32), num_classes=1,
                                 name="toy/train")


def test_resize_keeps_the_whole_image_and_its_values():
  img = np.zeros((3, 64, 64, 3), np.uint8)
  img[:, :, :32] = 200  # left half bright
  img[2] = 77           # one flat image
  out = datasets.resize_images(_set(img), 48, chunk=2)  # 3 images in chunks of 2: padded tail
  assert out.images.shape == (3, 48, 48, 3) and out.images.dtype == np.uint8
  assert out.name == "toy/train@48px"
  # The whole image is kept (not a crop): the left half stays bright, the right dark.
  assert (out.images[0, :, :20] == 200).all() and (out.images[0, :, 28:] == 0).all()
  assert (out.images[2] == 77).all()
  up = datasets.resize_images(_set(img[:, ::2, ::2]), 48)  # 32 -> 48, upsampled
  assert up.images.shape == (3, 48, 48, 3) and (up.images[2] == 77).all()
  same = _set(img)
  assert datasets.resize_images(same, 64) is same


@pytest.mark.parametrize("side", [0, -48, 4.5])
def test_resize_refuses_a_bad_side(side):
  with pytest.raises(UserInputError, match="resize side"):
    datasets.resize_images(_set(np.zeros((1, 8, 8, 3), np.uint8)), side)


def test_probe_data_resized_to_probe_resize():
  c = config_lib.base_config("rotnet", "single", "cpu")
  c.probe.dataset = "bundled_cifar10"
  c.probe.resize = 48
  tr, te = train.load_probe_data(c)
  assert tr.images.shape[1:] == te.images.shape[1:] == (48, 48, 3)
  c.probe.resize = 0
  tr0, _ = train.load_probe_data(c)
  assert tr0.images.shape[1:] == (32, 32, 3) and len(tr0) == len(tr)
