"""Certified noisy fine-tuning (dpunlearn.methods.certified_finetune).

Statistical tests state their false-failure rate (the probability that a
correct implementation fails, over the randomness of the keys); each has a
control that a wrong calibration must fail. Keys are fixed, so the outcomes
are reproducible.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

from dpunlearn import models, serve
from dpunlearn.accounting import currencies as cur
from dpunlearn.accounting import ledger as L
from dpunlearn.methods import Data
from dpunlearn.methods.finetune import (
    CLIP_MARGIN,
    CertifiedFinetuneState,
    certified_finetune,
    certified_finetune_plan,
    clip_model,
)

ALPHA_MOMENTS = 1e-6  # false-failure rate of each moment test below
ALPHA_TWO_SAMPLE = 1e-6  # false-failure rate of each two-sample test below


def tiny_data(n=8, d=2, seed=0, labels="pm"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 0.2
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(X @ rng.normal(size=d) > 0, 1.0, -1.0)
    if labels == "int":
        return Data(jnp.asarray(X, jnp.float32), jnp.asarray((y > 0).astype(np.int32)))
    return Data(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32))


BASE = {
    "num_rows": 8,
    "epsilon": 1.0,
    "delta": 1e-5,
    "init_clip": 1.0,
    "grad_clip": 1.0,
    "learning_rate": 0.1,
    "steps": 8,
}


def small_method(**kw):
    args = {**BASE, "train_steps": 30}
    args.update(kw)
    return certified_finetune(models.linear(2), **args)


@pytest.fixture(scope="module")
def small():
    return small_method()


def zero_gradient_model(dim=3):
    """A loss with zero gradient: the noisy steps are pure noise and decay."""
    lin = models.linear(dim)
    return models.Model(
        jnp.zeros(dim, jnp.float32),
        lin.apply,
        lambda p, x, y: 0.0 * jnp.sum(p),
        lin.predict,
    )


# ---------------------------------------------------------------------------
# Calibration and the noise scale against closed forms
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_plan_calibrates_sigma_by_the_derived_bound(lam):
    kw = {**BASE, "weight_decay": lam}
    del kw["steps"]
    plan = certified_finetune_plan(models.linear(2), **kw)
    # Default T = ⌈C₀/(ηC₁)⌉ = 10.
    assert plan.steps == 10
    s = cur.pabi_shift(
        init_clip=1.0, grad_clip=1.0, step_size=0.1, weight_decay=lam, steps=10
    )
    w = cur.pabi_noise_weight(step_size=0.1, weight_decay=lam, steps=10)
    assert plan.rdp_coefficient == pytest.approx(
        s**2 / (2 * plan.sigma**2 * w), rel=1e-12
    )
    # σ is a float32 value at or above the never-overshooting float64 σ ...
    assert float(np.float32(plan.sigma)) == plan.sigma >= plan.calibrated_sigma
    assert plan.sigma <= plan.calibrated_sigma * (1 + 2**-23)
    # ... which certifies the target and whose next smaller float64 does not.
    cfg = plan.config
    assert plan.certified and plan.epsilon <= 1.0
    assert cfg.epsilon(steps=10, sigma=plan.calibrated_sigma, delta=1e-5) <= 1.0
    assert (
        cfg.epsilon(steps=10, sigma=np.nextafter(plan.calibrated_sigma, 0), delta=1e-5)
        > 1.0
    )
    # The closed form: σ = S/√(2WR*) with R* the ε-target's zCDP budget.
    r_star = plan.rdp_coefficient * (plan.sigma / plan.calibrated_sigma) ** 2
    assert cur.pabi_epsilon(r_star, 1e-5) == pytest.approx(1.0, abs=1e-9)
    assert plan.calibrated_sigma == pytest.approx(
        s / math.sqrt(2 * w * r_star), rel=1e-12
    )


def test_plan_of_the_model_clip_variant_uses_the_hockey_stick_tracker():
    kw = {
        **BASE,
        "grad_clip": None,
        "model_clip": 0.5,
        "variant": "model_clip",
        "steps": 1,
    }
    plan = certified_finetune_plan(models.linear(2), **kw)
    # One step is one Gaussian release of sensitivity 2C: the analytic σ.
    from dpunlearn.accounting import mechanisms

    want = mechanisms.gaussian_sigma_analytic(1.0, 1e-5, 1.0)
    assert plan.calibrated_sigma == pytest.approx(want, rel=1e-9)
    assert plan.rdp_coefficient is None and plan.certified
    assert plan.ledger_params == {
        "variant": "model_clip",
        "init_clip": 1.0,
        "step_size": 0.1,
        "weight_decay": 0.0,
        "model_clip": 0.5,
        "conversion": "improved",
    }
    more = certified_finetune_plan(models.linear(2), **{**kw, "steps": 6})
    assert more.sigma < plan.sigma / 2  # the contraction of later steps pays


def moments_ok(samples, mean, var):
    """Per-coordinate mean (z-test) and variance (χ² test), two-sided, each at
    ALPHA_MOMENTS/(2·coordinates) (union bound: false-failure rate ALPHA_MOMENTS)."""
    n, d = samples.shape
    a = ALPHA_MOMENTS / (2 * d)
    z = scipy.stats.norm.isf(a / 2)
    dev = np.abs(samples.mean(0) - mean) / np.sqrt(var / n)
    s2 = samples.var(0, ddof=1) * (n - 1) / var
    lo, hi = scipy.stats.chi2.ppf(a / 2, n - 1), scipy.stats.chi2.isf(a / 2, n - 1)
    return bool(np.all(dev <= z) and np.all((s2 >= lo) & (s2 <= hi)))


def unlearn_many(method, state, request, data, n, seed=1):
    keys = jax.random.split(jax.random.key(seed), n)
    run = jax.jit(jax.vmap(lambda k: method.unlearn(k, state, request, data)))
    return run(keys)


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_noise_of_the_steps_matches_the_closed_form(lam):
    """Zero gradient: θ_T = ρ^T·clip_{C₀}(θ) + Σρ^{T−1−t}ξ_t, so each
    coordinate is N(ρ^T θ₀, σ²W). The control (σ from the wrong, λ = 0
    W when λ > 0, or σ√2 off) must fail."""
    model = zero_gradient_model()
    data = tiny_data(n=4, d=3)
    sigma, steps, eta = 0.3, 12, 0.1
    m = certified_finetune(
        model, num_rows=4, epsilon=1.0, delta=1e-5, init_clip=1.0, grad_clip=1.0,
        learning_rate=eta, weight_decay=lam, steps=steps, sigma=sigma, train_steps=0,
    )  # fmt: skip
    state = CertifiedFinetuneState(
        jnp.asarray([3.0, 0.0, -4.0]), jnp.ones(4, bool), jnp.zeros((), jnp.int32)
    )
    new, charge, info = unlearn_many(m, state, jnp.array([1]), data, 20_000)
    x = np.asarray(new.params, np.float64)
    rho = 1 - eta * lam
    theta0 = np.array([3.0, 0.0, -4.0]) / 5.0 * (1 - CLIP_MARGIN)
    w = sum(rho ** (2 * j) for j in range(steps))
    sig32 = float(np.float32(sigma))
    assert moments_ok(x, rho**steps * theta0, sig32**2 * w)
    assert not moments_ok(x, rho**steps * theta0, 2 * sig32**2 * w)
    np.testing.assert_allclose(np.asarray(info.init_norm), 5.0, rtol=1e-6)
    assert np.all(np.asarray(charge.sigma) == np.float32(sigma))


def test_noise_of_the_model_clip_variant_matches_the_closed_form():
    model = zero_gradient_model()
    data = tiny_data(n=4, d=3)
    m = certified_finetune(
        model, num_rows=4, epsilon=1.0, delta=1e-5, init_clip=2.0, model_clip=0.5,
        variant="model_clip", learning_rate=0.1, weight_decay=1.0, steps=1, sigma=0.2,
        train_steps=0,
    )  # fmt: skip
    state = CertifiedFinetuneState(
        jnp.asarray([3.0, 0.0, -4.0]), jnp.ones(4, bool), jnp.zeros((), jnp.int32)
    )
    new, _, _ = unlearn_many(m, state, jnp.array([1]), data, 20_000)
    # clip to 2, decay by 0.9 (norm 1.8), project to 0.5, then N(0, σ²).
    mean = np.array([0.6, 0.0, -0.8]) * 0.5 * (1 - CLIP_MARGIN)
    var = float(np.float32(0.2)) ** 2
    assert moments_ok(np.asarray(new.params, np.float64), mean, var)
    assert not moments_ok(np.asarray(new.params, np.float64), 1.8 / 0.5 * mean, var)


def adversarial_model(dim=2, scale=1e3):
    """A linear loss with huge gradients: only the clips bound a step."""
    lin = models.linear(dim)
    return models.Model(
        jnp.zeros(dim, jnp.float32),
        lin.apply,
        lambda p, x, y: scale * y * jnp.dot(p, x),
        lin.predict,
    )


def test_clips_bound_every_step():
    data = tiny_data(n=4)
    start = CertifiedFinetuneState(
        jnp.asarray([30.0, -40.0]), jnp.ones(4, bool), jnp.zeros((), jnp.int32)
    )
    kw = {"num_rows": 4, "epsilon": 1.0, "delta": 1e-5, "init_clip": 1.0,
          "learning_rate": 0.1, "steps": 1, "sigma": 1e-12, "train_steps": 0}  # fmt: skip
    g = certified_finetune(adversarial_model(), grad_clip=0.5, weight_decay=2.0, **kw)
    new, charge, info = g.unlearn(jax.random.key(0), start, jnp.array([0]), data)
    theta0 = np.array([0.6, -0.8]) * (1 - CLIP_MARGIN)
    step = np.asarray(new.params) - 0.8 * theta0  # ρθ₀ with ρ = 1 − 0.1·2
    assert np.linalg.norm(step) <= 0.1 * 0.5 * (1 + 1e-6)
    assert np.linalg.norm(step) >= 0.1 * 0.5 * 0.999  # the clip was active
    assert float(info.max_grad_norm) > 100 and float(info.init_norm) == pytest.approx(
        50.0
    )
    assert not bool(charge.certified)  # σ = 1e-12 certifies nothing
    p = certified_finetune(
        adversarial_model(), variant="model_clip", model_clip=0.25, **kw
    )
    new, _, _ = p.unlearn(jax.random.key(0), start, jnp.array([0]), data)
    assert float(jnp.linalg.norm(new.params)) <= 0.25


# ---------------------------------------------------------------------------
# Two-sample test of the certificate
# ---------------------------------------------------------------------------
#
# Rows: (e₁, +1), (e₁, +1), (e₁, −1). Trained on all three, w₁ → ln 2; on
# the last one alone, w₁ → −∞; with C₀ = 0.5 the clipped starts are ±0.5·e₁,
# antipodal, the worst case. Request: rows 0 and 1. The unlearned law
# (unlearn the model trained on all rows) and the comparator (train on row 2
# only, then the same procedure, plan.procedure) are sampled over N keys each
# in one vmap.
#
# Test: on the sets A_t = {w₁ > t} and their complements, for 9 thresholds t
# fixed in advance (multiples of the final noise std around 0), a violation
# of P(A) <= e^ε·P'(A) + δ (both directions) is declared only when the
# one-sided Clopper–Pearson lower bound of P(A) minus e^ε times the upper
# bound of P'(A) exceeds δ. Each of the 36 bounds holds with probability
# 1 − ALPHA_TWO_SAMPLE/36, so a certified pair fails with probability at
# most ALPHA_TWO_SAMPLE. The control runs σ/4 with the same steps.

TS_N = 20_000
TS_X = np.array([[1.0, 0.0]] * 3)
TS_Y = np.array([1.0, 1.0, -1.0])
TS_THRESHOLDS = np.array([-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0])
TS_VARIANTS = {
    "gradient_clip": {"grad_clip": 0.5, "steps": 10},
    "model_clip": {"variant": "model_clip", "model_clip": 0.5, "steps": 2},
}


def ts_kwargs(variant):
    return {
        "num_rows": 3, "epsilon": 1.0, "delta": 1e-3, "init_clip": 0.5,
        "learning_rate": 0.01, **TS_VARIANTS[variant],
    }  # fmt: skip


def worst_violation(u, r, eps, delta, thresholds):
    """max over the sets of lower(P_u(A)) − e^ε·upper(P_r(A)) − δ (both ways)."""
    n = u.shape[0]
    a = ALPHA_TWO_SAMPLE / (4 * len(thresholds))
    worst = -math.inf
    for t in thresholds:
        for first, second in (((u > t), (r > t)), ((r <= t), (u <= t))):
            k1, k2 = int(first.sum()), int(second.sum())
            lower = scipy.stats.beta.ppf(a, k1, n - k1 + 1) if k1 > 0 else 0.0
            upper = scipy.stats.beta.isf(a, k2 + 1, n - k2) if k2 < n else 1.0
            worst = max(worst, lower - math.exp(eps) * upper - delta)
    return worst


@pytest.fixture(scope="module", params=sorted(TS_VARIANTS))
def two_sample(request):
    variant = request.param
    data = Data(jnp.asarray(TS_X, jnp.float32), jnp.asarray(TS_Y, jnp.float32))
    kw = ts_kwargs(variant)
    method = certified_finetune(models.linear(2), train_steps=200, **kw)
    trained, _ = method.train(jax.random.key(0), data)
    kept = jnp.array([False, False, True])
    retrained, _ = method.train(jax.random.key(0), data, kept)
    assert float(trained.params[0]) > 0.6 and float(retrained.params[0]) < -0.6

    def samples(sigma):
        plan = certified_finetune_plan(models.linear(2), sigma=sigma, **kw)
        m = certified_finetune(models.linear(2), sigma=sigma, train_steps=200, **kw)
        new, charge, _ = unlearn_many(m, trained, jnp.array([0, 1]), data, TS_N, seed=1)
        keys = jax.random.split(jax.random.key(2), TS_N)
        ref = jax.jit(
            jax.vmap(lambda k: plan.procedure(k, retrained.params, kept, data)[0])
        )(keys)
        if variant == "gradient_clip":
            sd = plan.sigma * math.sqrt(plan.steps)
        else:
            sd = plan.sigma
        u = np.asarray(new.params[:, 0], np.float64)
        r = np.asarray(ref[:, 0], np.float64)
        return u, r, charge, sd

    plan = certified_finetune_plan(models.linear(2), **kw)
    return variant, plan, samples


def test_two_sample_certified_run_passes(two_sample):
    _, plan, samples = two_sample
    u, r, charge, sd = samples(plan.sigma)
    assert bool(jnp.all(charge.certified)) and float(charge.epsilon[0]) <= 1.0
    assert worst_violation(u, r, 1.0, 1e-3, sd * TS_THRESHOLDS) <= 0.0
    # The instance is close to the worst case: the means are ~2C₀ apart.
    assert abs(u.mean() - r.mean()) > 0.25


def test_two_sample_noise_scaled_down_is_caught(two_sample):
    _, plan, samples = two_sample
    u, r, charge, sd = samples(plan.sigma / 4)
    assert not bool(charge.certified[0])
    assert worst_violation(u, r, 1.0, 1e-3, sd * TS_THRESHOLDS) > 0.05


# ---------------------------------------------------------------------------
# Any parameter pytree: flax nnx and linen MLPs, under jit and vmap
# ---------------------------------------------------------------------------


MLP_ARGS = {
    "num_rows": 8,
    "epsilon": 1.0,
    "delta": 1e-3,
    "init_clip": 3.0,
    "grad_clip": 1.0,
    "learning_rate": 0.05,
    "steps": 5,
    "train_steps": 20,
    "post_steps": 3,
}


@pytest.fixture(scope="module")
def mlps():
    nnx_module = models.init_nnx_mlp(jax.random.key(0), (2, 8, 2))
    nnx_model, _ = models.from_nnx(nnx_module)
    module, variables = models.init_linen_mlp(jax.random.key(1), (2, 8, 2))
    # The same weights in linen (same leaf order: layer, bias, kernel).
    leaves = jax.tree.leaves(nnx_model.params)
    params = jax.tree.unflatten(jax.tree.structure(variables["params"]), leaves)
    linen_model = models.from_linen(module, {"params": params})
    return {
        "nnx": certified_finetune(nnx_model, **MLP_ARGS),
        "linen": certified_finetune(linen_model, **MLP_ARGS),
    }


def test_nnx_and_linen_mlps_under_jit_and_vmap(mlps):
    """vmap over keys and masks (train) and over keys and states (unlearn),
    under jit; one model agrees with the batch; nnx and linen (same weights)
    give the same models; the charges are certified (no assumption on the loss)."""
    data = tiny_data(labels="int")
    keys = jax.random.split(jax.random.key(5), 3)
    masks = jnp.ones((3, 8), bool).at[jnp.arange(3), jnp.arange(3)].set(False)
    request = jnp.array([5])
    out = {}
    for name, m in mlps.items():
        states, charges = jax.jit(jax.vmap(m.train, in_axes=(0, None, 0)))(
            keys, data, masks
        )
        assert all(leaf.shape[0] == 3 for leaf in jax.tree.leaves(states.params))
        assert bool(jnp.all(charges.valid))
        new, charges, info = jax.jit(jax.vmap(m.unlearn, in_axes=(0, 0, None, None)))(
            keys, states, request, data
        )
        assert bool(jnp.all(info.valid)) and bool(jnp.all(charges.certified))
        assert np.all(np.asarray(charges.steps) == 5)
        assert np.all(np.asarray(charges.epsilon) <= 1.0)
        assert np.all(np.asarray(new.num_requests) == 1)
        assert not bool(jnp.any(new.mask[:, 5]))
        first = jax.tree.leaves(new.params)[0]
        assert not np.allclose(first[0], first[1])  # different keys: different models
        one, _, _ = jax.jit(m.unlearn)(
            keys[1], jax.tree.map(lambda a: a[1], states), request, data
        )
        for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(new.params)):
            np.testing.assert_allclose(a, b[1], rtol=1e-5, atol=1e-6)
        assert m.predict(one.params, data.x).shape == (8,)
        out[name] = jax.tree.leaves(states.params) + jax.tree.leaves(new.params)
    for a, b in zip(out["nnx"], out["linen"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_post_unlearning_fine_tune_is_free_and_helps():
    data = tiny_data(n=32, seed=3)
    kw = {**BASE, "num_rows": 32, "init_clip": 0.5, "train_steps": 100}
    plain = certified_finetune(models.linear(2), **kw)
    post = certified_finetune(
        models.linear(2), post_steps=50, post_optimizer=optax.sgd(0.5), **kw
    )
    state, _ = plain.train(jax.random.key(0), data)
    request = jnp.arange(4)
    a, ca, _ = unlearn_many(plain, state, request, data, 64)
    b, cb, _ = unlearn_many(post, state, request, data, 64)
    for field in ("epsilon", "sigma", "steps", "certified"):
        np.testing.assert_array_equal(getattr(ca, field), getattr(cb, field))
    model = models.linear(2)
    x, y = data.x[4:], data.y[4:]

    def mean_loss(params):
        return jax.vmap(
            lambda p: jnp.mean(jax.vmap(model.loss, in_axes=(None, 0, 0))(p, x, y))
        )(params)

    assert float(jnp.mean(mean_loss(b.params))) < float(jnp.mean(mean_loss(a.params)))


def test_mini_batches_are_deterministic_given_the_key():
    data = tiny_data(n=16, seed=2)
    m = small_method(num_rows=16, batch_size=4)
    s1, _ = m.train(jax.random.key(0), data)
    s2, _ = m.train(jax.random.key(0), data)
    s3, _ = m.train(jax.random.key(1), data)
    np.testing.assert_array_equal(s1.params, s2.params)
    assert not np.allclose(s1.params, s3.params)
    full, _ = small_method(num_rows=16).train(jax.random.key(0), data)
    again, _ = small_method(num_rows=16).train(jax.random.key(1), data)
    np.testing.assert_array_equal(
        full.params, again.params
    )  # full batch: the key is unused
    u1, c1, _ = m.unlearn(jax.random.key(3), s1, np.array([0, 1]), data)
    u2, _, _ = m.unlearn(jax.random.key(3), s1, np.array([0, 1]), data)
    np.testing.assert_array_equal(u1.params, u2.params)
    assert bool(c1.certified)
    with pytest.raises(ValueError, match="batch_size"):
        small_method(num_rows=16, batch_size=17)


def test_requests_never_accumulate(small):
    data = tiny_data()
    state, charge = small.train(jax.random.key(0), data)
    assert float(charge.epsilon) == 0.0 and int(charge.num_removed) == 0
    eps = []
    for i, rows in enumerate(([0], [1, 2], [3], [4, 5])):
        state, charge, _ = small.unlearn(
            jax.random.key(10 + i), state, np.array(rows), data
        )
        assert bool(charge.certified) and int(charge.num_removed) == len(rows)
        eps.append(float(charge.epsilon))
    assert len(set(eps)) == 1 and eps[0] <= 1.0
    assert int(state.num_requests) == 4 and int(np.sum(np.asarray(state.mask))) == 2


def test_float64_parameters_stay_float64():
    with jax.enable_x64(True):
        m = certified_finetune(
            models.linear(2, dtype=jnp.float64), **{**BASE, "train_steps": 5}
        )
        data = tiny_data()
        data = Data(data.x.astype(jnp.float64), data.y.astype(jnp.float64))
        state, _ = m.train(jax.random.key(0), data)
        new, charge, _ = m.unlearn(jax.random.key(1), state, jnp.array([1]), data)
        assert state.params.dtype == new.params.dtype == jnp.float64
        assert bool(charge.certified)


# ---------------------------------------------------------------------------
# Errors: eager ValueError; under jit a poisoned charge and an unchanged model
# ---------------------------------------------------------------------------


def assert_poisoned_and_unchanged(old, new, charge):
    assert not bool(charge.valid) and not bool(charge.certified)
    assert math.isinf(float(charge.epsilon)) and int(charge.steps) == 0
    assert int(charge.num_removed) == 0
    np.testing.assert_array_equal(new.params, old.params)
    np.testing.assert_array_equal(new.mask, old.mask)
    assert int(new.num_requests) == int(old.num_requests)


def test_request_for_a_removed_row(small):
    data = tiny_data()
    state, _ = small.train(jax.random.key(0), data)
    state, charge, _ = small.unlearn(jax.random.key(1), state, np.array([4]), data)
    assert bool(charge.certified)
    with pytest.raises(ValueError, match="already removed"):
        small.unlearn(jax.random.key(2), state, np.array([4]), data)
    new, charge, info = jax.jit(small.unlearn)(
        jax.random.key(2), state, jnp.array([4]), data
    )
    assert not bool(info.valid)
    assert_poisoned_and_unchanged(state, new, charge)
    for bad in (np.array([8]), np.array([-1]), np.array([2, 2])):
        with pytest.raises(ValueError):
            small.unlearn(jax.random.key(3), state, bad, data)
    step = jax.jit(small.unlearn)
    with pytest.raises(ValueError, match="integers"):
        step(jax.random.key(3), state, jnp.array([3.0]), data)
    with pytest.raises(ValueError, match="non-empty"):
        step(jax.random.key(3), state, jnp.zeros((0,), jnp.int32), data)
    with pytest.raises(ValueError, match="remaining rows"):
        small.unlearn(jax.random.key(3), state, np.array([0, 1, 2, 3, 5, 6, 7]), data)


def test_nan_data_and_parameters(small):
    data = tiny_data()
    state, _ = small.train(jax.random.key(0), data)
    bad = Data(data.x.at[3, 1].set(jnp.nan), data.y)
    with pytest.raises(ValueError, match="finite"):
        small.unlearn(jax.random.key(1), state, np.array([0]), bad)
    with pytest.raises(ValueError, match="finite"):
        small.train(jax.random.key(1), bad)
    new, charge, _ = jax.jit(small.unlearn)(
        jax.random.key(1), state, jnp.array([0]), bad
    )
    assert_poisoned_and_unchanged(state, new, charge)
    _, charge = jax.jit(small.train)(jax.random.key(1), bad, None)
    assert not bool(charge.valid) and math.isinf(float(charge.epsilon))
    nan_state = state._replace(params=state.params.at[0].set(jnp.nan))
    with pytest.raises(ValueError, match="finite"):
        small.unlearn(jax.random.key(1), nan_state, np.array([0]), data)
    new, charge, _ = jax.jit(small.unlearn)(
        jax.random.key(1), nan_state, jnp.array([0]), data
    )
    assert not bool(charge.valid) and int(new.num_requests) == 0


def test_mismatched_pytrees_and_states(small, mlps):
    data = tiny_data()
    state, _ = small.train(jax.random.key(0), data)
    for params in (jnp.zeros(3), {"w": jnp.zeros(2)}, jnp.zeros(2, jnp.int32)):
        with pytest.raises(ValueError, match="Mismatched parameter pytree"):
            small.unlearn(
                jax.random.key(1), state._replace(params=params), np.array([0]), data
            )
    mlp_state, _ = mlps["nnx"].train(jax.random.key(0), tiny_data(labels="int"))
    with pytest.raises(ValueError, match="Mismatched parameter pytree"):
        jax.jit(small.unlearn)(jax.random.key(1), mlp_state, jnp.array([0]), data)
    with pytest.raises(ValueError, match="CertifiedFinetuneState"):
        small.unlearn(
            jax.random.key(1), (state.params, state.mask), np.array([0]), data
        )
    with pytest.raises(ValueError, match="rows"):
        small.train(jax.random.key(0), tiny_data(n=9))
    with pytest.raises(ValueError, match="key"):
        small.train(0, data)


def test_bad_configurations_are_refused():
    lin = models.linear(2)
    with pytest.raises(ValueError, match="needs grad_clip"):
        certified_finetune(lin, **{**BASE, "grad_clip": None})
    with pytest.raises(ValueError, match="needs model_clip"):
        certified_finetune(lin, **{**BASE, "grad_clip": None, "variant": "model_clip"})
    with pytest.raises(ValueError, match="does not clip gradients"):
        certified_finetune(lin, **{**BASE, "variant": "model_clip", "model_clip": 1.0})
    with pytest.raises(ValueError, match="needs steps"):
        certified_finetune(
            lin, **{**BASE, "grad_clip": None, "variant": "model_clip", "model_clip": 1.0,
                    "steps": None}
        )  # fmt: skip
    with pytest.raises(ValueError, match="variant"):
        certified_finetune(lin, **{**BASE, "variant": "both"})
    with pytest.raises(ValueError, match="< 1"):
        certified_finetune(lin, **{**BASE, "weight_decay": 20.0})
    with pytest.raises(ValueError, match="delta"):
        certified_finetune(lin, **{**BASE, "delta": 1.0})
    with pytest.raises(ValueError, match="steps"):
        certified_finetune(lin, **{**BASE, "steps": 0})
    with pytest.raises(ValueError, match="Model"):
        certified_finetune(lin.params, **BASE)


def test_clip_model_is_the_projection():
    params = {"a": jnp.array([3.0]), "b": jnp.array([[4.0]])}
    out = clip_model(params, 1.0)
    np.testing.assert_allclose(out["a"], [0.6], rtol=1e-6)
    np.testing.assert_allclose(out["b"], [[0.8]], rtol=1e-6)
    same = clip_model(params, 10.0)
    np.testing.assert_array_equal(same["a"], params["a"])


# ---------------------------------------------------------------------------
# A model's life: serve() with a "finetune" ledger
# ---------------------------------------------------------------------------


def test_serve_round_trip_and_retrain_on_refusal(tmp_path):
    data = tiny_data(n=16, seed=4)
    kw = {**BASE, "num_rows": 16, "weight_decay": 0.2, "train_steps": 30}
    method = certified_finetune(models.linear(2), **kw)
    plan = certified_finetune_plan(
        models.linear(2), **{k: v for k, v in kw.items() if k != "train_steps"}
    )
    path = tmp_path / "l.jsonl"
    led = L.Ledger.create(
        path, currency="finetune", params=plan.ledger_params,
        target_epsilon=1.0, target_delta=1e-5,
    )  # fmt: skip
    state, charge = method.train(jax.random.key(0), data)
    serve.record_training(led, charge)
    for i in range(3):
        res = serve.serve(
            method, state, np.array([2 * i, 2 * i + 1]), data,
            key=jax.random.fold_in(jax.random.key(1), i), ledger=led,
        )  # fmt: skip
        state = res.state
        assert not res.retrained and res.summary.unlearning.certified
        assert res.summary.unlearning.epsilon == pytest.approx(plan.epsilon, rel=1e-12)
        assert res.summary.unlearning.epsilon <= 1.0
    # A deployment whose σ is a quarter of the calibrated one: the ledger
    # refuses the release and serve() retrains on the remaining rows.
    weak = certified_finetune(models.linear(2), sigma=plan.sigma / 4, **kw)
    res = serve.serve(
        weak, state, np.array([9]), data, key=jax.random.key(7), ledger=led
    )
    assert res.retrained and "sigma >= " in res.refusal
    assert not bool(np.asarray(res.state.mask)[9])
    assert res.summary.unlearning.certified and res.summary.unlearning.epsilon == 0.0
    replayed, _ = L.replay_file(path)
    assert replayed == res.summary
    assert replayed.num_requests == 3 and replayed.num_retrains == 1
