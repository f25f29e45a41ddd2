"""Exact binomial confidence bounds (Clopper & Pearson, Biometrika 1934).

Host-side, float64 (``scipy.stats.beta``): these bounds feed decisions and
reports, never a traced computation. The scalar functions check their input
and return a ``float``; :func:`clopper_pearson_array` is the same bound over
arrays of counts (ROC curves, audits over many thresholds).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _stats

__all__ = [
    "clopper_pearson_array",
    "clopper_pearson_interval",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
]


def _check(successes: int, trials: int, alpha: float) -> None:
    if isinstance(successes, bool) or isinstance(trials, bool):
        raise ValueError("Expected integer counts, got a bool.")
    if int(trials) != trials or trials < 1:
        raise ValueError(f"Expected trials={trials} to be an integer >= 1.")
    if int(successes) != successes or not 0 <= successes <= trials:
        raise ValueError(
            f"Expected successes={successes} to be an integer in [0, {trials}]."
        )
    _check_alpha(alpha)


def _check_alpha(alpha: float) -> None:
    if not (0.0 < alpha < 1.0) or math.isnan(alpha):
        raise ValueError(f"Expected alpha={alpha} in the open interval (0, 1).")


def _upper(k: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    full = k >= n
    a, b = k + 1.0, np.where(full, 1.0, n - k)
    return np.where(full, 1.0, _stats.beta.ppf(1.0 - alpha, a, b))


def _lower(k: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    none = k <= 0
    a, b = np.where(none, 1.0, k), n - k + 1.0
    return np.where(none, 0.0, _stats.beta.ppf(alpha, a, b))


def clopper_pearson_upper(successes: int, trials: int, alpha: float) -> float:
    """One-sided upper bound ``p̄``: ``P(p <= p̄) >= 1 − alpha`` for every ``p``.

    ``p̄`` is the ``1 − alpha`` quantile of ``Beta(k + 1, n − k)`` (``1`` when
    ``k = n``); with ``k = 0`` it is ``1 − alpha^{1/n}``.
    """
    _check(successes, trials, alpha)
    return float(_upper(np.float64(successes), np.float64(trials), alpha))


def clopper_pearson_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided lower bound ``p̲``: ``P(p >= p̲) >= 1 − alpha``."""
    _check(successes, trials, alpha)
    return float(_lower(np.float64(successes), np.float64(trials), alpha))


def clopper_pearson_interval(
    successes: int, trials: int, alpha: float
) -> tuple[float, float]:
    """Two-sided interval of coverage ``>= 1 − alpha`` (``alpha/2`` per side)."""
    return (
        clopper_pearson_lower(successes, trials, alpha / 2),
        clopper_pearson_upper(successes, trials, alpha / 2),
    )


def clopper_pearson_array(successes, trials, alpha: float, *, side: str) -> np.ndarray:
    """The one-sided bounds above, elementwise over broadcast arrays of counts.

    Args:
      successes, trials: Integer arrays (broadcast together), ``0 <= k <= n``,
        ``n >= 1``.
      alpha: Per-bound failure probability, in ``(0, 1)``.
      side: ``"upper"`` (:func:`clopper_pearson_upper`) or ``"lower"``.

    Returns:
      A float64 array of the broadcast shape.
    """
    if side not in ("upper", "lower"):
        raise ValueError(f'Expected side to be "upper" or "lower", got {side!r}.')
    _check_alpha(alpha)
    k = np.asarray(successes)
    n = np.asarray(trials)
    for name, arr in (("successes", k), ("trials", n)):
        if arr.dtype == bool or arr.dtype.kind not in "iu":
            raise ValueError(f"Expected {name} to hold integers, got dtype {arr.dtype}.")
    k, n = np.broadcast_arrays(k.astype(np.float64), n.astype(np.float64))
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ValueError("Expected 0 <= successes <= trials and trials >= 1 elementwise.")
    return (_upper if side == "upper" else _lower)(k, n, alpha)
