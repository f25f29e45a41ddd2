"""The DP extractor's certified head with shadow heads (no look at its secret b).

The head's retrain decision comes from ``M`` shadow heads with their own keys
(:mod:`dpunlearn.retrain_schedule`), exactly as for the ``certified_removal``
method; the ledger's ``dp_extractor`` currency with head rule ``"schedule"``
refuses once the Clopper–Pearson bound on the marked shadows passes ``δ′``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpunlearn import dpsgd, retrain_schedule, serve, stats
from dpunlearn.accounting import currencies as cur
from dpunlearn.accounting import ledger as L
from dpunlearn.accounting.currencies.certified_removal import RetrainScheduleConfig
from dpunlearn.methods import Data
from dpunlearn.methods.dp_extractor import dp_extractor, extractor_mlp, head_features

M, HEAD_EPS, HEAD_DELTA = 64, 1.0, 0.5  # M = 64 shadows can certify δ = 0.5 only


def blobs(n=80, d=6, seed=0):
    r = np.random.default_rng(seed)
    y = np.where(r.random(n) < 0.5, 1.0, -1.0)
    X = r.normal(size=(n, d)) + 1.5 * y[:, None] * np.eye(d)[0]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return Data(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32))


@pytest.fixture(scope="module")
def setup():
    data = blobs()
    model, feats = extractor_mlp(jax.random.key(0), (6, 8, 1), kind="logistic")
    cfg = dpsgd.DPSGDConfig(
        noise_multiplier=2.0,
        clip_norm=1.0,
        sampling_rate=0.25,
        steps=10,
        learning_rate=0.05,
        chunk_size=32,
    )
    method = dp_extractor(
        extractor=model,
        features=feats,
        dpsgd_config=cfg,
        lam=0.02,
        sigma=0.3,
        split="disjoint",
        num_shadows=M,
        head_epsilon=HEAD_EPS,
        head_delta=HEAD_DELTA,
    )
    key = jax.random.key(1)
    state, charge = method.train(key, data)
    return data, feats, cfg, method, key, state, charge


def test_shadows_are_the_schedule_of_the_head_on_the_features(setup):
    data, feats, _, method, key, state, charge = setup
    assert int(charge.num_shadows) == M
    assert int(charge.num_exceeded) == int(np.sum(state.schedule.exceeded))
    # Independently: the same shadows from the documented key derivation.
    _, _, k_head = jax.random.split(key, 3)
    _, k_shadows = jax.random.split(k_head)
    F = head_features(feats, state.extractor, data.x)
    target = retrain_schedule.make_target(HEAD_EPS, HEAD_DELTA, M)
    ref = retrain_schedule.init_shadows(k_shadows, state.head, F, data.y, target)
    np.testing.assert_array_equal(ref.exceeded, state.schedule.exceeded)
    head_rows = np.flatnonzero(~np.asarray(state.in_extractor))
    ext_rows = np.flatnonzero(np.asarray(state.in_extractor))
    # A head row advances every shadow; an extractor row leaves them alone.
    new, c, _ = method.unlearn(jax.random.key(0), state, np.array([ext_rows[0]]), data)
    assert all(
        jax.tree.leaves(jax.tree.map(jnp.array_equal, new.schedule, state.schedule))
    )
    new, c, _ = method.unlearn(jax.random.key(0), new, np.array([head_rows[0]]), data)
    ref, count = retrain_schedule.advance(ref, np.array([head_rows[0]]), F, data.y)
    np.testing.assert_array_equal(new.schedule.exceeded, ref.exceeded)
    assert int(c.num_exceeded) == int(count) and bool(c.valid)
    np.testing.assert_array_equal(new.schedule.shadows.mask, ref.shadows.mask)
    # The live head's noise never enters the shadows: they are the same for
    # another live key whose shadow key is the same (here: the same state with
    # its perturbation replaced).
    other = state._replace(
        head=state.head._replace(perturbation=-state.head.perturbation)
    )
    moved, _, _ = method.unlearn(
        jax.random.key(0), other, np.array([head_rows[0]]), data
    )
    np.testing.assert_array_equal(moved.schedule.exceeded, ref.exceeded)


def test_schedule_ledger_refuses_past_delta_prime_and_serve_retrains(setup, tmp_path):
    data, _, cfg, method, _, state, charge = setup
    target = retrain_schedule.make_target(HEAD_EPS, HEAD_DELTA, M)
    sched = RetrainScheduleConfig.from_target(target)
    head = {
        "rule": "schedule",
        "epsilon": HEAD_EPS,
        "delta": HEAD_DELTA,
        "num_shadows": M,
        "delta_noise": sched.delta_noise,
        "delta_schedule": sched.delta_schedule,
        "confidence": sched.confidence,
    }
    led = L.Ledger.create(
        tmp_path / "x.jsonl",
        currency="dp_extractor",
        params={
            "extractor_epsilon": cfg.epsilon(1e-5),
            "extractor_delta": 1e-5,
            "head": head,
        },
        target_epsilon=HEAD_EPS + 50 * cfg.epsilon(1e-5),
        target_delta=0.9,
        dp_delta=1e-5,
    )
    s = serve.record_training(led, charge, dp=[cfg.release()])
    assert s.unlearning.certified
    fields = cur.REGISTRY["dp_extractor"].from_charge(charge)
    assert "residual_bound" not in fields and fields["shadows_exceeded"] == int(
        charge.num_exceeded
    )
    # The largest count the schedule still certifies, from Clopper–Pearson.
    allowed = max(
        k
        for k in range(M + 1)
        if stats.clopper_pearson_upper(k, M, sched.confidence) <= sched.delta_schedule
    )
    config = cur.ExtractorHeadConfig(
        extractor_epsilon=cfg.epsilon(1e-5),
        extractor_delta=1e-5,
        head=sched,
        target_epsilon=HEAD_EPS + 50 * cfg.epsilon(1e-5),
        target_delta=0.9,
    )
    ok = cur.extractor_update(
        cur.extractor_init(config),
        0.0,
        1,
        extractor_removed=0,
        shadows_exceeded=allowed,
    )
    assert cur.extractor_report(ok, config).certified
    bad = cur.extractor_update(
        ok, 0.0, 1, extractor_removed=0, shadows_exceeded=allowed + 1
    )
    assert not cur.extractor_report(bad, config).certified
    # serve: requests on head rows until the shadows' verdict refuses, then a
    # retrain with a fresh key; every release the ledger accepted is certified.
    head_rows = np.flatnonzero(~np.asarray(state.in_extractor))
    retrained = False
    for i, row in enumerate(head_rows[:12]):
        out = serve.serve(
            method, state, np.array([row]), data, key=jax.random.key(10 + i), ledger=led
        )
        assert out.summary.unlearning.certified
        state = out.state
        if out.retrained:
            retrained = True
            assert "refused" in out.refusal
            break
    assert retrained, "the schedule never refused in 12 requests"
    assert led.summary.num_retrains == 1


def test_num_shadows_needs_the_head_certificate(setup):
    _, feats, cfg, _, _, _, _ = setup
    model, _ = extractor_mlp(jax.random.key(0), (6, 8, 1), kind="logistic")
    with pytest.raises(ValueError, match="head_epsilon"):
        dp_extractor(
            extractor=model,
            features=feats,
            dpsgd_config=cfg,
            lam=0.1,
            sigma=0.5,
            num_shadows=8,
        )
