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
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy import optimize

from dpunlearn import _validate
from dpunlearn.accounting import mechanisms, rdp
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
    hi_log = math.log10(max_order - 1.0)
    lo_log = min(_GRID_LOG_MIN, hi_log - 1.0)
    orders = 1.0 + np.logspace(lo_log, hi_log, _GRID_SIZE)
    orders[-1] = max_order
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        curve_vals = np.asarray(curve(orders), dtype=np.float64)
    best_eps, best_alpha = rdp.rdp_to_dp(orders, curve_vals, delta, method=conversion)
    best_eps, best_alpha = float(best_eps), float(best_alpha)
    i = int(np.searchsorted(orders, best_alpha))
    if not math.isfinite(best_eps):
        return math.inf, best_alpha
    lo = math.log(orders[max(i - 1, 0)] - 1.0)
    hi = math.log(orders[min(i + 1, len(orders) - 1)] - 1.0)

    def objective(log_am1: float) -> float:
        a = np.array([1.0 + math.exp(log_am1)])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            val = np.asarray(curve(a), np.float64)
        return float(rdp.rdp_to_dp(a, val, delta, method=conversion)[0])

    if hi > lo:
        res = optimize.minimize_scalar(
            objective, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10}
        )
        alpha = min(1.0 + math.exp(float(res.x)), max_order)
        val = objective(math.log(alpha - 1.0))  # re-evaluate at the α returned
        if val < best_eps:
            best_eps, best_alpha = val, alpha
    return best_eps, best_alpha


def _smallest_int(
    fn: Callable[[int], float],
    target: float,
    *,
    lo: int,
    name: str,
    max_doublings: int = 62,
) -> int:
    """Smallest integer x ≥ lo with fn(x) ≤ target, fn non-increasing.

    Finds an upper bracket by doubling, then calls the never-overshoot
    :func:`calibrate`. Raises ValueError naming ``name`` if unreachable.
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


class _Requests(NamedTuple):
    """Identical requests of a recursive currency (``langevin_*`` / ``wsgd_*``).

    ``update(state, config)`` applies one request to ``state``;
    ``epsilon(state, config, delta)`` returns the (ε, α) certified after it.
    """

    init: Callable[[], Any]
    update: Callable[[Any, Any], Any]
    epsilon: Callable[[Any, Any, float], tuple[float, float]]

    def epsilons(self, config: Any, delta: float, count: int) -> Iterator[float]:
        """ε after each of ``count`` requests, starting from ``init()``."""
        state = self.init()
        for _ in range(count):
            state = self.update(state, config)
            yield self.epsilon(state, config, delta)[0]


def _max_requests(
    requests: _Requests, config: Any, delta: float, target_epsilon: float, limit: int
) -> int:
    """Largest s ≤ ``limit`` with requests 1..s all certifying ``target_epsilon``."""
    for s, eps in enumerate(requests.epsilons(config, delta, limit), start=1):
        if eps > target_epsilon:
            return s - 1
    return limit


def _min_sigma(
    requests: _Requests, config: Any, delta: float, target_epsilon: float, count: int
) -> float:
    """Smallest σ for which ``count`` identical requests all certify the target.

    The worst ε over the requests (with ``config.sigma`` replaced by the σ
    tried) is non-increasing in σ; ``config.sigma`` seeds the bracket of
    :func:`_smallest_float`.
    """

    def worst(sigma: float) -> float:
        cfg = dataclasses.replace(config, sigma=sigma)
        return max(0.0, *requests.epsilons(cfg, delta, count))

    return _reach_target(
        _smallest_float, worst, target_epsilon, start=config.sigma, name="sigma"
    )


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
    """Raises unless ``value`` is an integer ≥ 0 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"Expected {name} to be an integer >= 0, got {value!r}.")


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
    """
    log_inv = math.log(1.0 / delta)
    kappa = math.sqrt(log_inv + epsilon) - math.sqrt(log_inv)
    return sensitivity / (math.sqrt(2.0) * kappa)


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
    return sensitivity * math.sqrt(2.0 * math.log(1.25 / delta)) / epsilon


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
    """ε certified by one Gaussian release under the calibration ``method``."""
    if method == "classic":
        eps = sensitivity * math.sqrt(2.0 * math.log(1.25 / delta)) / sigma
        return eps if eps <= 1.0 else math.inf  # the theorem needs ε ≤ 1
    if method == "zcdp":
        return mechanisms.zcdp_to_dp(
            mechanisms.gaussian_zcdp(sigma, sensitivity), delta, method="classic"
        )
    if method == "analytic":
        return mechanisms.gaussian_epsilon(delta, sigma=sigma, sensitivity=sensitivity)
    raise ValueError(
        f"Expected method in ('classic', 'zcdp', 'analytic'), got {method!r}."
    )


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
    _validate.positive(
        hessian_lipschitz=hessian_lipschitz,
        lipschitz=lipschitz,
        strong_convexity=strong_convexity,
    )
    _validate.positive_int(n=n, capacity=capacity)
    M, L, lam, n, m = (
        float(hessian_lipschitz),
        float(lipschitz),
        float(strong_convexity),
        int(n),
        int(capacity),
    )
    if tight:
        if not m < n:
            raise ValueError(f"Expected capacity={m} < n={n}.")
        return M * m * m * L * L / (2.0 * lam**3 * (n - m) ** 2)
    if 2 * m > n:
        raise ValueError(f"Expected capacity={m} <= n/2={n / 2}.")
    return 2.0 * M * m * m * L * L / (lam**3 * n * n)


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
    _validate.positive_int(n=n, dim=dim)
    _validate.positive(
        epsilon=epsilon,
        strong_convexity=strong_convexity,
        lipschitz=lipschitz,
        hessian_lipschitz=hessian_lipschitz,
        excess_risk=excess_risk,
    )
    _check_delta(delta)
    lam, L, M = float(strong_convexity), float(lipschitz), float(hessian_lipschitz)
    m = (
        n
        * math.sqrt(excess_risk * epsilon * lam**3 / (2.0 * M * L**3))
        * (2.0 * dim * math.log(1.25 / delta)) ** (-0.25)
    )
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
    _validate.positive_int(n=n)

    def need(m: int) -> float:
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
        _validate.positive_int(capacity=self.capacity)
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
    _validate.positive_int(num_deleted=num_deleted)
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
    """γ = (β − m)/(β + m): the contraction of projected GD with η = 2/(β + m)."""
    _validate.positive(strong_convexity=strong_convexity, smoothness=smoothness)
    m, beta = float(strong_convexity), float(smoothness)
    if beta < m:
        raise ValueError(f"Expected smoothness={beta} >= strong_convexity={m}.")
    return (beta - m) / (beta + m)


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
    deleted during the sequence.
    """
    _validate.positive(lipschitz=lipschitz)
    _validate.positive_int(n=n, iterations=iterations)
    g = d2d_contraction(strong_convexity, smoothness) ** int(iterations)
    return 4.0 * float(lipschitz) * g / (float(strong_convexity) * n * (1.0 - g))


def _d2d_noise_sensitivity(variant: str, **kw) -> tuple[str, float]:
    delta_ = d2d_sensitivity(**kw)
    if variant == "paper":  # G2 on the shift 2Δ = 8Lγ^I/(mn(1−γ^I))
        return "zcdp", 2.0 * delta_
    if variant == "tight":
        return "zcdp", delta_
    if variant == "analytic":
        return "analytic", delta_
    raise ValueError(
        f"Expected variant in ('paper', 'tight', 'analytic'), got {variant!r}."
    )


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

    Guarantees:
      Certified: each published θ̂ᵢ = θ′ᵢ + N(0, σ²I) is (ε, δ)-indistinguishable
      from retraining, for any number of non-adaptive requests; nothing
      accumulates.
    """
    _validate.positive(epsilon=epsilon)
    _check_delta(delta)
    method, sens = _d2d_noise_sensitivity(
        variant,
        lipschitz=lipschitz,
        strong_convexity=strong_convexity,
        smoothness=smoothness,
        n=n,
        iterations=iterations,
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
    """ε certified per release by D2D noise ``sigma`` (inverse of :func:`d2d_sigma`)."""
    _validate.positive(sigma=sigma)
    _check_delta(delta)
    method, sens = _d2d_noise_sensitivity(
        variant,
        lipschitz=lipschitz,
        strong_convexity=strong_convexity,
        smoothness=smoothness,
        n=n,
        iterations=iterations,
    )
    return _gaussian_eps(method, float(sigma), float(delta), sens)


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
    (``algorithms.md`` §12.2, step 4; derived).
    """
    _validate.positive(diameter=diameter, lipschitz=lipschitz)
    _validate.positive_int(iterations=iterations, n=n)
    gamma = d2d_contraction(strong_convexity, smoothness)
    g = gamma**iterations
    arg = diameter * strong_convexity * n * (1.0 - g) / (2.0 * lipschitz)
    if arg <= 1.0 or gamma == 0.0:
        return int(iterations)
    return int(iterations) + math.ceil(math.log(arg) / math.log(1.0 / gamma))


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
    """Smallest I (GD steps per update) whose required σ is ≤ ``sigma``."""
    _validate.positive(sigma=sigma)

    def need(i: int) -> float:
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
    base = 2.0 * math.log(2.0 / delta)
    return math.sqrt(base + (k + 1.0) * epsilon) - math.sqrt(base + k * epsilon)


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
    constants not re-derived).
    """
    _validate.positive(epsilon=epsilon)
    _check_delta(delta)
    _validate.positive_int(dim=dim)
    gamma = d2d_contraction(strong_convexity, smoothness)
    k1 = _kappa_strong(float(epsilon), float(delta), 0.0)
    val = math.log(math.sqrt(2.0 * dim) / ((1.0 - gamma) * k1)) / math.log(1.0 / gamma)
    return max(1, math.ceil(val))


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

    Iᵢ = I + ⌈ln ln(4d·i/δ)/ln(1/γ)⌉ (Graph-COM ``sequential2``).
    """
    _validate.positive_int(request=request, iterations=iterations, dim=dim)
    _check_delta(delta)
    gamma = d2d_contraction(strong_convexity, smoothness)
    extra = math.log(math.log(4.0 * dim * request / delta)) / math.log(1.0 / gamma)
    return int(iterations) + math.ceil(extra)


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
    """
    _validate.positive(epsilon=epsilon)
    _check_delta(delta)
    shift = 2.0 * d2d_sensitivity(
        lipschitz=lipschitz,
        strong_convexity=strong_convexity,
        smoothness=smoothness,
        n=n,
        iterations=iterations,
    )
    return shift / _kappa_strong(float(epsilon), float(delta), 2.0)


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
        _validate.positive_int(n=self.n, iterations=self.iterations)
        d2d_contraction(self.strong_convexity, self.smoothness)
        _d2d_noise_sensitivity(
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
    _validate.positive_int(num_deleted=num_deleted)
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
    """
    _validate.positive_int(n=n)
    _validate.positive(lam=lam, loss_smoothness=loss_smoothness)
    m = float(lam) * n
    L = float(loss_smoothness) + m
    return m, L, 1.0 / L


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
        _validate.positive_int(n=self.n)
        _check_conversion(self.conversion)
        if self.strong_convexity * self.step_size > 1.0:
            raise ValueError(
                f"Expected strong_convexity*step_size="
                f"{self.strong_convexity * self.step_size} <= 1."
            )
        _check_max_order(self.max_order)

    def eps0(self, orders: np.ndarray, removed: int) -> np.ndarray:
        """ε₀(α) = 4αS²M²/(mσ²n²): RDP between stationary laws (S points differ)."""
        return (
            4.0
            * orders
            * removed**2
            * self.gradient_clip**2
            / (self.strong_convexity * self.sigma**2 * self.n**2)
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
    _validate.positive_int(removed=removed)
    _check_count("steps", steps)
    return LangevinState(state.removed + (int(removed),), state.steps + (int(steps),))


def langevin_reset(state: LangevinState) -> LangevinState:
    """Full retrain: ε ← 0 (the model is again a sample of the learning law)."""
    del state
    return langevin_init()


def langevin_rdp(
    state: LangevinState, config: LangevinConfig, orders: np.ndarray | Sequence[float]
) -> np.ndarray:
    """RDP curve ε_s(α) of the current model against retraining, vectorised in α.

    ε₁(α) = e^{−mηK₁/α}·ε₀(α); for s ≥ 2 (weak triangle inequality, Mironov
    2017, Prop. 11, in the form of the authors' ``baseline.py::epsilon_s_with_alpha``)::

        ε_s(α) = e^{−mηK_s/α} · ((α − ½)/(α − 1)) · (ε₀(2α) + ε_{s−1}(2α)).

    (Chien et al. 2024, Langevin Unlearning, Thm 3.2 and Cor. 3.4;
    ``accountants.md`` §5.4.) Evaluating ε_s at α needs the orders α·2^j,
    j < s, so the loop runs over requests (not orders).

    Returns:
      float64 array of RDP values (0 when no request since retrain; ``inf``
      where the doubled orders overflow).
    """
    a0 = np.asarray(orders, dtype=np.float64)
    if np.any(a0 <= 1.0):
        raise ValueError("Expected every order > 1.")
    s = len(state.steps)
    if s == 0:
        return np.zeros_like(a0)
    rate = config.strong_convexity * config.step_size
    with np.errstate(over="ignore", invalid="ignore"):
        a = a0 * np.exp2(float(s - 1))
        eps = np.exp(-rate * state.steps[0] / a) * config.eps0(a, state.removed[0])
        for j in range(1, s):
            a = a / 2.0
            eps = (
                np.exp(-rate * state.steps[j] / a)
                * ((a - 0.5) / (a - 1.0))
                * (config.eps0(2.0 * a, state.removed[j]) + eps)
            )
    return np.where(np.isnan(eps), np.inf, eps)


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
    return _rdp_epsilon(
        lambda a: langevin_rdp(state, config, a), not state.steps, config, delta
    )


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

    ε after the request is non-increasing in K; the search is bracket doubling
    plus the never-overshoot integer :func:`calibrate`.

    Raises:
      ValueError: If no K reaches the target (it is below ln(1/δ)/(max_order−1)
        or below the inherited divergence), naming ``target_epsilon``.
    """
    _validate.positive(target_epsilon=target_epsilon)
    _check_delta(delta)
    _validate.positive_int(removed=removed)

    def eps_at(k: int) -> float:
        nxt = langevin_update(state, removed=removed, steps=int(k))
        return langevin_epsilon(nxt, config, delta)[0]

    return _reach_target(_smallest_int, eps_at, target_epsilon, lo=0, name="steps")


def _langevin_requests(removed: int, steps: int) -> _Requests:
    """Requests removing ``removed`` points with ``steps`` fine-tuning steps each."""
    return _Requests(
        langevin_init,
        lambda state, _: langevin_update(state, removed=removed, steps=steps),
        langevin_epsilon,
    )


def langevin_max_requests(
    config: LangevinConfig,
    *,
    removed: int,
    steps: int,
    target_epsilon: float,
    delta: float,
    limit: int = 64,
) -> int:
    """Largest s such that requests 1..s (each ``removed`` points, ``steps`` steps)
    all certify ``target_epsilon``; searched up to ``limit`` (the order doubling
    makes the bound explode after a few dozen requests)."""
    _validate.positive(target_epsilon=target_epsilon)
    _validate.positive_int(limit=limit)
    reqs = _langevin_requests(removed, steps)
    return _max_requests(reqs, config, delta, target_epsilon, limit)


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

    ε is non-increasing in σ at every request; the search is the never-overshoot
    :func:`calibrate` on σ (``config.sigma`` only seeds the bracket).

    Raises:
      ValueError: If no σ reaches the target (below ln(1/δ)/(max_order − 1)).
    """
    _validate.positive(target_epsilon=target_epsilon)
    _validate.positive_int(requests=requests, removed=removed)
    _check_delta(delta)

    reqs = _langevin_requests(removed, steps)
    return _min_sigma(reqs, config, delta, target_epsilon, requests)


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
    """c = 1 − ηm, the per-step contraction of projected noisy (S)GD."""
    _validate.positive(strong_convexity=strong_convexity, step_size=step_size)
    c = 1.0 - float(strong_convexity) * float(step_size)
    if not 0.0 <= c < 1.0:
        raise ValueError(
            f"Expected 0 < strong_convexity*step_size <= 1, got "
            f"{float(strong_convexity) * float(step_size)}."
        )
    return c


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
    _validate.positive_int(n=n, batch_size=batch_size, removed=removed)
    if batch_size > n:
        raise ValueError(f"Expected batch_size={batch_size} <= n={n}.")
    c = wsgd_contraction(strong_convexity, step_size)
    zb = 2.0 * step_size * gradient_clip / (batch_size * (1.0 - c ** (n / batch_size)))
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
        return self.contraction ** (epochs * self.n / self.batch_size)


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
    _validate.positive_int(removed=removed)
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
    a = np.asarray(orders, dtype=np.float64)
    if np.any(a <= 1.0):
        raise ValueError("Expected every order > 1.")
    t = state.epochs * config.n / config.batch_size
    c = config.contraction
    if config.bound == "loose" or t == 0:
        g = c ** (2.0 * t)
    else:
        g = (1.0 - c * c) * c ** (2.0 * t) / (1.0 - c ** (2.0 * t))
    coef = state.pre_radius**2 * g / (2.0 * config.step_size * config.sigma**2)
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


def _wsgd_requests(removed: int, epochs: int) -> _Requests:
    """Requests removing ``removed`` points with ``epochs`` epochs each."""
    return _Requests(
        wsgd_init,
        functools.partial(wsgd_update, removed=removed, epochs=epochs),
        wsgd_epsilon,
    )


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
    certifies the target (the per-request ε saturates below it); otherwise the
    first failing request is found by iterating the recursion (up to ``limit``).
    """
    _validate.positive(target_epsilon=target_epsilon)
    _validate.positive_int(limit=limit)
    decay = config.decay(epochs)
    if decay < 1.0:
        z_star = config.step_radius(removed) / (1.0 - decay)
        if config.projection_radius is not None:
            z_star = min(z_star, 2.0 * config.projection_radius)
        fixed = WassersteinState(z_star, int(epochs), 1)
        if wsgd_epsilon(fixed, config, delta)[0] <= target_epsilon:
            return math.inf
    reqs = _wsgd_requests(removed, epochs)
    return float(_max_requests(reqs, config, delta, target_epsilon, limit))


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
    ``target_epsilon`` (never-overshoot :func:`calibrate` on σ)."""
    _validate.positive(target_epsilon=target_epsilon)
    _validate.positive_int(requests=requests, removed=removed)
    _check_delta(delta)

    reqs = _wsgd_requests(removed, epochs)
    return _min_sigma(reqs, config, delta, target_epsilon, requests)


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
    violation max(ε/ε_target, δ/δ_target).
    """
    _validate.positive(target_epsilon=target_epsilon)
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
    hi = math.floor(target_epsilon / extractor_epsilon) + 1
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
