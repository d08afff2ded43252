#!/usr/bin/env python3
"""Mutation evidence for issue 6: every robustness test can fail.

For each mutation below: copy the repository (mono_ssl/, tests/, configs/, notebooks/, benchmarks/,
pyproject.toml) into a temporary folder, apply ONE exact textual replacement
`old -> new` in one file, run the pytest node ids that should catch it
(`-x -q`, with a timeout) and record

  caught  -- the tests failed (or errored / timed out) on the broken code,
  MISSED  -- the tests passed on the broken code: the tests are too weak.

Before any mutant runs, the selected tests are run once on an unmutated copy
of the same snapshot and must pass; otherwise the evidence is void (exit 2).
Every `old` must occur exactly once in its file (checked before anything
runs), so the list fails loudly instead of silently testing nothing when the
code changes.

Prints a Markdown table (mutation | file | tests | result | seconds) and exits
non-zero if any mutation is MISSED.

  .venv/bin/python .ci/mutants.py                 # everything (~40 min on 2 busy cores: baseline 14, mutants 26)
  .venv/bin/python .ci/mutants.py --list          # names, files, tests; checks every `old`
  .venv/bin/python .ci/mutants.py --only pmap     # the mutations whose name contains 'pmap'

The shared data (../shared, see mono_ssl/paths.py) stays where it is: the
child processes get MONO_SSL_SHARED pointing at it.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COPIED = ("mono_ssl", "tests", "configs", "notebooks", "benchmarks", "pyproject.toml")


@dataclasses.dataclass(frozen=True)
class Mutation:
  name: str
  file: str            # relative to the repository root
  old: str             # must occur exactly once in `file`
  new: str
  tests: tuple[str, ...]  # pytest node ids, relative to the repository root
  what: str = ""       # the bug this stands for (shown by --list)


def M(name, file, old, new, tests, what=""):
  return Mutation(name, file, old, new, (tests,) if isinstance(tests, str) else tuple(tests), what)


# Test node ids, shortened.
BAD = "tests/test_bad_inputs.py::"
FAULTS = "tests/test_faults.py::"
SCALE = "tests/test_scaleout.py::"
SCALE_EQ = SCALE + "test_same_parameters_on_one_two_and_eight_devices"
NEG = BAD + "test_cli_negative_or_zero_sizes"
DON = "tests/test_bigan_donahue.py::"
KILLED_GRID = "tests/test_grid.py::test_a_killed_grid_leaves_its_finished_runs_and_tables_in_results_dir_whole"

MUTATIONS: list[Mutation] = [
    # --- 1/2/8 devices under jit (one child process builds all 9 runs) -------------------------
    M("scaleout-batch-replicated", "mono_ssl/sharding.py",
      "  return NamedSharding(mesh, P(DATA_AXIS))",
      "  return NamedSharding(mesh, P())",
      SCALE_EQ + "[rotnet]",
      "the 'batch-sharded' spec replicates the batch: every device computes the whole batch"),
    M("scaleout-deepcluster-init-per-device-count", "mono_ssl/train_state.py",
      "  return create_sharded(init, key, mesh)",
      "  return create_sharded(init, jax.random.fold_in(key, mesh.size), mesh)",
      SCALE_EQ + "[deepcluster]",
      "the initial parameters depend on the number of devices (key split per device)"),
    M("scaleout-bigan-init-per-device-count", "mono_ssl/methods/bigan.py",
      "  return create_sharded(init, key, mesh)",
      "  return create_sharded(init, jax.random.fold_in(key, mesh.size), mesh)",
      SCALE_EQ + "[bigan]",
      "the initial E/G/D depend on the number of devices (key split per device)"),
    # --- each step under pmap(axis_name) matches jit -----------------------------------------
    M("pmap-rotnet-grads-not-averaged", "mono_ssl/train_state.py",
      "    grads, loss, accuracy = jax.lax.pmean((grads, loss, accuracy), axis_name)",
      "    loss, accuracy = jax.lax.pmean((loss, accuracy), axis_name)",
      "tests/test_rotnet.py::test_step_under_pmap_with_axis_name_matches_jit",
      "classification step drops the gradient pmean: each device steps on its own shard"),
    M("pmap-rotnet-conv-bn-per-device", "mono_ssl/models/alexnet.py",
      "                       axis_name=self.bn_axis_name, dtype=self.dtype,\n                       name=f\"{name}_bn\")(x)",
      "                       axis_name=None, dtype=self.dtype,\n                       name=f\"{name}_bn\")(x)",
      "tests/test_rotnet.py::test_step_under_pmap_with_axis_name_matches_jit",
      "conv BatchNorm statistics per device instead of over the pmap axis"),
    M("pmap-deepcluster-fc-bn-per-device", "mono_ssl/models/alexnet.py",
      '                       axis_name=self.bn_axis_name, dtype=self.dtype, name=f"fc{i + 6}_bn")(x)',
      '                       axis_name=None, dtype=self.dtype, name=f"fc{i + 6}_bn")(x)',
      SCALE + "test_deepcluster_step_under_pmap_with_axis_name_matches_jit",
      "fc BatchNorm statistics per device (the layer DeepCluster clusters)"),
    M("pmap-bigan-grads-not-averaged", "mono_ssl/methods/bigan.py",
      "      d_grads, ge_grads, metrics = jax.lax.pmean((d_grads, ge_grads, metrics), axis_name)",
      "      metrics = jax.lax.pmean(metrics, axis_name)",
      "tests/test_bigan.py::test_step_under_pmap_with_axis_name_matches_jit",
      "BiGAN step drops the D and G/E gradient pmean"),
    M("grid-restored-run-retrained", "mono_ssl/grid.py",
      '  if cfg.method != "scatnet" and not (workdir / "checkpoints").is_dir():\n    return None\n',
      '',
      "tests/test_grid.py::test_tiny_paper_scale_grid_writes_every_output_and_a_second_run_reruns_nothing",
      "a run restored from results/ without checkpoints is retrained to draw its conv1 filters"),
    M("grid-conv1-filters-not-exported", "mono_ssl/grid.py",
      '"config.json", "conv1_filters.npy", "grid_run.json",',
      '"config.json", "grid_run.json",',
      "tests/test_grid.py::test_tiny_paper_scale_grid_writes_every_output_and_a_second_run_reruns_nothing",
      "the runs' conv1 filters are not kept with their small files"),
    # Issue 41: a killed grid keeps its finished runs (and a running run's curve) in results_dir.
    M("grid-exports-only-at-the-end", "mono_ssl/grid.py",
      "    if dest and ran and i < len(units):",
      "    if False:",
      KILLED_GRID,
      "the grid copies its runs to results_dir only when the whole grid ends"),
    M("grid-curve-points-not-exported", "mono_ssl/grid.py",
      "(lambda step, sub=sub, name=name: export_run(sub, dest / name)) if dest else None))",
      "None))",
      KILLED_GRID,
      "a running run's learning curve reaches results_dir only when the run ends"),
    M("export-leaves-dead-temp-copies", "mono_ssl/grid.py",
      "    if pid.isdigit() and not _alive(int(pid)):",
      "    if False:",
      "tests/test_grid.py::test_export_keeps_bigans_sample_grids_its_last_reconstruction_and_no_checkpoints",
      "an export killed mid-copy leaves its hidden temp copy in results/ for good (and in git add)"),
    M("grid-seeded-rows-ignored", "configs/grid.py",
      '      r["seeds"] = args.seeds if r["name"] in names else 1',
      '      r["seeds"] = 0',
      "tests/test_configs.py::test_grid_seeded_rows_run_the_seeds_and_the_others_one",
      "seeded= gives every row the grid's seeds"),
    # --- DeepCluster as the original runs it ------------------------------------------------------
    M("deepcluster-one-view-per-epoch", "mono_ssl/methods/deepcluster.py",
      "  if fresh_views:\n    view = 1 + jax.random",
      "  if False:\n    view = 1 + jax.random",
      "tests/test_deepcluster.py::test_every_draw_is_a_fresh_view_with_the_same_pseudo_label",
      "every draw of a patch within an epoch is the same view"),
    M("deepcluster-clusters-after-relu", "mono_ssl/methods/deepcluster.py",
      '  return f"fc{last}_pre" if tap == "fc_pre_relu" else f"fc{last}"',
      '  return f"fc{last}"',
      "tests/test_deepcluster.py::test_clustered_features_are_fc7_before_its_relu_in_a_head_without_batchnorm",
      "fc7 is clustered after its ReLU"),
    M("deepcluster-head-with-batchnorm", "configs/deepcluster.py",
      "      head_bn=False,",
      "      head_bn=True,",
      "tests/test_deepcluster.py::test_clustered_features_are_fc7_before_its_relu_in_a_head_without_batchnorm",
      "the default head has BatchNorm (not the original's)"),
    M("deepcluster-kmeans-plus-plus", "mono_ssl/methods/deepcluster.py",
      "                init=dc.kmeans_init)",
      '                init="kmeans++")',
      "tests/test_deepcluster.py::test_clustering_is_faiss_random_init_kmeans_reproducible_by_seed",
      "k-means starts from k-means++, not faiss' random points"),
    M("deepcluster-top-layer-momentum", "mono_ssl/methods/deepcluster.py",
      "  top_tx = sgd(schedule, float(config.deepcluster.top_momentum), False, tc.weight_decay)",
      "  top_tx = sgd(schedule, tc.momentum, False, tc.weight_decay)",
      "tests/test_deepcluster.py::test_top_layer_sgd_has_no_momentum_and_is_reset_at_each_clustering",
      "the top layer shares the trunk's momentum"),
    M("deepcluster-sobel-x-twice", "mono_ssl/models/alexnet.py",
      "  kernel = jnp.stack([kx, kx.T], axis=-1)",
      "  kernel = jnp.stack([kx, kx], axis=-1)",
      "tests/test_deepcluster.py::test_sobel_front_end_matches_numpy",
      "the Sobel front end's y channel is its x response"),
    M("deepcluster-mini-too-few-clusterings", "configs/deepcluster.py",
      "    config.data.dataset_size = 5120 if mini else 50_000",
      "    config.data.dataset_size = 12800 if mini else 50_000",
      "tests/test_deepcluster.py::test_mini_default_run_reclusters_at_least_40_times",
      "the mini run re-clusters 16 times"),
    M("deepcluster-no-clusters-figure", "mono_ssl/methods/deepcluster.py",
      "    plot_clusters(Path(ctx[\"workdir\"]) / CLUSTERS_PLOT, history, sizes)",
      "    pass",
      "tests/test_deepcluster.py::test_reclusters_every_epoch_and_trains_on_pseudo_labels",
      "clusters.png is not written"),
    M("bigan-no-gan-curves", "mono_ssl/methods/bigan.py",
      "  plot_gan_curves(workdir / GAN_CURVES, workdir / \"metrics.jsonl\")",
      "  pass",
      "tests/test_bigan.py::test_end_to_end_writes_grids_and_probes_then_probe_only_run_restores_it",
      "gan_curves.png (D's accuracy, the losses) is not written"),
    M("bf16-computes-in-float32", "mono_ssl/models/alexnet.py",
      "  return jnp.dtype(name)",
      '  return jnp.dtype("float32")',
      "tests/test_mixed_precision.py::test_bf16_rotnet_step_is_near_the_f32_step_and_keeps_float32_state",
      "model.dtype=bfloat16 silently computes in float32"),
    M("bf16-batchstatnorm-statistics-in-bf16", "mono_ssl/models/bigan.py",
      "    dtype, x = x.dtype, x.astype(jnp.float32)  # statistics in float32 (bf16 compute too)",
      "    dtype = x.dtype",
      "tests/test_bigan_donahue.py::test_batch_stat_norm_matches_numpy",
      "D's batch statistics are reduced in the compute dtype"),
    M("import-sets-xla-flags", "mono_ssl/__init__.py",
      '__version__ = "0.1.0"',
      '__version__ = "0.1.0"\nfrom mono_ssl import xla_cpu as _xla_cpu\n_xla_cpu.apply()',
      "tests/test_xla_cpu.py::test_importing_the_package_changes_no_process_wide_setting",
      "importing the library rewrites XLA_FLAGS for the user's whole program"),
    M("main-without-the-xla-flag", "mono_ssl/main.py",
      "  xla_cpu.apply()  # faster XLA:CPU convolutions",
      "  pass  # faster XLA:CPU convolutions",
      "tests/test_xla_cpu.py::test_entry_points_apply_the_flag_before_they_run[mono_ssl/main.py]",
      "python -m mono_ssl.main runs without the measured faster convolutions"),
    M("deepcluster-hook-not-declared", "mono_ssl/methods/deepcluster.py",
      "HOOKS = Hooks(make_sampler=make_sampler, make_batch=make_batch, before_step=before_step)",
      "HOOKS = Hooks(make_sampler=make_sampler, make_batch=make_batch)",
      "tests/test_methods_protocol.py::test_every_method_has_the_functions_and_declares_each_hook_it_defines",
      "DeepCluster's re-clustering hook is defined but not declared, so the loop never calls it"),
    M("eta-counts-the-compile-step", "mono_ssl/train.py",
      "  eta = (total - done) * (now - t_first) / max(done - start - 1, 1)",
      "  eta = (total - done) * (now - t_first) / max(done - start, 1)",
      "tests/test_train.py::test_eta_leaves_out_the_first_step_which_compiles",
      "the ETA extrapolates from a count that includes the compiling first step"),
    M("no-args-config-lists-no-keys", "mono_ssl/config_lib.py",
      'if defaults else "this config takes no arguments."',
      'if defaults else "known: ."',
      "tests/test_configs.py::test_a_config_without_arguments_says_so",
      "a config without arguments answers an argument with 'known: .'"),
    # --- Donahue's BiGAN (recipe=donahue) ------------------------------------------------------
    M("donahue-d-one-bn-batch", "mono_ssl/methods/bigan.py",
      "  if separate:\n    return (disc_apply(",
      "  if False:\n    return (disc_apply(",
      DON + "test_real_scores_do_not_depend_on_the_generated_half_when_batches_are_separate",
      "real and generated pairs share D's batch statistics"),
    M("donahue-space-to-depth-taps-swapped", "mono_ssl/models/bigan.py",
      "k.reshape(3, 2, 3, 2, c, -1).transpose(0, 2, 1, 3, 4, 5)",
      "k.reshape(3, 2, 3, 2, c, -1).transpose(0, 2, 3, 1, 4, 5)",
      DON + "test_space_to_depth_conv_equals_the_5x5_stride_2_conv_and_its_gradients",
      "D's fast 5x5 stride-2 conv reads the kernel's sub-pixel taps in the wrong order"),
    M("donahue-e-head-init-not-fan-in-scaled", "mono_ssl/models/alexnet.py",
      "      std *= math.sqrt(self.classifier_init_fan_in / x.shape[-1])",
      "      std *= 1.0",
      DON + "test_encoder_codes_start_with_donahues_spread_near_the_priors",
      "E's codes start 5x narrower than the prior, so D wins on z alone"),
    M("donahue-d-sees-imagenet-normalised-images", "mono_ssl/methods/bigan.py",
      '  if disc_input == "unit":\n    return 2.0 * images - 1.0',
      '  if disc_input == "unit":\n    return normalise(images)',
      DON + "test_d_reads_images_in_minus_one_to_one_and_the_step_passes_them",
      "disc_input=unit still hands D ImageNet-normalised images"),
    M("donahue-g-z-only-at-the-input", "mono_ssl/models/bigan.py",
      "      if self.z_every_layer:\n        x = x + _z_bias(",
      "      if False:\n        x = x + _z_bias(",
      DON + "test_g_takes_z_at_every_hidden_layer_as_a_per_channel_bias",
      "G ignores gen_z_every_layer: z enters only its input layer"),
    M("donahue-bn-not-centred", "mono_ssl/models/bigan.py",
      "    var = jnp.maximum(mean_sq - jnp.square(mean), 0.0)",
      "    var = mean_sq",
      DON + "test_batch_stat_norm_matches_numpy",
      "D's batch norm divides by the second moment, not the variance"),
    M("donahue-z-enters-conv1", "mono_ssl/models/bigan.py",
      "      if i:\n        h = h + _z_bias(z, ch",
      "      if True:\n        h = h + _z_bias(z, ch",
      DON + "test_d_is_five_by_five_stride_two_with_z_entering_from_conv2",
      "z conditions D's first conv too (and batch norm on it)"),
    M("donahue-d-relu", "mono_ssl/models/bigan.py",
      "      h = nn.leaky_relu(h, 0.2)\n    h = h.reshape((h.shape[0], -1))\n    return nn.Dense(1, use_bias=False",
      "      h = nn.relu(h)\n    h = h.reshape((h.shape[0], -1))\n    return nn.Dense(1, use_bias=False",
      DON + "test_d_nonlinearity_is_leaky_relu_0_2",
      "D's nonlinearity is a ReLU, not LeakyReLU 0.2"),
    M("donahue-d-bn-per-device-under-pmap", "mono_ssl/models/bigan.py",
      "bn=bool(b.disc_bn), axis_name=axis_name,",
      "bn=bool(b.disc_bn), axis_name=None,",
      DON + "test_donahue_step_under_pmap_with_axis_name_matches_jit",
      "under pmap D's batch statistics are each device's own"),
    M("donahue-gains-decayed", "mono_ssl/methods/bigan.py",
      '    return not (keys[-1] == "scale"',
      '    return True or (keys[-1] == "scale"',
      DON + "test_gains_are_not_decayed_and_everything_else_is",
      "--no_decay_gain ignored: BatchNorm gains get L2 decay"),
    M("donahue-codes-tanh-not-2-sigmoid-minus-1", "mono_ssl/methods/bigan.py",
      "  return 0.5 * logits if half else logits",
      "  return logits",
      DON + "test_encoder_head_is_one_bias_free_map_to_z_squashed_as_2_sigmoid_minus_1",
      "E's linear head is squashed by tanh(a), not 2 sigmoid(a) - 1"),
    M("donahue-losses-summed", "mono_ssl/methods/bigan.py",
      "  loss_scale = float(options.loss_scale)",
      "  loss_scale = 1.0",
      DON + "test_first_step_losses_are_log_2_as_donahues_logged_0_6932",
      "each side's loss is the sum, not the mean, of its real and fake terms"),
    M("pmap-bigan-same-z-on-every-device", "mono_ssl/methods/bigan.py",
      "      z = jax.lax.dynamic_slice_in_dim(z_all, index * n, n)",
      "      z = z_all[:n]",
      "tests/test_bigan.py::test_step_under_pmap_with_axis_name_matches_jit",
      "every device takes the first slice of z instead of its own"),
    M("multihost-every-process-feeds-the-same-share", "mono_ssl/train.py",
      "    indices = indices_for(state, t)\n",
      "    indices = jax.make_array_from_process_local_data(bsh, np.asarray(__import__("
      "\"jax.experimental.multihost_utils\", fromlist=[\"_\"]).process_allgather("
      "indices_for(state, t), tiled=True))[: batch // jax.process_count()])\n",
      "tests/test_multihost.py::test_two_processes_train_to_identical_parameters",
      "each process feeds rows [0, B/P) of the global batch (a no-op with one process)"),
    M("multihost-every-process-writes-metrics", "mono_ssl/train.py",
      "    self.enabled = shd.is_chief()  # one metrics file per run, not per process",
      "    self.enabled = True  # one metrics file per run, not per process",
      "tests/test_multihost.py::test_two_processes_train_to_identical_parameters",
      "chief-only writes: every process appends to metrics.jsonl"),
    # --- SIGKILL + restart ---------------------------------------------------------------------
    M("resume-data-key-from-restart", "mono_ssl/train.py",
      "sample(st, jax.random.fold_in(data_key, t), batch)",
      "sample(st, jax.random.fold_in(data_key, t - start), batch)",
      FAULTS + "test_sigkill_mid_training_then_restart_is_bit_identical",
      "data position not restored: batches counted from the restart, not from step 0"),
    M("resume-step-key-from-restart", "mono_ssl/train.py",
      "  key_for = jax.jit(lambda t: jax.random.fold_in(step_key, t))",
      "  key_for = jax.jit(lambda t: jax.random.fold_in(step_key, t - start))",
      FAULTS + "test_sigkill_mid_training_then_restart_is_bit_identical",
      "the step key is not fold_in(step): counted from the restart"),
    # --- damaged checkpoints -------------------------------------------------------------------
    M("checkpoint-no-fallback", "mono_ssl/checkpoint.py",
      "    steps = [step] if step is not None else list(reversed(self.all_steps()))",
      "    steps = [step] if step is not None else list(reversed(self.all_steps()))[:1]",
      FAULTS + "test_damaged_newest_checkpoint_falls_back_to_the_previous_one[truncate]",
      "restore tries the newest checkpoint only"),
    M("checkpoint-damaged-one-deleted", "mono_ssl/checkpoint.py",
      "          src.rename(dst)",
      '          __import__("shutil").rmtree(src)',
      FAULTS + "test_damaged_newest_checkpoint_falls_back_to_the_previous_one[garbage]",
      "the damaged checkpoint is deleted instead of kept aside as <step>.damaged"),
    M("checkpoint-all-damaged-silent-restart", "mono_ssl/checkpoint.py",
      '    raise UserInputError(\n        f"no usable checkpoint in {self.directory}',
      '    return state  # start over\n    raise UserInputError(\n'
      '        f"no usable checkpoint in {self.directory}',
      FAULTS + "test_every_checkpoint_damaged_gives_a_clear_error",
      "every checkpoint damaged: silently start from scratch instead of a clear error"),
    M("checkpoint-mismatch-hides-params", "mono_ssl/checkpoint.py",
      "if saved[k] != wanted[k]]",
      'if saved[k] != wanted[k] and not k.startswith("params")]',
      FAULTS + "test_checkpoint_of_a_different_model_is_refused_naming_the_fields",
      "_differences leaves the parameter fields out (names only optimiser/BN slots)"),
    M("init-from-mismatch-reported-generically", "mono_ssl/train.py",
      "  except CheckpointMismatch as e:",
      "  except KeyError as e:",
      FAULTS + "test_init_from_a_different_model_is_refused_naming_the_fields",
      "init_from of another model: a generic 'no checkpoint fits' without the fields"),
    # --- workdir checks ------------------------------------------------------------------------
    M("workdir-unwritable-not-caught", "mono_ssl/workdir.py",
      "  except OSError as e:\n    raise UserInputError(f\"workdir {workdir} is not writable",
      "  except PermissionError as e:\n    raise UserInputError(f\"workdir {workdir} is not writable",
      FAULTS + "test_unwritable_workdir_is_refused_before_training",
      "only PermissionError is turned into a clear refusal"),
    M("workdir-free-space-in-kib", "mono_ssl/workdir.py",
      "  if free < 64 * 2**20:",
      "  if free < 64 * 2**10:",
      FAULTS + "test_full_disk_is_refused_before_training",
      "free-space threshold 64 KiB instead of 64 MiB: a full disk is not refused"),
    M("workdir-extends-across-lr-boundaries", "mono_ssl/workdir.py",
      '  if old.get("train.lr_boundaries"):',
      '  if False and old.get("train.lr_boundaries"):',
      "tests/test_train.py::test_a_run_whose_schedule_scales_with_its_length_is_not_extended",
      "a step schedule (boundaries: fractions of the run) is extended to another schedule"),
    M("workdir-extension-shortens", "mono_ssl/workdir.py",
      "isinstance(steps_new, int) and steps_new > steps_old):",
      "isinstance(steps_new, int) and steps_new != steps_old):",
      "tests/test_train.py::test_a_run_whose_schedule_scales_with_its_length_is_not_extended",
      "a shorter train.num_steps is taken as an extension"),
    M("workdir-extension-keeps-old-probes", "mono_ssl/workdir.py",
      '        if not differ and any(workdir.glob("probe_*.json")):',
      '        if False:',
      "tests/test_train.py::test_a_longer_run_of_a_length_free_schedule_extends_a_finished_one",
      "an extended run keeps the shorter run's probe_results.json: the grid reads it as finished"),
    M("workdir-extends-across-e-start", "mono_ssl/workdir.py",
      '  if old.get("method") == "bigan" and old.get("bigan.e_start"):',
      '  if False:',
      "tests/test_bigan.py::test_a_run_whose_e_start_is_a_fraction_of_its_length_is_not_extended",
      "a BiGAN whose E starts at a fraction of the run is extended (E would start later)"),
    M("export-latest-recon-by-name", "mono_ssl/grid.py",
      '  files += sorted(run_dir.glob("recon_*.png"), key=step)[-1:]',
      '  files += sorted(run_dir.glob("recon_*.png"))[-1:]',
      "tests/test_grid.py::test_export_keeps_bigans_sample_grids_its_last_reconstruction_and_no_checkpoints",
      "the 'latest' reconstruction grid is the last by name (recon_5000 after recon_20000)"),
    M("grid-only-seed-run-runs-every-seed", "mono_ssl/grid.py",
      "  if not only or spec[\"name\"] in only:\n    return runs\n",
      "  if True:\n    return runs\n",
      "tests/test_grid.py::test_only_names_one_seed_of_a_row_by_its_seed_run",
      "only=<row>_seed1 runs every seed of the row, not the one named"),
    M("grid-only-seed-run-refused", "mono_ssl/grid.py",
      "  unknown = [n for n in only if n not in names and n not in seeds]",
      "  unknown = [n for n in only if n not in names]",
      "tests/test_grid.py::test_only_names_one_seed_of_a_row_by_its_seed_run",
      "a seed's run name in only= is refused as an unknown run"),
    M("curve-gain-any-layer-clears", "mono_ssl/curves.py",
      "                if all(l in q and q[l][metric] - init[l] >= margin for l in layers)), None)",
      "                if any(l in q and q[l][metric] - init[l] >= margin for l in layers)), None)",
      "tests/test_results_doc.py::test_curve_gain_finds_the_first_step_both_layers_clear_their_init",
      "the BiGAN target's first step counts a step where only conv1 clears its init"),
    M("curve-gain-unsorted-init", "mono_ssl/curves.py",
      '  points = sorted(points, key=lambda q: q["step"])\n  if not points or',
      "  if not points or",
      "tests/test_results_doc.py::test_curve_gain_finds_the_first_step_both_layers_clear_their_init",
      "the random init is the file's first line, not the step-0 point"),
    M("sobel-filters-blue-at-global-min", "mono_ssl/report.py",
      "w.min(axis=(0, 1, 2), keepdims=True)",
      "np.full((1, 1, 1, w.shape[3]), w.min())",
      "tests/test_report.py::test_tile_filters_shows_rgb_grey_and_sobel_kernels",
      "a Sobel trunk's filters are scaled by the kernel's minimum, not each filter's own"),
    M("gan-game-stretch-off-by-one", "mono_ssl/results_doc.py",
      'bins.setdefault((r["step"] - 1) // stretch, [])',
      'bins.setdefault(r["step"] // stretch, [])',
      "tests/test_results_doc.py::test_gan_game_means_each_stretch_of_a_bigan_runs_metrics",
      "step 2,500 is counted in the 2.5k-5k stretch of D's game table"),
    M("gain-cli-takes-untrained-run", "mono_ssl/curves.py",
      '    if len(points) < 2 or points[0]["step"] != 0:',
      '    if not points or points[0]["step"] != 0:',
      "tests/test_curves.py::test_gain_cli_draws_runs_of_several_grids_and_refuses_bad_input_in_one_line",
      "an untrained run (one step-0 point) is drawn as a curve instead of refused"),
    M("grid-gain-figure-not-exported", "mono_ssl/grid.py",
      '"grid_curves.png", "grid_gain.png")',
      '"grid_curves.png")',
      "tests/test_grid.py::test_seeds_are_averaged_with_standard_errors_and_fractions_and_results_exported",
      "grid_gain.png (each seed's gain over its init) is not kept with the results"),
    M("gain-series-init-is-first-line", "mono_ssl/curves.py",
      '  points = sorted((p for p in points if layer in p), key=lambda q: q["step"])',
      '  points = [p for p in points if layer in p]',
      "tests/test_curves.py::test_gain_over_init_series_and_figure",
      "the gain figure's init is the file's first line, not the step-0 point"),
    M("export-drops-gan-curves", "mono_ssl/grid.py",
      '               "gan_curves.png")  # BiGAN',
      '               )  # BiGAN',
      "tests/test_grid.py::test_export_keeps_bigans_sample_grids_its_last_reconstruction_and_no_checkpoints",
      "BiGAN's gan_curves.png is not kept with the results"),
    M("api-bigan-options-ignore-disc-input", "mono_ssl/methods/bigan.py",
      "               disc_input=b.disc_input,\n",
      '               disc_input="imagenet",\n',
      "tests/test_api.py::test_bigan_from_plain_arguments_is_the_config_paths_bigan",
      "the config layer's BiGAN step drops bigan.disc_input: the two paths part"),
    M("api-install-clustering-keeps-old-table", "mono_ssl/methods/deepcluster.py",
      "  state = _reinit_classifier(state.replace(**table), key)",
      "  state = _reinit_classifier(state, key)",
      "tests/test_api.py::test_deepcluster_from_plain_arguments_installs_a_clustering_and_trains_on_it",
      "install_clustering resets the top layer but keeps the old pseudo-labels"),
    M("api-install-clustering-any-size", "mono_ssl/methods/deepcluster.py",
      "  if clustering.assignments.shape != (n,) or",
      "  if False and clustering.assignments.shape != (n,) or",
      "tests/test_api.py::test_deepcluster_from_plain_arguments_installs_a_clustering_and_trains_on_it",
      "a clustering of another size is installed (a deep JAX error later, or silent garbage)"),
    M("notebook-setup-drift-unseen", "notebooks/sync_setup.py",
      "  return [p for p in sorted(folder.glob(\"*.ipynb\")) if _first_code_cell(p)[1] != want]",
      "  return []",
      "tests/test_notebooks.py::test_setup_cell_of_every_notebook_is_notebooks_setup_cell_py",
      "a notebook whose setup cell drifted from notebooks/setup_cell.py is not found"),
    M("workdir-model-fields-resumable", "mono_ssl/workdir.py",
      '                    "distributed.", "probe.curve_", "probe.val_fraction")',
      '                    "distributed.", "probe.curve_", "probe.val_fraction", "model.")',
      "tests/test_train.py::test_workdir_of_another_experiment_is_refused_and_left_intact",
      "a workdir of another model is taken over (model.* treated as resumable)"),
    M("workdir-refusal-names-one-field", "mono_ssl/workdir.py",
      "for k in differ[:6])\n      raise UserInputError(",
      "for k in differ[:1])\n      raise UserInputError(",
      BAD + "test_cli_workdir_of_another_experiment_is_refused",
      "the refusal names only the first differing field"),
    M("workdir-refused-config-locks-it", "mono_ssl/workdir.py",
      "  if saved.exists() and _holds_outputs(workdir):",
      "  if saved.exists():",
      BAD + "test_a_refused_config_does_not_lock_the_workdir",
      "the config.json of a refused run binds the workdir"),
    M("workdir-rerun-clears-results-first", "mono_ssl/train.py",
      "  workdir = Path(workdir)\n  check_workdir(config, workdir, log)",
      "  workdir = Path(workdir)\n  (workdir / \"probe_results.json\").unlink(missing_ok=True)\n"
      "  check_workdir(config, workdir, log)",
      FAULTS + "test_results_already_written_survive_a_refused_rerun",
      "a rerun clears old results before the workdir check refuses it"),
    # --- bad images ----------------------------------------------------------------------------
    M("image-missing-plain-exception", "mono_ssl/images.py",
      '  raise UserInputError(f"image path not found: {_show(p)}; {_SPEC_HELP}")',
      "  raise FileNotFoundError(p)",
      BAD + "test_missing_image",
      "a missing image path escapes as FileNotFoundError (traceback)"),
    M("image-zero-byte-unnamed", "mono_ssl/images.py",
      '        f"image file {path} is empty (0 bytes); replace it with a valid"',
      '        f"image file is empty (0 bytes); replace it with a valid"',
      BAD + "test_unreadable_image[]",
      "the zero-byte error does not name the file"),
    M("image-decode-errors-not-wrapped", "mono_ssl/images.py",
      "  except Exception as e:  # Pillow raises many types for bad data.",
      "  except (ValueError, SyntaxError) as e:  # Pillow raises many types for bad data.",
      BAD + "test_unreadable_image[this is not a jpeg]",
      "Pillow's UnidentifiedImageError escapes as a traceback"),
    M("image-truncated-accepted", "mono_ssl/images.py",
      "      im.load()",
      '      __import__("PIL.ImageFile", fromlist=["_"]).LOAD_TRUNCATED_IMAGES = True\n      im.load()',
      BAD + "test_unreadable_image[None]",
      "truncated JPEGs load with a grey fill (LOAD_TRUNCATED_IMAGES)"),
    M("image-non-image-no-fix", "mono_ssl/images.py",
      '        " image or is corrupt/truncated: replace it with a valid JPEG/PNG"',
      '        " image or is corrupt/truncated"',
      BAD + "test_non_image_file_with_an_image_name",
      "a non-image file is reported without the fix (JPEG/PNG)"),
    M("aug-fixed-initial-crop-ignored", "mono_ssl/augment.py",
      "    uy, ux = (0.5, 0.5) if cfg.initial_crop_fixed else (jax.random.uniform(ky), jax.random.uniform(kx))",
      "    uy, ux = (jax.random.uniform(ky), jax.random.uniform(kx))",
      "tests/test_augment.py::test_fixed_initial_crop_leaves_only_the_methods_crop_and_flip",
      "the ablation's no-augmentation row still moves its initial crop (not a fixed image)"),
    M("aug-fixed-without-crop-accepted", "mono_ssl/augment.py",
      "    if self.initial_crop_fixed and not self.initial_crop:",
      "    if False:",
      "tests/test_augment.py::test_fixed_initial_crop_leaves_only_the_methods_crop_and_flip",
      "initial_crop_fixed=True with initial_crop=False runs silently as no initial crop"),
    M("image-deca-name-unchecked", "mono_ssl/images.py",
      "    if name not in names:\n      raise UserInputError(f\"image spec {item!r}: no {name!r}",
      "    if False:\n      raise UserInputError(f\"image spec {item!r}: no {name!r}",
      "tests/test_images.py::test_resolve_one_deca_image_by_name",
      "a mistyped deca:<file> spec passes the check and fails later, far from the config"),
    M("ablation-no-aug-keeps-jitter", "configs/ablation.py",
      '      "aug.jitter_prob": 0.0}),\n    ("no_rrc"',
      '      }),\n    ("no_rrc"',
      "tests/test_grid.py::test_ablation_rows_differ_from_the_full_recipe_in_their_own_switches_only",
      "the no-augmentation row keeps colour jitter, so it is not augmentation-free"),
    M("ablation-no-full-row-keyerror", "mono_ssl/ablation.py",
      "  if FULL_ROW not in rows:", "  if False:",
      "tests/test_ablation.py::test_without_the_full_recipe_row_the_error_names_the_rows",
      "a grid without the full recipe fails with a bare KeyError"),
    M("ablation-delta-sign-swapped", "mono_ssl/ablation.py",
      '  d = row["results"][layer]["top1"] - full["results"][layer]["top1"]',
      '  d = full["results"][layer]["top1"] - row["results"][layer]["top1"]',
      "tests/test_ablation.py::test_tables_put_each_row_against_the_full_recipe",
      "the ablation table's difference from the full recipe has the wrong sign"),
    M("ablation-cli-missing-results-traceback", "mono_ssl/ablation.py",
      "  if not src.is_file():", "  if False:",
      "tests/test_ablation.py::test_cli_writes_densities_tables_and_figure_and_the_doc_block_renders_them",
      "the report CLI on a folder without grid_results.json dies with a traceback"),
    M("ablation-gap-se-of-the-row-only", "mono_ssl/ablation.py",
      '        se = float(np.hypot(r["se"][l]["top1"], rand["se"][l]["top1"]))',
      '        se = float(r["se"][l]["top1"])',
      "tests/test_ablation.py::test_gap_to_random_init_carries_the_standard_error_of_the_difference",
      "the gap to random init ignores random init's own seed spread, overstating significance"),
    M("ablation-gap-no-random-keyerror", "mono_ssl/ablation.py",
      "  if rand is None:", "  if False:",
      "tests/test_ablation.py::test_gap_to_random_init_carries_the_standard_error_of_the_difference",
      "a grid without the random row fails with a bare TypeError"),
    M("ablation-figure-seed0-only", "mono_ssl/ablation.py",
      '  runs = (seed_run_name(row["name"], k) for k in range(row.get("n_seeds", 1)))',
      '  runs = (seed_run_name(row["name"], k) for k in range(1))',
      "tests/test_ablation.py::test_the_figure_takes_the_first_seed_that_kept_its_conv1_filters",
      "the image figure looks only at a row's seed 0, which restored runs never have"),
    M("image-smaller-than-canvas-not-warned", "mono_ssl/augment.py",
      "    if side < canvas:",
      "    if side < 1:",
      BAD + "test_image_smaller_than_the_patch_is_warned_about",
      "an image whose crop is upsampled to the canvas gives no warning"),
    M("image-grey-not-converted", "mono_ssl/images.py",
      '  return im.convert("RGB")',
      "  return im",
      BAD + "test_grey_rgba_and_16_bit_images_are_converted[grey]",
      "8-bit greyscale is not expanded to RGB"),
    M("image-rgba-alpha-kept", "mono_ssl/images.py",
      "    rgb = (rgba[..., :3] * rgba[..., 3:4] + 127) // 255",
      "    rgb = rgba",
      BAD + "test_grey_rgba_and_16_bit_images_are_converted[rgba]",
      "RGBA keeps its alpha channel (4 channels)"),
    M("image-16bit-scaled-to-black", "mono_ssl/images.py",
      "    a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)",
      "    a = (a - lo) * (1.0 / (hi - lo)) if hi > lo else np.zeros_like(a)",
      BAD + "test_grey_rgba_and_16_bit_images_are_converted[16bit]",
      "16-bit scaled to 0..1 instead of 0..255"),
    M("image-16bit-clipped-not-scaled", "mono_ssl/images.py",
      "    a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)",
      "    a = a if hi > lo else np.zeros_like(a)",
      BAD + "test_grey_rgba_and_16_bit_images_are_converted[16bit]",
      "16-bit values clipped to 255 instead of scaled by their range"),
    M("image-huge-jpeg-no-draft", "mono_ssl/images.py",
      '  if shrink and im.format == "JPEG":',
      '  if shrink and im.format == "PNG":',
      BAD + "test_huge_image_is_downscaled_by_max_side_or_refused_clearly",
      "a huge JPEG is not decoded at reduced size, so max_side cannot load it"),
    # --- config / CLI --------------------------------------------------------------------------
    M("cli-unknown-key-traceback", "mono_ssl/main.py",
      "  except (AttributeError, KeyError, TypeError, ValueError) as e:",
      "  except (TypeError, ValueError) as e:",
      BAD + 'test_cli_unknown_config_key[--config.train.num_stpes=3-Did you mean "num_steps"]',
      "an unknown config key ends in a traceback"),
    M("cli-bad-value-traceback", "mono_ssl/main.py",
      "  except flags.Error as e:",
      "  except UnicodeError as e:",
      BAD + "test_cli_wrong_value_type[--config.train.num_steps=abc-abc]",
      "a value of the wrong type ends in absl's traceback"),
    M("config-hidden-type-unchecked", "mono_ssl/models/alexnet.py",
      "  if not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in m.hidden):",
      "  if not all(h for h in m.hidden):",
      BAD + "test_cli_wrong_value_type[--config.model.hidden=abc-hidden]",
      "model.hidden entries are not checked to be positive integers"),
    M("config-out-size-unchecked", "mono_ssl/augment.py",
      '    for name in ("out_size", "patch_size"):',
      '    for name in ("patch_size",):',
      NEG + "[aug.out_size=-3-aug.out_size=-3]",
      "aug.out_size is not checked to be positive"),
    M("config-negative-batch-accepted", "mono_ssl/sharding.py",
      "  if batch_size < 1 or batch_size % n:",
      "  if batch_size % n:",
      NEG + "[train.batch_size=-8-train.batch_size=-8]",
      "a negative batch that divides the device count is accepted"),
    M("config-negative-steps-accepted", "mono_ssl/train.py",
      "  if tc.num_steps < 0:",
      "  if tc.num_steps < -1:",
      NEG + "[train.num_steps=-1-train.num_steps=-1]",
      "train.num_steps=-1 is accepted"),
    M("config-probe-batch-checked-after-training", "mono_ssl/train.py",
      '  shd.check_batch_size(config.probe.batch_size, mesh, "probe.batch_size")',
      '  pass',
      [NEG + "[probe.batch_size=0-probe.batch_size=0]",
       BAD + "test_probe_batch_not_divisible_by_the_device_count_fails_before_training[batch_size-6]"],
      "probe.batch_size is only checked by the probe, after pretraining"),
    M("eval-batch-not-refitted-to-the-devices", "mono_ssl/sharding.py",
      "  return max(n, batch_size // n * n)",
      "  return batch_size",
      ["tests/test_probe.py::test_ten_crop_evaluation_averages_the_logits_of_the_ten_views",
       "tests/test_scaleout.py::test_quickstart_probe_stage_runs_on_eight_devices"],
      "an evaluation batch of 500 on 8 devices reaches jax unsplittable (the quickstart on 8 devices)"),
    M("imagenet-probes-on-its-unlabelled-test-split", "mono_ssl/datasets.py",
      '    return ("validation",)',
      '    return ("test", "validation")',
      "tests/test_datasets.py::test_imagenet_probes_on_its_labelled_validation_split",
      "imagenet2012's probe test split is its unlabelled challenge set"),
    M("unlabelled-test-split-accepted", "mono_ssl/datasets.py",
      '  check_labelled(tfds_name, tfds_split, source[0]["label"], available)',
      '  pass',
      "tests/test_datasets.py::test_tfds_unlabelled_test_split_is_refused_when_opened",
      "a split of -1 labels is read; the probes would fail after training"),
    M("paper-single-image-is-the-1024px-copy", "mono_ssl/data.py",
      '  return "default_full" if config.scale == "paper" else "default"',
      '  return "default"',
      "tests/test_configs.py::test_paper_scale_single_image_is_the_full_resolution_photograph",
      "the paper-scale single image's crop is upsampled 1.06x to the canvas"),
    M("small-source-images-refused", "mono_ssl/augment.py",
      '      out.append(f"image {name} is',
      '      raise UserInputError(f"image {name} is',
      "tests/test_configs.py::test_small_source_images_are_warned_about_not_refused",
      "ten small photographs are refused instead of warned about"),
    M("rotnet-paper-head-drops-out", "mono_ssl/config_lib.py",
      'HEAD_DROPOUT = {"rotnet": 0.0,',
      'HEAD_DROPOUT = {"rotnet": 0.5,',
      "tests/test_configs.py::test_paper_scale_heads_follow_each_original",
      "paper-scale RotNet's head gets dropout 0.5 (Gidaris et al.'s has none)"),
    M("config-negative-width-accepted", "mono_ssl/models/alexnet.py",
      "  if not m.width_mult > 0:",
      "  if m.width_mult == 0:",
      NEG + "[model.width_mult=-1-model.width_mult=-1]",
      "model.width_mult=-1 is accepted (every layer 1 filter wide)"),
    M("config-batch-not-divisible-accepted", "mono_ssl/sharding.py",
      "  if batch_size < 1 or batch_size % n:",
      "  if batch_size < 1:",
      BAD + "test_batch_not_divisible_by_the_device_count",
      "a batch that does not split over the devices reaches jax (its error, not ours)"),
    M("config-too-many-clusters-accepted", "mono_ssl/methods/deepcluster.py",
      "  if not 1 <= num_clusters <= data_size:",
      "  if not 1 <= num_clusters:",
      BAD + "test_more_clusters_than_the_data_set",
      "more k-means clusters than patches is accepted"),
    # --- probe data ----------------------------------------------------------------------------
    M("probe-data-loaded-after-training", "mono_ssl/train.py",
      "  probe_train, probe_test = load_probe_data(config)\n"
      "  # Likewise a probe batch that cannot run (the evaluation batch is refitted to the devices).\n"
      '  shd.check_batch_size(config.probe.batch_size, mesh, "probe.batch_size")\n'
      "  shd.fit_batch_size(config.probe.eval_batch_size, mesh)\n"
      "  trained, initial, info = pretrain(config, workdir, mesh, log, probe_train=probe_train,\n"
      "                                    on_curve_point=on_curve_point)\n",
      "  trained, initial, info = pretrain(config, workdir, mesh, log, on_curve_point=on_curve_point)\n"
      "  probe_train, probe_test = load_probe_data(config)\n"
      '  shd.check_batch_size(config.probe.batch_size, mesh, "probe.batch_size")\n',
      BAD + "test_missing_probe_data_set_fails_before_training",
      "the probe data set is loaded only after pretraining"),
    M("probe-unknown-name-keyerror", "mono_ssl/datasets.py",
      "  raise UserInputError(\n      f\"unknown data set name {name!r}; valid names: {', '.join(VALID_NAMES)}\"\n  )",
      "  raise KeyError(name)",
      BAD + "test_unknown_probe_data_set_name",
      "an unknown probe data set name raises a bare KeyError"),
    M("probe-label-count-unchecked", "mono_ssl/datasets.py",
      "  if len(labels) != n:",
      "  if len(labels) < 0:",
      BAD + "test_probe_data_set_with_mismatched_labels[fewer_labels_than_images]",
      "fewer labels than images is not detected"),
    M("probe-label-range-unchecked", "mono_ssl/datasets.py",
      "  if labels.min() < 0 or labels.max() >= num_classes:\n    raise _fail(",
      "  if labels.min() < 0:\n    raise _fail(",
      BAD + "test_probe_data_set_with_mismatched_labels[label_out_of_range]",
      "labels >= num_classes are accepted"),
    # --- init_from -----------------------------------------------------------------------------
    M("init-from-empty-folder-advises-delete", "mono_ssl/train.py",
      'no checkpoint in {ckpt_dir}; give the "',
      'no checkpoint in {ckpt_dir}; delete it or give the "',
      BAD + "test_init_from_a_folder_that_holds_no_checkpoint[plain_folder]",
      "the error for a folder without checkpoints advises deleting the user's folder"),
    M("init-from-step-folder-generic-error", "mono_ssl/train.py",
      "  except UserInputError:  # each step's error was printed as a warning",
      "  except TypeError:  # each step's error was printed as a warning",
      BAD + "test_init_from_a_folder_that_holds_no_checkpoint[step_named_folder]",
      "restore's 'delete that folder' advice reaches the user of init_from"),
    M("cli-user-error-traceback", "mono_ssl/main.py",
      "  except (UserInputError, TrainingDiverged) as e:",
      "  except TrainingDiverged as e:",
      BAD + "test_cli_prints_one_error_line_and_exit_code_2",
      "a UserInputError from training ends in a traceback, exit code 1"),
    M("pool-last-maximum-takes-gradient", "mono_ssl/models/pooling.py",
      "    better = view > best          # strict: ties stay with the first element",
      "    better = view >= best",
      ["tests/test_pooling.py::test_values_and_gradients_match_flax_max_pool_with_ties"],
      "max-pool ties send the gradient to the last maximum, not the first as select_and_scatter"),
    M("xla-flag-overrides-user", "mono_ssl/xla_cpu.py",
      '  if "xla_cpu_experimental_ynn_fusion_type" in flags:',
      '  if False:',
      ["tests/test_xla_cpu.py::test_user_choice_and_opt_out_are_respected"],
      "the package's XLA flag is appended over the user's own YNN setting"),
    M("probe-ten-crop-ignored", "mono_ssl/probe.py",
      "  return make_eval_step(trunk_apply, heads, cfg.crop_size or None, cfg.ten_crop)",
      "  return make_eval_step(trunk_apply, heads, cfg.crop_size or None, False)",
      ["tests/test_probe.py::test_ten_crop_evaluation_averages_the_logits_of_the_ten_views"],
      "probe.ten_crop is ignored: the test images are evaluated on their centre crop only"),
    M("stream-crop-ignores-image-ids", "mono_ssl/probe.py",
      "b, aug, aug_key, idx, image_ids=jnp.arange(idx.shape[0], dtype=jnp.int32)),",
      "b, aug, aug_key, idx),",
      ["tests/test_streaming.py::test_streamed_probe_equals_the_in_memory_probe"],
      "a streamed probe batch crops image idx mod B instead of its own image"),
    M("stream-patches-wrong-image", "mono_ssl/augment.py",
      "images, _ = self.stream.fetch(base % len(self.stream), self._pool)",
      "images, _ = self.stream.fetch(host % len(self.stream), self._pool)",
      ["tests/test_streaming.py::test_stream_patch_generator_equals_the_in_memory_one"],
      "streamed pretraining reads image i mod N of the raw index, not of its base index"),
    M("reprobe-deletes-old-results", "mono_ssl/workdir.py",
      "shutil.move(str(path), str(archive / path.name))",
      "path.unlink()",
      ["tests/test_train.py::test_a_new_probe_protocol_reprobes_a_finished_run_and_keeps_the_old_results"],
      "a re-probe deletes the old probe results instead of archiving them"),
    M("reprobe-any-change", "mono_ssl/workdir.py",
      'if differ and all(k.startswith("probe.") for k in differ)',
      'if differ and any(k.startswith("probe.") for k in differ)',
      ["tests/test_train.py::test_a_new_probe_protocol_reprobes_a_finished_run_and_keeps_the_old_results"],
      "a training change that comes with a probe change is taken for a re-probe"),
    M("bigan-e-start-one-step-late", "mono_ssl/methods/bigan.py",
      "    return lambda t: jnp.where(t >= start, schedule(t) * mult, 0.0)",
      "    return lambda t: jnp.where(t > start, schedule(t) * mult, 0.0)",
      "tests/test_bigan.py::test_encoder_waits_for_e_start_while_g_and_d_train",
      "E starts one step after bigan.e_start"),
    M("bigan-unary-scores-not-summed", "mono_ssl/methods/bigan.py",
      "        d_loss, ge_loss = d_loss * 3.0, ge_loss * 3.0",
      "        d_loss, ge_loss = d_loss, ge_loss",
      "tests/test_bigan.py::test_unary_scores_give_d_three_read_outs_and_train_them",
      "the three scores' losses averaged instead of summed"),
    M("bigan-sgd-encoder-is-adam", "mono_ssl/methods/bigan.py",
      '    if b.e_optimizer == "adam":',
      '    if b.e_optimizer in ("adam", "sgd"):',
      "tests/test_bigan.py::test_encoder_sgd_steps_follow_the_gradient_not_its_sign",
      "e_optimizer=sgd silently gives Adam"),
    M("bigan-icnr-no-tiling", "mono_ssl/models/bigan.py",
      "    return jnp.tile(base, (1,) * (len(shape) - 1) + (factor,))",
      "    return base_init(key, shape, dtype)",
      "tests/test_bigan.py::test_icnr_generator_starts_as_nearest_neighbour_upsampling",
      "ICNR init without the shared sub-pixel filters"),
    M("bigan-mbstd-groups-straddle", "mono_ssl/models/bigan.py",
      "  g = h.reshape((b // group, group) + h.shape[1:])",
      "  g = h.reshape((group, b // group) + h.shape[1:]).swapaxes(0, 1)",
      "tests/test_bigan.py::test_minibatch_std_sees_each_group_alone_and_flags_a_collapsed_one",
      "minibatch-std groups made of strided images (real and fake mixed)"),
    M("bigan-r1-off", "mono_ssl/methods/bigan.py",
      "        d_loss = d_loss + r1",
      "        d_loss = d_loss + jax.lax.stop_gradient(r1)",
      "tests/test_bigan.py::test_r1_penalises_ds_input_gradient_on_real_pairs_and_moves_only_d",
      "the R1 penalty reported but not trained on"),
    M("workdir-added-default-not-honoured", "mono_ssl/workdir.py",
      "                                             or b.get(k) == ADDED_FIELD_DEFAULTS.get(k))))",
      "                                             )))",
      "tests/test_bigan.py::test_workdir_of_a_run_made_before_the_new_options_is_still_accepted",
      "an old BiGAN workdir refused for e_optimizer='adam'"),
    # Issue 16: equal probes, per-channel BatchNorm, learning curves, grid seeds and fractions.
    M("probe-bn-per-position", "mono_ssl/probe.py",
      "      f = nn.BatchNorm(use_running_average=not train, use_scale=False, use_bias=False,\n"
      '                       momentum=0.9, axis_name=self.bn_axis_name, name=f"{name}_bn")(f)\n'
      "      f = f.reshape((f.shape[0], -1))\n",
      "      f = f.reshape((f.shape[0], -1))\n"
      "      f = nn.BatchNorm(use_running_average=not train, use_scale=False, use_bias=False,\n"
      '                       momentum=0.9, axis_name=self.bn_axis_name, name=f"{name}_bn")(f)\n',
      "tests/test_probe.py::test_probe_batchnorm_is_per_channel_on_the_pooled_map_against_numpy",
      "probe BatchNorm after flattening: per (position, channel) statistics, not BatchNorm2d's"),
    M("probe-adaptive-bins-floor", "mono_ssl/probe.py",
      "    bins = [(i * n // m, -(-(i + 1) * n // m)) for i in range(m)]",
      "    bins = [(i * n // m, (i + 1) * n // m) for i in range(m)]",
      "tests/test_probe.py::test_probe_batchnorm_is_per_channel_on_the_pooled_map_against_numpy",
      "adaptive pool bins that drop the overlapping row (not torch's AdaptiveMaxPool2d)"),
    M("probe-sizes-unchecked", "mono_ssl/probe.py",
      "    if abs(dims - target_dims) > DIMS_TOLERANCE * target_dims:\n      missed.append(",
      "    if False:\n      missed.append(",
      "tests/test_probe.py::test_a_target_no_layer_can_meet_is_refused_with_a_size_that_works",
      "probes of unequal sizes accepted silently"),
    M("probe-window-always", "mono_ssl/probe.py",
      "  if abs(pool_dims(window, height, width, channels) - target_dims) <= DIMS_TOLERANCE * target_dims:\n"
      "    return window",
      "  if True:\n    return window",
      "tests/test_probe.py::test_probes_are_one_size_at_every_layer_at_both_scales",
      "the authors' strided pool kept where it misses the target (2048/1024/864 dims at 32 px)"),
    M("curve-point-after-next-step", "mono_ssl/train.py",
      "      last_good = ckpt.save(state)\n    curve_point(done, state)",
      "      last_good = ckpt.save(state)\n    curve_point(done + 1, state)",
      "tests/test_curves.py::test_curve_point_equals_a_separate_probe_of_that_steps_checkpoint",
      "curve points labelled with the wrong step"),
    M("curve-resume-keeps-stale-points", "mono_ssl/curves.py",
      '    self.points = [p for p in self.points if p["step"] <= start]',
      '    self.points = list(self.points)',
      "tests/test_curves.py::test_interrupted_run_keeps_its_points_and_makes_the_rest",
      "points made past the checkpoint kept on resume (made by steps that are rerun)"),
    M("curve-val-overlaps-fit", "mono_ssl/curves.py",
      "    train.append(members[n_val:])",
      "    train.append(members)",
      "tests/test_curves.py::test_validation_split_is_disjoint_stratified_and_fixed",
      "the curve scored on images its probe trained on"),
    M("curve-small-train-unchecked", "mono_ssl/curves.py",
      "  if len(fit_idx) < pc.batch_size:",
      "  if False:",
      "tests/test_curves.py::test_too_small_curve_train_set_is_refused_naming_the_field",
      "a curve set smaller than a batch fails deep in the probe, naming probe.batch_size"),
    M("grid-seed-not-applied", "mono_ssl/grid.py",
      "    cfg.seed, cfg.probe.seed = cfg.seed + seed, cfg.probe.seed + seed",
      "    pass",
      "tests/test_grid.py::test_seeds_are_averaged_with_standard_errors_and_fractions_and_results_exported",
      "every seed of a row runs seed 0"),
    M("grid-se-is-sd", "mono_ssl/grid.py",
      "    se[layer] = {m: float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0",
      "    se[layer] = {m: float(v.std(ddof=1)) if len(v) > 1 else 0.0",
      "tests/test_grid.py::test_seeds_are_averaged_with_standard_errors_and_fractions_and_results_exported",
      "the standard deviation reported as the standard error"),
    M("grid-seeds-unchecked", "mono_ssl/grid.py",
      "  if n < 1:\n    raise UserInputError(f\"seeds={n}",
      "  if False:\n    raise UserInputError(f\"seeds={n}",
      "tests/test_grid.py::test_seeds_below_one_are_refused",
      "seeds=0 runs nothing and reports an empty grid"),
    M("curve-fields-reprobe", "mono_ssl/workdir.py",
      '"train.sample_every",\n                    "distributed.", "probe.curve_"',
      '"train.sample_every",\n                    "distributed.", "probe.curve_ignored"',
      "tests/test_curves.py::test_curve_settings_changed_on_a_finished_run_reprobe_nothing",
      "a changed curve setting archives and re-probes a finished run"),
    M("results-doc-stale-unseen", "mono_ssl/results_doc.py",
      '  return [m["path"] for m in BLOCK.finditer(text) if m["body"] != _rendered(readme.parent, m["path"])]',
      '  return []',
      "tests/test_results_doc.py::test_a_tampered_readme_figure_is_found",
      "README tables that no longer match their JSON pass the check"),
    M("resize-side-unchecked", "mono_ssl/datasets.py",
      "  if not isinstance(side, int) or isinstance(side, bool) or side < 1:\n    raise UserInputError(f\"resize side",
      "  if False:\n    raise UserInputError(f\"resize side",
      "tests/test_resize.py::test_resize_refuses_a_bad_side",
      "probe.resize=-48 or 4.5 reaches jax.image.resize (a deep traceback)"),
    M("resize-ignored", "mono_ssl/train.py",
      '  if pc.get("resize", 0):',
      '  if False:',
      "tests/test_resize.py::test_probe_data_resized_to_probe_resize",
      "the mini stack probed on 64 px images it was not designed for"),
    M("resize-crops", "mono_ssl/datasets.py",
      "    block = ds.images[i:i + chunk]\n",
      "    block = ds.images[i:i + chunk, :side, :side]\n",
      "tests/test_resize.py::test_resize_keeps_the_whole_image_and_its_values",
      "a corner crop instead of the whole image resized"),
    M("mini-conv2-kernel-5", "mono_ssl/models/alexnet.py",
      "    ConvSpec(24, 3, 1, 1, True),\n    ConvSpec(48, 3, 1, 1, True),",
      "    ConvSpec(24, 3, 1, 1, True),\n    ConvSpec(48, 5, 1, 2, True),",
      "tests/test_receptive_fields.py::test_mini_stack_is_a_miniature_of_the_papers_alexnet",
      "a mini stack whose conv2 sees 35% of the image (the paper's: 23%)"),
    M("flatness-last-two-only", "mono_ssl/curves.py",
      '  tail_points = [p for p in points if p["step"] >= (1 - tail) * last]',
      '  tail_points = points[-2:]',
      "tests/test_results_doc.py::test_curve_flatness_measures_the_last_quarter",
      "a curve called flat from its last two points, not its last quarter"),
    M("scatnet-mini-probe-size", "configs/scatnet.py",
      '{"cpu": 510, "mini": 2295, "calib": 2295, "paper": 9114}',
      '{"cpu": 510, "mini": 9000, "calib": 2295, "paper": 9114}',
      "tests/test_scatnet.py::test_probe_size_is_met_at_both_orders",
      "a ScatNet probe size its maps cannot give within 10% (the run fails after loading data)"),
    M("keep-aspect-test-squares", "mono_ssl/probe.py",
      "  if isinstance(test, StreamingImages) and test.keep_aspect:",
      "  if False:",
      "tests/test_streaming.py::test_keep_aspect_probes_see_the_rectangle_a_centre_square_loses",
      "a keep_aspect test set is evaluated on centre squares, not the rectangle's ten crops"),
    M("keep-aspect-train-squares", "mono_ssl/probe.py",
      "    self.host_views = self.streamed and train.keep_aspect",
      "    self.host_views = False",
      "tests/test_streaming.py::test_keep_aspect_probes_see_the_rectangle_a_centre_square_loses",
      "the probes train on centre squares of a keep_aspect stream"),
    M("five-crops-of-the-square", "mono_ssl/streaming.py",
      "  offsets = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), (ct, cl)]",
      "  offsets = [(0, cl), (0, cl), (h - crop, cl), (h - crop, cl), (ct, cl)]",
      "tests/test_streaming.py::test_authors_views_of_a_rectangle",
      "the ten crops are cut from the centre square, not the rectangle's corners"),
    M("keep-aspect-not-passed-on", "mono_ssl/train.py",
      '                                field="probe.image_size", keep_aspect=keep_aspect)',
      '                                field="probe.image_size")',
      "tests/test_streaming.py::test_keep_aspect_reaches_both_probe_streams",
      "the probe's test stream ignores probe.keep_aspect (squares at test time)"),
    M("grid-configs-beside-the-package", "mono_ssl/grid.py",
      "  if not config.configs_dir:",
      "  if False:",
      "tests/test_grid.py::test_grid_runs_from_a_non_editable_install",
      "after `pip install .` the grid looks for its runs' configs beside the installed package"),
    M("main-runs-a-grid-config", "mono_ssl/main.py",
      '  if "runs" in config:',
      "  if False:",
      "tests/test_grid.py::test_main_refuses_a_grid_config_in_one_line",
      "mono_ssl.main given a grid config dies with a traceback"),
    M("grid-random-row-unmarked", "mono_ssl/grid.py",
      "  if row[\"name\"] == config.random_row:",
      "  if False:",
      "tests/test_grid.py::test_grid_layers_figure_has_one_panel_per_method_and_every_baseline_in_each",
      "the random-init row is reported as a RotNet row, not as the random baseline"),
    M("layers-baselines-in-one-panel", "mono_ssl/report.py",
      "    for r in own + baselines:",
      "    for r in own + (baselines if ax is axes[0] else []):",
      "tests/test_grid.py::test_grid_layers_figure_has_one_panel_per_method_and_every_baseline_in_each",
      "the baselines are drawn in the first method's panel only"),
    M("prepare-cifar-rows-transposed", "mono_ssl/prepare.py",
      "reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)",
      "reshape(-1, 3, 32, 32).transpose(0, 3, 2, 1)",
      "tests/test_prepare.py::test_cifar10_archive_becomes_the_loaders_npz_with_its_pixels",
      "CIFAR-10's CHW rows written as transposed images"),
    # Issue 41: ../shared/data's Tiny-ImageNet split is by file name as strings (its README).
    M("prepare-tiny-numeric-order", "mono_ssl/prepare.py",
      '      mine = sorted(n for n in names if n.startswith(prefix) and n.endswith(".JPEG"))',
      '      mine = sorted((n for n in names if n.startswith(prefix) and n.endswith(".JPEG")),\n'
      '                    key=lambda n: int(n.rsplit("_", 1)[1][:-5]))',
      ["tests/test_prepare.py::test_tiny_imagenet_zip_keeps_its_jpegs_byte_for_byte",
       "tests/test_prepare.py::test_tiny_imagenet_train_files_are_the_shared_split_100_then_the_next_300"],
      "Tiny-ImageNet's train images taken by image number (_2 before _10), not the shared files' order"),
    M("prepare-tiny-next-300-overlaps", "mono_ssl/prepare.py",
      "      start += n\n",
      "      start += 0\n",
      "tests/test_prepare.py::test_tiny_imagenet_train_files_are_the_shared_split_100_then_the_next_300",
      "train_next_300_per_class.npz starts at each class's first image, repeating the first 100"),
    M("prepare-cifar-plain-pickle-load", "mono_ssl/prepare.py",
      '    batch = _BatchUnpickler(f, encoding="bytes").load()',
      '    batch = pickle.load(f, encoding="bytes")',
      "tests/test_prepare.py::test_a_cifar_batch_that_would_call_a_function_is_refused_before_it_runs",
      "CIFAR-10 batches unpickled with pickle.load: a tampered archive runs code"),
    M("prepare-overwrites", "mono_ssl/prepare.py",
      "  if existing and not overwrite:",
      "  if False:",
      "tests/test_prepare.py::test_bad_archives_and_existing_files_are_refused_in_one_line",
      "prepare silently replaces existing data files"),
    M("recluster-ignores-init", "mono_ssl/methods/deepcluster.py",
      "  res = km.kmeans(z, num_clusters, key=key, num_iters=kmeans_iters, init=init)",
      "  res = km.kmeans(z, num_clusters, key=key, num_iters=kmeans_iters)",
      "tests/test_api.py::test_plain_pieces_are_what_the_config_path_builds",
      "recluster runs k-means++ whatever init it is given (not faiss' random points)"),
    M("make-patches-one-program-on-cpu", "mono_ssl/augment.py",
      '  if isinstance(indices, jax.core.Tracer) and jax.default_backend() == "cpu":',
      "  if False:",
      "tests/test_augment.py::test_make_patches_runs_two_programs_and_refuses_one_on_cpu",
      "make_patches traced inside jit on CPU silently returns miscompiled jitter"),
    # --- the calibrated scale (issue 39) ---------------------------------------------------
    M("scale-gates-conv1-ratio-unchecked", "mono_ssl/models/alexnet.py",
      "conv1_filters_per_value(convs) <= MAX_CONV1_FILTERS_PER_VALUE}",
      "conv1_filters_per_value(convs) <= 1.0}",
      "tests/test_receptive_fields.py::test_scale_gates_from_the_conv_lists",
      "the conv1 ratio gate admits mini's nearly complete 3x3 basis (0.89 filters per value)"),
    M("scale-gates-rf-factor-ignored", "mono_ssl/models/alexnet.py",
      "    out[f\"{layer} RF within x{factor} of the paper's\"] = 1 / factor <= ratio <= factor",
      "    out[f\"{layer} RF within x{factor} of the paper's\"] = ratio > 0",
      "tests/test_receptive_fields.py::test_scale_gates_from_the_conv_lists",
      "a stack whose conv1 sees 3.5x the paper's share of the image passes the gate"),
    M("exclude-val-ignored", "mono_ssl/data.py",
      '  if not config.data.get("exclude_val", False):\n    return ds',
      '  if True:\n    return ds',
      "tests/test_datasets.py::test_exclude_val_leaves_the_validation_carve_out_of_pretraining",
      "full-data pretraining sees the validation carve its recipes and curves are scored on"),
    M("tiny-400-second-file-limit-ignored", "mono_ssl/datasets.py",
      "      keep = np.flatnonzero(rank < limit_per_class)",
      "      keep = np.flatnonzero(rank < limit_per_class + 1)",
      "tests/test_datasets.py::test_tiny_imagenet_400_is_the_first_file_then_the_next",
      "limit_per_class over the two train files keeps one image too many a class"),
    M("heldout-rotation-padding-counted", "mono_ssl/methods/rotnet.py",
      "    return jnp.sum(hit * mb[:, None])",
      "    return jnp.sum(hit)",
      "tests/test_rotnet.py::test_heldout_rotation_accuracy_counts_every_image_in_all_four_rotations",
      "the padded images of the last held-out batch count as rotation hits or misses"),
    M("whole-view-probe-mirror-unflipped", "mono_ssl/probe.py",
      "    views = [x, x[:, :, ::-1]] if flip else [x]",
      "    views = [x, x] if flip else [x]",
      "tests/test_probe.py::test_whole_view_probes_train_on_cached_features_as_through_the_trunk",
      "the cached 'mirror' view is the image itself: whole-view probes never see a flip"),
    M("whole-view-probe-gathers-wrong-view", "mono_ssl/probe.py",
      "        batch = {k: v[idx, fl] for k, v in feats.items()}",
      "        batch = {k: v[idx, 0] for k, v in feats.items()}",
      "tests/test_probe.py::test_whole_view_probes_train_on_cached_features_as_through_the_trunk",
      "the drawn mirror bit is ignored when the cached features are gathered"),
    M("calib-evalrun-any-recipe", "benchmarks/calib_candidates.py",
      "    if row.get(key) != want:",
      "    if False and row.get(key) != want:",
      "tests/test_calib_candidates.py::test_refuses_another_recipe",
      "a trunk read by one probe recipe is compared with random/supervised read by another"),
    M("calib-fraction-clipped", "benchmarks/calib_candidates.py",
      "  return {l: round((top1[l] - rand[l]) / (sup[l] - rand[l]), 3) for l in top1}",
      "  return {l: round(max(0.0, top1[l] - rand[l]) / (sup[l] - rand[l]), 3) for l in top1}",
      "tests/test_calib_candidates.py::test_fraction_of_gain",
      "a trunk below random init reads as 0 of supervision's gain, hiding a failed control"),
    M("saved-config-lists-kept", "mono_ssl/workdir.py",
      "    return {k: tuples(v) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else v",
      "    return {k: tuples(v) if isinstance(v, dict) else v",
      "tests/test_train.py::test_saved_config_is_the_run_config_and_refuses_a_non_run",
      "a run's saved config comes back with lists where the configs hold tuples"),
    M("step-paths-torch-best-is-slowest", "benchmarks/step_paths.py",
      "  torch_best = min((s for n, s in median_s.items() if n.startswith(\"torch\")), default=None)",
      "  torch_best = max((s for n, s in median_s.items() if n.startswith(\"torch\")), default=None)",
      "tests/test_step_paths.py::test_summary_line_is_default_against_f32_and_the_fastest_torch_path",
      "the summary compares the default with PyTorch's slowest configuration, not its fastest"),
    M("step-paths-ratio-inverted", "benchmarks/step_paths.py",
      "  return f\"default/f32 {median_s['jax f32'] / d:.2f}",
      "  return f\"default/f32 {d / median_s['jax f32']:.2f}",
      "tests/test_step_paths.py::test_summary_line_is_default_against_f32_and_the_fastest_torch_path",
      "default/f32 reads as time over time the wrong way round (a faster default reads < 1)"),
    M("run-time-fit-drops-intercept", "benchmarks/run_time.py",
      "  return max(slope, 0.0), max(a[key] - slope * a[n], 0.0)",
      "  return max(a[key] / a[n], 0.0), 0.0",
      "tests/test_run_time.py::test_fit_line_separates_fixed_and_per_image_seconds",
      "compilation is read as a per-image cost and multiplied by 80,000 images in the projection"),
    M("run-time-feature-pass-uncounted", "benchmarks/run_time.py",
      "  return (n * epochs * r[\"per_image_epoch_s\"] + r[\"first_fixed_s\"] + n * r[\"first_per_image_s\"]",
      "  return (n * epochs * r[\"per_image_epoch_s\"] + r[\"first_fixed_s\"]",
      "tests/test_run_time.py::test_probe_seconds_adds_epochs_first_pass_and_evaluation",
      "the whole-view probes' feature pass is left out of their projected cost"),
    # Issue 39, item 4: lengths by comparison; the flatness rule only under a constant lr.
    M("lengths-a-drop-unsettles", "mono_ssl/lengths.py",
      "settled = all(diff[l] <= se[l] for l in layers)",
      "settled = all(abs(diff[l]) <= se[l] for l in layers)",
      "tests/test_lengths.py::test_compare_lengths_picks_the_shortest_that_no_longer_run_beats",
      "a longer run that is worse counts as a reason to run longer"),
    M("lengths-chooses-the-longer-of-the-pair", "mono_ssl/lengths.py",
      '    chosen = pairs[i]["from"]',
      '    chosen = pairs[i]["to"]',
      "tests/test_lengths.py::test_compare_lengths_picks_the_shortest_that_no_longer_run_beats",
      "the default is the longer run of the first settled pair, not the shortest that suffices"),
    M("lengths-later-gain-ignored", "mono_ssl/lengths.py",
      "    if not pairs[i][\"settled\"]:\n      break",
      "    if not pairs[i][\"settled\"]:\n      continue",
      "tests/test_lengths.py::test_compare_lengths_a_later_gain_unsettles_an_earlier_pair",
      "a settled early pair wins although a longer run gains by many s.e."),
    M("head-seeds-crops-share-crops", "mono_ssl/probe.py",
      "id_offset=(seed - cfg.seed) * cfg.epochs * len(self.train))",
      "id_offset=0)",
      "tests/test_probe.py::test_head_seeds_with_crops_draw_other_crops",
      "every head seed sees the same crops: the head seeds' s.e. leaves out crop noise"),
    M("grid-trunk-seeds-share-head-seeds", "mono_ssl/grid.py",
      'cfg.probe.seed + seed * cfg.probe.get("head_seeds", 1)', "cfg.probe.seed + seed",
      "tests/test_lengths.py::test_lengths_config_scales_each_family",
      "trunk seeds k and k+1 share head seeds (the same inits and orders) under probe.head_seeds"),
    M("head-seeds-checked-after-training", "mono_ssl/train.py",
      '  check_head_seeds(config.probe.get("head_seeds", 1))  # a probe count that cannot run, before training\n', "",
      'tests/test_bad_inputs.py::test_cli_negative_or_zero_sizes[probe.head_seeds=0-probe.head_seeds=0]',
      "probe.head_seeds=0 is refused only after the whole pretraining"),
    M("workdir-head-seeds-not-an-added-field", "mono_ssl/workdir.py",
      ', "probe.head_seeds": 1}', "}",
      "tests/test_workdir.py::test_every_config_field_resumes_old_workdirs",
      "a workdir made before probe.head_seeds existed is re-probed on resume"),
    M("lengths-se-single-seed-reads-zero", "mono_ssl/lengths.py",
      "    var_a = var_b = ss / (a.size + b.size - 2)",
      "    var_a = var_b = 0.0",
      "tests/test_lengths.py::test_se_of_difference_pools_when_one_row_has_one_seed",
      "a one-seed row's comparison gets a standard error of 0, as the grid's se column reads"),
    M("flatness-read-after-a-decay", "mono_ssl/curves.py",
      "(not at_peak or max(all_lrs) - max(lrs) <= tol)", "True",
      "tests/test_results_doc.py::test_curve_flatness_measures_the_last_quarter",
      "a last quarter at one lr, decayed before it, is called flat"),
    M("flatness-read-under-a-schedule", "mono_ssl/results_doc.py",
      'verdict = "n/a (lr schedule)" if constant is False else ("yes" if flat else "no")',
      'verdict = "yes" if flat else "no"',
      "tests/test_results_doc.py::test_curve_flatness_measures_the_last_quarter",
      "a step schedule's last quarter is called flat, as before issue 39"),
    M("head-seeds-all-one-seed", "mono_ssl/probe.py",
      "      state = self._init(trunk_vars, jax.random.key(seed))\n      rng = np.random.default_rng(seed)",
      "      state = self._init(trunk_vars, jax.random.key(cfg.seed))\n      rng = np.random.default_rng(cfg.seed)",
      "tests/test_probe.py::test_head_seeds_average_probes_each_as_its_own_seed_would",
      "probe.head_seeds trains the same head N times: an s.e. of 0 and no noise averaged"),
    M("head-seeds-features-per-seed", "mono_ssl/probe.py",
      "        state = self._train_whole(state, trunk_vars, rng, t0, feats)",
      "        state = self._train_whole(state, trunk_vars, rng, t0, self._cached_features(trunk_vars))",
      "tests/test_probe.py::test_head_seeds_average_probes_each_as_its_own_seed_would",
      "the whole views' feature pass repeated for every head seed (the cost head seeds save)"),
    M("head-seeds-se-is-sd", "mono_ssl/probe.py",
      '"top1_se": float(top1.std(ddof=1) / np.sqrt(len(top1)))}',
      '"top1_se": float(top1.std(ddof=1))}',
      "tests/test_probe.py::test_head_seeds_average_probes_each_as_its_own_seed_would",
      "the head seeds' s.d. reported as the standard error of their mean"),
    M("probe-features-ignored", "mono_ssl/probe.py",
      "      feats = features if features is not None else self._cached_features(trunk_vars)",
      "      feats = self._cached_features(trunk_vars)",
      "tests/test_probe.py::test_whole_view_features_reused_by_another_probe_give_its_own_result",
      "features= passed by a recipe study are ignored: every candidate pays the trunk passes again"),
    M("probe-features-size-unchecked", "mono_ssl/probe.py",
      "      if not got or any(got.get(n, (0,))[0] != len(self.train) or got[n][1] != want_views\n                        or int(np.prod(got[n][2:])) != d for n, d in self.dims.items()):",
      "      if False:",
      "tests/test_probe.py::test_whole_view_features_reused_by_another_probe_give_its_own_result",
      "features of another probe size reach the heads: a deep shape error instead of one line"),
    M("probe-features-views-unchecked", "mono_ssl/probe.py",
      "got[n][1] != want_views", "False",
      "tests/test_probe.py::test_whole_view_features_reused_by_another_probe_give_its_own_result",
      "a probe without flips trains on cached mirrors (or one with flips on none)"),
    M("probe-features-count-unchecked", "mono_ssl/probe.py",
      "got.get(n, (0,))[0] != len(self.train)", "False",
      "tests/test_probe.py::test_whole_view_features_reused_by_another_probe_give_its_own_result",
      "another train set's features (another size) reach the heads: wrong labels or a deep error"),
    M("calib-recipe-reuses-another-trunks-results", "benchmarks/calib_recipe.py",
      "    if now is not None and was is not None and was != now", "    if False",
      "tests/test_calib_recipe.py::test_a_study_refuses_results_of_another_trunk",
      "a study rerun on another RotNet workdir keeps the old trunk's numbers under the new name"),
    M("calib-recipe-choice-from-partial-candidates", "benchmarks/calib_recipe.py",
      "for name, rows in by_cand.items() if all(t in rows for t in trunks)}",
      "for name, rows in by_cand.items()}",
      "tests/test_calib_recipe.py::test_render_chooses_the_best_mean_among_candidates_probed_on_every_trunk",
      "a recipe probed on the random trunk alone is chosen over those read on all three"),
]# ---------------------------------------------------------------------------------------------


def _snapshot(dest: Path) -> None:
  """Copies the repository's code, tests and configs (no caches) to dest."""
  dest.mkdir(parents=True)
  ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
  for name in COPIED:
    src = REPO / name
    if src.is_dir():
      shutil.copytree(src, dest / name, ignore=ignore)
    else:
      shutil.copy2(src, dest / name)


def _check(mutations: list[Mutation], root: Path) -> list[str]:
  """Problems with the list against the snapshot at root: each `old` exactly once, etc."""
  problems = []
  names = [m.name for m in MUTATIONS]
  for m in mutations:
    if names.count(m.name) != 1:
      problems.append(f"{m.name}: the name is used {names.count(m.name)} times")
    path = root / m.file
    if not path.is_file():
      problems.append(f"{m.name}: {m.file} does not exist")
      continue
    n = path.read_text().count(m.old)
    if n != 1:
      problems.append(f"{m.name}: `old` occurs {n} times in {m.file} (must be exactly once):\n"
                      + "\n".join("    | " + l for l in m.old.splitlines()))
    if m.old == m.new:
      problems.append(f"{m.name}: `old` and `new` are the same")
    for t in m.tests:
      if not (root / t.split("::")[0]).is_file():
        problems.append(f"{m.name}: test file of {t} does not exist")
  return problems


def _shared_dir() -> str:
  env = os.environ.get("MONO_SSL_SHARED", "").strip()
  return env or str((REPO.parent / "shared").resolve())


def _env(root: Path) -> dict:
  env = dict(os.environ)
  env["MONO_SSL_SHARED"] = _shared_dir()
  env["PYTHONPATH"] = str(root)  # the copy's mono_ssl, not the editable install of REPO
  env["PYTHONDONTWRITEBYTECODE"] = "1"
  return env


def _pytest(root: Path, tests: list[str], timeout: float, log: Path, stop_first: bool) -> tuple[str, float]:
  """Runs pytest on `tests` inside root; returns (outcome, seconds).

  outcome: 'passed', 'failed' (exit code 1), 'error' (2: interrupted, collection error;
  3: internal error), 'timeout', or 'no tests' (5: a node id that does not exist).
  """
  cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE",
         f"--basetemp={root / '.pytest_tmp'}", *(["-x"] if stop_first else []), *tests]
  t0 = time.time()
  with log.open("w") as out:
    out.write("$ " + " ".join(cmd) + "\n\n")
    out.flush()
    # Own process group: a timeout ends the tests' child processes too (and nothing else).
    proc = subprocess.Popen(cmd, cwd=root, env=_env(root), stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
      rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
      return "timeout", time.time() - t0
    finally:
      if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
  seconds = time.time() - t0
  return {0: "passed", 1: "failed", 5: "no tests"}.get(rc, f"error (exit {rc})"), seconds


def _failure_line(log: Path) -> str:
  """The first 'FAILED ...'/'ERROR ...' summary line of a pytest log, for the detail column."""
  for line in log.read_text(errors="replace").splitlines():
    if line.startswith(("FAILED tests/", "ERROR tests/")):
      return line
  return ""


def _short(test: str) -> str:
  return test.removeprefix("tests/")


def _md(s: str) -> str:
  return s.replace("|", "\\|")


def _git_state() -> str:
  try:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", *COPIED], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    return f"{head}" + (f" + {len(dirty)} uncommitted file(s)" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return "unknown commit"


def main() -> int:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--only", action="append", default=[], metavar="NAME",
                  help="run the mutations whose name contains NAME (repeatable)")
  ap.add_argument("--list", action="store_true", help="list the mutations, check every `old`, exit")
  ap.add_argument("--timeout", type=float, default=900, help="seconds per pytest run (default 900)")
  ap.add_argument("--logs", type=Path, default=None,
                  help="folder for the pytest logs (default: a temporary folder, kept)")
  args = ap.parse_args()

  selected = [m for m in MUTATIONS if not args.only or any(s in m.name for s in args.only)]
  if not selected:
    print(f"no mutation name contains any of {args.only}", file=sys.stderr)
    return 2

  work = Path(tempfile.mkdtemp(prefix="mono_ssl_mutants_"))
  try:
    # One snapshot for the whole run: the baseline and every mutant see the same code even if
    # someone edits the checkout meanwhile.
    pristine = work / "pristine"
    _snapshot(pristine)
    problems = _check(selected, pristine)
    if args.list:
      for m in selected:
        print(f"{m.name}\n  {m.file}: {m.what}\n  tests: {', '.join(_short(t) for t in m.tests)}")
      print(f"\n{len(selected)} mutation(s); " + ("all `old` strings found exactly once" if not problems
                                                 else f"{len(problems)} problem(s):"))
    if problems:
      for p in problems:
        print("PROBLEM: " + p, file=sys.stderr)
      return 2
    if args.list:
      return 0

    logs = args.logs or Path(tempfile.mkdtemp(prefix="mono_ssl_mutants_logs_"))
    logs.mkdir(parents=True, exist_ok=True)
    state = _git_state()
    print(f"snapshot of {REPO} at {state}; shared data {_shared_dir()}; logs in {logs}", flush=True)

    # The evidence is void unless every selected test passes on the unmutated code.
    tests = list(dict.fromkeys(t for m in selected for t in m.tests))
    base_root = work / "baseline"
    shutil.copytree(pristine, base_root)
    print(f"baseline: {len(tests)} test(s) on the unmutated copy ...", flush=True)
    outcome, secs = _pytest(base_root, tests, args.timeout * 2, logs / "baseline.log", stop_first=False)
    base_secs = secs
    print(f"baseline: {outcome} in {secs:.0f} s", flush=True)
    if outcome != "passed":
      print(f"the selected tests do not pass on the unmutated code ({outcome}); the evidence would be "
            f"void. See {logs / 'baseline.log'}", file=sys.stderr)
      return 2
    shutil.rmtree(base_root, ignore_errors=True)

    rows = []
    t_all = time.time()
    for i, m in enumerate(selected, 1):
      root = work / f"m{i:02d}"
      shutil.copytree(pristine, root)
      target = root / m.file
      text = target.read_text()
      assert text.count(m.old) == 1, m.name  # checked above on the same snapshot
      target.write_text(text.replace(m.old, m.new, 1))
      log = logs / f"{m.name}.log"
      outcome, secs = _pytest(root, list(m.tests), args.timeout, log, stop_first=True)
      if outcome == "passed":
        result = "**MISSED**"
      elif outcome == "no tests":
        result = "ERROR: no test ran (bad node id)"
      else:
        result = "caught" + ("" if outcome == "failed" else f" ({outcome})")
      detail = _failure_line(log)
      rows.append((m, result, secs, detail))
      print(f"[{i}/{len(selected)}] {m.name}: {result} in {secs:.0f} s  {detail[:150]}", flush=True)
      shutil.rmtree(root, ignore_errors=True)

    print(f"\nMutation testing of {REPO.name} at {state}: {len(selected)} mutation(s), "
          f"{sum(r[1].startswith('caught') for r in rows)} caught, "
          f"{sum('MISSED' in r[1] for r in rows)} missed; mutants {time.time() - t_all:.0f} s, "
          f"baseline {base_secs:.0f} s\n")
    print("| mutation | file | tests | result | seconds |")
    print("|---|---|---|---|---|")
    for m, result, s, _ in rows:
      tests_cell = "<br>".join(f"`{_md(_short(t))}`" for t in m.tests)
      print(f"| `{m.name}` | `{m.file}` | {tests_cell} | {result} | {s:.0f} |")
    bad = [r for r in rows if not r[1].startswith("caught")]
    if bad:
      print(f"\n{len(bad)} mutation(s) not caught: {', '.join(r[0].name for r in bad)}", file=sys.stderr)
    return 1 if bad else 0
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  sys.exit(main())
