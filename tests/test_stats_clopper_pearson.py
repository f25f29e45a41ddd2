"""Clopper–Pearson bounds (dpunlearn.stats) against scipy's exact binomial.

The one-sided upper bound ``p̄`` of ``k`` successes in ``n`` trials is the
``p`` with ``P[Bin(n, p) <= k] = alpha`` (lower: ``P[Bin(n, p) >= k] = alpha``):
checked by root-finding on scipy's binomial CDF, not by the Beta quantile
the implementation uses. Deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as st

from dpunlearn import stats

CASES = [(0, 10), (1, 10), (5, 10), (9, 10), (10, 10), (3, 200), (197, 200), (0, 1), (1, 1)]


def _upper_by_cdf(k, n, alpha):
    if k == n:
        return 1.0
    return optimize.brentq(lambda p: st.binom.cdf(k, n, p) - alpha, 1e-15, 1 - 1e-15, xtol=1e-14)


def _lower_by_cdf(k, n, alpha):
    if k == 0:
        return 0.0
    return optimize.brentq(lambda p: st.binom.sf(k - 1, n, p) - alpha, 1e-15, 1 - 1e-15, xtol=1e-14)


@pytest.mark.parametrize("k,n", CASES)
@pytest.mark.parametrize("alpha", [0.025, 0.2])
def test_scalar_bounds_invert_the_binomial_tail(k, n, alpha):
    assert stats.clopper_pearson_upper(k, n, alpha) == pytest.approx(_upper_by_cdf(k, n, alpha), abs=1e-9)
    assert stats.clopper_pearson_lower(k, n, alpha) == pytest.approx(_lower_by_cdf(k, n, alpha), abs=1e-9)
    lo, hi = stats.clopper_pearson_interval(k, n, alpha)
    assert lo == pytest.approx(_lower_by_cdf(k, n, alpha / 2), abs=1e-9)
    assert hi == pytest.approx(_upper_by_cdf(k, n, alpha / 2), abs=1e-9)


def test_array_bounds_equal_the_scalar_ones_and_check_input():
    k = np.array([c[0] for c in CASES])
    n = np.array([c[1] for c in CASES])
    up = stats.clopper_pearson_array(k, n, 0.05, side="upper")
    lo = stats.clopper_pearson_array(k, n, 0.05, side="lower")
    for i, (ki, ni) in enumerate(CASES):
        assert up[i] == stats.clopper_pearson_upper(int(ki), int(ni), 0.05)
        assert lo[i] == stats.clopper_pearson_lower(int(ki), int(ni), 0.05)
    with pytest.raises(ValueError, match="side"):
        stats.clopper_pearson_array(k, n, 0.05, side="both")
    with pytest.raises(ValueError, match="successes"):
        stats.clopper_pearson_array(k.astype(float), n, 0.05, side="upper")
    with pytest.raises(ValueError, match="trials"):
        stats.clopper_pearson_array(np.array([3]), np.array([2]), 0.05, side="upper")
    with pytest.raises(ValueError, match="alpha"):
        stats.clopper_pearson_array(k, n, 1.5, side="upper")


def test_coverage_of_the_upper_bound_at_its_stated_rate():
    """The bound fails (p above p̄) with probability <= alpha: the exact
    failure probability at p = 0.3, n = 40 sums the binomial pmf over the
    k whose bound is below p, and must not exceed alpha (and a bound that
    is too tight by a factor — the Wald interval — must exceed it)."""
    n, p, alpha = 40, 0.3, 0.05
    ks = np.arange(n + 1)
    up = stats.clopper_pearson_array(ks, np.full_like(ks, n), alpha, side="upper")
    fail = st.binom.pmf(ks[up < p], n, p).sum()
    assert fail <= alpha
    phat = ks / n
    wald = phat + 1.0 * np.sqrt(phat * (1 - phat) / n)  # wrong scale: z = 1, not 1.645
    assert st.binom.pmf(ks[wald < p], n, p).sum() > alpha
