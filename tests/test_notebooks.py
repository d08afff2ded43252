"""The notebooks: committed without outputs, and every one runs end to end with SMOKE = True."""
import importlib.util
import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SMOKE_RE = re.compile(r"^SMOKE\s*=\s*False\b", re.MULTILINE)


def _cells(path: Path) -> list[dict]:
  return json.loads(path.read_text())["cells"]


def _parameter_cells(cells: list[dict]) -> list[dict]:
  return [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]


def test_the_notebooks_exist():
  names = {p.stem for p in NOTEBOOKS}
  assert {"quickstart", "augmentations", "results"} <= names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_no_outputs(path):
  for i, cell in enumerate(_cells(path)):
    if cell["cell_type"] == "code":
      assert cell.get("outputs") == [], f"{path.name} cell {i} has outputs: strip them before committing"
      assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution_count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_one_parameter_cell_with_smoke_off(path):
  params = _parameter_cells(_cells(path))
  assert len(params) == 1, f"{path.name}: want one code cell tagged 'parameters', got {len(params)}"
  assert SMOKE_RE.search("".join(params[0]["source"])), f"{path.name}: parameter cell lacks SMOKE = False"


def _kernel_problem() -> str | None:
  """Why the notebooks cannot be executed here, or None."""
  for mod in ("nbformat", "nbclient", "ipykernel"):
    if importlib.util.find_spec(mod) is None:
      return f"{mod} is not installed (pip install nbformat nbclient ipykernel)"
  from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
  try:
    argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
  except NoSuchKernel:
    return "no python3 kernel (run: python -m ipykernel install --sys-prefix)"
  # jupyter_client runs a bare "python" as the current interpreter.
  if argv0 not in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}") \
      and Path(argv0).resolve() != Path(sys.executable).resolve():
    return (f"the python3 kernel runs {argv0}, not this interpreter {sys.executable}; run "
            f"{sys.executable} -m ipykernel install --sys-prefix")
  return None


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_smoke_mode(path, record_property):
  problem = _kernel_problem()
  if problem is not None:
    if "not installed" in problem:
      pytest.skip(f"notebook execution skipped: {problem}")
    pytest.fail(problem)
  import nbformat
  from nbclient import NotebookClient

  nb = nbformat.read(path, as_version=4)
  (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
  cell.source, n = SMOKE_RE.subn("SMOKE = True", cell.source)
  assert n == 1, f"{path.name}: no 'SMOKE = False' to switch on"
  t0 = time.time()
  # Any cell error raises CellExecutionError with the cell's traceback.
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(REPO)}}).execute()
  seconds = time.time() - t0
  record_property("seconds", round(seconds, 1))
  print(f"{path.name}: {seconds:.1f} s in smoke mode")
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
  assert not errors, errors


def _setup_source(path: Path) -> str:
  return "".join(next(c for c in _cells(path) if c["cell_type"] == "code")["source"])


def _sync_setup():
  spec = importlib.util.spec_from_file_location("sync_setup", REPO / "notebooks" / "sync_setup.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_setup_cell_of_every_notebook_is_notebooks_setup_cell_py(tmp_path):
  """One source (notebooks/setup_cell.py); each notebook carries it, as Colab needs."""
  sync = _sync_setup()
  src = sync.setup_source()
  assert "REPO_URL = " in src and "jax.devices()[0].platform" in src
  assert {p.name: _setup_source(p) == src for p in NOTEBOOKS} == {p.name: True for p in NOTEBOOKS}
  assert sync.stale_notebooks() == [] and sync.main(["--check"]) == 0
  # A notebook whose cell drifted is found, and rewritten to the file's text, nothing else.
  for p in NOTEBOOKS:
    shutil.copy2(p, tmp_path / p.name)
  drifted = tmp_path / NOTEBOOKS[0].name
  nb = json.loads(drifted.read_text())
  cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
  cell["source"] = ["print('an old setup')\n"]
  drifted.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
  assert sync.stale_notebooks(tmp_path) == [drifted]
  assert sync.sync(tmp_path) == [drifted] and sync.stale_notebooks(tmp_path) == []
  assert drifted.read_text() == NOTEBOOKS[0].read_text()  # byte for byte the committed notebook


def _runtime_accelerator():
  """The setup cell's `runtime_accelerator`, defined from the notebook's own source."""
  import ast
  tree = ast.parse(_setup_source(NOTEBOOKS[0]))
  (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "runtime_accelerator"]
  scope = {}
  exec("import importlib.util, os, shutil\nfrom pathlib import Path\n" + ast.unparse(fn), scope)
  return scope["runtime_accelerator"]


def test_setup_cell_detects_todays_colab_tpu_gpu_and_cpu_runtimes(tmp_path):
  detect = _runtime_accelerator()
  none = {"environ": {}, "which": lambda _: None, "find_spec": lambda _: None}
  (tmp_path / "dev").mkdir()
  assert detect(tmp_path, **none) == "cpu"
  assert detect(tmp_path, **{**none, "which": lambda n: "/usr/bin/" + n}) == "gpu"
  assert detect(tmp_path, **{**none, "find_spec": lambda n: object() if n == "libtpu" else None}) == "tpu"
  (tmp_path / "dev" / "vfio").mkdir()
  assert detect(tmp_path, **none) == "cpu"  # the vfio control node alone is no TPU
  (tmp_path / "dev" / "vfio" / "0").touch()
  assert detect(tmp_path, **none) == "tpu"  # today's TPU VMs: /dev/vfio/<n>
  other = tmp_path / "old"
  (other / "dev").mkdir(parents=True)
  (other / "dev" / "accel0").touch()
  assert detect(other, **none) == "tpu"
  assert detect(tmp_path / "x", **{**none, "environ": {"COLAB_TPU_ADDR": "1"}}) == "tpu"


@pytest.mark.slow
def test_results_notebook_reads_a_real_grid():
  """results.ipynb on the committed results/mini_tiny (a grid the runner wrote), SMOKE off."""
  problem = _kernel_problem()
  if problem is not None:
    pytest.skip(f"notebook execution skipped: {problem}")
  import nbformat
  from nbclient import NotebookClient

  nb = nbformat.read(REPO / "notebooks" / "results.ipynb", as_version=4)
  (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
  cell.source = cell.source.replace('GRID_DIR = "runs/grid"', 'GRID_DIR = "results/mini_tiny"')
  assert "results/mini_tiny" in cell.source
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(REPO)}}).execute()
  text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/markdown", ""))
                 for c in nb.cells if c.cell_type == "code" for o in c.outputs)
  assert "rows from" in text and "results/mini_tiny/grid_results.json" in text
  assert "| random |" in text and "Fraction of supervision" in text
  assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
             for o in c.outputs)
