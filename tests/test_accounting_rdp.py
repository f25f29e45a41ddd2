"""Tests for dpunlearn.accounting.rdp.

Oracles: an mpmath multi-precision integral of the subsampled-Gaussian moment
A_α (independent of both series), dp_accounting 0.6.0's RDP functions, and
closed forms. Known difference: dp_accounting sums |terms| of the
fractional-order series, so at fractional orders it over-estimates (by up to
~1e-1 relative at α < 2, and it returns inf where its series does not converge);
per order we therefore require ours ≤ theirs and agreement with mpmath, and
we require rel 1e-4 agreement of the final ε (accountants.md §0).
"""

import math

import mpmath
import numpy as np
import pytest
from dp_accounting.rdp import rdp_privacy_accountant as dpa_rdp
from hypothesis import given, settings, strategies as st

from dpunlearn.accounting import mechanisms, rdp

O = rdp.DEFAULT_ORDERS
SETTINGS = settings(derandomize=True, max_examples=40, deadline=None)


def _mp_log_a(q, sigma, alpha):
    """log A_α = log E_{z~N(0,σ²)}[((1−q) + q·N(z;1,σ²)/N(z;0,σ²))^α] at 40 digits.

    Integer α: the finite binomial sum in multi-precision. Fractional α:
    quadrature of the defining integral (not the series), with break points at
    the tilted mode z ≈ α.
    """
    with mpmath.workdps(40):
        q, s, a = mpmath.mpf(q), mpmath.mpf(sigma), mpmath.mpf(alpha)
        if float(alpha).is_integer():
            n = int(alpha)
            total = mpmath.fsum(
                mpmath.binomial(n, i) * q**i * (1 - q) ** (n - i)
                * mpmath.exp(mpmath.mpf(i * i - i) / (2 * s * s))
                for i in range(n + 1)
            )
            return float(mpmath.log(total))

        def f(z):
            ratio = mpmath.exp((2 * z - 1) / (2 * s * s))
            return mpmath.npdf(z, 0, s) * ((1 - q) + q * ratio) ** a

        pts = sorted({-10 * s, 0, 0.5, 1, a / 2, a, 2 * a, 10 * s + 2 * a})
        pts = [-mpmath.inf, *pts, mpmath.inf]
        val = mpmath.quad(f, pts)
        # A_α − 1 directly would need more digits; 40 are plenty for log A ≥ 1e-25.
        return float(mpmath.log(val))


def test_default_orders_match_dp_accounting_grid():
    assert O.dtype == np.float64
    np.testing.assert_array_equal(O, np.array(dpa_rdp.DEFAULT_RDP_ORDERS, dtype=np.float64))
    assert not O.flags.writeable


def test_gaussian_rdp_closed_form_and_broadcasting():
    sig = np.array([0.5, 1.0, 4.0])
    out = rdp.gaussian_rdp(O, sig, 2.0)
    assert out.shape == (3, O.size)
    np.testing.assert_allclose(out, O[None, :] * 4.0 / (2 * sig[:, None] ** 2), rtol=1e-15)
    assert rdp.gaussian_rdp(O, 1.0).shape == (O.size,)
    assert rdp.gaussian_rdp([2.0], np.ones((2, 5))).shape == (2, 5, 1)


@pytest.mark.parametrize(
    "q,sigma,alpha",
    [
        (0.01, 1.1, 3.9),
        (0.04, 1.5, 3.9),  # accountants.md §0: dp_accounting +5.4e-5 here
        (0.1, 3.0, 1.5),
        (0.5, 10.0, 2.5),
        (1e-3, 0.8, 7.3),
        (0.9, 2.0, 5.5),
        (0.01, 1.1, 20.0),
        (0.2, 0.7, 12.0),
        (1e-4, 1.0, 256.0),
        (0.3, 0.5, 1.1),  # slowly converging series: capped, conservative tail
    ],
)
def test_subsampled_gaussian_matches_mpmath(q, sigma, alpha):
    ours = rdp.subsampled_gaussian_rdp([alpha], q, sigma)[0]
    exact = _mp_log_a(q, sigma, alpha) / (alpha - 1)
    rtol = 1e-6 if alpha == 1.1 else 1e-9
    assert ours == pytest.approx(exact, rel=rtol)
    assert ours >= exact * (1 - 1e-12)  # never below the truth (conservative)


@pytest.mark.parametrize("q", [1e-5, 1e-3, 0.01, 0.04, 0.1, 0.5, 0.99])
@pytest.mark.parametrize("sigma", [0.6, 1.1, 2.0, 5.0])
def test_subsampled_gaussian_vs_dp_accounting(q, sigma):
    ours = rdp.subsampled_gaussian_rdp(O, q, sigma)
    theirs = dpa_rdp._compute_rdp_poisson_subsampled_gaussian(q, sigma, O)
    is_int = O == np.floor(O)
    big = theirs > 1e-8  # below this dp_accounting's own float64 sum is imprecise
    # Integer orders: the same finite sum -> tight agreement.
    np.testing.assert_allclose(ours[is_int & big], theirs[is_int & big], rtol=1e-9)
    # Fractional orders: dp_accounting over-estimates; never above it (rel 1e-12,
    # plus abs 1e-14 for the float64 rounding of log A_α ≈ log 1 in both codes).
    fin = np.isfinite(theirs) & big
    assert np.all(ours[fin] <= theirs[fin] * (1 + 1e-12) + 1e-14)


@pytest.mark.parametrize(
    "q,sigma,steps,ref",
    [(0.01, 1.1, 1000, 1.7117701662429012), (0.04, 1.5, 2250, 7.329334702381698)],
)
def test_dpsgd_epsilon_agrees_with_dp_accounting(q, sigma, steps, ref):
    # dpsgd_rdp and opacus_testcfg (RDP cross-check) reference values.
    eps, _ = rdp.rdp_to_dp(O, steps * rdp.subsampled_gaussian_rdp(O, q, sigma), 1e-5)
    assert eps == pytest.approx(ref, rel=1e-4)
    assert eps <= ref * (1 + 1e-12)


def test_opacus_rdp_value_reproduced():
    # Opacus (exact fractional series) asserts 7.32911117143 for this setting.
    eps, _ = rdp.rdp_to_dp(O, 2250 * rdp.subsampled_gaussian_rdp(O, 0.04, 1.5), 1e-5)
    assert eps == pytest.approx(7.3291111714386545, rel=1e-9)


def test_subsampled_edge_cases_and_vectorisation():
    np.testing.assert_array_equal(rdp.subsampled_gaussian_rdp(O, 0.0, 1.0), 0.0)
    np.testing.assert_allclose(
        rdp.subsampled_gaussian_rdp(O, 1.0, 1.3), rdp.gaussian_rdp(O, 1.3), rtol=1e-15
    )
    rng = np.random.default_rng(0)
    qs = rng.uniform(1e-3, 0.3, 12)
    ss = rng.uniform(0.5, 4.0, 12)
    batch = rdp.subsampled_gaussian_rdp(O, qs, ss)
    assert batch.shape == (12, O.size)
    loop = np.stack([rdp.subsampled_gaussian_rdp(O, a, b) for a, b in zip(qs, ss)])
    np.testing.assert_allclose(batch, loop, rtol=1e-13)
    grid = rdp.subsampled_gaussian_rdp(O, qs[:3, None], ss[None, :4])
    assert grid.shape == (3, 4, O.size)
    np.testing.assert_allclose(grid[1, 2], rdp.subsampled_gaussian_rdp(O, qs[1], ss[2]), rtol=1e-13)


@SETTINGS
@given(q=st.floats(1e-4, 0.5), sigma=st.floats(0.5, 5.0), f=st.floats(1.05, 2.0))
def test_subsampled_monotone_in_q_and_sigma(q, sigma, f):
    base = rdp.subsampled_gaussian_rdp(O, q, sigma)
    assert np.all(rdp.subsampled_gaussian_rdp(O, min(1.0, q * f), sigma) >= base * (1 - 1e-9))
    assert np.all(rdp.subsampled_gaussian_rdp(O, q, sigma * f) <= base * (1 + 1e-9))


def test_laplace_rdp():
    # laplace_rdp_order2: 1 + log1p(expm1(-3)/3), rel 1e-12.
    assert rdp.laplace_rdp([2.0], 1.0)[0] == pytest.approx(1 + math.log1p(math.expm1(-3.0) / 3), rel=1e-12)
    for b in [0.3, 1.0, 10.0]:
        theirs = [dpa_rdp._laplace_rdp(1 / b, a) for a in O]
        np.testing.assert_allclose(rdp.laplace_rdp(O, b), theirs, rtol=1e-10)
        # RDP of ε0-pure DP is at most min(ε0, ε0²/2 · ...) ≤ ε0.
        assert np.all(rdp.laplace_rdp(O, b) <= 1 / b + 1e-12)


@pytest.mark.parametrize(
    "p,k", [(0.5, 2), (0.2, 2), (0.7, 5), (0.01, 3), (0.9, 10), (0.99, 2), (0.3, 100)]
)
def test_randomized_response_rdp_vs_dp_accounting(p, k):
    # dp_accounting evaluates the direct form, accurate while 1 − p is not small.
    theirs = dpa_rdp._compute_randomized_response_rdp(
        p, k, O, dpa_rdp.NeighborRel.REPLACE_ONE
    )
    np.testing.assert_allclose(rdp.randomized_response_rdp(O, p, k), theirs, rtol=1e-9)


def _mp_rr_rdp(p, k, alpha):
    """Rényi divergence of the swapped k-ary RR pair for the float p, at 60 digits."""
    with mpmath.workdps(60):
        p, k, a = mpmath.mpf(p), mpmath.mpf(k), mpmath.mpf(alpha)
        hi, lo = 1 - p + p / k, p / k
        s = hi**a * lo ** (1 - a) + lo**a * hi ** (1 - a) + (k - 2) * lo
        return float(mpmath.log(s) / (a - 1))


def _mp_rr_eps0(p, k):
    """ε₀ = log(a/b) of the float p at 60 digits."""
    with mpmath.workdps(60):
        p = mpmath.mpf(p)
        return float(mpmath.log1p(k * (1 - p) / p))


_RR_PS = [1e-12, 1e-9, 1e-6, 1e-3, 0.1, 0.3, 0.5, 0.7, 0.9] + [
    1.0 - d for d in (1e-3, 1e-6, 1e-9, 1e-12)
]


@pytest.mark.parametrize("k", [2, 3, 10])
def test_randomized_response_rdp_matches_mpmath(k):
    # p from 1e-12 to 1 − 1e-12, every default order; rel 1e-12 (abs 1e-300 near 0).
    got = rdp.randomized_response_rdp(O, np.array(_RR_PS), k)
    assert got.shape == (len(_RR_PS), O.size)
    want = np.array([[_mp_rr_rdp(p, k, a) for a in O] for p in _RR_PS])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
    # Never above the pure-DP level ε₀ = log(a/b) (Mironov 2017, Prop. 3), never < 0.
    eps0 = np.array([_mp_rr_eps0(p, k) for p in _RR_PS])
    assert np.all(got >= 0.0) and np.all(got <= eps0[:, None] * (1 + 1e-14))


@pytest.mark.parametrize("eps", [1e-12, 1e-8, 1e-3, 0.1, 1.0, 5.0, 30.0])
def test_randomized_response_rdp_small_epsilon_equals_pure_dp(eps):
    # The RR pair of pure_dp_rdp: p = 2/(1 + e^ε), two buckets. The direct form
    # was ~1e-9 relative off at ε = 1e-3 and ≈ 19 (relative) at ε = 1e-8.
    p = 2.0 / (1.0 + math.exp(eps))
    got = rdp.randomized_response_rdp(O, p, 2)
    want = np.array([_mp_rr_rdp(p, 2, a) for a in O])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
    # Same curve as pure_dp_rdp at the ε₀ of the float p (rel 1e-12) ...
    np.testing.assert_allclose(got, rdp.pure_dp_rdp(O, _mp_rr_eps0(p, 2)), rtol=1e-12)
    # ... and at the nominal ε up to the rounding of p itself: |δp| ≤ 2^-53 moves
    # ε₀ by ≤ 2^-53/(1 − p) relative, the curve (∝ ε₀² for small ε₀) by twice that.
    rtol = 4 * 2.0**-53 / (1.0 - p) + 1e-12
    np.testing.assert_allclose(got, rdp.pure_dp_rdp(O, eps), rtol=rtol)
    small = O * eps <= 1e-2  # αε²/2 leading behaviour (corrections O(α²ε²))
    np.testing.assert_allclose(got[small], O[small] * eps**2 / 2, rtol=1e-3)


@pytest.mark.parametrize("k", [2, 3, 10, 1000])
def test_randomized_response_rdp_monotone_in_order_and_edges(k):
    ps = np.array(_RR_PS + [1e-300, 5e-324, 1.0])
    got = rdp.randomized_response_rdp(O, ps, k)
    assert np.all(np.isfinite(got)) and np.all(got >= 0.0)
    assert np.all(np.diff(got, axis=-1) >= 0.0)  # non-decreasing in α, exactly
    # Unsorted orders: the same values, order by order.
    perm = np.random.default_rng(k).permutation(O.size)
    np.testing.assert_array_equal(rdp.randomized_response_rdp(O[perm], ps, k), got[:, perm])
    # p = 1 reports a uniform bucket: zero divergence; p → 0: ≤ ε₀ ≈ log(k/p).
    np.testing.assert_array_equal(got[-1], 0.0)
    assert np.all(got[-2] <= math.log(k) + 744.5) and got[-2, -1] > 700.0
    # Batched over a grid of p equals one call per p.
    grid = rdp.randomized_response_rdp(O, ps[:12].reshape(3, 4), k)
    assert grid.shape == (3, 4, O.size)
    np.testing.assert_array_equal(grid.reshape(12, O.size), got[:12])
    np.testing.assert_array_equal(rdp.randomized_response_rdp(O, ps[5], k), got[5])


def test_compose_rdp():
    c = np.stack([rdp.gaussian_rdp(O, s) for s in [1.0, 2.0, 3.0]])
    np.testing.assert_allclose(rdp.compose_rdp(c), c.sum(0), rtol=1e-15)
    np.testing.assert_allclose(rdp.compose_rdp(c, [2, 0, 5]), 2 * c[0] + 5 * c[2], rtol=1e-15)
    # Homogeneous: count k ≡ k separate copies (exact additivity, rtol 1e-12).
    one = rdp.subsampled_gaussian_rdp(O, 0.02, 1.3)
    np.testing.assert_allclose(
        rdp.compose_rdp(one[None], [7]), rdp.compose_rdp(np.stack([one] * 7)), rtol=1e-12
    )
    # inf × 0 = 0; batched [..., n, k].
    inf_curve = np.full(O.size, np.inf)
    np.testing.assert_array_equal(rdp.compose_rdp([inf_curve, c[0]], [0, 1]), c[0])
    assert rdp.compose_rdp(np.ones((4, 3, O.size)), [1, 2, 3]).shape == (4, O.size)
    # Heterogeneous reference values (accountants.md §6).
    assert rdp.rdp_to_dp(O, rdp.compose_rdp(c), 1e-5)[0] == pytest.approx(5.649975380499999, rel=1e-9)


def test_rdp_to_dp_reference_values():
    # rdp_to_dp_single_order / rdp_to_delta_single_order: rel 1e-12.
    eps, a = rdp.rdp_to_dp([10.0], [1.0], 1e-5)
    assert (eps, a) == (pytest.approx(1.9180106367839715, rel=1e-12), 10.0)
    d, a = rdp.rdp_delta([10.0], [1.0], 2.0)
    assert (d, a) == (pytest.approx(4.781148664665559e-06, rel=1e-12), 10.0)
    # classic Mironov conversion: 1 + ln(1e5)/9 = 2.2792139.
    assert rdp.rdp_to_dp([10.0], [1.0], 1e-5, method="classic")[0] == pytest.approx(
        1 + math.log(1e5) / 9, rel=1e-14
    )
    # zcdp_curve_conversion: rel 1e-9, order 5.4.
    eps, a = rdp.rdp_to_dp(O, 0.5 * O, 1e-5)
    assert eps == pytest.approx(4.728507067217623, rel=1e-9) and a == 5.4


def test_rdp_to_dp_kl_shortcut_and_inf():
    # TV ≤ sqrt(1 − e^{−KL}) < δ ⇒ ε = 0 (tensorflow/privacy#166, intended behaviour).
    assert rdp.rdp_to_dp(O, np.full(O.size, 1e-8), 1e-3)[0] == 0.0
    assert rdp.rdp_to_dp(O, np.full(O.size, np.inf), 1e-5)[0] == math.inf
    assert rdp.rdp_delta(O, np.full(O.size, np.inf), 1.0)[0] == 1.0


@SETTINGS
@given(
    sigma=st.floats(0.3, 20.0),
    count=st.integers(1, 500),
    delta=st.floats(1e-12, 0.1),
)
def test_conversions_ordering(sigma, count, delta):
    curve = count * rdp.gaussian_rdp(O, sigma)
    imp = rdp.rdp_to_dp(O, curve, delta)[0]
    cls = rdp.rdp_to_dp(O, curve, delta, method="classic")[0]
    assert imp <= cls + 1e-12  # improved never above classic
    # The exact Gaussian ε (σ/√k) never above any RDP conversion.
    exact = mechanisms.gaussian_epsilon(delta, sigma=sigma / math.sqrt(count))
    assert exact <= imp + 1e-9
    # δ round trip: δ(ε(δ)) ≤ δ (same order is feasible), rel 1e-9.
    if imp > 0:
        assert rdp.rdp_delta(O, curve, imp)[0] <= delta * (1 + 1e-9)
        assert rdp.rdp_delta(O, curve, imp, method="classic")[0] >= rdp.rdp_delta(O, curve, imp)[0]


@SETTINGS
@given(
    q=st.floats(1e-3, 0.2),
    sigma=st.floats(0.6, 4.0),
    count=st.integers(1, 2000),
    delta=st.floats(1e-10, 1e-2),
    f=st.floats(1.1, 3.0),
)
def test_epsilon_monotone(q, sigma, count, delta, f):
    one = rdp.subsampled_gaussian_rdp(O, q, sigma)
    e = rdp.rdp_to_dp(O, count * one, delta)[0]
    assert rdp.rdp_to_dp(O, (count + 1) * one, delta)[0] >= e  # ↑ in count
    assert rdp.rdp_to_dp(O, count * one, min(0.5, delta * f))[0] <= e  # ↓ in δ
    assert rdp.rdp_to_dp(O, count * rdp.subsampled_gaussian_rdp(O, q, sigma * f), delta)[0] <= e


def test_batched_conversion_returns_arrays():
    curves = rdp.gaussian_rdp(O, np.array([1.0, 2.0, 4.0]))
    eps, orders = rdp.rdp_to_dp(O, curves, 1e-5)
    assert eps.shape == (3,) and orders.shape == (3,)
    for i, s in enumerate([1.0, 2.0, 4.0]):
        assert eps[i] == rdp.rdp_to_dp(O, rdp.gaussian_rdp(O, s), 1e-5)[0]
    d, _ = rdp.rdp_delta(O, curves, 1.0)
    assert d.shape == (3,) and np.all(np.diff(d) < 0)


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: rdp.gaussian_rdp([1.0, 2.0], 1.0), "orders"),
        (lambda: rdp.gaussian_rdp([0.5], 1.0), "orders"),
        (lambda: rdp.gaussian_rdp([[2.0]], 1.0), "orders"),
        (lambda: rdp.gaussian_rdp([np.nan], 1.0), "orders"),
        (lambda: rdp.gaussian_rdp(O, [1.0, 0.0]), "sigma"),
        (lambda: rdp.gaussian_rdp(O, 1.0, -1.0), "sensitivity"),
        (lambda: rdp.subsampled_gaussian_rdp(O, 1.5, 1.0), "q"),
        (lambda: rdp.subsampled_gaussian_rdp(O, np.nan, 1.0), "q"),
        (lambda: rdp.subsampled_gaussian_rdp(O, 0.1, -1.0), "sigma"),
        (lambda: rdp.laplace_rdp(O, 0.0), "scale"),
        (lambda: rdp.randomized_response_rdp(O, 0.0), "noise_parameter"),
        (lambda: rdp.randomized_response_rdp(O, 0.5, 1), "num_buckets"),
        (lambda: rdp.compose_rdp(np.ones(3)), "curves"),
        (lambda: rdp.compose_rdp(-np.ones((2, 3))), "curves"),
        (lambda: rdp.compose_rdp(np.ones((2, 3)), [1, -1]), "counts"),
        (lambda: rdp.compose_rdp(np.ones((2, 3)), [1, 0.5]), "counts"),
        (lambda: rdp.rdp_to_dp(O, np.ones(3), 1e-5), "rdp"),
        (lambda: rdp.rdp_to_dp(O, np.ones(O.size), 0.0), "delta"),
        (lambda: rdp.rdp_to_dp(O, np.ones(O.size), 1.0), "delta"),
        (lambda: rdp.rdp_to_dp(O, np.ones(O.size), 1e-5, method="x"), "method"),
        (lambda: rdp.rdp_delta(O, np.ones(O.size), 0.0), "epsilon"),
        (lambda: rdp.rdp_delta(O, np.full(O.size, np.nan), 1.0), "rdp"),
    ],
)
def test_bad_input_names_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# --- Numbers at the edges (issue #7, items 5 and 7) ---


@pytest.fixture
def no_warnings():
    """Turns every warning (numpy's RuntimeWarnings included) into an error."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_gaussian_rdp_extreme_sigma_is_honest_without_warnings(no_warnings):
    # σ = 1e-300: α/(2σ²) exceeds float64 → inf (σ² underflowed to 0 and
    # printed "divide by zero" before). σ = 1e300 underflows to 0 honestly.
    assert np.all(rdp.gaussian_rdp(O, 1e-300) == np.inf)
    assert np.all(rdp.gaussian_rdp(O, 1e300) == 0.0)
    np.testing.assert_allclose(rdp.gaussian_rdp([2.0], 1e-150), [1e300], rtol=1e-15)
    assert np.all(rdp.gaussian_rdp(O, 1.0, 1e300) == np.inf)


@pytest.mark.parametrize("q", [1e-5, 0.01, 0.5])
def test_subsampled_gaussian_tiny_sigma_switches_to_the_gaussian_bound(q, no_warnings):
    # Below σ ≈ 7.2e-148 (α = 1024: α²/(2σ²) > 1e300) the exact sums would
    # produce inf − inf = NaN; the Gaussian α/(2σ²) is used instead. Where both
    # run they agree to |ln q|·2σ²/(α − 1) (here < 1e-290 relative), bound ≥ exact.
    exact = rdp.subsampled_gaussian_rdp(O, q, 1e-147)
    bound = O / (2.0 * 1e-147**2)
    assert np.all(np.isfinite(exact)) and np.all(exact <= bound * (1 + 1e-15))
    np.testing.assert_allclose(exact, bound, rtol=1e-13)
    tiny = rdp.subsampled_gaussian_rdp(O, q, 5e-148)
    np.testing.assert_allclose(tiny, O / (2.0 * 5e-148**2), rtol=1e-15)
    assert np.all(rdp.subsampled_gaussian_rdp(O, q, 1e-300) == np.inf)


def test_subsampled_gaussian_huge_sigma_and_huge_orders(no_warnings):
    # σ > 1e100: σ² ln(1/q − 1) overflowed (NaN); now the bound α/(2σ²).
    big = rdp.subsampled_gaussian_rdp(O, 0.5, 1e300)
    assert np.all(big >= 0) and np.all(big <= O / 2e600 + 1e-300)
    ints = O[O == np.floor(O)]  # (fractional orders carry the series' tail bound)
    exact = rdp.subsampled_gaussian_rdp(ints, 0.5, 1e100)
    assert np.all(exact <= ints / 2e200 * (1 + 1e-12))
    # Orders above 2**16: Gaussian bound, within |ln q|·α/(α−1) of the exact
    # value (compared at 2**16, where the exact binomial sum still runs).
    a = float(1 << 16)
    q, sigma = 0.01, 1.0
    exact_a = rdp.subsampled_gaussian_rdp([a], q, sigma)[0]
    gap = a / (2 * sigma**2) - exact_a
    assert 0.0 <= gap <= abs(math.log(q)) * a / (a - 1) * (1 + 1e-9)
    far = rdp.subsampled_gaussian_rdp([a + 1.5, 1e300], q, sigma)
    np.testing.assert_allclose(far, [(a + 1.5) / 2.0, 1e300 / 2.0], rtol=1e-15)


def test_subsampled_gaussian_many_large_orders_bounded_memory():
    # 80 integer orders up to 2**16 (2.6e6 binomial terms) run in groups.
    orders = np.linspace(2.0, 2.0**16, 80).round()
    got = rdp.subsampled_gaussian_rdp(orders, 0.01, 2.0)
    assert np.all(np.isfinite(got)) and np.all(np.diff(got) >= 0)
    np.testing.assert_allclose(got[[0, -1]], rdp.subsampled_gaussian_rdp(orders[[0, -1]], 0.01, 2.0))


def test_subsampled_fractional_series_cap_falls_back_to_ceiling_order(monkeypatch):
    # With the term cap below α the alternating-tail bound does not apply:
    # the value at ⌈α⌉ (Rényi divergence is non-decreasing in α) is used.
    want = rdp.subsampled_gaussian_rdp([100.5, 101.0], 0.01, 0.8)
    monkeypatch.setattr(rdp, "_FRAC_MAX_TERMS", 64)
    got = rdp.subsampled_gaussian_rdp([100.5], 0.01, 0.8)[0]
    assert want[0] <= got <= want[1] * (1 + 1e-12)


def _mp_laplace_rdp(alpha, eps0):
    with mpmath.workdps(80):
        a, e = mpmath.mpf(alpha), mpmath.mpf(eps0)
        mix = a / (2 * a - 1) * mpmath.exp((a - 1) * e) + (a - 1) / (2 * a - 1) * mpmath.exp(-a * e)
        return float(mpmath.log(mix) / (a - 1))


@pytest.mark.parametrize("eps0", [1e-300, 1e-20, 1e-8, 1e-3, 1.0, 29.0, 31.0, 1e4])
def test_laplace_rdp_small_and_large_epsilon_matches_mpmath(eps0, no_warnings):
    # The direct logaddexp form gave ~1e-16 (sometimes negative) instead of
    # αε₀²/2 for ε₀ = 1e-20 (scale 1e20).
    orders = np.array([1 + 1e-12, 1.1, 2.0, 10.0, 1024.0, 1e6, 1e12])
    got = rdp.laplace_rdp(orders, 1.0 / eps0)
    want = np.array([_mp_laplace_rdp(a, eps0) for a in orders])
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
    assert np.all(got >= 0)
    assert np.all(rdp.laplace_rdp([2.0, 1e300], 5e-324) == np.inf)  # ε₀ = Δ/b = inf


def test_randomized_response_and_pure_dp_at_huge_orders(no_warnings):
    # αε overflows: the Rényi divergence is capped at ε₀ = D_∞, never inf.
    eps0 = math.log1p(2 * 0.5 / 0.5)
    np.testing.assert_allclose(rdp.randomized_response_rdp([1e300], 0.5), [eps0], rtol=1e-15)
    assert rdp.pure_dp_rdp([1e300], 1e10)[0] == pytest.approx(1e10, rel=1e-15)
    with pytest.raises(ValueError, match="num_buckets"):
        rdp.randomized_response_rdp(O, 0.5, 2**60)


def test_compose_rdp_counts_shape_and_size(no_warnings):
    curves = np.ones((2, 3))
    # Issue #7 item 7: counts of the wrong length, beyond what a float holds.
    with pytest.raises(ValueError, match=r"counts to broadcast to shape \(2,\)"):
        rdp.compose_rdp(curves, [1, 2, 3])
    for big in ([10**20, 1], [2**53 + 1, 1], [1e300, 1.0]):
        with pytest.raises(ValueError, match=r"counts to hold integers in \[0, 2\*\*53\]"):
            rdp.compose_rdp(curves, big)
    with pytest.raises(ValueError, match="counts"):
        rdp.compose_rdp(curves, ["1", 2])
    np.testing.assert_array_equal(rdp.compose_rdp(curves, [2**53, 0]), [2.0**53] * 3)
    # A sum beyond float64 is inf, without an overflow warning.
    assert np.all(rdp.compose_rdp(np.full((2, 3), 1e300), [2**53, 1]) == np.inf)


def test_conversions_extreme_values(no_warnings):
    r = np.full(O.size, 1e300)
    assert rdp.rdp_to_dp(O, r, 5e-324)[0] == pytest.approx(1e300, rel=1e-12)
    assert rdp.rdp_delta(O, np.full(O.size, 1e-300), 1e300)[0] == 0.0
    assert rdp.rdp_delta(O, np.zeros(O.size), 5e-324)[0] <= 1.0


# --- Property: hostile input gives a ValueError or a valid, monotone answer ---

_EDGE = [math.nan, math.inf, -math.inf, -1.0, 0.0, 5e-324, 1e-320, 1e-300, 1e-20, 1e20, 1e300]


def mixed(valid):
    """A valid value four times in five, else an edge case or any float."""
    hostile = st.sampled_from(_EDGE) | st.floats(allow_nan=True, allow_infinity=True)
    return st.integers(0, 4).flatmap(lambda i: hostile if i == 0 else valid)


HOSTILE = mixed(st.floats(0.01, 5.0))
HOSTILE_ORDERS = st.sampled_from(
    [O, O, O, [2.0, 3.5], [1.0], [0.5, 2.0], [math.nan], [math.inf], [], [[2.0, 3.0]],
     [1 + 1e-15, 1e300], [70000.5], "abc"]
)
PROP = settings(derandomize=True, max_examples=60, deadline=None)


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ValueError as err:
        assert str(err)
        return None


def _valid_curve(c):
    c = np.asarray(c)
    assert not np.isnan(c).any() and (c >= 0).all()


@PROP
@given(orders=HOSTILE_ORDERS, x=HOSTILE, y=HOSTILE)
def test_rdp_curves_hostile_input(orders, x, y):
    import warnings

    for fn, args in (
        (rdp.gaussian_rdp, (x, y)),
        (rdp.laplace_rdp, (x, y)),
        (rdp.pure_dp_rdp, (x,)),
        (rdp.randomized_response_rdp, (x,)),
        (rdp.subsampled_gaussian_rdp, (min(abs(y), 1.0) if y == y else y, x)),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no RuntimeWarning leaks out either
            c = _call(fn, orders, *args)
        if c is None:
            continue
        _valid_curve(c)
        # Rényi divergences are non-decreasing in the order (inf stays inf), up
        # to the fractional series' conservative margin of 16 ulp/(α − 1).
        c = c[..., np.argsort(np.asarray(orders, dtype=float))]
        fin = np.isfinite(c[..., :-1])
        assert np.all(~fin | (c[..., 1:] >= c[..., :-1] * (1 - 1e-12) - 1e-13))


@PROP
@given(
    counts=st.sampled_from([None, [1, 2], [0, 0], [1, 2, 3], [-1, 1], [1.5, 1], [2**53, 1],
                            [2**53 + 1, 1], [10**30, 1], [math.nan, 1], ["a", 1], 3, [[1, 2]]]),
    value=HOSTILE,
    delta=mixed(st.floats(1e-12, 0.5)),
    eps=HOSTILE,
)
def test_compose_and_convert_hostile_input(counts, value, delta, eps):
    curves = np.stack([rdp.gaussian_rdp(O, 1.0), np.full(O.size, 0.5)])
    if value == value and value >= 0:
        curves[1] = value
    total = _call(rdp.compose_rdp, curves, counts)
    if total is None:
        return
    _valid_curve(total)
    out = _call(rdp.rdp_to_dp, O, total, delta)
    if out is not None:
        e, a = out
        assert e >= 0 and not math.isnan(e) and a > 1
        more = rdp.rdp_to_dp(O, 2 * total, delta)[0]
        assert more >= e * (1 - 1e-12)
    out = _call(rdp.rdp_delta, O, total, eps)
    if out is not None:
        d, _ = out
        assert 0.0 <= d <= 1.0
