"""benchmarks/step_paths.py (issue 38): its summary line, and its --quick form end to end."""
import os
import re
import subprocess
import sys

from conftest import REPO, load_benchmark


def _module():
  return load_benchmark("step_paths")


def test_summary_line_is_default_against_f32_and_the_fastest_torch_path():
  sp = _module()
  med = {"jax default": 1.0, "jax f32": 2.0, "jax bf16": 0.25,
         "torch f32": 1.5, "torch bf16": 4.0, "torch compile": 0.8}
  # ratios are seconds of the other path over the default's: > 1 means the default is faster;
  # the jax bf16 lever row is neither the default nor torch.
  assert sp.summary_line(med) == "default/f32 2.00, default/torch-best 0.80"
  no_torch = {k: v for k, v in med.items() if not k.startswith("torch")}
  assert sp.summary_line(no_torch) == "default/f32 2.00, default/torch-best n/a (torch not installed)"


def test_quick_form_ends_with_the_summary_line():
  env = {**os.environ, "PYTHONPATH": str(REPO)}
  r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "step_paths.py"), "--quick", "--no-bf16"],
                     env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-2000:]
  last = r.stdout.strip().splitlines()[-1]
  assert re.fullmatch(r"default/f32 \d+\.\d\d, default/torch-best (\d+\.\d\d|n/a \(torch not installed\))",
                      last), last
  assert "| jax default |" in r.stdout and "| jax f32 |" in r.stdout
