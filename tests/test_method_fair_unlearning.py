"""Fair unlearning (Oesterling et al., AISTATS 2024) against the fairness attack."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpunlearn import methods, serve
from dpunlearn.accounting import ledger as L
from dpunlearn.methods.fair_unlearning import fairness_vector
from dpunlearn.threats import fairness as F


def with_group(d, g):
    # The sensitive attribute as column 6 (0.1 for group a, 0 otherwise).
    return methods.Data(np.concatenate([d.x, 0.1 * g[:, None].astype("f4")], 1), d.y)


def test_fairness_vector_matches_the_pairwise_sum():
    r = np.random.default_rng(0)
    X = r.normal(size=(12, 3))
    y = np.where(r.random(12) > 0.5, 1.0, -1.0)
    g = (r.random(12) > 0.4).astype(float)
    w = np.ones(12)
    w[[2, 5]] = 0
    s = np.zeros(3)
    a = [i for i in range(12) if g[i] and w[i]]
    b = [j for j in range(12) if not g[j] and w[j]]
    for i in a:
        for j in b:
            if y[i] == y[j]:
                s += X[i] - X[j]
    s /= len(a) * len(b)
    np.testing.assert_allclose(fairness_vector(jnp.asarray(X), y, g, w), s, rtol=1e-5, atol=1e-6)


def test_fair_unlearning_tracks_fair_retraining_and_resists_the_attack(tmp_path):
    # The fairness attack's 50 targeted deletions (tests/test_threats_fairness.py)
    # widen the plain model's EO gap; with the penalty (γ = 1) the Newton
    # step must stay within 0.01 of fair retraining on the same rows and
    # keep the gap at most half the plain model's (γ = 0, the control, is
    # the plain model: it cannot pass that).
    tr, gtr = F.synthetic_groups(0, 1000)
    te, gte = F.synthetic_groups(1, 4000)
    A, T = with_group(tr, gtr), with_group(te, gte)
    rows = F.select_fairness_deletions(tr, gtr, 50, lam=1e-3, rounds=5).rows
    mask = np.ones(1000, bool)
    mask[rows] = False
    gaps = {}
    for gamma in (0.0, 1.0):
        m = methods.fair_unlearning(lam=1e-3, sigma=0.01, fairness=gamma, group_column=6)
        state, _ = m.train(jax.random.key(0), A, None)

        def eo(st, m=m):
            return F.equalized_odds_gap(np.asarray(m.predict(st.params, T.x)), te.y, gte)

        new, charge, info = m.unlearn(jax.random.key(1), state, jnp.asarray(rows), A)
        assert bool(info["valid"]) and float(charge.residual_bound) == pytest.approx(float(new.residual))
        retrained, _ = m.train(jax.random.key(0), A, jnp.asarray(mask))
        gaps[gamma] = (eo(new), eo(retrained))
    assert abs(gaps[1.0][0] - gaps[1.0][1]) <= 0.01
    assert gaps[1.0][0] <= 0.5 * gaps[0.0][0]
    # The model never uses the sensitive column.
    assert float(new.params[6]) == 0.0
    # Served through a paper-rule ledger: a small budget forces a retrain.
    led = L.Ledger.create(
        tmp_path / "l.jsonl", currency="certified_removal",
        params={"rule": "paper", "sigma": 0.01}, target_epsilon=1.0, target_delta=1e-4,
    )  # fmt: skip
    serve.record_training(led, m.train(jax.random.key(0), A, None)[1])
    res = serve.serve(m, state, rows[:10], A, key=jax.random.key(2), ledger=led)
    assert res.retrained and not np.asarray(res.state.mask)[rows[:10]].any()


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="group_column"):
        methods.fair_unlearning(lam=1e-3, sigma=0.0, fairness=1.0, group_column=-1)
    with pytest.raises(ValueError, match="fairness"):
        methods.fair_unlearning(lam=1e-3, sigma=0.0, fairness=-1.0, group_column=0)
    m = methods.fair_unlearning(lam=1e-3, sigma=0.0, fairness=1.0, group_column=9)
    with pytest.raises(ValueError, match="group_column"):
        m.train(jax.random.key(0), methods.Data(np.zeros((4, 3), "f4"), np.ones(4, "f4")), None)
