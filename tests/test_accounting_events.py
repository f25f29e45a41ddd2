"""Tests for dpunlearn.accounting.events (dp_accounting interop).

Tolerances: PLD results abs 1e-3 (discretisation 1e-4; accountants.md §6);
RDP identities rtol 1e-12; cross-library RDP rel 1e-4 (fractional-order series).
"""

import math

import dp_accounting
import mpmath
import numpy as np
import pytest

from dpunlearn.accounting import events as ev
from dpunlearn.accounting import mechanisms, rdp

O = rdp.DEFAULT_ORDERS

# One instance of every event type, with a count > 1 to compose.
# _PLD_CASES: the types dp_accounting's PLD can evaluate (through our events).
_PLD_CASES = [
    (ev.GaussianEvent(sigma=3.0, sensitivity=0.5), 6),
    (ev.SubsampledGaussianEvent(q=0.05, sigma=1.2), 6),
    (ev.LaplaceEvent(scale=4.0, sensitivity=2.0), 6),
    (ev.RandomizedResponseEvent(noise_parameter=0.5, num_buckets=2), 6),
    (ev.RandomizedResponseEvent(noise_parameter=0.8, num_buckets=4), 5),
    (ev.PureDPEvent(epsilon=0.3), 6),
]
# Types without a PLD in dp_accounting 0.6.0 (RDP only).
_RDP_ONLY_CASES = [
    (ev.ZCDPEvent(rho=0.05), 7),
    (ev.SampledWithoutReplacementGaussianEvent(population_size=1000, sample_size=10, sigma=1.0), 4),
]
_CASES = _PLD_CASES + _RDP_ONLY_CASES


def _with_count(e, k):
    import dataclasses

    return dataclasses.replace(e, count=k)


def test_count_cases_cover_every_event_type():
    # A new event type must join the count-composition property tests below.
    assert {type(e) for e, _ in _CASES} == set(ev._EVENT_TYPES)


@pytest.mark.parametrize("e,k", _PLD_CASES, ids=lambda x: type(x).__name__)
def test_count_equals_repeated_events_pld(e, k):
    # compose(e, k) ≡ k separate compositions, for every event type (catches
    # dp_accounting's randomized-response count bug).
    composed = ev.epsilon_pld(_with_count(e, k), 1e-5)
    separate = ev.epsilon_pld([e] * k, 1e-5)
    assert composed == pytest.approx(separate, abs=1e-3)
    assert composed > ev.epsilon_pld(e, 1e-5) + 0.1  # k-fold really costs more


@pytest.mark.parametrize("e,k", _RDP_ONLY_CASES, ids=lambda x: type(x).__name__)
def test_rdp_only_events_are_refused_by_pld_in_both_forms(e, k):
    for form in (_with_count(e, k), [e] * k):
        with pytest.raises(ValueError, match="cannot account"):
            ev.epsilon_pld(form, 1e-5)


@pytest.mark.parametrize("e,k", _CASES, ids=lambda x: type(x).__name__)
def test_count_equals_repeated_events_rdp(e, k):
    np.testing.assert_allclose(
        ev.rdp_curve(_with_count(e, k)), ev.rdp_curve([e] * k), rtol=1e-12
    )
    a = ev.epsilon_rdp(_with_count(e, k), 1e-5)
    b = ev.epsilon_rdp([e] * k, 1e-5)
    assert a == pytest.approx(b, rel=1e-9)


def test_rr_count_guard_is_needed_and_works(monkeypatch):
    rr = dp_accounting.RandomizedResponseDpEvent(0.5, 2)
    raw = dp_accounting.SelfComposedDpEvent(rr, 10)
    guarded = ev.epsilon_pld(raw, 1e-5)
    # Exact 10-fold value 10.985945 (accountants.md rr_x10_rdp), PLD abs 2e-3.
    assert guarded == pytest.approx(10.985945, abs=2e-3)
    assert ev.epsilon_pld(ev.RandomizedResponseEvent(0.5, 2, count=10), 1e-5) == pytest.approx(
        guarded, abs=1e-9
    )
    # Without the guard the installed dp_accounting reports the one-fold ε.
    monkeypatch.setattr(ev, "_guard_rr_counts", lambda e: e)
    unguarded = ev.epsilon_pld(raw, 1e-5)
    if unguarded > 5:  # pragma: no cover - dp_accounting fixed upstream
        pytest.skip("installed dp_accounting no longer ignores RR counts")
    assert unguarded == pytest.approx(1.0986866665777768, abs=1e-6)  # rr_x10_pld_count_BUG


def test_pure_dp_count_needs_no_guard(monkeypatch):
    # The pure-DP event is composed by from_privacy_parameters(...).self_compose(k),
    # which uses the count; dp_accounting's RR path (same dominating pair) would not.
    pure = ev.PureEpsilonDpEvent(0.1)
    raw = dp_accounting.SelfComposedDpEvent(pure, 100)
    ref = 4.306791372574041  # pure_dp_0.1_x100_optimal (exact 4.3067914)
    assert ev._guard_rr_counts(raw) == raw  # not expanded: not randomized response
    assert ev.epsilon_pld(raw, 1e-5) == pytest.approx(ref, abs=1e-6)
    monkeypatch.setattr(ev, "_guard_rr_counts", lambda e: e)
    assert ev.epsilon_pld(raw, 1e-5) == pytest.approx(ref, abs=1e-6)
    assert ev.epsilon_pld(ev.PureDPEvent(0.1, 100), 1e-5) == pytest.approx(ref, abs=1e-6)
    # Counts multiply through nested repeats: 10 × (10 × pure) = 100 × pure.
    nested = dp_accounting.SelfComposedDpEvent(dp_accounting.ComposedDpEvent([pure] * 10), 10)
    assert ev.epsilon_pld(nested, 1e-5) == pytest.approx(ref, abs=1e-6)
    # Same pair via stock RR with a count: the known library fault (1-fold ε).
    rr = dp_accounting.RandomizedResponseDpEvent(2.0 / (1.0 + math.exp(0.1)), 2)
    stock = dp_accounting.pld.PLDAccountant(dp_accounting.NeighboringRelation.REPLACE_ONE)
    unguarded = stock.compose(rr, 100).get_epsilon(1e-5)
    if unguarded > 1.0:  # pragma: no cover - dp_accounting fixed upstream
        pytest.skip("installed dp_accounting no longer ignores RR counts")
    assert unguarded < 0.2


def test_pure_dp_paths_agree_with_closed_form():
    exact = mechanisms.pure_dp_composition_epsilon(1e-5, epsilon0=0.1, count=100)
    pld = ev.epsilon_pld(ev.PureDPEvent(0.1, count=100), 1e-5)
    # Pessimistic PLD: an upper bound, and here exact to the grid (0.1 is on it).
    assert exact - 1e-9 <= pld <= exact + 1e-6
    assert ev.delta_pld(ev.PureDPEvent(0.1, 100), exact) == pytest.approx(1e-5, rel=1e-6)
    # Off-grid ε0 is rounded up: still an upper bound, within the grid error.
    exact2 = mechanisms.pure_dp_composition_epsilon(1e-6, epsilon0=0.12345, count=50)
    pld2 = ev.epsilon_pld(ev.PureDPEvent(0.12345, count=50), 1e-6)
    assert exact2 - 1e-9 <= pld2 <= exact2 + 50 * 1e-4
    # RDP is looser than optimal composition but below basic composition kε0.
    rdp_eps = ev.epsilon_rdp(ev.PureDPEvent(0.1, 100), 1e-5)
    assert exact < rdp_eps < 10.0
    # Our curve and dp_accounting's randomized-response curve of the pair agree.
    ours = rdp.rdp_to_dp(O, ev.rdp_curve(ev.PureDPEvent(0.1, 100)), 1e-5)[0]
    assert ours == pytest.approx(rdp_eps, rel=1e-9)
    # Pure DP holds under any relation: it mixes with add/remove and replace-one events.
    g = ev.GaussianEvent(5.0)
    assert ev.epsilon_pld([ev.PureDPEvent(0.1, 100), g], 1e-5) > pld
    assert ev.epsilon_rdp([ev.PureDPEvent(0.1, 100), g], 1e-5) > rdp_eps
    assert ev.epsilon_pld([ev.PureDPEvent(0.1, 10), ev.RandomizedResponseEvent(0.5)], 1e-5) > 0


def _mp_rr_pair_rdp(alpha, eps):
    with mpmath.workdps(60):
        a, e = mpmath.mpf(alpha), mpmath.mpf(eps)
        p = mpmath.exp(e) / (1 + mpmath.exp(e))
        return float(mpmath.log(p**a * (1 - p) ** (1 - a) + (1 - p) ** a * p ** (1 - a)) / (a - 1))


@pytest.mark.parametrize("eps", [1e-8, 1e-3, 0.1, 1.0, 5.0, 30.0])
def test_pure_dp_rdp_is_the_randomized_response_curve(eps):
    got = rdp.pure_dp_rdp(O, eps)
    # 60-digit Rényi divergence of the dominating RR pair (orders subsampled for speed).
    idx = np.arange(0, O.size, 7)
    want = np.array([_mp_rr_pair_rdp(a, eps) for a in O[idx]])
    np.testing.assert_allclose(got[idx], want, rtol=1e-12)
    # The generic RR curve at the float p = 2/(1+e^ε): its only error is p's own
    # rounding, about 1e-16/ε relative in ε₀.
    rr = rdp.randomized_response_rdp(O, 2.0 / (1.0 + math.exp(eps)), 2)
    np.testing.assert_allclose(got, rr, rtol=max(1e-8, 1e-15 / eps))
    # ≤ ε and non-decreasing in α (up to float64 rounding).
    assert np.all(got <= eps) and np.all(np.diff(got) >= -4 * np.finfo(float).eps * eps)
    assert rdp.pure_dp_rdp(O, [eps, 2 * eps]).shape == (2, O.size)
    # Large ε: no overflow, capped at ε (Mironov 2017, Prop. 3).
    big = rdp.pure_dp_rdp(O, 1e4)
    assert np.all(np.isfinite(big)) and np.all(big <= 1e4)


def test_sample_wor_matches_dp_accounting_and_reference():
    e = ev.SampledWithoutReplacementGaussianEvent(10000, 100, 1.1, count=1000)
    raw = dp_accounting.rdp.RdpAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE
    ).compose(
        dp_accounting.SelfComposedDpEvent(
            dp_accounting.SampledWithoutReplacementDpEvent(10000, 100, dp_accounting.GaussianDpEvent(1.1)),
            1000,
        )
    )
    ours = ev.epsilon_rdp(e, 1e-5)  # REPLACE_ONE inferred
    assert ours == pytest.approx(3.1899987783606503, rel=1e-6)  # sample_wor_rdp
    assert ours == pytest.approx(raw.get_epsilon(1e-5), rel=1e-12)
    assert ev.epsilon_rdp(e, 1e-5, neighboring_relation="replace_one") == ours
    # The vectorised path delegates the curve to dp_accounting.
    np.testing.assert_allclose(ev.rdp_curve(e), raw.rdp, rtol=1e-12)
    # Sampling without replacement is replace-one only.
    with pytest.raises(ValueError, match="cannot account"):
        ev.epsilon_rdp(e, 1e-5, neighboring_relation="add_or_remove_one")
    with pytest.raises(ValueError, match="cannot account"):
        ev.epsilon_rdp([e, ev.GaussianEvent(3.0)], 1e-5)  # mixed: add/remove inferred
    with pytest.raises(ValueError, match="SampledWithoutReplacementGaussianEvent"):
        ev.epsilon_pld(e, 1e-5)
    # Sampling amplifies: far below the same Gaussian steps without sampling.
    assert ours < ev.epsilon_rdp(ev.GaussianEvent(1.1 / 2, count=1000), 1e-5)


def test_guard_expands_nested_repeats():
    rr = dp_accounting.RandomizedResponseDpEvent(0.5, 2)
    g = dp_accounting.GaussianDpEvent(2.0)
    nested = dp_accounting.SelfComposedDpEvent(dp_accounting.ComposedDpEvent([rr, g]), 3)
    out = ev._guard_rr_counts(nested)
    assert isinstance(out, dp_accounting.ComposedDpEvent) and len(out.events) == 3
    # Repeats without RR are left to dp_accounting (which handles their counts).
    plain = dp_accounting.SelfComposedDpEvent(g, 4)
    assert ev._guard_rr_counts(plain) == plain


def test_to_dp_event_mapping():
    assert ev.to_dp_event(ev.GaussianEvent(3.0, 0.5)) == dp_accounting.GaussianDpEvent(6.0)
    assert ev.to_dp_event(ev.GaussianEvent(3.0, count=4)) == dp_accounting.SelfComposedDpEvent(
        dp_accounting.GaussianDpEvent(3.0), 4
    )
    assert ev.to_dp_event(ev.SubsampledGaussianEvent(0.1, 1.5)) == dp_accounting.PoissonSampledDpEvent(
        0.1, dp_accounting.GaussianDpEvent(1.5)
    )
    assert ev.to_dp_event(ev.LaplaceEvent(4.0, 2.0)) == dp_accounting.LaplaceDpEvent(2.0)
    assert ev.to_dp_event(ev.ZCDPEvent(0.2)) == dp_accounting.ZCDpEvent(0.2)
    assert ev.to_dp_event(ev.PureDPEvent(0.5, count=3)) == dp_accounting.SelfComposedDpEvent(
        ev.PureEpsilonDpEvent(0.5), 3
    )
    assert ev.to_dp_event(
        ev.SampledWithoutReplacementGaussianEvent(1000, 10, 1.5)
    ) == dp_accounting.SampledWithoutReplacementDpEvent(1000, 10, dp_accounting.GaussianDpEvent(1.5))
    rr3 = ev.to_dp_event(ev.RandomizedResponseEvent(0.5, 2, count=3))
    assert isinstance(rr3, dp_accounting.ComposedDpEvent) and len(rr3.events) == 3
    both = ev.to_dp_event([ev.GaussianEvent(1.0), dp_accounting.GaussianDpEvent(2.0)])
    assert both == dp_accounting.ComposedDpEvent(
        [dp_accounting.GaussianDpEvent(1.0), dp_accounting.GaussianDpEvent(2.0)]
    )


def test_gaussian_ledger_exact_le_pld_le_rdp():
    sigmas = [1.0, 2.0, 3.0]
    ledger = [ev.GaussianEvent(s) for s in sigmas]
    exact = mechanisms.gaussian_epsilon(1e-5, sigma=(sum(s**-2 for s in sigmas)) ** -0.5)
    pld = ev.epsilon_pld(ledger, 1e-5)
    ours_rdp = rdp.rdp_to_dp(O, ev.rdp_curve(ledger), 1e-5)[0]
    assert exact <= pld + 1e-9  # pessimistic PLD is an upper bound
    assert pld == pytest.approx(exact, abs=1e-4)  # hetero_gaussians_pld: 5.237635
    assert pld <= ours_rdp
    assert ours_rdp == pytest.approx(ev.epsilon_rdp(ledger, 1e-5), rel=1e-12)


def test_mixed_ledger_our_rdp_vs_dp_accounting_rdp():
    ledger = [
        ev.GaussianEvent(4.0, count=3),
        ev.SubsampledGaussianEvent(0.02, 1.1, count=300),
        ev.LaplaceEvent(20.0, count=5),
        ev.ZCDPEvent(0.01, count=2),
    ]
    ours = rdp.rdp_to_dp(O, ev.rdp_curve(ledger), 1e-6)[0]
    theirs = ev.epsilon_rdp(ledger, 1e-6)
    assert ours == pytest.approx(theirs, rel=1e-4)
    assert ours <= theirs * (1 + 1e-12)  # dp_accounting's fractional series over-estimates


def test_delta_pld_and_pure_epsilon():
    e = ev.SubsampledGaussianEvent(0.01, 1.1, 1000)
    d1, d2 = ev.delta_pld(e, 1.0), ev.delta_pld(e, 1.5)
    assert d2 < d1
    assert d1 == pytest.approx(7.669463427098192e-4, rel=1e-2)  # dpsgd_pld_get_delta
    # rr_single_pure: δ = 0 gives the pure ε ln 3, rounded up to the PLD grid.
    pure = ev.epsilon_pld(ev.RandomizedResponseEvent(0.5), 0.0)
    assert math.log(3) <= pure <= math.log(3) + 2e-4


def test_empty_and_relation_handling():
    assert ev.epsilon_pld([], 1e-5) == 0.0
    with pytest.raises(ValueError, match="cannot account"):
        ev.epsilon_pld([ev.RandomizedResponseEvent(0.5), ev.GaussianEvent(1.0)], 1e-5)
    with pytest.raises(ValueError, match="neighboring_relation"):
        ev.epsilon_pld(ev.GaussianEvent(1.0), 1e-5, neighboring_relation="swap")
    with pytest.raises(ValueError, match="cannot account"):
        ev.epsilon_pld(ev.ZCDPEvent(0.1), 1e-5)  # no zCDP in dp_accounting's PLD


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: ev.GaussianEvent(0.0), "sigma"),
        (lambda: ev.GaussianEvent(1.0, -1.0), "sensitivity"),
        (lambda: ev.GaussianEvent(1.0, count=0), "count"),
        (lambda: ev.GaussianEvent(1.0, count=2.5), "count"),
        (lambda: ev.SubsampledGaussianEvent(1.5, 1.0), "q"),
        (lambda: ev.SubsampledGaussianEvent(0.1, float("nan")), "sigma"),
        (lambda: ev.LaplaceEvent(-2.0), "scale"),
        (lambda: ev.RandomizedResponseEvent(0.0), "noise_parameter"),
        (lambda: ev.RandomizedResponseEvent(0.5, 1), "num_buckets"),
        (lambda: ev.ZCDPEvent(0.0), "rho"),
        (lambda: ev.PureDPEvent(0.0), "epsilon"),
        (lambda: ev.PureDPEvent(float("inf")), "epsilon"),
        (lambda: ev.PureDPEvent(0.1, count=0), "count"),
        (lambda: ev.SampledWithoutReplacementGaussianEvent(0, 1, 1.0), "population_size"),
        (lambda: ev.SampledWithoutReplacementGaussianEvent(10.0, 1, 1.0), "population_size"),
        (lambda: ev.SampledWithoutReplacementGaussianEvent(10, 0, 1.0), "sample_size"),
        (lambda: ev.SampledWithoutReplacementGaussianEvent(10, 11, 1.0), "sample_size"),
        (lambda: ev.SampledWithoutReplacementGaussianEvent(10, 5, -1.0), "sigma"),
        (lambda: ev.SampledWithoutReplacementGaussianEvent(10, 5, 1.0, count=0), "count"),
        (lambda: rdp.pure_dp_rdp(O, -1.0), "epsilon"),
        (lambda: ev.epsilon_pld(ev.GaussianEvent(1.0), 1.0), "delta"),
        (lambda: ev.epsilon_pld(ev.GaussianEvent(1.0), -0.1), "delta"),
        (lambda: ev.epsilon_rdp(ev.GaussianEvent(1.0), 0.0), "delta"),
        (lambda: ev.delta_pld(ev.GaussianEvent(1.0), -1.0), "epsilon"),
        (
            lambda: ev.epsilon_pld(ev.GaussianEvent(1.0), 1e-5, value_discretization_interval=0),
            "value_discretization_interval",
        ),
    ],
)
def test_bad_input_names_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_non_event_is_type_error():
    with pytest.raises(TypeError):
        ev.to_dp_event([ev.GaussianEvent(1.0), "gauss"])
    with pytest.raises(TypeError):
        ev.rdp_curve(dp_accounting.GaussianDpEvent(1.0))
    with pytest.raises(TypeError):
        ev.epsilon_pld(3.0, 1e-5)
