"""Receptive fields computed from the ConvSpec lists: the paper's AlexNet, and the CPU stack."""
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
