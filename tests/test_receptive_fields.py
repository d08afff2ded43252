"""Receptive fields computed from the ConvSpec lists: the paper's AlexNet, and the CPU stack."""
import pytest

from mono_ssl.models.alexnet import LAYER_NAMES, conv_specs, receptive_fields


def test_paper_alexnet_receptive_fields_and_final_map():
  rf = receptive_fields(conv_specs("paper"), 224)
  assert [rf[l]["rf"] for l in LAYER_NAMES] == [11, 51, 99, 131, 163]
  assert [rf[l]["map"] for l in LAYER_NAMES] == [55, 27, 13, 13, 13]
  assert rf["final_map"] == 6
  assert [round(100 * rf[l]["fraction"], 1) for l in LAYER_NAMES] == [4.9, 22.8, 44.2, 58.5, 72.8]


def test_cpu_stack_receptive_fields():
  # The figures: 5 / 25 px at 32 px (16% / 78%), a 1x1 final map; at 96 px 5.2 / 26 / 51 / 68 / 84%.
  rf = receptive_fields(conv_specs("cpu"), 32)
  assert [rf[l]["rf"] for l in LAYER_NAMES] == [5, 25, 49, 65, 81]
  assert rf["final_map"] == 1
  rf96 = receptive_fields(conv_specs("cpu"), 96)
  assert [round(100 * rf96[l]["fraction"]) for l in LAYER_NAMES] == [5, 26, 51, 68, 84]
  assert rf96["final_map"] == 5


def test_mini_stack_is_a_miniature_of_the_papers_alexnet():
  # The faithful-network issue's item 1, against the paper's own figures computed here:
  # conv1-conv3 within a factor 1.5 of the paper's fractions, conv4/conv5 inside the image,
  # at least a 3x3 map before the head, and the stack's input side is the config's patch side.
  from mono_ssl import config_lib
  from mono_ssl.models.alexnet import INPUT_SIDE
  paper = receptive_fields(conv_specs("paper"), INPUT_SIDE["paper"])
  mini = receptive_fields(conv_specs("mini"), INPUT_SIDE["mini"])
  for layer in ("conv1", "conv2", "conv3"):
    ratio = mini[layer]["fraction"] / paper[layer]["fraction"]
    assert 1 / 1.5 <= ratio <= 1.5, (layer, mini[layer], paper[layer])
  assert mini["conv4"]["fraction"] < 1 and mini["conv5"]["fraction"] < 1
  assert mini["final_map"] >= 3
  assert [mini[l]["rf"] for l in LAYER_NAMES] == [3, 9, 21, 29, 37]
  for regime in ("single", "full"):
    c = config_lib.base_config("rotnet", regime, "mini")
    assert c.aug.out_size == INPUT_SIDE["mini"] == c.probe.resize


@pytest.mark.parametrize("scale,conv1,conv5", [("mini", (2, 48, 48, 24), (2, 11, 11, 48)),
                                               ("calib", (2, 32, 32, 24), (2, 15, 15, 64))])
def test_probes_are_one_size_at_every_layer(scale, conv1, conv5):
  # Its default probe size is met within the tolerance at every layer of the real stack.
  import jax
  import jax.numpy as jnp

  from mono_ssl import config_lib
  from mono_ssl.models.alexnet import AlexNet
  from mono_ssl.probe import DIMS_TOLERANCE, pool_dims, probe_pools
  c = config_lib.base_config("rotnet", "single", scale)
  x = jnp.zeros((2, c.aug.out_size, c.aug.out_size, 3))
  model = AlexNet(convs=conv_specs(scale))
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  _, feats = jax.eval_shape(lambda v: model.apply(v, x, head=False), variables)
  shapes = {k: v.shape for k, v in feats.items()}
  assert shapes["conv1"] == conv1 and shapes["conv5"] == conv5
  for name, spec in probe_pools(shapes, LAYER_NAMES, c.probe.target_dims):
    dims = pool_dims(spec, *shapes[name][1:])
    assert abs(dims - c.probe.target_dims) <= DIMS_TOLERANCE * c.probe.target_dims, (name, dims)


def test_conv1_filters_per_input_value_of_every_scale():
  # The calibrated-scale issue's conv1 ratio: filters over k^2 x 3 input values. The paper's
  # 96 over 11x11x3 = 363 is 0.26; mini's 24 over 27 is 0.89 (nearly a complete basis).
  from mono_ssl.models.alexnet import conv1_filters_per_value
  assert round(conv1_filters_per_value(conv_specs("paper")), 3) == 0.264
  assert round(conv1_filters_per_value(conv_specs("mini")), 3) == 0.889
  assert round(conv1_filters_per_value(conv_specs("cpu")), 3) == 0.427


def test_scale_gates_from_the_conv_lists():
  # The paper meets its own gates; mini misses only the conv1 ratio; the calibrated
  # scale's 64 px candidate (conv1 5x5/2, 24 filters) meets all; a stack whose conv5 sees
  # more than the image, or with a 2x2 head, fails that gate and only that one.
  from mono_ssl.models.alexnet import INPUT_SIDE, parse_convs, scale_gates
  assert all(scale_gates(conv_specs("paper"), 224).values())
  mini = scale_gates(conv_specs("mini"), INPUT_SIDE["mini"])
  assert [k for k, ok in mini.items() if not ok] == ["conv1 filters/value <= 0.4"]
  assert all(scale_gates(parse_convs("24:5/2p,64:3,96:3,96:3,64:3p"), 64).values())
  assert not any(scale_gates(conv_specs("cpu"), 32)[k] for k in ("conv5 RF < 100%", "conv3 RF within x1.5 of the paper's"))
  too_far = scale_gates(parse_convs("24:5/2p,64:3p,96:3,96:3,64:3p"), 64)
  assert [k for k, ok in too_far.items() if not ok] == ["conv5 RF < 100%"]
  wide_conv1 = scale_gates(parse_convs("31:5/2p,64:3,96:3,96:3,64:3p"), 64)
  assert [k for k, ok in wide_conv1.items() if not ok] == ["conv1 filters/value <= 0.4"]
  # conv1 at 11 px of 64 (17%) is 3.5x the paper's 4.9%.
  big_rf1 = scale_gates(parse_convs("24:11/2p,64:3,96:3,96:3,64:3p"), 64)
  assert not big_rf1["conv1 RF within x1.7 of the paper's"]


def test_parse_convs_spec_strings_and_their_errors():
  import pytest

  from mono_ssl.errors import UserInputError
  from mono_ssl.models.alexnet import ConvSpec, parse_convs
  assert parse_convs("24:5/2p, 64:3,96:3,96:3,64:3p") == (
      ConvSpec(24, 5, 2, 2, True), ConvSpec(64, 3, 1, 1, False), ConvSpec(96, 3, 1, 1, False),
      ConvSpec(96, 3, 1, 1, False), ConvSpec(64, 3, 1, 1, True))
  for bad, says in (("24:5/2p,64:3", "has 2 layers"), ("24:5/2p,64:x,96:3,96:3,64:3p", "'64:x'"),
                    ("0:5/2p,64:3,96:3,96:3,64:3p", "positive")):
    with pytest.raises(UserInputError, match=says) as e:
      parse_convs(bad)
    assert "\n" not in str(e.value)


def test_model_convs_in_a_config_builds_that_stack():
  from mono_ssl import config_lib
  from mono_ssl.models.alexnet import alexnet_from_config, conv_specs, parse_convs
  c = config_lib.base_config("rotnet", "single", "mini")
  assert tuple(alexnet_from_config(c, 4).convs) == conv_specs("mini")
  c.model.convs = "24:5/2p,64:3,96:3,96:3,64:3p"
  c.model.width_mult = 0.5
  assert [s.filters for s in alexnet_from_config(c, 4).convs] == [12, 32, 48, 48, 32]
  assert [s.kernel for s in alexnet_from_config(c, 4).convs] == [s.kernel for s in parse_convs(c.model.convs)]


def test_calib_scale_meets_every_gate_at_its_own_side_without_upsampling():
  # The calibrated scale (issue 39): conv1 at most 0.4 filters per input value, conv1 within
  # x1.7 and conv2/conv3 within x1.5 of the paper's receptive-field shares, conv4/conv5
  # inside the image, a >= 3x3 head; at Tiny-ImageNet's own 64 px (no probe resize), on its
  # 80,000-image train split, pretraining without the probes' validation carve.
  from mono_ssl import config_lib
  from mono_ssl.models.alexnet import INPUT_SIDE, conv1_filters_per_value, scale_gates
  gates = scale_gates(conv_specs("calib"), INPUT_SIDE["calib"])
  assert all(gates.values()), gates
  assert conv1_filters_per_value(conv_specs("calib")) <= 0.4
  rf = receptive_fields(conv_specs("calib"), 64)
  assert [rf[l]["rf"] for l in LAYER_NAMES] == [5, 17, 25, 33, 41] and rf["final_map"] == 7
  for method, regime in (("rotnet", "single"), ("rotnet", "full"), ("supervised", "full")):
    c = config_lib.base_config(method, regime, "calib")
    assert c.aug.out_size == INPUT_SIDE["calib"] == 64 and c.probe.resize == 0
    assert c.probe.dataset == c.data.full_dataset == "tiny_imagenet_400" and c.data.exclude_val
