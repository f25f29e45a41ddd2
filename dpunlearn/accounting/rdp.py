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
from dpunlearn.accounting import _guards

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
# Subsampled Gaussian: past these the exact sums are replaced by the Gaussian
# bound α/(2σ²) (see subsampled_gaussian_rdp): orders above _SG_MAX_ORDER
# (the binomial sum has α terms), σ whose largest term α²/(2σ²) would leave
# float64 (tiny σ), and σ above _SG_MAX_SIGMA (σ² ln(1/q − 1) overflows).
_SG_MAX_ORDER = float(1 << 16)
_SG_MAX_EXPONENT = 1e300
_SG_MAX_SIGMA = 1e100


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
    # (Δ/σ)² rather than Δ²/σ²: σ² underflows to 0 for σ < 1e-162. A ratio
    # beyond 1e154 gives inf, the honest value (the divergence exceeds float64).
    with np.errstate(over="ignore"):
        rho = 0.5 * (sens / sigma) ** 2
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
    the RDP is tiny (small q, large σ). Orders are processed in groups of at
    most ``_BLOCK_ENTRIES`` terms, so memory stays bounded for any grid.
    """
    out = np.empty((log_q.shape[0], alphas.size))
    group: list[int] = []
    size = 0
    for idx in range(alphas.size + 1):
        n = int(alphas[idx]) - 1 if idx < alphas.size else 0
        if group and (idx == alphas.size or size + n > _BLOCK_ENTRIES):
            out[:, group] = _log_a_integer_group(log_q, log_1mq, inv_2s2, alphas[group])
            group, size = [], 0
        if idx < alphas.size:
            group.append(idx)
            size += n
    return out


def _log_a_integer_group(log_q, log_1mq, inv_2s2, alphas: np.ndarray) -> np.ndarray:
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
    by it), which keeps the result conservative. Rows that reach the term cap
    before their terms alternate and decrease (never on the default grid) are
    flagged in the second returned array: the tail bound does not apply to
    them, and the caller replaces them.
    """
    n = q.size
    log_a = np.empty(n)
    capped = np.zeros(n, dtype=bool)
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
            # The first omitted term bounds the tail only once the series
            # alternates (i > α) with decreasing terms; flag rows where it does not.
            last = _FRAC_BLOCK - 1
            settled = (
                (log_s0[:, last] < prev0[:, last])
                & (log_s1[:, last] < prev1[:, last])
                & (i[0, last] > aa[:, 0] + 1.0)
            )
            capped[rows[~small.any(axis=1) & ~settled]] = True
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
    return log_a, capped


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

    Past the sizes where those sums are affordable or representable, the RDP
    of the Gaussian without subsampling, α/(2σ²), is returned instead: it is
    an upper bound (the subsampled output is a mixture, and Rényi divergence
    is quasi-convex in its first argument, van Erven & Harremoës 2014,
    Thm 13), and within |ln q|·2σ²/(α − 1) of the exact value where it is
    used. That happens for orders α > 2**16 (the integer sum has α terms),
    for σ with α²/(2σ²) > 1e300 at the largest order ≤ 2**16 (tiny σ: the
    terms leave float64; the bound is then ``inf`` only if α/(2σ²) is), and
    for σ > 1e100 (σ² ln(1/q − 1) overflows; the RDP is below 1e-200 there).
    A fractional order whose series has not converged after 4096 terms (not
    seen on practical grids) takes the exact integer value at ⌈α⌉, an upper
    bound since Rényi divergence is non-decreasing in α.

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
      Beyond the limits above: certified upper bound (Gaussian without
      subsampling).

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

    # The Gaussian α/(2σ²), exact for q = 1 and an upper bound for q < 1.
    with np.errstate(over="ignore"):
        gauss = alpha * (0.5 * (1.0 / us[:, None]) ** 2)
    out[uq == 1.0] = gauss[uq == 1.0]
    small_orders = alpha <= _SG_MAX_ORDER
    a_top = float(alpha[small_orders].max()) if small_orders.any() else 2.0
    with np.errstate(over="ignore"):
        exact_sigma = (us <= _SG_MAX_SIGMA) & ((a_top / us) ** 2 <= 2.0 * _SG_MAX_EXPONENT)
    mid = (uq > 0.0) & (uq < 1.0)
    out[mid] = gauss[mid]  # replaced below wherever the exact sums run
    run = mid & exact_sigma
    if run.any() and small_orders.any():
        qm, sm = uq[run], us[run]
        am = alpha[small_orders]
        out_run = out[run]
        out_run[:, small_orders] = _subsampled_exact(qm, sm, am)
        out[run] = out_run
    return out[inverse].reshape(shape + (alpha.size,))


def _subsampled_exact(qm: np.ndarray, sm: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RDP of the subsampled Gaussian by the sums of Mironov-Talwar-Zhang 2019,
    for 0 < q < 1, moderate σ and orders ≤ 2**16 (see the caller)."""
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
        blocks = [
            _log_a_fractional(
                rows_q[lo : lo + step], rows_s[lo : lo + step], rows_a[lo : lo + step]
            )
            for lo in range(0, rows_q.size, step)
        ]
        flat = np.concatenate([b[0] for b in blocks])
        capped = np.concatenate([b[1] for b in blocks])
        if capped.any():  # RDP(α) ≤ RDP(⌈α⌉): exact integer sum at ⌈α⌉
            up = np.ceil(rows_a[capped])
            log_up = np.array(
                [
                    _log_a_integer(
                        np.log([qv]), np.log1p([-qv]), np.array([0.5 / sv**2]), np.array([a])
                    )[0, 0]
                    for qv, sv, a in zip(rows_q[capped], rows_s[capped], up)
                ]
            )
            flat[capped] = (rows_a[capped] - 1.0) / (up - 1.0) * np.maximum(log_up, 0.0)
        log_a[:, ~is_int] = flat.reshape(qm.size, fa.size)
    return np.maximum(log_a, 0.0) / (alpha - 1.0)


def laplace_rdp(
    orders: ArrayLike, scale: ArrayLike, sensitivity: ArrayLike = 1.0
) -> np.ndarray:
    """RDP curve of one Laplace release with scale b and L1 sensitivity Δ.

    Mironov 2017, Proposition 6 (Table II), with ε₀ = Δ/b::

        ε(α) = 1/(α−1) · log( α/(2α−1) · e^{(α−1)ε₀} + (α−1)/(2α−1) · e^{−αε₀} ).

    How it is computed: with λ = α/(2α−1), u = (α−1)ε₀ and w = αε₀, the
    weights λ, 1 − λ and exponents u, −w have mean λu − (1 − λ)w = 0, so the
    sum inside the log is 1 + y with y = λ·g(u) + (1 − λ)·g(−w) ≥ 0,
    g(x) = e^x − 1 − x (a sum of non-negative terms, g by its Taylor series
    near 0), and ε(α) = log1p(y)/(α − 1). The direct form cancels for small
    ε₀ (it gave ~1e-16 instead of αε₀²/2 ≈ 1e-40 at b = 1e20, sometimes
    negative). For u > 30 it is ε₀ + logaddexp(log λ, log(1 − λ) − (2α−1)ε₀)/(α−1),
    which neither overflows for huge α or ε₀ nor cancels.

    Args:
      orders: Orders α > 1, shape ``[k]``.
      scale: Laplace scale(s) b > 0, any shape.
      sensitivity: L1 sensitivity Δ > 0, broadcastable with ``scale``.

    Returns:
      float64 array of shape ``broadcast(...) + [k]`` (``inf`` only where
      ε₀ = Δ/b itself exceeds float64).

    Raises:
      ValueError: On invalid orders or a non-positive/non-finite parameter.

    Guarantees:
      Exact.
    """
    alpha = _orders_array(orders)
    _validate.array_in_range("scale", scale, 0.0, math.inf)
    _validate.array_in_range("sensitivity", sensitivity, 0.0, math.inf)
    with np.errstate(over="ignore"):  # Δ/b > 1.8e308: ε₀ = inf, and so is ε(α)
        eps0 = (np.asarray(sensitivity, np.float64) / np.asarray(scale, np.float64))[..., None]
    a = alpha
    # λ and 1 − λ each from their own ratio: 1 − λ would cancel for α → 1.
    lam, lam_c = a / (2.0 * a - 1.0), (a - 1.0) / (2.0 * a - 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        u, w = (a - 1.0) * eps0, a * eps0
        big = u > 30.0
        us, ws = np.where(big, 0.0, u), np.where(big, 0.0, w)
        y = lam * _expm1_minus_x(us) + lam_c * _expm1_minus_x(-ws)
        small_form = np.log1p(y) / (a - 1.0)
        large_form = eps0 + np.logaddexp(
            np.log(lam), np.log(lam_c) - (2.0 * a - 1.0) * eps0
        ) / (a - 1.0)
    return np.where(big, large_form, small_form)


def _expm1_minus_x(x: np.ndarray) -> np.ndarray:
    """g(x) = e^x − 1 − x ≥ 0 without cancellation: Taylor series for |x| < 0.7.

    Series Σ_{n≥2} x^n/n! to n = 20 (0.7^21/21! < 1e-22 of x²/2); beyond,
    expm1(x) − x has no cancellation (|expm1(x)| and |x| differ by > 25%).
    """
    x = np.asarray(x, dtype=np.float64)
    near = np.abs(x) < 0.7
    xs = np.where(near, x, 0.0)
    term = 0.5 * xs * xs
    total = term
    for n in range(3, 21):
        term = term * xs / n
        total = total + term
    with np.errstate(over="ignore"):
        far = np.expm1(np.where(near, 0.0, x)) - np.where(near, 0.0, x)
    return np.where(near, total, far)


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
    _guards.count("num_buckets", num_buckets, minimum=2)
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
    # D_α ≤ D_∞ = ε₀ (Rényi divergence is non-decreasing in α, Mironov 2017,
    # Prop. 3): the cap only bites where αε₀ overflows to inf.
    out = np.minimum(_rr_pair_rdp(alpha, eps0[..., None], num_buckets), eps0[..., None])
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
    # ε = 0: log sinh(0) = −inf, y = 0. αε beyond float64: inf, which the
    # callers cap at ε (a Rényi divergence never exceeds D_∞ = ε).
    with np.errstate(divide="ignore", over="ignore"):
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
    an infinite curve. A sum beyond float64 is ``inf`` (the honest value).

    Args:
      curves: Array of shape ``[..., n, k]``: ``n`` curves on the same ``k``
        orders (a list of 1-D curves works). ``inf`` entries are allowed.
      counts: Optional integers in [0, 2**53] broadcastable to
        ``curves.shape[:-1]`` (e.g. shape ``[n]``); ``None`` means 1 each.

    Returns:
      float64 array of shape ``[..., k]``.

    Raises:
      ValueError: If ``curves`` has ndim < 2, holds NaN or negative values,
        ``counts`` holds anything but integers in [0, 2**53] (larger counts are
        not exact in float64), or its shape does not broadcast to one count
        per curve.

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
        with np.errstate(over="ignore"):
            return c.sum(axis=-2)
    n = _counts_array(counts)
    try:
        n = np.broadcast_to(n, c.shape[:-1])[..., None]
    except ValueError:
        raise ValueError(
            f"Expected counts to broadcast to shape {c.shape[:-1]} (one count per "
            f"curve), got shape {n.shape}."
        ) from None
    with np.errstate(invalid="ignore", over="ignore"):  # 0 × inf, replaced by 0 below
        return np.where(n == 0, 0.0, n * c).sum(axis=-2)


def _counts_array(counts: ArrayLike) -> np.ndarray:
    """``counts`` as float64, after checking every entry is an integer in
    [0, 2**53] (Python ints beyond int64 arrive as an object array)."""
    arr = np.asarray(counts)
    if arr.dtype == object:
        for where, v in np.ndenumerate(arr):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(
                    f"Expected counts to hold integers >= 0; found {v!r} at index {where}."
                )
            if not 0 <= v <= _guards.MAX_COUNT:
                raise ValueError(
                    f"Expected counts to hold integers in [0, 2**53] (exact in float64); "
                    f"found {v} at index {where}."
                )
        return arr.astype(np.float64)
    _validate.array_non_negative_int("counts", arr)
    # Compared in the input's own dtype: 2**53 + 1 rounds to 2**53 in float64.
    too_big = arr > (_guards.MAX_COUNT if arr.dtype.kind in "iu" else float(_guards.MAX_COUNT))
    if too_big.any():
        where = tuple(int(i) for i in np.argwhere(too_big)[0])
        raise ValueError(
            f"Expected counts to hold integers in [0, 2**53] (exact in float64); "
            f"found {arr[where]} at index {where}."
        )
    return arr.astype(np.float64)


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
    if method not in ("improved", "classic"):
        raise ValueError(f"Expected method in ('improved', 'classic'), got {method!r}.")
    return _pick(_dp_epsilons(alpha, r, float(delta), method), alpha, r.ndim == 1)


def _dp_epsilons(alpha: np.ndarray, r: np.ndarray, delta: float, method: str) -> np.ndarray:
    """ε at every order of :func:`rdp_to_dp`, for validated inputs (no checks:
    the hot path of searches over many curves)."""
    log_delta = math.log(delta)
    with np.errstate(invalid="ignore", over="ignore"):
        if method == "classic":
            eps = r - log_delta / (alpha - 1.0)
        else:
            eps = r + np.log1p(-1.0 / alpha) - (log_delta + np.log(alpha)) / (alpha - 1.0)
            eps = np.where(delta**2 + np.expm1(-r) > 0.0, 0.0, eps)
    return np.where(np.isinf(r), np.inf, np.maximum(eps, 0.0))


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
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
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
