"""Tests for dpunlearn.accounting.calibration: never over the target.

The central property (opacus#346) is checked on many random cases for the
generic search and for each accountant: the returned parameter satisfies the
target exactly as the accountant computes it, and a slightly less private
parameter does not (tightness, with the tolerance stated at each assert).
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dpunlearn.accounting import calibration as cal
from dpunlearn.accounting import events as ev
from dpunlearn.accounting import mechanisms, rdp

O = rdp.DEFAULT_ORDERS


def test_calibrate_known_functions():
    # Decreasing: smallest x with 1/x ≤ 0.25 is 4.
    x = cal.calibrate(lambda x: 1.0 / x, 0.25, lo=0.1, hi=100.0, increasing=False)
    assert 1.0 / x <= 0.25 and x == pytest.approx(4.0, rel=1e-14)
    # Increasing: largest x with x³ ≤ 2 is 2^(1/3).
    x = cal.calibrate(lambda x: x**3, 2.0, lo=0.0, hi=5.0, increasing=True)
    assert x**3 <= 2.0 and x == pytest.approx(2 ** (1 / 3), rel=1e-14)
    # Integer: largest k with k² ≤ 1000 is 31.
    assert cal.calibrate(lambda k: k * k, 1000, lo=1, hi=10**6, increasing=True, integer=True) == 31
    # tol: within tol of the boundary, on the safe side.
    x = cal.calibrate(lambda x: 1.0 / x, 0.25, lo=0.1, hi=100.0, increasing=False, tol=1e-3)
    assert 4.0 <= x <= 4.0 + 1e-3


def test_calibrate_many_random_monotone_functions_never_over():
    rng = np.random.default_rng(1)
    for _ in range(300):
        a, b, c = rng.uniform(0.1, 5.0, 3)
        kind = rng.integers(3)
        f = [
            lambda x: a * math.exp(b * x) - c,
            lambda x: a * x**3 + b * x,
            lambda x: math.log1p(a * x) * b,
        ][kind]
        target = f(rng.uniform(0.0, 2.0))
        inc = bool(rng.integers(2))
        g = f if inc else (lambda x, f=f: f(2.0 - x))
        tol = None if rng.integers(2) else float(rng.uniform(1e-9, 1e-3))
        integer = bool(rng.integers(4) == 0)
        lo, hi = (0, 2) if integer else (0.0, 2.0)
        try:
            x = cal.calibrate(g, target, lo=lo, hi=hi, increasing=inc, integer=integer, tol=tol)
        except ValueError:
            # Only allowed when no bracket point is safe.
            assert (g(0.0) if inc else g(2.0)) > target
            continue
        assert g(x) <= target  # never over the target
        if not integer:
            step = (tol or 1e-12) + 1e-12
            nxt = x + step if inc else x - step
            if 0.0 <= nxt <= 2.0:
                assert g(nxt) > target - 1e-9 * abs(target) - 1e-12


def test_calibrate_errors():
    with pytest.raises(ValueError, match="No safe point"):
        cal.calibrate(lambda x: x, -1.0, lo=0.0, hi=1.0, increasing=True)
    with pytest.raises(ValueError, match="lo"):
        cal.calibrate(lambda x: x, 0.5, lo=1.0, hi=1.0, increasing=True)
    with pytest.raises(ValueError, match="tol"):
        cal.calibrate(lambda x: x, 0.5, lo=0.0, hi=1.0, increasing=True, tol=0.0)
    with pytest.raises(ValueError, match="hi"):
        cal.calibrate(lambda x: x, 0.5, lo=0.0, hi=float("nan"), increasing=True)
    # NaN from fn is treated as unsafe, never returned.
    x = cal.calibrate(lambda x: float("nan") if x > 0.7 else x, 0.9, lo=0.0, hi=1.0, increasing=True)
    assert x <= 0.7


def test_calibrate_gaussian_sigma_exact_random_cases():
    rng = np.random.default_rng(2)
    for _ in range(150):
        eps = float(10 ** rng.uniform(-2, 1.3))
        delta = float(10 ** rng.uniform(-12, -1))
        count = int(rng.integers(1, 2000))
        sens = float(rng.uniform(0.1, 5))
        s = cal.calibrate_gaussian_sigma(eps, delta, count=count, sensitivity=sens)
        eff = s / math.sqrt(count)
        assert mechanisms.gaussian_delta(eps, sigma=eff, sensitivity=sens) <= delta
        lower = (s * (1 - 1e-9)) / math.sqrt(count)
        assert mechanisms.gaussian_delta(eps, sigma=lower, sensitivity=sens) > delta
        assert s == pytest.approx(
            mechanisms.gaussian_sigma_analytic(eps, delta, sens) * math.sqrt(count), rel=1e-9
        )


def test_calibrate_gaussian_sigma_rdp_random_cases():
    rng = np.random.default_rng(3)
    for _ in range(40):
        eps = float(rng.uniform(0.2, 8))
        delta = float(10 ** rng.uniform(-9, -3))
        count = int(rng.integers(1, 5000))
        q = 1.0 if rng.integers(2) else float(10 ** rng.uniform(-3, -0.5))
        s = cal.calibrate_gaussian_sigma(
            eps, delta, count=count, accountant="rdp", sampling_probability=q
        )
        got = rdp.rdp_to_dp(O, count * rdp.subsampled_gaussian_rdp(O, q, s), delta)[0]
        assert got <= eps  # never over
        worse = rdp.rdp_to_dp(O, count * rdp.subsampled_gaussian_rdp(O, q, s * (1 - 1e-7)), delta)[0]
        assert worse > eps - 1e-9  # tight to float resolution
        if q == 1.0:  # exact ≤ RDP ⇒ RDP needs at least the exact σ
            assert s >= cal.calibrate_gaussian_sigma(eps, delta, count=count) * (1 - 1e-12)


def test_calibration_reference_values():
    # calib_sigma_analytic abs 1e-6; calib_sigma_rdp_1step abs 1e-5; calib_dpsgd_rdp abs 1e-4.
    assert cal.calibrate_gaussian_sigma(1.0, 1e-5) == pytest.approx(3.7306316348159374, abs=1e-6)
    assert cal.calibrate_gaussian_sigma(1.0, 1e-5, accountant="rdp") == pytest.approx(
        4.045386368849353, abs=1e-5
    )
    s = cal.calibrate_gaussian_sigma(
        1.0, 1e-5, count=1000, accountant="rdp", sampling_probability=0.01
    )
    assert s == pytest.approx(1.5131221642023396, abs=1e-4)


def test_calibration_pld_one_release():
    # calib_sigma_pld_1step: abs 1e-4 and ≥ the analytic σ 3.7306316.
    s = cal.calibrate_gaussian_sigma(1.0, 1e-5, accountant="pld")
    assert s == pytest.approx(3.7306325589003535, abs=1e-4)
    assert s >= 3.7306316
    assert ev.epsilon_pld(ev.GaussianEvent(s), 1e-5) <= 1.0


def test_max_count():
    for acct in ["exact", "rdp"]:
        k = cal.max_count(1.0, 1e-5, sigma=20.0, accountant=acct)
        assert k >= 1
        if acct == "exact":
            ok = lambda n: mechanisms.gaussian_epsilon(1e-5, sigma=20.0 / math.sqrt(n)) <= 1.0
        else:
            ok = lambda n: rdp.rdp_to_dp(O, n * rdp.gaussian_rdp(O, 20.0), 1e-5)[0] <= 1.0
        assert ok(k) and not ok(k + 1)
    k_pld = cal.max_count(1.0, 1e-5, sigma=20.0, accountant="pld")
    assert ev.epsilon_pld(ev.GaussianEvent(20.0, count=k_pld), 1e-5) <= 1.0
    assert ev.epsilon_pld(ev.GaussianEvent(20.0, count=k_pld + 1), 1e-5) > 1.0
    # Exact ≥ PLD ≥ RDP capacity (tighter accountant, more releases).
    assert cal.max_count(1.0, 1e-5, sigma=20.0) >= k_pld >= cal.max_count(
        1.0, 1e-5, sigma=20.0, accountant="rdp"
    )
    assert cal.max_count(0.01, 1e-5, sigma=1.0) == 0
    assert cal.max_count(1.0, 1e-5, sigma=1e6, limit=1000) == 1000
    # Monotone in σ and in ε.
    assert cal.max_count(1.0, 1e-5, sigma=30.0) >= cal.max_count(1.0, 1e-5, sigma=20.0)
    assert cal.max_count(2.0, 1e-5, sigma=20.0) >= cal.max_count(1.0, 1e-5, sigma=20.0)


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: cal.calibrate_gaussian_sigma(0.0, 1e-5), "epsilon"),
        (lambda: cal.calibrate_gaussian_sigma(1.0, 0.0), "delta"),
        (lambda: cal.calibrate_gaussian_sigma(1.0, 1e-5, count=0), "count"),
        (lambda: cal.calibrate_gaussian_sigma(1.0, 1e-5, sensitivity=0.0), "sensitivity"),
        (lambda: cal.calibrate_gaussian_sigma(1.0, 1e-5, accountant="prv"), "accountant"),
        (
            lambda: cal.calibrate_gaussian_sigma(1.0, 1e-5, sampling_probability=0.1),
            "sampling_probability",
        ),
        (
            lambda: cal.calibrate_gaussian_sigma(
                1.0, 1e-5, accountant="rdp", sampling_probability=1.5
            ),
            "sampling_probability",
        ),
        (lambda: cal.max_count(1.0, 1e-5, sigma=-1.0), "sigma"),
        (lambda: cal.max_count(1.0, 1e-5, sigma=1.0, limit=0), "limit"),
        (lambda: cal.max_count(float("nan"), 1e-5, sigma=1.0), "epsilon"),
    ],
)
def test_bad_input_names_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# --- Numbers at the edges (issue #7, item 5) ---


def test_calibrate_gaussian_sigma_subnormal_delta_is_finite_and_certified():
    # Issue example: calibrate_gaussian_sigma(1.0, 1e-310) returned nan
    # (1/δ overflowed, κ = inf − inf).
    s = cal.calibrate_gaussian_sigma(1.0, 1e-310)
    assert math.isfinite(s) and s > 0
    assert mechanisms.gaussian_delta(1.0, sigma=s) <= 1e-310
    assert mechanisms.gaussian_delta(1.0, sigma=s * (1 - 1e-9)) > 1e-310
    assert s == pytest.approx(mechanisms.gaussian_sigma_analytic(1.0, 1e-310), rel=1e-12)


def test_calibrate_gaussian_sigma_tiny_epsilon():
    # Issue example: calibrate_gaussian_sigma(1e-300, 1e-5) raised
    # ZeroDivisionError (κ = √(L + ε) − √L cancelled to 0). The answer is set
    # by the total variation: erf(1/(2√2σ)) = δ, σ ≈ 39894.228.
    s = cal.calibrate_gaussian_sigma(1e-300, 1e-5)
    assert s == pytest.approx(1.0 / (2 * math.sqrt(2) * 8.862269254527580e-06), rel=1e-9)
    assert mechanisms.gaussian_delta(1e-300, sigma=s) <= 1e-5
    # RDP: positive and finite too (the improved conversion's KL shortcut).
    r = cal.calibrate_gaussian_sigma(1e-300, 1e-5, accountant="rdp")
    assert math.isfinite(r) and r > s
    # When even the largest float is not enough, say so.
    with pytest.raises(ValueError, match="overflows float64"):
        cal.calibrate_gaussian_sigma(1e-310, 1e-320)


def test_calibrate_gaussian_sigma_extreme_sensitivity_and_count():
    assert cal.calibrate_gaussian_sigma(1.0, 1e-5, sensitivity=1e-300) == pytest.approx(
        3.7306316348159374e-300, rel=1e-12
    )
    big = cal.calibrate_gaussian_sigma(1.0, 1e-5, count=2**53)
    assert big / math.sqrt(2**53) == pytest.approx(3.7306316348159374, rel=1e-12)
    with pytest.raises(ValueError, match="count to be an integer in"):
        cal.calibrate_gaussian_sigma(1.0, 1e-5, count=2**53 + 1)


def test_max_count_extremes():
    assert cal.max_count(1.0, 1e-5, sigma=1e-300) == 0
    assert cal.max_count(1.0, 1e-5, sigma=1e300, limit=2**53) == 2**53
    with pytest.raises(ValueError, match="limit"):
        cal.max_count(1.0, 1e-5, sigma=1.0, limit=2**53 + 1)


def test_calibrate_rejects_nan_target():
    with pytest.raises(ValueError, match="target"):
        cal.calibrate(lambda x: x, float("nan"), lo=0.0, hi=1.0, increasing=True)


# --- Property: hostile input gives a ValueError or a valid, safe answer ---


_EDGE = [math.nan, math.inf, -1.0, 0.0, 5e-324, 1e-300, 1e-20, 1e20, 1e300]
_EDGE_COUNTS = [-1, 0, 10**9, 2**53, 2**53 + 1, 10**30, 2.0, True]


def mixed(valid, edge=_EDGE):
    """A valid value four times in five, else an edge case."""
    hostile = st.sampled_from(edge)
    if edge is _EDGE:
        hostile = hostile | st.floats(allow_nan=True, allow_infinity=True)
    return st.integers(0, 4).flatmap(lambda i: hostile if i == 0 else valid)


HOSTILE = mixed(st.floats(0.05, 10.0))
HOSTILE_DELTA = mixed(st.floats(1e-12, 0.1))
HOSTILE_COUNT = mixed(st.integers(1, 1000), _EDGE_COUNTS)


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ValueError as err:
        assert str(err)
        return None


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    eps=HOSTILE, delta=HOSTILE_DELTA, sens=HOSTILE, count=HOSTILE_COUNT,
    accountant=st.sampled_from(["exact", "rdp", "pld?"]),
)
def test_calibrate_gaussian_sigma_hostile_input(eps, delta, sens, count, accountant):
    s = _call(cal.calibrate_gaussian_sigma, eps, delta, count=count, sensitivity=sens, accountant=accountant)
    if s is None:
        return
    assert 0.0 < s < math.inf
    if accountant == "exact":  # never over the target, as the accountant computes it
        assert mechanisms.gaussian_delta(eps, sigma=s / math.sqrt(count), sensitivity=sens) <= delta
    else:
        curve = rdp.subsampled_gaussian_rdp(O, 1.0, s / sens)
        assert rdp.rdp_to_dp(O, count * curve, delta)[0] <= eps
    looser = _call(cal.calibrate_gaussian_sigma, eps * 2, delta, count=count, sensitivity=sens, accountant=accountant)
    if looser is not None:
        assert looser <= s * (1 + 1e-9)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(eps=HOSTILE, delta=HOSTILE_DELTA, sigma=HOSTILE, limit=HOSTILE_COUNT)
def test_max_count_hostile_input(eps, delta, sigma, limit):
    k = _call(cal.max_count, eps, delta, sigma=sigma, limit=limit)
    if k is None:
        return
    assert isinstance(k, int) and 0 <= k <= limit
    if k >= 1:
        assert mechanisms.gaussian_delta(eps, sigma=sigma / math.sqrt(k)) <= delta
    more = _call(cal.max_count, eps, delta, sigma=sigma * 2, limit=limit)
    if more is not None:
        assert more >= k
