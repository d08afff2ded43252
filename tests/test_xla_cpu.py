"""The XLA:CPU flag: set by the entry points (never by importing the package), where measured,
never over the user's choice."""
import os
import subprocess
import sys

import pytest

from mono_ssl import xla_cpu

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _xla_flags_after_import(env_extra: dict, apply: bool = True) -> str:
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", xla_cpu.OPT_OUT_ENV)}
  env.update(env_extra)
  env["PYTHONPATH"] = REPO
  code = ("import mono_ssl, mono_ssl.train, mono_ssl.grid, mono_ssl.xla_cpu, os, jax, jax.numpy as jnp;"
          + ("mono_ssl.xla_cpu.apply();" if apply else "")
          + "jnp.ones(3).sum().block_until_ready();"  # the backend starts with the flags
          "print(os.environ.get('XLA_FLAGS', ''))")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  return out.stdout.strip()


@pytest.mark.skipif(not any(v in __import__("importlib.metadata").metadata.version("jaxlib")
                            for v in xla_cpu.TESTED_JAXLIB),
                    reason="the flag is only set for the jaxlib versions it was measured with")
def test_apply_sets_the_convolution_flag_and_xla_accepts_it():
  assert xla_cpu.YNN_CONV_OFF in _xla_flags_after_import({})
  # The user's other flags are kept.
  got = _xla_flags_after_import({"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"})
  assert got.startswith("--xla_cpu_enable_fast_math=false") and xla_cpu.YNN_CONV_OFF in got


def test_user_choice_and_opt_out_are_respected():
  mine = "--xla_cpu_experimental_ynn_fusion_type=+individual_convolution"
  assert _xla_flags_after_import({"XLA_FLAGS": mine}) == mine
  assert _xla_flags_after_import({xla_cpu.OPT_OUT_ENV: "1"}) == ""


def test_importing_the_package_changes_no_process_wide_setting():
  assert _xla_flags_after_import({}, apply=False) == ""
  mine = "--xla_cpu_enable_fast_math=false"
  assert _xla_flags_after_import({"XLA_FLAGS": mine}, apply=False) == mine


@pytest.mark.parametrize("entry", ["mono_ssl/main.py", "mono_ssl/grid.py", "mono_ssl/probe_recipe.py",
                                   "benchmarks/train_step.py", "benchmarks/accelerator.py",
                                   "benchmarks/step_paths.py", "benchmarks/conv_levers.py",
                                   "benchmarks/run_time.py", "benchmarks/probe_views.py",
                                   "benchmarks/rotnet_task_lr.py"])
def test_entry_points_apply_the_flag_before_they_run(entry):
  src = open(os.path.join(REPO, entry)).read()
  main_block = src[src.index('if __name__ == "__main__":'):]
  assert "xla_cpu.apply()" in main_block.split("\n")[2], entry  # first thing in the block
