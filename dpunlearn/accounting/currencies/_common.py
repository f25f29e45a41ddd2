"""Shared pieces of the currencies: the report type and order searches."""


from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy import optimize

from dpunlearn import _validate
from dpunlearn.accounting import _guards, mechanisms, rdp
from dpunlearn.accounting.calibration import calibrate


__all__ = [
    "CertificateReport",
    "DEFAULT_MAX_ORDER",
    "minimise_over_orders",
]


# Largest Rényi order searched by the Langevin / W∞ conversions: the authors'
# code (Graph-COM/Langevin_unlearning, SGD_unlearning) minimises over
# α ∈ (1, 10⁴]; any α gives a valid bound, so this only affects tightness.
DEFAULT_MAX_ORDER = 1e4
# Grid used before the local refinement in :func:`minimise_over_orders`:
# α − 1 log-spaced from 10**_GRID_LOG_MIN to max_order − 1.
_GRID_LOG_MIN = -6.0
_GRID_SIZE = 2049

Conversion = Literal["classic", "improved"]
_CONVERSIONS = ("classic", "improved")


class CertificateReport(NamedTuple):
    """The (U) certificate of the current model, in one currency.

    Attributes:
      currency: Name of the currency (``"certified_removal"``, ``"sekhari"``,
        ``"d2d"``, ``"langevin"``, ``"wsgd"``, ``"dp_extractor"``).
      certified: Whether the current model carries the (ε, δ) certificate
        below (``used <= budget``).
      epsilon: ε of the certificate of the current model (0 right after a
        retrain for the recursive currencies).
      delta: δ of the certificate.
      used: Budget consumed since the last retrain, in ``unit``.
      budget: Total budget in ``unit``.
      remaining: ``budget - used`` (negative when not certified).
      unit: What ``used``/``budget`` count: ``"residual_norm"``,
        ``"deleted_points"`` or ``"epsilon"``.
    """

    currency: str
    certified: bool
    epsilon: float
    delta: float
    used: float
    budget: float
    remaining: float
    unit: str


# ---------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------


def _check_conversion(conversion: str) -> None:
    if conversion not in _CONVERSIONS:
        raise ValueError(f"Expected conversion in {_CONVERSIONS}, got {conversion!r}.")


def _check_delta(delta: float) -> None:
    _validate.open_interval(0.0, 1.0, delta=delta)


def minimise_over_orders(
    curve: Callable[[np.ndarray], np.ndarray],
    delta: float,
    *,
    conversion: Conversion = "classic",
    max_order: float = DEFAULT_MAX_ORDER,
) -> tuple[float, float]:
    """min over α ∈ (1, max_order] of the (ε, δ) conversion of an RDP curve.

    ``curve`` maps an array of orders to the RDP values at those orders
    (vectorised). The minimum is found on a dense log grid of α − 1 and then
    refined with a bounded scalar search between the neighbours of the best
    grid point. The ε returned is the conversion *evaluated at the returned
    α*, so it is a valid bound whatever the quality of the search.

    Args:
      curve: Vectorised RDP curve ``orders -> rdp`` (float64 arrays).
      delta: δ in (0, 1).
      conversion: ``"classic"`` (ε_α + ln(1/δ)/(α−1), Mironov 2017, Prop. 3;
        what the Langevin / Noisy-SGD authors use) or ``"improved"``
        (Canonne, Kamath & Steinke 2020, Prop. 12; tighter).
      max_order: Largest order searched (> 1).

    Returns:
      ``(epsilon, alpha)``. ``epsilon`` is ``inf`` if the curve is infinite
      everywhere.

    Guarantees:
      Certified for the returned α; the α is an estimated optimum.
    """
    _check_delta(delta)
    _check_conversion(conversion)
    _validate.positive(max_order=max_order)
    _check_max_order(max_order)
    delta = float(delta)
    orders = _order_grid(float(max_order))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        curve_vals = np.asarray(curve(orders), dtype=np.float64)
    _validate.array_in_range(
        "curve(orders)", curve_vals, 0.0, math.inf, lo_closed=True, hi_closed=True
    )
    values = rdp._dp_epsilons(orders, curve_vals, delta, conversion)
    i = int(np.argmin(values))
    best_eps, best_alpha = float(values[i]), float(orders[i])
    if not math.isfinite(best_eps):
        return math.inf, best_alpha
    lo = math.log(orders[max(i - 1, 0)] - 1.0)
    hi = math.log(orders[min(i + 1, len(orders) - 1)] - 1.0)

    def objective(log_am1: float) -> float:
        a = np.array([1.0 + math.exp(log_am1)])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            val = np.asarray(curve(a), np.float64)
        if not val[0] >= 0.0:  # NaN or negative: not an RDP value, never chosen
            return math.inf
        return float(rdp._dp_epsilons(a, val, delta, conversion)[0])

    if hi > lo:
        # Brent's parabolic steps turn an infinite value into NaN warnings; the
        # search sees a huge finite stand-in, the answer is re-evaluated below.
        res = optimize.minimize_scalar(
            lambda x: min(objective(x), 1e300),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-10},
        )
        alpha = min(1.0 + math.exp(float(res.x)), max_order)
        val = objective(math.log(alpha - 1.0))  # re-evaluate at the α returned
        if val < best_eps:
            best_eps, best_alpha = val, alpha
    return best_eps, best_alpha


@functools.lru_cache(maxsize=16)
def _order_grid(max_order: float) -> np.ndarray:
    """The (read-only, cached) grid of :func:`minimise_over_orders`: α − 1
    log-spaced from 1e-6 to ``max_order`` − 1, last point exactly ``max_order``."""
    hi_log = math.log10(max_order - 1.0)
    lo_log = min(_GRID_LOG_MIN, hi_log - 1.0)
    orders = 1.0 + np.logspace(lo_log, hi_log, _GRID_SIZE)
    orders[-1] = max_order
    orders.setflags(write=False)
    return orders


def _smallest_int(
    fn: Callable[[int], float],
    target: float,
    *,
    lo: int,
    name: str,
    max_doublings: int = 53,
) -> int:
    """Smallest integer x ≥ lo with fn(x) ≤ target, fn non-increasing.

    Finds an upper bracket by doubling (up to 2**53, the count limit), then
    calls the never-overshoot :func:`calibrate`. Raises ValueError naming
    ``name`` if unreachable.
    """
    if fn(lo) <= target:
        return lo
    hi = max(1, 2 * lo)
    for _ in range(max_doublings):
        if fn(hi) <= target:
            break
        hi *= 2
    else:
        raise ValueError(
            f"No {name} up to {hi} reaches the target {target}; the target is "
            "below what this mechanism can certify."
        )
    x = int(calibrate(fn, target, lo=lo, hi=hi, increasing=False, integer=True))
    return x


def _largest_int(fn: Callable[[int], float], target: float, *, lo: int, hi: int) -> int:
    """Largest integer x in [lo, hi] with fn(x) ≤ target, fn non-decreasing.

    Returns ``lo - 1`` if even ``fn(lo)`` exceeds the target.
    """
    if fn(lo) > target:
        return lo - 1
    if fn(hi) <= target:
        return hi
    return int(calibrate(fn, target, lo=lo, hi=hi, increasing=True, integer=True))


def _smallest_float(
    fn: Callable[[float], float],
    target: float,
    *,
    start: float,
    name: str,
    max_doublings: int = 200,
) -> float:
    """Smallest x > 0 with fn(x) ≤ target, fn non-increasing (e.g. ε(σ)).

    Brackets by doubling/halving from ``start``, then calls the never-overshoot
    :func:`calibrate` (float64 resolution). Raises ValueError naming ``name``
    if no x reaches the target.
    """
    hi = float(start)
    for _ in range(max_doublings):
        if fn(hi) <= target:
            break
        hi *= 2.0
    else:
        raise ValueError(
            f"No {name} up to {hi:g} reaches the target {target}; the target is "
            "below what this mechanism can certify."
        )
    lo = hi
    for _ in range(max_doublings):
        lo *= 0.5
        if fn(lo) > target:
            break
    else:  # pragma: no cover - fn(0+) <= target: any positive value works
        return lo
    return float(calibrate(fn, target, lo=lo, hi=hi, increasing=False))


def _reach_target(
    search: Callable[..., Any], fn: Callable, target_epsilon: float, **kw
):
    """``search(fn, target_epsilon, **kw)`` (:func:`_smallest_int` or
    :func:`_smallest_float`), its ValueError restated as an unreachable target."""
    try:
        return search(fn, float(target_epsilon), **kw)
    except ValueError as e:
        raise ValueError(f"target_epsilon={target_epsilon} unreachable: {e}") from None


def _epsilon_report(
    currency: str,
    eps: float,
    delta: float,
    target_epsilon: float,
    *,
    certified: bool | None = None,
) -> CertificateReport:
    """Report of a currency counted in ε: ``used`` = ε, ``budget`` = the target.

    Certified iff ε ≤ ``target_epsilon`` unless ``certified`` is given.
    """
    if certified is None:
        certified = eps <= target_epsilon
    return CertificateReport(
        currency,
        certified,
        eps,
        delta,
        eps,
        target_epsilon,
        target_epsilon - eps,
        "epsilon",
    )


def _check_count(name: str, value: Any) -> None:
    """Raises unless ``value`` is an integer in [0, 2**53] (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"Expected {name} to be an integer >= 0, got {value!r}.")
    _guards.count(name, value, minimum=0)


def _check_max_order(max_order: float) -> None:
    if not max_order > 1.0:
        raise ValueError(f"Expected max_order={max_order} > 1.")


def _rdp_epsilon(
    curve: Callable[[np.ndarray], np.ndarray],
    fresh: bool,
    config: Any,
    delta: float,
) -> tuple[float, float]:
    """(ε, α) of an RDP ``curve`` under ``config``'s conversion and max order;
    ``(0, nan)`` for a ``fresh`` (just retrained) model."""
    _check_delta(delta)
    if fresh:
        return 0.0, math.nan
    return minimise_over_orders(
        curve, delta, conversion=config.conversion, max_order=config.max_order
    )


def _gaussian_sigma_zcdp(epsilon: float, delta: float, sensitivity: float) -> float:
    """σ = Δ/(√2·κ), κ = √(ln(1/δ)+ε) − √(ln(1/δ)): the Gaussian via zCDP (G2).

    Bun & Steinke 2016, Prop. 1.3 solved for σ (``docs/accounting.md`` §2, G2);
    valid for every ε > 0. Not in :mod:`mechanisms` (which has the ε direction,
    :func:`~dpunlearn.accounting.mechanisms.zcdp_to_dp`), so it lives here.
    κ is formed as ε/(√(L + ε) + √L), L = −ln δ: the difference cancels to 0
    for ε ≪ L·1e-16 (ZeroDivisionError), and 1/δ overflows for subnormal δ.
    """
    log_inv = -math.log(delta)
    # ln σ = ln Δ − ln √2 − ln κ, κ = ε/(√(L + ε) + √L): κ itself underflows for ε = 5e-324.
    log_sigma = (
        math.log(sensitivity) - 0.5 * math.log(2.0) - math.log(epsilon)
        + math.log(math.sqrt(log_inv + epsilon) + math.sqrt(log_inv))
    )
    sigma = math.exp(log_sigma) if log_sigma < 709.0 else math.inf
    return _sigma_result(sigma, epsilon, sensitivity)


def _sigma_result(sigma: float, epsilon: float, sensitivity: float) -> float:
    """A closed-form σ, or a ValueError when it left float64's normal range."""
    return _guards.positive_result(
        sigma, "sigma", f"change epsilon={epsilon} or the sensitivity ({sensitivity})."
    )


def _gaussian_sigma_classic_closed(
    epsilon: float, delta: float, sensitivity: float
) -> float:
    """Classic σ = Δ√(2 ln(1.25/δ))/ε for ε ≤ 1 (Dwork & Roth 2014, Thm A.1).

    :func:`~dpunlearn.accounting.mechanisms.gaussian_sigma_classic` requires
    ε < 1 strictly; the papers (Sekhari et al.) and their test vectors use the
    formula at ε = 1 as well, where it is still valid (checked against the exact
    Gaussian δ in tests), so ε = 1 is allowed here.
    """
    if not 0.0 < epsilon <= 1.0:
        raise ValueError(
            f"Expected epsilon={epsilon} in (0, 1] for the classic Gaussian "
            "calibration; use method='analytic' or 'zcdp' for larger epsilon."
        )
    if epsilon < 1.0:
        return mechanisms.gaussian_sigma_classic(epsilon, delta, sensitivity)
    log_term = math.log(1.25) - math.log(delta)
    return _sigma_result(sensitivity * math.sqrt(2.0 * log_term) / epsilon, epsilon, sensitivity)


def _gaussian_sigma(method: str, epsilon: float, delta: float, sensitivity: float):
    if method == "classic":
        return _gaussian_sigma_classic_closed(epsilon, delta, sensitivity)
    if method == "zcdp":
        return _gaussian_sigma_zcdp(epsilon, delta, sensitivity)
    if method == "analytic":
        return mechanisms.gaussian_sigma_analytic(epsilon, delta, sensitivity)
    raise ValueError(
        f"Expected method in ('classic', 'zcdp', 'analytic'), got {method!r}."
    )


def _gaussian_eps(method: str, sigma: float, delta: float, sensitivity: float):
    """ε certified by one Gaussian release under the calibration ``method``.

    A sensitivity of 0 (nothing to hide) certifies ε = 0.
    """
    if method not in ("classic", "zcdp", "analytic"):
        raise ValueError(
            f"Expected method in ('classic', 'zcdp', 'analytic'), got {method!r}."
        )
    if sensitivity == 0.0:
        return 0.0
    ratio = sensitivity / sigma  # inf if it overflows: ε = inf, honestly
    log_inv = -math.log(delta)
    if method == "classic":
        eps = ratio * math.sqrt(2.0 * (math.log(1.25) + log_inv))
        return eps if eps <= 1.0 else math.inf  # the theorem needs ε ≤ 1
    if method == "zcdp":
        # ρ + 2√(ρ ln(1/δ)) with √ρ = Δ/(√2σ) (Bun & Steinke 2016, Prop. 1.3
        # and 1.6), without forming ρ (which under- or overflows first).
        root_rho = ratio / math.sqrt(2.0)
        return root_rho * (root_rho + 2.0 * math.sqrt(log_inv))
    return mechanisms.gaussian_epsilon(delta, sigma=sigma, sensitivity=sensitivity)


