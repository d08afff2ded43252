# Setup. In Colab: install the repository (a checkout this notebook was opened from, else a
# clone of REPO_URL) with the jax that matches the runtime, and check that jax sees that
# accelerator before anything runs. Elsewhere: use the local checkout this notebook runs in.
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

# The repository to clone in Colab when the notebook is not opened from a checkout.
REPO_URL = "https://github.com/<org>/mono_ssl"  # placeholder: set it to the repository's URL


def runtime_accelerator(root=Path("/"), environ=os.environ, which=shutil.which,
                        find_spec=importlib.util.find_spec):
  """'tpu', 'gpu' or 'cpu': what this runtime offers. Today's Colab TPU VMs ship libtpu and
  expose /dev/vfio; older ones /dev/accel* and COLAB_TPU_ADDR; GPUs have nvidia-smi."""
  vfio = root / "dev" / "vfio"
  if (find_spec("libtpu") is not None or (vfio.is_dir() and any(p.name != "vfio" for p in vfio.iterdir()))
      or any((root / "dev").glob("accel*")) or "COLAB_TPU_ADDR" in environ
      or "TPU_ACCELERATOR_TYPE" in environ):
    return "tpu"
  return "gpu" if which("nvidia-smi") else "cpu"


def _is_repo(p):
  return (p / "mono_ssl" / "__init__.py").is_file() and (p / "configs").is_dir()


# A checkout around the working directory (Jupyter: the notebook's folder; CI: the repo root).
REPO = next((p for p in [Path.cwd(), *Path.cwd().parents] if _is_repo(p)), None)
if "google.colab" in sys.modules:
  ACCELERATOR = runtime_accelerator()
  if REPO is None:
    if "<org>" in REPO_URL:
      raise ValueError("REPO_URL is unset: set it in this cell to the mono_ssl repository's URL "
                       "(or open the notebook from a checkout of it)")
    REPO = Path("/content/mono_ssl")
    if not REPO.exists():
      subprocess.run(["git", "clone", "--depth=1", REPO_URL, str(REPO)], check=True)
  # jax with the runtime's accelerator support in the same pip call, so that satisfying
  # mono_ssl's jax pin cannot swap in a CPU-only jaxlib.
  extra = {"tpu": ["jax[tpu]"], "gpu": ["jax[cuda12]"], "cpu": []}[ACCELERATOR]
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", str(REPO), *extra], check=True)
  import jax
  platform = jax.devices()[0].platform
  if platform != ACCELERATOR:
    raise RuntimeError(f"this runtime offers a {ACCELERATOR} but jax sees {platform}: restart the "
                       "runtime (Runtime > Restart session) and run this cell again")
else:
  if REPO is None and importlib.util.find_spec("mono_ssl") is not None:
    REPO = Path(importlib.util.find_spec("mono_ssl").origin).parent.parent
  if REPO is None or not _is_repo(REPO):
    raise FileNotFoundError("mono_ssl checkout not found: open this notebook from inside the "
                            "repository (or `pip install -e` it and run from its root)")
if importlib.util.find_spec("mono_ssl") is None:
  sys.path.insert(0, str(REPO))
# Faster XLA:CPU convolutions: an XLA flag, set before JAX starts (mono_ssl/xla_cpu.py).
importlib.import_module("mono_ssl.xla_cpu").apply()
print("repository:", REPO)
