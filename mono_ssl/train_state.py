"""The training state shared by every method: a pytree with the model and optimiser as static fields."""
from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@flax.struct.dataclass
class TrainState:
  """step, params, batch_stats, opt_state (arrays) + apply_fn and tx (static)."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  apply_fn: Callable = flax.struct.field(pytree_node=False)
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)



def normalise(images: jax.Array) -> jax.Array:
  """[0, 1] RGB -> ImageNet mean/std, the input every trunk sees."""
  mean = jnp.asarray(IMAGENET_MEAN, images.dtype)
  std = jnp.asarray(IMAGENET_STD, images.dtype)
  return (images - mean) / std


def sgd_schedule(lr: float, total_steps: int, boundaries: tuple[float, ...],
                 decay: float) -> optax.Schedule:
  """Step-wise schedule: lr, divided by 1/decay at each fraction of total_steps."""
  marks = {max(1, int(round(b * total_steps))): decay for b in boundaries}
  return optax.piecewise_constant_schedule(lr, marks)


def sgd(lr_schedule: optax.Schedule, momentum: float, nesterov: bool,
        weight_decay: float) -> optax.GradientTransformation:
  """PyTorch-style SGD: weight decay added to the gradient before momentum."""
  return optax.chain(optax.add_decayed_weights(weight_decay),
                     optax.sgd(lr_schedule, momentum=momentum, nesterov=nesterov))


def create_sharded(init_fn: Callable[[jax.Array], Any], key: jax.Array, mesh=None) -> Any:
  """Runs `init_fn(key)` so that its output is born replicated over `mesh` (default: a 1-D
  mesh of all devices).

  big_vision's recipe: `jax.eval_shape` -> shardings -> `jax.jit(init, out_shardings=...)`,
  so no full copy is ever made on one device first.
  """
  from mono_ssl import sharding as shd
  mesh = shd.make_mesh() if mesh is None else mesh
  abstract = jax.eval_shape(init_fn, key)
  shardings = jax.tree.map(lambda _: shd.replicated(mesh), abstract)
  return jax.jit(init_fn, out_shardings=shardings)(key)


def sgd_from_config(tc, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The SGD + step schedule of a `config.train` block, for a run of total_steps."""
  schedule = sgd_schedule(tc.lr, max(total_steps, 1), tuple(tc.lr_boundaries), tc.lr_decay)
  return sgd(schedule, tc.momentum, tc.nesterov, tc.weight_decay), schedule


def classifier_state(model, tx: optax.GradientTransformation, key: jax.Array, image_size: int,
                     mesh=None, state_cls: type | None = None, **extra: Callable[[], Any]) -> Any:
  """A fresh state of a classifier (`model`: an AlexNet, or any flax module with BatchNorm
  whose apply returns (logits, feats)) trained by `tx`, from plain arguments: its variables
  initialised on (2, image_size, image_size, 3), replicated over `mesh` (default: all
  devices). `state_cls` (default TrainState) may be a subclass; `extra` maps its own fields
  to zero-argument functions making their initial arrays (called inside the jitted init).
  RotNet's and DeepCluster's steps train such a state.
  """
  state_cls = state_cls or TrainState

  def init(key):
    variables = model.init({"params": key}, jnp.zeros((2, image_size, image_size, 3)), train=False)
    return state_cls(step=jnp.int32(0), params=variables["params"],
                     batch_stats=variables["batch_stats"], opt_state=tx.init(variables["params"]),
                     apply_fn=model.apply, tx=tx, **{k: f() for k, f in extra.items()})

  return create_sharded(init, key, mesh)


def create_classifier_state(model, config, image_size: int, key: jax.Array, mesh,
                            total_steps: int, state_cls: type | None = None,
                            tx: optax.GradientTransformation | None = None,
                            **extra: Callable[[], Any]) -> Any:
  """`classifier_state` with `config.train`'s SGD over total_steps (or `tx`): the config layer."""
  tx = tx or sgd_from_config(config.train, total_steps)[0]
  return classifier_state(model, tx, key, image_size, mesh, state_cls, **extra)


def classification_update(state: TrainState, x: jax.Array, labels: jax.Array, key: jax.Array,
                          axis_name: Any = None) -> tuple[TrainState, dict]:
  """One SGD step of cross-entropy on (x, labels): the update RotNet and DeepCluster share.

  With axis_name, gradients and metrics are averaged over that pmap axis.
  """

  def loss_fn(params):
    (logits, _), updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, x, train=True,
        mutable=["batch_stats"], rngs={"dropout": key})
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, (logits, updates["batch_stats"])

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  if axis_name is not None:
    grads, loss, accuracy = jax.lax.pmean((grads, loss, accuracy), axis_name)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state)
  return new_state, {"loss": loss, "accuracy": accuracy}
