"""Tests for dpunlearn.accounting.mechanisms.

Oracles: dp_accounting 0.6.0 (``get_epsilon_gaussian``/``get_sigma_gaussian``,
an independent implementation of Balle & Wang 2018) and mpmath at 50 digits.
Tolerances are stated at each assert.
"""

import math

import dp_accounting
import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dpunlearn.accounting import mechanisms as m

SETTINGS = settings(derandomize=True, max_examples=60, deadline=None)


def _mp_gaussian_delta(eps, sigma, sens=1.0):
    with mpmath.workdps(50):
        r = mpmath.mpf(sens) / mpmath.mpf(sigma)
        e = mpmath.mpf(eps)
        return float(mpmath.ncdf(r / 2 - e / r) - mpmath.exp(e) * mpmath.ncdf(-r / 2 - e / r))


@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0, 10.0])
@pytest.mark.parametrize("delta", [1e-2, 1e-5, 1e-10])
def test_gaussian_epsilon_matches_dp_accounting(sigma, delta):
    ours = m.gaussian_epsilon(delta, sigma=sigma)
    theirs = dp_accounting.get_epsilon_gaussian(sigma, delta)
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    "eps,sigma,sens",
    [(0.5, 1.0, 1.0), (4.0, 1.0, 1.0), (1.0, 3.0, 2.0), (30.0, 0.2, 1.0), (50.0, 0.1, 1.0),
     (200.0, 0.05, 1.0), (500.0, 0.04, 1.0), (12.0, 1.0, 1.0), (0.01, 0.5, 1.0)],
)
def test_gaussian_delta_matches_mpmath_including_large_epsilon(eps, sigma, sens):
    ours = m.gaussian_delta(eps, sigma=sigma, sensitivity=sens)
    exact = _mp_gaussian_delta(eps, sigma, sens)
    # Log-space evaluation: no overflow of e^ε, full relative precision for tiny δ.
    assert exact > 0
    assert ours == pytest.approx(exact, rel=1e-9)


def test_gaussian_delta_underflows_to_zero_not_nan():
    # True δ ≈ exp(−20000): below float64, must be 0.0 (not NaN, not negative).
    assert m.gaussian_delta(200.0, sigma=1.0) == 0.0


def test_gaussian_delta_reference_and_round_trip():
    # accountant_reference_values.json: gauss_1step_analytic = 4.377178095681137.
    eps = m.gaussian_epsilon(1e-5, sigma=1.0)
    assert eps == pytest.approx(4.377178095681137, abs=1e-9)
    d = m.gaussian_delta(eps, sigma=1.0)
    assert d <= 1e-5  # never above the target
    assert d == pytest.approx(1e-5, rel=1e-9)


@SETTINGS
@given(
    delta=st.floats(1e-12, 0.5),
    sigma=st.floats(0.05, 100.0),
    sens=st.floats(0.1, 10.0),
)
def test_gaussian_epsilon_never_exceeds_delta(delta, sigma, sens):
    eps = m.gaussian_epsilon(delta, sigma=sigma, sensitivity=sens)
    if eps > 0:
        assert m.gaussian_delta(eps, sigma=sigma, sensitivity=sens) <= delta
        # Tight: a slightly smaller ε exceeds δ (rel 1e-9 on ε).
        assert m.gaussian_delta(eps * (1 - 1e-9), sigma=sigma, sensitivity=sens) > delta * (
            1 - 1e-6
        )


@SETTINGS
@given(
    delta=st.floats(1e-10, 0.1),
    sigma=st.floats(0.1, 30.0),
    factor=st.floats(1.01, 3.0),
)
def test_gaussian_epsilon_monotone(delta, sigma, factor):
    e = m.gaussian_epsilon(delta, sigma=sigma)
    assert m.gaussian_epsilon(delta, sigma=sigma * factor) <= e  # ↓ in σ
    assert m.gaussian_epsilon(min(0.5, delta * factor), sigma=sigma) <= e  # ↓ in δ
    assert m.gaussian_epsilon(delta, sigma=sigma, sensitivity=factor) >= e  # ↑ in Δ


def test_gaussian_epsilon_zero_when_tv_below_delta():
    # δ(0) = 2Φ(r/2) − 1 ≈ 0.0399 for σ = 10: any δ above it needs ε = 0.
    assert m.gaussian_epsilon(0.05, sigma=10.0) == 0.0


@pytest.mark.parametrize("eps", [0.1, 0.5, 1.0, 2.0, 8.0])
@pytest.mark.parametrize("delta", [1e-3, 1e-5, 1e-9])
@pytest.mark.parametrize("sens", [1.0, 0.3])
def test_gaussian_sigma_analytic(eps, delta, sens):
    s = m.gaussian_sigma_analytic(eps, delta, sens)
    theirs = dp_accounting.get_sigma_gaussian(eps, delta) * sens
    assert s == pytest.approx(theirs, rel=1e-9)
    assert m.gaussian_delta(eps, sigma=s, sensitivity=sens) <= delta  # never undershoots σ
    assert m.gaussian_delta(eps, sigma=s * (1 - 1e-9), sensitivity=sens) > delta  # tight
    if eps < 1:
        assert m.gaussian_sigma_classic(eps, delta, sens) >= s


def test_gaussian_sigma_analytic_reference():
    # calib_sigma_analytic: 3.7306316348159374, abs 1e-6.
    assert m.gaussian_sigma_analytic(1.0, 1e-5) == pytest.approx(3.7306316348159374, abs=1e-9)


def test_gaussian_sigma_classic_formula_and_range():
    assert m.gaussian_sigma_classic(0.5, 1e-5, 2.0) == pytest.approx(
        2.0 * math.sqrt(2 * math.log(1.25e5)) / 0.5, rel=1e-14
    )
    with pytest.raises(ValueError, match="epsilon"):
        m.gaussian_sigma_classic(1.0, 1e-5)
    with pytest.raises(ValueError, match="epsilon"):
        m.gaussian_sigma_classic(2.5, 1e-5)


def test_laplace_and_zcdp_closed_forms():
    assert m.laplace_epsilon(2.0, 3.0) == 1.5
    assert m.gaussian_zcdp(2.0, 3.0) == pytest.approx(9 / 8, rel=1e-15)


def test_zcdp_to_dp():
    # Bun-Steinke Prop 1.3 (accountants.md zcdp_curve_conversion: 5.2985259).
    assert m.zcdp_to_dp(0.5, 1e-5) == pytest.approx(0.5 + 2 * math.sqrt(0.5 * math.log(1e5)), rel=1e-14)
    assert m.zcdp_to_dp(0.5, 1e-5) == pytest.approx(5.2985259, abs=1e-7)
    # Continuous-order improved conversion: 4.7283870 (accountants.md §6 / algorithms.md §12.0).
    improved = m.zcdp_to_dp(0.5, 1e-5, method="improved")
    assert improved == pytest.approx(4.728387, abs=2e-7)
    # Improved ≤ classic, and ≥ the exact ε of the Gaussian with the same ρ (σ = 1).
    for rho in [1e-4, 0.01, 0.5, 3.0, 50.0]:
        for delta in [1e-2, 1e-6, 1e-12]:
            imp = m.zcdp_to_dp(rho, delta, method="improved")
            assert imp <= m.zcdp_to_dp(rho, delta) + 1e-12
            sigma = 1.0 / math.sqrt(2 * rho)
            assert imp >= m.gaussian_epsilon(delta, sigma=sigma) - 1e-9


def test_group_privacy():
    e, d = m.group_privacy(1.0, 1e-5, 3)
    assert e == 3.0
    assert d == pytest.approx(3 * math.exp(2.0) * 1e-5, rel=1e-14)
    assert m.group_privacy(0.5, 0.0, 4) == (2.0, 0.0)
    assert m.group_privacy(2.0, 1e-3, 1) == (2.0, pytest.approx(1e-3, rel=1e-14))
    assert m.group_privacy(5.0, 0.1, 100)[1] == 1.0  # capped: vacuous, not overflow


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: m.gaussian_delta(0.0, sigma=1.0), "epsilon"),
        (lambda: m.gaussian_delta(-1.0, sigma=1.0), "epsilon"),
        (lambda: m.gaussian_delta(float("nan"), sigma=1.0), "epsilon"),
        (lambda: m.gaussian_delta(1.0, sigma=0.0), "sigma"),
        (lambda: m.gaussian_delta(1.0, sigma=1.0, sensitivity=-1.0), "sensitivity"),
        (lambda: m.gaussian_epsilon(0.0, sigma=1.0), "delta"),
        (lambda: m.gaussian_epsilon(1.0, sigma=1.0), "delta"),
        (lambda: m.gaussian_epsilon(float("nan"), sigma=1.0), "delta"),
        (lambda: m.gaussian_epsilon(1e-5, sigma=float("inf")), "sigma"),
        (lambda: m.gaussian_sigma_analytic(0.0, 1e-5), "epsilon"),
        (lambda: m.gaussian_sigma_analytic(1.0, 1.5), "delta"),
        (lambda: m.gaussian_sigma_classic(0.5, 0.0), "delta"),
        (lambda: m.laplace_epsilon(0.0), "scale"),
        (lambda: m.zcdp_to_dp(-0.1, 1e-5), "rho"),
        (lambda: m.zcdp_to_dp(0.1, 1e-5, method="tight"), "method"),
        (lambda: m.gaussian_zcdp(-1.0), "sigma"),
        (lambda: m.group_privacy(1.0, 1.0, 2), "delta"),
        (lambda: m.group_privacy(1.0, 1e-5, 0), "k"),
        (lambda: m.group_privacy(1.0, 1e-5, 2.0), "k"),
        (lambda: m.group_privacy(0.0, 1e-5, 2), "epsilon"),
        (lambda: m.pure_dp_composition_delta(-0.1, epsilon0=0.1, count=3), "epsilon="),
        (lambda: m.pure_dp_composition_delta(float("nan"), epsilon0=0.1, count=3), "epsilon "),
        (lambda: m.pure_dp_composition_delta(1.0, epsilon0=0.0, count=3), "epsilon0"),
        (lambda: m.pure_dp_composition_delta(1.0, epsilon0=float("inf"), count=3), "epsilon0"),
        (lambda: m.pure_dp_composition_delta(1.0, epsilon0=0.1, count=0), "count"),
        (lambda: m.pure_dp_composition_delta(1.0, epsilon0=0.1, count=2.0), "count"),
        (lambda: m.pure_dp_composition_epsilon(1.0, epsilon0=0.1, count=3), "delta="),
        (lambda: m.pure_dp_composition_epsilon(-1e-5, epsilon0=0.1, count=3), "delta="),
        (lambda: m.pure_dp_composition_epsilon(1e-5, epsilon0=-0.1, count=3), "epsilon0"),
        (lambda: m.pure_dp_composition_epsilon(1e-5, epsilon0=0.1, count=True), "count"),
    ],
)
def test_bad_input_names_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_outputs_are_python_floats():
    assert type(m.gaussian_delta(np.float64(1.0), sigma=np.float64(1.0))) is float
    assert type(m.gaussian_epsilon(1e-5, sigma=np.array(1.0))) is float
    assert type(m.gaussian_sigma_analytic(1.0, 1e-5)) is float
    assert type(m.pure_dp_composition_delta(np.float64(1.0), epsilon0=np.float64(0.1), count=5)) is float
    assert type(m.pure_dp_composition_epsilon(1e-5, epsilon0=0.1, count=np.int64(5))) is float


# --- Optimal composition of pure (ε0, 0)-DP (Kairouz, Oh & Viswanath 2015) ---


def _mp_pure_delta(eps, eps0, k):
    """Hockey-stick divergence of the k-fold RR pair at 50 digits (independent oracle)."""
    with mpmath.workdps(50):
        e0, e = mpmath.mpf(eps0), mpmath.mpf(eps)
        p = mpmath.exp(e0) / (1 + mpmath.exp(e0))
        tot = mpmath.mpf(0)
        for i in range(k + 1):
            loss = (k - 2 * i) * e0
            if loss > e:
                tot += mpmath.binomial(k, i) * p ** (k - i) * (1 - p) ** i * (1 - mpmath.exp(e - loss))
        return float(tot)


def _kov_theorem_delta(eps0, k, i):
    """KOV 2015, Theorem 3.3 with δ = 0: the δ at ε = (k − 2i)ε0, at 50 digits."""
    with mpmath.workdps(50):
        e0 = mpmath.mpf(eps0)
        s = mpmath.fsum(
            mpmath.binomial(k, l) * (mpmath.exp((k - l) * e0) - mpmath.exp((k - 2 * i + l) * e0))
            for l in range(i)
        )
        return float(s / (1 + mpmath.exp(e0)) ** k)


@pytest.mark.parametrize(
    "eps,eps0,k",
    [(4.3, 0.1, 100), (0.0, 0.1, 100), (0.05, 0.1, 1), (1.0, 0.5, 7), (3.0, 1.0, 10),
     (9.5, 1.0, 10), (20.0, 0.01, 20000), (0.5, 2.0, 3), (60.0, 3.0, 25)],
)
def test_pure_dp_composition_delta_matches_mpmath(eps, eps0, k):
    ours = m.pure_dp_composition_delta(eps, epsilon0=eps0, count=k)
    exact = _mp_pure_delta(eps, eps0, k)
    assert ours == pytest.approx(exact, rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("eps0,k", [(0.1, 100), (0.5, 9), (1.0, 4)])
def test_pure_dp_composition_delta_is_kov_theorem_3_3_at_its_points(eps0, k):
    # At ε = (k − 2i)ε0 the hockey-stick sum is KOV's closed form (δ = 0).
    for i in range(0, k // 2 + 1, max(1, k // 10)):
        eps = (k - 2 * i) * eps0
        want = _kov_theorem_delta(eps0, k, i)
        got = m.pure_dp_composition_delta(eps, epsilon0=eps0, count=k)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-300)


def test_pure_dp_composition_edges():
    # ε ≥ kε0: nothing exceeds the loss, δ = 0 exactly (no NaN, no negative).
    assert m.pure_dp_composition_delta(10.0, epsilon0=0.1, count=100) == 0.0
    assert m.pure_dp_composition_delta(11.0, epsilon0=0.1, count=100) == 0.0
    # ε = 0: δ is the total variation of the pair; k = 1 gives tanh(ε0/2).
    assert m.pure_dp_composition_delta(0.0, epsilon0=1.0, count=1) == pytest.approx(
        math.tanh(0.5), rel=1e-14
    )
    # Huge ε0 and k: log space, no overflow in C(k, i) or e^{l_i}.
    d = m.pure_dp_composition_delta(500.0, epsilon0=50.0, count=1000)
    assert 0.0 < d <= 1.0 and math.isfinite(d)
    assert 0.0 <= m.pure_dp_composition_delta(1.0, epsilon0=1e-3, count=200001) <= 1.0


def test_pure_dp_composition_epsilon_reference_and_never_overshoots():
    # accountant_reference_values.json pure_dp_0.1_x100_optimal: exact 4.3067914 (abs 1e-6).
    eps = m.pure_dp_composition_epsilon(1e-5, epsilon0=0.1, count=100)
    assert eps == pytest.approx(4.306791372574041, abs=1e-6)
    assert eps == pytest.approx(4.3067914, abs=1e-6)
    assert m.pure_dp_composition_delta(eps, epsilon0=0.1, count=100) <= 1e-5
    # Tight: one float64 step below is already over the target.
    below = math.nextafter(math.nextafter(eps, 0.0), 0.0)
    assert m.pure_dp_composition_delta(below, epsilon0=0.1, count=100) > 1e-5 * (1 - 1e-9)
    # And the 50-digit oracle agrees that δ(eps) is 1e-5 to within float rounding.
    assert _mp_pure_delta(eps, 0.1, 100) == pytest.approx(1e-5, rel=1e-9)
    # Below KOV's step-wise value (only multiples of 2ε0: 4.4) and basic kε0.
    kov_step = dp_accounting.pld.accountant.advanced_composition(
        dp_accounting.pld.common.DifferentialPrivacyParameters(0.1, 0.0), 100, 1e-5
    )
    assert eps <= kov_step == pytest.approx(4.4)


def test_pure_dp_composition_epsilon_special_cases():
    # δ = 0: the basic composition kε0 (tight for pure DP).
    assert m.pure_dp_composition_epsilon(0.0, epsilon0=0.1, count=100) == pytest.approx(10.0)
    # δ above the total variation: ε = 0.
    assert m.pure_dp_composition_epsilon(0.5, epsilon0=1.0, count=1) == 0.0
    # k = 1: δ(ε) = p(1 − e^{ε−ε0}) for ε < ε0, so ε = ε0 + log(1 − δ/p).
    p = math.exp(0.3) / (1 + math.exp(0.3))
    want = 0.3 + math.log1p(-1e-3 / p)
    assert m.pure_dp_composition_epsilon(1e-3, epsilon0=0.3, count=1) == pytest.approx(
        want, abs=1e-12
    )


@SETTINGS
@given(
    delta=st.floats(1e-12, 0.5),
    eps0=st.floats(1e-3, 3.0),
    k=st.integers(1, 400),
)
def test_pure_dp_composition_epsilon_properties(delta, eps0, k):
    eps = m.pure_dp_composition_epsilon(delta, epsilon0=eps0, count=k)
    assert 0.0 <= eps <= k * eps0 * (1 + 1e-12)
    assert m.pure_dp_composition_delta(eps, epsilon0=eps0, count=k) <= delta
    # Composition only costs more: k + 1 mechanisms need at least as large ε.
    assert m.pure_dp_composition_epsilon(delta, epsilon0=eps0, count=k + 1) >= eps


# --- Numbers at the edges (issue #7, item 5) ---


def _mp_log_gaussian_delta(eps, r):
    """ln δ(ε) of the Gaussian with ratio r at 600 digits (no cancellation at tiny r)."""
    with mpmath.workdps(600):
        r, e = mpmath.mpf(r), mpmath.mpf(eps)
        return float(mpmath.log(mpmath.ncdf(r / 2 - e / r) - mpmath.exp(e) * mpmath.ncdf(-r / 2 - e / r)))


@pytest.mark.parametrize("r", [0.2, 0.05, 1e-3, 1e-8, 1e-16, 1e-100, 1e-300])
@pytest.mark.parametrize("t", [0.0, 0.1, 1.0, 5.0, 20.0, 37.0])
def test_gaussian_delta_small_ratio_keeps_relative_precision(r, t):
    # δ = Φ(r/2 − ε/r) − e^ε Φ(−r/2 − ε/r) cancels for small r = Δ/σ: the plain
    # formula gave 0.0 from r ≈ 1e-16 on (a wrong, too small δ) and lost ~4
    # digits at r = 1e-8. The Hermite expansion keeps 1e-12 relative.
    eps = r * t
    want = _mp_log_gaussian_delta(eps, r)
    if eps > 0 and want > -700:  # δ itself is representable
        got = math.log(m.gaussian_delta(eps, sigma=1.0, sensitivity=r))
        assert got == pytest.approx(want, abs=1e-11)
    assert m._gaussian_log_delta(eps, r) == pytest.approx(want, abs=1e-11 * max(1.0, -want))


def test_gaussian_delta_is_positive_where_the_plain_formula_gave_zero():
    # σ = 1e300 at ε = 1e-300: t = ε/r = 1, δ ≈ r(φ(1) − Φ(−1)) = 8.33e-302.
    d = m.gaussian_delta(1e-300, sigma=1e300)
    assert d == pytest.approx(8.331547e-302, rel=1e-6)
    # δ(0⁺) is the total variation r/√(2π) for small r.
    assert m.gaussian_delta(1e-320, sigma=1e10) == pytest.approx(1e-10 / math.sqrt(2 * math.pi), rel=1e-9)


def test_gaussian_sigma_analytic_tiny_delta_and_epsilon():
    # Issue example: gaussian_sigma_analytic(1, 1e-320) raised ZeroDivisionError.
    s = m.gaussian_sigma_analytic(1.0, 1e-320)
    assert math.isfinite(s) and s > 0
    assert m.gaussian_delta(1.0, sigma=s) <= 1e-320
    assert m.gaussian_delta(1.0, sigma=s * (1 - 1e-9)) > 1e-320  # tight
    # Tiny ε: the answer is set by the total variation, σ ≈ 1/(2√2 erfinv(δ)).
    s = m.gaussian_sigma_analytic(1e-300, 1e-5)
    assert s == pytest.approx(39894.2280, rel=1e-6)
    assert m.gaussian_delta(1e-300, sigma=s) <= 1e-5
    # Subnormal δ and ε: σ would exceed float64, said so (not inf, not 0).
    with pytest.raises(ValueError, match="overflows float64"):
        m.gaussian_sigma_analytic(1e-310, 1e-320)


def test_gaussian_epsilon_extreme_sigma():
    # σ = 1e300: total variation 4e-301 < δ, so ε = 0 exactly.
    assert m.gaussian_epsilon(1e-5, sigma=1e300) == 0.0
    # σ = 1e10 and δ = 1e-320 (below the total variation): positive, certified, tight.
    e = m.gaussian_epsilon(1e-320, sigma=1e10)
    assert e > 0 and m.gaussian_delta(e, sigma=1e10) <= 1e-320
    assert m.gaussian_delta(e * (1 - 1e-9), sigma=1e10) > 1e-320
    # Δ/σ = 1e300: ε ≈ r²/2 exceeds float64, inf is the honest answer.
    assert m.gaussian_epsilon(1e-5, sigma=1e-300) == math.inf
    assert m.gaussian_delta(1.0, sigma=1e-300) == 1.0


def test_gaussian_sigma_classic_tiny_delta_and_overflow():
    assert m.gaussian_sigma_classic(0.5, 1e-320) == pytest.approx(
        2 * math.sqrt(2 * (math.log(1.25) - math.log(1e-320))), rel=1e-14
    )
    with pytest.raises(ValueError, match="sigma overflows"):
        m.gaussian_sigma_classic(1e-310, 1e-5)


@pytest.mark.parametrize("rho", [1e300, 1e308, 1e-300, 5e-324])
@pytest.mark.parametrize("delta", [1e-5, 1e-320, 1 - 1e-16])
def test_zcdp_to_dp_extreme_rho(rho, delta):
    # Issue example: zcdp_to_dp(1e300, 1e-5, method="improved") raised
    # "math domain error" (α* − 1 = 1e-150 cancelled to 0).
    classic = m.zcdp_to_dp(rho, delta)
    improved = m.zcdp_to_dp(rho, delta, method="improved")
    assert math.isfinite(classic) and math.isfinite(improved)
    assert 0.0 <= improved <= classic and classic > 0.0
    if rho >= 1.0:
        assert improved >= rho * (1 - 1e-15)  # ε_α = ρα ≥ ρ at every α > 1
    else:  # ρ ≤ 1e-300: the Gaussian's total variation is below δ, ε = 0 is exact
        assert improved <= classic < 1e-140


def test_gaussian_zcdp_extreme_sigma():
    # σ² underflowed (ZeroDivisionError at σ = 1e-200) or ** overflowed.
    assert m.gaussian_zcdp(1e-200) == math.inf
    assert m.gaussian_zcdp(1e-150) == pytest.approx(0.5e300, rel=1e-15)
    assert m.gaussian_zcdp(1e300) == 0.0  # ρ = 5e-601 underflows
    assert m.gaussian_zcdp(1.0, 1e300) == math.inf


def test_group_privacy_count_limits():
    assert m.group_privacy(1e-20, 1e-10, 2**53)[0] == pytest.approx(2**53 * 1e-20)
    for k in (2**53 + 1, 10**400):
        with pytest.raises(ValueError, match="k to be an integer in"):
            m.group_privacy(1.0, 1e-5, k)


def test_binomial_log_pmf_is_accurate_at_a_billion():
    # gammaln differences are off by ~1e-6 in ln P at k = 1e9; Loader's form is not.
    k, q = 10**9, 1.0 / (1.0 + math.exp(0.01))
    log_q, log_p = -math.log1p(math.exp(0.01)), -math.log1p(math.exp(-0.01))
    for i in [0, 1, int(k * q) - 200_000, int(k * q), int(k * q) + 3_000, k - 1, k]:
        with mpmath.workdps(60):
            want = float(
                mpmath.log(mpmath.binomial(k, i)) + i * mpmath.log(mpmath.mpf(q))
                + (k - i) * mpmath.log(1 - mpmath.mpf(q))
            )
        got = float(m._binom_logpmf(np.array(float(i)), k, log_q, log_p))
        assert got == pytest.approx(want, rel=1e-13, abs=1e-9)


def test_pure_dp_composition_huge_count_is_bounded_work():
    # Issue example: count=10**9 allocated O(k) arrays (killed at 20 GB).
    import time

    t0 = time.perf_counter()
    d = m.pure_dp_composition_delta(1.0, epsilon0=0.01, count=10**9)
    assert time.perf_counter() - t0 < 5.0
    # The loss has mean ≈ kε0²/2 = 5e4 ≫ 1: δ(1) is essentially 1.
    assert d == pytest.approx(1.0, abs=1e-12)
    d = m.pure_dp_composition_delta(51347.0, epsilon0=0.01, count=10**9)
    assert 1e-6 < d < 1e-4


def test_pure_dp_window_matches_the_full_sum():
    # The ±14-sd window plus Chernoff tails against the 50-digit full sum, with
    # k large enough that the window leaves out most terms.
    for eps in [0.0, 2.0, 5.0]:
        got = m.pure_dp_composition_delta(eps, epsilon0=0.05, count=3000)
        assert got == pytest.approx(_mp_pure_delta(eps, 0.05, 3000), rel=1e-10, abs=1e-300)
    assert m._PureDPComposition(0.05, 3000).w_i.size < 1000  # window ≪ 3001 terms


def test_pure_dp_tail_bounded_route_is_an_upper_bound(monkeypatch):
    # Past 2**21 terms the window is capped and the result is a certified
    # upper bound. Force the cap at k = 1e6 (std ≈ 50) and compare with the
    # exact route at the same size.
    k, eps0 = 10**6, 0.1
    eps = [m.pure_dp_composition_epsilon(d, epsilon0=eps0, count=k) for d in (1e-3, 1e-8)]
    exact = [m.pure_dp_composition_delta(e, epsilon0=eps0, count=k) for e in eps]
    assert m._PureDPComposition(eps0, k).route == "exact"
    # sd of Bin(k, q) ≈ 500: a window of ±5000 terms (10 sd) is "tail-bounded",
    # one of ±256 terms (0.5 sd) falls back to the Chernoff bound.
    for cap, route, rel in [(10_000, "tail-bounded", 1e-9), (512, "chernoff", None)]:
        monkeypatch.setattr(m, "_PURE_DP_MAX_TERMS", cap)
        assert m._PureDPComposition(eps0, k).route == route
        for e, want in zip(eps, exact):
            bound = m.pure_dp_composition_delta(e, epsilon0=eps0, count=k)
            assert want * (1 - 1e-12) <= bound <= 1.0  # never undershoots
            if rel is not None:  # 10 sd: the added Chernoff tails are e^-50-small
                assert bound == pytest.approx(want, rel=rel)
    # And the RDP bound of the same composition caps it.
    from dpunlearn.accounting import rdp

    curve = k * rdp.pure_dp_rdp(rdp.DEFAULT_ORDERS, eps0)
    for e in eps:
        assert m.pure_dp_composition_delta(e, epsilon0=eps0, count=k) <= (
            rdp.rdp_delta(rdp.DEFAULT_ORDERS, curve, e)[0] * (1 + 1e-12)
        )


def test_pure_dp_composition_count_limit():
    # At k = 2**53 only the Chernoff bound is affordable (and certified).
    assert m._PureDPComposition(1e-3, 2**53).route == "chernoff"
    # Loss mean kε0 tanh(ε0/2) ≈ 4.5036e9, sd √k ε0 ≈ 9.5e4: 5 sd above the
    # mean, Chernoff gives about e^{-12.5}.
    d = m.pure_dp_composition_delta(4.5041e9, epsilon0=1e-3, count=2**53)
    assert 1e-7 < d < 1e-5
    with pytest.raises(ValueError, match="count to be an integer in"):
        m.pure_dp_composition_delta(1.0, epsilon0=0.1, count=2**53 + 1)


# --- Property: hostile input gives a ValueError or a valid, monotone answer ---

_EDGE_FLOATS = [math.nan, math.inf, -math.inf, -1.0, 0.0, 5e-324, 1e-320, 1e-300, 1e-20, 1e20, 1e300]
_EDGE_COUNTS = [-1, 0, 10**9, 2**53, 2**53 + 1, 10**30, 1.5, True, "3", None]
PROP = settings(derandomize=True, max_examples=80, deadline=None)


def mixed(valid, edge=_EDGE_FLOATS):
    """A valid value four times in five, else an edge case (NaN, inf, 0,
    negative, subnormal, 1e±300, any float, huge or non-integer counts)."""
    hostile = st.sampled_from(edge)
    if edge is _EDGE_FLOATS:
        hostile = hostile | st.floats(allow_nan=True, allow_infinity=True)
    return st.integers(0, 4).flatmap(lambda i: hostile if i == 0 else valid)


HOSTILE_FLOAT = mixed(st.floats(1e-6, 20.0))
HOSTILE_DELTA = mixed(st.floats(1e-12, 0.5))
HOSTILE_COUNT = mixed(st.integers(1, 300), _EDGE_COUNTS)


def _call(fn, *args, **kwargs):
    """fn(...) or None if it raised ValueError (any other exception fails)."""
    try:
        return fn(*args, **kwargs)
    except ValueError as err:
        assert str(err), "a ValueError must say what was expected"
        return None


@PROP
@given(eps=HOSTILE_FLOAT, sigma=HOSTILE_FLOAT, sens=HOSTILE_FLOAT, delta=HOSTILE_DELTA)
def test_gaussian_functions_hostile_input(eps, sigma, sens, delta):
    d = _call(m.gaussian_delta, eps, sigma=sigma, sensitivity=sens)
    if d is not None:
        assert 0.0 <= d <= 1.0
        bigger = _call(m.gaussian_delta, eps, sigma=sigma * 2, sensitivity=sens)
        if bigger is not None:  # more noise, less δ
            assert bigger <= d * (1 + 1e-9) + 1e-300
    e = _call(m.gaussian_epsilon, delta, sigma=sigma, sensitivity=sens)
    if e is not None:
        assert e >= 0.0 and not math.isnan(e)
        if 0 < e < math.inf:
            assert m.gaussian_delta(e, sigma=sigma, sensitivity=sens) <= delta
        more = _call(m.gaussian_epsilon, delta, sigma=sigma * 2, sensitivity=sens)
        if more is not None:
            assert more <= e * (1 + 1e-9)
    s = _call(m.gaussian_sigma_analytic, eps, delta, sens)
    if s is not None:
        assert 0.0 < s < math.inf
        assert m.gaussian_delta(eps, sigma=s, sensitivity=sens) <= delta
        looser = _call(m.gaussian_sigma_analytic, eps * 2, delta, sens)
        if looser is not None:  # a larger ε needs no more noise
            assert looser <= s * (1 + 1e-9)
    c = _call(m.gaussian_sigma_classic, eps, delta, sens)
    if c is not None:
        assert 0.0 < c < math.inf and (s is None or c >= s * (1 - 1e-9))
    for closed_form in (m.gaussian_zcdp, m.laplace_epsilon):  # ρ = (Δ/σ)²/2, ε = Δ/b
        v = _call(closed_form, sigma, sens)
        if v is not None:
            assert v >= 0.0 and not math.isnan(v)
            w = _call(closed_form, sigma * 2, sens)
            if w is not None:
                assert w <= v


@PROP
@given(rho=HOSTILE_FLOAT, delta=HOSTILE_DELTA, method=st.sampled_from(["classic", "improved", "x", None]))
def test_zcdp_to_dp_hostile_input(rho, delta, method):
    e = _call(m.zcdp_to_dp, rho, delta, method=method)
    if e is not None:
        assert 0.0 <= e < math.inf
        bigger = _call(m.zcdp_to_dp, rho * 2, delta, method=method)
        if bigger is not None:
            assert bigger >= e * (1 - 1e-9)


@PROP
@given(eps=HOSTILE_FLOAT, delta=HOSTILE_DELTA, k=HOSTILE_COUNT)
def test_group_privacy_hostile_input(eps, delta, k):
    out = _call(m.group_privacy, eps, delta, k)
    if out is not None:
        ke, kd = out
        assert ke > 0 and 0.0 <= kd <= 1.0 and not math.isnan(ke)


@settings(derandomize=True, max_examples=50, deadline=None)
@given(eps=HOSTILE_FLOAT, eps0=mixed(st.floats(1e-3, 3.0)), k=HOSTILE_COUNT, delta=HOSTILE_DELTA)
def test_pure_dp_composition_hostile_input(eps, eps0, k, delta):
    d = _call(m.pure_dp_composition_delta, eps, epsilon0=eps0, count=k)
    if d is not None:
        assert 0.0 <= d <= 1.0
        later = _call(m.pure_dp_composition_delta, eps * 2 + 1e-3, epsilon0=eps0, count=k)
        if later is not None:  # δ(ε) is non-increasing
            assert later <= d * (1 + 1e-9) + 1e-300
    e = _call(m.pure_dp_composition_epsilon, delta, epsilon0=eps0, count=k)
    if e is not None:
        assert 0.0 <= e and not math.isnan(e)
        if e < math.inf and delta > 0:
            assert m.pure_dp_composition_delta(e, epsilon0=eps0, count=k) <= delta
