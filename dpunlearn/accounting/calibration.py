"""Calibration that never overshoots: noise scales and composition counts.

:func:`calibrate` is a generic monotone bisection whose answer is always on
the *safe* side of the target; :func:`calibrate_gaussian_sigma` and
:func:`max_count` apply it to the Gaussian mechanism (optionally
Poisson-subsampled) under three accountants:

* ``"exact"``: the exact (ε, δ) curve of the Gaussian mechanism (Balle & Wang
  2018, Thm 8). k Gaussian releases with noise σ compose *exactly* into one
  Gaussian release with noise σ/√k (the privacy loss is Gaussian), so this is
  exact for any count. No subsampling.
* ``"rdp"``: RDP curves on an order grid (our vectorised
  :mod:`dpunlearn.accounting.rdp`) and the improved RDP→DP conversion.
* ``"pld"``: dp_accounting's privacy-loss-distribution accountant
  (pessimistic, i.e. an upper bound), driven through
  :mod:`dpunlearn.accounting.events`.

The design follows the behaviour of ``dp_accounting.calibrate_dp_mechanism``
(bracket, search, post-check) rather than ε-tolerance searches, which were
reported to overshoot the budget (opacus issue #346).

Host-side Python/NumPy float64; never jitted.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import numpy as np
from numpy.typing import ArrayLike

from dpunlearn import _validate
from dpunlearn.accounting import _guards, mechanisms, rdp as rdp_lib

__all__ = ["calibrate", "calibrate_gaussian_sigma", "max_count"]

Accountant = Literal["exact", "rdp", "pld"]

_MAX_BISECTIONS = 2000
# Enough factor-2 steps to walk from the largest float64 to the smallest one.
_MAX_DOUBLINGS = 2200


def calibrate(
    fn: Callable[[float], float],
    target: float,
    *,
    lo: float,
    hi: float,
    increasing: bool,
    integer: bool = False,
    tol: float | None = None,
) -> float | int:
    """Finds the parameter closest to the boundary ``fn(x) = target`` on its safe side.

    ``fn`` must be monotone on ``[lo, hi]`` (non-decreasing if ``increasing``,
    non-increasing otherwise). "Safe" means ``fn(x) <= target``. The result
    ``x`` satisfies:

    1. **Never over the target**: ``fn(x) <= target`` holds for the returned
       ``x`` exactly as ``fn`` evaluates it (NaN counts as unsafe). This is the
       only thing the search ever returns; it is checked, not assumed.
    2. **Within tol of the boundary**: if ``increasing``, ``x`` is the largest
       safe point up to ``tol`` (some unsafe point lies in ``(x, x + tol]``,
       unless ``x == hi``); otherwise ``x`` is the smallest safe point up to
       ``tol`` (some unsafe point lies in ``[x − tol, x)``, unless ``x == lo``).
       With ``integer=True`` the answer is the exact best integer; with
       ``tol=None`` the bracket is split down to float64 resolution.

    Typical uses: the smallest noise σ with ε(σ) ≤ ε_target (``increasing=False``),
    or the largest number of releases k with ε(k) ≤ ε_target
    (``increasing=True, integer=True``).

    Args:
      fn: Monotone function of one parameter; called about
        ``log2((hi − lo)/tol)`` times.
      target: The value ``fn`` must not exceed.
      lo: Lower end of the search bracket.
      hi: Upper end of the search bracket, ``hi > lo``.
      increasing: Whether ``fn`` increases with its parameter.
      integer: Search integers only (``lo``/``hi`` are rounded inwards).
      tol: Absolute tolerance on the parameter (> 0), or ``None`` for float64
        resolution. Ignored when ``integer=True``.

    Returns:
      The parameter (``int`` if ``integer``, else ``float``).

    Raises:
      ValueError: If the bracket is empty or invalid, ``target`` is NaN,
        ``tol`` ≤ 0, or no point of the bracket is safe (the message says
        which end to move).
    """
    _validate.finite_array("lo", np.asarray(lo, dtype=np.float64))
    _validate.finite_array("hi", np.asarray(hi, dtype=np.float64))
    if math.isnan(float(target)):
        raise ValueError("Expected target to be a number, got NaN.")
    if tol is not None:
        _validate.positive(tol=tol)
    if integer:
        lo_v, hi_v = int(math.ceil(lo)), int(math.floor(hi))
    else:
        lo_v, hi_v = float(lo), float(hi)
    if not lo_v < hi_v:
        raise ValueError(f"Expected lo={lo} < hi={hi} (a non-empty bracket).")
    target = float(target)

    def safe(x) -> bool:
        v = fn(x)
        return bool(v <= target)  # NaN -> False (unsafe)

    # Orient the search so that `good` is safe and `bad` is not.
    good, bad = (lo_v, hi_v) if increasing else (hi_v, lo_v)
    if not safe(good):
        end = "lo" if increasing else "hi"
        raise ValueError(
            f"No safe point in the bracket: fn({end}={good}) > target={target}; "
            f"{'lower lo' if increasing else 'raise hi'} or relax the target."
        )
    if safe(bad):
        return bad
    for _ in range(_MAX_BISECTIONS):
        if integer:
            if abs(bad - good) <= 1:
                break
            mid = (good + bad) // 2
        else:
            if tol is not None and abs(bad - good) <= tol:
                break
            mid = 0.5 * (good + bad)
            if mid == good or mid == bad:
                break
        if safe(mid):
            good = mid
        else:
            bad = mid
    return int(good) if integer else float(good)


def _check_common(epsilon, delta, sensitivity, sampling_probability, accountant):
    _validate.positive(epsilon=epsilon, sensitivity=sensitivity)
    _validate.open_interval(0.0, 1.0, delta=delta)
    _validate.array_in_range(
        "sampling_probability", sampling_probability, 0.0, 1.0, hi_closed=True
    )
    if np.ndim(sampling_probability) != 0:
        raise ValueError(
            f"Expected sampling_probability to be a scalar, got shape "
            f"{np.shape(sampling_probability)}."
        )
    if accountant not in ("exact", "rdp", "pld"):
        raise ValueError(
            f"Expected accountant in ('exact', 'rdp', 'pld'), got {accountant!r}."
        )
    if accountant == "exact" and float(sampling_probability) != 1.0:
        raise ValueError(
            "Expected sampling_probability=1.0 with accountant='exact' (the exact "
            f"curve has no subsampling); got {sampling_probability}. Use 'rdp' or 'pld'."
        )


def _safety_fn(
    epsilon: float,
    delta: float,
    *,
    sensitivity: float,
    accountant: str,
    q: float,
    orders: np.ndarray,
    value_discretization_interval: float,
) -> tuple[Callable[[float, int], float], float]:
    """Returns ``(g, target)`` with ``g(sigma, count) <= target`` iff (ε, δ) holds."""
    if accountant == "exact":
        # k releases with noise σ compose exactly into one with noise σ/√k; the
        # check is literally gaussian_delta(ε, sigma=σ/√k, sensitivity=Δ) ≤ δ
        # (σ/√k underflowing to 0 counts as unsafe, r = inf, not a ZeroDivisionError).

        def g(sigma: float, count: int) -> float:
            r = mechanisms._ratio(sensitivity, sigma / math.sqrt(count))
            return math.exp(mechanisms._gaussian_log_delta(epsilon, r))

        return g, delta
    if accountant == "rdp":

        def g(sigma: float, count: int) -> float:
            curve = rdp_lib.subsampled_gaussian_rdp(orders, q, sigma / sensitivity)
            return rdp_lib.rdp_to_dp(orders, count * curve, delta)[0]

        return g, epsilon

    from dpunlearn.accounting import events  # pld: dp_accounting through events

    def g(sigma: float, count: int) -> float:
        if q == 1.0:
            ev = events.GaussianEvent(sigma=sigma, sensitivity=sensitivity, count=count)
        else:
            ev = events.SubsampledGaussianEvent(q=q, sigma=sigma / sensitivity, count=count)
        return events.epsilon_pld(
            ev, delta, value_discretization_interval=value_discretization_interval
        )

    return g, epsilon


def calibrate_gaussian_sigma(
    epsilon: float,
    delta: float,
    *,
    count: int = 1,
    sensitivity: float = 1.0,
    accountant: Accountant = "exact",
    sampling_probability: float = 1.0,
    orders: ArrayLike | None = None,
    tol: float | None = None,
    value_discretization_interval: float = 1e-4,
) -> float:
    """Smallest Gaussian noise σ such that ``count`` releases are (ε, δ)-DP.

    Each release adds N(0, σ²) to a query of L2 sensitivity Δ, optionally on a
    Poisson subsample with rate q (``"rdp"``/``"pld"`` only). Uses
    :func:`calibrate` on σ (ε is non-increasing in σ), bracketing from the
    zCDP bound σ = Δ√k/(√2 κ), κ = √(ln(1/δ) + ε) − √(ln(1/δ)) (Bun & Steinke
    2016, Prop. 1.3 and 1.6), which is safe for every ε, computed as
    κ = ε/(√(ln(1/δ) + ε) + √(ln(1/δ))) (the difference cancels to 0 for
    ε = 1e-300) and, for ``"exact"``, capped by the total-variation bound
    σ = Δ√k/(2√2 erfinv(δ)), which stays finite as ε → 0.

    Args:
      epsilon: Target ε > 0.
      delta: Target δ in (0, 1).
      count: Number of releases k, an integer in [1, 2**53] (composed).
      sensitivity: L2 sensitivity Δ > 0 of each release.
      accountant: ``"exact"`` (Balle & Wang 2018 curve of the composed
        Gaussian, σ/√k), ``"rdp"`` or ``"pld"`` (dp_accounting).
      sampling_probability: Poisson sampling rate q in (0, 1]; must be 1 for
        ``"exact"``.
      orders: RDP orders for ``"rdp"`` (default
        :data:`dpunlearn.accounting.rdp.DEFAULT_ORDERS`).
      tol: Absolute tolerance on σ; default float64 resolution for
        ``"exact"``/``"rdp"`` and ``1e-6·σ`` for ``"pld"`` (each PLD
        evaluation costs 0.01–1 s).
      value_discretization_interval: PLD grid step (``"pld"`` only).

    Returns:
      σ as a Python float.

    Raises:
      ValueError: On out-of-range arguments, an unknown accountant,
        subsampling with ``"exact"``, or when the smallest σ exceeds float64
        (e.g. ε = 1e-310 with δ = 1e-320); for ``"pld"`` also when the PLD
        grid would be too large (see :func:`dpunlearn.accounting.events.epsilon_pld`).

    Guarantees:
      Never over the target: ε(σ) ≤ ``epsilon`` (at ``delta``) under the chosen
      accountant, as that accountant computes it; σ is within ``tol`` of the
      smallest such value. ``"exact"`` and ``"rdp"`` are certified bounds;
      ``"pld"`` inherits dp_accounting's pessimistic (upper-bound) PLD.

    Example:
      >>> round(calibrate_gaussian_sigma(1.0, 1e-5), 6)
      3.730632
    """
    _check_common(epsilon, delta, sensitivity, sampling_probability, accountant)
    count = _guards.count("count", count)
    eps, dlt, sens, q = float(epsilon), float(delta), float(sensitivity), float(
        sampling_probability
    )
    alpha = rdp_lib.DEFAULT_ORDERS if orders is None else np.asarray(orders, np.float64)
    g, target = _safety_fn(
        eps, dlt, sensitivity=sens, accountant=accountant, q=q, orders=alpha,
        value_discretization_interval=value_discretization_interval,
    )

    def fn(sigma: float) -> float:
        return g(sigma, count)

    hi = _sigma_start(eps, dlt, sens, count, exact=accountant == "exact")
    for _ in range(_MAX_DOUBLINGS):
        if hi == math.inf or fn(hi) <= target:
            break
        hi *= 2.0
    if not (hi < math.inf and fn(hi) <= target):
        raise ValueError(
            f"The smallest sigma for epsilon={epsilon}, delta={delta}, count={count} "
            f"and sensitivity={sensitivity} overflows float64 (no sigma up to "
            f"{float(np.finfo(np.float64).max):.3e} reaches the target); raise "
            "epsilon or delta."
        )
    lo = hi
    for _ in range(_MAX_DOUBLINGS):
        if lo * 0.5 == 0.0:  # any positive σ works: the smallest float is safe
            return lo
        lo *= 0.5
        if not fn(lo) <= target:
            break
    else:  # e.g. q so small that σ far below the start still meets the target
        return lo
    if tol is None and accountant == "pld":
        tol = 1e-6 * hi
    return calibrate(fn, target, lo=lo, hi=hi, increasing=False, tol=tol)


def _sigma_start(
    epsilon: float, delta: float, sensitivity: float, count: int, *, exact: bool
) -> float:
    """Starting σ of the bracket for ``count`` Gaussian releases (verified by the caller).

    The zCDP σ = Δ√k/(√2 κ) with κ = ε/(√(ln(1/δ) + ε) + √(ln(1/δ))) (Bun &
    Steinke 2016, Prop. 1.3; valid for every ε, so safe under every
    accountant); for the exact accountant also the single-release bracket of
    :mod:`mechanisms` at σ/√k (classic or total-variation bound, finite as
    ε → 0). Capped at the largest float so doubling detects overflow.
    """
    log_inv = -math.log(delta)  # 1/δ overflows for subnormal δ
    kappa = epsilon / (math.sqrt(log_inv + epsilon) + math.sqrt(log_inv))
    start = sensitivity * math.sqrt(count) / (math.sqrt(2.0) * kappa) if kappa > 0 else math.inf
    if exact:
        single = mechanisms._sigma_bracket(epsilon, delta, sensitivity)
        start = min(start, single * math.sqrt(count))
    return min(start, float(np.finfo(np.float64).max))


def max_count(
    epsilon: float,
    delta: float,
    *,
    sigma: float,
    sensitivity: float = 1.0,
    accountant: Accountant = "exact",
    sampling_probability: float = 1.0,
    orders: ArrayLike | None = None,
    limit: int = 10**9,
    value_discretization_interval: float = 1e-4,
) -> int:
    """Largest number of Gaussian releases that stays within (ε, δ).

    The composed ε is non-decreasing in the number of releases k, so this is
    :func:`calibrate` over integers (bracket doubling from 1, then bisection).
    Useful as a deletion capacity: how many noisy releases (e.g. unlearning
    requests answered by a Gaussian mechanism) a budget allows.

    Args:
      epsilon: Budget ε > 0.
      delta: Budget δ in (0, 1).
      sigma: Noise σ > 0 of each release.
      sensitivity: L2 sensitivity Δ > 0 of each release.
      accountant: ``"exact"``, ``"rdp"`` or ``"pld"`` (as in
        :func:`calibrate_gaussian_sigma`).
      sampling_probability: Poisson rate q in (0, 1] (``"rdp"``/``"pld"``).
      orders: RDP orders for ``"rdp"``.
      limit: Largest count considered (an integer in [1, 2**53]); returned if
        even ``limit`` releases fit.
      value_discretization_interval: PLD grid step (``"pld"`` only).

    Returns:
      k ≥ 0 as a Python int (0: not even one release fits).

    Raises:
      ValueError: On out-of-range arguments.

    Guarantees:
      Never over the budget: k releases are (ε, δ)-DP under the accountant,
      and k + 1 are not (unless k == ``limit``).
    """
    _check_common(epsilon, delta, sensitivity, sampling_probability, accountant)
    _validate.positive(sigma=sigma)
    limit = _guards.count("limit", limit)
    alpha = rdp_lib.DEFAULT_ORDERS if orders is None else np.asarray(orders, np.float64)
    g, target = _safety_fn(
        float(epsilon), float(delta), sensitivity=float(sensitivity),
        accountant=accountant, q=float(sampling_probability), orders=alpha,
        value_discretization_interval=value_discretization_interval,
    )

    def fn(k: int) -> float:
        return g(float(sigma), int(k))

    if not fn(1) <= target:
        return 0
    hi = 2
    while hi < limit and fn(hi) <= target:
        hi *= 2
    hi = min(hi, limit)
    if fn(hi) <= target:
        return hi
    return int(calibrate(fn, target, lo=max(1, hi // 2), hi=hi, increasing=True, integer=True))
