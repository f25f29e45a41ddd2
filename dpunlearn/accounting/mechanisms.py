"""Closed-form privacy of single mechanisms: Gaussian, Laplace, zCDP, groups.

Everything here is plain host-side Python in float64 (NumPy/SciPy), never
traced or jitted, and returns Python ``float``s. Inputs are validated when they
are concrete numbers: a bad value raises ``ValueError`` naming the argument and
the expected range (see :mod:`dpunlearn._validate`).

Vocabulary used in the ``Guarantees:`` sections:

* **certified**: the returned number is a valid privacy bound (an upper bound
  on ε or δ, or a noise scale that is at least what the target needs), up to
  float64 rounding of the closed form.
* **exact**: the bound is also tight for the mechanism (no slack).
* **estimated**: a numerical optimum over a free parameter; the returned value
  is still a valid bound for the parameter actually used, but a better
  parameter may exist.

All (ε, δ) statements are for one release of a mechanism with the given
L2 (Gaussian) or L1 (Laplace) sensitivity; the neighbouring relation is the
one under which the sensitivity was computed (add/remove or replace-one).

References:
  Balle, Wang. Improving the Gaussian Mechanism for Differential Privacy:
  Analytical Calibration and Optimal Denoising. ICML 2018.
  https://arxiv.org/abs/1805.06530
  Dwork, Roth. The Algorithmic Foundations of Differential Privacy. 2014.
  Bun, Steinke. Concentrated Differential Privacy: Simplifications,
  Extensions, and Lower Bounds. TCC 2016. https://arxiv.org/abs/1605.02065
  Canonne, Kamath, Steinke. The Discrete Gaussian for Differential Privacy.
  NeurIPS 2020. https://arxiv.org/abs/2004.00010
  Kairouz, Oh, Viswanath. The Composition Theorem for Differential Privacy.
  ICML 2015. https://arxiv.org/abs/1311.0776
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy import optimize, special

from dpunlearn import _validate

__all__ = [
    "gaussian_delta",
    "gaussian_epsilon",
    "gaussian_sigma_classic",
    "gaussian_sigma_analytic",
    "laplace_epsilon",
    "zcdp_to_dp",
    "gaussian_zcdp",
    "group_privacy",
    "pure_dp_composition_delta",
    "pure_dp_composition_epsilon",
]

# Bisection stops once the bracket cannot be split any further in float64
# (the midpoint equals an end point); this cap is only a safety net.
_MAX_BISECTIONS = 2000
_MAX_DOUBLINGS = 2000


def _gaussian_log_delta(epsilon: float, r: float) -> float:
    """log δ(ε) of the Gaussian mechanism with ratio r = sensitivity / sigma.

    δ = Φ(r/2 − ε/r) − e^ε Φ(−r/2 − ε/r) (Balle & Wang 2018, Thm 8) in log space:
    log δ = log a + log(−expm1(log b − log a)) with log a = log Φ(r/2 − ε/r) and
    log b = ε + log Φ(−r/2 − ε/r). Returns −inf when δ rounds to zero.
    """
    log_a = float(special.log_ndtr(r / 2.0 - epsilon / r))
    log_b = epsilon + float(special.log_ndtr(-r / 2.0 - epsilon / r))
    diff = log_b - log_a
    if not diff < 0.0:  # b >= a only through rounding: δ is 0 to float precision.
        return -math.inf
    return log_a + math.log(-math.expm1(diff))


def _bisect_last_true(pred, lo: float, hi: float) -> float:
    """Bisects a monotone predicate with ``pred(lo) is False``, ``pred(hi) is True``.

    Returns a point ``x`` with ``pred(x) is True`` (the upper end of the final
    bracket), split until the bracket cannot shrink in float64.
    """
    for _ in range(_MAX_BISECTIONS):
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:
            break
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return hi


def gaussian_delta(epsilon: float, *, sigma: float, sensitivity: float = 1.0) -> float:
    """Exact δ(ε) of one release of the Gaussian mechanism.

    For a query with L2 sensitivity Δ released with noise N(0, σ² I) and
    r = Δ/σ (Balle & Wang 2018, Theorem 8, Eq. (6))::

        δ(ε) = Φ(r/2 − ε/r) − e^ε · Φ(−r/2 − ε/r).

    It is evaluated in log space with ``scipy.special.log_ndtr``, so large ε
    neither overflows ``e^ε`` nor loses the result to cancellation; it returns
    ``0.0`` only when δ underflows float64.

    Args:
      epsilon: ε > 0 (finite).
      sigma: Noise standard deviation σ > 0.
      sensitivity: L2 sensitivity Δ > 0 of the released query.

    Returns:
      δ as a Python float in [0, 1] (1.0 only when δ rounds to 1).

    Raises:
      ValueError: If an argument is NaN, not finite, or ≤ 0.

    Guarantees:
      Exact: the mechanism is (ε, δ)-DP for the returned δ and for no smaller
      δ (up to float64 rounding).

    References:
      Balle, Wang. ICML 2018, Theorem 8. https://arxiv.org/abs/1805.06530
    """
    _validate.positive(epsilon=epsilon, sigma=sigma, sensitivity=sensitivity)
    r = float(sensitivity) / float(sigma)
    return math.exp(_gaussian_log_delta(float(epsilon), r))


def gaussian_epsilon(delta: float, *, sigma: float, sensitivity: float = 1.0) -> float:
    """Smallest ε for which one Gaussian release is (ε, δ)-DP.

    Inverts :func:`gaussian_delta` (Balle & Wang 2018, Theorem 8) by bracket
    doubling and bisection on the log of δ, split to float64 resolution. The
    upper end of the final bracket is returned, so
    ``gaussian_delta(result) <= delta`` always holds as computed. If already
    δ(0) = 2Φ(r/2) − 1 ≤ ``delta``, the answer is ``0.0``.

    Args:
      delta: Target δ in the open interval (0, 1).
      sigma: Noise standard deviation σ > 0.
      sensitivity: L2 sensitivity Δ > 0.

    Returns:
      ε ≥ 0 as a Python float.

    Raises:
      ValueError: If ``delta`` is outside (0, 1), or ``sigma``/``sensitivity``
        are not finite and > 0, or any argument is NaN.

    Guarantees:
      Certified, and exact up to one float64 bisection step: never returns an
      ε whose exact δ exceeds ``delta``.

    References:
      Balle, Wang. ICML 2018, Theorem 8. https://arxiv.org/abs/1805.06530
    """
    _validate.open_interval(0.0, 1.0, delta=delta)
    _validate.positive(sigma=sigma, sensitivity=sensitivity)
    r = float(sensitivity) / float(sigma)
    target = float(delta)

    def ok(eps: float) -> bool:
        # Same arithmetic as gaussian_delta, so the check holds for its output.
        return math.exp(_gaussian_log_delta(eps, r)) <= target

    if ok(0.0):
        return 0.0
    hi = max(1.0, r * r)
    for _ in range(_MAX_DOUBLINGS):
        if ok(hi):
            break
        hi *= 2.0
    else:  # pragma: no cover - needs r beyond float range
        raise ValueError(
            f"Could not bracket epsilon for delta={delta}, sigma={sigma}, "
            f"sensitivity={sensitivity}."
        )
    return _bisect_last_true(ok, 0.0, hi)


def gaussian_sigma_classic(
    epsilon: float, delta: float, sensitivity: float = 1.0
) -> float:
    """Classic Gaussian-mechanism noise σ = Δ·√(2 ln(1.25/δ)) / ε.

    Dwork & Roth 2014, Theorem A.1. The theorem only holds for ε < 1; outside
    it use :func:`gaussian_sigma_analytic`, which is also always smaller.

    Args:
      epsilon: ε in the open interval (0, 1).
      delta: δ in the open interval (0, 1).
      sensitivity: L2 sensitivity Δ > 0.

    Returns:
      σ as a Python float.

    Raises:
      ValueError: If ``epsilon`` is not in (0, 1) (the theorem's range), or
        ``delta``/``sensitivity`` are out of range, or any argument is NaN.

    Guarantees:
      Certified for ε < 1 (not tight: typically 20–40% more noise than the
      analytic calibration).

    References:
      Dwork, Roth. The Algorithmic Foundations of Differential Privacy,
      Theorem A.1.
    """
    _validate.open_interval(0.0, 1.0, epsilon=epsilon, delta=delta)
    _validate.positive(sensitivity=sensitivity)
    return float(sensitivity) * math.sqrt(2.0 * math.log(1.25 / float(delta))) / float(
        epsilon
    )


def gaussian_sigma_analytic(
    epsilon: float, delta: float, sensitivity: float = 1.0
) -> float:
    """Smallest σ for which one Gaussian release is (ε, δ)-DP (analytic Gaussian).

    Solves ``gaussian_delta(epsilon, sigma=σ, sensitivity=Δ) <= delta`` for the
    smallest σ (Balle & Wang 2018, Theorem 8 and Algorithm 1) by bracket
    doubling and float64 bisection directly on σ; the upper end of the final
    bracket is returned, so the returned σ never undershoots.

    Args:
      epsilon: ε > 0 (finite; any size, unlike the classic formula).
      delta: δ in the open interval (0, 1).
      sensitivity: L2 sensitivity Δ > 0.

    Returns:
      σ > 0 as a Python float.

    Raises:
      ValueError: If an argument is out of range or NaN.

    Guarantees:
      Certified: ``gaussian_delta(epsilon, sigma=result) <= delta`` as computed.
      Exact up to one float64 bisection step.

    References:
      Balle, Wang. ICML 2018, Theorem 8. https://arxiv.org/abs/1805.06530
    """
    _validate.positive(epsilon=epsilon, sensitivity=sensitivity)
    _validate.open_interval(0.0, 1.0, delta=delta)
    eps, sens = float(epsilon), float(sensitivity)
    target = float(delta)

    def ok(sigma: float) -> bool:
        # Same arithmetic as gaussian_delta, so the check holds for its output.
        return math.exp(_gaussian_log_delta(eps, sens / sigma)) <= target

    hi = sens * math.sqrt(2.0 * math.log(1.25 / float(delta))) / eps
    for _ in range(_MAX_DOUBLINGS):
        if ok(hi):
            break
        hi *= 2.0
    lo = hi
    for _ in range(_MAX_DOUBLINGS):
        lo *= 0.5
        if not ok(lo):
            break
    else:  # pragma: no cover - δ(σ → 0) → 1 > delta
        raise ValueError(f"Could not bracket sigma for epsilon={epsilon}, delta={delta}.")
    return _bisect_last_true(ok, lo, hi)


def laplace_epsilon(scale: float, sensitivity: float = 1.0) -> float:
    """Pure ε = Δ/b of the Laplace mechanism with scale b.

    Dwork, McSherry, Nissim, Smith 2006; Dwork & Roth 2014, Theorem 3.6.

    Args:
      scale: Laplace scale b > 0.
      sensitivity: L1 sensitivity Δ > 0.

    Returns:
      ε as a Python float; the mechanism is (ε, 0)-DP.

    Raises:
      ValueError: If an argument is not finite and > 0.

    Guarantees:
      Exact (pure DP, δ = 0).
    """
    _validate.positive(scale=scale, sensitivity=sensitivity)
    return float(sensitivity) / float(scale)


def gaussian_zcdp(sigma: float, sensitivity: float = 1.0) -> float:
    """zCDP parameter ρ = Δ²/(2σ²) of one Gaussian release.

    Bun & Steinke 2016, Proposition 1.6.

    Args:
      sigma: Noise standard deviation σ > 0.
      sensitivity: L2 sensitivity Δ > 0.

    Returns:
      ρ as a Python float (ρ-zCDP; the RDP curve is ρ·α at every order α).

    Raises:
      ValueError: If an argument is not finite and > 0.

    Guarantees:
      Exact: the Gaussian's Rényi divergence at order α is exactly ρα.
    """
    _validate.positive(sigma=sigma, sensitivity=sensitivity)
    return float(sensitivity) ** 2 / (2.0 * float(sigma) ** 2)


def _improved_linear_rdp_epsilon(rho: float, log_delta: float, alpha: float) -> float:
    # RDP-to-DP conversion of Canonne-Kamath-Steinke 2020, Prop. 12 / Balle et al.
    # 2020, Thm 21, for the linear curve ε_α = ρα.
    return (
        rho * alpha
        + math.log1p(-1.0 / alpha)
        - (log_delta + math.log(alpha)) / (alpha - 1.0)
    )


def zcdp_to_dp(
    rho: float,
    delta: float,
    *,
    method: Literal["classic", "improved"] = "classic",
) -> float:
    """Converts ρ-zCDP to (ε, δ)-DP.

    * ``method="classic"``: ε = ρ + 2√(ρ ln(1/δ)) (Bun & Steinke 2016,
      Proposition 1.3).
    * ``method="improved"``: the conversion dp_accounting applies to RDP
      curves (Canonne, Kamath & Steinke 2020, Proposition 12; Balle et al.
      2020, Theorem 21) on the curve ε_α = ρα::

          ε = min_{α>1} ρα + ln(1 − 1/α) − (ln δ + ln α)/(α − 1),

      minimised over a continuous α with a bounded scalar search; the result is
      never above the classic value (the classic α is always tried too).

    Args:
      rho: ρ > 0.
      delta: δ in the open interval (0, 1).
      method: ``"classic"`` or ``"improved"``.

    Returns:
      ε ≥ 0 as a Python float.

    Raises:
      ValueError: If ``rho``/``delta`` are out of range or NaN, or ``method``
        is unknown.

    Guarantees:
      Certified in both modes. ``"improved"``: the bound holds for the α that
      was found (a valid ε); the α itself is an estimated optimum.

    References:
      Bun, Steinke. TCC 2016, Prop. 1.3. https://arxiv.org/abs/1605.02065
      Canonne, Kamath, Steinke. NeurIPS 2020, Prop. 12.
      https://arxiv.org/abs/2004.00010
    """
    _validate.positive(rho=rho)
    _validate.open_interval(0.0, 1.0, delta=delta)
    rho, delta = float(rho), float(delta)
    log_inv_delta = -math.log(delta)
    classic = rho + 2.0 * math.sqrt(rho * log_inv_delta)
    if method == "classic":
        return classic
    if method != "improved":
        raise ValueError(f"Expected method in ('classic', 'improved'), got {method!r}.")
    log_delta = -log_inv_delta
    # The classic optimum α* = 1 + sqrt(ln(1/δ)/ρ): the improved formula at α*
    # is already below the classic bound, and it seeds the search bracket.
    alpha_star = 1.0 + math.sqrt(log_inv_delta / rho)
    best = _improved_linear_rdp_epsilon(rho, log_delta, alpha_star)

    def objective(log_am1: float) -> float:
        return _improved_linear_rdp_epsilon(rho, log_delta, 1.0 + math.exp(log_am1))

    lo, hi = math.log(alpha_star - 1.0) - 8.0, math.log(alpha_star - 1.0) + 8.0
    res = optimize.minimize_scalar(
        objective, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}
    )
    if np.isfinite(res.fun):
        # Re-evaluate at the α found: the bound is certified for that α.
        best = min(best, objective(float(res.x)))
    return max(0.0, min(best, classic))


def group_privacy(epsilon: float, delta: float, k: int) -> tuple[float, float]:
    """(ε, δ)-DP for groups of k records: (kε, k·e^{(k−1)ε}·δ).

    Dwork & Roth 2014, Theorem 2.2 (pure DP) and its approximate-DP form
    (e.g. Vadhan 2017, Lemma 2.2): an (ε, δ)-DP mechanism is
    (kε, k e^{(k−1)ε} δ)-DP for datasets differing in k records. The returned
    δ is capped at 1.0 (a vacuous guarantee) instead of overflowing.

    Args:
      epsilon: ε > 0 of the mechanism for one record.
      delta: δ in [0, 1) of the mechanism for one record (0 for pure DP).
      k: Group size, an integer ≥ 1.

    Returns:
      ``(k_epsilon, k_delta)`` as Python floats.

    Raises:
      ValueError: If ``epsilon`` ≤ 0, ``delta`` is outside [0, 1), ``k`` is not
        an integer ≥ 1, or an argument is NaN.

    Guarantees:
      Certified (generic; not tight for specific mechanisms such as the
      Gaussian, whose group-k privacy is the Gaussian with sensitivity kΔ).
    """
    _validate.positive(epsilon=epsilon)
    _validate.non_negative(delta=delta)
    if float(delta) >= 1.0:
        raise ValueError(f"Expected delta={float(delta)} in the interval [0, 1).")
    _validate.positive_int(k=k)
    eps, dlt, k = float(epsilon), float(delta), int(k)
    if dlt == 0.0:
        return k * eps, 0.0
    log_k_delta = math.log(k) + (k - 1) * eps + math.log(dlt)
    return k * eps, math.exp(min(0.0, log_k_delta))


def _pure_dp_log_delta(epsilon: float, epsilon0: float, count: int) -> float:
    """log δ(ε) of the k-fold dominating randomized-response pair (see below).

    Only the outcomes with privacy loss l_i = (k − 2i)ε0 > ε contribute, i.e.
    i < (k − ε/ε0)/2; each adds P_i (1 − e^{ε − l_i}) with
    log P_i = log C(k, i) + (k − i) log p + i log(1 − p),
    log p = −log(1 + e^{−ε0}), log(1 − p) = −log(1 + e^{ε0}). The sum is a
    ``logsumexp`` of the log terms, so neither C(k, i) nor e^{l_i} overflows.
    Returns −inf when no outcome contributes (ε ≥ kε0).
    """
    k = int(count)
    i = np.arange(k + 1, dtype=np.float64)
    loss = (k - 2.0 * i) * epsilon0
    keep = loss > epsilon
    if not keep.any():
        return -math.inf
    i, loss = i[keep], loss[keep]
    log_p = -np.logaddexp(0.0, -epsilon0)
    log_q = -np.logaddexp(0.0, epsilon0)
    log_w = (
        special.gammaln(k + 1.0)
        - special.gammaln(i + 1.0)
        - special.gammaln(k - i + 1.0)
        + (k - i) * log_p
        + i * log_q
    )
    log_terms = log_w + np.log(-np.expm1(epsilon - loss))
    return float(special.logsumexp(log_terms))


def _check_pure_dp(epsilon0: float, count: int) -> None:
    _validate.positive(epsilon0=epsilon0)
    _validate.positive_int(count=count)


def pure_dp_composition_delta(epsilon: float, *, epsilon0: float, count: int) -> float:
    """Exact optimal δ(ε) of the k-fold composition of (ε0, 0)-DP mechanisms.

    Every (ε0, 0)-DP mechanism is dominated by binary randomized response with
    P = (p, 1 − p), Q = (1 − p, p), p = e^{ε0}/(1 + e^{ε0}), and the k-fold
    adaptive composition of (ε0, 0)-DP mechanisms is dominated by, and
    achieved by, the k-fold product of that pair (Kairouz, Oh & Viswanath
    2015, Theorem 3.3, optimal composition; its proof builds the dominating
    mechanism). Its privacy loss is (k − 2i)ε0 with probability
    C(k, i) p^{k−i} (1 − p)^i, so the hockey-stick divergence is::

        δ(ε) = Σ_i C(k, i) p^{k−i} (1 − p)^i · max(0, 1 − e^{ε − (k − 2i)ε0}).

    At ε = (k − 2i)ε0 this is KOV 2015, Theorem 3.3's δ; in between it is the
    exact hockey-stick divergence of the same pair (the theorem's bound is
    only stated at those points). Evaluated in float64 log space
    (``scipy.special.gammaln`` and ``logsumexp``) in O(k) time and memory.

    The result holds for any neighbouring relation under which each
    mechanism is (ε0, 0)-DP.

    Args:
      epsilon: ε ≥ 0 (finite).
      epsilon0: Per-mechanism pure ε0 > 0 (finite).
      count: Number of composed mechanisms k, an integer ≥ 1.

    Returns:
      δ in [0, 1] as a Python float (0.0 for ε ≥ kε0).

    Raises:
      ValueError: If ``epsilon`` < 0, ``epsilon0`` ≤ 0, either is NaN or not
        finite, or ``count`` is not an integer ≥ 1 (the message names it).

    Guarantees:
      Exact: the composition is (ε, δ)-DP for the returned δ and, for the
      worst-case (ε0, 0)-DP mechanisms, for no smaller δ (up to float64
      rounding of the sum).

    References:
      Kairouz, Oh, Viswanath. ICML 2015, Theorem 3.3.
      https://arxiv.org/abs/1311.0776
    """
    _validate.non_negative(epsilon=epsilon)
    _check_pure_dp(epsilon0, count)
    return min(1.0, math.exp(_pure_dp_log_delta(float(epsilon), float(epsilon0), int(count))))


def pure_dp_composition_epsilon(delta: float, *, epsilon0: float, count: int) -> float:
    """Smallest ε with the k-fold composition of (ε0, 0)-DP mechanisms (ε, δ)-DP.

    Inverts :func:`pure_dp_composition_delta` (Kairouz, Oh & Viswanath 2015,
    Theorem 3.3, extended to every ε by the hockey-stick divergence of the
    dominating randomized-response pair) by float64 bisection on [0, kε0]:
    δ(ε) is non-increasing and δ(kε0) = 0. The upper end of the final bracket
    is returned, so ``pure_dp_composition_delta(result) <= delta`` always
    holds as computed (never overshoots). ``delta = 0`` gives the basic
    composition kε0, which is then tight.

    Args:
      delta: Target δ in [0, 1).
      epsilon0: Per-mechanism pure ε0 > 0 (finite).
      count: Number of composed mechanisms k, an integer ≥ 1.

    Returns:
      ε in [0, kε0] as a Python float.

    Raises:
      ValueError: If ``delta`` is outside [0, 1), ``epsilon0`` ≤ 0 or not
        finite, an argument is NaN, or ``count`` is not an integer ≥ 1.

    Guarantees:
      Certified, and exact up to one float64 bisection step (the optimal
      composition: no smaller ε holds for every (ε0, 0)-DP mechanism).

    References:
      Kairouz, Oh, Viswanath. ICML 2015, Theorem 3.3.
      https://arxiv.org/abs/1311.0776
    """
    _validate.non_negative(delta=delta)
    if float(delta) >= 1.0:
        raise ValueError(f"Expected delta={float(delta)} in the interval [0, 1).")
    _check_pure_dp(epsilon0, count)
    eps0, k, target = float(epsilon0), int(count), float(delta)
    upper = k * eps0
    if target == 0.0:
        return upper

    def ok(eps: float) -> bool:
        # Same arithmetic as pure_dp_composition_delta, so the check holds for it.
        return min(1.0, math.exp(_pure_dp_log_delta(eps, eps0, k))) <= target

    if ok(0.0):
        return 0.0
    return _bisect_last_true(ok, 0.0, upper)
