"""serve(): apply a request, record its charge, retrain when the ledger refuses;
and the sound certified-removal currency of the ledger."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from dpunlearn import methods, retrain_schedule, serve
from dpunlearn.accounting import currencies as cur
from dpunlearn.accounting import ledger as L


def data(n=40, d=5, seed=0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, d)).astype("f4")
    X /= 2 * np.linalg.norm(X, axis=1, keepdims=True)
    return methods.Data(X, np.where(X[:, 0] > 0, 1.0, -1.0).astype("f4"))


def schedule_ledger(path, target, **kw):
    cfg = cur.RetrainScheduleConfig.from_target(target)
    params = {
        "rule": "schedule",
        "num_shadows": cfg.num_shadows,
        "delta_noise": cfg.delta_noise,
        "delta_schedule": cfg.delta_schedule,
        "confidence": cfg.confidence,
    }
    return L.Ledger.create(
        path,
        currency="certified_removal",
        params=params,
        target_epsilon=target.epsilon,
        target_delta=target.delta,
        **kw,
    )


def test_schedule_currency_refuses_past_delta_prime(tmp_path):
    target = retrain_schedule.make_target(1.0, 1e-2, 2000)
    led = schedule_ledger(tmp_path / "l.jsonl", target)
    s = led.train(dp=None, shadows_exceeded=0)
    assert s.unlearning.certified and s.unlearning.epsilon == 1.0
    s = led.request(dp=None, shadows_exceeded=0)
    assert s.unlearning.certified
    # One mark out of 2000 already lifts the bound (at confidence 1 − 1e-3)
    # from 3.45e-3 to 4.6e-3 > δ' = 4e-3.
    before = (tmp_path / "l.jsonl").read_bytes()
    # 20 of 2000 marked: the Clopper-Pearson bound is far above δ' = 4e-3.
    with pytest.raises(L.BudgetExceededError, match="exceed_probability"):
        led.request(dp=None, shadows_exceeded=1)
    assert (tmp_path / "l.jsonl").read_bytes() == before
    # Marks never disappear before a retrain.
    config = _lines(tmp_path / "l.jsonl")[0]
    history = [config, {"kind": "train", "dp": None, "shadows_exceeded": 0},
               {"kind": "request", "dp": None, "shadows_exceeded": 3}]
    assert not L.replay(history).unlearning.certified  # replay reports, never refuses
    with pytest.raises(ValueError, match="shadows_exceeded"):
        L.replay([*history, {"kind": "request", "dp": None, "shadows_exceeded": 2}])
    s = led.retrain(dp=None, shadows_exceeded=0)
    assert s.unlearning.certified and s.num_retrains == 1
    assert L.replay_file(tmp_path / "l.jsonl")[0] == s


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_new_ledgers_need_an_explicit_paper_rule(tmp_path):
    with pytest.raises(ValueError, match="rule='paper'"):
        L.Ledger.create(
            tmp_path / "a.jsonl",
            currency="certified_removal",
            params={"sigma": 10.0},
            target_epsilon=1.0,
            target_delta=1e-4,
        )
    led = L.Ledger.create(
        tmp_path / "b.jsonl",
        currency="certified_removal",
        params={"rule": "paper", "sigma": 10.0},
        target_epsilon=1.0,
        target_delta=1e-4,
    )
    # One default everywhere: the analytic budget, written into the file.
    assert led.setup.config.budget == pytest.approx(3.139, abs=1e-3)
    config = json.loads((tmp_path / "b.jsonl").read_text().splitlines()[0])
    assert config["params"]["method"] == "analytic"


def test_legacy_ledger_replays_as_written():
    # A configuration from before the schedule: no rule, no method -> the
    # paper's budget of that time (2.28), not today's default.
    raw = {
        "kind": "config",
        "format": L.FORMAT,
        "version": L.VERSION,
        "currency": "certified_removal",
        "params": {"sigma": 10.0},
        "target": {"epsilon": 1.0, "delta": 1e-4},
        "budget": {"dp_epsilon": None, "dp_delta": 1e-4, "residual_budget": 2.28},
    }
    s = L.replay([raw, {"kind": "train", "dp": None}, {"kind": "request", "dp": None, "residual_bound": 0.5}])
    assert s.unlearning.budget == pytest.approx(2.2804, abs=1e-4)


def test_serve_records_and_retrains_on_refusal(tmp_path):
    d = data()
    # ε so small that a few requests mark shadows: the ledger refuses, and
    # serve() retrains on the remaining rows with a fresh key.
    target = retrain_schedule.make_target(0.004, 1e-2, 2000)
    method = methods.certified_removal(
        lam=0.1, sigma=1.0, epsilon=target.epsilon, delta=target.delta, num_shadows=2000
    )
    led = schedule_ledger(tmp_path / "l.jsonl", target)
    state, charge = method.train(jax.random.key(0), d, None)
    s = serve.record_training(led, charge)
    assert s.unlearning.certified
    retrains = 0
    for i in range(12):
        res = serve.serve(
            method, state, np.array([i]), d, key=jax.random.fold_in(jax.random.key(1), i), ledger=led
        )
        state = res.state
        retrains += res.retrained
        assert not bool(np.asarray(state.mask)[i])  # served either way
        assert res.summary.unlearning.certified  # every release is certified
        if res.retrained:
            assert "refused" in res.refusal
    assert retrains >= 1
    replayed, _ = L.replay_file(tmp_path / "l.jsonl")
    assert replayed.num_retrains == retrains and replayed.total_removed == 12 - retrains


def test_serve_without_ledger_and_bad_requests():
    d = data()
    method = methods.certified_removal(lam=0.1, sigma=1.0, epsilon=1.0, delta=1e-2, num_shadows=0)
    state, _ = method.train(jax.random.key(0), d, None)
    res = serve.serve(method, state, np.array([3]), d, key=jax.random.key(1))
    assert res.summary is None and not res.retrained
    with pytest.raises(ValueError, match="already removed"):
        serve.serve(method, res.state, np.array([3]), d, key=jax.random.key(2))


def test_serve_langevin_records_steps_and_retrains_when_the_schedule_is_spent(tmp_path):
    # The ledger recomputes the Rényi recursion from the recorded steps; after
    # max_requests the method raises RetrainRequired and serve() retrains.
    import dataclasses

    from dpunlearn import models

    d = data(n=48, d=4)
    kw = dict(
        num_rows=48, lam=0.1, sigma=0.05, radius=5.0, epsilon=1.0, delta=1e-3,
        train_steps=100, request_size=2, max_requests=3,
    )  # fmt: skip
    method = methods.langevin(models.linear(4), **kw)
    plan = methods.langevin_plan(models.linear(4), **kw)
    led = L.Ledger.create(
        tmp_path / "l.jsonl",
        currency="langevin",
        params=dataclasses.asdict(plan.calibration.config),
        target_epsilon=1.0,
        target_delta=1e-3,
    )
    state, charge = method.train(jax.random.key(0), d, None)
    serve.record_training(led, charge)
    retrained = []
    for i in range(5):
        res = serve.serve(
            method, state, np.array([2 * i, 2 * i + 1]), d,
            key=jax.random.fold_in(jax.random.key(1), i), ledger=led,
        )  # fmt: skip
        state = res.state
        retrained.append(res.retrained)
        assert res.summary.unlearning.certified and res.summary.unlearning.epsilon <= 1.0
    assert retrained == [False, False, False, True, False]
    replayed, _ = L.replay_file(tmp_path / "l.jsonl")
    assert replayed.num_retrains == 1 and replayed.num_requests == 4
