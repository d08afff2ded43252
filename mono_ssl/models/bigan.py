"""BiGAN networks (Donahue, Krähenbühl & Darrell, ICLR 2017): E, G and a joint D(x, z).

- Encoder E: the AlexNet-BN trunk the linear probes read (`alexnet_from_config`
  with a `latent_dim`-wide output layer), on ImageNet-normalised images at the
  training resolution (`aug.out_size`).
- Generator G: DCGAN-style, z -> Dense to 4x4 -> x2 upsampling stages (BN,
  ReLU; channels halving) up to `gen_size`, output in [0, 1] like the
  patches (callers normalise both before D sees them). Each stage is a
  sub-pixel conv rather than DCGAN's 4x4 stride-2 transposed conv: a superset
  of it, and ~4x faster on a CPU (see `_upsample`).
- Discriminator D, two designs (`bigan.disc_arch`):
  * "donahue" (`DonahueDiscriminator`): Donahue's released D, z entering each
    conv after the first as a per-channel bias, batch norm on real and
    generated pairs as separate batches;
  * "joint_mlp" (`JointDiscriminator`): a conv path on x (stride-2 4x4 convs,
    LeakyReLU 0.2, down to 4x4), an MLP on z, and a joint MLP on their
    concatenation -> one logit; no BatchNorm, dropout in its FC layers.

`gen_size` may differ from the encoder's input size (Donahue et al.'s
"generalized BiGAN": E reads 112 px crops, G/D work at 64 px); D then sees
real images resized to `gen_size`. CPU scale: 32 px everywhere; paper scale:
E at 224 px (the probes' AlexNet), G and D at 64 px.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from mono_ssl.errors import UserInputError
from mono_ssl.models.alexnet import AlexNet, alexnet_from_config, compute_dtype

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


def code_from_logits(logits: jax.Array, prior: str, standardise: bool = False,
                     axis_name: Any = None) -> jax.Array:
  """E(x): E's output layer -> a code distributed like the prior.

  Without `standardise`: `squash_code`. With it, each latent dimension is
  standardised over the (global) batch and, for the uniform prior, mapped
  through the normal CDF (2 Phi(a) - 1), so E's codes have the prior's
  marginals from the first step. Why: otherwise D first tells real pairs
  from fake ones by the spread of E's codes alone, and E's first gradients
  only inflate that spread, not what its features say about x.
  """
  if not standardise:
    return squash_code(logits, prior)
  mean, mean_sq = jnp.mean(logits, 0), jnp.mean(jnp.square(logits), 0)
  if axis_name is not None:
    mean, mean_sq = jax.lax.pmean((mean, mean_sq), axis_name)
  a = (logits - mean) * jax.lax.rsqrt(jnp.maximum(mean_sq - jnp.square(mean), 0.0) + 1e-5)
  return jax.scipy.special.erf(a / math.sqrt(2.0)) if prior == "uniform" else a


def sample_prior(key: jax.Array, shape: tuple[int, ...], prior: str) -> jax.Array:
  """z ~ U(-1, 1) or N(0, 1)."""
  if prior == "uniform":
    return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)
  return jax.random.normal(key, shape)


def icnr(base_init: Callable = _DCGAN_INIT, factor: int = 4) -> Callable:
  """ICNR init (Aitken et al. 2017) for a sub-pixel conv: each of the `factor` sub-pixel
  positions starts with the same filters, so the layer starts as a conv followed by
  nearest-neighbour upsampling, free of the checkerboard that independent filters give."""
  def init(key, shape, dtype=jnp.float32):
    base = base_init(key, tuple(shape[:-1]) + (shape[-1] // factor,), dtype)
    # Channel k * C + c of the conv is sub-pixel position k of output channel c (see _upsample).
    return jnp.tile(base, (1,) * (len(shape) - 1) + (factor,))
  return init


def minibatch_std(h: jax.Array, group: int) -> jax.Array:
  """(B, H, W, C) -> (B, H, W, 1): per group of `group` consecutive images, the std over the
  group averaged over H, W and C, broadcast to each image of the group."""
  b = h.shape[0]
  if b % group:
    raise UserInputError(f"bigan.disc_mbstd={group} does not divide the batch D sees on one "
                         f"device ({b} = real + fake); under jax.pmap pick a group size that "
                         "divides the per-device batch, e.g. 2 or 4.")
  g = h.reshape((b // group, group) + h.shape[1:])
  std = jnp.sqrt(jnp.var(g, axis=1) + 1e-8)                        # (B/g, H, W, C)
  s = jnp.mean(std, axis=(1, 2, 3))                                 # (B/g,)
  return jnp.broadcast_to(jnp.repeat(s, group)[:, None, None, None], h.shape[:3] + (1,))


class Generator(nn.Module):
  """z (B, d) -> images (B, out_size, out_size, 3) in [0, 1]; BN + ReLU between layers."""
  out_size: int = 32
  width: int = 32  # channels of the last hidden layer; doubled per earlier stage
  bn_axis_name: Any = None
  icnr: bool = False  # ICNR init of the sub-pixel convs (see `icnr`)
  # Donahue's deconvnet_64 (jeffdonahue/bigan net.py lines 908-954, `apply_cond` 787-804):
  # z also enters every hidden layer as its own bias-free linear map, init N(0, 0.5),
  # added per channel before the layer's BN, so G(z) depends on z throughout from step 0.
  z_every_layer: bool = False
  dtype: Any = jnp.float32  # compute dtype; parameters float32, output float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
    n = num_doublings(self.out_size)

    def bn(x, name):
      return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                          axis_name=self.bn_axis_name, dtype=self.dtype, name=name)(x)

    ch = self.width * 2 ** (n - 1)
    x = nn.Dense(_BASE * _BASE * ch, use_bias=False, kernel_init=_DCGAN_INIT, dtype=self.dtype,
                 name="fc")(z)
    x = nn.relu(bn(x.reshape((z.shape[0], _BASE, _BASE, ch)), "fc_bn"))
    init = icnr() if self.icnr else _DCGAN_INIT
    for i in range(n - 1):
      ch //= 2
      x = _upsample(x, ch, use_bias=False, name=f"up{i + 1}", kernel_init=init, dtype=self.dtype)
      if self.z_every_layer:
        x = x + _z_bias(z, ch, f"z_to_up{i + 1}", self.dtype)
      x = nn.relu(bn(x, f"up{i + 1}_bn"))
    x = _upsample(x, 3, use_bias=True, name=f"up{n}", kernel_init=init, dtype=self.dtype)
    # DCGAN's tanh, mapped to the patches' [0, 1] range.
    return (jnp.tanh(x.astype(jnp.float32)) + 1.0) / 2.0


def _z_bias(z: jax.Array, channels: int, name: str, dtype: Any) -> jax.Array:
  """Donahue's conditioning input (net.py `apply_cond`): a bias-free linear map of z, init
  N(0, 0.02 * 5^2), as a per-sample, per-channel bias (B, 1, 1, channels)."""
  return nn.Dense(channels, use_bias=False, kernel_init=nn.initializers.normal(0.02 * 5 ** 2),
                  dtype=dtype, name=name)(z)[:, None, None, :]


def _upsample(x: jax.Array, channels: int, use_bias: bool, name: str,
              kernel_init: Callable = _DCGAN_INIT, dtype: Any = jnp.float32) -> jax.Array:
  """x2 upsampling by sub-pixel convolution (Shi et al. 2016): a 3x3 conv to 4 * channels
  at the input resolution, then depth-to-space.

  It can express any 4x4 stride-2 transposed conv (DCGAN's layer) and runs
  about 4x faster through XLA on a CPU, whose transposed convs work on a
  zero-dilated input.
  """
  b, h, w, _ = x.shape
  x = nn.Conv(4 * channels, (3, 3), padding="SAME", use_bias=use_bias, kernel_init=kernel_init,
              dtype=dtype, name=name)(x)
  x = x.reshape((b, h, w, 2, 2, channels)).transpose((0, 1, 3, 2, 4, 5))
  return x.reshape((b, 2 * h, 2 * w, channels))


class JointDiscriminator(nn.Module):
  """D(x, z) -> one logit per pair (real = (x, E(x)), fake = (G(z), z))."""
  width: int = 32        # channels of the first conv; doubled per stage
  z_hidden: int = 256    # the z path: two Dense layers of this width
  joint_hidden: int = 512
  dropout: float = 0.2   # in the FC layers (z path and joint MLP)
  # BigBiGAN's unary scores (Donahue & Simonyan 2019): with `unary`, D also
  # returns s_x(x) (a linear read-out of its x path) and s_z(z) (of its z path).
  unary: bool = False
  # ProGAN's minibatch standard deviation (Karras et al. 2018): with mbstd = g > 0,
  # D's x path gains one channel, the mean over features of the std over each
  # group of g consecutive images. A collapsed G's groups show ~0 spread where
  # real groups do not, so D can penalise collapse directly. Callers put real and
  # fake images in separate runs of whole groups (n real then n fake, g | n).
  mbstd: int = 0
  dtype: Any = jnp.float32  # compute dtype; parameters and logits float32

  @nn.compact
  def __call__(self, x: jax.Array, z: jax.Array, train: bool = False) -> jax.Array:
    n = num_doublings(x.shape[1])

    def act(h, drop=True):
      h = nn.leaky_relu(h, 0.2)
      if drop and self.dropout:
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
      return h

    h = x
    for i in range(n):
      # No dropout on the conv maps (Donahue et al. drop only in FC layers;
      # with it there too, probes came out no better and steps ran slower).
      h = act(nn.Conv(self.width * 2 ** i, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                      kernel_init=_DCGAN_INIT, dtype=self.dtype, name=f"conv{i + 1}")(h),
              drop=False)
    if self.mbstd:
      h = jnp.concatenate([h, minibatch_std(h, self.mbstd)], axis=-1)
    h = h.reshape((h.shape[0], -1))
    hz = z
    for i in range(2):
      hz = act(nn.Dense(self.z_hidden, kernel_init=_DCGAN_INIT, dtype=self.dtype,
                        name=f"z_fc{i + 1}")(hz))
    j = jnp.concatenate([h, hz], axis=-1)
    j = act(nn.Dense(self.joint_hidden, kernel_init=_DCGAN_INIT, dtype=self.dtype,
                     name="joint_fc")(j))
    s_xz = nn.Dense(1, kernel_init=_DCGAN_INIT, name="joint_out")(j)[:, 0].astype(jnp.float32)
    if not self.unary:
      return s_xz
    s_x = nn.Dense(1, kernel_init=_DCGAN_INIT, name="x_out")(h)[:, 0].astype(jnp.float32)
    s_z = nn.Dense(1, kernel_init=_DCGAN_INIT, name="z_out")(hz)[:, 0].astype(jnp.float32)
    return jnp.stack([s_xz, s_x, s_z], axis=-1)


class BatchStatNorm(nn.Module):
  """Batch normalisation by the batch's own statistics only, with a learned gain and bias.

  Donahue's D (jeffdonahue/bigan net.py BatchNorm, lines 483-530) normalises by
  the biased batch variance over (N, H, W) in training, which is the only mode a
  discriminator is used in, and keeps no running averages. eps 1e-8 as there.
  `axis_name`: the statistics are averaged over that `jax.pmap` axis (under
  `jax.jit` a sharded batch's mean is already global).
  """
  eps: float = 1e-8
  axis_name: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    axes = tuple(range(x.ndim - 1))
    dtype, x = x.dtype, x.astype(jnp.float32)  # statistics in float32 (bf16 compute too)
    mean, mean_sq = jnp.mean(x, axes), jnp.mean(jnp.square(x), axes)
    if self.axis_name is not None:
      mean, mean_sq = jax.lax.pmean((mean, mean_sq), self.axis_name)
    var = jnp.maximum(mean_sq - jnp.square(mean), 0.0)
    gain = self.param("scale", nn.initializers.ones, (x.shape[-1],))
    bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
    return ((x - mean) * jax.lax.rsqrt(var + self.eps) * gain + bias).astype(dtype)


def space_to_depth_conv5(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """A 5x5 stride-2 conv with padding 2 ("SAME" for even sides), computed as a 3x3 stride-1
  conv of the 2x2 space-to-depth input. Same result up to float rounding.

  Why: XLA:CPU runs the gradient of a stride-2 conv on a zero-dilated map; at D's
  8 px layer (64 -> 128 channels, B=128) its forward and backward take 153 ms
  against 38 ms this way, and D runs twice a step (real and generated halves).
  Derivation: output i reads input 2i + k - 2 (k = 0..4) = 2(i + j - 1) + r with
  k = 2j + r, j = 0..2, r = 0..1: block i + j - 1 of the space-to-depth map at
  sub-position r, so kernel tap (j, r) is w[2j + r] (zero where 2j + r = 5).
  x: (B, H, W, C) with even H, W; kernel: (5, 5, C, O), a plain conv kernel.
  """
  b, h, w, c = x.shape
  if h % 2 or w % 2 or kernel.shape[:2] != (5, 5):
    raise ValueError(f"space_to_depth_conv5 needs even sides and a 5x5 kernel, got x {x.shape}, "
                     f"kernel {kernel.shape}.")
  k = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # (6, 6, C, O): tap 2j + r
  k = k.reshape(3, 2, 3, 2, c, -1).transpose(0, 2, 1, 3, 4, 5).reshape(3, 3, 4 * c, -1)
  xs = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  xs = xs.reshape(b, h // 2, w // 2, 4 * c)  # channel (rh, rw, c), matching k's input axis
  return jax.lax.conv_general_dilated(xs, k, (1, 1), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


class Stride2Conv5(nn.Module):
  """Donahue's 5x5 stride-2 bias-free conv (a plain (5, 5, C, O) `kernel` parameter, DCGAN
  init), run as `space_to_depth_conv5`."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", _DCGAN_INIT, (5, 5, x.shape[-1], self.features))
    return space_to_depth_conv5(x.astype(self.dtype), kernel.astype(self.dtype))


class DonahueDiscriminator(nn.Module):
  """Donahue et al.'s joint D(x, z), as jeffdonahue/bigan's train_imagenet.sh builds it.

  `convnet_64` (net.py lines 1150-1155): 5x5 stride-2 convs (widths w, 2w, 4w, ...
  down to 4x4), LeakyReLU 0.2, no FC layers, no dropout. conv1 has no bias, no
  BN and no z. z enters every later conv as a conditioning input (net.py
  `apply_cond`, lines 787-804): its own linear map of z (no bias, init N(0,
  0.02 * 5^2)) added as a per-sample, per-channel bias to the conv's output,
  then batch norm (`bn`) and the nonlinearity. The output is a linear read-out
  of the flattened 4x4 map, zero-initialised and without bias (gan.py lines
  189-206): D(x, z) = 0.5 for every pair at step 0.

  Batch norm couples a pair's score to the rest of its batch, so the caller
  passes real pairs and generated pairs as separate batches (Donahue's default;
  his `--cat_inputs` joins them): each half is normalised by its own statistics,
  and D cannot tell them apart by batch statistics alone.
  """
  width: int = 64
  bn: bool = True
  axis_name: Any = None
  dtype: Any = jnp.float32  # compute dtype; parameters, BN statistics and logits float32

  @nn.compact
  def __call__(self, x: jax.Array, z: jax.Array, train: bool = False) -> jax.Array:
    del train  # no dropout; batch statistics in every call, like Donahue's D
    n = num_doublings(x.shape[1])
    h = x
    for i in range(n):
      ch = self.width * 2 ** i
      h = Stride2Conv5(ch, dtype=self.dtype, name=f"conv{i + 1}")(h)
      if i:
        h = h + _z_bias(z, ch, f"z_to_conv{i + 1}", self.dtype)
        if self.bn:
          h = BatchStatNorm(axis_name=self.axis_name, name=f"conv{i + 1}_bn")(h)
        else:  # --nobn: the BN's bias is the conv's only bias
          h = h + self.param(f"conv{i + 1}_bias", nn.initializers.zeros, (ch,))
      h = nn.leaky_relu(h, 0.2)
    h = h.reshape((h.shape[0], -1))
    return nn.Dense(1, use_bias=False, kernel_init=nn.initializers.zeros,
                    name="out")(h)[:, 0].astype(jnp.float32)


ENCODER_HEADS = ("alexnet", "linear")


def encoder_from_config(config, bn_axis_name: Any = None) -> AlexNet:
  """E: the config's AlexNet-BN whose output layer gives the `bigan.latent_dim` code logits.

  `bigan.encoder_head`: "alexnet", the trunk's own FC layers (`model.hidden`) and
  output layer; "linear", Donahue's head (train_gan.py with gan.py lines 242-243):
  one bias-free linear map of the flattened conv5 map (after pool5 here, as the
  probed trunk has it) to z, without fc6/fc7. The trunk below is the same.
  """
  b = config.bigan
  if b.encoder_head not in ENCODER_HEADS:
    raise UserInputError(f"bigan.encoder_head={b.encoder_head!r} is not one of "
                         f"{', '.join(ENCODER_HEADS)}.")
  net = alexnet_from_config(config, b.latent_dim).clone(bn_axis_name=bn_axis_name)
  if b.encoder_head == "linear":
    net = net.clone(hidden=(), classifier_bias=False, classifier_init_std=0.02,
                    classifier_init_fan_in=int(b.encoder_init_fan_in))
  return net


def generator_from_config(config, bn_axis_name: Any = None) -> Generator:
  """G of `config.bigan`: `gen_size` px output, `gen_width` channels before the last stage."""
  b = config.bigan
  return Generator(out_size=b.gen_size, width=b.gen_width, bn_axis_name=bn_axis_name,
                   icnr=bool(b.gen_icnr), z_every_layer=bool(b.gen_z_every_layer),
                   dtype=compute_dtype(config))


DISC_ARCHS = ("joint_mlp", "donahue")


def discriminator_from_config(config, axis_name: Any = None) -> nn.Module:
  """D of `config.bigan`: `disc_arch` "donahue" (`DonahueDiscriminator`, `disc_bn`) or
  "joint_mlp" (`JointDiscriminator`: its widths and FC dropout)."""
  b = config.bigan
  if b.disc_arch not in DISC_ARCHS:
    raise UserInputError(f"bigan.disc_arch={b.disc_arch!r} is not one of {', '.join(DISC_ARCHS)}.")
  if b.disc_arch == "donahue":
    return DonahueDiscriminator(width=b.disc_width, bn=bool(b.disc_bn), axis_name=axis_name,
                                dtype=compute_dtype(config))
  return JointDiscriminator(width=b.disc_width, z_hidden=b.disc_z_hidden,
                            joint_hidden=b.disc_joint_hidden, dropout=b.disc_dropout,
                            unary=bool(b.unary_scores), mbstd=int(b.disc_mbstd),
                            dtype=compute_dtype(config))
