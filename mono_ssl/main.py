"""Command line: `python -m mono_ssl.main --config=configs/rotnet.py:regime=single --workdir=DIR`.

Pretrains, probes conv1..conv5 of the trained and of the random-init trunk,
and writes probe_results.{json,md,png}, metrics.jsonl, config.json and
checkpoints/ into the workdir. Rerunning with the same workdir resumes.
"""
from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mono_ssl.errors import TrainingDiverged, UserInputError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/quickstart.py",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")


def main(argv) -> int:
  del argv
  # Orbax logs every checkpoint step at INFO; keep the console to our progress lines.
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  from mono_ssl import train  # after flag parsing: keeps --help fast

  try:
    config = _CONFIG.value  # ml_collections defers a missing config file's error to here
  except OSError as e:
    print(f"error: {_one_line(str(e).splitlines()[-1])} (the --config file; run from the "
          "repository root or give its full path)", file=sys.stderr)
    return 2
  if "runs" in config:
    print("error: --config is a grid config (it lists `runs`); run it with python -m "
          "mono_ssl.grid --config=... --workdir=DIR, or give mono_ssl.main one run's config "
          "(e.g. configs/rotnet.py).", file=sys.stderr)
    return 2
  from mono_ssl import sharding
  try:
    sharding.initialize_distributed(_CONFIG.value.distributed)
  except UserInputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if _WORKDIR.value is None:
    print("error: --workdir is required (a folder for checkpoints and results).", file=sys.stderr)
    return 2
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (UserInputError, TrainingDiverged) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


def _one_line(e: BaseException) -> str:
  text = str(e).replace("\\n", " ").replace("\n", " ").replace("\\'", "'")
  return " ".join(text.strip("'\" ").split())


def _parse_flags(argv):
  """absl's parser, with config mistakes reported as one line instead of a traceback."""
  try:
    return flags.FLAGS(argv)
  except UserInputError as e:  # raised by a config's get_config
    print(f"error: {e}", file=sys.stderr)
  except flags.Error as e:
    text = str(e)
    if "UserInputError: " in text:  # raised inside get_config; ml_collections wraps it
      text = text.rsplit("UserInputError: ", 1)[1]
    print(f"error: {_one_line(text)}", file=sys.stderr)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # ml_collections raises these for an unknown field or a wrongly typed value.
    bad = [a for a in argv[1:] if a.startswith("--config")]
    print(f"error: bad config flag among {' '.join(bad)}: {_one_line(e)} (the valid fields and "
          "their types are those of the --config file; see mono_ssl/config_lib.py)", file=sys.stderr)
  sys.exit(2)


def run() -> None:
  flags.mark_flag_as_required("config")
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  from mono_ssl import xla_cpu
  xla_cpu.apply()  # faster XLA:CPU convolutions, set before JAX starts (mono_ssl/xla_cpu.py)
  run()
