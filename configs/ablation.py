r"""The paper's two other findings: what each augmentation contributes, and which image.

Single-image RotNet at the faithful miniature (scale=mini: 48 px patches, the
RotNet config's own 1,500 steps, probes on Tiny-ImageNet), through the grid
runner. Run from the repository root, in four commands of three new runs each
(16 min a run alone on the 2-core VM of 2026-12-04, 33-40 min on slower ones: at
most 2 h a command; rerun any command to resume: finished runs are read, not
retrained). Restore the baselines and the full recipe's three seeds from
results/mini_tiny first (docs/ablation.md). Each command names every row before it
too, so its export holds the whole table so far:

  python -m mono_ssl.grid --config=configs/ablation.py --workdir=runs/ablation \
      --config.results_dir=results/ablation \
      --config.only=supervised,random,full_recipe,no_aug,no_rrc
  ... --config.only=supervised,random,full_recipe,no_aug,no_rrc,rrc_min_0.2,rrc_min_0.02,no_affine
  ... --config.only=supervised,random,full_recipe,no_aug,no_rrc,rrc_min_0.2,rrc_min_0.02,no_affine,no_jitter,no_initial_crop
  ... (no --config.only: every row, adding image_dragonfly, image_seeding, image_brushes)
  python -m mono_ssl.ablation results/ablation   # the two tables and images_conv1.png

Arguments: scale=mini (default)|cpu|paper, probe=tiny_imagenet (default)|cifar10|...
(as configs/grid.py). Rows:
- supervised, random: configs/grid.py's baselines (3 seeds each), for the
  fraction of supervision's gain;
- full_recipe: the authors' generator (min area 0.002), 3 seeds (the headline
  grid's rotnet_single, restored; seed 1 kept its conv1 filters for images_conv1.png);
- no_aug: no augmentation at all: a fixed (centre) initial crop, no
  random-resized crop, no rotation/shear, no colour jitter; only the method's
  own crop and flip vary (2 seeds);
- one switch off per row: no_rrc (every patch sees the initial crop at one
  scale), no_affine, no_jitter (2 seeds), no_initial_crop (crops of the whole image);
- the random-resized crop's minimum area at 0.02 and 0.2 (0.002 is the full recipe);
- image_<name>: the full recipe on another of the ten photographs (IMAGES),
  loaded at the default image's 1024 px long side so only the content changes.
At scale=cpu the RotNet rows run configs/grid.py's CPU step count.
"""
from mono_ssl import config_lib, grid

# (run name, row label, overrides of the full recipe)
ABLATIONS = (
    ("no_aug", "no augmentation (fixed crop; method's crop+flip only)",
     {"aug.initial_crop_fixed": True, "aug.rrc": False, "aug.affine": False,
      "aug.jitter_prob": 0.0}),
    ("no_rrc", "no random-resized crop (fixed scale)", {"aug.rrc": False}),
    ("rrc_min_0.2", "random-resized crop, min area 0.2", {"aug.rrc_scale": (0.2, 1.0)}),
    ("rrc_min_0.02", "random-resized crop, min area 0.02", {"aug.rrc_scale": (0.02, 1.0)}),
    ("no_affine", "no rotation/shear", {"aug.affine": False}),
    ("no_jitter", "no colour jitter", {"aug.jitter_prob": 0.0}),
    ("no_initial_crop", "no initial crop", {"aug.initial_crop": False}),
)
# Three of the ten photographs, chosen for contrast by edge density (the fraction of pixels
# whose gradient magnitude exceeds 0.05 at a 512 px short side; docs/ablation.md): the default
# (life, 0.56) is the densest, so the next densest, the sparsest (the bokeh photograph) and a
# texture-like one.
IMAGES = (
    ("image_dragonfly", "image: Dragonfly (foliage, dense)", "Dragonfly_by_Bolly.jpg"),
    ("image_seeding", "image: seeding (bokeh, sparse)", "seeding_by_Clements_Engelhardt.jpg"),
    ("image_brushes", "image: Picture_1A (brushes, texture)", "Picture_1A_by_freespace.jpg"),
)
DEFAULT_IMAGE_SIDE = 1024  # mono_ssl/assets/life_1024.jpg's long side
# no_jitter has a second seed: with one it had the largest one-switch drop (0.5-0.6 at conv2-conv5).
SEEDS = {"supervised": 3, "random": 3, "full_recipe": 3, "no_aug": 2, "no_jitter": 2}


def get_config(arg: str | None = None):
  args = config_lib.parse_arg(arg, scale="mini", probe="tiny_imagenet")
  base = grid.load_config_file(grid.CONFIGS_DIR / "grid.py", f"scale={args.scale},probe={args.probe}")
  by_name = {r["name"]: r for r in base.runs}
  steps = dict(by_name["rotnet_single"]["overrides"])  # the grid's RotNet steps (cpu only)

  def spec(name, label, overrides):
    return grid.run_spec(name, "rotnet", "regime=single", label, {**steps, **overrides},
                         seeds=SEEDS.get(name, 1))

  runs = [dict(by_name[n], seeds=SEEDS[n]) for n in ("supervised", "random")]
  runs.append(spec("full_recipe", "full recipe (min area 0.002)", {}))
  runs += [spec(name, label, overrides) for name, label, overrides in ABLATIONS]
  runs += [spec(name, label, {"data.images": f"deca:{file}", "data.max_side": DEFAULT_IMAGE_SIDE})
           for name, label, file in IMAGES]
  return grid.grid_config(runs, args.scale, args.probe,
                          title=f"Augmentation ablation and which image, single-image RotNet, "
                                f"scale {args.scale}: linear probes on {args.probe}")
