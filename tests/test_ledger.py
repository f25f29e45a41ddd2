"""Tests for dpunlearn.accounting.ledger: replay, budgets, crash safety."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from dpunlearn.accounting import currencies as cur
from dpunlearn.accounting import events as ev
from dpunlearn.accounting import ledger as L
from dpunlearn.accounting import mechanisms as mech
from dpunlearn.accounting import rdp

G = L.gaussian_release


def _langevin_params(n=10_000):
    m, _, eta = cur.langevin_constants(n=n, lam=1e-6, loss_smoothness=0.25)
    return dict(strong_convexity=m, step_size=eta, sigma=0.03, gradient_clip=1.0, n=n)


CONFIGS = {
    "certified_removal": dict(
        params=dict(rule="paper", sigma=10.0, method="paper"), target_epsilon=1.0, target_delta=1e-4
    ),
    "sekhari": dict(params=dict(capacity=3), target_epsilon=1.0, target_delta=1e-5),
    "d2d": dict(
        params=dict(
            sigma=0.18,
            lipschitz=1.0,
            strong_convexity=0.1,
            smoothness=0.35,
            n=1000,
            iterations=2,
        ),
        target_epsilon=1.0,
        target_delta=1e-5,
    ),
    "langevin": dict(params=_langevin_params(), target_epsilon=0.5, target_delta=1e-4),
    "wsgd": dict(
        params=dict(_langevin_params(), batch_size=10_000),
        target_epsilon=0.5,
        target_delta=1e-4,
    ),
    "dp_extractor": dict(
        params=dict(
            extractor_epsilon=0.1,
            extractor_delta=1e-6,
            head=dict(sigma=10.0, epsilon=1.0, delta=1e-4),
        ),
        target_epsilon=2.0,
        target_delta=1e-3,
    ),
}
REQUEST = {
    "certified_removal": dict(residual_bound=0.4),
    "sekhari": dict(),
    "d2d": dict(),
    "langevin": dict(steps=1000),
    "wsgd": dict(epochs=50),
    "dp_extractor": dict(residual_bound=0.4),
}


def make(tmp_path, currency="certified_removal", name="l.jsonl", **over):
    kw = dict(CONFIGS[currency], **over)
    return L.Ledger.create(tmp_path / name, currency=currency, **kw)


@pytest.mark.parametrize("currency", sorted(CONFIGS))
def test_live_summary_equals_replay_and_retrain_resets_u_only(tmp_path, currency):
    led = make(tmp_path, currency)
    led.train(dp=[G(30.0, count=10)])
    live = [led.summary]
    for _ in range(2):
        live.append(led.request(dp=[G(50.0)], **REQUEST[currency]))
    before_retrain = led.summary
    live.append(led.retrain(dp=[G(30.0, count=10)]))
    live.append(led.request(dp=[G(50.0)], **REQUEST[currency]))
    # Replay from the file alone (first line = config) equals the live summary.
    got, torn = L.replay_file(led.path)
    assert torn is None and got == led.summary
    entries = L.read_ledger(led.path).entries
    assert entries[0]["kind"] == "config" and entries[0]["currency"] == currency
    for i, s in enumerate(live, start=2):
        assert L.replay(entries[:i]) == s
    # U: used since retrain restarted; D: strictly grew through the retrain.
    after = live[-2]
    assert after.requests_since_retrain == 0 and after.num_retrains == 1
    if currency != "d2d":  # D2D has nothing to restore (n only shrinks)
        assert after.unlearning.used <= before_retrain.unlearning.used
        assert after.unlearning.remaining == pytest.approx(
            L.initial_summary(led.setup).unlearning.remaining
        )
    assert after.dp_epsilon > before_retrain.dp_epsilon
    assert led.summary.total_removed == 3
    assert L.Ledger.open(led.path).summary == led.summary


def test_d_ledger_matches_reference_composition(tmp_path):
    # JSON five_deletions_gauss4_rdp_fold / _pld_fold: 5 releases of G(4).
    led = make(tmp_path, "sekhari", params=dict(capacity=10), target_delta=1e-5)
    led.train(dp=[G(4.0)])
    for _ in range(4):
        s = led.request(dp=[G(4.0)])
    # RDP value (kept as dp_epsilon_rdp) is the JSON's rdp_fold.
    assert s.dp_epsilon_rdp == pytest.approx(2.451506386226333, rel=1e-6)
    assert s.dp_delta == 1e-5
    pld = L.dp_epsilon_pld(L.read_ledger(led.path).entries, 1e-5)
    assert pld == pytest.approx(2.2581453633737465, abs=1e-3)
    direct = rdp.rdp_to_dp(
        rdp.DEFAULT_ORDERS, 5 * rdp.gaussian_rdp(rdp.DEFAULT_ORDERS, 4.0), 1e-5
    )[0]
    assert s.dp_epsilon_rdp == pytest.approx(direct, rel=1e-12)
    # All releases Gaussian: reported (D) is the exact G(4/sqrt(5)) value, which
    # the pessimistic PLD upper-bounds (default grid 1e-4: gap < 1e-3).
    assert s.dp_method == "exact-gaussian"
    exact = mech.gaussian_epsilon(1e-5, sigma=4.0 / np.sqrt(5.0))
    assert s.dp_epsilon == pytest.approx(exact, rel=1e-12)
    assert pld - 1e-3 <= s.dp_epsilon <= pld + 1e-12


def test_mixed_mechanisms_and_non_private_release(tmp_path):
    led = make(tmp_path)
    s = led.train(
        dp=[
            L.subsampled_gaussian_release(0.01, 1.1, 1000),
            G(20.0),
            L.laplace_release(100.0),
        ]
    )
    assert 0 < s.dp_epsilon < np.inf
    s = led.request(dp=None, residual_bound=0.1)
    assert s.dp_epsilon == np.inf and s.non_private_entries == (2,)
    s = led.retrain(dp=[G(20.0)])
    assert s.dp_epsilon == np.inf  # D never resets
    assert L.replay_file(led.path)[0] == s


# Heterogeneous Gaussian ledger: (sigma, count) of train, requests, retrain.
_GAUSS = [(3.0, 2), (5.0, 1), (7.5, 1), (4.0, 3), (6.0, 1)]


def _gaussian_ledger(tmp_path, currency="sekhari", **over):
    kw = dict(params=dict(capacity=10), target_delta=1e-5)
    kw.update(over)
    led = make(tmp_path, currency, **kw)
    (s0, c0), *rest = _GAUSS
    live = [led.train(dp=[G(s0, count=c0)])]
    for sigma, count in rest[:-1]:
        live.append(led.request(dp=[G(sigma, count=count)]))
    live.append(led.retrain(dp=[G(*rest[-1])]))
    return led, live


def test_gaussian_only_ledger_reports_exact_composed_gaussian(tmp_path):
    led, live = _gaussian_ledger(tmp_path)
    s = led.summary
    precision = sum(c / sig**2 for sig, c in _GAUSS)
    sigma_eff = precision**-0.5
    assert s.dp_gaussian_precision == pytest.approx(precision, rel=1e-15)
    assert s.dp_non_gaussian_releases == 0 and s.dp_method == "exact-gaussian"
    exact = mech.gaussian_epsilon(1e-5, sigma=sigma_eff)
    assert s.dp_epsilon == pytest.approx(exact, rel=1e-12)
    # The RDP value is still computed (same composition as before) and is looser.
    curve = ev.rdp_curve([ev.GaussianEvent(sig, count=c) for sig, c in _GAUSS])
    rdp_eps = rdp.rdp_to_dp(rdp.DEFAULT_ORDERS, curve, 1e-5)[0]
    assert s.dp_epsilon_rdp == pytest.approx(rdp_eps, rel=1e-12)
    assert s.dp_epsilon < s.dp_epsilon_rdp - 0.05
    # dp_accounting's pessimistic PLD with a fine grid (1e-5) over the separate
    # events is an upper bound on the true epsilon up to its discretisation:
    # tolerance 1e-5 below, float rounding (1e-9) above.
    pld = ev.epsilon_pld(
        [ev.GaussianEvent(sig, count=c) for sig, c in _GAUSS],
        1e-5,
        value_discretization_interval=1e-5,
    )
    assert pld - 1e-5 <= s.dp_epsilon <= pld + 1e-9
    # Every live summary was exact too, and replay equals it bit for bit.
    entries = L.read_ledger(led.path).entries
    for i, live_s in enumerate(live, start=2):
        assert live_s.dp_method == "exact-gaussian"
        assert live_s.dp_epsilon <= live_s.dp_epsilon_rdp
        assert L.replay(entries[:i]) == live_s
    assert L.replay_file(led.path)[0] == s
    d = L.summary_to_dict(s)["dp"]
    assert d["accountant"] == "exact-gaussian"
    assert d["sigma_effective"] == pytest.approx(sigma_eff, rel=1e-12)


@pytest.mark.parametrize(
    "other",
    [L.subsampled_gaussian_release(0.01, 1.1, 100), L.laplace_release(50.0)],
    ids=["subsampled_gaussian", "laplace"],
)
def test_one_non_gaussian_release_falls_back_to_rdp_for_good(tmp_path, other):
    led = make(tmp_path, "sekhari", params=dict(capacity=10), target_delta=1e-5)
    s = led.train(dp=[G(3.0, count=2)])
    assert s.dp_method == "exact-gaussian"
    s = led.request(dp=[G(5.0), other])
    assert s.dp_method == "rdp" and s.dp_non_gaussian_releases == 1
    assert s.dp_epsilon == s.dp_epsilon_rdp
    assert s.dp_gaussian_precision == pytest.approx(2 / 9 + 1 / 25, rel=1e-15)
    s = led.retrain(dp=[G(4.0)])  # D never resets: still mixed
    assert s.dp_method == "rdp" and s.dp_epsilon == s.dp_epsilon_rdp
    events = [
        ev.GaussianEvent(3.0, count=2),
        ev.GaussianEvent(5.0),
        L.entry_events({"dp": [other]})[0],
        ev.GaussianEvent(4.0),
    ]
    direct = rdp.rdp_to_dp(rdp.DEFAULT_ORDERS, ev.rdp_curve(events), 1e-5)[0]
    assert s.dp_epsilon == pytest.approx(direct, rel=1e-12)
    # Well above what the Gaussian part alone would give exactly.
    assert s.dp_epsilon > mech.gaussian_epsilon(
        1e-5, sigma=s.dp_gaussian_precision**-0.5
    )
    assert L.replay_file(led.path)[0] == s


@pytest.mark.parametrize("currency", ["sekhari", "certified_removal"])
def test_count_k_equals_k_entries(tmp_path, currency):
    k = 4
    req = dict(residual_bound=0.01) if currency == "certified_removal" else {}
    kw = dict(params=dict(capacity=10), target_delta=1e-5)
    if currency == "certified_removal":
        kw = dict(target_delta=1e-5)
    one = make(tmp_path, currency, name="one.jsonl", **kw)
    one.train(dp=[G(2.0)])
    a = one.request(dp=[G(5.0, count=k)], **req)
    listed = make(tmp_path, currency, name="listed.jsonl", **kw)
    listed.train(dp=[G(2.0)])
    b = listed.request(dp=[G(5.0)] * k, **req)
    sep = make(tmp_path, currency, name="sep.jsonl", **kw)
    sep.train(dp=[G(2.0)])
    for _ in range(k):
        c = sep.retrain(dp=[G(5.0)])
    for s in (a, b, c):
        assert s.dp_method == "exact-gaussian"
        assert s.dp_gaussian_precision == pytest.approx(1 / 4 + k / 25, rel=1e-15)
        assert s.dp_epsilon == pytest.approx(a.dp_epsilon, rel=1e-12)
        assert s.dp_epsilon_rdp == pytest.approx(a.dp_epsilon_rdp, rel=1e-12)
        assert np.allclose(s.dp_rdp, a.dp_rdp, rtol=1e-12, atol=0)
    # Same on the RDP path (subsampled Gaussian, count 3 vs 3 separate).
    sg = L.subsampled_gaussian_release
    x = one.request(dp=[sg(0.02, 1.5, 3)], **req)
    for _ in range(3):
        y = sep.retrain(dp=[sg(0.02, 1.5, 1)])
    assert x.dp_method == y.dp_method == "rdp"
    assert x.dp_epsilon == pytest.approx(y.dp_epsilon, rel=1e-12)


def test_dp_budget_is_checked_against_the_reported_exact_value(tmp_path):
    # 5 x G(4) at delta 1e-5: exact 2.2581, RDP 2.4515. A 2.3 budget admits the
    # fifth release only because the exact value is used; the sixth is refused.
    led = make(
        tmp_path, "sekhari", params=dict(capacity=10), dp_epsilon=2.3, dp_delta=1e-5
    )
    led.train(dp=[G(4.0)])
    for _ in range(4):
        s = led.request(dp=[G(4.0)])
    assert s.dp_epsilon_rdp > 2.3 >= s.dp_epsilon and s.dp_method == "exact-gaussian"
    e = _refuse(led, lambda: led.request(dp=[G(4.0)]))
    assert e.ledger == "D" and e.remaining == pytest.approx(2.3 - s.dp_epsilon)
    # A non-Gaussian release is judged by RDP: a tiny Laplace one is refused
    # here, since the mixed ledger's RDP value is above the budget.
    e = _refuse(led, lambda: led.request(dp=[L.laplace_release(1e6)]))
    assert e.ledger == "D"
    assert L.replay_file(led.path)[0] == s


_V1_FILE = (
    b'{"budget":{"capacity":10,"dp_delta":1e-05,"dp_epsilon":null},"currency":'
    b'"sekhari","format":"dpunlearn-ledger","kind":"config","params":{"capacity"'
    b':10},"target":{"delta":1e-05,"epsilon":1.0},"version":1}\n'
    b'{"dp":[{"count":1,"mechanism":"gaussian","noise_multiplier":4.0}],"kind":'
    b'"train","seq":1,"time":1700000000.0}\n'
    b'{"dp":[{"count":4,"mechanism":"gaussian","noise_multiplier":4.0}],"kind":'
    b'"request","removed":1,"seq":2,"time":1700000001.0}\n'
)


def test_ledger_written_before_the_new_fields_replays(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_bytes(_V1_FILE)
    s, torn = L.replay_file(path)
    assert torn is None and s.num_entries == 2
    assert s.dp_method == "exact-gaussian"
    assert s.dp_gaussian_precision == pytest.approx(5 / 16, rel=1e-15)
    assert s.dp_epsilon_rdp == pytest.approx(2.451506386226333, rel=1e-6)
    assert s.dp_epsilon == pytest.approx(
        mech.gaussian_epsilon(1e-5, sigma=4.0 / np.sqrt(5.0)), rel=1e-12
    )
    led = L.Ledger.open(path)
    assert led.request(dp=[G(4.0)]).num_entries == 3
    assert L.replay_file(path)[0] == led.summary


def _refuse(led, call):
    before = open(led.path, "rb").read()
    summary = led.summary
    with pytest.raises(L.BudgetExceededError) as ei:
        call()
    assert isinstance(ei.value, ValueError)
    assert open(led.path, "rb").read() == before  # byte-for-byte unchanged
    assert led.summary == summary
    return ei.value


def test_refusals_leave_file_unchanged_and_say_what_is_left(tmp_path):
    led = make(tmp_path)  # CR, budget 2.2803
    led.train(dp=[G(30.0)])
    for _ in range(5):
        led.request(dp=[G(50.0)], residual_bound=0.4)  # used 2.0
    e = _refuse(led, lambda: led.request(dp=[G(50.0)], residual_bound=0.4))
    assert e.ledger == "U" and e.unit == "residual_norm"
    assert e.remaining == pytest.approx(0.2803009464393384, rel=1e-9)
    assert e.restored_by_retrain == pytest.approx(2.2803009464393384, rel=1e-9)
    assert "left" in str(e) and "retrain would restore" in str(e)
    # A smaller request still fits; after a retrain the full budget is back.
    led.request(dp=[G(50.0)], residual_bound=0.28)
    s = led.retrain(dp=[G(30.0)])
    assert s.unlearning.remaining == pytest.approx(2.2803009464393384, rel=1e-9)
    assert L.replay_file(led.path)[0] == s


# A certified_removal ledger written before train/retrain residual_bound and
# residual_mode existed: beta starts at 0 and every bound is added.
_CR_OLD_FILE = (
    b'{"budget":{"dp_delta":0.0001,"dp_epsilon":null,"residual_budget":'
    b'2.2803009464393384},"currency":"certified_removal","format":'
    b'"dpunlearn-ledger","kind":"config","params":{"method":"paper","sigma":'
    b'10.0},"target":{"delta":0.0001,"epsilon":1.0},"version":1}\n'
    b'{"dp":null,"kind":"train","seq":1,"time":1700000000.0}\n'
    b'{"dp":null,"kind":"request","removed":1,"residual_bound":0.4,"seq":2,'
    b'"time":1700000001.0}\n'
    b'{"dp":null,"kind":"retrain","seq":3,"time":1700000002.0}\n'
    b'{"dp":null,"kind":"request","removed":2,"residual_bound":0.5,"seq":4,'
    b'"time":1700000003.0}\n'
    b'{"dp":null,"kind":"request","removed":1,"residual_bound":0.25,"seq":5,'
    b'"time":1700000004.0}\n'
)


def test_cr_ledger_without_the_residual_fields_replays_unchanged(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_bytes(_CR_OLD_FILE)
    s, torn = L.replay_file(path)
    assert torn is None and s.num_entries == 5 and s.num_retrains == 1
    assert s.state == cur.CertifiedRemovalState(0.75, 3)
    assert s.unlearning.used == 0.75
    assert s.unlearning.remaining == pytest.approx(2.2803009464393384 - 0.75)
    # The same history with the new fields at their defaults is the same ledger.
    entries = L.read_ledger(path).entries
    explicit = [dict(e) for e in entries]
    explicit[1]["residual_bound"] = 0.0
    explicit[3]["residual_bound"] = 0
    for i in (2, 4, 5):
        explicit[i]["residual_mode"] = "add"
    assert L.replay(explicit) == s
    led = L.Ledger.open(path)
    assert led.summary == s
    new = led.request(dp=None, residual_bound=0.1, residual_mode="add")
    assert new.unlearning.used == pytest.approx(0.85)
    assert L.replay_file(path)[0] == new


def test_cr_training_residual_counts_against_the_budget(tmp_path):
    budget = 2.2803009464393384
    led = make(tmp_path)
    s = led.train(dp=None, residual_bound=1.0)  # the model's training residual
    assert s.state == cur.CertifiedRemovalState(1.0, 0)
    assert s.unlearning.used == 1.0 and s.unlearning.certified
    assert s.unlearning.remaining == pytest.approx(budget - 1.0)
    assert led.request(dp=None, residual_bound=1.0).unlearning.used == 2.0
    # 0.4 more would fit a model trained to beta = 0 (2.0 <= budget before the
    # training residual); with it, beta would be 2.4: refused, file unchanged.
    e = _refuse(led, lambda: led.request(dp=None, residual_bound=0.4))
    assert e.ledger == "U" and e.remaining == pytest.approx(budget - 2.0)
    assert "less the new model's training residual" in str(e)
    # A retrain resets beta to the *new* model's training residual.
    s = led.retrain(dp=None, residual_bound=0.5)
    assert s.state == cur.CertifiedRemovalState(0.5, 0)
    assert s.unlearning.remaining == pytest.approx(budget - 0.5)
    s = led.request(dp=None, residual_bound=0.4)
    assert s.unlearning.used == pytest.approx(0.9)
    # A retrain whose training residual alone is over the budget is refused.
    e = _refuse(led, lambda: led.retrain(dp=None, residual_bound=budget * 1.01))
    assert e.ledger == "U" and e.restored_by_retrain is None
    assert "training residual" in str(e) and "unchanged" in str(e)
    entries = L.read_ledger(led.path).entries
    assert entries[1]["residual_bound"] == 1.0 and entries[3]["residual_bound"] == 0.5
    assert L.replay_file(led.path)[0] == led.summary == s
    assert L.Ledger.open(led.path).summary == s
    # Refused at creation too: a first model already over the budget.
    other = make(tmp_path, name="over.jsonl")
    _refuse(other, lambda: other.train(dp=None, residual_bound=3.0))
    assert other.summary.num_entries == 0


def test_cr_set_mode_replaces_beta_and_refusals_leave_the_file(tmp_path):
    budget = 2.2803009464393384
    led = make(tmp_path)
    live = [led.train(dp=[G(30.0)], residual_bound=0.1)]
    for _ in range(3):
        live.append(led.request(dp=None, residual_bound=0.5))  # add: 1.6
    assert live[-1].unlearning.used == pytest.approx(1.6)
    # Residual-correcting step: its bound covers the whole current residual.
    live.append(led.request(dp=None, residual_bound=0.3, residual_mode="set"))
    assert live[-1].unlearning.used == 0.3
    live.append(led.request(dp=None, residual_bound=0.2))  # add again: 0.5
    assert live[-1].unlearning.used == pytest.approx(0.5)
    # A "set" bound over the budget is refused however little beta is used.
    e = _refuse(
        led, lambda: led.request(dp=None, residual_bound=2.5, residual_mode="set")
    )
    assert e.ledger == "U" and e.remaining == pytest.approx(budget - 0.5)
    assert "even a full retrain would not certify" in str(e)
    live.append(led.request(dp=None, residual_bound=2.0, residual_mode="set"))
    assert live[-1].unlearning.used == 2.0 and live[-1].unlearning.certified
    live.append(
        led.request(dp=None, removed=2, residual_bound=0.01, residual_mode="set")
    )
    s = live[-1]
    assert s.state == cur.CertifiedRemovalState(0.01, 8) and s.total_removed == 8
    entries = L.read_ledger(led.path).entries
    assert [e.get("residual_mode") for e in entries[2:]] == [
        None,
        None,
        None,
        "set",
        None,
        "set",
        "set",
    ]
    for i, summary in enumerate(live, start=2):
        assert L.replay(entries[:i]) == summary
    assert L.replay_file(led.path)[0] == s == L.Ledger.open(led.path).summary
    assert L.summary_to_dict(s)["state"] == {"residual": 0.01, "num_removed": 8}


@pytest.mark.parametrize(
    "currency, event",
    [
        ("sekhari", {"kind": "retrain", "dp": None, "residual_bound": 0.1}),
        (
            "dp_extractor",
            {
                "kind": "request",
                "dp": None,
                "residual_bound": 0.1,
                "residual_mode": "set",
            },
        ),
        ("dp_extractor", {"kind": "retrain", "dp": None, "residual_bound": 0.1}),
    ],
)
def test_cr_fields_belong_to_certified_removal_only(tmp_path, currency, event):
    led = make(tmp_path, currency)
    led.train(dp=None)
    before = open(led.path, "rb").read()
    with pytest.raises(ValueError, match="residual_"):
        led.append(event)
    assert open(led.path, "rb").read() == before


def test_langevin_refusal_suggests_steps(tmp_path):
    led = make(tmp_path, "langevin")
    led.train(dp=None)
    led.request(dp=None, steps=1000)  # 0.2908
    led.request(dp=None, steps=1000)  # 0.4315
    e = _refuse(led, lambda: led.request(dp=None, steps=1000))  # 0.5090 > 0.5
    assert "steps >=" in str(e)
    k = int(str(e).split("steps >= ")[1].split(";")[0].split(".")[0])
    s = led.request(dp=None, steps=k)
    assert s.unlearning.certified and s.unlearning.epsilon <= 0.5


def test_dp_budget_refusal_is_not_restored_by_retrain(tmp_path):
    led = make(tmp_path, "sekhari", dp_epsilon=3.0, dp_delta=1e-5)
    led.train(dp=[G(4.0)])
    for _ in range(6):
        s = (
            led.request(dp=[G(4.0)])
            if led.summary.unlearning.remaining >= 1
            else led.retrain(dp=[G(4.0)])
        )
    e = _refuse(led, lambda: led.retrain(dp=[G(1.0)]))
    assert e.ledger == "D" and e.restored_by_retrain is None
    assert "never resets" in str(e)
    assert e.remaining == pytest.approx(3.0 - s.dp_epsilon)


def test_sekhari_capacity_refusal(tmp_path):
    led = make(tmp_path, "sekhari")
    led.train(dp=None)
    led.request(dp=None, removed=2)
    e = _refuse(led, lambda: led.request(dp=None, removed=2))
    assert e.remaining == 1 and e.restored_by_retrain == 3


@pytest.mark.parametrize(
    "event, match",
    [
        ({"kind": "request", "dp": None, "residual_bound": 0.1, "stepz": 3}, "stepz"),
        ({"kind": "request", "dp": None}, "residual_bound"),
        ({"kind": "request", "dp": None, "residual_bound": -1.0}, "residual_bound"),
        (
            {
                "kind": "request",
                "dp": None,
                "residual_bound": 0.1,
                "residual_mode": "sum",
            },
            "residual_mode",
        ),
        (
            {
                "kind": "request",
                "dp": None,
                "residual_bound": 0.1,
                "residual_mode": None,
            },
            "residual_mode",
        ),
        ({"kind": "request", "dp": None, "residual_bound": "abc"}, "residual_bound"),
        ({"kind": "retrain", "dp": None, "residual_bound": -1.0}, "residual_bound"),
        (
            {"kind": "retrain", "dp": None, "residual_bound": float("inf")},
            "residual_bound",
        ),
        ({"kind": "retrain", "dp": None, "residual_bound": [0.1]}, "residual_bound"),
        ({"kind": "train", "dp": None}, "retrain"),
        ({"kind": "delete", "dp": None}, "kind"),
        ({"kind": "retrain", "dp": [{"mechanism": "gaussian"}]}, "noise_multiplier"),
        (
            {
                "kind": "retrain",
                "dp": [{"mechanism": "gaussian", "noise_multiplier": -1}],
            },
            "sigma",
        ),
        ({"kind": "retrain", "dp": []}, "dp"),
        ({"kind": "retrain", "dp": None, "note": float("nan")}, "NaN"),
    ],
)
def test_malformed_events_raise_and_leave_file_unchanged(tmp_path, event, match):
    led = make(tmp_path)
    led.train(dp=None)
    before = open(led.path, "rb").read()
    with pytest.raises(ValueError, match=match):
        led.append(event)
    assert open(led.path, "rb").read() == before


def test_request_before_train_and_existing_file(tmp_path):
    led = make(tmp_path)
    with pytest.raises(ValueError, match="before any 'train'"):
        led.request(dp=None, residual_bound=0.1)
    with pytest.raises(FileExistsError):
        make(tmp_path)
    with pytest.raises(ValueError, match="currency"):
        L.Ledger.create(
            tmp_path / "x.jsonl",
            currency="bogus",
            params={},
            target_epsilon=1.0,
            target_delta=1e-5,
        )
    with pytest.raises(ValueError, match="target_delta|delta"):
        L.Ledger.create(
            tmp_path / "y.jsonl",
            currency="sekhari",
            params=dict(capacity=1),
            target_epsilon=1.0,
            target_delta=1.0,
        )
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "y.jsonl").exists()


def _sample_ledger(tmp_path):
    led = make(tmp_path, "dp_extractor")
    led.train(dp=[G(30.0, count=3)], note="first")
    led.request(dp=[G(50.0)], residual_bound=0.3)
    led.request(
        dp=[L.subsampled_gaussian_release(0.02, 1.5, 20)], residual_bound=0.5, removed=2
    )
    led.retrain(dp=[G(30.0)], scope="head")
    led.request(dp=None, residual_bound=0.1)
    led.retrain(dp=[G(30.0)], scope="full")
    return led


def test_truncation_at_every_offset_recovers_complete_entries(tmp_path):
    led = _sample_ledger(tmp_path)
    data = open(led.path, "rb").read()
    ends = [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    full = L.read_ledger(led.path).entries
    cut = tmp_path / "cut.jsonl"
    for k in range(len(data) + 1):
        cut.write_bytes(data[:k])
        got = L.read_ledger(cut)
        n_complete = sum(e <= k for e in ends)
        assert got.entries == full[:n_complete]
        last_end = max([e for e in ends if e <= k], default=0)
        assert got.size == last_end
        if k == last_end:
            assert got.torn_tail is None
        else:
            assert got.torn_tail.offset == last_end
            assert got.torn_tail.length == k - last_end
        if n_complete >= 1 and k % 7 == 0:  # replay a sample of the prefixes
            if got.torn_tail is None:
                summary, torn = L.replay_file(cut)
            else:
                with pytest.raises(L.TornTailError) as ei:
                    L.replay_file(cut)
                assert ei.value.offset == last_end and str(last_end) in str(ei.value)
                summary, torn = L.replay_file(cut, allow_torn=True)
                assert torn == got.torn_tail
            assert summary == L.replay(full[:n_complete])


def test_torn_tail_blocks_append_until_repaired(tmp_path):
    led = _sample_ledger(tmp_path)
    data = open(led.path, "rb").read()
    torn_at = len(data) - 17  # inside the last line
    with open(led.path, "r+b") as f:
        f.truncate(torn_at)
    with pytest.raises(L.TornTailError) as ei:
        L.Ledger.open(led.path)
    start = data.rfind(b"\n", 0, torn_at) + 1
    assert ei.value.offset == start and ei.value.num_complete == 6
    assert isinstance(ei.value, ValueError)
    # The live object notices the changed file and refuses too (file unchanged).
    before = open(led.path, "rb").read()
    with pytest.raises(L.TornTailError):
        led.request(dp=None, residual_bound=0.1)
    assert open(led.path, "rb").read() == before
    tail = L.repair_torn_tail(led.path)
    assert tail.offset == start
    assert open(f"{led.path}.torn-{start}", "rb").read() == data[start:torn_at]
    assert open(led.path, "rb").read() == data[:start]
    assert L.repair_torn_tail(led.path) is None
    led2 = L.Ledger.open(led.path)
    s = led2.retrain(dp=[G(30.0)], scope="full")
    assert s.num_entries == 6 and L.replay_file(led.path)[0] == s


def test_corrupt_complete_line_is_an_error(tmp_path):
    led = _sample_ledger(tmp_path)
    lines = open(led.path, "rb").read().split(b"\n")
    lines[2] = b'{"kind": "request", oops'
    (tmp_path / "bad.jsonl").write_bytes(b"\n".join(lines))
    with pytest.raises(L.LedgerCorruptError, match="line 3"):
        L.read_ledger(tmp_path / "bad.jsonl")
    # A missing line is caught by the hash chain (at the line after it) ...
    lines = open(led.path, "rb").read().split(b"\n")
    del lines[3]
    (tmp_path / "gap.jsonl").write_bytes(b"\n".join(lines))
    with pytest.raises(L.LedgerCorruptError, match="line 4 .*hash chain"):
        L.replay_file(tmp_path / "gap.jsonl")
    # ... and, in a ledger written before the chain, by the sequence numbers.
    entries = [
        {k: v for k, v in e.items() if k not in ("prev", "integrity")}
        for e in L.read_ledger(led.path).entries
    ]
    del entries[3]
    (tmp_path / "gap0.jsonl").write_bytes(b"".join(map(L.encode_entry, entries)))
    with pytest.raises(L.LedgerCorruptError, match="seq"):
        L.replay_file(tmp_path / "gap0.jsonl")
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(L.LedgerCorruptError, match="configuration"):
        L.Ledger.open(tmp_path / "empty.jsonl")


def test_two_writers_stay_consistent(tmp_path):
    a = make(tmp_path)
    a.train(dp=[G(30.0)])
    b = L.Ledger.open(a.path)
    a.request(dp=None, residual_bound=0.3)
    s = b.request(dp=None, residual_bound=0.3)  # b re-reads a's entry first
    assert s.num_entries == 3 and s.state.residual == pytest.approx(0.6)
    s = a.request(dp=None, residual_bound=0.3)
    assert s.num_entries == 4
    got = L.read_ledger(a.path).entries
    assert [e["seq"] for e in got[1:]] == [1, 2, 3, 4]
    assert L.replay(got) == s


_CHILD = textwrap.dedent("""
    import sys
    from dpunlearn.accounting import ledger as L
    led = L.Ledger.open(sys.argv[1])
    note = "x" * int(sys.argv[2])
    print("ready", flush=True)
    while True:
        led.request(dp=[L.gaussian_release(1e6)], residual_bound=1e-12, note=note)
""")


def test_killed_writer_loses_no_complete_entry(tmp_path):
    led = make(tmp_path, params=dict(rule="paper", sigma=10.0, method="analytic"))
    led.train(dp=[G(30.0)])
    for note_size, wait_lines in ((10, 40), (200_000, 8)):
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(led.path), str(note_size)],
            stdout=subprocess.PIPE,
        )
        try:
            assert proc.stdout.readline().strip() == b"ready"
            start = L.read_ledger(led.path).size
            deadline = time.time() + 20
            while time.time() < deadline:
                with open(led.path, "rb") as f:
                    if f.read().count(b"\n") >= wait_lines + 2:
                        break
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
            proc.stdout.close()
        got = L.read_ledger(led.path)
        assert got.size >= start
        seqs = [e["seq"] for e in got.entries[1:]]
        assert seqs == list(range(1, len(seqs) + 1))
        summary, torn = L.replay_file(led.path, allow_torn=True)
        assert summary.num_entries == len(seqs)
        if torn is not None:  # a write was cut: report, set aside, continue
            assert torn.offset == got.size
            L.repair_torn_tail(led.path)
        led = L.Ledger.open(led.path)
    assert led.summary.num_requests >= 40


def test_summary_to_dict_is_json(tmp_path):
    led = _sample_ledger(tmp_path)
    d = L.summary_to_dict(led.summary)
    back = json.loads(json.dumps(d, allow_nan=False))
    assert back["currency"] == "dp_extractor" and back["dp"]["epsilon"] == "inf"
    assert back["dp"]["non_private_entries"] == [5]
    assert back["state"]["num_removed"] == 0  # full retrain reset the group


def test_d2d_refusal_is_not_fixed_by_retrain_and_batches_are_split(tmp_path):
    # sigma calibrated exactly for n = 1000: the second deletion (n = 999) fails.
    sigma = cur.d2d_sigma(
        1.0,
        1e-5,
        lipschitz=1.0,
        strong_convexity=0.1,
        smoothness=0.35,
        n=1000,
        iterations=2,
    ) * (1 + 1e-9)
    led = make(tmp_path, "d2d", params=dict(CONFIGS["d2d"]["params"], sigma=sigma))
    led.train(dp=None)
    # A request of 2 rows is 2 single-point updates: the second one (n = 999)
    # is past σ's calibration, so it is refused like two separate requests.
    with pytest.raises(L.BudgetExceededError):
        led.request(dp=None, removed=2)
    led.request(dp=None)
    e = _refuse(led, lambda: led.request(dp=None))
    assert "even a full retrain would not" in str(e) and e.restored_by_retrain is None


def test_numpy_values_are_stored_as_plain_json(tmp_path):
    led = L.Ledger.create(
        tmp_path / "np.jsonl",
        currency="certified_removal",
        params=dict(rule="paper", sigma=np.float32(10.0)),
        target_epsilon=1.0,
        target_delta=1e-4,
    )
    led.train(
        dp=[
            {
                "mechanism": "gaussian",
                "noise_multiplier": np.float64(4.0),
                "count": np.int64(2),
            }
        ]
    )
    s = led.request(dp=None, residual_bound=np.float32(0.25), removed=np.int64(1))
    assert s.state.residual == pytest.approx(0.25)
    assert L.replay_file(led.path)[0] == s


# ---------------------------------------------------------------------------
# errors module and portable locking (issue #6 item 7)
# ---------------------------------------------------------------------------

_NO_FCNTL = textwrap.dedent("""
    import errno, json, sys
    sys.modules["fcntl"] = None  # as on Windows: `import fcntl` fails
    import dpunlearn, dpunlearn.cli, dpunlearn.errors
    from dpunlearn.accounting import ledger as L
    out = {"same_error": L.BudgetExceededError is dpunlearn.errors.BudgetExceededError}
    s, torn = L.replay_file(sys.argv[1])
    out["entries"] = s.num_entries
    try:
        L.Ledger.open(sys.argv[1]).request(dp=None, residual_bound=0.1)
    except OSError as e:
        out["append_errno"] = errno.errorcode[e.errno]
    print(json.dumps(out))
""")


def test_import_and_replay_work_without_fcntl_and_appends_refuse(tmp_path):
    led = make(tmp_path)
    led.train(dp=[G(30.0)])
    before = open(led.path, "rb").read()
    p = subprocess.run(
        [sys.executable, "-c", _NO_FCNTL, str(led.path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out == {"same_error": True, "entries": 1, "append_errno": "ENOLCK"}
    assert open(led.path, "rb").read() == before  # no unlocked append happened


def test_error_types_keep_their_ledger_import_path():
    from dpunlearn import errors

    names = (
        "LedgerError",
        "LedgerCorruptError",
        "TornTailError",
        "LedgerTamperedError",
        "BudgetExceededError",
    )
    for name in names:
        assert getattr(L, name) is getattr(errors, name)
        assert issubclass(getattr(errors, name), ValueError)
    assert issubclass(errors.LedgerTamperedError, errors.LedgerCorruptError)
    assert issubclass(errors.BudgetExceededError, errors.LedgerError)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX flock")
def test_append_waits_for_the_exclusive_lock(tmp_path):
    import fcntl
    import threading

    led = make(tmp_path)
    led.train(dp=[G(30.0)])
    before = open(led.path, "rb").read()
    done = []
    with open(led.path, "rb") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)  # another process's append, say
        t = threading.Thread(
            target=lambda: done.append(led.request(dp=None, residual_bound=0.1))
        )
        t.start()
        t.join(0.5)
        assert t.is_alive() and not done  # blocked on the lock ...
        assert open(led.path, "rb").read() == before  # ... before writing
    t.join(10)  # closing `holder` released the lock
    assert done and done[0].num_entries == 2
    assert L.replay_file(led.path)[0] == done[0]


# ---------------------------------------------------------------------------
# hostile files: bounds, non-regular files, configuration (issue #7 item 6)
# ---------------------------------------------------------------------------


def _legacy_file(tmp_path, *lines, name="legacy.jsonl", **config):
    """A ledger written line by line (no integrity fields, as before the hash
    chain): a CR config, a train entry, then ``lines`` (dicts or raw bytes)."""
    cfg = L.make_config(
        currency="certified_removal", **dict(CONFIGS["certified_removal"], **config)
    )
    data = [
        L.encode_entry(cfg),
        L.encode_entry({"kind": "train", "seq": 1, "dp": None}),
    ]
    for line in lines:
        data.append(line + b"\n" if isinstance(line, bytes) else L.encode_entry(line))
    path = tmp_path / name
    path.write_bytes(b"".join(data))
    return path


_REQ = b'{"kind":"request","seq":2,"dp":null,"residual_bound":0.1,'


def test_deep_nesting_is_a_corrupt_line_not_a_recursion_error(tmp_path):
    deep = _REQ + b'"note":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path = _legacy_file(tmp_path, deep)
    with pytest.raises(L.LedgerCorruptError, match=r"line 3 .*nests JSON 100001 deep"):
        L.replay_file(path)
    # The bound itself: MAX_DEPTH levels replay, one more does not.
    d = L.MAX_DEPTH - 1  # the entry object is the first level
    ok = _REQ + b'"note":' + b"[" * d + b"]" * d + b"}"
    assert (
        L.replay_file(_legacy_file(tmp_path, ok, name="ok.jsonl"))[0].num_entries == 2
    )
    over = _REQ + b'"note":' + b"[" * (d + 1) + b"]" * (d + 1) + b"}"
    with pytest.raises(L.LedgerCorruptError, match="nests JSON"):
        L.replay_file(_legacy_file(tmp_path, over, name="over.jsonl"))
    # Brackets inside strings (with escaped quotes and backslashes) are text.
    led = make(tmp_path)
    led.train(dp=None)
    note = 'q"\\' + "[" * 1000 + '"\\"' + "{" * 50
    s = led.request(dp=None, residual_bound=0.1, note=note)
    assert L.replay_file(led.path)[0] == s
    assert L.read_ledger(led.path).entries[-1]["note"] == note


def test_nesting_scan_is_linear_on_hostile_lines(tmp_path):
    # Many brackets (so the exact scan runs) then ~1M escaped quotes in an
    # unterminated string: a backtracking string regex would take hours.
    hostile = _REQ + b'"note":' + b"[" * 40 + b'"' + b'\\"' * 1_000_000
    path = _legacy_file(tmp_path, hostile)
    t0 = time.perf_counter()
    with pytest.raises(L.LedgerCorruptError, match="line 3 .*nests JSON 41 deep"):
        L.read_ledger(path)
    assert time.perf_counter() - t0 < 20


@pytest.mark.parametrize(
    "value, match",
    [
        (b"1" * 5000, "5000 digits"),
        (b"-" + b"9" * 21, "21 digits"),
        (b"1e999", "overflows float64"),
        (b"NaN", "NaN is not JSON"),
        (b"-Infinity", "Infinity is not JSON"),
    ],
)
def test_huge_and_non_finite_numbers_are_corrupt_lines(tmp_path, value, match):
    path = _legacy_file(tmp_path, _REQ + b'"removed":' + value + b"}")
    with pytest.raises(L.LedgerCorruptError, match=f"line 3 .*{match}"):
        L.replay_file(path)


def test_line_length_is_bounded_on_read_and_write(tmp_path, monkeypatch):
    monkeypatch.setattr(L, "MAX_LINE_BYTES", 2000)
    led = make(tmp_path)
    led.train(dp=None)
    before = open(led.path, "rb").read()
    with pytest.raises(ValueError, match="MAX_LINE_BYTES"):
        led.request(dp=None, residual_bound=0.1, note="x" * 3000)
    assert open(led.path, "rb").read() == before
    assert led.request(dp=None, residual_bound=0.1, note="x" * 1000).num_entries == 2
    long = _REQ + b'"note":"' + b"x" * 3000 + b'"}'
    with pytest.raises(L.LedgerCorruptError, match=r"line 3 .*3\d{3} bytes long"):
        L.read_ledger(_legacy_file(tmp_path, long))
    # An unterminated run longer than any line a writer writes is not a torn
    # append: it is refused as soon as the bound is crossed.
    path = _legacy_file(tmp_path, name="run.jsonl")
    with open(path, "ab") as f:
        f.write(b"x" * 5000)
    with pytest.raises(L.LedgerCorruptError, match="no newline within 2000 bytes"):
        L.read_ledger(path)


def test_non_regular_files_are_refused_before_reading(tmp_path):
    with pytest.raises(IsADirectoryError):
        L.read_ledger(tmp_path)
    if not os.path.exists("/dev/zero"):
        return
    link = tmp_path / "zero.jsonl"
    link.symlink_to("/dev/zero")
    for path in ("/dev/zero", link):
        for call in (L.read_ledger, L.replay_file, L.Ledger.open, L.repair_torn_tail):
            with pytest.raises(L.LedgerError, match="not a regular file"):
                call(path)


_READ_FIFO = textwrap.dedent("""
    import sys
    from dpunlearn.accounting import ledger as L
    try:
        L.replay_file(sys.argv[1])
    except L.LedgerError as e:
        print(e)
""")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "ledger.fifo"
    os.mkfifo(fifo)
    # In a child with a timeout: a reader that opened the FIFO would block.
    p = subprocess.run(
        [sys.executable, "-c", _READ_FIFO, str(fifo)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "not a regular file (a FIFO)" in p.stdout


@pytest.mark.parametrize(
    "old, new, match",
    [
        (b'"dp_epsilon":8.0', b'"dp_epsilon":-1', r"dp_epsilon=-1.0 > 0"),
        (b'"dp_epsilon":8.0', b'"dp_epsilon":0', r"dp_epsilon=0.0 > 0"),
        (b'"dp_epsilon":8.0', b'"dp_epsilon":NaN', "NaN is not JSON"),
        (b'"dp_epsilon":8.0', b'"dp_epsilon":"8"', "dp_epsilon to be a number"),
        (b'"dp_delta":1e-05', b'"dp_delta":1.5', r"dp_delta=1.5 in the open"),
        (b'"epsilon":1.0}', b'"epsilon":-1.0}', r"target_epsilon=-1.0 > 0"),
        (b'"delta":0.0001,', b'"delta":0,', r"target_delta=0.0 in the open"),
        (b'"sigma":10.0', b'"sigma":-10.0', r"sigma=-10.0 > 0"),
        (b'"target":{', b'"target":[],"x":{', "target"),
    ],
)
def test_invalid_configuration_is_refused_on_replay(tmp_path, old, new, match):
    path = _legacy_file(tmp_path, dp_epsilon=8.0, dp_delta=1e-5)
    data = path.read_bytes()
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, new))
    with pytest.raises(L.LedgerCorruptError, match=match):
        L.replay_file(path)
    with pytest.raises(L.LedgerCorruptError, match=match):
        L.Ledger.open(path)


def test_parse_config_validates_values_given_in_memory():
    cfg = L.make_config(
        currency="sekhari",
        params=dict(capacity=3),
        target_epsilon=1.0,
        target_delta=1e-5,
        dp_epsilon=2.0,
    )
    for bad in (float("nan"), -1.0, float("inf"), True):
        raw = dict(cfg, budget=dict(cfg["budget"], dp_epsilon=bad))
        with pytest.raises(L.LedgerCorruptError, match="dp_epsilon"):
            L.parse_config(raw)
        with pytest.raises(L.LedgerCorruptError, match="dp_epsilon"):
            L.replay([raw])
    assert L.parse_config(cfg).dp_epsilon == 2.0


# ---------------------------------------------------------------------------
# readers during appends (issue #7 item 6)
# ---------------------------------------------------------------------------


def _in_thread(fn):
    """Starts ``fn`` in a thread; returns (thread, box) with box = [result or
    exception] once it finished."""
    import threading

    box = []

    def target():
        try:
            box.append(fn())
        except BaseException as e:  # reported by the test
            box.append(e)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX flock")
def test_reader_waits_for_an_append_in_progress(tmp_path):
    import fcntl

    line = L.encode_entry(
        {"kind": "request", "seq": 2, "dp": None, "residual_bound": 0.1}
    )
    path = _legacy_file(tmp_path)
    with open(path, "ab", buffering=0) as w:
        fcntl.flock(w, fcntl.LOCK_EX)  # what Ledger.append holds while writing
        w.write(line[:20])  # half-written: a lock-free reader sees a torn tail
        t, box = _in_thread(lambda: L.replay_file(path))
        t.join(0.5)
        assert t.is_alive() and not box  # the reader waits for the writer ...
        w.write(line[20:])
    t.join(20)  # ... which released the lock by closing
    assert box and not isinstance(box[0], BaseException), box
    summary, torn = box[0]
    assert torn is None and summary.num_entries == 2
    # A writer that stops mid-append makes the reader give up, not hang.
    with open(path, "ab", buffering=0) as w:
        fcntl.flock(w, fcntl.LOCK_EX)
        w.write(line[:20])
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="held the ledger's lock"):
            L.read_ledger(path, lock_timeout=0.3)
        assert 0.3 <= time.monotonic() - t0 < 5


_APPENDER = textwrap.dedent("""
    import os, sys, time
    from dpunlearn.accounting import ledger as L
    if sys.argv[3] == "slow":  # each append writes half its line, pauses, ends it
        def _write_all(fd, data):
            half = len(data) // 2
            os.write(fd, data[:half])
            time.sleep(0.002)
            os.write(fd, data[half:])
        L._write_all = _write_all
    led = L.Ledger.open(sys.argv[1])
    note = "x" * 3000  # ~3 KB lines: most appends cross a page boundary
    print("ready", flush=True)
    for _ in range(int(sys.argv[2])):
        led.request(dp=[L.gaussian_release(1e6)], residual_bound=1e-12, note=note)
""")


def _reads_during_appends(path, writer, appends, max_reads=400):
    """Replays ``path`` while another process appends ~3 KB lines; returns
    (reads, false torn-tail reports, reads that saw new entries)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _APPENDER, str(path), str(appends), writer],
        stdout=subprocess.PIPE,
    )
    reads = torn = grew = 0
    last = -1
    try:
        assert proc.stdout.readline().strip() == b"ready"
        while reads < max_reads and proc.poll() is None:
            reads += 1
            try:
                s, _ = L.replay_file(path)
            except L.TornTailError:
                torn += 1
                continue
            grew += s.num_entries > last
            last = s.num_entries
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    return reads, torn, grew


@pytest.mark.parametrize("locks", ["flock", "unavailable"])
@pytest.mark.parametrize("writer", ["fast", "slow"])
def test_no_false_torn_tail_while_a_writer_appends(
    tmp_path, monkeypatch, locks, writer
):
    # "fast": real appends of ~3 KB lines, where readers that did not check
    # the lock reported a torn tail about once in 200 reads; "slow": appends
    # that pause mid-line (as a preempted or slow writer does), where they did
    # in about half the reads.
    if locks == "unavailable":  # as without fcntl: re-read a growing tail
        monkeypatch.setattr(L._locking, "try_shared", lambda fd: None)
    elif sys.platform == "win32":
        pytest.skip("POSIX flock")
    resolved = []
    resolve = L._resolve_torn
    monkeypatch.setattr(
        L, "_resolve_torn", lambda *a: resolved.append(1) or resolve(*a)
    )
    led = make(tmp_path, params=dict(rule="paper", sigma=10.0, method="analytic"))
    led.train(dp=None)
    appends = 1500 if writer == "fast" else 300
    reads, torn, grew = _reads_during_appends(led.path, writer, appends)
    if locks == "flock":  # the lock makes it exact
        assert torn == 0, f"{torn} false torn tails in {reads} reads"
    else:  # a growth heuristic only: a writer descheduled > 50 ms mid-line on
        # a loaded machine can still look torn (appends need flock anyway)
        assert torn <= max(1, reads // 50), f"{torn} false torn tails in {reads} reads"
    assert grew >= 2  # the reads did overlap the appends (timing-dependent count)
    if writer == "slow":  # the race did happen, and was resolved
        assert resolved, reads
    assert L.replay_file(led.path, allow_torn=True)[1] is None


def test_without_locks_a_real_torn_tail_is_still_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(L._locking, "try_shared", lambda fd: None)
    led = _sample_ledger(tmp_path)
    with open(led.path, "r+b") as f:
        f.truncate(os.path.getsize(led.path) - 5)
    t0 = time.monotonic()
    with pytest.raises(L.TornTailError):
        L.replay_file(led.path)
    assert time.monotonic() - t0 < 2  # it stopped growing: reported promptly


# ---------------------------------------------------------------------------
# integrity: hash chain, pinned head, keyed MAC (issue #7 item 6)
# ---------------------------------------------------------------------------

KEY = b"k" * 32


def _lines(path):
    return open(path, "rb").read().split(b"\n")[:-1]


def _write_lines(path, lines):
    path.write_bytes(b"".join(x + b"\n" for x in lines))
    return path


def _rechain(lines):
    """What a forger without the key can do: recompute every 'prev' link
    (SHA-256 over the previous chain value and the line, as documented)."""
    import hashlib

    out, y = [], b""
    for i, line in enumerate(lines):
        if i:
            e = json.loads(line)
            e["prev"] = y.hex()
            line = L.encode_entry(e)[:-1]
        out.append(line)
        y = hashlib.sha256(y + line).digest()
    return out


def _edit(line, **changes):
    e = json.loads(line)
    e.update(changes)
    return L.encode_entry(e)[:-1]


def _cr_ledger(tmp_path, key=None, name="l.jsonl", requests=3):
    led = make(tmp_path, name=name, key=key)  # CR, sigma 10: budget 2.2803
    led.train(dp=[G(30.0)])
    for _ in range(requests):
        led.request(dp=None, residual_bound=0.4)
    return led


def test_chain_format_and_pin(tmp_path):
    led = _cr_ledger(tmp_path)
    lines = _lines(led.path)
    assert _rechain(lines) == lines  # every 'prev' is the documented value
    got = L.read_ledger(led.path)
    assert got.integrity.chain == "sha256" and got.integrity.mac == "none"
    assert got.integrity.unchained_entries == 0 and got.integrity.num_entries == 4
    assert got.integrity.pin == led.pin and led.pin.startswith("4:")
    assert got.entries[0]["integrity"] == {"chain": "sha256", "mac": None}
    # A pin stays valid while the ledger grows honestly.
    pin = led.pin
    led.retrain(dp=None)
    assert L.replay_file(led.path, expect_head=pin)[0] == led.summary
    assert L.replay_file(led.path, expect_head=pin.split(":")[1])[0] == led.summary
    assert L.Ledger.open(led.path, expect_head=led.pin).summary == led.summary


def test_edited_sigma_is_detected(tmp_path):
    # The example: sigma 10 -> 1000 raised the U budget 2.28 -> 228.
    led = _cr_ledger(tmp_path)
    pin = led.pin
    lines = _lines(led.path)
    lines[0] = lines[0].replace(b'"sigma":10.0', b'"sigma":1000.0')
    path = _write_lines(tmp_path / "sigma.jsonl", lines)
    with pytest.raises(L.LedgerTamperedError, match="line 2 .*hash chain") as ei:
        L.replay_file(path)
    assert ei.value.line == 2 and ei.value.offset == len(lines[0]) + 1
    # A forger who recomputes the whole chain passes the chain alone (a chain
    # has no secret), but not the pinned head ...
    _write_lines(path, _rechain(lines))
    assert L.replay_file(path)[0].unlearning.budget == pytest.approx(228.03, rel=1e-4)
    with pytest.raises(L.LedgerTamperedError, match="rewritten at or before entry 4"):
        L.replay_file(path, expect_head=pin)
    # ... nor the MAC of a keyed ledger.
    keyed = _cr_ledger(tmp_path, key=KEY, name="keyed.jsonl")
    lines = _lines(keyed.path)
    lines[0] = _edit(lines[0], params={"sigma": 1000.0, "method": "paper"})
    path = _write_lines(tmp_path / "keyed-sigma.jsonl", _rechain(lines))
    with pytest.raises(L.LedgerTamperedError, match="line 1 .*fails its MAC"):
        L.replay_file(path, key=KEY)


def test_zeroed_bound_is_detected(tmp_path):
    led = _cr_ledger(tmp_path, key=KEY)
    pin = led.pin
    lines = _lines(led.path)
    for k in (2, len(lines) - 1):  # a middle entry, and the last one
        bad = list(lines)
        bad[k] = bad[k].replace(b'"residual_bound":0.4', b'"residual_bound":0.0')
        assert bad[k] != lines[k]
        path = _write_lines(tmp_path / f"zero{k}.jsonl", bad)
        with pytest.raises(
            L.LedgerTamperedError, match=f"line {k + 1} .*fails its MAC"
        ):
            L.replay_file(path, key=KEY)
        if k < len(lines) - 1:  # the chain alone: the next line's link breaks
            with pytest.raises(L.LedgerTamperedError, match=f"line {k + 2} .*chain"):
                L.replay_file(path)
        else:  # nothing follows the last line: the pin covers it
            with pytest.raises(L.LedgerTamperedError, match="pinned"):
                L.replay_file(path, expect_head=pin)


def test_forged_retrain_is_detected(tmp_path):
    led = _cr_ledger(tmp_path, key=KEY)  # U budget nearly used: 1.2 of 2.28
    lines = _lines(led.path)
    fake_mac = "0" * 64  # a forger without the key can only guess
    retrain = {"kind": "retrain", "seq": 3, "dp": None, "mac": fake_mac}
    retrain = L.encode_entry(retrain)[:-1]
    renumbered = [_edit(x, seq=json.loads(x)["seq"] + 1) for x in lines[3:]]
    # Inserted in the middle as written by hand: no link.
    path = _write_lines(tmp_path / "a.jsonl", lines[:3] + [retrain] + renumbered)
    with pytest.raises(L.LedgerTamperedError, match="line 4 .*no hash-chain link"):
        L.replay_file(path)
    # With a correct link to the lines before it: the next line's link breaks.
    forged = _rechain(lines[:3] + [retrain])
    path = _write_lines(tmp_path / "b.jsonl", forged + renumbered)
    with pytest.raises(L.LedgerTamperedError, match="line 5 .*hash chain"):
        L.replay_file(path)
    # Appended at the end with the chain recomputed: only the MAC catches it.
    tail = {"kind": "retrain", "seq": 5, "dp": None, "mac": fake_mac}
    path = _write_lines(
        tmp_path / "c.jsonl", _rechain([*lines, L.encode_entry(tail)[:-1]])
    )
    assert L.replay_file(path)[0].num_retrains == 1  # chain-only: undetected
    with pytest.raises(L.LedgerTamperedError, match="line 6 .*fails its MAC"):
        L.replay_file(path, key=KEY)


def test_deleted_entries_are_detected(tmp_path):
    led = _cr_ledger(tmp_path)
    pin = led.pin
    lines = _lines(led.path)
    path = _write_lines(tmp_path / "mid.jsonl", lines[:2] + lines[3:])
    with pytest.raises(L.LedgerTamperedError, match="line 3 .*hash chain"):
        L.replay_file(path)
    # Deleting last lines leaves a valid chain; the pinned head catches it.
    path = _write_lines(tmp_path / "cut.jsonl", lines[:-2])
    assert L.replay_file(path)[0].num_entries == 2
    with pytest.raises(L.LedgerTamperedError, match="holds 2 entries .*entry 4"):
        L.replay_file(path, expect_head=pin)
    with pytest.raises(L.LedgerTamperedError, match="no line ends at the pinned"):
        L.replay_file(path, expect_head=pin.split(":")[1])
    with pytest.raises(L.LedgerTamperedError):
        L.Ledger.open(path, expect_head=pin)


def test_mac_key_handling(tmp_path):
    led = _cr_ledger(tmp_path, key=KEY)
    got = L.read_ledger(led.path, key=KEY)
    assert got.integrity.mac == "verified" and got.integrity.chain == "sha256"
    assert L.read_ledger(led.path).integrity.mac == "unverified"
    with pytest.raises(L.LedgerTamperedError, match="line 1 .*fails its MAC"):
        L.replay_file(led.path, key=b"w" * 32)
    with pytest.raises(ValueError, match="key="):  # appending needs the key
        L.Ledger.open(led.path)
    with pytest.raises(L.LedgerTamperedError, match="fails its MAC"):
        L.Ledger.open(led.path, key=b"w" * 32)
    s = L.Ledger.open(led.path, key=KEY).request(dp=None, residual_bound=0.1)
    assert L.replay_file(led.path, key=KEY)[0] == s
    # A MAC stripped from a line: refused even without the key.
    lines = _lines(led.path)
    entry = json.loads(lines[2])
    del entry["mac"]
    lines[2] = L.encode_entry(entry)[:-1]
    path = _write_lines(tmp_path / "strip.jsonl", lines)
    with pytest.raises(L.LedgerTamperedError, match="line 3 .*declares HMAC"):
        L.replay_file(path)
    # A key for a ledger created without one: refused, not silently ignored.
    plain = _cr_ledger(tmp_path, name="plain.jsonl")
    with pytest.raises(L.LedgerTamperedError, match="line 1 .*no MAC although a key"):
        L.replay_file(plain.path, key=KEY)
    for bad, match in ((b"short", "at least 32 bytes"), ("k" * 40, "bytes")):
        with pytest.raises(ValueError, match=match):
            L.replay_file(plain.path, key=bad)
        with pytest.raises(ValueError, match=match):
            make(tmp_path, name="bad-key.jsonl", key=bad)
    assert not (tmp_path / "bad-key.jsonl").exists()
    for bad in ("4:abc", "x:" + "0" * 64, "0" * 63, 5):
        with pytest.raises(ValueError, match="expect_head"):
            L.replay_file(plain.path, expect_head=bad)


def test_two_keyed_writers_keep_one_chain(tmp_path):
    a = _cr_ledger(tmp_path, key=KEY, requests=0)
    b = L.Ledger.open(a.path, key=KEY)
    a.request(dp=None, residual_bound=0.3)
    s = b.request(dp=None, residual_bound=0.3)  # b re-reads a's entry first
    assert s.num_entries == 3 and b.pin == L.read_ledger(a.path).integrity.pin
    a.request(dp=None, residual_bound=0.3)
    got = L.read_ledger(a.path, key=KEY)
    assert got.integrity.num_entries == 4 and got.integrity.pin == a.pin


def test_legacy_ledger_is_reported_unchained_and_chained_from_its_next_append(
    tmp_path,
):
    path = tmp_path / "old.jsonl"
    path.write_bytes(_V1_FILE)
    got = L.read_ledger(path)
    assert got.integrity.chain == "none" and got.integrity.unchained_entries == 2
    assert got.integrity.mac == "none" and got.integrity.pin.startswith("2:")
    led = L.Ledger.open(path)
    led.request(dp=[G(4.0)])
    got = L.read_ledger(path)
    assert got.integrity.chain == "sha256" and got.integrity.unchained_entries == 2
    # The first chained entry's link covers the lines written before it.
    lines = _lines(path)
    lines[1] = lines[1].replace(b'"noise_multiplier":4.0', b'"noise_multiplier":40.0')
    with pytest.raises(L.LedgerTamperedError, match="line 4 .*hash chain"):
        L.replay_file(_write_lines(tmp_path / "edit.jsonl", lines))
    # Once chained, an entry without a link is refused.
    unlinked = L.encode_entry({"kind": "request", "seq": 4, "dp": None})[:-1]
    with pytest.raises(L.LedgerTamperedError, match="line 5 .*no hash-chain link"):
        L.replay_file(_write_lines(tmp_path / "add.jsonl", _lines(path) + [unlinked]))


def test_chained_ledger_refuses_an_unlinked_entry_and_unknown_integrity(tmp_path):
    led = _cr_ledger(tmp_path, requests=0)
    lines = _lines(led.path)
    unlinked = L.encode_entry(
        {"kind": "request", "seq": 2, "dp": None, "residual_bound": 0.1}
    )[:-1]
    path = _write_lines(tmp_path / "add.jsonl", lines + [unlinked])
    with pytest.raises(
        L.LedgerTamperedError, match="line 3 .*no hash-chain link"
    ) as ei:
        L.replay_file(path)
    assert ei.value.offset == sum(len(x) + 1 for x in lines)
    lines[0] = _edit(lines[0], integrity={"chain": "md5", "mac": None})
    with pytest.raises(L.LedgerCorruptError, match="Unsupported ledger integrity"):
        L.read_ledger(_write_lines(tmp_path / "md5.jsonl", lines))
