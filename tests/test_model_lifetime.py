"""Smoke test of experiments/model_lifetime.py (the --smoke configuration).

Runs the script's ``main`` in-process (float64, 120 rows of breast cancer, 12
requests, a loose δ so that few shadows suffice) and checks what it writes:
every release certified by the schedule, retrains recorded, both ledgers
replaying to the live summaries, the schema of results.json.
"""

import importlib.util
import json
import os

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from dpunlearn.accounting import ledger as L

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "model_lifetime.py")

ROW_KEYS = {
    "request",
    "index",
    "retrained",
    "shadows_marked",
    "exceed_upper",
    "delta_schedule",
    "certified",
    "epsilon_certified",
    "epsilon_pointwise_live",
    "beta_live",
    "seconds",
    "test_accuracy",
    "paper_rule_retrains",
}


def _load_script():
    spec = importlib.util.spec_from_file_location("model_lifetime_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("model_lifetime")
    mod = _load_script()
    returned = mod.main(["--smoke", "--out", str(out)])
    return mod, out, returned


def test_smoke_every_release_certified_and_ledgers_replay(smoke):
    mod, out, returned = smoke
    with open(os.path.join(out, "results.json")) as f:
        r = json.load(f)
    assert r["every_release_certified"] and r["replay_equals_live"]
    rows = r["requests"]
    assert len(rows) == 12 and all(ROW_KEYS <= set(row) for row in rows)
    assert all(row["certified"] and row["epsilon_certified"] == 1.0 for row in rows)
    # Each release's Clopper–Pearson bound is within δ′ (the ledger refused
    # every update that was not, and serve() retrained instead).
    assert all(row["exceed_upper"] <= row["delta_schedule"] for row in rows)
    assert r["num_retrains"] == len(r["retrains"]) == sum(row["retrained"] for row in rows)
    schedule, _ = L.replay_file(os.path.join(out, mod.SCHEDULE_LEDGER))
    assert schedule.num_requests + schedule.num_retrains == 12
    assert schedule.total_removed == 12 - schedule.num_retrains
    paper, _ = L.replay_file(os.path.join(out, mod.PAPER_LEDGER))
    assert paper.num_requests == 12 - paper.num_retrains
    assert os.path.exists(os.path.join(out, "model_lifetime.png"))
    accuracies = [row["test_accuracy"] for row in rows if row["test_accuracy"] is not None]
    assert accuracies and min(accuracies) > 0.8
