"""mono_ssl: self-supervised AlexNets from one image (Asano et al., ICLR 2020) in JAX/Flax."""

from mono_ssl import xla_cpu as _xla_cpu

__version__ = "0.1.0"

# Before any JAX backend starts: faster CPU convolutions (see mono_ssl/xla_cpu.py).
_xla_cpu.apply()
