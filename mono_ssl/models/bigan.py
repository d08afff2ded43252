"""BiGAN networks (Donahue, Krähenbühl & Darrell, ICLR 2017): E, G and a joint D(x, z).

- Encoder E: the AlexNet-BN trunk the linear probes read (`alexnet_from_config`
  with a `latent_dim`-wide output layer), on ImageNet-normalised images at the
  training resolution (`aug.out_size`).
- Generator G: DCGAN-style, z -> Dense to 4x4 -> stride-2 transposed convs
  (4x4 kernels, BN, ReLU) doubling the side up to `gen_size`, output in [0, 1]
  (like the patches; callers normalise both before D sees them).
- Discriminator D: a conv path on x (stride-2 4x4 convs, LeakyReLU 0.2, down
  to 4x4), an MLP on z, and a joint MLP on their concatenation -> one logit.
  No BatchNorm in D: real and fake pairs go through it separately, and batch
  statistics would let D tell them apart by their batch rather than by the
  pair (and would need their own state); dropout regularises it instead, as
  in ALI/BiGAN.

`gen_size` may differ from the encoder's input size (Donahue et al.'s
"generalized BiGAN": E reads 112 px crops, G/D work at 64 px); D then sees
real images resized to `gen_size`. CPU scale: 32 px everywhere; paper scale:
E at 224 px (the probes' AlexNet), G and D at 64 px.
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mono_ssl.errors import UserInputError
from mono_ssl.models.alexnet import AlexNet, alexnet_from_config

LATENT_PRIORS = ("uniform", "normal")
_BASE = 4  # side of G's first feature map and of D's last one
_DCGAN_INIT = nn.initializers.normal(0.02)  # Radford et al.'s init for G and D


def num_doublings(size: int) -> int:
  """How many stride-2 stages go from 4 px to `size` px; `size` must be 4 * 2^k, k >= 1."""
  k = int(round(math.log2(max(size, 1) / _BASE))) if size >= _BASE else 0
  if k < 1 or _BASE * 2 ** k != size:
    raise UserInputError(f"bigan.gen_size={size} must be 4 times a power of two, at least 8 "
                         "(e.g. 32 or 64).")
  return k


def squash_code(logits: jax.Array, prior: str) -> jax.Array:
  """E's output layer -> a code in the prior's support.

  A uniform prior lives in [-1, 1]^d: an unbounded E(x) would let D spot real
  pairs by |z| > 1 alone, so E's output goes through tanh (Donahue et al.
  squash it the same way, 2 sigmoid(a) - 1). A normal prior needs nothing.
  """
  return jnp.tanh(logits) if prior == "uniform" else logits


def sample_prior(key: jax.Array, shape: tuple[int, ...], prior: str) -> jax.Array:
  """z ~ U(-1, 1) or N(0, 1)."""
  if prior == "uniform":
    return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)
  return jax.random.normal(key, shape)


class Generator(nn.Module):
  """z (B, d) -> images (B, out_size, out_size, 3) in [0, 1]; BN + ReLU between layers."""
  out_size: int = 32
  width: int = 32  # channels of the last hidden layer; doubled per earlier stage
  bn_axis_name: Any = None

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
    n = num_doublings(self.out_size)

    def bn(x, name):
      return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                          axis_name=self.bn_axis_name, name=name)(x)

    ch = self.width * 2 ** (n - 1)
    x = nn.Dense(_BASE * _BASE * ch, use_bias=False, kernel_init=_DCGAN_INIT, name="fc")(z)
    x = nn.relu(bn(x.reshape((z.shape[0], _BASE, _BASE, ch)), "fc_bn"))
    for i in range(n - 1):
      ch //= 2
      x = nn.ConvTranspose(ch, (4, 4), strides=(2, 2), padding="SAME", use_bias=False,
                           kernel_init=_DCGAN_INIT, name=f"deconv{i + 1}")(x)
      x = nn.relu(bn(x, f"deconv{i + 1}_bn"))
    x = nn.ConvTranspose(3, (4, 4), strides=(2, 2), padding="SAME", kernel_init=_DCGAN_INIT,
                         name=f"deconv{n}")(x)
    # DCGAN's tanh, mapped to the patches' [0, 1] range.
    return (jnp.tanh(x) + 1.0) / 2.0


class JointDiscriminator(nn.Module):
  """D(x, z) -> one logit per pair (real = (x, E(x)), fake = (G(z), z))."""
  width: int = 32        # channels of the first conv; doubled per stage
  z_hidden: int = 256    # the z path: two Dense layers of this width
  joint_hidden: int = 512
  dropout: float = 0.2

  @nn.compact
  def __call__(self, x: jax.Array, z: jax.Array, train: bool = False) -> jax.Array:
    n = num_doublings(x.shape[1])

    def act(h):
      h = nn.leaky_relu(h, 0.2)
      return nn.Dropout(self.dropout, deterministic=not train)(h) if self.dropout else h

    h = x
    for i in range(n):
      h = act(nn.Conv(self.width * 2 ** i, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                      kernel_init=_DCGAN_INIT, name=f"conv{i + 1}")(h))
    h = h.reshape((h.shape[0], -1))
    hz = z
    for i in range(2):
      hz = act(nn.Dense(self.z_hidden, kernel_init=_DCGAN_INIT, name=f"z_fc{i + 1}")(hz))
    j = jnp.concatenate([h, hz], axis=-1)
    j = act(nn.Dense(self.joint_hidden, kernel_init=_DCGAN_INIT, name="joint_fc")(j))
    return nn.Dense(1, kernel_init=_DCGAN_INIT, name="joint_out")(j)[:, 0]


def encoder_from_config(config, bn_axis_name: Any = None) -> AlexNet:
  """E: the config's AlexNet-BN whose output layer gives the `bigan.latent_dim` code logits."""
  return alexnet_from_config(config, config.bigan.latent_dim).clone(bn_axis_name=bn_axis_name)


def generator_from_config(config, bn_axis_name: Any = None) -> Generator:
  b = config.bigan
  return Generator(out_size=b.gen_size, width=b.gen_width, bn_axis_name=bn_axis_name)


def discriminator_from_config(config) -> JointDiscriminator:
  b = config.bigan
  return JointDiscriminator(width=b.disc_width, z_hidden=b.disc_z_hidden,
                            joint_hidden=b.disc_joint_hidden, dropout=b.disc_dropout)
