"""BiGAN (Donahue et al. 2017): E and G trained adversarially against a joint D(x, z).

One step updates both sides from the same batch and the same forward pass
(Donahue et al.'s default, "update both nets together" when k = 1):
- D minimises the usual cross-entropy, real pairs (x, E(x)) -> 1, fake pairs
  (G(z), z) -> 0;
- G and E minimise the non-saturating loss with the labels swapped
  (softplus(D(x, E(x))) + softplus(-D(G(z), z))).
Two Adam optimisers (lr `train.lr` following the train block's step schedule,
D's times `bigan.d_lr_mult`; betas `bigan.b1`, `bigan.b2`), each after a
PyTorch/Theano-style L2 term `train.weight_decay` added to the gradients.
`train.momentum` and `train.nesterov` are SGD settings that BiGAN ignores.

The probes read E: an AlexNet-BN (see models/bigan.py). `on_log` writes
`samples_<step>.png` (G of a fixed z) and `recon_<step>.png` (patches beside
G(E(x))) into the workdir every `train.sample_every` steps.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mono_ssl.errors import UserInputError
from mono_ssl.methods.protocol import Hooks
from mono_ssl.models import bigan as nets
from mono_ssl.train_state import create_sharded, normalise, sgd, sgd_schedule

NUM_SAMPLES = 64   # images in samples_<step>.png (8 x 8)
NUM_RECON = 32     # real/reconstruction pairs in recon_<step>.png
_SAMPLE_SEED = 1234  # folded into config.seed: the fixed z of the sample grids


@flax.struct.dataclass
class BiGANState:
  """Arrays: step, params {encoder, generator, discriminator}, batch_stats {encoder,
  generator}, one optimiser state per side. Static: the three apply fns and two optimisers."""
  step: jax.Array
  params: Any
  batch_stats: Any
  ge_opt_state: Any
  d_opt_state: Any
  encoder_apply: Callable = flax.struct.field(pytree_node=False)
  generator_apply: Callable = flax.struct.field(pytree_node=False)
  discriminator_apply: Callable = flax.struct.field(pytree_node=False)
  ge_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
  d_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)


def build_model(config):
  """The encoder E: the AlexNet-BN the probes read, with a `bigan.latent_dim` output."""
  return nets.encoder_from_config(config)


def _ge_labels(ge_params) -> Any:
  """'enc_weights' / 'enc_bn' (E's BatchNorm scale and bias) / 'generator' per leaf."""
  def label(path, _):
    keys = [getattr(k, "key", "") for k in path]
    if keys[0] == "generator":
      return "generator"
    return "enc_bn" if any(str(k).endswith("_bn") for k in keys) else "enc_weights"
  return jax.tree_util.tree_map_with_path(label, ge_params)


def _not_gains(params) -> Any:
  """True for every leaf but BatchNorm gains ('scale' of a *_bn module)."""
  def keep(path, _):
    keys = [str(getattr(k, "key", "")) for k in path]
    return not (keys[-1] == "scale" and len(keys) > 1 and keys[-2].endswith("_bn"))
  return jax.tree_util.tree_map_with_path(keep, params)


def optimisers(config, total_steps: int) -> tuple[optax.GradientTransformation,
                                                   optax.GradientTransformation]:
  """(G/E optimiser, D optimiser): L2 weight decay, then Adam on the train block's schedule.

  E's weights and E's BatchNorm scale/bias get their own rate multipliers
  (`bigan.e_lr_mult`, `bigan.e_bn_lr_mult`). Why: Adam moves every parameter
  by about lr per step whatever its gradient's size, which is a tiny relative
  change for a conv kernel but a large one for a BatchNorm bias, whose drift
  sets how many units pass the next ReLU; on short runs that drift, not the
  filters, is what changed the probed features.
  """
  tc, b = config.train, config.bigan
  schedule = sgd_schedule(tc.lr, max(total_steps, 1), tuple(tc.lr_boundaries), tc.lr_decay)

  # E's parameters stay at their initialisation for the first `bigan.e_start` of
  # the run: until G makes images worth inverting, D's gradient w.r.t. E(x)
  # says nothing about x (the reconstructions are one texture), and Adam turns
  # that noise into full-size steps on E's filters.
  e_start = max(0, int(round(b.e_start * total_steps)))

  def rate(mult, start=0):
    if mult == 1 and not start:
      return schedule
    return lambda t: jnp.where(t >= start, schedule(t) * mult, 0.0)

  # Donahue's --no_decay_gain (lib/updates.py lines 38-41): no L2 on BatchNorm gains.
  mask = None if b.decay_gains else _not_gains

  def adam(mult, start=0):
    return optax.chain(optax.add_decayed_weights(tc.weight_decay, mask=mask),
                       optax.adam(rate(mult, start), b1=b.b1, b2=b.b2))

  def enc(mult, start):
    if b.e_optimizer == "adam":
      return adam(mult, start)
    # SGD with the train block's momentum: a step scales with E's (weak) gradient
    # instead of Adam's normalised full-size step.
    return sgd(rate(mult, start), tc.momentum, tc.nesterov, tc.weight_decay)

  ge = optax.multi_transform(
      {"generator": adam(1.0), "enc_weights": enc(b.e_lr_mult, e_start),
       "enc_bn": enc(b.e_bn_lr_mult, e_start) if b.e_bn_lr_mult else optax.set_to_zero()},
      _ge_labels)
  return ge, adam(b.d_lr_mult)


DISC_INPUTS = ("imagenet", "unit")


def disc_view(images: jax.Array, disc_input: str) -> jax.Array:
  """What D sees of images in [0, 1]: E's ImageNet normalisation ("imagenet") or Donahue's
  [-1, 1] ("unit", train_gan.py lines 265-280). E always reads the probed trunk's input."""
  if disc_input == "unit":
    return 2.0 * images - 1.0
  return normalise(images)


def _check(config, image_size: int) -> None:
  b = config.bigan
  if b.prior not in nets.LATENT_PRIORS:
    raise UserInputError(f"bigan.prior={b.prior!r} is not one of {', '.join(nets.LATENT_PRIORS)}.")
  for field in ("d_lr_mult", "e_lr_mult", "e_bn_lr_mult"):
    if not b[field] >= 0:
      raise UserInputError(f"bigan.{field}={b[field]} must be >= 0 (a multiple of train.lr; "
                           "0 freezes those parameters).")
  if b.e_optimizer not in ("adam", "sgd"):
    raise UserInputError(f"bigan.e_optimizer={b.e_optimizer!r} is not one of adam, sgd.")
  if not 0.0 <= b.e_start < 1.0:
    raise UserInputError(f"bigan.e_start={b.e_start} must be a fraction of the run in [0, 1).")
  if b.disc_mbstd < 0 or (b.disc_mbstd and config.train.batch_size % b.disc_mbstd):
    raise UserInputError(f"bigan.disc_mbstd={b.disc_mbstd} must be 0 (off) or divide "
                         f"train.batch_size={config.train.batch_size} (e.g. 4).")
  if not b.r1_gamma >= 0:
    raise UserInputError(f"bigan.r1_gamma={b.r1_gamma} must be >= 0 (0: no R1 penalty).")
  nets.discriminator_from_config(config)  # an unknown disc_arch, with its line
  nets.encoder_from_config(config)
  if not b.loss_scale > 0:
    raise UserInputError(f"bigan.loss_scale={b.loss_scale} must be > 0 (1: sums of the real "
                         "and fake terms; 0.5: their means, as Donahue's).")
  if b.latent_dim < 1:
    raise UserInputError(f"bigan.latent_dim={b.latent_dim} must be >= 1.")
  if b.disc_input not in DISC_INPUTS:
    raise UserInputError(f"bigan.disc_input={b.disc_input!r} is not one of "
                         f"{', '.join(DISC_INPUTS)} (D's image scaling).")
  if b.encoder_init_fan_in < 0:
    raise UserInputError(f"bigan.encoder_init_fan_in={b.encoder_init_fan_in} must be >= 0 "
                         "(0: E's head at N(0, 0.02); 4096: Donahue's initial code spread).")
  nets.num_doublings(b.gen_size)
  if b.gen_size > image_size:
    # D compares G's images with real ones resized to gen_size: upsampling the
    # real patches would only blur them.
    raise UserInputError(f"bigan.gen_size={b.gen_size} is larger than the patches "
                         f"(aug.out_size={image_size}); use gen_size <= aug.out_size.")


def init_state(encoder: Any, generator: Any, discriminator: Any,
               ge_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
               key: jax.Array, image_size: int, *, latent_dim: int, gen_size: int,
               mesh=None, disc_group: int = 1) -> BiGANState:
  """A fresh BiGANState from plain arguments, replicated over `mesh` (default: all devices).

  encoder: an AlexNet whose output layer gives `latent_dim` code logits (its trunk is what the
  probes read); generator: z (B, latent_dim) -> images (B, gen_size, gen_size, 3) in [-1, 1]
  (`models.bigan.Generator`); discriminator: (images at gen_size, z) -> logits
  (`models.bigan.DonahueDiscriminator` or `JointDiscriminator`); ge_tx: one optax optimiser of
  {"encoder": ..., "generator": ...}; d_tx: D's. disc_group: the minibatch-std group of a
  JointDiscriminator (1: none), so that D is initialised on whole groups.
  """
  def init(key):
    ke, kg, kd = jax.random.split(key, 3)
    z = jnp.zeros((2, latent_dim))
    ev = encoder.init({"params": ke}, jnp.zeros((2, image_size, image_size, 3)), train=False)
    gv = generator.init({"params": kg}, z, train=False)
    nd = 2 * max(1, disc_group)  # whole minibatch-std groups
    dv = discriminator.init({"params": kd}, jnp.zeros((nd, gen_size, gen_size, 3)),
                            jnp.zeros((nd, latent_dim)), train=False)
    params = {"encoder": ev["params"], "generator": gv["params"], "discriminator": dv["params"]}
    ge = {"encoder": params["encoder"], "generator": params["generator"]}
    return BiGANState(step=jnp.int32(0), params=params,
                      batch_stats={"encoder": ev["batch_stats"], "generator": gv["batch_stats"]},
                      ge_opt_state=ge_tx.init(ge), d_opt_state=d_tx.init(params["discriminator"]),
                      encoder_apply=encoder.apply, generator_apply=generator.apply,
                      discriminator_apply=discriminator.apply, ge_tx=ge_tx, d_tx=d_tx)

  abstract = jax.eval_shape(init, key)
  if any(0 in x.shape for x in jax.tree.leaves(abstract.params["encoder"])):
    raise UserInputError(f"aug.out_size={image_size} px is too small for this AlexNet: its last "
                         "max-pool leaves nothing; use larger patches (32 px at scale=cpu).")
  return create_sharded(init, key, mesh)


def create_state(config, image_size: int, key: jax.Array, mesh, total_steps: int,
                 data_size: int | None = None) -> BiGANState:
  """A fresh BiGANState (E, G, D and both Adam states) of `config.bigan`, already replicated
  over the mesh: `init_state` with the config's networks and optimisers."""
  _check(config, image_size)
  b = config.bigan
  ge_tx, d_tx = optimisers(config, total_steps)
  return init_state(nets.encoder_from_config(config), nets.generator_from_config(config),
                    nets.discriminator_from_config(config), ge_tx, d_tx, key, image_size,
                    latent_dim=int(b.latent_dim), gen_size=int(b.gen_size), mesh=mesh,
                    disc_group=int(b.disc_mbstd))


def with_networks(state: BiGANState, config, axis_name: Any = None) -> BiGANState:
  """The same arrays with E, G and D rebuilt from `config` (same shapes, other settings,
  e.g. dropout); with `axis_name`, E and G average BatchNorm statistics over that pmap axis."""
  return state.replace(
      encoder_apply=nets.encoder_from_config(config, bn_axis_name=axis_name).apply,
      generator_apply=nets.generator_from_config(config, bn_axis_name=axis_name).apply,
      discriminator_apply=nets.discriminator_from_config(config, axis_name=axis_name).apply)


def trunk(state: BiGANState):
  """(apply_fn, variables) of the encoder's AlexNet, which the probes read."""
  return state.encoder_apply, {"params": state.params["encoder"],
                               "batch_stats": state.batch_stats["encoder"]}


def _resize(x: jax.Array, size: int) -> jax.Array:
  if x.shape[1] == size:
    return x
  return jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), "linear", antialias=True)


@dataclasses.dataclass(frozen=True)
class StepOptions:
  """BiGAN's step settings as plain values; the defaults are Donahue's recipe
  (configs/bigan.py:donahue_recipe) at the CPU scale's 32 px. `from_config` reads them
  from `config.bigan`."""
  latent_dim: int = 200
  prior: str = "uniform"          # z's prior (models.bigan.LATENT_PRIORS)
  gen_size: int = 32              # G's output side; D sees real patches resized to it
  disc_input: str = "unit"        # D's image scaling (DISC_INPUTS): [-1, 1], as Donahue's
  separate_disc_batches: bool = True  # real and generated pairs through D as two batches
  loss_scale: float = 0.5         # 0.5: the means of the real and fake terms (Donahue's)
  linear_head: bool = True        # E's linear head squashed as 2 sigmoid - 1 (Donahue's)
  standardise_codes: bool = False  # E's codes batch-standardised to the prior's marginals
  unary_scores: bool = False      # BigBiGAN's s_xz, s_x, s_z (a JointDiscriminator with unary)
  r1_gamma: float = 0.0           # R1 penalty weight (0: none)

  def __post_init__(self):
    if self.prior not in nets.LATENT_PRIORS:
      raise UserInputError(f"prior={self.prior!r} is not one of {', '.join(nets.LATENT_PRIORS)}.")
    if self.disc_input not in DISC_INPUTS:
      raise UserInputError(f"disc_input={self.disc_input!r} is not one of "
                           f"{', '.join(DISC_INPUTS)} (D's image scaling).")
    if self.latent_dim < 1:
      raise UserInputError(f"latent_dim={self.latent_dim} must be >= 1.")

  @classmethod
  def from_config(cls, config) -> "StepOptions":
    b = config.bigan
    return cls(latent_dim=int(b.latent_dim), prior=b.prior, gen_size=int(b.gen_size),
               disc_input=b.disc_input,
               # Donahue's D normalises real and generated pairs as two batches (his default).
               separate_disc_batches=(b.disc_arch == "donahue" and bool(b.disc_bn)
                                      and not b.disc_cat_inputs),
               loss_scale=float(b.loss_scale), linear_head=b.encoder_head == "linear",
               standardise_codes=bool(b.standardise_codes), unary_scores=bool(b.unary_scores),
               r1_gamma=float(b.r1_gamma))


def make_train_step(config=None, axis_name: Any = None) -> Callable:
  """The pure BiGAN step of `config.bigan`: `make_step(StepOptions.from_config(config))`."""
  if config is None:
    raise ValueError("bigan.make_train_step needs the config (latent size, prior, gen_size).")
  return make_step(StepOptions.from_config(config), axis_name)


def make_step(options: StepOptions = StepOptions(), axis_name: Any = None) -> Callable:
  """The pure BiGAN step `(state, images, key) -> (state, metrics)` on an `init_state` state.

  images: float (B, H, W, 3) in [0, 1]. With `axis_name` (under `jax.pmap`, the state from
  `with_networks(state, config, axis_name)`, or networks built with that BN axis),
  gradients, metrics and BatchNorm statistics are averaged over that axis, and each device
  takes its slice of the z a jitted step would draw for the whole batch, so both give the
  same update (D's dropout masks are the exception: they are drawn per device).
  """
  prior, latent, gen_size = options.prior, int(options.latent_dim), int(options.gen_size)
  standardise = bool(options.standardise_codes)
  unary = bool(options.unary_scores)
  r1_gamma = float(options.r1_gamma)
  separate = bool(options.separate_disc_batches)
  loss_scale = float(options.loss_scale)
  half_logits = bool(options.linear_head)
  for_disc = functools.partial(disc_view, disc_input=options.disc_input)

  def step(state: BiGANState, images: jax.Array, key: jax.Array):
    k_z, k_enc, k_disc = jax.random.split(key, 3)
    n = images.shape[0]
    if axis_name is None:
      z = nets.sample_prior(k_z, (n, latent), prior)
    else:
      # Each device takes its slice of the z a jitted step draws for the whole
      # batch. Dropout masks do differ per device (their shapes are local).
      index = jax.lax.axis_index(axis_name)
      z_all = nets.sample_prior(k_z, (n * jax.lax.psum(1, axis_name), latent), prior)
      z = jax.lax.dynamic_slice_in_dim(z_all, index * n, n)
      k_enc, k_disc = (jax.random.fold_in(k, index) for k in (k_enc, k_disc))
    x = normalise(images)
    x_small = _resize(for_disc(images), gen_size)  # what D sees of a real image
    bs = state.batch_stats

    def losses(d_params, ge_params):
      (logits, _), enc_upd = state.encoder_apply(
          {"params": ge_params["encoder"], "batch_stats": bs["encoder"]}, x, train=True,
          mutable=["batch_stats"], rngs={"dropout": k_enc})
      ez = nets.code_from_logits(_code_logits(logits, half_logits), prior, standardise, axis_name)
      gx, gen_upd = state.generator_apply(
          {"params": ge_params["generator"], "batch_stats": bs["generator"]}, z, train=True,
          mutable=["batch_stats"])
      d_real, d_fake = disc_scores(state.discriminator_apply, d_params, (x_small, ez),
                                   (for_disc(gx), z), separate, k_disc)
      # -log sigmoid(a) = softplus(-a): D wants real -> 1, fake -> 0 ...
      d_loss = loss_scale * (jnp.mean(jax.nn.softplus(-d_real)) + jnp.mean(jax.nn.softplus(d_fake)))
      # ... G and E want the opposite (non-saturating: swapped labels, not -d_loss).
      ge_loss = loss_scale * (jnp.mean(jax.nn.softplus(d_real))
                              + jnp.mean(jax.nn.softplus(-d_fake)))
      if unary:
        # BigBiGAN: the same losses summed over s_xz, s_x and s_z (means over
        # the batch, so each score weighs the same); accuracies on s_xz.
        d_loss, ge_loss = d_loss * 3.0, ge_loss * 3.0
        d_real, d_fake = d_real[:, 0], d_fake[:, 0]
      r1 = jnp.zeros((), d_loss.dtype)
      if r1_gamma:
        # R1 (Mescheder et al. 2018): D's gradient w.r.t. its real inputs (x and E(x),
        # both held fixed) is penalised, so D cannot grow the unbounded logits that
        # leave G and E a useless gradient (with Donahue et al.'s recipe G's loss
        # reached 57 by step 150). A second D pass on the real half, with its input
        # gradient, so the step runs at about half the rate; at CPU scale it did not
        # change the probes (docs/bigan.md, "BiGAN at CPU scale").
        def real_score(xr, zr):
          out = state.discriminator_apply({"params": d_params}, xr, zr, train=True,
                                          rngs={"dropout": jax.random.fold_in(k_disc, 1)})
          return jnp.sum(out[:, 0] if unary else out)
        gx, gz = jax.grad(real_score, argnums=(0, 1))(jax.lax.stop_gradient(x_small),
                                                      jax.lax.stop_gradient(ez))
        r1 = 0.5 * r1_gamma * (jnp.sum(jnp.square(gx)) + jnp.sum(jnp.square(gz))) / n
        d_loss = d_loss + r1
      new_bs = {"encoder": enc_upd["batch_stats"], "generator": gen_upd["batch_stats"]}
      return (d_loss, ge_loss), (d_real, d_fake, new_bs, r1, jnp.std(ez))

    d_params = state.params["discriminator"]
    ge_params = {"encoder": state.params["encoder"], "generator": state.params["generator"]}
    # One forward pass, two backward passes: each loss is differentiated only
    # with respect to its own side's parameters (XLA drops the unused halves).
    (d_loss, ge_loss), vjp_fn, (d_real, d_fake, batch_stats, r1, code_std) = jax.vjp(
        losses, d_params, ge_params, has_aux=True)
    one, zero = jnp.ones((), d_loss.dtype), jnp.zeros((), d_loss.dtype)
    d_grads = vjp_fn((one, zero))[0]
    ge_grads = vjp_fn((zero, one))[1]
    metrics = {"loss": ge_loss, "d_loss": d_loss, "g_loss": ge_loss,
               "d_acc_real": jnp.mean(d_real > 0), "d_acc_fake": jnp.mean(d_fake < 0),
               # E's code spread against the prior's (uniform: 0.577): a narrow E(x) lets D
               # tell real pairs by z alone.
               "e_code_std": code_std}
    if r1_gamma:
      metrics["r1"] = r1
    if axis_name is not None:
      d_grads, ge_grads, metrics = jax.lax.pmean((d_grads, ge_grads, metrics), axis_name)
    d_updates, d_opt_state = state.d_tx.update(d_grads, state.d_opt_state, d_params)
    ge_updates, ge_opt_state = state.ge_tx.update(ge_grads, state.ge_opt_state, ge_params)
    ge_params = optax.apply_updates(ge_params, ge_updates)
    params = {"encoder": ge_params["encoder"], "generator": ge_params["generator"],
              "discriminator": optax.apply_updates(d_params, d_updates)}
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              ge_opt_state=ge_opt_state, d_opt_state=d_opt_state)
    return new_state, metrics

  return step


def disc_scores(disc_apply: Callable, d_params: Any, real: tuple, fake: tuple, separate: bool,
                key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """D's logits of the real pairs (x, E(x)) and of the generated pairs (G(z), z).

  `separate`: two calls, so a D with batch norm normalises each half by its own
  statistics (Donahue's default, gan.py lines 62-76) and a real pair's score
  does not depend on the generated half. Else one call on both halves joined
  (his --cat_inputs; without batch norm in D it changes nothing numerically,
  and it is one set of dropout masks to draw and compile).
  """
  if separate:
    return (disc_apply({"params": d_params}, *real, train=True, rngs={"dropout": key}),
            disc_apply({"params": d_params}, *fake, train=True,
                       rngs={"dropout": jax.random.fold_in(key, 2)}))
  n = real[0].shape[0]
  logits = disc_apply({"params": d_params}, jnp.concatenate([real[0], fake[0]]),
                      jnp.concatenate([real[1], fake[1]]), train=True, rngs={"dropout": key})
  return logits[:n], logits[n:]


def _code_logits(logits: jax.Array, half: bool) -> jax.Array:
  """Donahue's E squashes its linear head as 2 sigmoid(a) - 1 = tanh(a / 2) (dist.py lines
  121-125); `squash_code`'s tanh then needs a / 2."""
  return 0.5 * logits if half else logits


@functools.partial(jax.jit, static_argnames=("prior", "gen_size", "standardise", "half"))
def _render(state: BiGANState, images: jax.Array, z: jax.Array, prior: str, gen_size: int,
            standardise: bool = False, half: bool = False):
  """(G(z), real patches at gen_size, G(E(x))), all in [0, 1]."""
  def generate(codes):
    # Batch statistics rather than the running averages: a GAN's generator
    # drifts faster than its running averages follow, and the statistics of a
    # grid-sized batch match what D saw during training.
    out, _ = state.generator_apply(
        {"params": state.params["generator"], "batch_stats": state.batch_stats["generator"]},
        codes, train=True, mutable=["batch_stats"])
    return out

  enc_fn, enc_vars = trunk(state)
  logits, _ = enc_fn(enc_vars, normalise(images), train=False)  # the probes' E: inference BN
  codes = nets.code_from_logits(_code_logits(logits, half), prior, standardise)
  return generate(z), _resize(images, gen_size), generate(codes)


def _grid(images: np.ndarray, cols: int) -> np.ndarray:
  """(N, H, W, 3) in [0, 1] -> one uint8 image of `cols` columns, 1 px gaps, tiles >= 64 px."""
  n, h, w, _ = images.shape
  scale = max(1, 64 // h)  # nearest-neighbour upscaling: 32 px tiles are hard to see
  images = images.repeat(scale, 1).repeat(scale, 2)
  h, w = h * scale, w * scale
  rows = -(-n // cols)
  out = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1, 3), np.float32)
  for i, im in enumerate(images):
    r, c = divmod(i, cols)
    out[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = im
  return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def on_log(state: BiGANState, images: jax.Array, step: int, workdir, config) -> None:
  """Writes samples_<step>.png and recon_<step>.png every `train.sample_every` steps and at
  the last one."""
  every = config.train.sample_every
  if not ((every > 0 and step % every == 0) or step == config.train.num_steps):
    return
  from PIL import Image
  b = config.bigan
  z = nets.sample_prior(jax.random.fold_in(jax.random.key(config.seed), _SAMPLE_SEED),
                        (NUM_SAMPLES, b.latent_dim), b.prior)
  # Only process 0 calls on_log in a multi-process run, so render from this
  # process's own copies (state replicated, the batch shards it holds): a
  # computation over other processes' devices would wait for them forever.
  local_state = jax.tree.map(lambda a: a.addressable_data(0), state)
  shards = {s.index[0].start or 0: s.data for s in images.addressable_shards}  # dedupes replicas
  local_images = np.concatenate([np.asarray(shards[k]) for k in sorted(shards)])[:NUM_RECON]
  samples, real, recon = jax.device_get(
      _render(local_state, local_images, z, prior=b.prior, gen_size=int(b.gen_size),
              standardise=bool(b.standardise_codes), half=b.encoder_head == "linear"))
  workdir = Path(workdir)
  Image.fromarray(_grid(np.asarray(samples), 8)).save(workdir / f"samples_{step}.png")
  # Each real patch followed by its reconstruction: 4 pairs per row.
  pairs = np.stack([np.asarray(real), np.asarray(recon)], axis=1).reshape(
      (-1,) + real.shape[1:])
  Image.fromarray(_grid(pairs, 8)).save(workdir / f"recon_{step}.png")
  plot_gan_curves(workdir / GAN_CURVES, workdir / "metrics.jsonl")


GAN_CURVES = "gan_curves.png"


def plot_gan_curves(path: Path, metrics_path: Path) -> None:
  """gan_curves.png: D's and G/E's losses, and D's accuracy on real and on generated pairs,
  against step, from the run's metrics.jsonl (the logged steps; chance is 0.5)."""
  from matplotlib.figure import Figure

  from mono_ssl import report
  rows = report.read_jsonl(metrics_path, "d_loss")
  if not rows:
    return
  steps = [r["step"] for r in rows]
  fig = Figure(figsize=(9, 3.4))
  ax1, ax2 = fig.subplots(1, 2)
  ax1.plot(steps, [r["d_loss"] for r in rows], label="D")
  ax1.plot(steps, [r["g_loss"] for r in rows], label="G and E")
  ax1.set(xlabel="step", ylabel="loss", title="losses")
  ax1.legend()
  ax2.plot(steps, [r["d_acc_real"] for r in rows], label="real pairs (x, E(x))")
  ax2.plot(steps, [r["d_acc_fake"] for r in rows], label="generated pairs (G(z), z)")
  ax2.axhline(0.5, color="grey", lw=0.8, ls="--")
  ax2.set(xlabel="step", ylabel="D's accuracy", ylim=(0, 1.02), title="D's accuracy")
  ax2.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=90)


HOOKS = Hooks(on_log=on_log)  # sample / reconstruction grids and gan_curves.png
