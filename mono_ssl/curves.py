"""Learning curves: a short linear probe of conv1..conv5 every `probe.curve_every` pretraining steps.

A single end-of-run probe cannot tell a broken recipe from a short one
(Donahue et al.'s BiGAN probes below its initialisation for its first ~10k
iterations, `jeffdonahue/bigan` README). The curve probes the trunk at step 0
and every N steps (and at the last step) with the run's probe recipe but
`probe.curve_epochs` epochs, trained on `probe.curve_train_size` images and
scored on a validation split carved from the probe set's *train* split
(`validation_split`), so that choosing run lengths from curves never looks at
the test split. Points land in `probe_curve.jsonl` (one JSON object per point:
`step`, per layer `{"top1": %}`, and the point's `wall_s`) and are drawn as
`probe_curve.png`; a resumed run keeps the points up to its checkpoint and
makes the rest. Given a step's trunk, a point equals
`CurveProbe(...)(trunk_vars)` of that step's checkpoint (tests/test_curves.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mono_ssl import sharding as shd
from mono_ssl.datasets import LabelledImages
from mono_ssl.errors import UserInputError
from mono_ssl.probe import LinearProbe, ProbeConfig
from mono_ssl.streaming import StreamingImages

CURVE_FILE = "probe_curve.jsonl"
CURVE_PLOT = "probe_curve.png"


def validation_split(labels: np.ndarray, num_classes: int, fraction: float, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
  """(train indices, validation indices): `fraction` of each class, drawn at random (seed), held out.

  Both sorted; disjoint; every class keeps at least one training image.
  """
  if not 0.0 < fraction < 1.0:
    raise UserInputError(f"probe.val_fraction={fraction} must lie strictly between 0 and 1.")
  rng = np.random.default_rng(seed)
  train, val = [], []
  for c in range(num_classes):
    members = rng.permutation(np.flatnonzero(labels == c))
    n_val = min(int(round(fraction * len(members))), max(len(members) - 1, 0))
    val.append(members[:n_val])
    train.append(members[n_val:])
  return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def balanced_subset(indices: np.ndarray, labels: np.ndarray, num_classes: int, size: int,
                     seed: int) -> np.ndarray:
  """About `size` of `indices`, the same number per class where the classes allow (sorted)."""
  if size >= len(indices):
    return np.sort(indices)
  rng = np.random.default_rng(seed)
  take = -(-size // max(num_classes, 1))  # per class, rounded up; trimmed at random below
  picked = np.concatenate([rng.permutation(indices[labels[indices] == c])[:take]
                           for c in range(num_classes)])
  return np.sort(rng.permutation(picked)[:size])


def subset(ds: LabelledImages | StreamingImages, idx: np.ndarray, name: str) -> LabelledImages:
  """The images at `idx` as an in-memory set (a stream's are read once, here)."""
  if isinstance(ds, StreamingImages):
    images, labels = ds.fetch(idx)
  else:
    images, labels = ds.images[idx], np.asarray(ds.labels)[idx]
  return LabelledImages(images=images, labels=np.asarray(labels, np.int32),
                        num_classes=ds.num_classes, name=name)


def curve_sets(train: LabelledImages | StreamingImages, pc) -> tuple[LabelledImages, LabelledImages]:
  """(curve train set, validation set), both carved from the probe set's train split.

  pc: the config's probe block (val_fraction, curve_train_size, curve_val_size, batch_size).
  """
  labels = np.asarray(train.labels)
  train_idx, val_idx = validation_split(labels, train.num_classes, pc.val_fraction, seed=0)
  fit_idx = balanced_subset(train_idx, labels, train.num_classes, int(pc.curve_train_size), seed=1)
  val_idx = balanced_subset(val_idx, labels, train.num_classes, int(pc.curve_val_size), seed=2)
  if len(fit_idx) < pc.batch_size:
    raise UserInputError(f"probe.curve_train_size={pc.curve_train_size} gives {len(fit_idx)} curve "
                         f"training images of {train.name}, fewer than probe.batch_size="
                         f"{pc.batch_size}; raise probe.curve_train_size.")
  if len(val_idx) == 0:
    raise UserInputError(f"probe.val_fraction={pc.val_fraction} holds out no image of {train.name}; "
                         "raise probe.val_fraction.")
  return (subset(train, fit_idx, f"{train.name} (curve train)"),
          subset(train, val_idx, f"{train.name} (validation)"))


def heldout_images(train: LabelledImages | StreamingImages, pc, size: int) -> np.ndarray:
  """`size` images of the validation carve (balanced over classes, seed 3), uint8 NHWC: the
  held-out images a RotNet run's rotation accuracy is read on, the same for every regime."""
  labels = np.asarray(train.labels)
  _, val_idx = validation_split(labels, train.num_classes, pc.val_fraction, seed=0)
  return np.asarray(subset(train, balanced_subset(val_idx, labels, train.num_classes, size, seed=3),
                           "held out").images)


def curve_probe_config(pc) -> ProbeConfig:
  """The run's probe recipe with the curve's epoch count."""
  # One head seed: a curve point is a run's health signal, read for its trend; the final
  # probes carry probe.head_seeds.
  return dataclasses.replace(ProbeConfig.from_config(pc), epochs=int(pc.curve_epochs), head_seeds=1)


def curve_steps(every: int, total: int) -> list[int]:
  """The steps a curve probes: 0, every, 2 every, ..., and the last step."""
  if every <= 0:
    return []
  return sorted(set(range(0, total + 1, every)) | {total})


class CurveProbe:
  """One curve point: `CurveProbe(trunk_apply, trunk_vars, probe_train, config.probe)(trunk_vars)`
  -> {layer: {"top1", "top5", "dims"}} on the validation split (compiled once, reused)."""

  def __init__(self, trunk_apply: Callable, trunk_vars: Any,
               probe_train: LabelledImages | StreamingImages, pc, mesh=None,
               log: Callable[[str], None] = lambda s: None):
    fit, val = curve_sets(probe_train, pc)
    self._probe = LinearProbe(trunk_apply, trunk_vars, fit, val, curve_probe_config(pc),
                              mesh=mesh, log=log)

  def __call__(self, trunk_vars: Any) -> dict:
    return self._probe(trunk_vars)


class LearningCurve:
  """The curve of one run: call `at(step, trunk_apply, trunk_vars)` after every step."""

  def __init__(self, config, workdir: Path, probe_train, total: int, start: int, mesh=None,
               log: Callable[[str], None] = print):
    self.pc, self.path, self.mesh, self.log = config.probe, Path(workdir) / CURVE_FILE, mesh, log
    self.probe_train = probe_train
    self.steps = set(curve_steps(int(config.probe.curve_every), total))
    self.title = f"{config.method} ({config.regime}), scale {config.scale}: validation split " \
                 f"of {config.probe.dataset}"
    self.points = read_curve(self.path)
    # Points past the checkpoint we resume from are made again (they were made by
    # steps that will be rerun, bit-identically).
    self.points = [p for p in self.points if p["step"] <= start]
    self._write_all()
    missing = sorted(s for s in self.steps if s < start and s not in self.done)
    if missing:
      log(f"learning curve: no point at step(s) {', '.join(map(str, missing[:5]))}"
          f"{' ...' if len(missing) > 5 else ''} (the run resumed at step {start}, past them)")
    self._probe = None
    self.wall_s = 0.0

  @property
  def done(self) -> set:
    return {p["step"] for p in self.points}

  def at(self, step: int, trunk_apply: Callable, trunk_vars: Any,
         extra: Callable[[], dict] | None = None) -> None:
    """Probes the trunk if `step` is a curve step without a point yet; `extra()` adds
    scalar fields to the point (RotNet's held-out rotation accuracy)."""
    if step not in self.steps or step in self.done:
      return
    t0 = time.time()
    if self._probe is None:
      self._probe = CurveProbe(trunk_apply, trunk_vars, self.probe_train, self.pc, self.mesh)
    res = self._probe(trunk_vars)
    wall = time.time() - t0
    self.wall_s += wall
    point = {"step": int(step), **{n: {"top1": r["top1"]} for n, r in res.items()}, "wall_s": wall}
    more = extra() if extra is not None else {}
    point.update(more)
    self.points.append(point)
    self.points.sort(key=lambda p: p["step"])
    self._write_all()
    self.log(f"learning curve at step {step}: "
             + " ".join(f"{n} {r['top1']:.1f}" for n, r in res.items())
             + "".join(f" {k} {v:.3f}" for k, v in more.items()) + f" ({wall:.1f}s)")

  def _write_all(self) -> None:
    if not shd.is_chief():
      return
    tmp = self.path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(p) + "\n" for p in self.points))
    tmp.replace(self.path)
    if self.points:
      plot_curve(self.path.with_name(CURVE_PLOT), self.points, self.title)


def read_curve(path: Path) -> list[dict]:
  """The points of a probe_curve.jsonl ([] if there is none), sorted by step."""
  path = Path(path)
  if not path.exists():
    return []
  return sorted((json.loads(l) for l in path.read_text().splitlines() if l.strip()),
                key=lambda p: p["step"])


def flatness(points: list[dict], tail: float = 0.25, metric: str = "top1") -> dict:
  """How much each layer's curve still moves at the end of a run: {layer: max - min} of the
  points in the last `tail` of the run (steps >= (1 - tail) x the last point's step; at
  least the last two points), in accuracy points. The faithful-network issue's stopping
  rule: a run has flattened where conv1-conv3 move by less than 0.5 over the last quarter.
  """
  if len(points) < 2:
    raise ValueError(f"a curve of {len(points)} point(s) has no tail to measure; "
                     "set probe.curve_every below train.num_steps")
  last = points[-1]["step"]
  tail_points = [p for p in points if p["step"] >= (1 - tail) * last]
  if len(tail_points) < 2:
    tail_points = points[-2:]
  out = {}
  for layer in curve_layers(points):
    values = [p[layer][metric] for p in tail_points if layer in p]
    out[layer] = float(max(values) - min(values))
  return {"from_step": tail_points[0]["step"], "to_step": last, "move": out}


def lr_constant(metrics: list[dict], from_step: int, to_step: int, rtol: float = 1e-6,
                at_peak: bool = False) -> bool | None:
  """Whether the logged lr (metrics.jsonl rows' "lr") stayed at one value between two steps
  (inclusive), and with `at_peak` at the run's largest logged lr: the flatness rule reads only
  such a stretch, since a step schedule's last quarter at 1% and 0.1% of the peak lr (or at
  one lr decayed before it) is flat by construction. None: no lr logged there."""
  all_lrs = [float(m["lr"]) for m in metrics if "lr" in m]
  lrs = [float(m["lr"]) for m in metrics if "lr" in m and from_step <= m.get("step", -1) <= to_step]
  if not lrs:
    return None
  tol = rtol * max(abs(max(all_lrs)), 1e-30)
  return max(lrs) - min(lrs) <= tol and (not at_peak or max(all_lrs) - max(lrs) <= tol)


def gain_over_init(points: list[dict], layers=("conv1", "conv2"), margin: float = 1.0,
                   metric: str = "top1") -> dict:
  """Each layer's curve against its own random init (the step-0 point): {"init": {layer: v},
  "best": {layer: (gain, step)} (the largest gain and its first step), "first_step": the first
  step where every one of `layers` is >= `margin` points above its init (None: never)}. The
  BiGAN issue's target: conv1 and conv2 >= 1 point above init at some step."""
  points = sorted(points, key=lambda q: q["step"])
  if not points or points[0]["step"] != 0:
    raise ValueError("a curve without its step-0 point has no random init to compare with; "
                     "keep probe.curve_every > 0 from the run's start")
  init = {l: points[0][l][metric] for l in layers}
  best = {}
  for l in layers:
    gains = [(q[l][metric] - init[l], q["step"]) for q in points[1:] if l in q]
    best[l] = max(gains, key=lambda g: (g[0], -g[1])) if gains else None
  first = next((q["step"] for q in points[1:]
                if all(l in q and q[l][metric] - init[l] >= margin for l in layers)), None)
  return {"init": init, "best": best, "first_step": first, "last_step": points[-1]["step"]}


def curve_layers(points: list[dict]) -> list[str]:
  return [k for k in points[0] if isinstance(points[0][k], dict)] if points else []


def plot_curve(path: Path, points: list[dict], title: str) -> None:
  """Top-1 per layer against pretraining step."""
  from matplotlib.figure import Figure

  fig = Figure(figsize=(5.5, 3.8))
  _draw_curve(fig.subplots(), points, title)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def _draw_curve(ax, points: list[dict], title: str, legend: bool = True) -> None:
  steps = [p["step"] for p in points]
  for layer in curve_layers(points):
    ax.plot(steps, [p[layer]["top1"] for p in points], marker="o", ms=3, label=layer)
  ax.set_xlabel("pretraining step")
  ax.set_ylabel("validation top-1 (%)")
  ax.set_title(title, fontsize=8)
  ax.grid(alpha=0.3)
  if legend:
    ax.legend(fontsize=7)


def plot_curves(path: Path, curves: dict[str, list[dict]], title: str) -> None:
  """The grid's figure: one panel per run ({label: points}), side by side, shared y axis."""
  from matplotlib.figure import Figure

  curves = {k: v for k, v in curves.items() if v}
  n = max(len(curves), 1)
  cols = min(4, n)
  rows = -(-n // cols)
  fig = Figure(figsize=(3.4 * cols, 2.8 * rows + 0.4))
  axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
  for ax in axes.ravel()[len(curves):]:
    ax.axis("off")
  for i, (ax, (name, points)) in enumerate(zip(axes.ravel(), curves.items())):
    _draw_curve(ax, points, name, legend=i == 0)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def gain_series(points: list[dict], layer: str, metric: str = "top1") -> tuple[list[int], list[float]]:
  """(steps, gain over the step-0 point) of one layer's curve, by step: 0 at step 0."""
  points = sorted((p for p in points if layer in p), key=lambda q: q["step"])
  init = gain_over_init(points, (layer,), metric=metric)["init"][layer]  # checks the step-0 point
  return [p["step"] for p in points], [p[layer][metric] - init for p in points]


def plot_gain_over_init(path: Path, curves: dict[str, list[dict]], title: str,
                        layers=("conv1", "conv2"), margin: float = 1.0) -> None:
  """One panel per layer: each run's ({label: points}) top-1 minus its own random init (the
  step-0 point) against step, with 0 and +`margin` marked (the BiGAN issue's target line)."""
  from matplotlib.figure import Figure

  fig = Figure(figsize=(4.2 * len(layers), 3.4))
  axes = fig.subplots(1, len(layers), squeeze=False, sharey=True)[0]
  for ax, layer in zip(axes, layers):
    for label, points in curves.items():
      steps, gains = gain_series(points, layer)
      ax.plot(steps, gains, marker="o", ms=3, label=label)
    ax.axhline(0, color="k", lw=0.8)
    ax.axhline(margin, color="k", lw=0.8, ls="--")
    ax.set_xlabel("pretraining step")
    ax.set_title(f"{layer}: top-1 − its random init (points; dashed +{margin:g})", fontsize=8)
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("gain over init (points)")
  axes[0].legend(fontsize=7)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)



USAGE = ("python -m mono_ssl.curves gain OUT.png RUN_DIR [RUN_DIR ...] [--title T] "
         "[--margin M]  (each RUN_DIR holding a probe_curve.jsonl that starts at step 0)")
GAIN_LAYERS = ("conv1", "conv2")


def _gain_curves(run_dirs: list[str]) -> dict[str, list[dict]]:
  """{label: points} of the CLI's run folders, labelled by their last two path parts; a
  folder that is missing, untrained, without conv1/conv2 at step 0 or repeated is refused."""
  curves: dict[str, list[dict]] = {}
  for run in map(Path, run_dirs):
    if not run.is_dir():
      raise UserInputError(f"RUN_DIR={str(run)!r} does not exist; pass a run's folder")
    try:
      points = read_curve(run / CURVE_FILE)
    except (json.JSONDecodeError, KeyError) as e:
      raise UserInputError(f"RUN_DIR={str(run)!r}: its {CURVE_FILE} does not parse ({e}); "
                           "pass a folder written by mono_ssl") from None
    if len(points) < 2 or points[0]["step"] != 0:
      raise UserInputError(f"RUN_DIR={str(run)!r} has no {CURVE_FILE} from step 0 onwards "
                           f"({len(points)} point(s)); pass folders of trained runs made "
                           "with probe.curve_every > 0")
    missing = [l for l in GAIN_LAYERS if l not in points[0]]
    if missing:
      raise UserInputError(f"RUN_DIR={str(run)!r}: its step-0 point has no {', '.join(missing)}; "
                           "pass runs of a trunk with conv1 and conv2")
    resolved = run.resolve()
    label = f"{resolved.parent.name}/{resolved.name}"
    if label in curves:
      raise UserInputError(f"RUN_DIR={str(run)!r}: a second run labelled {label!r}; pass each "
                           "run once (runs of two grids need differently named grid folders)")
    curves[label] = points
  return curves


class _OneLineParser(argparse.ArgumentParser):
  """argparse whose errors raise UserInputError (one line) instead of printing usage + error."""

  def error(self, message):
    raise UserInputError(f"{message}; usage: {USAGE}")


def main(argv: list[str]) -> int:
  """`gain OUT.png RUN_DIR...`: the runs' conv1 / conv2 curves against their own step-0 init in
  one figure (plot_gain_over_init), each labelled by its last two path parts, e.g. runs of
  several grids side by side. A bad argument gets one line and exit 2; nothing is written."""
  parser = _OneLineParser(prog="python -m mono_ssl.curves", usage=USAGE)
  parser.add_argument("command", choices=["gain"])
  parser.add_argument("out")
  parser.add_argument("runs", nargs="+")
  parser.add_argument("--title", default="learning curves against each run's random init")
  parser.add_argument("--margin", type=float, default=1.0)
  try:
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.suffix != ".png":
      raise UserInputError(f"OUT={args.out!r} is not a .png path; name the figure file, e.g. gain.png")
    if not out.parent.is_dir():
      raise UserInputError(f"OUT={args.out!r}: folder {str(out.parent)!r} does not exist; create it first")
    curves = _gain_curves(args.runs)
    plot_gain_over_init(out, curves, args.title, layers=GAIN_LAYERS, margin=args.margin)
  except UserInputError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
