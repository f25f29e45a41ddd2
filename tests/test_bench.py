"""``dpunlearn bench`` (dpunlearn.benchmark): rows, schema, filtering, errors.

The full grid at ``--tiny`` (10 methods × 10 scenarios) takes about 3 min of
CPU, too much for CI; the run here is ``--tiny`` with two methods over every
scenario (about 40 s), plus an all-method run of a scenario that does not
apply (instant) for the not-applicable rows.
"""

from __future__ import annotations

import json
import math

import pytest

from dpunlearn import benchmark as B
from dpunlearn import cli, methods

RUN_METHODS = ("retrain", "certified_removal")


def check_metric(name, m):
    assert set(m) >= {"value", "interval", "interval_kind"}, name
    if m["interval"] is not None:
        lo, hi = (float(x) for x in m["interval"])  # JSON writes ±inf as "inf"
        assert m["interval_kind"] in ("t", "clopper-pearson", "bootstrap"), name
        v = float(m["value"])
        if math.isfinite(lo) and math.isfinite(hi):
            assert lo <= hi, name
            # CP/bootstrap/t intervals contain the estimate (ε bounds: the
            # point estimate is the interval's lower end).
            assert lo - 1e-9 <= v <= hi + 1e-9, (name, m)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    code = cli.main(["bench", "--tiny", "--methods", ",".join(RUN_METHODS),
                     "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    return out, json.loads((out / "results.json").read_text())


def test_every_registered_method_is_benchmarked():
    assert set(B.METHODS) == set(methods.FACTORIES)


def test_tiny_has_a_record_per_method_scenario_dataset(tiny):
    out, res = tiny
    recs = res["records"]
    datasets = B.SIZES["tiny"]["datasets"]
    got = {(r["method"], r["scenario"], r["dataset"]) for r in recs}
    want = {(m, s, d) for m in RUN_METHODS for s in B.SCENARIOS for d in datasets}
    assert got == want and len(recs) == len(want)  # --methods filters, nothing else
    table = (out / "table.md").read_text()
    for m, s, d in want:
        assert f"| {d} | {m} | {s} |" in table
    for d in datasets:
        assert (out / f"bench_{d}.png").stat().st_size > 0


def test_records_schema(tiny):
    _, res = tiny
    for r in res["records"]:
        assert set(r) >= {
            "method",
            "scenario",
            "dataset",
            "status",
            "reason",
            "headline",
            "metrics",
            "seconds",
        }
        assert r["status"] in ("ok", B.NA), r  # no errors
        if r["status"] == B.NA:
            assert r["reason"] and not r["metrics"]
            continue
        assert r["headline"] in r["metrics"]
        head = r["metrics"][r["headline"]]
        assert head["value"] is not None, r
        for name, m in r["metrics"].items():
            if isinstance(m, dict):
                check_metric(name, m)


def test_not_applicable_rows_say_why(tiny):
    _, res = tiny
    rec = {(r["method"], r["scenario"]): r for r in res["records"]}
    # Slow-down needs the data-dependent certified-removal budget.
    assert rec["retrain", "slowdown"]["status"] == B.NA
    assert "budget" in rec["retrain", "slowdown"]["reason"]
    assert rec["certified_removal", "slowdown"]["status"] == "ok"


def test_exact_retraining_forgets_exactly(tiny):
    # retrain's unlearning is retraining without F (deterministic solver): the
    # forget-set accuracy gap and the test disagreement must be exactly zero;
    # certified removal's Newton step is not retraining.
    _, res = tiny
    rec = {(r["method"], r["scenario"]): r for r in res["records"]}
    f = rec["retrain", "forgetting"]["metrics"]
    assert f["forget_accuracy_gap"]["value"] == 0.0
    assert f["test_disagreement_with_retrained"]["value"] == 0.0
    u = rec["retrain", "utility"]["metrics"]
    assert (
        u["test_accuracy_after_unlearning"]["value"]
        == u["test_accuracy_retrained"]["value"]
    )


def test_all_methods_get_a_row_when_a_scenario_does_not_apply(tmp_path, capsys):
    code = cli.main(
        [
            "bench",
            "--tiny",
            "--scenarios",
            "fairness",
            "--datasets",
            "breast-cancer",
            "--out",
            str(tmp_path),
            "--no-plots",
        ]
    )
    assert code == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert [r["method"] for r in res["records"]] == list(B.METHODS)
    assert all(
        r["status"] == B.NA and "sensitive" in r["reason"] for r in res["records"]
    )
    printed, progress = capsys.readouterr()
    assert printed.count("| not applicable |") == len(B.METHODS)
    n = len(B.METHODS)
    assert f"] {n}/{n} " in progress and progress.endswith("\n")  # the bar, on stderr


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--methods", "retrain,nope"),
        ("--scenarios", "utility,speed"),
        ("--datasets", "adult"),
        ("--methods", ","),
    ],
)
def test_bad_names_are_one_line_errors(flag, value, tmp_path, capsys):
    code = cli.main(["bench", "--tiny", flag, value, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("dpunlearn: error: expected " + flag)
    assert not (tmp_path / "results.json").exists()
