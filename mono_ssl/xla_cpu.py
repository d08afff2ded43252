"""XLA:CPU settings the entry points apply (`apply()`) before JAX starts its CPU backend.

Measured on this project's 2-core CPU (benchmarks/RESULTS.md): XLA:CPU in jaxlib
0.10 hands convolutions to YNNPACK by default, and its convolutions (forward
and both gradients) were slower than XLA's own Eigen convolutions for every
AlexNet here: RotNet step 249 -> 185 ms (CPU scale, 32 px, B=128), 1.09 ->
0.88 s (paper net, 64 px, B=64), 1.83 -> 1.56 s (224 px, B=8). The flag only
picks which library runs a convolution (the same arithmetic; float sums may
round differently), so it is safe to set for everyone; it does nothing on
GPU/TPU.

The flag is added only for the jaxlib versions it was measured with (an XLA
that does not know a flag in XLA_FLAGS aborts), only when the user's XLA_FLAGS
does not already choose YNN fusions, and not at all with
MONO_SSL_KEEP_XLA_FLAGS=1. It must be set before JAX's CPU backend is first
used; calling `apply()` after that changes nothing. Importing mono_ssl sets nothing.
"""
from __future__ import annotations

import importlib.metadata
import os

# jaxlib minor versions whose XLA:CPU has this flag and was measured faster with it.
TESTED_JAXLIB = ("0.10.",)
YNN_CONV_OFF = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
OPT_OUT_ENV = "MONO_SSL_KEEP_XLA_FLAGS"


def apply() -> bool:
  """Adds `YNN_CONV_OFF` to $XLA_FLAGS where safe (see the module doc); True if it did."""
  if os.environ.get(OPT_OUT_ENV, "").strip() not in ("", "0"):
    return False
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_cpu_experimental_ynn_fusion_type" in flags:
    return False  # the user chose; never override
  try:
    jaxlib_version = importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return False
  if not jaxlib_version.startswith(TESTED_JAXLIB):
    return False
  os.environ["XLA_FLAGS"] = f"{flags} {YNN_CONV_OFF}".strip()
  return True
