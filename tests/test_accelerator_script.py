"""benchmarks/accelerator.py --quick: the prepared GPU check runs its own code on CPU, so it cannot rot."""
import json
import subprocess
import sys

from conftest import REPO


def test_accelerator_check_quick_prints_every_case_and_projects_each_run(tmp_path):
  r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "accelerator.py"), "--quick",
                      "--dtypes", "bfloat16", "--out", str(tmp_path)],
                     capture_output=True, text=True, timeout=900, cwd=REPO)
  assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
  out = json.loads((tmp_path / "accelerator.json").read_text())
  assert [(c["method"], c["dtype"]) for c in out["cases"]] == [
      ("rotnet", "bfloat16"), ("deepcluster", "bfloat16"), ("bigan", "bfloat16")]
  for c in out["cases"]:
    assert c["step_ips"] > 0 and c["e2e_ips"] > 0 and c["compile_s"] > 0 and 0 <= c["data_wait"] < 1
    # The projection is the run's steps at the end-to-end rate (plus clusterings for DeepCluster).
    assert c["projected_s"] >= c["steps"] * c["batch"] / c["e2e_ips"] * 0.999
  dc = out["cases"][1]
  assert dc["projected_s"] > dc["steps"] * dc["batch"] / dc["e2e_ips"]  # its feature passes count
  assert out["kmeans"]["s"] > 0 and out["loader"]["ips_per_core"] > 0
  table = (tmp_path / "accelerator.md").read_text()
  assert table.count("| bfloat16 |") == 3 and "per core" in table


def test_loader_comparison_quick_measures_every_loader_on_the_same_images():
  """benchmarks/loader.py --quick: the stream, its probe views and (when installed) grain."""
  r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "loader.py"), "--quick"],
                     capture_output=True, text=True, timeout=600, cwd=REPO)
  assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
  rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in r.stdout.splitlines()
          if line.startswith("| ") and not line.startswith("| loader")}
  assert rows["stream"][-1].strip() == "1.00" and float(rows["stream+views"][1]) > 0
  try:
    import grain  # noqa: F401
    assert float(rows["grain threads"][1]) > 0 and float(rows["grain processes"][1]) > 0
  except ImportError:
    assert "grain is not installed" in r.stdout
