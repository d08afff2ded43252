"""Pretraining loop and `train_and_evaluate(config, workdir)`: pretrain -> probe -> results.

The loop follows big_vision's train.py: the state is built already sharded
(`jax.eval_shape` -> shardings -> `jax.jit(init, out_shardings=...)`), one
jitted and donated pure update per step, per-step keys from
`fold_in(seed, step)` (so a resumed run is bit-identical), a NaN guard, JSON-
lines metrics and `config.json` in the workdir.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mono_ssl import curves, datasets, report
from mono_ssl import sharding as shd
from mono_ssl.augment import PatchGenerator, StreamPatchGenerator
from mono_ssl.checkpoint import Checkpointer, CheckpointMismatch
from mono_ssl.data import pretrain_source
from mono_ssl.errors import TrainingDiverged, UserInputError
from mono_ssl.methods import bigan, deepcluster, rotnet, scatnet, supervised
from mono_ssl.methods.protocol import hooks_of
from mono_ssl.models.alexnet import LAYER_NAMES
from mono_ssl.probe import ProbeConfig, check_head_seeds, run_linear_probes
from mono_ssl.train_state import sgd_from_config
from mono_ssl.workdir import (  # noqa: F401  (train.check_workdir etc. stay importable)
  ADDED_FIELD_DEFAULTS,
  PRETRAIN_INFO,
  RESUMABLE_FIELDS,
  archive_probes,
  check_workdir,
)

METHODS = {"rotnet": rotnet, "deepcluster": deepcluster, "bigan": bigan,
           "supervised": supervised, "scatnet": scatnet}  # the last two: baselines


def method_module(config):
  """The module implementing config.method: create_state, make_train_step, trunk (see methods/)."""
  if config.method not in METHODS:
    raise UserInputError(f"method={config.method!r} is not one of {', '.join(METHODS)}.")
  return METHODS[config.method]


def build_model(config):
  """The network config.method trains (for RotNet: AlexNet-BN with a 4-way head)."""
  return method_module(config).build_model(config)


class MetricsWriter:
  """Appends JSON lines; on resume drops lines from steps past the checkpoint."""

  def __init__(self, path: Path, resume_step: int):
    self.path = path
    self.enabled = shd.is_chief()  # one metrics file per run, not per process
    if self.enabled and path.exists():
      kept = [l for l in path.read_text().splitlines()
              if l.strip() and json.loads(l).get("step", 0) <= resume_step]
      path.write_text("".join(l + "\n" for l in kept))

  def write(self, record: dict) -> None:
    if not self.enabled:
      return
    with self.path.open("a") as f:
      f.write(json.dumps(record) + "\n")


def throughput(done: int, total: int, start: int, batch: int, now: float, t_last: float,
               n_last: int, t_first: float) -> tuple[float, float]:
  """(images/s since the last log at step `n_last`, time `t_last`; seconds left).

  `t_first` is when the run's first step (from `start`) finished: that step
  compiles, so the ETA extrapolates the steps after it only.
  """
  ips = (done - n_last) * batch / max(now - t_last, 1e-9)
  eta = (total - done) * (now - t_first) / max(done - start - 1, 1)
  return ips, eta


def _restore_init_from(config, state, log):
  """Loads the latest checkpoint of another run (`config.init_from`) into `state`."""
  path = Path(config.init_from)
  ckpt_dir = path / "checkpoints" if (path / "checkpoints").is_dir() else path
  if not ckpt_dir.is_dir():
    raise UserInputError(f"init_from={config.init_from!r}: no such folder; give the workdir "
                         "(or its checkpoints/ folder) of an earlier run of the same method.")
  source = Checkpointer(ckpt_dir)
  if source.latest_step() is None:
    raise UserInputError(f"init_from={config.init_from!r}: no checkpoint in {ckpt_dir}; give the "
                         "workdir (or its checkpoints/ folder) of an earlier run of the same method.")
  try:
    state = source.restore(state)
  except CheckpointMismatch as e:
    raise UserInputError(f"init_from={config.init_from!r}: {e}") from None
  except UserInputError:  # each step's error was printed as a warning
    raise UserInputError(f"init_from={config.init_from!r}: no checkpoint in {ckpt_dir} fits this "
                         f"config's {config.method} model; give the workdir of an earlier run of the "
                         "same method, scale and model fields.") from None
  finally:
    source.close()
  log(f"initialised from {ckpt_dir} at step {int(jax.device_get(state.step))}")
  return state


def run_keys(config) -> tuple:
  """(init, data, step) keys of a run, all from config.seed."""
  return tuple(jax.random.split(jax.random.key(config.seed), 3))


def initial_state(config, source, mesh):
  """The sharded state a run starts from (its random init), for `source`'s patch size."""
  return method_module(config).create_state(config, source.aug.out_size, run_keys(config)[0], mesh,
                                            int(config.train.num_steps), data_size=source.size)


def state_at(config, workdir: str | os.PathLike, step: int | None = None, mesh=None):
  """The state checkpoint `step` (default: the latest) of the run in `workdir` holds, e.g. to
  probe it: `method_module(config).trunk(state_at(config, workdir, 500))`."""
  mesh = mesh or shd.make_mesh()
  ckpt = Checkpointer(Path(workdir) / "checkpoints")
  try:
    return ckpt.restore(initial_state(config, pretrain_source(config), mesh), step=step)
  finally:
    ckpt.close()


def pretrain(config, workdir: Path, mesh=None, log: Callable[[str], None] = print,
             probe_train=None, on_curve_point: Callable[[int], None] | None = None
             ) -> tuple[Any, Any, dict]:
  """Runs (or resumes, or skips if finished) pretraining. Returns (trained, initial, info).

  `initial` is the state pretraining started from: the random-init baseline.
  With `probe_train` (the probe set's train split) and `probe.curve_every` > 0,
  the learning curve (`mono_ssl.curves`) is probed as the run goes, and
  `on_curve_point(step)` is called (on the chief) once each point is in the workdir.
  """
  mesh = mesh or shd.make_mesh()
  tc = config.train
  method = method_module(config)
  shd.check_batch_size(tc.batch_size, mesh, "train.batch_size")
  if tc.num_steps < 0:
    raise UserInputError(f"train.num_steps={tc.num_steps} must be >= 0.")
  repl, bsh = shd.replicated(mesh), shd.batch_sharded(mesh)
  source = pretrain_source(config)
  log(f"data: {source.description}")
  for line in source.warnings:
    log(f"warning: {line}")
  total = int(tc.num_steps)
  _, schedule = sgd_from_config(tc, total)
  _, data_key, step_key = run_keys(config)
  initial = initial_state(config, source, mesh)
  # Pretraining donates its state; keep an untouched copy for the baseline.
  initial_copy = jax.tree.map(lambda x: x.copy(), initial)

  ckpt = Checkpointer(workdir / "checkpoints")
  state = initial
  if ckpt.latest_step() is not None:
    state = ckpt.restore(initial)
    log(f"resumed from checkpoint at step {int(state.step)}")
  elif config.init_from:
    state = _restore_init_from(config, initial, log)
  start = int(jax.device_get(state.step))
  metrics_file = MetricsWriter(workdir / "metrics.jsonl", start)
  curve = None
  if probe_train is not None and config.probe.curve_every > 0:
    curve = curves.LearningCurve(config, workdir, probe_train, total, start, mesh, log)

  heldout_rotation = None
  if curve is not None and config.method == "rotnet" and config.probe.get("curve_rotation_heldout", 0):
    heldout_rotation = method.make_rotation_accuracy(
        initial, curves.heldout_images(probe_train, config.probe, int(config.probe.curve_rotation_heldout)))

  def curve_point(step: int, st) -> None:
    if curve is not None and step in curve.steps:
      extra = (lambda: {"rotation_acc_heldout": heldout_rotation(st)}) if heldout_rotation else None
      curve.at(step, *method.trunk(st), extra=extra)
      if on_curve_point is not None and shd.is_chief():
        on_curve_point(step)  # e.g. the grid's export of the run so far (hours into a long run)

  # period = data set size: index i is a fresh loader view of base patch i mod N.
  if source.stream is not None:
    generator = StreamPatchGenerator(source.stream, source.aug, seed=config.seed, period=source.size)
  else:
    generator = PatchGenerator(shd.to_global(source.bank, repl), source.aug, seed=config.seed,
                               period=source.size)
  batch = tc.batch_size
  # Optional method hooks: a sampler that reads the state (DeepCluster's
  # cluster-uniform sampler), a batch builder, and a host-side hook run
  # before each step (DeepCluster's per-epoch clustering).
  hooks = hooks_of(method)
  sample = hooks.make_sampler(config) if hooks.make_sampler else None
  if sample is None:
    def sample(st, key, batch):
      del st
      return jax.random.randint(key, (batch,), 0, jnp.iinfo(jnp.int32).max)
  indices_for = jax.jit(lambda st, t: sample(st, jax.random.fold_in(data_key, t), batch),
                        out_shardings=bsh)
  make_batch, before_step = hooks.make_batch, hooks.before_step
  ctx = {"config": config, "log": log, "mesh": mesh, "generator": generator, "source": source,
         "metrics": metrics_file, "workdir": workdir}
  step_fn = jax.jit(method.make_train_step(config=config), donate_argnums=0,
                    in_shardings=(repl, bsh, repl), out_shardings=(repl, repl))
  key_for = jax.jit(lambda t: jax.random.fold_in(step_key, t))
  on_log = hooks.on_log  # e.g. BiGAN's sample grids

  last_good = ckpt.latest_step()
  t0, t_last, n_last = time.time(), time.time(), start
  t_first = t0  # set at the end of the first step
  pending = None  # the previous step's metrics, checked one step late to keep dispatch async

  def check(step: int, m) -> dict:
    m = {k: float(v) for k, v in jax.device_get(m).items()}
    if not all(np.isfinite(list(m.values()))):
      where = f"step {last_good}" if last_good is not None else "none yet"
      raise TrainingDiverged(
          f"{config.method} loss became {m.get('loss')} at step {step}; training stopped. "
          f"Last good checkpoint: {where} in {ckpt.directory}. Lower train.lr or check the data.")
    return m

  curve_point(start, state)  # step 0 of a new run: the initial trunk
  for t in range(start, total):
    if before_step is not None:
      state = before_step(state, t, ctx)
    indices = indices_for(state, t)
    images = generator(indices)
    batch_in = images if make_batch is None else make_batch(images, indices)
    state, metrics = step_fn(state, batch_in, key_for(t))
    if pending is not None:
      check(*pending)
    pending = (t + 1, metrics)
    done = t + 1
    if t == start:
      # Rates and the ETA count from the end of the first step, which includes compiling it.
      jax.block_until_ready(metrics)
      t_first = t_last = time.time()
      n_last = done
    if done % tc.log_every == 0 or done == total:
      m = check(*pending)
      now = time.time()
      ips, eta = throughput(done, total, start, batch, now, t_last, n_last, t_first)
      record = {"step": done, **m, "lr": float(schedule(done - 1)), "images_per_s": ips,
                "elapsed_s": now - t0}
      metrics_file.write(record)
      log(f"step {done}/{total} " + " ".join(f"{k} {v:.4g}" for k, v in m.items())
          + f" lr {record['lr']:.3g} {ips:.0f} img/s ETA {report.hms(eta)}")
      if on_log is not None and shd.is_chief():
        on_log(state, images, done, workdir, config)
      t_last, n_last = now, done
    if done % tc.ckpt_every == 0 or done == total:
      check(*pending)
      last_good = ckpt.save(state)
    curve_point(done, state)
  if pending is not None:
    check(*pending)
  if ckpt.latest_step() is None:
    ckpt.save(state)
  ckpt.close()
  wall = time.time() - t0
  info = {"steps": total, "resumed_from": start, "wall_s": wall,
          "images_per_s": (total - start) * batch / wall if total > start else None}
  if curve is not None:  # the curve's share of this process's pretraining time
    info.update(curve_wall_s=curve.wall_s, curve_points=len(curve.points))
  return state, initial_copy, info


def load_probe_data(config) -> tuple:
  """The probe set's (train, test): in memory, or streamed when `probe.image_size` > 0."""
  pc = config.probe
  data_dir = pc.data_dir or None
  limit = pc.limit_per_class or None
  # In memory every image has one size already (load_split refuses mixed sizes) and is read
  # whole: only a stream has rectangles to keep.
  keep_aspect = bool(pc.get("keep_aspect", False))
  if pc.image_size:  # streamed from disk: image_size x image_size squares, or rectangles
    train = datasets.open_stream(pc.dataset, "train", data_dir, pc.image_size, limit,
                                 "probe.image_size", keep_aspect=keep_aspect)
    test = datasets.open_stream(pc.dataset, "test", data_dir, pc.image_size,
                                field="probe.image_size", keep_aspect=keep_aspect)
    if train.num_classes != test.num_classes:
      raise UserInputError(f"probe data set {pc.dataset}: train and test splits disagree "
                           f"({train.num_classes} vs {test.num_classes} classes).")
    return train, test
  train = datasets.load_split(pc.dataset, "train", data_dir, limit_per_class=limit)
  test = datasets.load_split(pc.dataset, "test", data_dir)
  if pc.get("resize", 0):  # a stack designed for another side (the mini scale's 48 px)
    train, test = (datasets.resize_images(ds, pc.resize) for ds in (train, test))
  if train.num_classes != test.num_classes or train.images.shape[1:] != test.images.shape[1:]:
    raise UserInputError(f"probe data set {pc.dataset}: train and test splits disagree "
                         f"({train.num_classes} vs {test.num_classes} classes, "
                         f"{train.images.shape[1:]} vs {test.images.shape[1:]}).")
  return train, test


def probe_trunk(state, config, train, test, mesh, log) -> dict:
  apply_fn, variables = method_module(config).trunk(state)
  return run_linear_probes(apply_fn, variables, train, test,
                           ProbeConfig.from_config(config.probe), mesh=mesh, log=log)


def train_and_evaluate(config, workdir: str | os.PathLike, log: Callable[[str], None] = print,
                       on_curve_point: Callable[[int], None] | None = None) -> dict:
  """Pretrains, probes the trained and the random-init trunk, writes probe_results.{json,md,png}.
  `on_curve_point(step)`: called after each learning-curve point (`pretrain`)."""
  workdir = Path(workdir)
  check_workdir(config, workdir, log)
  mesh = shd.make_mesh()
  log(f"devices: {jax.device_count()} x {jax.devices()[0].platform}; workdir {workdir}")
  check_head_seeds(config.probe.get("head_seeds", 1))  # a probe count that cannot run, before training
  # Probe data first: a missing data set should fail before minutes of training.
  probe_train, probe_test = load_probe_data(config)
  # Likewise a probe batch that cannot run (the evaluation batch is refitted to the devices).
  shd.check_batch_size(config.probe.batch_size, mesh, "probe.batch_size")
  shd.fit_batch_size(config.probe.eval_batch_size, mesh)
  trained, initial, info = pretrain(config, workdir, mesh, log, probe_train=probe_train,
                                    on_curve_point=on_curve_point)
  info_path = workdir / PRETRAIN_INFO
  if info["resumed_from"] < info["steps"]:
    if shd.is_chief():
      report.write_json(info_path, info)
  elif info_path.exists():  # nothing trained now (a re-probe): report the pretraining that made the trunk
    info = {**json.loads(info_path.read_text()), "reused": True}
  results = {"method": config.method, "regime": config.regime, "scale": config.scale,
             "probe_dataset": config.probe.dataset, "pretrain": info, "layers": list(LAYER_NAMES)}
  arms = [("trained", trained)] + ([("random", initial)] if config.probe.random_baseline else [])
  for name, st in arms:
    cached = workdir / f"probe_{name}.json"
    if cached.exists():
      results[name] = json.loads(cached.read_text())
      log(f"probes of the {name} trunk: already done, read from {cached.name}")
      continue
    log(f"probing the {name} trunk on {probe_train.name} ({len(probe_train)} train / "
        f"{len(probe_test)} test)")
    t0 = time.time()
    results[name] = probe_trunk(st, config, probe_train, probe_test, mesh, log)
    results[name + "_probe_wall_s"] = time.time() - t0
    if shd.is_chief():
      report.write_json(cached, results[name])
  if shd.is_chief():
    log("\n" + write_results(workdir, results, config))
  return results


def write_results(workdir: Path, results: dict, config) -> str:
  """Writes probe_results.{json,md,png}; returns the top-1 table."""
  layers = [l for l in LAYER_NAMES if l in results["trained"]]
  rows = {f"{config.method} ({config.regime})": results["trained"]}
  if "random" in results:
    rows["random init"] = results["random"]
  report.write_json(workdir / "probe_results.json", results)
  title = (f"{config.method}, regime {config.regime}, scale {config.scale}: "
           f"linear probes on {config.probe.dataset}")
  md = [f"# {title}\n", "Top-1 accuracy (%)\n", report.markdown_table(rows, layers, "top1"),
        "\nTop-5 accuracy (%)\n", report.markdown_table(rows, layers, "top5")]
  (workdir / "probe_results.md").write_text("\n".join(md))
  report.plot_layers(workdir / "probe_results.png", rows, layers, title)
  return md[2]
