"""Every method module meets `methods.protocol`: the four functions and declared hooks."""
import inspect

import pytest

from mono_ssl import train
from mono_ssl.methods import protocol


@pytest.mark.parametrize("name", sorted(train.METHODS))
def test_every_method_has_the_functions_and_declares_each_hook_it_defines(name):
  m = train.METHODS[name]
  assert isinstance(m, protocol.Method), name
  for fn in ("build_model", "create_state", "make_train_step", "trunk"):
    assert callable(getattr(m, fn)), (name, fn)
  hooks = protocol.hooks_of(m)
  for hook in protocol.HOOK_NAMES:
    # A module-level function named like a hook must be the declared one: a hook
    # written but left out of HOOKS would be silently skipped by the loop.
    defined = getattr(m, hook, None)
    if inspect.isfunction(defined):
      assert getattr(hooks, hook) is defined, (name, hook)


def test_the_loop_runs_what_a_method_declares():
  from mono_ssl.methods import bigan, deepcluster, rotnet, supervised
  assert protocol.hooks_of(deepcluster).before_step is deepcluster.before_step
  assert protocol.hooks_of(deepcluster).make_sampler is deepcluster.make_sampler
  assert protocol.hooks_of(supervised).make_batch is supervised.make_batch
  assert protocol.hooks_of(bigan).on_log is bigan.on_log
  assert protocol.hooks_of(rotnet) == protocol.Hooks()


def test_a_module_without_hooks_is_refused_by_name():
  import types
  with pytest.raises(TypeError, match="my_method declares no HOOKS"):
    protocol.hooks_of(types.ModuleType("my_method"))
