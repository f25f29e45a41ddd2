"""Rényi-DP curves, their composition and conversion to (ε, δ): vectorised NumPy.

An RDP curve is an array of Rényi divergences ``ε(α)`` at a grid of orders
``α > 1`` (Mironov 2017). Curves of independent mechanisms compose by adding
them order by order, so a ledger of many requests costs one array sum. Every
function here broadcasts over mechanism parameters: parameters of broadcast
shape ``P`` and ``orders`` of shape ``[k]`` give curves of shape ``P + [k]``;
the order axis is always the last one.

Everything is host-side float64 NumPy/SciPy, never traced or jitted. Arrays
come back as ``np.ndarray`` (float64); conversions of a single curve come back
as Python floats.

Guarantees vocabulary (see :mod:`dpunlearn.accounting.mechanisms`): RDP values
are **exact** for the Gaussian, Laplace and randomized response, and for the
Poisson-subsampled Gaussian at integer orders (a finite binomial sum). At
fractional orders the subsampled Gaussian uses the convergent series of
Mironov, Talwar & Zhang (2019) summed with signs, plus a conservative bound on
the truncated alternating tail; it agrees with a multi-precision integral to
about 1e-10 relative and is slightly *below* dp_accounting 0.6.0, which sums
absolute values of the series (a valid but looser over-estimate, up to ~1e-4
relative). The (ε, δ) conversions are **certified** for the order they
return; the order grid decides how tight they are.

References:
  Mironov. Rényi Differential Privacy. CSF 2017. https://arxiv.org/abs/1702.07476
  Mironov, Talwar, Zhang. Rényi Differential Privacy of the Sampled Gaussian
  Mechanism. 2019. https://arxiv.org/abs/1908.10530
  Canonne, Kamath, Steinke. The Discrete Gaussian for Differential Privacy.
  NeurIPS 2020, Prop. 12. https://arxiv.org/abs/2004.00010
  Balle, Barthe, Gaboardi, Hsu, Sato. Hypothesis Testing Interpretations and
  Rényi Differential Privacy. AISTATS 2020, Thm 21. https://arxiv.org/abs/1905.09982
  Kairouz, Oh, Viswanath. The Composition Theorem for Differential Privacy.
  ICML 2015. https://arxiv.org/abs/1311.0776
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from dpunlearn import _validate

__all__ = [
    "DEFAULT_ORDERS",
    "gaussian_rdp",
    "subsampled_gaussian_rdp",
    "laplace_rdp",
    "randomized_response_rdp",
    "pure_dp_rdp",
    "compose_rdp",
    "rdp_to_dp",
    "rdp_delta",
]

#: Default RDP orders: 1.1, 1.2, ..., 10.9, then 11, ..., 63, 128, 256, 512, 1024.
#: The same grid as ``dp_accounting.rdp.rdp_privacy_accountant.DEFAULT_RDP_ORDERS``
#: (values identical in float64), so results are directly comparable. Read-only.
DEFAULT_ORDERS: np.ndarray = np.concatenate(
    [
        1.0 + np.arange(1, 100, dtype=np.float64) / 10.0,
        np.arange(11, 64, dtype=np.float64),
        np.array([128.0, 256.0, 512.0, 1024.0]),
    ]
)
DEFAULT_ORDERS.setflags(write=False)

# Memory budget (number of float64 entries) for one block of the vectorised sums.
_BLOCK_ENTRIES = 1 << 22
# Fractional-order series: terms per block, maximal number of terms, and the
# relative size (log) below which a decreasing term ends the sum.
_FRAC_BLOCK = 64
_FRAC_MAX_TERMS = 1 << 12
_FRAC_LOG_RTOL = -36.0
_FRAC_LOG_MARGIN = 16 * np.finfo(np.float64).eps


def _orders_array(orders: ArrayLike) -> np.ndarray:
    arr = np.asarray(orders, dtype=np.float64)
    _validate.ndim("orders", arr, 1)
    if arr.size == 0:
        raise ValueError("Expected orders to be non-empty.")
    _validate.array_in_range("orders", arr, 1.0, math.inf)
    return arr


def gaussian_rdp(
    orders: ArrayLike, sigma: ArrayLike, sensitivity: ArrayLike = 1.0
) -> np.ndarray:
    """RDP curve α·Δ²/(2σ²) of one Gaussian release.

    Mironov 2017, Proposition 7 (Table II).

    Args:
      orders: Orders α > 1, shape ``[k]``.
      sigma: Noise standard deviation(s) σ > 0, any shape ``P1``.
      sensitivity: L2 sensitivity Δ > 0, broadcastable with ``sigma``.

    Returns:
      float64 array of shape ``broadcast(P1, shape(sensitivity)) + [k]``.

    Raises:
      ValueError: If ``orders`` is not a non-empty 1-D array of finite values
        > 1, or a ``sigma``/``sensitivity`` entry is not finite and > 0.

    Guarantees:
      Exact.
    """
    alpha = _orders_array(orders)
    _validate.array_in_range("sigma", sigma, 0.0, math.inf)
    _validate.array_in_range("sensitivity", sensitivity, 0.0, math.inf)
    sigma = np.asarray(sigma, dtype=np.float64)
    sens = np.asarray(sensitivity, dtype=np.float64)
    rho = sens**2 / (2.0 * sigma**2)
    return rho[..., None] * alpha


def _segment_logsumexp(terms: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
    """Log-sum-exp over contiguous segments of the last axis."""
    seg_max = np.maximum.reduceat(terms, starts, axis=-1)
    shifted = np.exp(terms - np.repeat(seg_max, lengths, axis=-1))
    return seg_max + np.log(np.add.reduceat(shifted, starts, axis=-1))


def _log_expm1(x: np.ndarray) -> np.ndarray:
    """log(e^x − 1) for x > 0, without overflow for large x."""
    big = x > 30.0
    safe = np.where(big, 1.0, x)
    return np.where(big, x + np.log1p(-np.exp(-np.where(big, x, 31.0))), np.log(np.expm1(safe)))


def _log_a_integer(log_q, log_1mq, inv_2s2, alphas: np.ndarray) -> np.ndarray:
    """log A_α for integer α ≥ 2 (Mironov-Talwar-Zhang 2019, Sec. 3.1), configs [c].

    A_α = Σ_{i=0}^{α} C(α,i) q^i (1−q)^{α−i} M_i with M_i = e^{(i²−i)/(2σ²)}.
    Since the binomial weights sum to 1 and M_0 = M_1 = 1, A_α − 1 is the sum of
    the positive terms C(α,i) q^i (1−q)^{α−i} (M_i − 1) for i ≥ 2; summing
    those and returning log1p(A_α − 1) keeps full relative precision even when
    the RDP is tiny (small q, large σ).
    """
    a_int = alphas.astype(np.int64)
    lengths = a_int - 1  # i = 2, ..., α
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    i = np.concatenate([np.arange(2, n + 1) for n in a_int]).astype(np.float64)
    a = np.repeat(alphas, lengths)
    log_comb = special.gammaln(a + 1) - special.gammaln(i + 1) - special.gammaln(a - i + 1)
    out = np.empty((log_q.shape[0], alphas.size))
    step = max(1, _BLOCK_ENTRIES // max(1, i.size))
    for lo in range(0, log_q.shape[0], step):
        sl = slice(lo, lo + step)
        terms = (
            log_comb
            + i * log_q[sl, None]
            + (a - i) * log_1mq[sl, None]
            + _log_expm1((i * i - i) * inv_2s2[sl, None])
        )
        out[sl] = np.logaddexp(0.0, _segment_logsumexp(terms, starts, lengths))
    return out


def _log_a_fractional(q: np.ndarray, sigma: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """log A_α for fractional α (Mironov-Talwar-Zhang 2019, Sec. 3.3), rows [r].

    Each row is one (q, σ, α) triple. With j = α − i and
    z₀ = σ² ln(1/q − 1) + 1/2::

        A_α = Σ_i C(α,i) [q^i (1−q)^{α−i} e^{(i²−i)/(2σ²)} Φ((z₀−i)/σ)
                         + q^{α−i} (1−q)^i e^{(j²−j)/(2σ²)} Φ((j−z₀)/σ)].

    The generalised binomial coefficients alternate in sign for i > α; the sum
    is kept signed (it is then exact) and processed in blocks of terms, rows
    leaving the computation as they converge. A row stops at the first term
    whose two parts are both decreasing and below e^{-36} of the largest term
    seen, or at the term cap; the magnitude of that first omitted term is
    added (for an alternating series with decreasing terms the tail is bounded
    by it), which keeps the result conservative.
    """
    n = q.size
    log_a = np.empty(n)
    rows = np.arange(n)
    run_max = np.full(n, -np.inf)  # running log scale
    run_sum = np.zeros(n)  # Σ sign·exp(term − run_max)
    prev_s0 = np.full(n, np.inf)
    prev_s1 = np.full(n, np.inf)
    log_q, log_1mq = np.log(q), np.log1p(-q)
    z0 = sigma * sigma * (log_1mq - log_q) + 0.5
    start = 0
    ar = np.arange(_FRAC_BLOCK)
    while rows.size:
        qq, ss, aa = log_q[rows, None], sigma[rows, None], alpha[rows, None]
        lmq, zz = log_1mq[rows, None], z0[rows, None]
        i = (start + ar).astype(np.float64)[None, :]
        j = aa - i
        inv_2s2 = 1.0 / (2.0 * ss * ss)
        log_abs_comb = special.gammaln(aa + 1.0) - special.gammaln(i + 1.0) - special.gammaln(j + 1.0)
        sign = special.gammasgn(j + 1.0)  # C(α, i) has the sign of Γ(α − i + 1)
        log_s0 = (
            log_abs_comb + i * qq + j * lmq + (i * i - i) * inv_2s2
            + special.log_ndtr((zz - i) / ss)
        )
        log_s1 = (
            log_abs_comb + j * qq + i * lmq + (j * j - j) * inv_2s2
            + special.log_ndtr((j - zz) / ss)
        )
        log_t = np.logaddexp(log_s0, log_s1)  # |term_i|, shape [rows, B]
        scale_ref = np.maximum(run_max[rows], np.max(log_t, axis=1))
        prev0 = np.concatenate([prev_s0[rows, None], log_s0[:, :-1]], axis=1)
        prev1 = np.concatenate([prev_s1[rows, None], log_s1[:, :-1]], axis=1)
        small = (
            (log_s0 < prev0)
            & (log_s1 < prev1)
            & (log_t < scale_ref[:, None] + _FRAC_LOG_RTOL)
        )
        last_block = start + _FRAC_BLOCK >= _FRAC_MAX_TERMS
        if last_block:
            small[:, -1] = True
        has = small.any(axis=1)
        first = np.where(has, np.argmax(small, axis=1), _FRAC_BLOCK)
        keep = ar[None, :] < first[:, None]
        new_max = np.maximum(run_max[rows], np.max(np.where(keep, log_t, -np.inf), axis=1))
        old = run_max[rows]
        rescale = np.exp(np.where(np.isfinite(old), old - new_max, 0.0))
        add = np.where(keep, sign * np.exp(log_t - new_max[:, None]), 0.0).sum(axis=1)
        run_sum[rows] = run_sum[rows] * rescale + add
        run_max[rows] = new_max
        prev_s0[rows] = log_s0[:, -1]
        prev_s1[rows] = log_s1[:, -1]
        if has.any():
            fin = rows[has]
            tail = log_t[has, first[has]]  # first omitted term closes the sum
            total = run_sum[fin] + np.exp(tail - run_max[fin])
            # The signed sum is formed relative to its largest term (≈ 1), so its
            # rounding error is a few ulps of that term in absolute terms; add
            # that much to stay conservative when the RDP itself is tiny.
            log_a[fin] = run_max[fin] + np.log(total) + _FRAC_LOG_MARGIN
        rows = rows[~has]
        start += _FRAC_BLOCK
    return log_a


def subsampled_gaussian_rdp(orders: ArrayLike, q: ArrayLike, sigma: ArrayLike) -> np.ndarray:
    """RDP curve of the Poisson-subsampled Gaussian mechanism (add/remove one).

    Each record is included independently with probability ``q`` and a query
    of L2 sensitivity 1 is released with N(0, σ²) noise (``sigma`` is the noise
    multiplier). The RDP at order α is ``log(A_α)/(α − 1)`` (Mironov, Talwar &
    Zhang 2019, Eq. (3)–(4)): at integer α the exact binomial expansion
    A_α = Σ_{i=0}^{α} C(α,i) q^i (1−q)^{α−i} e^{(i²−i)/(2σ²)} (Sec. 3.1); at
    fractional α the two-sided series of Sec. 3.3, summed with signs and closed
    with an alternating-tail bound. ``q = 1`` gives the Gaussian α/(2σ²) and
    ``q = 0`` gives 0. Configurations are de-duplicated before computing, so a
    ledger with many repeats of few (q, σ) pairs is cheap.

    Args:
      orders: Orders α > 1, shape ``[k]``.
      q: Sampling probabilities in [0, 1], any shape.
      sigma: Noise multipliers σ > 0, broadcastable with ``q``.

    Returns:
      float64 array of shape ``broadcast(shape(q), shape(sigma)) + [k]``.

    Raises:
      ValueError: If ``orders`` is invalid, a ``q`` entry is outside [0, 1], or
        a ``sigma`` entry is not finite and > 0.

    Guarantees:
      Exact at integer orders (float64 log-sum-exp of a finite sum).
      Fractional orders: a conservative evaluation of an exact series (see the
      module docstring); within rel 1e-4 of, and not above, dp_accounting.

    References:
      Mironov, Talwar, Zhang 2019. https://arxiv.org/abs/1908.10530
    """
    alpha = _orders_array(orders)
    _validate.array_in_range("q", q, 0.0, 1.0, lo_closed=True, hi_closed=True)
    _validate.array_in_range("sigma", sigma, 0.0, math.inf)
    qb, sb = np.broadcast_arrays(np.asarray(q, np.float64), np.asarray(sigma, np.float64))
    shape = qb.shape
    pairs = np.stack([qb.ravel(), sb.ravel()], axis=-1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    uq, us = uniq[:, 0], uniq[:, 1]
    out = np.zeros((uniq.shape[0], alpha.size))

    full = uq == 1.0
    out[full] = alpha / (2.0 * us[full, None] ** 2)
    mid = (uq > 0.0) & (uq < 1.0)
    if mid.any():
        qm, sm = uq[mid], us[mid]
        is_int = alpha == np.floor(alpha)
        log_a = np.empty((qm.size, alpha.size))
        if is_int.any():
            log_a[:, is_int] = _log_a_integer(
                np.log(qm), np.log1p(-qm), 1.0 / (2.0 * sm * sm), alpha[is_int]
            )
        if (~is_int).any():
            fa = alpha[~is_int]
            qq, ff = np.meshgrid(np.arange(qm.size), fa, indexing="ij")
            rows_q, rows_s, rows_a = qm[qq.ravel()], sm[qq.ravel()], ff.ravel()
            step = max(1, _BLOCK_ENTRIES // (_FRAC_BLOCK * 16))
            flat = np.concatenate(
                [
                    _log_a_fractional(
                        rows_q[lo : lo + step], rows_s[lo : lo + step], rows_a[lo : lo + step]
                    )
                    for lo in range(0, rows_q.size, step)
                ]
            )
            log_a[:, ~is_int] = flat.reshape(qm.size, fa.size)
        out[mid] = np.maximum(log_a, 0.0) / (alpha - 1.0)
    return out[inverse].reshape(shape + (alpha.size,))


def laplace_rdp(
    orders: ArrayLike, scale: ArrayLike, sensitivity: ArrayLike = 1.0
) -> np.ndarray:
    """RDP curve of one Laplace release with scale b and L1 sensitivity Δ.

    Mironov 2017, Proposition 6 (Table II), with ε₀ = Δ/b::

        ε(α) = 1/(α−1) · log( α/(2α−1) · e^{(α−1)ε₀} + (α−1)/(2α−1) · e^{−αε₀} ),

    evaluated with ``logaddexp``.

    Args:
      orders: Orders α > 1, shape ``[k]``.
      scale: Laplace scale(s) b > 0, any shape.
      sensitivity: L1 sensitivity Δ > 0, broadcastable with ``scale``.

    Returns:
      float64 array of shape ``broadcast(...) + [k]``.

    Raises:
      ValueError: On invalid orders or a non-positive/non-finite parameter.

    Guarantees:
      Exact.
    """
    alpha = _orders_array(orders)
    _validate.array_in_range("scale", scale, 0.0, math.inf)
    _validate.array_in_range("sensitivity", sensitivity, 0.0, math.inf)
    eps0 = (np.asarray(sensitivity, np.float64) / np.asarray(scale, np.float64))[..., None]
    a = alpha
    log_mix = np.logaddexp(
        np.log(a / (2 * a - 1)) + (a - 1) * eps0,
        np.log((a - 1) / (2 * a - 1)) - a * eps0,
    )
    return log_mix / (a - 1)


def randomized_response_rdp(
    orders: ArrayLike, noise_parameter: ArrayLike, num_buckets: int = 2
) -> np.ndarray:
    """RDP curve of k-ary randomized response under replace-one adjacency.

    With probability ``1 − p`` the true bucket is reported, otherwise a uniform
    one, so the true bucket has mass a = 1 − p + p/k and every other bucket
    b = p/k. The worst replace-one pair swaps two buckets (Mironov 2017,
    Definition 3 applied to the two output distributions)::

        ε(α) = 1/(α−1) · log( a^α b^{1−α} + b^α a^{1−α} + (k − 2) b ).

    How it is computed: with the likelihood ratio e^{ε₀} = a/b = 1 + k(1 − p)/p
    (ε₀ is the pure-DP level of the mechanism) and a + (k − 1) b = 1, the sum
    inside the log is 1 + y with::

        y = (e^{αε₀} − 1)(1 − e^{−(α−1)ε₀}) / (e^{ε₀} + k − 1)
          = 4 e^{ε₀/2} sinh(αε₀/2) sinh((α−1)ε₀/2) / (e^{ε₀} + k − 1) ≥ 0,

    so ε(α) = log1p(y)/(α−1), evaluated in log space as in
    :func:`pure_dp_rdp` (log sinh, ``logaddexp``), with ε₀ from ``log1p``
    (exact 1 − p for p ≥ ½, log a − log b below). For k = 2 this is
    :func:`pure_dp_rdp` at ε₀. The direct form cancels when p is close to 1
    (small ε₀: a and b are both ≈ 1/k, and the sum is 1 + O(ε₀²), losing about
    log10(1/ε₀²) digits); this form has no cancellation, keeps full relative
    precision down to ε₀ ≈ 1e-16, and does not overflow for large αε₀. The
    returned curve is made non-decreasing in α (a running maximum over the
    sorted orders, which only removes float64 rounding dips).

    Args:
      orders: Orders α > 1, shape ``[k_orders]``.
      noise_parameter: p in (0, 1], any shape (p = 0 is not private).
      num_buckets: Number of buckets k ≥ 2 (an integer).

    Returns:
      float64 array of shape ``shape(noise_parameter) + [k_orders]``.

    Raises:
      ValueError: On invalid orders, p outside (0, 1], or k < 2.

    Guarantees:
      Exact (replace-one adjacency, as dp_accounting's REPLACE_ONE); within
      about 1e-14 relative of a multi-precision evaluation for every p in
      (0, 1], including p → 1 where the direct form loses all digits.
    """
    alpha = _orders_array(orders)
    _validate.array_in_range("noise_parameter", noise_parameter, 0.0, 1.0, hi_closed=True)
    _validate.positive_int(num_buckets=num_buckets)
    if num_buckets < 2:
        raise ValueError(f"Expected num_buckets={num_buckets} >= 2.")
    p = np.asarray(noise_parameter, np.float64)
    k = float(num_buckets)
    # ε₀ = log(a/b). For p ≥ ½, 1 − p is exact (Sterbenz) and log1p keeps
    # small ε₀ exact; for p < ½, a/b ≥ 2 and log a − log b neither cancels nor
    # overflows (k(1 − p)/p would for subnormal p).
    hi = p >= 0.5
    p_hi = np.where(hi, p, 1.0)
    p_lo = np.where(hi, 0.25, p)
    eps0 = np.where(
        hi,
        np.log1p(k * (1.0 - p_hi) / p_hi),
        np.log1p(-p_lo * ((k - 1.0) / k)) - (np.log(p_lo) - math.log(k)),
    )
    out = _rr_pair_rdp(alpha, eps0[..., None], num_buckets)
    # A Rényi divergence is non-decreasing in α; where the curve is
    # flat at ≈ ε₀ (large ε₀, large α) rounding can leave 1-ulp dips, so take
    # the running maximum over ascending orders (raises values by ≤ an ulp or so).
    order = np.argsort(alpha, kind="stable")
    out[..., order] = np.maximum.accumulate(out[..., order], axis=-1)
    return out


def _rr_pair_rdp(alpha: np.ndarray, eps: np.ndarray, num_buckets: int) -> np.ndarray:
    """Rényi divergence of k-ary RR with likelihood ratio e^ε (two buckets swapped).

    1/(α−1) · log1p(y), y = 2 sinh(αε/2) sinh((α−1)ε/2) / D with
    D = (e^{ε/2} + (k − 1) e^{−ε/2}) / 2 (= cosh(ε/2) for k = 2), in log space.
    ε = 0 gives 0.
    """
    if num_buckets == 2:
        log_den = _log_cosh(0.5 * eps)
    else:
        log_den = np.logaddexp(0.5 * eps, math.log(num_buckets - 1.0) - 0.5 * eps) - math.log(2.0)
    with np.errstate(divide="ignore"):  # ε = 0: log sinh(0) = −inf, y = 0
        log_y = (
            math.log(2.0)
            + _log_sinh(0.5 * alpha * eps)
            + _log_sinh(0.5 * (alpha - 1) * eps)
            - log_den
        )
    return np.logaddexp(0.0, log_y) / (alpha - 1)


def _log_sinh(x: np.ndarray) -> np.ndarray:
    # log sinh(x) for x > 0 without overflow or loss for small x.
    return x + np.log(-np.expm1(-2.0 * x)) - math.log(2.0)


def _log_cosh(x: np.ndarray) -> np.ndarray:
    # log cosh(x) for x >= 0 without overflow.
    return x + np.log1p(np.exp(-2.0 * x)) - math.log(2.0)


def pure_dp_rdp(orders: ArrayLike, epsilon: ArrayLike) -> np.ndarray:
    """Tight RDP curve of a generic (ε, 0)-DP mechanism.

    Every (ε, 0)-DP mechanism is dominated by binary randomized response
    P = (p, 1 − p), Q = (1 − p, p) with p = e^ε/(1 + e^ε) (Kairouz, Oh &
    Viswanath 2015, the dominating mechanism in the proof of Theorem 3.3), and
    Rényi divergence obeys data processing, so (Mironov 2017, Definition 3)::

        ε(α) = 1/(α−1) · log( p^α (1−p)^{1−α} + (1−p)^α p^{1−α} )
             = 1/(α−1) · log( cosh((α − ½)ε) / cosh(ε/2) )
             = 1/(α−1) · log1p( 2 sinh(αε/2) sinh((α−1)ε/2) / cosh(ε/2) ),

    which is attained by randomized response itself, never exceeds ε
    (Mironov 2017, Proposition 3), behaves as αε²/2 for small ε, and equals
    :func:`randomized_response_rdp` with noise parameter 2/(1 + e^ε) and two
    buckets. The last form is evaluated in log space (log sinh, log cosh), so
    it neither cancels for small ε (where the first form loses about
    log10(1/ε²) digits) nor overflows for large αε. The bound holds for any
    neighbouring relation under which the mechanism is (ε, 0)-DP.

    Args:
      orders: Orders α > 1, shape ``[k_orders]``.
      epsilon: Pure ε > 0 (finite), any shape.

    Returns:
      float64 array of shape ``shape(epsilon) + [k_orders]``.

    Raises:
      ValueError: On invalid orders, or ``epsilon`` not finite and > 0.

    Guarantees:
      Exact for the worst-case (ε, 0)-DP mechanism (randomized response).
    """
    alpha = _orders_array(orders)
    _validate.array_in_range("epsilon", epsilon, 0.0, math.inf)
    eps = np.asarray(epsilon, np.float64)[..., None]
    return np.clip(_rr_pair_rdp(alpha, eps, 2), 0.0, eps)


def compose_rdp(curves: ArrayLike, counts: ArrayLike | None = None) -> np.ndarray:
    """Composes RDP curves of independent mechanisms: Σ_i counts_i · curves_i.

    RDP composes additively at every order (Mironov 2017, Proposition 1), so a
    heterogeneous ledger is one weighted sum over its events, and a
    homogeneous one is ``count × curve``. A count of 0 contributes 0 even for
    an infinite curve.

    Args:
      curves: Array of shape ``[..., n, k]``: ``n`` curves on the same ``k``
        orders (a list of 1-D curves works). ``inf`` entries are allowed.
      counts: Optional non-negative integers broadcastable to
        ``curves.shape[:-1]`` (e.g. shape ``[n]``); ``None`` means 1 each.

    Returns:
      float64 array of shape ``[..., k]``.

    Raises:
      ValueError: If ``curves`` has ndim < 2, holds NaN or negative values, or
        ``counts`` holds anything but integers ≥ 0.

    Guarantees:
      Exact (up to float64 summation).
    """
    c = np.asarray(curves, dtype=np.float64)
    if c.ndim < 2:
        raise ValueError(
            f"Expected curves to have shape [..., n, k] (ndim >= 2), got shape {c.shape}."
        )
    _validate.array_in_range("curves", c, 0.0, math.inf, lo_closed=True, hi_closed=True)
    if counts is None:
        return c.sum(axis=-2)
    _validate.array_non_negative_int("counts", counts)
    n = np.broadcast_to(np.asarray(counts, dtype=np.float64), c.shape[:-1])[..., None]
    with np.errstate(invalid="ignore"):  # 0 × inf, replaced by 0 below
        return np.where(n == 0, 0.0, n * c).sum(axis=-2)


def _prep_curve(orders: ArrayLike, rdp: ArrayLike):
    alpha = _orders_array(orders)
    r = np.asarray(rdp, dtype=np.float64)
    if r.ndim < 1 or r.shape[-1] != alpha.size:
        raise ValueError(
            f"Shape mismatch: rdp has shape {r.shape}, expected [..., {alpha.size}] "
            "to match orders."
        )
    _validate.array_in_range("rdp", r, 0.0, math.inf, lo_closed=True, hi_closed=True)
    return alpha, r


def _pick(values: np.ndarray, alpha: np.ndarray, scalar: bool):
    best = np.argmin(values, axis=-1)
    val = np.take_along_axis(values, best[..., None], axis=-1)[..., 0]
    order = alpha[best]
    if scalar:
        return float(val), float(order)
    return val, order


def rdp_to_dp(
    orders: ArrayLike,
    rdp: ArrayLike,
    delta: float,
    *,
    method: Literal["improved", "classic"] = "improved",
) -> tuple:
    """Converts RDP curve(s) to (ε, δ)-DP, minimising over the orders.

    * ``"classic"``: ε = min_α ε(α) + ln(1/δ)/(α − 1) (Mironov 2017, Prop. 3).
    * ``"improved"`` (default): ε = min_α ε(α) + ln((α−1)/α) − (ln δ + ln α)/(α−1)
      (Canonne, Kamath & Steinke 2020, Prop. 12; Balle et al. 2020, Thm 21),
      plus the KL shortcut ε = 0 when δ² ≥ 1 − e^{−ε(α)} (Pinsker-type bound
      TV ≤ √(1 − e^{−KL}) with KL ≤ ε(α)), as dp_accounting does. The improved
      value is never above the classic one at any order.

    Args:
      orders: Orders α > 1, shape ``[k]``.
      rdp: RDP values ≥ 0 (``inf`` allowed), shape ``[..., k]``.
      delta: Target δ in (0, 1).
      method: ``"improved"`` or ``"classic"``.

    Returns:
      ``(epsilon, best_order)``: Python floats for a 1-D ``rdp``, otherwise
      float64 arrays of shape ``rdp.shape[:-1]``. ε ≥ 0; ``inf`` if every order
      is infinite.

    Raises:
      ValueError: On invalid orders, a shape mismatch, negative/NaN RDP,
        ``delta`` outside (0, 1), or an unknown ``method``.

    Guarantees:
      Certified: the mechanism is (ε, δ)-DP, given that its RDP curve is
      bounded by ``rdp`` at ``best_order``.
    """
    alpha, r = _prep_curve(orders, rdp)
    _validate.open_interval(0.0, 1.0, delta=delta)
    log_delta = math.log(float(delta))
    with np.errstate(invalid="ignore"):
        if method == "classic":
            eps = r - log_delta / (alpha - 1.0)
        elif method == "improved":
            eps = r + np.log1p(-1.0 / alpha) - (log_delta + np.log(alpha)) / (alpha - 1.0)
            eps = np.where(float(delta) ** 2 + np.expm1(-r) > 0.0, 0.0, eps)
        else:
            raise ValueError(f"Expected method in ('improved', 'classic'), got {method!r}.")
    eps = np.where(np.isinf(r), np.inf, np.maximum(eps, 0.0))
    return _pick(eps, alpha, r.ndim == 1)


def rdp_delta(
    orders: ArrayLike,
    rdp: ArrayLike,
    epsilon: float,
    *,
    method: Literal["improved", "classic"] = "improved",
) -> tuple:
    """δ(ε) from RDP curve(s), minimising over the orders.

    * ``"classic"``: δ = min_α exp((α − 1)(ε(α) − ε)) (Mironov 2017, Prop. 3).
    * ``"improved"`` (default): δ = min_α exp((α−1)(ε(α) − ε + ln(1 − 1/α)) − ln α)
      (Canonne, Kamath & Steinke 2020, Prop. 12), and also δ ≤ √(1 − e^{−ε(α)})
      (total variation via KL), as dp_accounting's ``compute_delta``.

    Args:
      orders: Orders α > 1, shape ``[k]``.
      rdp: RDP values ≥ 0 (``inf`` allowed), shape ``[..., k]``.
      epsilon: ε > 0.
      method: ``"improved"`` or ``"classic"``.

    Returns:
      ``(delta, best_order)``: Python floats for a 1-D ``rdp``, otherwise arrays.
      δ is capped at 1.

    Raises:
      ValueError: On invalid orders, a shape mismatch, negative/NaN RDP,
        ``epsilon`` ≤ 0, or an unknown ``method``.

    Guarantees:
      Certified, as :func:`rdp_to_dp`.
    """
    alpha, r = _prep_curve(orders, rdp)
    _validate.positive(epsilon=epsilon)
    eps = float(epsilon)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "classic":
            log_d = (alpha - 1.0) * (r - eps)
        elif method == "improved":
            log_d = (alpha - 1.0) * (r - eps + np.log1p(-1.0 / alpha)) - np.log(alpha)
            log_d = np.minimum(log_d, 0.5 * np.log(-np.expm1(-r)))
        else:
            raise ValueError(f"Expected method in ('improved', 'classic'), got {method!r}.")
    log_d = np.where(np.isinf(r), 0.0, np.minimum(log_d, 0.0))
    d, order = _pick(log_d, alpha, r.ndim == 1)
    return (math.exp(d), order) if r.ndim == 1 else (np.exp(d), order)
