r"""A grid of runs (methods x regimes, and the baselines) through `train.train_and_evaluate`, one table.

  python -m mono_ssl.grid --config=configs/grid.py:scale=cpu,probe=cifar10 --workdir=runs/grid

A grid config (configs/grid.py, configs/ablation.py; built by `grid_config`)
holds `runs`, a list of `run_spec` dicts: a config file of configs/, its
argument, a table label and dotted-key overrides. The grid sets every run's
scale, probe set (also the `full` regime's training set) and, at CPU scale,
a patch size equal to the probe images' side (32 px CIFAR-10, 64 px
Tiny-ImageNet). Each run gets its own workdir `<workdir>/<run name>`; a run
is finished when its probe_results.json exists, so rerunning the command
resumes an interrupted grid and reruns nothing finished (a finished run
made by another config is refused, with the differing fields named).
`--config.only=a,b` runs and reports only the named rows; `<row>_seed<k>` names
one seed's run of a row (`<row>_seed0` its seed 0), e.g. a second seed started on
another machine or session. A run whose loss
diverges is listed as failed and the grid goes on (exit status 1); bad
input (unknown run, probe set or override, missing data) stops it before
any run with one line.

A row may run several seeds (`seeds=N` in the grid config, or a row's own
`run_spec(..., seeds=N)`): seed k runs in `<workdir>/<row>_seed<k>` with
`seed` and `probe.seed` raised by k, and the row reports the mean and
standard error over its seeds.

Writes into the workdir: grid_results.json (every row's top-1/top-5 per
layer, mean and standard error, each seed's results and learning curve, the
config, wall time and images/s, and the fraction of supervision's gain
(x - random) / (supervised - random) of every other row), grid_results.md
(the paper's table layout, best of each column in bold, and the fractions),
grid_layers.png (top-1 against depth), conv1_filters.png (each trunk's
conv1 filters), grid_fraction.png (the fractions per layer, 1.0 marked) and
grid_curves.png (each row's learning curve, side by side) and grid_gain.png (every
seed's conv1 / conv2 curve minus its own step-0 random init). With
`results_dir` set, those and each run's small files (probe results,
learning curve, metrics, config; never checkpoints) are copied there, e.g.
into the repository's results/<grid name>/: each run as soon as it finishes,
with the tables of the runs finished so far, and a running run's files at each
learning-curve point, every file atomically (temp name, then rename), so a
killed grid leaves in results_dir every run it finished, whole (copy one into
a workdir, `cp -r results/<grid>/<run> <workdir>/`, and the grid reuses it).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from mono_ssl import config_lib, curves, images, report, scatnet, train
from mono_ssl.errors import TrainingDiverged, UserInputError
from mono_ssl.models.alexnet import LAYER_NAMES

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"
FINISHED = "probe_results.json"  # a run is done when train_and_evaluate has written this
PROBE_SETS = ("bundled_cifar10", "cifar10", "tiny_imagenet", "tiny_imagenet_400", "tfds:<name>")
# tiny_imagenet_400: the 80,000-image train split of scale=calib (config_lib.calib_fields).
PROBE_SIDES = {"bundled_cifar10": 32, "cifar10": 32, "tiny_imagenet": 64,
               "tiny_imagenet_400": 64}  # image side, px


def run_spec(name: str, config: str, arg: str = "", label: str = "",
             overrides: dict | None = None, seeds: int = 0) -> dict:
  """One row: configs/<config>.py:<arg> (the grid adds scale=), then `overrides`
  ({"train.num_steps": 1000, ...}); `label` names its row in the tables (default: name);
  `seeds` runs of it (seed 0, 1, ...; 0 = the grid's `seeds`), reported as mean +- s.e."""
  return {"name": name, "label": label or name, "config": config, "arg": arg,
          "overrides": dict(overrides or {}), "seeds": int(seeds)}


def seed_run_name(row: str, seed: int) -> str:
  """A row's run of one seed: seed 0 in `<row>`, seed k in `<row>_seed<k>`."""
  return row if seed == 0 else f"{row}_seed{seed}"


def seed_runs(grid, spec: dict) -> list[tuple[int, str]]:
  """(seed, workdir name) of each run of a row (`seed_run_name`)."""
  n = spec.get("seeds") or grid.seeds
  if n < 1:
    raise UserInputError(f"seeds={n} for row {spec['name']!r} must be >= 1.")
  return [(k, seed_run_name(spec["name"], k)) for k in range(n)]


def check_probe(probe: str) -> None:
  """Refuses a probe set the data loaders do not know."""
  if probe not in PROBE_SIDES and not (probe.startswith("tfds:") and probe[5:].strip()):
    raise UserInputError(f"probe={probe!r} is not one of {', '.join(PROBE_SETS)}.")


def grid_config(runs: list[dict], scale: str = "cpu", probe: str = "cifar10",
                title: str = "") -> ml_collections.ConfigDict:
  """The locked config of a grid: its runs and the settings every run shares."""
  config_lib.check_choice("scale", scale, config_lib.SCALES)
  check_probe(probe)
  c = ml_collections.ConfigDict()
  c.title = title
  c.scale = scale
  c.probe = probe
  c.data_dir = ""      # folder of the probe sets ('' = ../shared/data or $MONO_SSL_DATA_DIR)
  c.only = ""          # comma-separated run names to run and report ('' = all)
  c.configs_dir = ""   # where the runs' config files are ('' = the grid config's folder on the
                       # command line, this repository's configs/ from Python)
  c.seeds = 1          # runs per row (seeds 0..seeds-1) where a row does not set its own
  # The rows the fraction of supervision, (x - random) / (supervised - random), is computed from.
  c.supervised_row = "supervised"
  c.random_row = "random"
  c.results_dir = ""   # also copy the small outputs (no checkpoints) here, e.g. results/<grid name>
  c.runs = list(runs)  # stays a list of plain dicts, so overrides may use dotted keys
  _unique_names(c.runs)
  c.lock()
  return c


def _unique_names(runs: list[dict]) -> list[str]:
  names = [r["name"] for r in runs]
  dup = sorted({n for n in names if names.count(n) > 1})
  if dup:
    raise UserInputError(f"run names must be unique; repeated: {', '.join(dup)}.")
  return names


def _only(grid) -> list[str]:
  return [s.strip() for s in grid.only.split(",") if s.strip()]


def _seed_selectors(grid) -> dict[str, tuple[str, int]]:
  """{"<row>_seed<k>": (row, k)} for every seed of every row, seed 0 included."""
  return {f"{spec['name']}_seed{k}": (spec["name"], k)
          for spec in grid.runs for k, _ in seed_runs(grid, spec)}


def selected_runs(grid) -> list[dict]:
  """The rows `grid.only` names, whole or by one seed's run (all when empty), in the grid's order."""
  names = _unique_names(list(grid.runs))
  only, seeds = _only(grid), _seed_selectors(grid)
  unknown = [n for n in only if n not in names and n not in seeds]
  if unknown:
    raise UserInputError(f"only={grid.only!r}: unknown run name(s) {', '.join(unknown)}; "
                         f"this grid's runs: {', '.join(names)} (one seed's run: <row>_seed<k>, "
                         f"k < its seeds).")
  rows = {seeds[n][0] if n in seeds else n for n in only}
  return [r for r in grid.runs if not only or r["name"] in rows]


def selected_seed_runs(grid, spec: dict) -> list[tuple[int, str]]:
  """`seed_runs` of a selected row: all of them, or those `grid.only` names by `<row>_seed<k>`
  when it does not name the row itself."""
  runs = seed_runs(grid, spec)
  only, seeds = _only(grid), _seed_selectors(grid)
  if not only or spec["name"] in only:
    return runs
  chosen = {seeds[n][1] for n in only if n in seeds and seeds[n][0] == spec["name"]}
  return [(k, n) for k, n in runs if k in chosen]


load_config_file = config_lib.load_config_file  # (path, arg): a config file's get_config(arg)


def apply_overrides(config, overrides: dict, where: str) -> None:
  """Sets dotted keys of a (locked) config; an unknown key or a wrong type names the run."""
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    try:
      for p in parents:
        node = node[p]
      if leaf not in node:
        raise KeyError(leaf)
      node[leaf] = value
    except (KeyError, AttributeError, TypeError, ValueError) as e:
      raise UserInputError(f"{where}: cannot set {key}={value!r} "
                           f"({type(e).__name__}: {str(e).splitlines()[0][:120]}).") from None


def run_config(grid, spec: dict, seed: int = 0):
  """The locked config of one run: its file at the grid's scale and probe set, its overrides,
  then `seed` (the run's `seed` and `probe.seed`)."""
  where = f"run {spec['name']!r}"
  path = (Path(grid.configs_dir) if grid.configs_dir else CONFIGS_DIR) / f"{spec['config']}.py"
  if not path.is_file():
    raise UserInputError(f"{where}: no config file {path}.")
  cfg = load_config_file(path, ",".join(filter(None, [spec.get("arg", ""), f"scale={grid.scale}"])))
  # The full regime trains on the probe set's train split (supervised with its labels).
  cfg.probe.dataset = cfg.data.full_dataset = grid.probe
  cfg.probe.data_dir = cfg.data.data_dir = grid.data_dir
  cfg.probe.random_baseline = False  # the grid's random-init row is a run of its own
  side = PROBE_SIDES.get(grid.probe)
  if grid.scale == "cpu" and side and side != cfg.aug.out_size:
    # Patches at the probe images' scale, the generator patch grown alike (40 -> 80 for 64 px).
    cfg.aug.patch_size = round(cfg.aug.patch_size * side / cfg.aug.out_size)
    cfg.aug.out_size = side
  if side:
    # The bundled probe sets are small images (32/64 px): probes see the whole
    # image; the paper's 224 px ten-crop protocol is for ImageNet-sized sets.
    cfg.probe.crop_size, cfg.probe.ten_crop, cfg.probe.image_size = 0, False, 0
    cfg.data.image_size = 0  # small enough to hold in memory at their own size
  apply_overrides(cfg, spec.get("overrides", {}), where)
  if seed:
    # With probe.head_seeds = h, trunk seed k's heads are probe seeds k*h .. k*h + h - 1:
    # no two trunks share a head seed (h = 1: probe.seed + k, as before head seeds).
    cfg.seed, cfg.probe.seed = cfg.seed + seed, cfg.probe.seed + seed * cfg.probe.get("head_seeds", 1)
  return cfg


def conv1_filters(cfg, workdir: Path) -> np.ndarray | None:
  """A finished run's conv1 kernel (k, k, 3, C), cached as conv1_filters.npy in its workdir.

  ScatNet's "filters" are the real parts of its first-order Morlet wavelets. None for a
  run restored from results/ without its checkpoints or its conv1_filters.npy (e.g. on a
  new machine): rebuilding the state there would retrain it, so its filters are left out.
  """
  path = workdir / "conv1_filters.npy"
  if path.exists():
    return np.load(path)
  if cfg.method != "scatnet" and not (workdir / "checkpoints").is_dir():
    return None
  if cfg.method == "scatnet":
    kernel = np.moveaxis(scatnet.spatial_wavelets(cfg.scatnet.J, cfg.scatnet.L), 0, -1)[:, :, None]
  else:
    try:
      kernel = _read_conv1(workdir / "checkpoints")
    except Exception:  # noqa: BLE001 -- another orbax layout: restore the whole state instead
      # pretrain() of a finished run only restores its last checkpoint (seconds: it builds the state).
      state = train.pretrain(cfg, workdir, log=lambda s: None)[0]
      _, variables = train.method_module(cfg).trunk(state)
      kernel = np.asarray(jax.device_get(variables["params"]["conv1"]["kernel"]))
  np.save(path, kernel)
  return kernel


def _read_conv1(ckpt_dir: Path) -> np.ndarray:
  """The conv1 kernel of the latest checkpoint, read as NumPy without building the state (~0.1 s)."""
  step = max(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit())
  item = ckpt_dir / str(step) / "default"  # mono_ssl.checkpoint's StandardSave item
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.setLevel(logging.ERROR)  # orbax warns that a bare item has no step metadata
  try:
    ckptr = ocp.PyTreeCheckpointer()
    meta = ckptr.metadata(item)
    tree = getattr(getattr(meta, "item_metadata", meta), "tree", getattr(meta, "item_metadata", meta))
    args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    params = ckptr.restore(item, args=ocp.args.PyTreeRestore(restore_args=args))["params"]
  finally:
    absl_logger.setLevel(level)
  if "conv1" not in params:  # BiGAN: the probed trunk is the encoder
    params = params["encoder"]
  return np.asarray(params["conv1"]["kernel"])


def _wall(workdir: Path, results: dict) -> float:
  saved = workdir / "grid_run.json"
  if saved.exists():
    return float(json.loads(saved.read_text())["wall_s"])
  # Run outside the grid: its pretraining and probes, without start-up.
  return results["pretrain"]["wall_s"] + sum(v for k, v in results.items() if k.endswith("_probe_wall_s"))


def run_grid(config, workdir: str | os.PathLike, log: Callable[[str], None] = print) -> dict:
  """Runs every unfinished run of the grid, then writes the grid's outputs. Returns their JSON."""
  workdir = Path(workdir)
  check_probe(config.probe)
  specs = selected_runs(config)
  # Every run of every row (one per seed), seed-major: every row's seed 0 first, so an
  # interrupted grid has whole seeds. Bad input fails before any run.
  units = sorted(((spec, seed, name, run_config(config, spec, seed))
                  for spec in specs for seed, name in selected_seed_runs(config, spec)),
                 key=lambda u: u[1])  # stable: the grid's row order within a seed
  workdir.mkdir(parents=True, exist_ok=True)
  # Finished runs first, before any run: results made by another config are refused now,
  # not hours in; a new probe protocol alone archives a run's old probes (it is re-probed).
  for _, _, name, cfg in units:
    if (workdir / name / FINISHED).exists():
      train.check_workdir(cfg, workdir / name, log)
  pending = [name for _, _, name, _ in units if not (workdir / name / FINISHED).exists()]
  log(f"grid: {len(units)} runs in {workdir}, {len(pending)} to run"
      + (f" ({', '.join(pending)})" if pending else ""))
  # Missing data fails now, not after hours of other runs: the probe set (decoded once,
  # cached for the runs) and every pending run's source images (paths only).
  for _, _, name, cfg in units:
    if name in pending and cfg.regime in ("single", "deca"):
      images.resolve_image_paths(cfg.data.images or ("deca" if cfg.regime == "deca" else "default"))
  if pending:
    train.load_probe_data(next(c for _, _, n, c in units if n in pending))
  done, failed = {}, []
  dest = Path(config.results_dir) if config.results_dir else None
  for i, (_, seed, name, cfg) in enumerate(units, 1):
    sub = workdir / name
    ran = not (sub / FINISHED).exists()
    if not ran:
      results = json.loads((sub / FINISHED).read_text())
      log(f"[{i}/{len(units)}] {name}: finished earlier, read from {sub / FINISHED}")
    else:
      log(f"[{i}/{len(units)}] {name}: running in {sub}")
      t0 = time.time()
      try:
        results = train.train_and_evaluate(cfg, sub, log=log, on_curve_point=(
            (lambda step, sub=sub, name=name: export_run(sub, dest / name)) if dest else None))
      except TrainingDiverged as e:  # one diverged run should not cost the rest of the grid
        log(f"[{i}/{len(units)}] {name}: failed: {e}")
        failed.append({"name": name, "error": str(e)})
        if dest and i < len(units):
          export_progress(workdir, dest, config, specs, done, failed, log)
        continue
      wall = time.time() - t0
      if results["pretrain"].get("reused"):  # re-probed: the original pretraining's time counts too
        wall += results["pretrain"].get("grid_wall_s_without_probes", results["pretrain"]["wall_s"])
      report.write_json(sub / "grid_run.json", {"wall_s": wall})
    info = results["pretrain"]
    done[name] = {"name": name, "seed": seed, "workdir": str(sub), "results": results["trained"],
                  "steps": info["steps"], "wall_s": _wall(sub, results),
                  "images_per_s": info["images_per_s"],
                  "curve_wall_s": info.get("curve_wall_s"),
                  "curve": curves.read_curve(sub / curves.CURVE_FILE),
                  "config": json.loads(cfg.to_json()), "conv1": conv1_filters(cfg, sub)}
    if dest and ran and i < len(units):  # the last run's export is the final one below
      export_progress(workdir, dest, config, specs, done, failed, log)
  out = write_grid_results(workdir, config, grid_rows(config, specs, done), failed)
  if dest:
    export_results(workdir, dest, out, log)
  return out


def grid_rows(config, specs: list[dict], done: dict) -> list[dict]:
  """The table rows (`aggregate_row`) of the rows with at least one finished seed's run in `done`."""
  rows = []
  for spec in specs:
    seeds = [done[n] for _, n in selected_seed_runs(config, spec) if n in done]
    if seeds:
      rows.append(aggregate_row(spec, seeds))
  return rows


def export_progress(workdir: Path, dest: Path, config, specs: list[dict], done: dict,
                    failed: list[dict], log: Callable[[str], None] = print) -> None:
  """The tables of the runs finished so far, and those runs' small files, exported to `dest` now:
  a grid killed hours in keeps in results/ every run it finished, not only the ones of a whole grid."""
  out = write_grid_results(workdir, config, grid_rows(config, specs, done), failed)
  export_results(workdir, dest, out, log=lambda s: None)
  log(f"grid: {len(done)} finished run(s) and their tables exported to {dest}")


def aggregate_row(spec: dict, seeds: list[dict]) -> dict:
  """One table row from its seeds' runs: top-1/top-5 means per layer, their standard errors
  (s.d. / sqrt(n), ddof 1; 0 with one seed) and each seed's own results."""
  first = seeds[0]
  results, se = {}, {}
  for layer in first["results"]:
    vals = {m: np.array([s["results"][layer][m] for s in seeds]) for m in ("top1", "top5")}
    results[layer] = {m: float(v.mean()) for m, v in vals.items()}
    if "dims" in first["results"][layer]:
      results[layer]["dims"] = first["results"][layer]["dims"]
    se[layer] = {m: float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
                 for m, v in vals.items()}
  return {"name": spec["name"], "label": spec["label"], "method": first["config"]["method"],
          "regime": first["config"]["regime"], "workdir": first["workdir"], "results": results,
          "se": se, "n_seeds": len(seeds), "steps": first["steps"],
          "wall_s": sum(s["wall_s"] for s in seeds),
          "images_per_s": first["images_per_s"], "config": first["config"],
          "conv1": next((s["conv1"] for s in seeds if s["conv1"] is not None), None),
          "seeds": [{k: v for k, v in s.items() if k not in ("config", "conv1")} for s in seeds]}


def row_baseline(row: dict, config) -> str:
  """Which baseline a row is ("random", "supervised", "scatnet"), or "" for a method's row:
  the random-init row is a RotNet run of 0 steps, so its method alone does not say it."""
  if row["name"] == config.random_row:
    return "random"
  if row["name"] == config.supervised_row:
    return "supervised"
  return "scatnet" if row["method"] == "scatnet" else ""


def supervision_fractions(rows: list[dict], supervised: str, random: str) -> dict:
  """{row name: {layer: (x - random) / (supervised - random)}} of the top-1 means, for every
  row but the two references; {} when the grid lacks either of them."""
  by_name = {r["name"]: r for r in rows}
  if supervised not in by_name or random not in by_name:
    return {}
  sup, rnd = by_name[supervised]["results"], by_name[random]["results"]
  out = {}
  for r in rows:
    if r["name"] in (supervised, random):
      continue
    out[r["name"]] = {l: (v["top1"] - rnd[l]["top1"]) / (sup[l]["top1"] - rnd[l]["top1"])
                      for l, v in r["results"].items()
                      if l in sup and l in rnd and sup[l]["top1"] != rnd[l]["top1"]}
  return out


# A run's small outputs kept with the grid's results (never checkpoints).
RUN_OUTPUTS = ("probe_results.json", "probe_results.md", curves.CURVE_FILE, curves.CURVE_PLOT,
               "metrics.jsonl", "config.json", "conv1_filters.npy", "grid_run.json",
               "clusters.png",  # DeepCluster's NMI and cluster sizes
               "gan_curves.png")  # BiGAN's D accuracy and losses
GRID_OUTPUTS = ("grid_results.json", "grid_results.md", "grid_layers.png", "conv1_filters.png",
                "grid_fraction.png", "grid_curves.png", "grid_gain.png")


def run_output_files(run_dir: Path) -> list[Path]:
  """The small files of one run kept in results/: RUN_OUTPUTS, BiGAN's sample grids at every
  sample step (when G starts making patch-like images) and its latest reconstruction grid."""
  files = [run_dir / name for name in RUN_OUTPUTS if (run_dir / name).exists()]

  def step(path: Path) -> int:
    tail = path.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else -1
  files += sorted(run_dir.glob("samples_*.png"), key=step)
  files += sorted(run_dir.glob("recon_*.png"), key=step)[-1:]
  return files


# Suffix of a copy being written (`.<name>.<pid>.export-tmp`): a hidden name beside the final
# one, so `cp -r results/<grid>/* ...` and `git add` globs skip it while it is half-written.
EXPORT_TMP = ".export-tmp"


def _tmp_name(path: Path) -> Path:
  return path.with_name(f".{path.name}.{os.getpid()}{EXPORT_TMP}")


def _copy_atomic(src: Path, dst: Path) -> None:
  """`dst` is at every moment absent, the old copy or the whole new one (temp file + os.replace)."""
  tmp = _tmp_name(dst)
  shutil.copy2(src, tmp)
  os.replace(tmp, dst)


def export_run(run_dir: Path, target: Path) -> None:
  """One run's small files (`run_output_files`) into `target`, never half-written there.

  A first export fills a temp folder and renames it into place: the run appears whole. A later
  one replaces file by file (each atomic): Python has no atomic swap of two folders, and moving
  the old one aside first would leave a moment without the run (and drop files added by hand)."""
  files = run_output_files(run_dir)
  if target.is_dir():
    for path in files:
      _copy_atomic(path, target / path.name)
    return
  tmp = _tmp_name(target)
  shutil.rmtree(tmp, ignore_errors=True)
  tmp.mkdir(parents=True)
  for path in files:
    shutil.copy2(path, tmp / path.name)
  os.rename(tmp, target)


def _remove_dead_exports(dest: Path) -> None:
  """Temp copies left by an export killed mid-copy (its process gone), so results/ stays clean."""
  for tmp in [*dest.glob(f".*{EXPORT_TMP}"), *dest.glob(f"*/.*{EXPORT_TMP}")]:
    pid = tmp.name[:-len(EXPORT_TMP)].rsplit(".", 1)[-1]
    if pid.isdigit() and not _alive(int(pid)):
      if tmp.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
      else:
        tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's live process
    return True
  return True


def export_results(workdir: Path, dest: Path, out: dict, log: Callable[[str], None] = print) -> None:
  """Copies the grid's outputs and each run's small files to `dest` (e.g. results/<grid name>/):
  small enough for the repository, so results outlive the machine that made them. Every file
  lands atomically; exporting again (after each run) copies the same small files again."""
  dest.mkdir(parents=True, exist_ok=True)
  _remove_dead_exports(dest)
  # The runs first, then the tables: results/ never holds a table naming a run it lacks.
  for row in out["runs"]:
    for run in row["seeds"]:
      export_run(Path(run["workdir"]), dest / run["name"])
  for name in GRID_OUTPUTS:
    if (workdir / name).exists():
      _copy_atomic(workdir / name, dest / name)
  log(f"grid: small outputs copied to {dest}")


def _cell(row: dict, layer: str, metric: str) -> str:
  v = row["results"][layer][metric]
  return f"{v:.1f} ± {row['se'][layer][metric]:.1f}" if row.get("n_seeds", 1) > 1 else f"{v:.1f}"


def seeds_table(rows: list[dict], layers, metric: str) -> str:
  """Markdown: mean (± s.e. where a row has several seeds) per layer, best mean in bold."""
  best = {l: max((r["results"][l][metric] for r in rows if l in r["results"]), default=None)
          for l in layers}
  lines = ["| | seeds | " + " | ".join(layers) + " |", "|---|---:|" + "---:|" * len(layers)]
  for r in rows:
    cells = [("–" if l not in r["results"] else
              f"**{_cell(r, l, metric)}**" if r["results"][l][metric] == best[l] else _cell(r, l, metric))
             for l in layers]
    lines.append(f"| {r['label']} | {r.get('n_seeds', 1)} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def fraction_table(rows: list[dict], fractions: dict, layers, supervised: str, random: str) -> str:
  """Markdown: the fraction of supervision's gain each row recovers per layer."""
  labels = {r["name"]: r["label"] for r in rows}
  lines = ["| | " + " | ".join(layers) + " |", "|---|" + "---:|" * len(layers)]
  for name, f in fractions.items():
    lines.append(f"| {labels[name]} | " + " | ".join(f"{f[l]:.2f}" if l in f else "–" for l in layers)
                 + " |")
  return (f"Fraction of supervision's gain, (x − {labels[random]}) / ({labels[supervised]} − "
          f"{labels[random]}), of the top-1 means (1.00: as good as labels; 0: no better than random)"
          "\n\n" + "\n".join(lines) + "\n")


def write_grid_results(workdir: Path, config, rows: list[dict], failed: list[dict]) -> dict:
  """grid_results.{json,md}, grid_layers.png, conv1_filters.png, and where the grid has them
  grid_fraction.png (the fraction of supervision per layer), grid_curves.png (each row's
  seed-0 learning curve) and grid_gain.png (every seed's conv1 / conv2 curve against its own
  step-0 init), from the rows (`aggregate_row`)."""
  title = config.title or f"scale {config.scale}: linear probes on {config.probe}"
  fractions = supervision_fractions(rows, config.supervised_row, config.random_row)
  out = {"title": title, "scale": config.scale, "probe": config.probe, "layers": list(LAYER_NAMES),
         "runs": [{**{k: v for k, v in r.items() if k != "conv1"},
                   "baseline": row_baseline(r, config)} for r in rows], "failed": failed,
         "fraction_of_supervision": {"supervised_row": config.supervised_row,
                                     "random_row": config.random_row, "rows": fractions},
         "total_wall_s": sum(r["wall_s"] for r in rows)}
  report.write_json(workdir / "grid_results.json", out)
  md = [f"# {title}\n", "Top-1 accuracy (%) of linear probes on each layer: mean ± standard error "
        "over seeds where a row has several (best mean of each column in bold; – where a trunk "
        "has no such layer)\n", seeds_table(rows, LAYER_NAMES, "top1")]
  if fractions:
    md += ["", fraction_table(rows, fractions, LAYER_NAMES, config.supervised_row, config.random_row)]
  md += ["\nTop-5 accuracy (%)\n", seeds_table(rows, LAYER_NAMES, "top5"),
         "\nRuns\n", "| row | run (workdir) | steps | wall time | images/s |", "|---|---|---:|---:|---:|"]
  for r in rows:
    for run in r.get("seeds", [r]):
      ips = f"{run['images_per_s']:.0f}" if run["images_per_s"] else "–"
      md.append(f"| {r['label']} | {run['name']} | {run['steps']} | {report.hms(run['wall_s'])} | {ips} |")
  md.append(f"\nTotal wall time of the runs: {report.hms(out['total_wall_s'])}.")
  if failed:
    md.append("\nFailed (rerun the command to retry): "
              + "; ".join(f"{f['name']}: {f['error']}" for f in failed))
  (workdir / "grid_results.md").write_text("\n".join(md) + "\n")
  report.plot_layers_by_method(workdir / "grid_layers.png", out["runs"], LAYER_NAMES, title)
  report.plot_filters(workdir / "conv1_filters.png", {r["label"]: r["conv1"] for r in rows
                                                           if r["conv1"] is not None},
                      f"conv1 filters ({title})")
  if fractions:
    labels = {r["name"]: r["label"] for r in rows}
    report.plot_fractions(workdir / "grid_fraction.png",
                          {labels[n]: f for n, f in fractions.items()}, LAYER_NAMES,
                          f"fraction of supervision ({title})")
  # Rows that trained (a one-point curve, e.g. the random init's, is no curve to draw).
  run_curves = {r["label"]: r["seeds"][0]["curve"] for r in rows
                if r.get("seeds") and len(r["seeds"][0]["curve"]) > 1}
  if run_curves:
    curves.plot_curves(workdir / "grid_curves.png", run_curves, f"learning curves ({title})")
  # Every seed's conv1/conv2 gain over its own step-0 init (the BiGAN issue's target, +1 marked).
  gain_curves = {f"{r['label']} seed {run['seed']}": run["curve"] for r in rows
                 for run in r.get("seeds", []) if len(run.get("curve") or []) > 1
                 and run["curve"][0]["step"] == 0
                 and all(l in run["curve"][0] for l in ("conv1", "conv2"))}
  if gain_curves:
    curves.plot_gain_over_init(workdir / "grid_gain.png", gain_curves,
                               f"gain over each run's random init ({title})")
  return out


def main(argv) -> int:
  """`python -m mono_ssl.grid --config=configs/grid.py:... --workdir=DIR` (flags of mono_ssl.main)."""
  del argv
  from absl import flags, logging

  from mono_ssl import main as cli

  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO
  # The flag objects of mono_ssl.main: one --config/--workdir and one error style for both CLIs.
  if cli._WORKDIR.value is None:
    print("error: --workdir is required (a folder for the runs and the grid's results).", file=sys.stderr)
    return 2
  try:
    config = cli._CONFIG.value
    _ = config.runs
  except OSError as e:  # ml_collections defers a missing config file's error to first use
    print(f"error: {cli._one_line(str(e).splitlines()[-1])} (the --config file; run from the "
          "repository root or give its full path)", file=sys.stderr)
    return 2
  except AttributeError:
    print("error: --config is not a grid config (it has no `runs`); use configs/grid.py or "
          "configs/ablation.py, or python -m mono_ssl.main for a single run.", file=sys.stderr)
    return 2
  if not config.configs_dir:
    # The runs' config files sit beside the grid's (configs/): found so from any install,
    # a non-editable `pip install .` included, where no configs/ lies beside the package.
    from ml_collections import config_flags
    grid_file = config_flags.get_config_filename(flags.FLAGS["config"])
    config.configs_dir = str(Path(grid_file).resolve().parent)
  try:
    out = run_grid(config, cli._WORKDIR.value)
  except (UserInputError, TrainingDiverged) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 1 if out["failed"] else 0


def run() -> None:
  from absl import app, flags

  from mono_ssl import main as cli  # defines --config and --workdir, and their one-line errors

  flags.mark_flag_as_required("config")
  app.run(main, flags_parser=cli._parse_flags)


if __name__ == "__main__":
  from mono_ssl import xla_cpu
  xla_cpu.apply()  # faster XLA:CPU convolutions, set before JAX starts (mono_ssl/xla_cpu.py)
  run()
