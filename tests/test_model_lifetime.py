"""Smoke test of experiments/model_lifetime.py (the --smoke configuration).

Runs the script's ``main`` in-process (float64, 200 training rows, 24 deletion
requests, a residual budget small enough to force retrains) and checks what
it writes: the ledger files replay to the live summaries, retrains happened,
and the U certificate never went over its target. Then a short
``--correct-residual`` run records ``residual_mode="set"``.
"""

import importlib.util
import json
import os

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("mlxtend")

from dpunlearn.accounting import ledger as L

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "model_lifetime.py")

ROW_KEYS = {
    "request",
    "index",
    "residual_bound",
    "beta",
    "beta_library",
    "u_remaining",
    "u_epsilon",
    "retrains",
    "retrained_before",
    "served_by",
    "residual_mode",
    "test_accuracy",
    "true_residual",
    "seconds",
    "remove_seconds",
    "ledger_seconds",
    "dp_example_epsilon",
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
    returned = mod.main(["--x64", "--smoke", "--out", str(out)])
    return mod, out, returned


def test_smoke_results_retrains_and_replay(smoke):
    mod, out, returned = smoke
    for name in ("config.json", "results.json", mod.LEDGER, mod.DP_LEDGER, mod.FIGURE):
        assert os.path.getsize(out / name) > 0, name
    with open(out / "results.json") as f:
        r = json.load(f)
    assert r["num_requests"] == len(r["requests"]) == 24
    for key in (
        "budget",
        "num_retrains",
        "retrains",
        "seconds_per_request_median",
        "seconds_per_retrain_mean",
        "test_accuracy_initial",
        "test_accuracy_final",
        "ledger",
        "dp_example",
    ):
        assert key in r, key
    assert all(ROW_KEYS <= set(row) for row in r["requests"])
    assert [row["request"] for row in r["requests"]] == list(range(1, 25))
    # Several ledger refusals, each followed by a retrain, in the live run.
    assert r["num_retrains"] >= 1 and len(r["retrains"]) == 1 + r["num_retrains"]
    assert r["requests"][-1]["retrains"] == r["num_retrains"]
    assert any(row["retrained_before"] for row in r["requests"])
    # Test accuracy every --eval-every (5 in smoke) requests and at the end.
    evaluated = [
        row["request"] for row in r["requests"] if row["test_accuracy"] is not None
    ]
    assert evaluated == [5, 10, 15, 20, 24]
    # U never over the target; beta restarts at the training residual.
    assert all(0 <= row["beta"] <= r["budget"] for row in r["requests"])
    assert r["u_epsilon_max"] <= r["config"]["epsilon"]
    # The ledger on disk replays to the live summary (and to what was returned).
    assert r["ledger"]["replay_equals_live"] and r["dp_example"]["replay_equals_live"]
    s, torn = L.replay_file(out / mod.LEDGER)
    assert torn is None
    assert L.summary_to_dict(s) == r["ledger"]["summary"]
    assert s.num_retrains == r["num_retrains"] and s.total_removed == 24
    assert s.unlearning.used == pytest.approx(r["requests"][-1]["beta"], rel=0, abs=0)
    entries = L.read_ledger(out / mod.LEDGER).entries
    assert entries[1]["kind"] == "train" and entries[1]["residual_bound"] > 0
    assert all(e["dp"] is None for e in entries[1:])  # no DP claim for the models
    assert s.dp_method == "non-private"
    # The D example composes Gaussian publications and stays within its budget.
    d = r["dp_example"]["summary"]["dp"]
    assert d["accountant"] == "exact-gaussian"
    assert d["epsilon"] <= r["dp_example"]["dp_epsilon_budget"]
    assert returned["num_retrains"] == r["num_retrains"]


def test_correct_residual_records_set_mode(tmp_path):
    mod = _load_script()
    r = mod.main(
        [
            "--x64",
            "--smoke",
            "--correct-residual",
            "--requests",
            "8",
            "--no-plots",
            "--out",
            str(tmp_path),
        ]
    )
    assert r["residual_mode"] == "set"
    entries = L.read_ledger(tmp_path / mod.LEDGER).entries
    requests = [e for e in entries if e["kind"] == "request"]
    assert len(requests) == 8
    assert all(e["residual_mode"] == "set" for e in requests)
    # beta is the current step's bound, as the library says.
    for row in r["requests"]:
        assert row["beta"] == pytest.approx(row["beta_library"], rel=1e-9)
        assert row["beta"] == row["residual_bound"]
    assert (
        L.replay_file(tmp_path / mod.LEDGER)[0]
        == L.Ledger.open(tmp_path / mod.LEDGER).summary
    )


def test_bad_options_raise(tmp_path):
    mod = _load_script()
    with pytest.raises(ValueError, match="--requests"):
        mod.main(["--requests", "0", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--dp-delta"):
        mod.main(["--dp-delta", "2", "--out", str(tmp_path)])
