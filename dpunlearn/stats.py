"""Exact binomial confidence bounds (Clopper & Pearson, Biometrika 1934).

Host-side, float64 (``scipy.stats.beta``): these bounds feed decisions and
reports, never a traced computation.
"""

from __future__ import annotations

import math

from scipy import stats as _stats

__all__ = ["clopper_pearson_interval", "clopper_pearson_lower", "clopper_pearson_upper"]


def _check(successes: int, trials: int, alpha: float) -> None:
    if isinstance(successes, bool) or isinstance(trials, bool):
        raise ValueError("Expected integer counts, got a bool.")
    if int(trials) != trials or trials < 1:
        raise ValueError(f"Expected trials={trials} to be an integer >= 1.")
    if int(successes) != successes or not 0 <= successes <= trials:
        raise ValueError(
            f"Expected successes={successes} to be an integer in [0, {trials}]."
        )
    if not (0.0 < alpha < 1.0) or math.isnan(alpha):
        raise ValueError(f"Expected alpha={alpha} in the open interval (0, 1).")


def clopper_pearson_upper(successes: int, trials: int, alpha: float) -> float:
    """One-sided upper bound ``p̄``: ``P(p <= p̄) >= 1 − alpha`` for every ``p``.

    ``p̄`` is the ``1 − alpha`` quantile of ``Beta(k + 1, n − k)`` (``1`` when
    ``k = n``); with ``k = 0`` it is ``1 − alpha^{1/n}``.
    """
    _check(successes, trials, alpha)
    if successes == trials:
        return 1.0
    return float(_stats.beta.ppf(1.0 - alpha, successes + 1, trials - successes))


def clopper_pearson_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided lower bound ``p̲``: ``P(p >= p̲) >= 1 − alpha``."""
    _check(successes, trials, alpha)
    if successes == 0:
        return 0.0
    return float(_stats.beta.ppf(alpha, successes, trials - successes + 1))


def clopper_pearson_interval(
    successes: int, trials: int, alpha: float
) -> tuple[float, float]:
    """Two-sided interval of coverage ``>= 1 − alpha`` (``alpha/2`` per side)."""
    return (
        clopper_pearson_lower(successes, trials, alpha / 2),
        clopper_pearson_upper(successes, trials, alpha / 2),
    )
