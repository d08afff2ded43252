"""mono_ssl.report's filter tiles: every trunk's conv1 input (RGB, grey, Sobel's two gradients)."""
import numpy as np
import pytest

from mono_ssl import report


def test_tile_filters_shows_rgb_grey_and_sobel_kernels():
  rng = np.random.default_rng(0)
  rgb = report.tile_filters(rng.normal(size=(3, 3, 3, 4)), pad=1)
  assert rgb.shape == (2 * 4 + 1, 2 * 4 + 1, 3) and 0.0 <= rgb.min() and rgb.max() <= 1.0
  grey = report.tile_filters(rng.normal(size=(3, 3, 1, 4)))
  assert np.array_equal(grey[..., 0], grey[..., 2])  # one channel shown grey
  # Sobel's (gx, gy) kernel: gx in red, gy in green, blue at the filter's own minimum (0).
  sobel = rng.normal(size=(3, 3, 2, 4)) * np.arange(1, 5)  # filters of different norms
  tile = report.tile_filters(sobel, cols=4, pad=0)
  assert tile.shape == (3, 12, 3)
  for i in range(4):
    f = sobel[..., i]
    want = (f - f.min()) / (f.max() - f.min())
    np.testing.assert_allclose(tile[:, 3 * i:3 * i + 3, :2], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tile[:, 3 * i:3 * i + 3, 2], 0.0, atol=1e-6)
  with pytest.raises(ValueError, match=r"\(3, 3, 4, 2\).*expected \(k, k, 1\|2\|3, C\)"):
    report.tile_filters(np.zeros((3, 3, 4, 2)))
