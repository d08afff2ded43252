"""benchmarks/run_time.py (issue 38): the probe costs' fit and projection (no timing here)."""
import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def rt():
  return load_benchmark("run_time")


def test_fit_line_separates_fixed_and_per_image_seconds(rt):
  # 7 s of compilation plus 2.5 ms an image, measured at 5,000 and 10,000 images.
  a, b = {"n": 5000, "t": 7 + 5000 * 0.0025}, {"n": 10000, "t": 7 + 10000 * 0.0025}
  slope, fixed = rt.fit_line(a, b, "t", "n")
  assert slope == pytest.approx(0.0025) and fixed == pytest.approx(7.0)
  # Noise that tips the slope below zero reads as no per-image cost, not a negative one.
  assert rt.fit_line({"n": 10, "t": 5.0}, {"n": 20, "t": 4.0}, "t", "n") == (0.0, pytest.approx(6.0))


def test_probe_seconds_adds_epochs_first_pass_and_evaluation(rt):
  r = {"per_image_epoch_s": 0.001, "first_fixed_s": 7.0, "first_per_image_s": 0.0025,
       "eval_fixed_s": 3.0, "eval_per_image_s": 0.002}
  # 80,000 images x 10 epochs, the feature pass over them once, 10,000 evaluated.
  assert rt.probe_seconds(r, 80_000, 10, 10_000) == pytest.approx(800 + 7 + 200 + 3 + 20)
