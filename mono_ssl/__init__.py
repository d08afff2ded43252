"""mono_ssl: self-supervised AlexNets from one image (Asano et al., ICLR 2020) in JAX/Flax.

Importing the package changes no process-wide setting. The command-line entry points
(`python -m mono_ssl.main`, `mono_ssl.grid`, `mono_ssl.probe_recipe`, `benchmarks/`) call
`mono_ssl.xla_cpu.apply()` before JAX starts: it adds an XLA:CPU flag that picks XLA's
own convolutions (faster here, see mono_ssl/xla_cpu.py); call it yourself, first thing,
for the same speed in your own program.
"""

__version__ = "0.1.0"
