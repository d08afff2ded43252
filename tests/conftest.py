"""Test setup: four fake CPU devices, so every test exercises the sharded (data-parallel) path."""
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import jax

from mono_ssl import xla_cpu  # noqa: E402

xla_cpu.apply()  # as the entry points do: faster XLA:CPU convolutions, before JAX starts

# Must happen before any JAX backend is initialised.
jax.config.update("jax_num_cpu_devices", 4)

# One persistent compilation cache for the whole session, shared with the CLI runs the tests
# start as subprocesses: many tests build the same tiny steps afresh (new jit objects over the
# same computation), and XLA's compile is most of a tiny test's time on 2 cores.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="mono_ssl_test_jax_cache_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"]
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # configs/ is not a package: tests load it by path

import pytest  # noqa: E402

from mono_ssl import config_lib, paths  # noqa: E402


def load_config_file(name: str, arg: str | None = None):
  """configs/<name>.py's get_config(arg) (`config_lib.load_config_file`)."""
  return config_lib.load_config_file(REPO / "configs" / f"{name}.py", arg)


def apply_overrides(c, overrides: dict):
  """Sets dotted fields, e.g. {"train.batch_size": 8}, in place; returns c."""
  for k, v in overrides.items():
    node = c
    *parents, leaf = k.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = v
  return c


def tiny_config(**overrides):
  """Single-image RotNet small enough for a test: 32 px patches, a quarter-width AlexNet."""
  c = config_lib.base_config("rotnet", "single", "cpu")
  c.data.images = "default"
  c.data.max_side = 512
  c.model.width_mult = 0.25
  c.model.hidden = (32, 32)
  c.train.batch_size = 8
  c.train.num_steps = 6
  c.train.log_every = 2
  c.train.ckpt_every = 3
  c.probe.dataset = "bundled_cifar10"
  c.probe.limit_per_class = 20
  c.probe.epochs = 1
  c.probe.batch_size = 20
  c.probe.eval_batch_size = 100
  c.probe.target_dims = 144  # every layer of the quarter-width AlexNet at 32 px: 144 values
  c.probe.curve_every = 0  # on in the tests of curves (tests/test_curves.py)
  apply_overrides(c, overrides)
  c.lock()
  return c


@pytest.fixture
def shared_dir():
  """The ../shared folder, or a skip with the reason when it is absent."""
  d = paths.shared_dir()
  if d is None:
    pytest.skip("../shared is absent (set MONO_SSL_SHARED): real-data test skipped")
  return d


def pytest_report_header(config):
  return f"jax {jax.__version__}, {jax.device_count()} devices ({os.cpu_count()} CPU cores)"


def load_benchmark(name: str):
  """benchmarks/<name>.py as a module (the benchmarks are scripts, not a package); the folder is
  on sys.path while it loads, so that a benchmark can import its neighbours (train_step, pipeline)."""
  import importlib.util
  folder = str(Path(__file__).resolve().parents[1] / "benchmarks")
  sys.path.insert(0, folder)
  try:
    spec = importlib.util.spec_from_file_location(name, Path(folder) / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
  finally:
    sys.path.remove(folder)
