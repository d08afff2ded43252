"""mono_ssl: self-supervised AlexNets from one image (Asano et al., ICLR 2020) in JAX/Flax."""

__version__ = "0.1.0"
