"""Smoke test of experiments/noisy_unlearning.py (the --smoke configuration).

Runs the script's ``main`` in-process once (240 training rows of the embedded
MNIST 3-vs-8 subset, ε = 1, one unlearning step for Figure 3a, one request
size for the removal sweep, a 16-unit nnx MLP on 300 rows of the ten digits)
and checks what it writes: the schema of ``results.json``, that certified
methods certify at most their target ε, that accuracies are probabilities and
exact retraining beats chance, and that the Langevin step counts are the
SMALLEST that the Rényi bound of Chien et al. 2024 (Thm 3.2 / Cor. 3.4),
written out again here, certifies: one step fewer must fail.
"""

import importlib.util
import json
import math
import os

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("mlxtend")
pytest.importorskip("flax")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "noisy_unlearning.py")
CERTIFIED_ON_LINEAR = {
    "langevin",
    "noisy_sgd",
    "descent_to_delete",
    "sekhari",
    "certified_finetune",
}


def _load_script():
    spec = importlib.util.spec_from_file_location("noisy_unlearning_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("noisy_unlearning")
    mod = _load_script()
    returned = mod.main(["--smoke", "--out", str(out)])
    with open(out / "results.json") as f:
        written = json.load(f)
    return mod, out, returned, written


def _langevin_epsilon(steps, *, m, eta, sigma, clip, n, removed, delta):
    """min over α of exp(−mηK/α)·4αS²M²/(mσ²n²) + ln(1/δ)/(α − 1), on a fine grid
    (a grid minimum is an upper bound on the true minimum)."""
    alpha = np.geomspace(1.0 + 1e-4, 1e4, 200_001)
    eps0 = 4 * alpha * removed**2 * clip**2 / (m * sigma**2 * n**2)
    return float(
        np.min(
            np.exp(-m * eta * steps / alpha) * eps0 + math.log(1 / delta) / (alpha - 1)
        )
    )


def test_schema_parts_and_plots(smoke):
    mod, out, returned, r = smoke
    assert r["config"]["smoke"] is True
    runs = r["runs"]
    assert runs and len(runs) == len(returned["runs"])
    for row in runs:
        missing = set(mod.RUN_KEYS) - set(row)
        assert not missing, (row["method"], missing)
        assert row["delta"] > 0 and row["epsilon"] > 0
        assert row["num_removed"] >= 1
        for k in ("gradient_evaluations_unlearn", "gradient_evaluations_retrain"):
            assert isinstance(row[k], int) and row[k] > 0, (row["method"], k, row[k])
        assert row["seconds_unlearn"] > 0 and row["seconds_retrain"] > 0
    parts = {(row["part"], row["method"]) for row in runs}
    assert {("fig3a", "langevin"), ("fig3a", "descent_to_delete")} <= parts
    assert {("removed", m) for m in mod.ALL_METHODS} <= parts
    assert {
        ("mlp", "langevin"),
        ("mlp", "certified_finetune"),
        ("mlp", "retrain"),
    } <= parts
    for name in ("fig3a.png", "removed.png"):
        assert os.path.getsize(out / name) > 1000
    with open(out / "config.json") as f:
        assert json.load(f)["options"]["smoke"] is True


def test_certified_epsilons_and_accuracies_are_sane(smoke):
    _, _, _, r = smoke
    for row in r["runs"]:
        for k in ("test_accuracy_unlearned", "test_accuracy_retrained"):
            assert 0.0 <= row[k] <= 1.0
        if row["part"] in ("fig3a", "removed") and row["method"] in CERTIFIED_ON_LINEAR:
            assert row["certified"], row
        if row["certified"]:
            assert row["epsilon_certified"] <= row["epsilon"] * (1 + 1e-6), row
        if row["method"] == "retrain":
            assert row["epsilon_certified"] == 0.0
    # The MLP Langevin run is the non-convex escape hatch: never certified.
    (mlp_langevin,) = [
        x for x in r["runs"] if x["part"] == "mlp" and x["method"] == "langevin"
    ]
    assert mlp_langevin["certified"] is False
    # Exact retraining beats chance (0.5 on two balanced classes, 0.1 on ten).
    for row in r["runs"]:
        if row["method"] == "retrain":
            chance = 0.1 if row["part"] == "mlp" else 0.5
            assert row["test_accuracy_retrained"] > chance + 0.15, row


def test_langevin_steps_are_the_fewest_the_bound_certifies(smoke):
    _, _, _, r = smoke
    cfg = r["config"]
    m = cfg["lam"]
    eta = 1 / (0.25 + m)
    rows = [
        x for x in r["runs"] if x["part"] == "removed" and x["method"] == "langevin"
    ]
    assert rows
    for row in rows:
        kw = {"m": m, "eta": eta, "sigma": cfg["sigma"], "clip": 1.0, "n": cfg["n"],
              "removed": row["num_removed"], "delta": row["delta"]}  # fmt: skip
        k = row["unlearn_steps"]
        assert k >= 1
        assert _langevin_epsilon(k, **kw) <= row["epsilon"] * (1 + 1e-3)
        assert _langevin_epsilon(k - 1, **kw) > row["epsilon"]
        assert row["gradient_evaluations_unlearn"] == k * (
            cfg["n"] - row["num_removed"]
        )
    # Control: the same check at a σ twice too small must reject these K
    # (ε₀ ∝ 1/σ², so K certifies nothing there).
    row = rows[0]
    kw = {"m": m, "eta": eta, "sigma": cfg["sigma"] / 2, "clip": 1.0, "n": cfg["n"],
          "removed": row["num_removed"], "delta": row["delta"]}  # fmt: skip
    assert _langevin_epsilon(row["unlearn_steps"], **kw) > row["epsilon"]
    # The paper's constants: our K is the fewest steps the bound certifies too.
    pc = r["paper_constants"]
    for s, k in zip(pc["num_removed"], pc["K_ours"]):
        m = pc["strong_convexity"]
        kw = {"m": m, "eta": 1 / (0.25 + m), "sigma": pc["sigma"], "clip": 1.0,
              "n": pc["n"], "removed": s, "delta": pc["delta"]}  # fmt: skip
        assert _langevin_epsilon(k, **kw) <= pc["epsilon"] * (1 + 1e-3)
        if k > 1:
            assert _langevin_epsilon(k - 1, **kw) > pc["epsilon"]
