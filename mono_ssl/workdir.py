"""A run's workdir policy: when a workdir may be resumed, re-probed or must be refused.

`check_workdir` compares the config saved in a workdir with the new one: the same
config (or one that differs only in fields that do not touch the checkpoints, or
in fields added since at their earlier behaviour) resumes; a change of probe
settings only re-probes the trained trunk (`archive_probes` keeps the old
results); a longer train.num_steps extends a run whose schedule does not depend on
its length (it goes on from its last checkpoint); anything else is refused with
one line, and nothing there is touched.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

import ml_collections

from mono_ssl import report
from mono_ssl import sharding as shd
from mono_ssl.errors import UserInputError
from mono_ssl.models.alexnet import LAYER_NAMES

PRETRAIN_INFO = "pretrain_info.json"  # the pretraining's steps, wall time and img/s, kept for re-probes
# Config fields a resumed run may change without invalidating its checkpoints.
# The learning curve's settings shape only the curve made while training (a finished run's
# curve stays as it was made; a resumed one goes on with the new settings).
RESUMABLE_FIELDS = ("train.log_every", "train.ckpt_every", "workdir", "train.sample_every",
                    "distributed.", "probe.curve_", "probe.val_fraction")


def _flat(d, prefix="") -> dict:
  out = {}
  for k, v in d.items():
    name = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flat(v, name + "."))
    else:
      out[name] = v
  return out


# Config fields added after runs were made whose earlier behaviour is not 0/""/False.
ADDED_FIELD_DEFAULTS = {"bigan.e_optimizer": "adam", "probe.layers": list(LAYER_NAMES),
                        "probe.resize": 0, "bigan.disc_arch": "joint_mlp", "bigan.disc_bn": True,
                        "bigan.disc_cat_inputs": False, "bigan.encoder_head": "alexnet",
                        "bigan.loss_scale": 1.0, "bigan.decay_gains": True,
                        "bigan.disc_input": "imagenet",
                        # DeepCluster before the original's choices were options (the old
                        # behaviour: a workdir made then resumes only under these values).
                        "deepcluster.reassign": 1.0, "deepcluster.fresh_views": False,
                        "deepcluster.feature_tap": "fc", "deepcluster.head_bn": True,
                        "deepcluster.kmeans_init": "kmeans++", "deepcluster.top_momentum": 0.9,
                        "deepcluster.sobel": False, "model.dtype": "float32",
                        "probe.train_views": "crops", "probe.head_seeds": 1}


def saved_config(workdir: str | Path):
  """The ConfigDict a run in `workdir` was made with (its config.json; JSON lists back to the
  configs' tuples), e.g. to probe or resume that run from a script."""
  path = Path(workdir) / "config.json"
  if not path.exists():
    raise UserInputError(f"{workdir} holds no config.json: is it a run's workdir?")

  def tuples(d):
    return {k: tuples(v) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else v
            for k, v in d.items()}
  return ml_collections.ConfigDict(tuples(json.loads(path.read_text())))


def check_workdir(config, workdir: Path, log: Callable[[str], None] = print) -> None:
  """Refuses a workdir that is unwritable, (nearly) full, or holds another experiment.

  A finished run whose config differs only in `probe.*` fields is probed again
  with the new protocol, its pretraining reused: the old probe results move to
  `probes_before_<time>/` (nothing is deleted).
  """
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / ".write_test"
    probe.write_text("ok")
    probe.unlink()
  except OSError as e:
    raise UserInputError(f"workdir {workdir} is not writable ({e.strerror}); "
                         "pass a --workdir you can write to.") from None
  free = shutil.disk_usage(workdir).free
  if free < 64 * 2**20:
    raise UserInputError(f"only {free / 2**20:.0f} MiB free under {workdir}; "
                         "free some disk space or pass another --workdir.")
  saved = workdir / "config.json"
  current = json.loads(config.to_json())
  if saved.exists() and _holds_outputs(workdir):  # a refused run's config.json binds nothing
    try:
      old = json.loads(saved.read_text())
    except json.JSONDecodeError:
      raise UserInputError(f"{saved} is not valid JSON; fix or delete it, or use a new --workdir.") from None
    a, b = _flat(old), _flat(current)
    # A field added to the configs since the run, at its neutral value (0, "", False) or at
    # the value that means what runs did before it existed, is no change.
    differ = sorted(k for k in set(a) | set(b)
                    if a.get(k) != b.get(k) and not k.startswith(RESUMABLE_FIELDS)
                    and not (k not in a and (b.get(k) in (0, "", False)
                                             or b.get(k) == ADDED_FIELD_DEFAULTS.get(k))))
    if "train.num_steps" in differ:
      why_not = _cannot_extend(a, b)
      if why_not is None:  # a longer run of the same schedule: it goes on from its last checkpoint
        differ.remove("train.num_steps")
        if not differ and any(workdir.glob("probe_*.json")):
          archive = archive_probes(workdir)
          log(f"workdir {workdir}: extends the run from {a['train.num_steps']} to "
              f"{b['train.num_steps']} steps (its schedule does not depend on the run's length, "
              f"so this is the run a fresh {b['train.num_steps']}-step one makes); old probe "
              f"results in {archive.name}/")
      elif len(differ) == 1:
        raise UserInputError(
            f"workdir {workdir}: train.num_steps {a.get('train.num_steps')!r} -> "
            f"{b.get('train.num_steps')!r} cannot extend this run ({why_not}); use a new --workdir.")
    if differ and all(k.startswith("probe.") for k in differ):
      # The probe settings do not touch pretraining: a finished run is probed again, an
      # unfinished one resumes and is probed with the new protocol.
      shown = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in differ[:6])
      if any(workdir.glob("probe_*.json")):
        archive = archive_probes(workdir)
        log(f"workdir {workdir}: only the probe protocol changed ({shown}); its pretraining is "
            f"reused and the trunks are probed again (old probe results in {archive.name}/)")
      else:
        log(f"workdir {workdir}: only the probe protocol changed ({shown}), before any probe ran")
      differ = []
    if differ:
      shown = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in differ[:6])
      raise UserInputError(
          f"workdir {workdir} holds another experiment (differs in {shown}"
          f"{' ...' if len(differ) > 6 else ''}); use a new --workdir, or the config it was made with.")
  if shd.is_chief():
    report.write_json(saved, current)


def _cannot_extend(old: dict, new: dict) -> str | None:
  """Why a run saved with `old` (flat config) cannot go on to `new`'s longer train.num_steps;
  None when it can: more steps, and nothing in the run scaled by its length (a step
  schedule's boundaries, BiGAN's `e_start`, both fractions of train.num_steps), so the
  steps already taken are those a fresh run of the new length takes."""
  steps_old, steps_new = old.get("train.num_steps"), new.get("train.num_steps")
  if not (isinstance(steps_old, int) and isinstance(steps_new, int) and steps_new > steps_old):
    return "a run is only extended, never shortened"
  if old.get("train.lr_boundaries"):
    return (f"its lr schedule's boundaries {old['train.lr_boundaries']} are fractions of the "
            "run's length")
  if old.get("method") == "bigan" and old.get("bigan.e_start"):
    return f"bigan.e_start={old['bigan.e_start']} is a fraction of the run's length"
  return None


def archive_probes(workdir: Path) -> Path:
  """Moves a run's probe outputs (and its grid timing) to probes_before_<time>/; returns it.

  The pretraining's record is kept as pretrain_info.json, and its wall time
  without the old probes, so that a re-probed run still reports both.
  """
  archive = workdir / time.strftime("probes_before_%Y%m%d-%H%M%S")
  archive.mkdir()
  old = workdir / "probe_results.json"
  old_results = json.loads(old.read_text()) if old.exists() else {}
  grid_run = workdir / "grid_run.json"
  info_path = workdir / PRETRAIN_INFO
  info = (json.loads(info_path.read_text()) if info_path.exists()
          else dict(old_results.get("pretrain") or {}))
  if info:
    if grid_run.exists():  # the grid's wall time of the run, less its old probes
      probes = sum(v for k, v in old_results.items() if k.endswith("_probe_wall_s"))
      info["grid_wall_s_without_probes"] = float(json.loads(grid_run.read_text())["wall_s"]) - probes
    info.pop("reused", None)
    report.write_json(info_path, info)
  shutil.copy2(workdir / "config.json", archive / "config.json")
  for path in [*workdir.glob("probe_*.json"), *workdir.glob("probe_results.*"), grid_run]:
    if path.exists():
      shutil.move(str(path), str(archive / path.name))
  return archive


def _holds_outputs(workdir: Path) -> bool:
  """Whether a run here got as far as checkpoints, metrics or probe results."""
  ckpts = workdir / "checkpoints"
  return ((ckpts.is_dir() and any(ckpts.iterdir())) or (workdir / "metrics.jsonl").exists()
          or any(workdir.glob("probe_*.json")))
