"""Old workdirs stay resumable as the configs grow (mono_ssl/workdir.py ADDED_FIELD_DEFAULTS)."""
import json
from pathlib import Path

import pytest

from mono_ssl.config_lib import load_config_file
from mono_ssl.workdir import ADDED_FIELD_DEFAULTS, RESUMABLE_FIELDS, _flat

REPO = Path(__file__).resolve().parent.parent
# Runs made with the configs of their day: frozen copies in tests/data/old_configs (so that the
# check holds in a copy of the package without results/), and every run kept under results/.
FROZEN = sorted((REPO / "tests" / "data" / "old_configs").glob("*.json"))
SAVED = FROZEN + sorted(p for p in (REPO / "results").rglob("config.json")
                        if json.loads(p.read_text()).get("method") in ("rotnet", "supervised", "deepcluster"))


def test_every_config_field_resumes_old_workdirs():
  # A field the configs gained since a kept run was made must read as "no change" for that
  # run (neutral 0/""/False, or listed with the value that means the old behaviour); else
  # resuming or re-reading the run re-probes it (and a run without checkpoints retrains).
  assert len(FROZEN) >= 3, "the frozen old configs are the evidence: tests/data/old_configs"
  seen = set()
  for path in SAVED:
    old = json.loads(path.read_text())
    if old["scale"] not in ("cpu", "mini", "calib") or (old["method"], old["regime"], old["scale"]) in seen:
      continue
    seen.add((old["method"], old["regime"], old["scale"]))
    current = load_config_file(REPO / "configs" / f"{old['method']}.py",
                               f"regime={old['regime']},scale={old['scale']}")
    a, b = _flat(old), _flat(json.loads(current.to_json()))
    for key in sorted(k for k in set(b) - set(a) if not k.startswith(RESUMABLE_FIELDS)):
      assert b[key] in (0, "", False) or b[key] == ADDED_FIELD_DEFAULTS.get(key), (
          f"{key}={b[key]!r} is new since {path.relative_to(REPO)}: add its old behaviour to "
          "workdir.ADDED_FIELD_DEFAULTS")
  assert len(seen) >= 3


@pytest.mark.parametrize("key", ["probe.head_seeds", "probe.train_views"])
def test_probe_fields_added_lately_are_listed(key):
  assert key in ADDED_FIELD_DEFAULTS
