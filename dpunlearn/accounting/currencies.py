"""Unlearning currencies: what each certified-unlearning method spends per request.

Every method certifies the same kind of statement, **(U)**: the model released
after a deletion request is (ε, δ)-indistinguishable from retraining without
the deleted records. What differs is the quantity that accumulates across
requests (``accountants.md`` §5.7):

=====================  ==========================  =============================
currency               state (a NamedTuple)         reset by a full retrain?
=====================  ==========================  =============================
Guo certified removal  β = Σ residual-norm bounds   yes (fresh b, β ← β_train)
Sekhari et al.         number of deleted points     yes (count ← 0)
Descent-to-Delete      nothing (n shrinks only)     n/a (per-release noise)
Langevin (Rényi)       the requests since retrain   yes (curve ← 0)
Noisy-SGD (W∞)         the W∞ radius Z              yes (Z ← 0)
DP extractor + CR head group size k and head β      full retrain only
=====================  ==========================  =============================

Each currency is a pure state, an ``*_init`` / ``*_update`` /
``*_reset`` triple and a ``*_report`` returning a :class:`CertificateReport`.
Constants live in frozen config dataclasses validated on construction.
Calibration helpers (smallest σ, largest number of requests, smallest number
of fine-tuning steps) are built on :func:`dpunlearn.accounting.calibration.calibrate`,
which never returns a value on the wrong side of the target.

None of these is the **(D)** ledger (DP of all releases for the records that
remain, which a retrain never resets): see :mod:`dpunlearn.accounting.ledger`.

Everything is host-side float64 NumPy/SciPy; nothing is jitted. Functions over
Rényi orders are vectorised over the order grid (no Python loop over orders).

References:
  Guo, Goldstein, Hannun, van der Maaten. Certified Data Removal from Machine
  Learning Models. ICML 2020. https://arxiv.org/abs/1911.03030
  Sekhari, Acharya, Kamath, Suresh. Remember What You Want to Forget:
  Algorithms for Machine Unlearning. NeurIPS 2021. https://arxiv.org/abs/2103.03279
  Neel, Roth, Sharifi-Malvajerdi. Descent-to-Delete: Gradient-Based Methods for
  Machine Unlearning. ALT 2021. https://arxiv.org/abs/2007.02923
  Chien, Wang, Chen, Li. Langevin Unlearning. NeurIPS 2024.
  https://arxiv.org/abs/2401.10371
  Chien, Wang, Chen, Li. Certified Machine Unlearning via Noisy Stochastic
  Gradient Descent. NeurIPS 2024. https://arxiv.org/abs/2403.17105
  Mironov. Rényi Differential Privacy. CSF 2017 (Prop. 11, weak triangle
  inequality). https://arxiv.org/abs/1702.07476
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
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
    # Guo certified removal
    "cr_constant",
    "cr_budget",
    "cr_epsilon",
    "cr_sigma",
    "supported_removals",
    "CertifiedRemovalConfig",
    "CertifiedRemovalState",
    "cr_init",
    "cr_update",
    "cr_reset",
    "cr_report",
    # Sekhari et al.
    "sekhari_gamma",
    "sekhari_sigma",
    "sekhari_capacity",
    "sekhari_max_deletions",
    "SekhariConfig",
    "SekhariState",
    "sekhari_init",
    "sekhari_update",
    "sekhari_reset",
    "sekhari_report",
    # Descent-to-Delete
    "d2d_contraction",
    "d2d_sensitivity",
    "d2d_sigma",
    "d2d_epsilon",
    "d2d_initial_iterations",
    "d2d_min_iterations",
    "d2d_strong_min_iterations",
    "d2d_strong_iterations",
    "d2d_strong_sigma",
    "D2DConfig",
    "D2DState",
    "d2d_init",
    "d2d_update",
    "d2d_reset",
    "d2d_report",
    # Langevin
    "langevin_constants",
    "LangevinConfig",
    "LangevinState",
    "langevin_init",
    "langevin_update",
    "langevin_reset",
    "langevin_rdp",
    "langevin_epsilon",
    "langevin_min_steps",
    "langevin_max_requests",
    "langevin_min_sigma",
    "langevin_report",
    # Noisy-SGD W-infinity
    "wsgd_contraction",
    "wsgd_step_radius",
    "WassersteinConfig",
    "WassersteinState",
    "wsgd_init",
    "wsgd_update",
    "wsgd_reset",
    "wsgd_rdp",
    "wsgd_epsilon",
    "wsgd_min_epochs",
    "wsgd_max_requests",
    "wsgd_min_sigma",
    "wsgd_radius",
    "wsgd_report",
    # DP extractor + certified head
    "extractor_head_epsilon",
    "extractor_max_removals",
    "ExtractorHeadConfig",
    "ExtractorHeadState",
    "extractor_init",
    "extractor_update",
    "extractor_reset",
    "extractor_report",
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

    Bun & Steinke 2016, Prop. 1.3 solved for σ (``algorithms.md`` §12.0, G2);
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


# ---------------------------------------------------------------------------
# (a) Guo et al. certified removal
# ---------------------------------------------------------------------------


def cr_constant(delta: float) -> float:
    """c = √(2 ln(1.5/δ)) of Guo et al. (2020), Theorem 3 / Algorithm 2.

    Loss perturbation b ~ N(0, σ²I) with σ = cε′/ε gives (ε, δ)-certified
    removal for residual norm ε′, with δ = 1.5·e^{−c²/2}.

    Args:
      delta: δ in (0, 1).

    Returns:
      c > 0.
    """
    _check_delta(delta)
    return math.sqrt(2.0 * math.log(1.5 / float(delta)))


def cr_budget(
    *,
    sigma: float,
    epsilon: float,
    delta: float,
    method: Literal["paper", "analytic"] = "paper",
) -> float:
    """Total gradient-residual budget β_max of a Guo et al. certified-removal model.

    While the accumulated (sum-form) residual-norm bound β stays ≤ β_max the
    released model is (ε, δ)-certified-removal (Guo et al. 2020, Algorithm 2;
    ``algorithms.md`` §1.5):

    * ``method="paper"``: β_max = σε/c with c = √(2 ln(1.5/δ)). Valid only for
      ε ≤ 1 (``algorithms.md`` §11.7); larger ε raises.
    * ``method="analytic"``: the largest β with the exact Gaussian δ
      (Balle & Wang 2018, Thm 8) of sensitivity β and noise σ at most δ; it is
      found by never-overshoot bisection and holds for any ε > 0.

    Args:
      sigma: Std σ > 0 of the loss perturbation b.
      epsilon: Target ε > 0.
      delta: Target δ in (0, 1).
      method: ``"paper"`` or ``"analytic"``.

    Returns:
      β_max > 0, in sum-form gradient-norm units (``algorithms.md`` §11.1).

    Raises:
      ValueError: On out-of-range arguments, naming the argument.

    Guarantees:
      Certified: a model whose residual bound is ≤ the returned β_max is
      (ε, δ)-CR. ``"analytic"`` never returns a β whose exact δ exceeds δ.

    Example:
      >>> round(cr_budget(sigma=10.0, epsilon=1.0, delta=1e-4), 3)
      2.28
      >>> round(cr_budget(sigma=10.0, epsilon=1.0, delta=1e-4, method="analytic"), 3)
      3.139
    """
    _validate.positive(sigma=sigma, epsilon=epsilon)
    _check_delta(delta)
    sigma, epsilon, delta = float(sigma), float(epsilon), float(delta)
    if method == "paper":
        if epsilon > 1.0:
            raise ValueError(
                f"Expected epsilon={epsilon} <= 1 for method='paper' (the classic "
                "calibration understates epsilon above 1); use method='analytic'."
            )
        return sigma * epsilon / cr_constant(delta)
    if method == "analytic":

        def delta_at(beta: float) -> float:
            return mechanisms.gaussian_delta(epsilon, sigma=sigma, sensitivity=beta)

        hi = sigma
        while delta_at(hi) <= delta:
            hi *= 2.0
        lo = hi
        while delta_at(lo) > delta:
            lo *= 0.5
        return float(calibrate(delta_at, delta, lo=lo, hi=hi, increasing=True))
    raise ValueError(f"Expected method in ('paper', 'analytic'), got {method!r}.")


def cr_epsilon(
    residual: float,
    *,
    sigma: float,
    delta: float,
    method: Literal["paper", "analytic"] = "paper",
) -> float:
    """ε certified by a model with accumulated residual bound β = ``residual``.

    ``"paper"``: ε = cβ/σ (returns ``inf`` when that exceeds 1, where the
    classic calibration is not valid). ``"analytic"``: exact Gaussian ε at
    sensitivity β (0 when β = 0).

    Guarantees:
      Certified: the model is (returned ε, δ)-CR.
    """
    _validate.non_negative(residual=residual)
    _validate.positive(sigma=sigma)
    _check_delta(delta)
    if float(residual) / float(sigma) == 0.0:  # (also when the ratio underflows)
        return 0.0
    if method == "paper":
        eps = cr_constant(delta) * float(residual) / float(sigma)
        return eps if eps <= 1.0 else math.inf
    if method == "analytic":
        return mechanisms.gaussian_epsilon(delta, sigma=sigma, sensitivity=residual)
    raise ValueError(f"Expected method in ('paper', 'analytic'), got {method!r}.")


def cr_sigma(
    residual_budget: float,
    *,
    epsilon: float,
    delta: float,
    method: Literal["paper", "analytic"] = "paper",
) -> float:
    """Smallest loss-perturbation σ whose budget covers ``residual_budget``.

    ``"paper"``: σ = cβ/ε (Guo et al. 2020, Theorem 3; ε ≤ 1).
    ``"analytic"``: the analytic-Gaussian σ at sensitivity β.

    Guarantees:
      Certified: ``cr_budget(sigma=result, ...) >= residual_budget`` up to
      float rounding of the closed form (analytic: never undershoots).
    """
    _validate.positive(residual_budget=residual_budget, epsilon=epsilon)
    _check_delta(delta)
    if method == "paper":
        if epsilon > 1.0:
            raise ValueError(
                f"Expected epsilon={epsilon} <= 1 for method='paper'; use "
                "method='analytic'."
            )
        return cr_constant(delta) * float(residual_budget) / float(epsilon)
    if method == "analytic":
        return mechanisms.gaussian_sigma_analytic(epsilon, delta, residual_budget)
    raise ValueError(f"Expected method in ('paper', 'analytic'), got {method!r}.")


def supported_removals(bounds: Sequence[float] | np.ndarray, budget: float) -> int:
    """Number of leading removals whose cumulative residual bound fits the budget.

    The first k with ``cumsum(bounds)[k] > budget`` (Guo et al. 2020,
    Algorithm 2; how the paper's Fig. 1 counts supported removals). Vectorised.

    Args:
      bounds: Per-removal residual-norm bounds βᵢ ≥ 0, shape ``[T]``.
      budget: β_max ≥ 0 (e.g. from :func:`cr_budget`).

    Returns:
      k in [0, T].
    """
    b = np.asarray(bounds, dtype=np.float64)
    _validate.ndim("bounds", b, 1)
    _validate.finite_array("bounds", b)
    if np.any(b < 0):
        raise ValueError(f"Expected bounds >= 0, found {float(b.min())}.")
    _validate.non_negative(budget=budget)
    return int(np.searchsorted(np.cumsum(b), float(budget), side="right"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class CertifiedRemovalConfig:
    """Constants of a Guo et al. certified-removal model.

    Attributes:
      sigma: Loss-perturbation std σ > 0 (sum form, ``algorithms.md`` §11).
      epsilon: Certified ε > 0.
      delta: Certified δ in (0, 1).
      method: ``"paper"`` (β_max = σε/c) or ``"analytic"``.
    """

    sigma: float
    epsilon: float
    delta: float
    method: Literal["paper", "analytic"] = "paper"

    def __post_init__(self):
        _validate.positive(sigma=self.sigma, epsilon=self.epsilon)
        _check_delta(self.delta)
        if self.method not in ("paper", "analytic"):
            raise ValueError(
                f"Expected method in ('paper', 'analytic'), got {self.method!r}."
            )
        cr_budget(
            sigma=self.sigma, epsilon=self.epsilon, delta=self.delta, method=self.method
        )  # raises for paper with epsilon > 1

    @property
    def budget(self) -> float:
        return cr_budget(
            sigma=self.sigma, epsilon=self.epsilon, delta=self.delta, method=self.method
        )


class CertifiedRemovalState(NamedTuple):
    """Residual bound β of the current model, and the points removed since the
    last (re)training.

    ``β`` is the certified bound on the (sum-form) gradient residual of the
    released model on the remaining data: the training residual of the last
    (re)training plus every removal's bound since (:func:`cr_update` with
    ``mode="add"``), or the current step's bound alone (``mode="set"``).
    """

    residual: float = 0.0
    num_removed: int = 0


def _training_residual(value: float) -> float:
    _validate.non_negative(training_residual=value)
    return float(value)


def cr_init(training_residual: float = 0.0) -> CertifiedRemovalState:
    """State right after training (or a retrain) with a fresh perturbation b.

    Args:
      training_residual: β of the trained model before any removal: the
        training solver's leftover sum-form gradient norm plus its rounding
        allowance (``dpunlearn.certified.CertifiedState.training_residual``).
        0 (the default) only for an exact minimiser; a certified model's β
        does not start at 0.

    Raises:
      ValueError: if ``training_residual`` is negative or not finite.
    """
    return CertifiedRemovalState(_training_residual(training_residual), 0)


_CR_MODES = ("add", "set")


def cr_update(
    state: CertifiedRemovalState,
    residual_bound: float,
    num_removed: int = 1,
    *,
    mode: Literal["add", "set"] = "add",
) -> CertifiedRemovalState:
    """One removal's residual-norm bound, added to β or replacing it.

    * ``mode="add"`` (default; Guo et al., Algorithm 2): β ← β + βᵢ, where βᵢ
      is the step's bound *increment*: the sum-form data-dependent bound of the
      Newton step plus any solver residual (``algorithms.md`` §1.5, §11.5;
      ``RemovalInfo.bound_increment``). The residual left by training and the
      earlier steps is carried over, so the bounds add up.
    * ``mode="set"``: β ← βᵢ, where βᵢ bounds the *whole* residual of the
      released model on its own (the residual-correcting Newton step,
      ``dpunlearn.certified.remove(..., correct_residual=True)``, whose
      ``RemovalInfo.cumulative_bound`` is the current step's bound: the step
      cancels the residual carried over). Only sound for such a bound: a
      step that does not cancel the carried-over residual must use ``"add"``.

    No budget check here: see :func:`cr_report` (or the ledger, which refuses).

    Raises:
      ValueError: ``residual_bound`` negative or not finite, ``num_removed``
        not an integer >= 1, ``mode`` not ``"add"`` or ``"set"``.
    """
    _validate.non_negative(residual_bound=residual_bound)
    _validate.positive_int(num_removed=num_removed)
    if mode not in _CR_MODES:
        raise ValueError(f"Expected mode in {_CR_MODES}, got {mode!r}.")
    bound = float(residual_bound)
    beta = bound if mode == "set" else state.residual + bound
    return CertifiedRemovalState(beta, state.num_removed + int(num_removed))


def cr_reset(
    state: CertifiedRemovalState, training_residual: float = 0.0
) -> CertifiedRemovalState:
    """Full retrain with a fresh b: β ← the new model's training residual
    (0 by default, for an exact minimiser; ``accountants.md`` §5.7)."""
    del state
    return cr_init(training_residual)


def cr_report(
    state: CertifiedRemovalState, config: CertifiedRemovalConfig
) -> CertificateReport:
    """(U) certificate: certified iff β ≤ β_max; ε, δ are the configured ones."""
    budget = config.budget
    ok = state.residual <= budget
    eps = (
        min(
            cr_epsilon(
                state.residual,
                sigma=config.sigma,
                delta=config.delta,
                method=config.method,
            ),
            config.epsilon,
        )
        if ok
        else math.inf
    )
    return CertificateReport(
        "certified_removal",
        ok,
        eps,
        config.delta,
        state.residual,
        budget,
        budget - state.residual,
        "residual_norm",
    )


# ---------------------------------------------------------------------------
# (b) Sekhari et al.
# ---------------------------------------------------------------------------


def sekhari_gamma(
    *,
    hessian_lipschitz: float,
    lipschitz: float,
    strong_convexity: float,
    n: int,
    capacity: int,
    tight: bool = False,
) -> float:
    """Sensitivity γ of the Newton-corrected model (Sekhari et al. 2021, Thm 3).

    γ = 2Mm²L²/(λ³n²) (``algorithms.md`` §12.1; the λ³ is confirmed by a
    derivation and units). ``tight=True`` gives Mm²L²/(2λ³(n−m)²), valid for
    any m < n and ≤ γ when m ≤ n/2.

    Args:
      hessian_lipschitz: M > 0 (operator-norm Hessian-Lipschitz constant).
      lipschitz: L > 0, bound on ‖∇f(ŵ, z)‖ for deleted z.
      strong_convexity: λ > 0.
      n: Training-set size (integer ≥ 1).
      capacity: m, the largest number of deletions certified (1 ≤ m ≤ n/2;
        m < n for ``tight``).

    Returns:
      γ > 0: an upper bound on ‖w̄ − ŵ′‖ (distance to the retrained ERM).
    """
    log_gamma = _sekhari_log_gamma(
        hessian_lipschitz, lipschitz, strong_convexity, n, capacity, tight
    )
    return _guards.positive_result(
        math.exp(log_gamma) if log_gamma < 709.0 else math.inf,
        "sensitivity gamma",
        f"strong_convexity={strong_convexity}, lipschitz={lipschitz}, "
        f"hessian_lipschitz={hessian_lipschitz} and n={n} put it outside float64.",
    )


def _sekhari_log_gamma(
    hessian_lipschitz, lipschitz, strong_convexity, n, capacity, tight
) -> float:
    """ln γ of :func:`sekhari_gamma` after validation, from logs (λ³ and n²
    under- or overflow at the ends of float64: ZeroDivisionError before)."""
    _validate.positive(
        hessian_lipschitz=hessian_lipschitz,
        lipschitz=lipschitz,
        strong_convexity=strong_convexity,
    )
    n = _guards.count("n", n)
    m = _guards.count("capacity", capacity)
    M, L, lam = float(hessian_lipschitz), float(lipschitz), float(strong_convexity)
    if tight:
        if not m < n:
            raise ValueError(f"Expected capacity={m} < n={n}.")
        scale, denom = math.log(0.5), n - m
    else:
        if 2 * m > n:
            raise ValueError(f"Expected capacity={m} <= n/2={n / 2}.")
        scale, denom = math.log(2.0), n
    return (
        scale + math.log(M) + 2.0 * math.log(m) + 2.0 * math.log(L)
        - 3.0 * math.log(lam) - 2.0 * math.log(denom)
    )


def sekhari_sigma(
    epsilon: float,
    delta: float,
    *,
    hessian_lipschitz: float,
    lipschitz: float,
    strong_convexity: float,
    n: int,
    capacity: int,
    method: Literal["classic", "zcdp", "analytic"] = "classic",
    tight: bool = False,
) -> float:
    """Output-noise σ for (ε, δ)-unlearning of up to ``capacity`` deletions.

    Sekhari et al. (2021), Algorithm 2: σ = (γ/ε)·√(2 ln(1.25/δ)) (``classic``,
    the paper's; needs ε ≤ 1). ``zcdp`` (G2) and ``analytic`` (G3, Balle & Wang)
    hold for any ε (``algorithms.md`` §12.0, §12.1).

    Guarantees:
      Certified: every release w̄ + N(0, σ²I) computed from the stored ŵ and
      Hessian with a cumulative delete set of size ≤ capacity is (ε, δ)-close
      to the same procedure run on the retrained model (whose reference output
      is noisy too).
    """
    _validate.positive(epsilon=epsilon)
    _check_delta(delta)
    gamma = sekhari_gamma(
        hessian_lipschitz=hessian_lipschitz,
        lipschitz=lipschitz,
        strong_convexity=strong_convexity,
        n=n,
        capacity=capacity,
        tight=tight,
    )
    return _gaussian_sigma(method, float(epsilon), float(delta), gamma)


def sekhari_capacity(
    *,
    n: int,
    dim: int,
    epsilon: float,
    delta: float,
    strong_convexity: float,
    lipschitz: float,
    hessian_lipschitz: float,
    excess_risk: float,
) -> int:
    """Deletion capacity m_max for a target excess population risk ``a``.

    m_max = ⌊min(n/2, n·√(aελ³/(2ML³))·(2d·ln(1.25/δ))^(−1/4))⌋: the noise
    adds ≤ L·σ·√d to the excess risk (``algorithms.md`` §12.1, derived; it has
    the n√ε/(d ln(1/δ))^{1/4} scaling of Sekhari et al., Thm 4, whose own
    constant is unverified).

    Returns:
      m_max ≥ 0 (integer).
    """
    n = _guards.count("n", n)
    dim = _guards.count("dim", dim)
    _validate.positive(
        epsilon=epsilon,
        strong_convexity=strong_convexity,
        lipschitz=lipschitz,
        hessian_lipschitz=hessian_lipschitz,
        excess_risk=excess_risk,
    )
    _check_delta(delta)
    lam, L, M = float(strong_convexity), float(lipschitz), float(hessian_lipschitz)
    a, eps = float(excess_risk), float(epsilon)
    log_term = math.log(1.25) - math.log(delta)  # 1.25/δ overflows for subnormal δ
    try:
        m = (
            n
            * math.sqrt(a * eps * lam**3 / (2.0 * M * L**3))
            * (2.0 * dim * log_term) ** (-0.25)
        )
        direct = math.isfinite(m) and m > 0.0 and math.isfinite(lam**3 * L**3)
    except (OverflowError, ZeroDivisionError):
        direct = False
    if not direct:  # some factor left float64: the same formula in logs
        log_m = (
            math.log(n)
            + 0.5 * (math.log(a) + math.log(eps) + 3.0 * math.log(lam)
                     - math.log(2.0) - math.log(M) - 3.0 * math.log(L))
            - 0.25 * (math.log(2.0) + math.log(dim) + math.log(log_term))
        )
        m = math.exp(min(log_m, math.log(n)))
    return math.floor(min(n / 2.0, m))


def sekhari_max_deletions(
    sigma: float,
    epsilon: float,
    delta: float,
    *,
    hessian_lipschitz: float,
    lipschitz: float,
    strong_convexity: float,
    n: int,
    method: Literal["classic", "zcdp", "analytic"] = "classic",
) -> int:
    """Largest capacity m whose required σ (:func:`sekhari_sigma`) is ≤ ``sigma``.

    Uses the never-overshoot integer :func:`calibrate`. Returns 0 if even one
    deletion needs more noise.
    """
    _validate.positive(sigma=sigma)
    n = _guards.count("n", n)

    def need(m: int) -> float:
        # γ below float64 needs no noise at all, γ above it infinite noise;
        # in between exactly sekhari_sigma (so the answer is consistent with it).
        log_gamma = _sekhari_log_gamma(
            hessian_lipschitz, lipschitz, strong_convexity, n, int(m), False
        )
        if log_gamma < math.log(_guards.TINY):
            return 0.0
        if log_gamma > 709.0:
            return math.inf
        return sekhari_sigma(
            epsilon,
            delta,
            hessian_lipschitz=hessian_lipschitz,
            lipschitz=lipschitz,
            strong_convexity=strong_convexity,
            n=n,
            capacity=int(m),
            method=method,
        )

    if n < 2:
        return 0
    return max(0, _largest_int(need, float(sigma), lo=1, hi=n // 2))


@dataclasses.dataclass(frozen=True, kw_only=True)
class SekhariConfig:
    """Constants of a Sekhari et al. unlearner (capacity fixed up front).

    Attributes:
      capacity: m, deletions certified before a retrain.
      epsilon, delta: The (ε, δ) the noise σ was calibrated for.
    """

    capacity: int
    epsilon: float
    delta: float

    def __post_init__(self):
        _guards.count("capacity", self.capacity)
        _validate.positive(epsilon=self.epsilon)
        _check_delta(self.delta)


class SekhariState(NamedTuple):
    """Cumulative number of deleted points |U| since the last retrain."""

    num_deleted: int = 0


def sekhari_init() -> SekhariState:
    """State right after training: U = ∅."""
    return SekhariState()


def sekhari_update(state: SekhariState, num_deleted: int = 1) -> SekhariState:
    """|U| ← |U| + k (each release recomputes from ŵ with the cumulative U)."""
    _guards.count("num_deleted", num_deleted)
    return SekhariState(state.num_deleted + int(num_deleted))


def sekhari_reset(state: SekhariState) -> SekhariState:
    """Full retrain: the count and the stored statistics are refreshed."""
    del state
    return sekhari_init()


def sekhari_report(state: SekhariState, config: SekhariConfig) -> CertificateReport:
    """(U) certificate: certified iff |U| ≤ m."""
    ok = state.num_deleted <= config.capacity
    return CertificateReport(
        "sekhari",
        ok,
        config.epsilon if ok else math.inf,
        config.delta,
        float(state.num_deleted),
        float(config.capacity),
        float(config.capacity - state.num_deleted),
        "deleted_points",
    )


# ---------------------------------------------------------------------------
# (c) Descent-to-Delete
# ---------------------------------------------------------------------------


def d2d_contraction(strong_convexity: float, smoothness: float) -> float:
    """γ = (β − m)/(β + m): the contraction of projected GD with η = 2/(β + m).

    γ rounds to 1.0 when m/β < 1e-16; the accountants below use
    ln γ = log1p(−2m/(β + m)) instead, which keeps such ratios.
    """
    _validate.positive(strong_convexity=strong_convexity, smoothness=smoothness)
    m, beta = float(strong_convexity), float(smoothness)
    if beta < m:
        raise ValueError(f"Expected smoothness={beta} >= strong_convexity={m}.")
    return (beta - m) / (beta + m)


def _d2d_log_contraction(strong_convexity: float, smoothness: float) -> float:
    """ln γ after :func:`d2d_contraction`'s checks; −inf when β = m (γ = 0)."""
    d2d_contraction(strong_convexity, smoothness)
    m, beta = float(strong_convexity), float(smoothness)
    ratio = 2.0 / (1.0 + beta / m)  # 1 − γ = 2m/(β + m), without forming β + m
    if ratio == 0.0:
        raise ValueError(
            f"Expected strong_convexity/smoothness={m / beta} above 1e-308: the "
            "contraction γ = (β − m)/(β + m) is exactly 1 in float64 (no progress per step)."
        )
    return math.log1p(-ratio) if ratio < 1.0 else -math.inf


def _d2d_log_sensitivity(
    *, lipschitz: float, strong_convexity: float, smoothness: float, n: int, iterations: int
) -> float:
    """ln Δ, Δ = 4Lγ^I/(mn(1 − γ^I)), in logs: γ^I underflows for large I (Δ
    came out 0.0 at I = 1e9) and mn may overflow. −inf when γ = 0 (Δ = 0)."""
    _validate.positive(lipschitz=lipschitz)
    n = _guards.count("n", n)
    iters = _guards.count("iterations", iterations)
    lg = _d2d_log_contraction(strong_convexity, smoothness)
    if lg == -math.inf:
        return -math.inf
    return (
        math.log(4.0) + math.log(lipschitz) + iters * lg
        - math.log(strong_convexity) - math.log(n) - math.log(-math.expm1(iters * lg))
    )


def d2d_sensitivity(
    *,
    lipschitz: float,
    strong_convexity: float,
    smoothness: float,
    n: int,
    iterations: int,
) -> float:
    """Δ = 4Lγ^I/(mn(1 − γ^I)): distance between the published iterate and retraining.

    ``algorithms.md`` §12.2, steps 1–5 (steady state E = 2Lγ^I/(mn(1−γ^I)),
    Δ = 2E). n is the size of the smallest dataset from which a point is
    deleted during the sequence. Exactly 0 when β = m (γ = 0: one step lands
    on the optimum).

    Raises:
      ValueError: On invalid arguments, or when Δ > 0 leaves float64 (e.g.
        γ^I underflows for large ``iterations``; the message names it).
    """
    log_sens = _d2d_log_sensitivity(
        lipschitz=lipschitz, strong_convexity=strong_convexity,
        smoothness=smoothness, n=n, iterations=iterations,
    )
    if log_sens == -math.inf:
        return 0.0
    return _guards.positive_result(
        math.exp(log_sens) if log_sens < 709.0 else math.inf,
        "sensitivity",
        f"its log is {log_sens:.6g} at iterations={iterations}, n={n}; use fewer iterations.",
    )


def _d2d_log_noise_sensitivity(variant: str, **kw) -> tuple[str, float]:
    """(calibration method, ln of the sensitivity it is applied to)."""
    if variant not in ("paper", "tight", "analytic"):
        raise ValueError(
            f"Expected variant in ('paper', 'tight', 'analytic'), got {variant!r}."
        )
    log_sens = _d2d_log_sensitivity(**kw)
    if variant == "paper":  # G2 on the shift 2Δ = 8Lγ^I/(mn(1−γ^I))
        return "zcdp", log_sens + math.log(2.0)
    return ("zcdp" if variant == "tight" else "analytic"), log_sens


def d2d_sigma(
    epsilon: float,
    delta: float,
    *,
    lipschitz: float,
    strong_convexity: float,
    smoothness: float,
    n: int,
    iterations: int,
    variant: Literal["paper", "tight", "analytic"] = "paper",
) -> float:
    """Per-release noise σ of Descent-to-Delete (weak variant, published outputs).

    * ``paper``: σ = 4√2·Lγ^I/(mn(1−γ^I)κ), κ = √(ln(1/δ)+ε) − √(ln(1/δ))
      (Neel et al. 2021, Thm 3.1 as implemented by both public codes).
    * ``tight``: half of that (G2 on Δ, ``algorithms.md`` §12.2).
    * ``analytic``: exact Gaussian (G3) on Δ.

    Raises:
      ValueError: On invalid arguments; when β = m (γ = 0: the sensitivity
        is 0 and no noise is needed); when σ leaves float64 (e.g. I = 1e9 makes
        γ^I underflow: the message names ``iterations``).

    Guarantees:
      Certified: each published θ̂ᵢ = θ′ᵢ + N(0, σ²I) is (ε, δ)-indistinguishable
      from retraining, for any number of non-adaptive requests; nothing
      accumulates.
    """
    _validate.positive(epsilon=epsilon)
    _check_delta(delta)
    method, log_sens = _d2d_log_noise_sensitivity(
        variant,
        lipschitz=lipschitz,
        strong_convexity=strong_convexity,
        smoothness=smoothness,
        n=n,
        iterations=iterations,
    )
    if log_sens == -math.inf:
        raise ValueError(
            f"Expected smoothness={smoothness} > strong_convexity={strong_convexity}: "
            "with equal constants the contraction is 0, the sensitivity is 0 and no "
            "noise is needed."
        )
    sens = math.exp(log_sens) if log_sens < 709.0 else math.inf
    if not (_guards.TINY <= sens < math.inf):
        where = "underflows" if log_sens < 0 else "overflows"
        raise ValueError(
            f"The D2D sensitivity {where} float64 (its log is {log_sens:.6g}) at "
            f"iterations={iterations}, n={n}, and so does the noise sigma it needs; "
            + ("use fewer iterations (d2d_epsilon gives the epsilon of a given sigma)."
               if where == "underflows" else "check lipschitz, strong_convexity and n.")
        )
    return _gaussian_sigma(method, float(epsilon), float(delta), sens)


def d2d_epsilon(
    sigma: float,
    delta: float,
    *,
    lipschitz: float,
    strong_convexity: float,
    smoothness: float,
    n: int,
    iterations: int,
    variant: Literal["paper", "tight", "analytic"] = "paper",
) -> float:
    """ε certified per release by D2D noise ``sigma`` (inverse of :func:`d2d_sigma`).

    Only the ratio Δ/σ matters; it is formed in logs when Δ leaves float64,
    so large ``iterations`` give ε → 0, not an error. ε = 0 when β = m.
    """
    _validate.positive(sigma=sigma)
    _check_delta(delta)
    method, log_sens = _d2d_log_noise_sensitivity(
        variant,
        lipschitz=lipschitz,
        strong_convexity=strong_convexity,
        smoothness=smoothness,
        n=n,
        iterations=iterations,
    )
    sens = math.exp(log_sens) if log_sens < 709.0 else math.inf
    if _guards.TINY <= sens < math.inf:
        return _gaussian_eps(method, float(sigma), float(delta), sens)
    log_r = log_sens - math.log(sigma)
    if log_r > 709.0:
        return math.inf
    return _gaussian_eps(method, 1.0, float(delta), math.exp(log_r))


def d2d_initial_iterations(
    *,
    iterations: int,
    diameter: float,
    lipschitz: float,
    strong_convexity: float,
    smoothness: float,
    n: int,
) -> int:
    """Training iterations T ≥ I + ⌈ln(D·m·n·(1−γ^I)/(2L))/ln(1/γ)⌉ (or I).

    Makes the retrained reference land within the steady-state distance E
    (``algorithms.md`` §12.2, step 4; derived). Computed in logs (D·m·n
    overflowed for D = 1e300).

    Raises:
      ValueError: On invalid arguments, or when T exceeds 2**53.
    """
    _validate.positive(diameter=diameter, lipschitz=lipschitz)
    iters = _guards.count("iterations", iterations)
    n = _guards.count("n", n)
    lg = _d2d_log_contraction(strong_convexity, smoothness)
    if lg == -math.inf:
        return iters
    log_arg = (
        math.log(diameter) + math.log(strong_convexity) + math.log(n)
        + math.log(-math.expm1(iters * lg)) - math.log(2.0) - math.log(lipschitz)
    )
    if log_arg <= 0.0:
        return iters
    return _iteration_count(iters + math.ceil(log_arg / -lg), "initial iterations")


def _iteration_count(value: float, what: str) -> int:
    if not value <= _guards.MAX_COUNT:
        raise ValueError(
            f"The {what} exceed 2**53 ({value:.3g}): strong_convexity is too small "
            "relative to smoothness for this target."
        )
    return int(value)


def d2d_min_iterations(
    sigma: float,
    epsilon: float,
    delta: float,
    *,
    lipschitz: float,
    strong_convexity: float,
    smoothness: float,
    n: int,
    variant: Literal["paper", "tight", "analytic"] = "paper",
) -> int:
    """Smallest I (GD steps per update) whose required σ is ≤ ``sigma``.

    Where the required σ would underflow float64 (large I), any ``sigma``
    suffices; the search treats it as 0 instead of failing.
    """
    _validate.positive(sigma=sigma)

    def need(i: int) -> float:
        _, log_sens = _d2d_log_noise_sensitivity(
            variant, lipschitz=lipschitz, strong_convexity=strong_convexity,
            smoothness=smoothness, n=n, iterations=int(i),
        )
        if log_sens < math.log(_guards.TINY):  # γ = 0 or γ^I underflowed
            return 0.0
        return d2d_sigma(
            epsilon,
            delta,
            lipschitz=lipschitz,
            strong_convexity=strong_convexity,
            smoothness=smoothness,
            n=n,
            iterations=int(i),
            variant=variant,
        )

    return _smallest_int(need, float(sigma), lo=1, name="iterations")


def _kappa_strong(epsilon: float, delta: float, k: float) -> float:
    """√(b + (k+1)ε) − √(b + kε), b = 2 ln(2/δ), as ε/(sum of the roots): the
    difference cancels to 0 for tiny ε (ZeroDivisionError before)."""
    base = 2.0 * (math.log(2.0) - math.log(delta))
    return epsilon / (math.sqrt(base + (k + 1.0) * epsilon) + math.sqrt(base + k * epsilon))


def d2d_strong_min_iterations(
    epsilon: float,
    delta: float,
    *,
    dim: int,
    strong_convexity: float,
    smoothness: float,
) -> int:
    """Strong-variant I ≥ ⌈ln(√(2d)/((1−γ)κ₁))/ln(1/γ)⌉ (Neel et al. 2021).

    κ₁ = √(2 ln(2/δ)+ε) − √(2 ln(2/δ)). Constants as in Graph-COM
    ``baseline.py::sequential2`` (``algorithms.md`` §12.2; structure verified,
    constants not re-derived). In logs; 1 when β = m (γ = 0).

    Raises:
      ValueError: On invalid arguments, or when I exceeds 2**53.
    """
    _validate.positive(epsilon=epsilon)
    _check_delta(delta)
    dim = _guards.count("dim", dim)
    lg = _d2d_log_contraction(strong_convexity, smoothness)
    if lg == -math.inf:
        return 1
    m, beta = float(strong_convexity), float(smoothness)
    # ln(1 − γ) = ln(2m/(β + m)) = ln 2 − ln(1 + β/m), in logs for β/m near 1e308
    log_one_minus_gamma = math.log(2.0) - float(np.logaddexp(0.0, math.log(beta) - math.log(m)))
    k1 = _kappa_strong(float(epsilon), float(delta), 0.0)
    val = (0.5 * math.log(2.0 * dim) - log_one_minus_gamma - math.log(k1)) / -lg
    return max(1, _iteration_count(math.ceil(val), "strong-variant iterations"))


def d2d_strong_iterations(
    request: int,
    *,
    iterations: int,
    dim: int,
    delta: float,
    strong_convexity: float,
    smoothness: float,
) -> int:
    """Iterations of the i-th strong-variant update.

    Iᵢ = I + ⌈ln ln(4d·i/δ)/ln(1/γ)⌉ (Graph-COM ``sequential2``), with
    ln(4d·i/δ) from logs (4d·i/δ overflowed for subnormal δ).
    """
    request = _guards.count("request", request)
    iters = _guards.count("iterations", iterations)
    dim = _guards.count("dim", dim)
    _check_delta(delta)
    lg = _d2d_log_contraction(strong_convexity, smoothness)
    if lg == -math.inf:
        return iters
    log_arg = math.log(4.0) + math.log(dim) + math.log(request) - math.log(delta)
    extra = math.log(log_arg) / -lg
    return _iteration_count(iters + math.ceil(extra), "strong-variant iterations")


def d2d_strong_sigma(
    epsilon: float,
    delta: float,
    *,
    lipschitz: float,
    strong_convexity: float,
    smoothness: float,
    n: int,
    iterations: int,
) -> float:
    """Strong-variant σ = 8Lγ^I/(mn(1−γ^I)κ_s), κ_s = √(2ln(2/δ)+3ε) − √(2ln(2/δ)+2ε).

    Pass ``iterations`` = Iᵢ from :func:`d2d_strong_iterations`. This is G2 at
    level (ε/2, (δ/2)e^{−ε}) on the shift 8Lγ^I/(mn(1−γ^I)) (``algorithms.md``
    §12.2).

    Raises:
      ValueError: On invalid arguments or when σ leaves float64 (named).
    """
    _validate.positive(epsilon=epsilon)
    _check_delta(delta)
    log_sens = _d2d_log_sensitivity(
        lipschitz=lipschitz,
        strong_convexity=strong_convexity,
        smoothness=smoothness,
        n=n,
        iterations=iterations,
    )
    kappa = _kappa_strong(float(epsilon), float(delta), 2.0)
    log_sigma = math.log(2.0) + log_sens - math.log(kappa)
    return _guards.positive_result(
        math.exp(log_sigma) if log_sigma < 709.0 else math.inf,
        "sigma",
        f"iterations={iterations}, n={n} and epsilon={epsilon} put it outside float64.",
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class D2DConfig:
    """Constants of a Descent-to-Delete deployment (weak variant).

    Attributes:
      sigma: Per-release noise σ actually used.
      delta: Certified δ.
      epsilon: Target ε each release must certify.
      lipschitz, strong_convexity, smoothness: L, m, β of the mean loss.
      n: Initial dataset size n₀.
      iterations: GD steps I per update.
      variant: Calibration of σ (see :func:`d2d_sigma`).
    """

    sigma: float
    epsilon: float
    delta: float
    lipschitz: float
    strong_convexity: float
    smoothness: float
    n: int
    iterations: int
    variant: Literal["paper", "tight", "analytic"] = "paper"

    def __post_init__(self):
        _validate.positive(
            sigma=self.sigma, epsilon=self.epsilon, lipschitz=self.lipschitz
        )
        _check_delta(self.delta)
        _guards.count("n", self.n)
        _guards.count("iterations", self.iterations)
        d2d_contraction(self.strong_convexity, self.smoothness)
        _d2d_log_noise_sensitivity(
            self.variant,
            lipschitz=self.lipschitz,
            strong_convexity=self.strong_convexity,
            smoothness=self.smoothness,
            n=self.n,
            iterations=self.iterations,
        )

    def epsilon_at(self, n: int) -> float:
        """ε per release when the smallest dataset so far has ``n`` points."""
        if n < 1:
            return math.inf
        return d2d_epsilon(
            self.sigma,
            self.delta,
            lipschitz=self.lipschitz,
            strong_convexity=self.strong_convexity,
            smoothness=self.smoothness,
            n=int(n),
            iterations=self.iterations,
            variant=self.variant,
        )


class D2DState(NamedTuple):
    """Deletions so far (only n shrinks; nothing else accumulates)."""

    num_deleted: int = 0


def d2d_init() -> D2DState:
    """State after training on the n₀ points."""
    return D2DState()


def d2d_update(state: D2DState, num_deleted: int = 1) -> D2DState:
    """Records one more deletion (the k-th is from a set of n₀ − k + 1 points).

    D2D's sensitivity bound (``algorithms.md`` §12.2, step 1) is for one point
    per update; a batch of k points moves the optimum up to k times further,
    so batches must be split into single-point updates (each one a release).
    """
    _guards.count("num_deleted", num_deleted)
    if num_deleted != 1:
        raise ValueError(
            f"Expected num_deleted=1 per Descent-to-Delete update, got {num_deleted}; "
            "split a batch into single-point updates."
        )
    return D2DState(state.num_deleted + 1)


def d2d_reset(state: D2DState) -> D2DState:
    """Kept for symmetry: D2D has no budget to restore. A retrain on the
    remaining data does not bring deleted points back, so ``num_deleted`` is
    kept (n only shrinks)."""
    return state


def d2d_report(state: D2DState, config: D2DConfig) -> CertificateReport:
    """(U) per release: ε of the latest release at n = n₀ − k + 1 after k deletions.

    ``used``/``budget`` are in ε: certified iff ε ≤ ``config.epsilon``.
    """
    n_eff = config.n - max(state.num_deleted - 1, 0)
    eps = config.epsilon_at(n_eff) if state.num_deleted else 0.0
    return _epsilon_report("d2d", eps, config.delta, config.epsilon)


# ---------------------------------------------------------------------------
# (d) Langevin unlearning (Rényi recursion)
# ---------------------------------------------------------------------------


def langevin_constants(*, n: int, lam: float, loss_smoothness: float):
    """(m, L, η) as in Graph-COM/Langevin_unlearning ``main_lmc.py::get_metadata``.

    m = λn (strong convexity of Σℓ/n + λn‖θ‖²/2 per their scaling),
    L = loss_smoothness + λn, η = 1/L. ``loss_smoothness`` is 1/4 for the
    logistic loss with ‖x‖ ≤ 1.

    Returns:
      ``(strong_convexity, smoothness, step_size)``.

    Raises:
      ValueError: On invalid arguments, or when λn or 1/L leave float64's
        normal range (the message names ``lam`` and ``n``).
    """
    _guards.count("n", n)
    _validate.positive(lam=lam, loss_smoothness=loss_smoothness)
    hint = f"lam={lam}, n={n} and loss_smoothness={loss_smoothness} put it outside float64."
    m = _guards.positive_result(float(lam) * n, "strong convexity lam*n", hint)
    L = float(loss_smoothness) + m
    return m, L, _guards.positive_result(1.0 / L, "step size 1/(loss_smoothness + lam*n)", hint)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LangevinConfig:
    """Constants of projected noisy GD (Langevin) learning/unlearning.

    Attributes:
      strong_convexity: m > 0.
      step_size: η > 0 (with m·η ≤ 1).
      sigma: Noise σ > 0 (update noise √(2ησ²)ξ).
      gradient_clip: M > 0, per-sample gradient clip.
      n: Dataset size used in ε₀ (the authors keep it fixed; pass a lower
        bound on the size over the lifetime to be conservative).
      max_order: Largest Rényi order searched.
      conversion: RDP→DP conversion (``"classic"`` as the authors' code).
    """

    strong_convexity: float
    step_size: float
    sigma: float
    gradient_clip: float
    n: int
    max_order: float = DEFAULT_MAX_ORDER
    conversion: Conversion = "classic"

    def __post_init__(self):
        _validate.positive(
            strong_convexity=self.strong_convexity,
            step_size=self.step_size,
            sigma=self.sigma,
            gradient_clip=self.gradient_clip,
            max_order=self.max_order,
        )
        _guards.count("n", self.n)
        _check_conversion(self.conversion)
        if self.strong_convexity * self.step_size > 1.0:
            raise ValueError(
                f"Expected strong_convexity*step_size="
                f"{self.strong_convexity * self.step_size} <= 1."
            )
        _check_max_order(self.max_order)

    def eps0(self, orders: np.ndarray, removed: int) -> np.ndarray:
        """ε₀(α) = 4αS²M²/(mσ²n²): RDP between stationary laws (S points differ)."""
        with np.errstate(over="ignore"):
            return np.exp(np.log(orders) + 2.0 * math.log(removed) + self._log_kappa0)

    @property
    def _log_kappa0(self) -> float:
        """ln(4M²/(mσ²n²)), from logs: the product under- or overflows for
        σ or n near the ends of float64."""
        return (
            math.log(4.0)
            + 2.0 * math.log(self.gradient_clip)
            - math.log(self.strong_convexity)
            - 2.0 * math.log(self.sigma)
            - 2.0 * math.log(self.n)
        )


class LangevinState(NamedTuple):
    """Requests since the last retrain: points removed Sₛ and steps Kₛ of each."""

    removed: tuple[int, ...] = ()
    steps: tuple[int, ...] = ()


def langevin_init() -> LangevinState:
    """State after (re)training: the model is a sample of the learning law."""
    return LangevinState()


def langevin_update(state: LangevinState, *, removed: int, steps: int) -> LangevinState:
    """Appends one request: remove ``removed`` points, fine-tune ``steps`` steps."""
    removed = _guards.count("removed", removed)
    _check_count("steps", steps)
    return LangevinState(state.removed + (removed,), state.steps + (int(steps),))


def langevin_reset(state: LangevinState) -> LangevinState:
    """Full retrain: ε ← 0 (the model is again a sample of the learning law)."""
    del state
    return langevin_init()


# The Langevin recursion is evaluated exactly from the newest request back,
# level j at order 2^j·α, until that order reaches
# A*_u = 2^53·max(1, mη·max(K_1..K_u)) for the requests 1..u still to expand.
# From there every factor e^{−mηK/(2^j α)} is within 2^-53 of 1, and the rest
# is bounded in closed form (see _langevin_log_rdp). At most
# 54 + log2(max(1, mη·K_max)) levels (≤ 117) are exact, whatever the number
# of requests: evaluating s requests costs O(orders × levels), not O(s·orders).
_LANGEVIN_EXACT_ORDER = 2.0**53


class _LangevinRequests(NamedTuple):
    """Requests of a Langevin state, as :func:`_langevin_log_rdp` reads them.

    ``removed``/``steps``/``kmax`` are for the newest ``J`` requests, newest
    first: S and K of request s − j and max(K_1..K_{s−j}). ``first`` is
    (S_1, K_1). ``log_w(u)`` is ln W_u, W_u = S_1²/2 + Σ_{t=2}^{u} 2^{1−t} S_t².
    """

    count: int
    removed: np.ndarray
    steps: np.ndarray
    kmax: np.ndarray
    first: tuple[float, float]
    log_w: Callable[[np.ndarray], np.ndarray]


def _levels(count: int, rate: float, kmax: float) -> int:
    """Exact levels needed: the order 2^j·α, α > 1, passes A* by j = log2(A*) + 1."""
    top = _LANGEVIN_EXACT_ORDER * max(1.0, rate * kmax)
    return min(count, math.ceil(math.log2(top)) + 1)


def _langevin_view(state: LangevinState, rate: float) -> _LangevinRequests:
    """The newest requests of ``state`` and the prefix sums of its tail."""
    removed = np.asarray(state.removed, dtype=np.float64)
    steps = np.asarray(state.steps, dtype=np.float64)
    s = removed.size
    kmax_all = np.maximum.accumulate(steps)  # max(K_1..K_u), oldest first
    levels = _levels(s, rate, float(kmax_all[-1]))
    newest = slice(s - 1, s - 1 - levels if s - 1 - levels >= 0 else None, -1)
    weights = np.exp2(1.0 - np.arange(1, s + 1, dtype=np.float64))
    weights[0] = 0.5
    w_cum = np.cumsum(weights * removed * removed)

    def log_w(u: np.ndarray) -> np.ndarray:
        return np.log(w_cum[np.asarray(u, dtype=np.int64) - 1])

    return _LangevinRequests(
        s, removed[newest], steps[newest], kmax_all[newest],
        (float(removed[0]), float(steps[0])), log_w,
    )


def _identical_view(removed: int, steps: int, count: int, rate: float) -> _LangevinRequests:
    """``count`` identical requests, without building the state: W_u in closed
    form S²(3/2 − 2^{1−u}); the same arrays as :func:`_langevin_view` otherwise."""
    levels = _levels(count, rate, float(steps))
    S, K = float(removed), float(steps)
    log_s2 = 2.0 * math.log(S)

    def log_w(u: np.ndarray) -> np.ndarray:
        return log_s2 + np.log(1.5 - np.exp2(1.0 - np.asarray(u, dtype=np.float64)))

    return _LangevinRequests(
        count, np.full(levels, S), np.full(levels, K), np.full(levels, K), (S, K), log_w
    )


def _langevin_log_rdp(
    req: _LangevinRequests, config: LangevinConfig, alpha: np.ndarray
) -> np.ndarray:
    """ln ε_s(α) of the Langevin recursion (see :func:`langevin_rdp`), in log space.

    Unrolled, with a_j = 2^j α, F_u(a) = e^{−mηK_u/a}·(a − ½)/(a − 1) and
    ε₀(a; S) = aS²κ₀, κ₀ = 4M²/(mσ²n²)::

        ε_s(α) = Σ_{j=0}^{s−2} [Π_{i≤j} F_{s−i}(a_i)] ε₀(a_{j+1}; S_{s−j})
                 + [Π_{i≤s−2} F_{s−i}(a_i)] e^{−mηK_1/a_{s−1}} ε₀(a_{s−1}; S_1).

    Level j is summed exactly while a_j < A*_{s−j}. At the first level L with
    a_L ≥ A*_{s−L} the remaining ε_{s−L}(a_L) is replaced by the upper bound

        ε_u(β) ≤ β·e^{2/β}·κ₀·2^u·W_u,   u = s − L,

    which drops the factors e^{−mηK/a} ≤ 1 (each ≥ 1 − 2^{-53} there) and
    bounds Π (a − ½)/(a − 1) over a = β, 2β, … by e^{2/β}. So the result is
    the recursion's value up to float64 rounding, and never below it.
    """
    rate = config.strong_convexity * config.step_size
    log_k0 = config._log_kappa0
    s, levels = req.count, req.removed.size
    alpha = np.asarray(alpha, dtype=np.float64)
    j = np.arange(levels, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        a = alpha[:, None] * np.exp2(j)  # [G, J]
        astar = _LANGEVIN_EXACT_ORDER * np.maximum(1.0, rate * req.kmax)
        to_tail = a >= astar
        cut = np.where(to_tail.any(axis=1), np.argmax(to_tail, axis=1), levels)  # L(α)
        log_f = -rate * req.steps / a + np.log1p(0.5 / (a - 1.0))
        cum_f = np.cumsum(log_f, axis=1)
        log_s2 = 2.0 * np.log(req.removed)
        exact = j[None, :] < cut[:, None]
        # Requests 2..s: Π_{i≤j} F · ε₀(a_{j+1}; S_{s−j}).
        terms = np.where(
            exact & (j[None, :] <= s - 2),
            cum_f + np.log(2.0 * a) + log_s2 + log_k0,
            -np.inf,
        )
        parts = [terms]
        if levels == s:  # request 1, when the recursion is exact down to it
            last = s - 1
            s1, k1 = req.first
            prev = cum_f[:, last - 1] if last >= 1 else 0.0
            first = prev - rate * k1 / a[:, last] + np.log(a[:, last]) + 2.0 * math.log(s1) + log_k0
            parts.append(np.where(cut == s, first, -np.inf)[:, None])
        tail_rows = cut < s
        if tail_rows.any():
            L = np.minimum(cut, levels - 1)
            beta = alpha * np.exp2(cut.astype(np.float64))
            before = np.take_along_axis(cum_f, np.maximum(L - 1, 0)[:, None], axis=1)[:, 0]
            prev = np.where(cut >= 1, before, 0.0)
            u = np.where(tail_rows, s - cut, 1)
            tail = (
                prev + np.log(beta) + 2.0 / beta + log_k0 + u * math.log(2.0) + req.log_w(u)
            )
            parts.append(np.where(tail_rows, tail, -np.inf)[:, None])
        return _logsumexp_rows(np.concatenate(parts, axis=1))


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    """ln Σ_j e^{x_ij} per row; rows of −inf give −inf (a lean logsumexp for
    the hot path: scipy's generic one costs ~0.3 ms a call here)."""
    top = np.max(x, axis=1)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.sum(np.exp(x - safe[:, None]), axis=1))


def _check_orders(orders) -> np.ndarray:
    a = np.asarray(orders, dtype=np.float64)
    _validate.array_in_range("orders", a, 1.0, math.inf)
    return a


def langevin_rdp(
    state: LangevinState, config: LangevinConfig, orders: np.ndarray | Sequence[float]
) -> np.ndarray:
    """RDP curve ε_s(α) of the current model against retraining, vectorised in α.

    ε₁(α) = e^{−mηK₁/α}·ε₀(α); for s ≥ 2 (weak triangle inequality, Mironov
    2017, Prop. 11, in the form of the authors' ``baseline.py::epsilon_s_with_alpha``)::

        ε_s(α) = e^{−mηK_s/α} · ((α − ½)/(α − 1)) · (ε₀(2α) + ε_{s−1}(2α)).

    (Chien et al. 2024, Langevin Unlearning, Thm 3.2 and Cor. 3.4;
    ``accountants.md`` §5.4.) Evaluating ε_s at α needs the orders α·2^j,
    j < s. It is unrolled and summed in log space (no overflow at 2^s α, no
    Python loop over requests); requests more than ~54 + log2(mη·max K)
    levels back, whose factors e^{−mηK/(2^j α)} are within 2^-53 of 1, are
    summed in closed form as an upper bound (:func:`_langevin_log_rdp`), so
    the cost is O(orders × 117) at most for any number of requests.

    Returns:
      float64 array of RDP values (0 when no request since retrain; ``inf``
      only where the value exceeds float64, e.g. after ~1000 requests, since
      ε_s grows like 2^s).

    Raises:
      ValueError: If an order is not a number > 1.
    """
    a0 = _check_orders(orders)
    if not state.steps:
        return np.zeros_like(a0)
    rate = config.strong_convexity * config.step_size
    log_eps = _langevin_log_rdp(_langevin_view(state, rate), config, a0.ravel())
    with np.errstate(over="ignore"):
        return np.exp(log_eps).reshape(a0.shape)


def _langevin_log_rdp_scalar(req: _LangevinRequests, config: LangevinConfig, alpha: float) -> float:
    """:func:`_langevin_log_rdp` at one order, level by level in plain floats
    (the scalar refinement of the optimal α calls this ~15 times per ε)."""
    rate = config.strong_convexity * config.step_size
    log_k0 = config._log_kappa0
    s = req.count
    terms = []
    cum, a = 0.0, float(alpha)
    for j in range(req.removed.size):
        if a >= _LANGEVIN_EXACT_ORDER * max(1.0, rate * float(req.kmax[j])):
            u = s - j  # tail bound for requests 1..u at order a
            log_w = float(req.log_w(u))
            terms.append(cum + math.log(a) + 2.0 / a + log_k0 + u * math.log(2.0) + log_w)
            break
        if j <= s - 2:
            cum += -rate * float(req.steps[j]) / a + math.log1p(0.5 / (a - 1.0))
            terms.append(cum + math.log(2.0 * a) + 2.0 * math.log(float(req.removed[j])) + log_k0)
        else:  # request 1
            s1, k1 = req.first
            terms.append(cum - rate * k1 / a + math.log(a) + 2.0 * math.log(s1) + log_k0)
        a *= 2.0
    top = max(terms)
    if not math.isfinite(top):
        return top
    return top + math.log(math.fsum(math.exp(t - top) for t in terms))


def _langevin_curve(req: _LangevinRequests, config: LangevinConfig):
    def curve(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, np.float64).ravel()
        if a.size == 1:
            log_eps = _langevin_log_rdp_scalar(req, config, float(a[0]))
            return np.array([math.exp(log_eps) if log_eps < 709.0 else math.inf])
        with np.errstate(over="ignore"):
            return np.exp(_langevin_log_rdp(req, config, a))

    return curve


def langevin_epsilon(
    state: LangevinState, config: LangevinConfig, delta: float
) -> tuple[float, float]:
    """(ε, α) certified for the current model: min_α conversion of :func:`langevin_rdp`.

    Guarantees:
      Certified (α, ε_s(α))-Rényi unlearning converted to (ε, δ) at the
      returned α; the α is an estimated optimum over (1, max_order].

    Example:
      >>> m, _, eta = langevin_constants(n=10_000, lam=1e-6, loss_smoothness=0.25)
      >>> cfg = LangevinConfig(strong_convexity=m, step_size=eta, sigma=0.03,
      ...                      gradient_clip=1.0, n=10_000)
      >>> s = langevin_init()
      >>> for _ in range(3):
      ...     s = langevin_update(s, removed=1, steps=1000)
      ...     print(round(langevin_epsilon(s, cfg, 1e-4)[0], 4))
      0.2908
      0.4315
      0.509
    """
    if not state.steps:
        return _rdp_epsilon(None, True, config, delta)
    return _langevin_epsilon_cached(state, config, float(delta))


@functools.lru_cache(maxsize=8)
def _langevin_epsilon_cached(
    state: LangevinState, config: LangevinConfig, delta: float
) -> tuple[float, float]:
    # Pure function of hashable arguments: a search that ends by evaluating
    # the state it returns, followed by the caller's own evaluation of that
    # state (the CLI's request table), computes it once.
    rate = config.strong_convexity * config.step_size
    req = _langevin_view(state, rate)
    curve = _langevin_curve(req, config)
    grid = _order_grid(float(config.max_order))
    if len(state.steps) >= 2:
        # On the grid: the newest request's level times the earlier requests'
        # curve at 2α, which is cached, so the K searched by
        # langevin_min_steps costs O(orders) per try instead of O(orders·levels).
        prefix = LangevinState(state.removed[:-1], state.steps[:-1])
        top = _langevin_log_top(prefix, config, state.removed[-1], state.steps[-1], req, grid)
        plain = curve

        def curve(a: np.ndarray) -> np.ndarray:
            if a is grid:
                with np.errstate(over="ignore"):
                    return np.exp(top)
            return plain(a)

    return _rdp_epsilon(curve, False, config, delta)


@functools.lru_cache(maxsize=4)
def _langevin_prefix_on_grid(
    prefix: LangevinState, config: LangevinConfig, max_order: float
) -> np.ndarray:
    """ln ε_{s−1}(2α) of the earlier requests at every grid order α (cached)."""
    rate = config.strong_convexity * config.step_size
    grid = _order_grid(max_order)
    return _langevin_log_rdp(_langevin_view(prefix, rate), config, 2.0 * grid)


def _langevin_log_top(
    prefix: LangevinState,
    config: LangevinConfig,
    removed: int,
    steps: int,
    req: _LangevinRequests,
    grid: np.ndarray,
) -> np.ndarray:
    """ln ε_s on the grid as the recursion's last step over the cached prefix:
    ln F_s(α) + ln(ε₀(2α; S_s) + ε_{s−1}(2α)), or the closed-form bound of
    :func:`_langevin_log_rdp` where α ≥ A*_s (the same value up to rounding)."""
    rate = config.strong_convexity * config.step_size
    prev = _langevin_prefix_on_grid(prefix, config, float(config.max_order))
    log_k0 = config._log_kappa0
    with np.errstate(over="ignore", divide="ignore"):
        top = (
            -rate * steps / grid
            + np.log1p(0.5 / (grid - 1.0))
            + np.logaddexp(np.log(2.0 * grid) + 2.0 * math.log(removed) + log_k0, prev)
        )
        astar = _LANGEVIN_EXACT_ORDER * max(1.0, rate * float(req.kmax[0]))
        far = grid >= astar
        if far.any():
            top = np.where(far, _langevin_log_rdp(req, config, grid), top)
    return top


def _langevin_identical_epsilon(
    config: LangevinConfig, delta: float, removed: int, steps: int, count: int
) -> float:
    """ε after ``count`` identical requests, without building the state: O(1) in count."""
    rate = config.strong_convexity * config.step_size
    req = _identical_view(removed, steps, count, rate)
    return _rdp_epsilon(_langevin_curve(req, config), False, config, delta)[0]


def langevin_min_steps(
    state: LangevinState,
    config: LangevinConfig,
    *,
    removed: int,
    target_epsilon: float,
    delta: float,
) -> int:
    """Smallest K for the next request (``removed`` points) to meet the target.

    The target is ``target_epsilon`` at ``delta``.

    ε after the request is non-increasing in K. The search first solves the
    grid-only version of the problem, where the new request enters as one
    factor e^{−mηK/α} in front of a curve computed once from the earlier
    requests (O(orders) per K), then confirms and corrects that guess with
    the exact ε (:func:`langevin_epsilon`, usually two evaluations) and the
    never-overshoot integer :func:`calibrate`. The answer is the exact
    smallest K for :func:`langevin_epsilon`; the guess only saves time.

    Raises:
      ValueError: If no K reaches the target (it is below ln(1/δ)/(max_order−1)
        or below the inherited divergence), naming ``target_epsilon``.
    """
    _validate.positive(target_epsilon=target_epsilon)
    _check_delta(delta)
    removed = _guards.count("removed", removed)
    target = float(target_epsilon)

    def eps_at(k: int) -> float:
        nxt = langevin_update(state, removed=removed, steps=int(k))
        return langevin_epsilon(nxt, config, delta)[0]

    guess = _langevin_steps_guess(state, config, removed, target, float(delta))
    return _reach_target(
        _smallest_int_from, eps_at, target_epsilon, lo=0, guess=guess, name="steps"
    )


def _langevin_steps_guess(
    state: LangevinState, config: LangevinConfig, removed: int, target: float, delta: float
) -> int:
    """Smallest K whose approximate ε meets the target; 0 if none: a guess.

    ε_s(α; K) = e^{−mηK/α}·B(α) with B(α) = (α − ½)/(α − 1)·(ε₀(2α) + ε_{s−1}(2α))
    (or ε₀(α) for the first request), B computed once on the grid.
    """
    rate = config.strong_convexity * config.step_size
    grid = _order_grid(float(config.max_order))
    with np.errstate(over="ignore", divide="ignore"):
        log_e0 = np.log(grid) + 2.0 * math.log(removed) + config._log_kappa0
        if state.steps:
            prev = _langevin_prefix_on_grid(state, config, float(config.max_order))
            log_b = np.log1p(0.5 / (grid - 1.0)) + np.logaddexp(math.log(2.0) + log_e0, prev)
        else:
            log_b = log_e0
    x_grid = np.log(grid - 1.0)

    def grid_eps(k: int) -> float:
        with np.errstate(over="ignore"):
            curve = np.exp(log_b - rate * k / grid)
            values = rdp._dp_epsilons(grid, curve, delta, config.conversion)
            i = int(np.argmin(values))
            lo, hi = max(i - 1, 0), min(i + 1, grid.size - 1)
            # Refine α between the neighbours of the best grid order, with
            # ln B interpolated linearly in ln(α − 1) (B is smooth; the fast
            # factor e^{−mηK/α} is exact): what the exact search's refinement
            # finds, to well within one step of K.
            x = np.linspace(x_grid[lo], x_grid[hi], 129)
            a = 1.0 + np.exp(x)
            fine = np.exp(np.interp(x, x_grid[lo : hi + 1], log_b[lo : hi + 1]) - rate * k / a)
            return min(
                float(values[i]),
                float(np.min(rdp._dp_epsilons(a, fine, delta, config.conversion))),
            )

    try:
        return _smallest_int(grid_eps, target, lo=0, name="steps")
    except ValueError:
        return 0


def _smallest_int_from(
    fn: Callable[[int], float], target: float, *, lo: int, guess: int, name: str
) -> int:
    """Smallest integer x ≥ lo with fn(x) ≤ target (fn non-increasing), searched
    outwards from ``guess`` (any integer ≥ lo): a good guess costs two calls."""
    guess = max(lo, int(guess))
    if fn(guess) <= target:
        if guess == lo:
            return lo
        step, hi = 1, guess
        while True:  # gallop down to an unsafe point
            x = max(lo, hi - step)
            if fn(x) > target:
                lo_bad = x
                break
            hi = x
            if x == lo:
                return lo
            step *= 2
        if hi - lo_bad <= 1:
            return hi
        return int(calibrate(fn, target, lo=lo_bad, hi=hi, increasing=False, integer=True))
    return _smallest_int(fn, target, lo=guess + 1, name=name)


def langevin_max_requests(
    config: LangevinConfig,
    *,
    removed: int,
    steps: int,
    target_epsilon: float,
    delta: float,
    limit: int = 64,
) -> int:
    """Largest s ≤ ``limit`` such that requests 1..s (each ``removed`` points,
    ``steps`` steps) all certify ``target_epsilon``.

    For identical requests ε_s is non-decreasing in s (by induction on the
    recursion: ε₀(2α) ≥ ε₀(α) and (α − ½)/(α − 1) ≥ 1), so this is the largest
    s with ε_s ≤ target, found by doubling and bisection on s with ε_s in
    O(1) per s (no state is built): ``limit`` may be as large as 2**53.
    """
    _validate.positive(target_epsilon=target_epsilon)
    limit = _guards.count("limit", limit)
    removed = _guards.count("removed", removed)
    _check_count("steps", steps)
    _check_delta(delta)
    target = float(target_epsilon)

    def eps(count: int) -> float:
        return _langevin_identical_epsilon(config, delta, removed, int(steps), count)

    return _largest_count(eps, target, limit)


def _largest_count(eps: Callable[[int], float], target: float, limit: int) -> int:
    """Largest s in [0, limit] with eps(s') ≤ target for all s' ≤ s, eps non-decreasing."""
    if eps(1) > target:
        return 0
    good, bad = 1, None
    while bad is None:
        nxt = min(limit, 2 * good)
        if nxt == good:
            return good
        if eps(nxt) <= target:
            good = nxt
        else:
            bad = nxt
    while bad - good > 1:
        mid = (good + bad) // 2
        if eps(mid) <= target:
            good = mid
        else:
            bad = mid
    return good


def langevin_min_sigma(
    config: LangevinConfig,
    *,
    removed: int,
    steps: int,
    target_epsilon: float,
    delta: float,
    requests: int = 1,
) -> float:
    """Smallest noise σ for which ``requests`` identical requests (``removed``
    points, ``steps`` steps each) all certify ``target_epsilon``.

    ε is non-increasing in σ at every request and non-decreasing in the
    number of identical requests (see :func:`langevin_max_requests`), so the
    worst request is the last one, evaluated in O(1); the search is the
    never-overshoot :func:`calibrate` on σ (``config.sigma`` only seeds the
    bracket).

    Raises:
      ValueError: If no σ reaches the target (below ln(1/δ)/(max_order − 1)).
    """
    _validate.positive(target_epsilon=target_epsilon)
    requests = _guards.count("requests", requests)
    removed = _guards.count("removed", removed)
    _check_count("steps", steps)
    _check_delta(delta)

    def worst(sigma: float) -> float:
        cfg = dataclasses.replace(config, sigma=sigma)
        return _langevin_identical_epsilon(cfg, delta, removed, int(steps), requests)

    return _reach_target(
        _smallest_float, worst, target_epsilon, start=config.sigma, name="sigma"
    )


def langevin_report(
    state: LangevinState,
    config: LangevinConfig,
    *,
    target_epsilon: float,
    delta: float,
) -> CertificateReport:
    """(U) certificate of the current model; certified iff ε ≤ ``target_epsilon``."""
    eps, _ = langevin_epsilon(state, config, delta)
    return _epsilon_report("langevin", eps, float(delta), float(target_epsilon))


# ---------------------------------------------------------------------------
# (e) Noisy-SGD unlearning (W∞ tracking)
# ---------------------------------------------------------------------------


def wsgd_contraction(strong_convexity: float, step_size: float) -> float:
    """c = 1 − ηm, the per-step contraction of projected noisy (S)GD.

    For ηm below 1e-16, c rounds to 1.0; the accountants below never use c
    itself but ln c = log1p(−ηm), which keeps such tiny rates.
    """
    _wsgd_log_contraction(strong_convexity, step_size)  # validates 0 < ηm ≤ 1
    return 1.0 - float(strong_convexity) * float(step_size)


def _wsgd_log_contraction(strong_convexity: float, step_size: float) -> float:
    """ln c = log1p(−ηm) after checking 0 < ηm ≤ 1 (−inf for ηm = 1)."""
    _validate.positive(strong_convexity=strong_convexity, step_size=step_size)
    rate = float(strong_convexity) * float(step_size)
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"Expected 0 < strong_convexity*step_size <= 1, got {rate}.")
    return math.log1p(-rate) if rate < 1.0 else -math.inf


def _pow_contraction(log_c: float, power: float) -> float:
    """c^power from ln c, with c^0 = 1 also for c = 0."""
    return 1.0 if power == 0.0 else math.exp(power * log_c)


def wsgd_step_radius(
    *,
    strong_convexity: float,
    step_size: float,
    gradient_clip: float,
    n: int,
    batch_size: int,
    removed: int = 1,
    projection_radius: float | None = None,
) -> float:
    """Converged W∞ distance Z_B = 2ηM/(b(1 − c^{n/b})) between adjacent processes.

    Chien et al. 2024 (Noisy-SGD unlearning), ``main_sgd.py``; 2M/(mn) for full
    batch. For ``removed`` = S points the W∞ triangle inequality through S
    single-point changes gives S·Z_B. Capped at 2R with a projection of
    radius R.
    """
    _validate.positive(gradient_clip=gradient_clip)
    n = _guards.count("n", n)
    batch_size = _guards.count("batch_size", batch_size)
    removed = _guards.count("removed", removed)
    if batch_size > n:
        raise ValueError(f"Expected batch_size={batch_size} <= n={n}.")
    log_c = _wsgd_log_contraction(strong_convexity, step_size)
    # 1 − c^{n/b} = −expm1((n/b) ln c): no cancellation for tiny ηm. A radius
    # beyond float64 is inf (a vacuous but honest bound).
    one_minus = -math.expm1((n / batch_size) * log_c) if log_c > -math.inf else 1.0
    zb = 2.0 * float(step_size) * float(gradient_clip) / (batch_size * one_minus)
    zb *= removed
    if projection_radius is not None:
        _validate.positive(projection_radius=projection_radius)
        zb = min(zb, 2.0 * float(projection_radius))
    return zb


@dataclasses.dataclass(frozen=True, kw_only=True)
class WassersteinConfig:
    """Constants of projected noisy mini-batch SGD unlearning (cyclic batches).

    Attributes:
      strong_convexity, step_size, sigma, gradient_clip, n: m, η, σ, M, n.
      batch_size: b (``n`` for full batch); one epoch is n/b steps.
      projection_radius: R of the projection (caps Z at 2R), or None.
      bound: ``"loose"`` (ε(α) = αZ²c^{2T}/(2ησ²), the authors' default) or
        ``"tight"`` (αZ²(1−c²)c^{2T}/((1−c^{2T})2ησ²)), T = Kn/b.
      max_order, conversion: as for :class:`LangevinConfig`.
    """

    strong_convexity: float
    step_size: float
    sigma: float
    gradient_clip: float
    n: int
    batch_size: int
    projection_radius: float | None = None
    bound: Literal["loose", "tight"] = "loose"
    max_order: float = DEFAULT_MAX_ORDER
    conversion: Conversion = "classic"

    def __post_init__(self):
        _validate.positive(sigma=self.sigma, max_order=self.max_order)
        wsgd_step_radius(
            strong_convexity=self.strong_convexity,
            step_size=self.step_size,
            gradient_clip=self.gradient_clip,
            n=self.n,
            batch_size=self.batch_size,
            projection_radius=self.projection_radius,
        )
        if self.bound not in ("loose", "tight"):
            raise ValueError(
                f"Expected bound in ('loose', 'tight'), got {self.bound!r}."
            )
        _check_conversion(self.conversion)
        _check_max_order(self.max_order)

    @property
    def contraction(self) -> float:
        return wsgd_contraction(self.strong_convexity, self.step_size)

    @property
    def _log_contraction(self) -> float:
        return _wsgd_log_contraction(self.strong_convexity, self.step_size)

    def step_radius(self, removed: int) -> float:
        return wsgd_step_radius(
            strong_convexity=self.strong_convexity,
            step_size=self.step_size,
            gradient_clip=self.gradient_clip,
            n=self.n,
            batch_size=self.batch_size,
            removed=removed,
            projection_radius=self.projection_radius,
        )

    def decay(self, epochs: float) -> float:
        """c^{Kn/b}: the W∞ contraction of K epochs."""
        return _pow_contraction(self._log_contraction, epochs * self.n / self.batch_size)


class WassersteinState(NamedTuple):
    """W∞ radius before the last request's unlearning, and that request's epochs.

    ``pre_radius`` is Z^{(s)} (current-law vs retrain-law distance before the
    K_s epochs of unlearning); after them it is ``pre_radius·c^{K_s n/b}``.
    A fresh (re)trained model has radius 0.
    """

    pre_radius: float = 0.0
    epochs: int = 0
    num_requests: int = 0


def wsgd_init() -> WassersteinState:
    """State after (re)training."""
    return WassersteinState()


def wsgd_radius(state: WassersteinState, config: WassersteinConfig) -> float:
    """Current W∞ radius Z·c^{Kn/b} between the model's law and retraining's."""
    return state.pre_radius * config.decay(state.epochs)


def wsgd_update(
    state: WassersteinState, config: WassersteinConfig, *, removed: int, epochs: int
) -> WassersteinState:
    """Z^{(s+1)} = c^{K_s n/b}·Z^{(s)} + Z_B (W∞ triangle inequality, linear)."""
    _guards.count("removed", removed)
    _check_count("epochs", epochs)
    pre = wsgd_radius(state, config) + config.step_radius(removed)
    if config.projection_radius is not None:
        pre = min(pre, 2.0 * config.projection_radius)
    return WassersteinState(pre, int(epochs), state.num_requests + 1)


def wsgd_reset(state: WassersteinState) -> WassersteinState:
    """Full retrain: Z ← 0 (a fresh sample of the learning law)."""
    del state
    return wsgd_init()


def wsgd_rdp(
    state: WassersteinState,
    config: WassersteinConfig,
    orders: np.ndarray | Sequence[float],
) -> np.ndarray:
    """RDP curve of the current model against retraining, vectorised in α.

    Loose: αZ²c^{2T}/(2ησ²); tight: αZ²(1−c²)c^{2T}/((1−c^{2T})·2ησ²), T = Kn/b
    (Chien et al. 2024, Noisy-SGD unlearning, Thm 3.3 / ``main_sgd.py``).
    """
    a = _check_orders(orders)
    if state.pre_radius == 0.0:
        return np.zeros_like(a)
    t = state.epochs * config.n / config.batch_size
    log_c = config._log_contraction
    # In logs: Z², c^{2T} and σ² under- or overflow at the ends of float64.
    if t == 0:
        log_g = 0.0
    elif log_c == -math.inf:  # c = 0: one step forgets everything
        return np.zeros_like(a)
    elif config.bound == "loose":
        log_g = 2.0 * t * log_c
    else:  # (1 − c²) c^{2T} / (1 − c^{2T})
        log_g = (
            math.log(-math.expm1(2.0 * log_c)) + 2.0 * t * log_c
            - math.log(-math.expm1(2.0 * t * log_c))
        )
    log_coef = (
        2.0 * math.log(state.pre_radius) + log_g - math.log(2.0)
        - math.log(config.step_size) - 2.0 * math.log(config.sigma)
    )
    coef = math.exp(log_coef) if log_coef < 709.0 else math.inf
    with np.errstate(over="ignore"):
        return a * coef


def wsgd_epsilon(
    state: WassersteinState, config: WassersteinConfig, delta: float
) -> tuple[float, float]:
    """(ε, α) of the current model (see :func:`langevin_epsilon` for guarantees)."""
    return _rdp_epsilon(
        lambda a: wsgd_rdp(state, config, a), state.pre_radius == 0.0, config, delta
    )


def wsgd_min_epochs(
    state: WassersteinState,
    config: WassersteinConfig,
    *,
    removed: int,
    target_epsilon: float,
    delta: float,
) -> int:
    """Smallest K (epochs) for the next request to certify ``target_epsilon``."""
    _validate.positive(target_epsilon=target_epsilon)
    _check_delta(delta)

    def eps_at(k: int) -> float:
        nxt = wsgd_update(state, config, removed=removed, epochs=int(k))
        return wsgd_epsilon(nxt, config, delta)[0]

    return _reach_target(_smallest_int, eps_at, target_epsilon, lo=0, name="epochs")


def _wsgd_identical_state(
    config: WassersteinConfig, removed: int, epochs: int, count: int
) -> WassersteinState:
    """The state after ``count`` identical requests, without iterating them all.

    Up to 64 requests the recursion of :func:`wsgd_update` is run (the same
    arithmetic, so the same floats); beyond, its closed form
    Z_s = Z_B (1 − d^s)/(1 − d) with d = c^{Kn/b} (s·Z_B for d = 1), capped
    at 2R: the capped recursion equals min(2R, uncapped) because the map
    Z ↦ dZ + Z_B is increasing.
    """
    if count <= 64:
        state = wsgd_init()
        for _ in range(count):
            state = wsgd_update(state, config, removed=removed, epochs=epochs)
        return state
    zb = config.step_radius(removed)
    t = epochs * config.n / config.batch_size
    log_d = t * config._log_contraction if t > 0 else 0.0
    if log_d == 0.0:
        z = count * zb
    elif log_d == -math.inf:
        z = zb
    else:  # (1 − d^s)/(1 − d) = expm1(s ln d)/expm1(ln d), no cancellation
        z = zb * math.expm1(count * log_d) / math.expm1(log_d)
    if config.projection_radius is not None:
        z = min(z, 2.0 * config.projection_radius)
    return WassersteinState(z, int(epochs), count)


def wsgd_max_requests(
    config: WassersteinConfig,
    *,
    removed: int,
    epochs: int,
    target_epsilon: float,
    delta: float,
    limit: int = 10_000,
) -> float:
    """Largest s with requests 1..s all certifying ``target_epsilon``.

    Returns ``inf`` when the fixed point Z* = Z_B/(1 − c^{Kn/b}) itself
    certifies the target (the per-request ε saturates below it). Otherwise
    Z_s, hence ε_s, is non-decreasing in s, and the first failing request is
    found by doubling and bisection on s with Z_s in closed form
    (:func:`_wsgd_identical_state`): O(log s) evaluations, ``limit`` up to
    2**53.
    """
    _validate.positive(target_epsilon=target_epsilon)
    limit = _guards.count("limit", limit)
    removed = _guards.count("removed", removed)
    _check_count("epochs", epochs)
    _check_delta(delta)
    decay = config.decay(epochs)
    if decay < 1.0:
        z_star = config.step_radius(removed) / (1.0 - decay)
        if config.projection_radius is not None:
            z_star = min(z_star, 2.0 * config.projection_radius)
        fixed = WassersteinState(z_star, int(epochs), 1)
        if wsgd_epsilon(fixed, config, delta)[0] <= target_epsilon:
            return math.inf

    def eps(count: int) -> float:
        return wsgd_epsilon(_wsgd_identical_state(config, removed, epochs, count), config, delta)[0]

    return float(_largest_count(eps, float(target_epsilon), limit))


def wsgd_min_sigma(
    config: WassersteinConfig,
    *,
    removed: int,
    epochs: int,
    target_epsilon: float,
    delta: float,
    requests: int = 1,
) -> float:
    """Smallest noise σ for which ``requests`` identical requests all certify
    ``target_epsilon`` (never-overshoot :func:`calibrate` on σ). Z_s is
    non-decreasing in s, so the last request is the worst; it is evaluated
    in O(1) (:func:`_wsgd_identical_state`)."""
    _validate.positive(target_epsilon=target_epsilon)
    requests = _guards.count("requests", requests)
    removed = _guards.count("removed", removed)
    _check_count("epochs", epochs)
    _check_delta(delta)
    state = _wsgd_identical_state(config, removed, epochs, requests)  # σ-free

    def worst(sigma: float) -> float:
        return wsgd_epsilon(state, dataclasses.replace(config, sigma=sigma), delta)[0]

    return _reach_target(
        _smallest_float, worst, target_epsilon, start=config.sigma, name="sigma"
    )


def wsgd_report(
    state: WassersteinState,
    config: WassersteinConfig,
    *,
    target_epsilon: float,
    delta: float,
) -> CertificateReport:
    """(U) certificate of the current model; certified iff ε ≤ ``target_epsilon``."""
    eps, _ = wsgd_epsilon(state, config, delta)
    return _epsilon_report("wsgd", eps, float(delta), float(target_epsilon))


# ---------------------------------------------------------------------------
# (f) DP feature extractor + certified-removal head
# ---------------------------------------------------------------------------


def extractor_head_epsilon(
    num_removed: int,
    *,
    extractor_epsilon: float,
    extractor_delta: float,
    head_epsilon: float,
    head_delta: float,
) -> tuple[float, float]:
    """(ε, δ) for k removals from a DP extractor followed by a CR head.

    (kε_DP + ε_CR, k·e^{(k−1)ε_DP}·δ_DP + δ_CR): group privacy on the
    (ε_DP, δ_DP)-DP extractor (Dwork & Roth 2014, Thm 2.2) composed additively
    with the head's certified removal (Guo et al. 2020, §4.3;
    ``algorithms.md`` §1.6, §8). k = 0 gives the head alone.

    Guarantees:
      Certified (generic group privacy; not tight for Gaussian extractors).
    """
    _validate.positive(extractor_epsilon=extractor_epsilon, head_epsilon=head_epsilon)
    _validate.non_negative(head_delta=head_delta, extractor_delta=extractor_delta)
    for name, value in (("extractor_delta", extractor_delta), ("head_delta", head_delta)):
        if float(value) >= 1.0:
            raise ValueError(f"Expected {name}={float(value)} in the interval [0, 1).")
    _check_count("num_removed", num_removed)
    if num_removed == 0:
        return float(head_epsilon), float(head_delta)
    ke, kd = mechanisms.group_privacy(
        extractor_epsilon, extractor_delta, int(num_removed)
    )
    return ke + float(head_epsilon), min(1.0, kd + float(head_delta))


def extractor_max_removals(
    *,
    extractor_epsilon: float,
    extractor_delta: float,
    head_epsilon: float,
    head_delta: float,
    target_epsilon: float,
    target_delta: float,
) -> int:
    """Largest k with :func:`extractor_head_epsilon` ≤ (target ε, target δ).

    Uses the never-overshoot integer :func:`calibrate` on the monotone
    violation max(ε/ε_target, δ/δ_target). Searched up to 2**53 (returned
    if even that many removals fit).
    """
    _validate.positive(target_epsilon=target_epsilon, extractor_epsilon=extractor_epsilon)
    _check_delta(target_delta)

    def ratio(k: int) -> float:
        e, d = extractor_head_epsilon(
            int(k),
            extractor_epsilon=extractor_epsilon,
            extractor_delta=extractor_delta,
            head_epsilon=head_epsilon,
            head_delta=head_delta,
        )
        return max(e / target_epsilon, d / target_delta)

    if ratio(0) > 1.0:
        raise ValueError(
            f"Expected head_epsilon={head_epsilon} <= target_epsilon={target_epsilon}"
            f" and head_delta={head_delta} <= target_delta={target_delta}."
        )
    # kε_DP ≤ ε_target bounds k; the ratio can overflow to inf (a float ≥ 2**53).
    bound = float(target_epsilon) / float(extractor_epsilon)
    hi = math.floor(bound) + 1 if bound < _guards.MAX_COUNT else _guards.MAX_COUNT
    hi = min(hi, _guards.MAX_COUNT)
    return max(0, _largest_int(ratio, 1.0, lo=0, hi=hi))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExtractorHeadConfig:
    """A DP extractor in front of a Guo et al. CR head.

    Attributes:
      extractor_epsilon, extractor_delta: (ε_DP, δ_DP) of the extractor.
      head: :class:`CertifiedRemovalConfig` of the head (its ε, δ are ε_CR, δ_CR).
      target_epsilon, target_delta: Total (ε, δ) every release must certify.
    """

    extractor_epsilon: float
    extractor_delta: float
    head: CertifiedRemovalConfig
    target_epsilon: float
    target_delta: float

    def __post_init__(self):
        _validate.positive(
            extractor_epsilon=self.extractor_epsilon, target_epsilon=self.target_epsilon
        )
        _validate.non_negative(extractor_delta=self.extractor_delta)
        if self.extractor_delta >= 1.0:
            raise ValueError(
                f"Expected extractor_delta={self.extractor_delta} in [0, 1)."
            )
        _check_delta(self.target_delta)
        if not isinstance(self.head, CertifiedRemovalConfig):
            raise ValueError("Expected head to be a CertifiedRemovalConfig.")


class ExtractorHeadState(NamedTuple):
    """Removed points since the extractor was trained, and the head's CR state."""

    num_removed: int = 0
    head: CertifiedRemovalState = CertifiedRemovalState()


def extractor_init() -> ExtractorHeadState:
    """State after training extractor and head."""
    return ExtractorHeadState()


def extractor_update(
    state: ExtractorHeadState, residual_bound: float, num_removed: int = 1
) -> ExtractorHeadState:
    """k ← k + removed; the head's β ← β + βᵢ."""
    return ExtractorHeadState(
        state.num_removed + int(num_removed),
        cr_update(state.head, residual_bound, num_removed),
    )


def extractor_reset(
    state: ExtractorHeadState, *, scope: Literal["full", "head"] = "full"
) -> ExtractorHeadState:
    """Retrain. ``"full"`` (extractor and head from scratch) resets everything;
    ``"head"`` only resets β: the extractor still saw the removed points, so
    the group size k is kept."""
    if scope == "full":
        return extractor_init()
    if scope == "head":
        return ExtractorHeadState(state.num_removed, cr_init())
    raise ValueError(f"Expected scope in ('full', 'head'), got {scope!r}.")


def extractor_report(
    state: ExtractorHeadState, config: ExtractorHeadConfig
) -> CertificateReport:
    """(U) certificate: the head must be within β_max and the composed (ε, δ)
    within the target. ``used``/``budget`` are in ε."""
    head = cr_report(state.head, config.head)
    eps, dlt = extractor_head_epsilon(
        state.num_removed,
        extractor_epsilon=config.extractor_epsilon,
        extractor_delta=config.extractor_delta,
        head_epsilon=config.head.epsilon,
        head_delta=config.head.delta,
    )
    if not head.certified:
        eps = math.inf
    ok = head.certified and eps <= config.target_epsilon and dlt <= config.target_delta
    return _epsilon_report(
        "dp_extractor", eps, dlt, config.target_epsilon, certified=ok
    )
