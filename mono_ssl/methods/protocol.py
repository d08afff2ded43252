"""What a method module gives the training loop: four functions and its declared hooks.

`train.pretrain` drives every method (RotNet, DeepCluster, BiGAN, the supervised
and ScatNet baselines) through this contract, so a new method is a module with
these names and a `HOOKS` value; `tests/test_methods_protocol.py` checks each one.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol, runtime_checkable


@dataclasses.dataclass(frozen=True)
class Hooks:
  """The optional per-method parts of the training loop (None: the loop's default).

  make_sampler: config -> (state, key, batch) -> (batch,) int32 patch indices
    (DeepCluster's cluster-uniform sampler); default: uniform random indices.
  make_batch: (images, indices) -> the step's batch argument (DeepCluster and the
    supervised baseline attach labels); default: the images.
  before_step: (state, step, ctx) -> state, on the host before each step
    (DeepCluster re-clusters at each epoch); ctx is a dict of the loop's config, log,
    mesh, patch generator, data source, metrics writer and workdir.
  on_log: (state, images, step, workdir, config) -> None at each log line (BiGAN's
    sample grids), on the chief process only.
  """
  make_sampler: Callable[[Any], Callable] | None = None
  make_batch: Callable | None = None
  before_step: Callable | None = None
  on_log: Callable | None = None


HOOK_NAMES = tuple(f.name for f in dataclasses.fields(Hooks))


@runtime_checkable
class Method(Protocol):
  """A method module (`mono_ssl.methods.<name>`)."""

  HOOKS: Hooks

  def build_model(self, config) -> Any:
    """The network the method trains (its trunk is the probed AlexNet)."""

  def create_state(self, config, image_size: int, key, mesh, total_steps: int) -> Any:
    """The replicated train state on `mesh`."""

  def make_train_step(self, config=None, axis_name: Any = None) -> Callable:
    """The pure step (state, batch, key) -> (state, metrics); `axis_name` for jax.pmap."""

  def trunk(self, state) -> tuple[Callable, dict]:
    """(apply_fn, variables) of the AlexNet trunk the probes read."""


def hooks_of(method) -> Hooks:
  """`method.HOOKS`, refusing a module that does not declare them (a hook defined but not
  declared would otherwise be silently skipped)."""
  hooks = getattr(method, "HOOKS", None)
  if not isinstance(hooks, Hooks):
    raise TypeError(f"{getattr(method, '__name__', method)} declares no HOOKS = "
                    "methods.protocol.Hooks(...); see mono_ssl/methods/protocol.py.")
  return hooks
