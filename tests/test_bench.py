"""``dpunlearn bench`` (dpunlearn.benchmark): rows, schema, filtering, errors.

CI runs ``dpunlearn bench --smoke`` itself: every method × every scenario ×
the smoke data sets (breast cancer, German credit, synthetic groups), 300
records, in one process (``--jobs 1``); the checks below read its
``results.json``, ``table.md`` and PNGs. Cheaper runs check the
not-applicable rows of every method, that the records do not depend on the
number of workers, and the one-line errors.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dpunlearn import benchmark as B
from dpunlearn import cli, methods

SMOKE = B.SIZES["smoke"]["datasets"]

# The smoke run is a module fixture: keep its tests on one pytest-xdist worker
# (``--dist loadgroup`` in pyproject.toml), so that it runs once.
pytestmark = pytest.mark.xdist_group("bench-smoke")


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
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    # One process: under pytest -n 2 the other test worker holds the second
    # core, and each bench worker would compile every program again (measured
    # on 2 cores: 478 s with the default 2 workers, about 200 s alone in one).
    code = cli.main(["bench", "--smoke", "--out", str(out), "--no-progress", "--jobs", "1"])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    rec = {(r["method"], r["scenario"], r["dataset"]): r for r in res["records"]}
    return out, res, rec


def test_every_registered_method_is_benchmarked():
    assert set(B.METHODS) == set(methods.FACTORIES)


def test_smoke_has_a_record_per_method_scenario_dataset(smoke):
    out, res, _ = smoke
    assert {"breast-cancer", "german-credit"} <= set(SMOKE)
    got = [(r["method"], r["scenario"], r["dataset"]) for r in res["records"]]
    want = {(m, s, d) for m in B.METHODS for s in B.SCENARIOS for d in SMOKE}
    assert set(got) == want and len(got) == len(want)  # 300 records
    table = (out / "table.md").read_text()
    for m, s, d in want:
        assert f"| {d} | {m} | {s} |" in table
    for d in SMOKE:
        assert (out / f"bench_{d}.png").stat().st_size > 0
    assert res["pngs"] == [f"bench_{d}.png" for d in SMOKE]
    assert res["config"]["size"] == "smoke" and res["config"]["jobs"] >= 1


def test_records_schema(smoke):
    _, res, _ = smoke
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


def test_not_applicable_rows_say_why(smoke):
    _, _, rec = smoke
    for d in SMOKE:
        # Slow-down needs the data-dependent certified-removal budget.
        assert rec["retrain", "slowdown", d]["status"] == B.NA
        assert "budget" in rec["retrain", "slowdown", d]["reason"]
        assert rec["certified_removal", "slowdown", d]["status"] == "ok"
    # The sensitive attribute: German credit (and synthetic groups) have one.
    for m in B.METHODS:
        assert rec[m, "fairness", "breast-cancer"]["status"] == B.NA
        assert rec[m, "fairness", "german-credit"]["status"] == "ok"
    assert rec["fair_unlearning", "utility", "breast-cancer"]["status"] == B.NA
    assert rec["fair_unlearning", "utility", "german-credit"]["status"] == "ok"
    # Every scenario runs (status ok) for some method on every data set that has
    # what it needs.
    for d in SMOKE:
        for s in B.SCENARIOS:
            if s != "fairness" or d != "breast-cancer":
                assert any(rec[m, s, d]["status"] == "ok" for m in B.METHODS), (s, d)


def test_exact_retraining_forgets_exactly(smoke):
    # retrain's unlearning is retraining without F (deterministic solver): the
    # forget-set accuracy gap and the test disagreement must be exactly zero,
    # and the audit cannot tell the two apart.
    _, _, rec = smoke
    for d in SMOKE:
        f = rec["retrain", "forgetting", d]["metrics"]
        assert f["forget_accuracy_gap"]["value"] == 0.0
        assert f["test_disagreement_with_retrained"]["value"] == 0.0
        u = rec["retrain", "utility", d]["metrics"]
        assert (
            u["test_accuracy_after_unlearning"]["value"]
            == u["test_accuracy_retrained"]["value"]
        )
        a = rec["retrain", "audit", d]["metrics"]
        assert a["epsilon_lower_bound"]["value"] == 0.0
        assert a["forget_set_size"] == B.SIZES["smoke"]["forget"]


def test_german_credit_task_has_the_attribute_as_column_0():
    t = B.load_task("german-credit", seed=0, n_train=200, n_test=400)
    assert t.train.num_rows == 200 and t.test.num_rows == 200  # all 200 held out
    assert t.pool.num_rows == 600
    for data, g in ((t.train, t.group_train), (t.test, t.group_test)):
        x = np.asarray(data.x, np.float64)
        np.testing.assert_array_equal(x[:, 0] > 0, g)
        assert x.shape[1] == 25 and np.linalg.norm(x, axis=1).max() <= 1.0
        assert set(np.unique(np.asarray(data.y))) == {-1.0, 1.0}
        assert 0 < g.mean() < 0.5  # female: about 31 %


def test_records_do_not_depend_on_the_number_of_workers():
    kw = dict(  # noqa: C408
        methods=("retrain", "sisa"),
        scenarios=("utility", "forgetting", "audit"),
        datasets=("synthetic-groups",),
        size="tiny",
        progress=False,
    )
    one, two = B.run(jobs=1, **kw), B.run(jobs=2, **kw)
    assert one["config"]["jobs"] == 1 and two["config"]["jobs"] == 2

    def strip(res):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in res["records"]]

    assert strip(one) == strip(two)


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
            "--jobs",
            "1",
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
        ("--jobs", "0"),
    ],
)
def test_bad_names_are_one_line_errors(flag, value, tmp_path, capsys):
    code = cli.main(["bench", "--tiny", flag, value, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("dpunlearn: error: expected " + flag)
    assert not (tmp_path / "results.json").exists()
