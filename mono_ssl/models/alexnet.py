"""AlexNet with BatchNorm, returning its logits and the post-ReLU features conv1..conv5.

Three scales share one definition (`ConvSpec` lists, `INPUT_SIDE`):
- paper: the "big" AlexNet of the authors' probe code, 96-256-384-384-256, 224 px input;
- mini:  the paper's AlexNet in miniature at 48 px (see `MINI_CONVS`): every probed layer
         sees about the fraction of the image the paper's layer sees (`receptive_fields`);
- cpu:   a narrow AlexNet-BN for 32 px inputs (see `CPU_CONVS`), the fast network of the
         tests and the old CPU runs: its conv2 already sees 78% of the image.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mono_ssl.errors import UserInputError
from mono_ssl.models.pooling import max_pool

LAYER_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5")


@dataclasses.dataclass(frozen=True)
class ConvSpec:
  """One conv layer: filters, square kernel, stride, zero padding, max-pool after it."""
  filters: int
  kernel: int
  stride: int
  pad: int
  pool: bool


# (filters, kernel, stride, pad, pool): the authors' "big" AlexNet.
PAPER_CONVS = (
    ConvSpec(96, 11, 4, 2, True),
    ConvSpec(256, 5, 1, 2, True),
    ConvSpec(384, 3, 1, 1, False),
    ConvSpec(384, 3, 1, 1, False),
    ConvSpec(256, 3, 1, 1, True),
)

# CPU scale: the same five-conv/three-pool shape at a third of the paper's
# widths, for 32-64 px inputs. conv1 is 5x5 stride 2 (AlexNet's is 11x11
# stride 4 at 224 px): stride 1 measured 4.6x slower per step on this CPU.
CPU_CONVS = (
    ConvSpec(32, 5, 2, 2, True),
    ConvSpec(64, 5, 1, 2, True),
    ConvSpec(96, 3, 1, 1, False),
    ConvSpec(96, 3, 1, 1, False),
    ConvSpec(64, 3, 1, 1, True),
)


# Mini scale: the paper's AlexNet shrunk so that each probed layer's receptive field is
# about the same fraction of a 48 px input as the paper's is of 224 px (6.2 / 18.8 / 44 /
# 60 / 77% against 4.9 / 22.8 / 44 / 58 / 73%), with AlexNet's layout (max-pools after
# conv1, conv2 and conv5) and a 5x5 map before the head (the paper's: 6x6). A faithful
# miniature must keep the paper's map sides (the fraction fixes each layer's stride
# relative to the image), so its cost is set by the widths: a quarter of the paper's at
# conv1, about a sixth above (24-48-64-64-48). Chosen among candidates by step cost on this
# project's 2-core CPU (RotNet, B=128, same run; results/mini_scale/candidates.md):
# 32-64-96-96-64 cost 1.6x these widths; the paper's exact quarter-scale geometry (56 px,
# conv1 3x3/1, conv2 5x5: maps 56/27/13/6) 1.7x at these widths.
MINI_CONVS = (
    ConvSpec(24, 3, 1, 1, True),
    ConvSpec(48, 3, 1, 1, True),
    ConvSpec(64, 3, 1, 1, False),
    ConvSpec(64, 3, 1, 1, False),
    ConvSpec(48, 3, 1, 1, True),
)

# Calibrated scale (issue 39, "a miniature whose controls work"): Tiny-ImageNet's own 64 px,
# no upsampling. conv1 5x5 stride 2 with 24 filters over 75 input values (0.32 filters per
# value; the paper's 0.26, mini's 0.89, whose random 3x3 filters already keep ~87% of a patch),
# then AlexNet's layout one pool earlier: maps 32/15/15/15/15 and a 7x7 head (the paper's
# 55/27/13/13/13, 6x6); receptive fields 7.8 / 26.6 / 39.1 / 51.6 / 64.1% of the input
# (the paper's 4.9 / 22.8 / 44.2 / 58.5 / 72.8%). Widths a quarter of the paper's. Chosen among
# measured candidates (results/calib_scale/candidates.md, benchmarks/calib_candidates.py).
CALIB_CONVS = (
    ConvSpec(24, 5, 2, 2, True),
    ConvSpec(64, 3, 1, 1, False),
    ConvSpec(96, 3, 1, 1, False),
    ConvSpec(96, 3, 1, 1, False),
    ConvSpec(64, 3, 1, 1, True),
)

INPUT_SIDE = {"cpu": 32, "mini": 48, "calib": 64, "paper": 224}  # the side each stack is designed for


def parse_convs(text: str) -> tuple[ConvSpec, ...]:
  """A conv stack from its spec string, e.g. '24:5/2p,64:3,96:3,96:3,64:3p' (`model.convs`).

  One `filters:kernel[/stride][p]` item per layer, five layers; `p` puts AlexNet's 3/2
  max-pool after the layer; zero padding is kernel // 2. For trying stacks (the calibrated
  scale's candidates) without a new scale in the code.
  """
  how = "e.g. --config.model.convs='24:5/2p,64:3,96:3,96:3,64:3p' (filters:kernel[/stride][p])"
  items = [t.strip() for t in str(text).split(",")]
  if len(items) != len(LAYER_NAMES):
    raise UserInputError(f"model.convs={text!r} has {len(items)} layers, not {len(LAYER_NAMES)}; {how}.")
  out = []
  for item in items:
    pool = item.endswith("p")
    body = item[:-1] if pool else item
    try:
      filters, rest = body.split(":")
      kernel, stride = (rest.split("/") + ["1"])[:2] if "/" in rest else (rest, "1")
      spec = ConvSpec(int(filters), int(kernel), int(stride), int(kernel) // 2, pool)
    except ValueError:
      raise UserInputError(f"model.convs item {item!r} is not filters:kernel[/stride][p]; {how}.") from None
    if min(spec.filters, spec.kernel, spec.stride) < 1:
      raise UserInputError(f"model.convs item {item!r} needs positive filters, kernel and stride; {how}.")
    out.append(spec)
  return tuple(out)


def conv_specs(scale: str, width_mult: float = 1.0) -> tuple[ConvSpec, ...]:
  """The conv stack of a scale ('cpu', 'mini', 'calib' or 'paper'), widths multiplied by width_mult."""
  base = {"cpu": CPU_CONVS, "mini": MINI_CONVS, "calib": CALIB_CONVS, "paper": PAPER_CONVS}[scale]
  return tuple(dataclasses.replace(c, filters=max(1, int(round(c.filters * width_mult))))
               for c in base)


def _conv_init(kernel: int, filters: int):
  # The authors' init: N(0, sqrt(2 / (k^2 * C_out))).
  std = float(np.sqrt(2.0 / (kernel * kernel * filters)))
  return nn.initializers.normal(stddev=std)


class AlexNet(nn.Module):
  """AlexNet-BN. `__call__(x, train, head)` -> (logits, {"conv1": ..., ..., "conv5": ...}).

  Features are post-ReLU and, for conv1/conv2, before their max-pool (the
  probes' taps). Input: float NHWC, already normalised.
  `bn_axis_name` averages BatchNorm statistics over a `jax.pmap` axis; under
  `jax.jit` with a sharded batch the statistics are global without it.
  """
  convs: Sequence[ConvSpec] = CPU_CONVS
  hidden: Sequence[int] = (512, 512)
  num_classes: int = 4
  dropout: float = 0.0
  bn_axis_name: Any = None
  dtype: Any = jnp.float32  # compute dtype (parameters stay float32: see `compute_dtype`)
  classifier_bias: bool = True       # BiGAN's Donahue head: a bias-free map to z
  classifier_init_std: float = 0.01
  # >0: the output layer's init std is classifier_init_std * sqrt(this / its fan-in) (the
  # spread of a head over that many features; BiGAN's Donahue head, see config_lib).
  classifier_init_fan_in: int = 0
  # DeepCluster's original head (facebookresearch/deepcluster models/alexnet.py, lines 18-23):
  # Dropout -> Linear (with bias) -> ReLU per FC layer, no BatchNorm; each FC layer's
  # pre-ReLU output is also returned, as `fc<k>_pre` (what the original clusters).
  head_bn: bool = True
  # A fixed grey + Sobel front end (the same file, lines 28-41): the input is first made
  # grey (mean of the channels), then its x and y Sobel responses are the 2 channels conv1 reads.
  sobel: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, head: bool = True):
    # head=False stops after conv5 (logits None): the probes need only the
    # features, at any input size, and skip the head's cost.
    feats = {}
    x = x.astype(self.dtype)
    if self.sobel:
      x = sobel_front_end(x)
    for name, c in zip(LAYER_NAMES, self.convs):
      x = nn.Conv(c.filters, (c.kernel, c.kernel), strides=(c.stride, c.stride),
                  padding=((c.pad, c.pad), (c.pad, c.pad)), use_bias=False,
                  kernel_init=_conv_init(c.kernel, c.filters), dtype=self.dtype,
                  name=name)(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                       axis_name=self.bn_axis_name, dtype=self.dtype,
                       name=f"{name}_bn")(x)
      x = nn.relu(x)
      feats[name] = x
      if c.pool:
        # Same values and gradients as nn.max_pool, ~4x cheaper gradient on XLA:CPU.
        x = max_pool(x, 3, 2)
    if not head:
      return None, feats
    x = x.reshape((x.shape[0], -1))
    for i, width in enumerate(self.hidden):
      if not self.head_bn:  # the original DeepCluster head: dropout before each FC layer
        if self.dropout:
          x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.Dense(width, kernel_init=nn.initializers.normal(0.01), dtype=self.dtype,
                     name=f"fc{i + 6}")(x)
        feats[f"fc{i + 6}_pre"] = x
        x = nn.relu(x)
        feats[f"fc{i + 6}"] = x
        continue
      x = nn.Dense(width, use_bias=False, kernel_init=nn.initializers.normal(0.01),
                   dtype=self.dtype, name=f"fc{i + 6}")(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                       axis_name=self.bn_axis_name, dtype=self.dtype, name=f"fc{i + 6}_bn")(x)
      feats[f"fc{i + 6}_pre"] = x
      x = nn.relu(x)
      feats[f"fc{i + 6}"] = x  # DeepCluster clusters the last of these
      if self.dropout:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
    std = self.classifier_init_std
    if self.classifier_init_fan_in:
      std *= math.sqrt(self.classifier_init_fan_in / x.shape[-1])
    logits = nn.Dense(self.num_classes, use_bias=self.classifier_bias,
                      kernel_init=nn.initializers.normal(std),
                      dtype=self.dtype, name="classifier")(x)
    return logits.astype(jnp.float32), feats


SOBEL_X = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))


def sobel_front_end(x: jax.Array) -> jax.Array:
  """(B, H, W, 3) -> (B, H, W, 2): grey = mean of the channels, then its Sobel x and y responses
  (3x3, zero padding 1), as DeepCluster's fixed `--sobel` layers (PyTorch cross-correlation)."""
  grey = jnp.mean(x, axis=-1, keepdims=True)
  kx = jnp.asarray(SOBEL_X, x.dtype)
  kernel = jnp.stack([kx, kx.T], axis=-1)[:, :, None, :]  # HWIO: x then y
  return jax.lax.conv_general_dilated(grey, kernel, (1, 1), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def alexnet_from_config(config, num_classes: int) -> AlexNet:
  """The AlexNet-BN of `config.scale` and `config.model`, with a `num_classes` output layer."""
  m = config.model
  if not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in m.hidden):
    raise UserInputError(f"model.hidden={m.hidden!r} must be a tuple of positive integers, "
                         "e.g. --config.model.hidden='(512, 512)'.")
  if not m.width_mult > 0:
    raise UserInputError(f"model.width_mult={m.width_mult} must be > 0 (1.0 = the full width).")
  return AlexNet(convs=config_convs(config), hidden=tuple(m.hidden),
                 num_classes=num_classes, dropout=m.dropout, dtype=compute_dtype(config))


def config_convs(config) -> tuple[ConvSpec, ...]:
  """The conv stack a config trains: `model.convs` if set (a spec string), else its scale's;
  widths times `model.width_mult`."""
  m = config.model
  spec = m.get("convs", "")
  if not spec:
    return conv_specs(config.scale, m.width_mult)
  return tuple(dataclasses.replace(c, filters=max(1, int(round(c.filters * m.width_mult))))
               for c in parse_convs(spec))


DTYPES = ("float32", "bfloat16")


def compute_dtype(config) -> Any:
  """`model.dtype`: the networks' compute dtype. bfloat16 is mixed precision: convolutions
  and matmuls in bf16, parameters, optimiser state and BatchNorm statistics (flax reduces
  them in float32) in float32, logits and losses in float32."""
  name = config.model.get("dtype", "float32")
  if name not in DTYPES:
    raise UserInputError(f"model.dtype={name!r} is not one of {', '.join(DTYPES)}.")
  return jnp.dtype(name)


POOL_KERNEL, POOL_STRIDE = 3, 2  # AlexNet's overlapping max-pool after conv1, conv2 and conv5


def receptive_fields(convs: Sequence[ConvSpec], input_size: int) -> dict:
  """Each probed layer's receptive field and map side for a square input, from the conv list.

  Returns {layer: {"rf": px, "fraction": rf / input_size, "map": side}} for conv1..conv5
  (taps after ReLU, before the layer's own pool, as the probes read them) and
  {"final_map": side} after the last pool (the map the head reads). The field grows by
  (k - 1) x the input stride of every conv and pool: the paper's AlexNet at 224 px gives
  11 / 51 / 99 / 131 / 163 px and a 6 x 6 final map.
  """
  rf, jump, side = 1, 1, input_size
  out = {}
  for name, c in zip(LAYER_NAMES, convs):
    rf += (c.kernel - 1) * jump
    jump *= c.stride
    side = (side + 2 * c.pad - c.kernel) // c.stride + 1
    out[name] = {"rf": rf, "fraction": rf / input_size, "map": side}
    if c.pool:
      rf += (POOL_KERNEL - 1) * jump
      jump *= POOL_STRIDE
      side = (side - POOL_KERNEL) // POOL_STRIDE + 1
  out["final_map"] = side
  return out


# The calibrated scale's geometry gates (issue 39), each against the paper's AlexNet at 224 px:
# conv1 at most 0.4 filters per input value (the paper's 96 over 11x11x3: 0.26; a stack with
# nearly a complete basis at conv1 keeps most of a patch whatever its filters, so conv1 cannot
# show learning), receptive-field shares within x1.7 (conv1) and x1.5 (conv2, conv3) of the
# paper's, conv4/conv5 inside the image, a final map of at least 3x3.
MAX_CONV1_FILTERS_PER_VALUE = 0.4
RF_SHARE_FACTOR = {"conv1": 1.7, "conv2": 1.5, "conv3": 1.5}
MIN_FINAL_MAP = 3


def conv1_filters_per_value(convs: Sequence[ConvSpec], channels: int = 3) -> float:
  """conv1's filters over the values one of its windows reads (k^2 x channels)."""
  c = convs[0]
  return c.filters / (c.kernel * c.kernel * channels)


def scale_gates(convs: Sequence[ConvSpec], input_size: int) -> dict[str, bool]:
  """Which of the calibrated scale's geometry gates a stack at `input_size` meets (name -> bool)."""
  rf = receptive_fields(convs, input_size)
  paper = receptive_fields(PAPER_CONVS, INPUT_SIDE["paper"])
  out = {"conv1 filters/value <= 0.4": conv1_filters_per_value(convs) <= MAX_CONV1_FILTERS_PER_VALUE}
  for layer, factor in RF_SHARE_FACTOR.items():
    ratio = rf[layer]["fraction"] / paper[layer]["fraction"]
    out[f"{layer} RF within x{factor} of the paper's"] = 1 / factor <= ratio <= factor
  for layer in ("conv4", "conv5"):
    out[f"{layer} RF < 100%"] = rf[layer]["fraction"] < 1
  out[f"final map >= {MIN_FINAL_MAP}x{MIN_FINAL_MAP}"] = rf["final_map"] >= MIN_FINAL_MAP
  return out
