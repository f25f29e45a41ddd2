"""Langevin unlearning (dpunlearn.methods.langevin) and the noisy transforms.

Statistical tests state their false-failure rate ``ALPHA`` (the probability
that a correct implementation fails, over the randomness of the keys); each
has a control that a wrong implementation must fail. Keys are fixed, so the
outcomes are reproducible.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from dpunlearn import models
from dpunlearn.accounting import currencies as cur
from dpunlearn.methods import Data, LossConstants, langevin
from dpunlearn.methods.langevin import (
    LangevinState,
    langevin_calibration,
    langevin_plan,
)

ALPHA = 1e-3  # false-failure rate of every statistical test in this file

# MNIST 3-vs-8 constants of the paper (authors' λ = 1e-6; our lam = λn).
N_MNIST = 11_982
M_MNIST = 1e-6 * N_MNIST
L_MNIST = 0.25 + M_MNIST


def tiny_data(n=8, d=2, seed=0, labels="pm"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 0.2
    X /= 1.25 * np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(X @ rng.normal(size=d) > 0, 1.0, -1.0)
    if labels == "int":
        return Data(jnp.asarray(X, jnp.float32), jnp.asarray((y > 0).astype(np.int32)))
    return Data(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32))


def small_method(**kw):
    args = {
        "num_rows": 8,
        "lam": 0.5,
        "sigma": 0.1,
        "radius": 5.0,
        "epsilon": 1.0,
        "delta": 1e-3,
        "train_steps": 30,
        "request_size": 1,
        "max_requests": 2,
    }
    args.update(kw)
    return langevin(models.linear(2), **args)


@pytest.fixture(scope="module")
def small():
    return small_method()


# ---------------------------------------------------------------------------
# Calibration: closed forms and the reference values
# ---------------------------------------------------------------------------


def mnist_calibration(**kw):
    args = {
        "num_rows": N_MNIST,
        "strong_convexity": M_MNIST,
        "step_size": 1 / L_MNIST,
        "sigma": 0.03,
        "clip_norm": 1.0,
        "epsilon": 1.0,
        "delta": 1 / N_MNIST,
    }
    args.update(kw)
    return langevin_calibration(**args)


@pytest.mark.parametrize("size, eps", [(1, 0.314), (10, 3.37), (100, 57.0)])
def test_epsilon_before_unlearning_matches_reference_and_closed_form(size, eps):
    cal = mnist_calibration(request_size=size, unlearn_steps=0)
    # Reference (3 significant figures).
    assert cal.epsilons[0] == pytest.approx(eps, rel=2e-3)
    # Closed form: min_α Aα + B/(α−1) = A + 2√(AB), A = 4S²M²/(mσ²n²), B = ln(1/δ).
    A = 4 * size**2 / (M_MNIST * 0.03**2 * N_MNIST**2)
    B = math.log(N_MNIST)
    assert cal.epsilons[0] == pytest.approx(A + 2 * math.sqrt(A * B), rel=1e-6)


@pytest.mark.parametrize("size, k_min", [(10, 778), (100, 1997), (1000, 3136)])
def test_smallest_k_matches_reference_and_closed_form(size, k_min):
    cal = mnist_calibration(request_size=size)
    assert cal.steps == (k_min,)
    assert cal.epsilons[0] <= 1.0
    # Closed form K >= min_α (α/(mη))·ln(ε₀(α)/(ε − ln(1/δ)/(α−1))), on a fine grid.
    a = 1 + np.logspace(-3, 4, 400_001)
    slack = 1.0 - math.log(N_MNIST) / (a - 1)
    eps0 = 4 * a * size**2 / (M_MNIST * 0.03**2 * N_MNIST**2)
    ok = slack > 0
    k = (a[ok] * L_MNIST / M_MNIST) * np.log(eps0[ok] / slack[ok])
    assert math.ceil(k.min()) - 1 <= k_min <= math.ceil(k.min())


def test_step_size_and_noise_scale_follow_from_the_constants():
    cal = mnist_calibration()
    assert cal.config.step_size == pytest.approx(1 / L_MNIST, rel=1e-12)
    assert cal.noise_std == pytest.approx(math.sqrt(2 / L_MNIST) * 0.03, rel=1e-12)
    assert cal.config.n == N_MNIST and cal.config.gradient_clip == 1.0


def test_sequential_schedule_is_the_renyi_recursion():
    cal = mnist_calibration(request_size=10, max_requests=3)
    state = cur.langevin_init()
    for k, eps in zip(cal.steps, cal.epsilons):
        want = cur.langevin_min_steps(
            state, cal.config, removed=10, target_epsilon=1.0, delta=1 / N_MNIST
        )
        assert k == want
        state = cur.langevin_update(state, removed=10, steps=k)
        assert eps == pytest.approx(
            cur.langevin_epsilon(state, cal.config, 1 / N_MNIST)[0]
        )
        assert eps <= 1.0
    assert cal.steps[1] > cal.steps[0]  # the order doubling makes later requests dearer


def test_remove_adjacency_certifies_with_the_smallest_remaining_size():
    rep = mnist_calibration(request_size=10, max_requests=3)
    rem = mnist_calibration(request_size=10, max_requests=3, adjacency="remove")
    assert rem.config.n == N_MNIST - 20
    assert rem.steps[0] >= rep.steps[0]


def test_unreachable_target_names_how_many_requests_fit():
    # Below ln(1/δ)/(max_order − 1) no number of steps suffices.
    with pytest.raises(ValueError, match="only 0 can"):
        mnist_calibration(request_size=10, epsilon=5e-4)


@pytest.mark.parametrize("size, k_min", [(10, 778), (100, 1997), (1000, 3136)])
def test_factory_plan_derives_the_constants_and_the_reference_schedule(size, k_min):
    """The factory's own resolution for models.linear on MNIST (d = 784)."""
    plan = langevin_plan(
        models.linear(784),
        num_rows=N_MNIST,
        lam=M_MNIST,
        sigma=0.03,
        radius=100.0,
        epsilon=1.0,
        delta=1 / N_MNIST,
        train_steps=10_000,
        request_size=size,
    )
    assert plan.constants.smoothness == pytest.approx(L_MNIST, rel=1e-12)
    assert plan.constants.step_size == pytest.approx(1 / L_MNIST, rel=1e-12)
    assert plan.constants.clip_norm == 1.0 and not plan.constants.assumed
    assert plan.calibration.steps == (k_min,)
    assert plan.calibration.noise_std == pytest.approx(math.sqrt(2 / L_MNIST) * 0.03)
    assert plan.stationarity_gap == pytest.approx(
        200 * (1 - M_MNIST / L_MNIST) ** 10_000
    )


def test_method_charges_carry_the_reference_calibration():
    """Through the factory (constants derived for models.linear): K and ε."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(N_MNIST, 2))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    data = Data(jnp.asarray(X, jnp.float32), jnp.asarray(np.sign(X[:, 0]), jnp.float32))
    common = {
        "num_rows": N_MNIST,
        "lam": M_MNIST,
        "sigma": 0.03,
        "radius": 100.0,
        "epsilon": 1.0,
        "delta": 1 / N_MNIST,
        "train_steps": 1,
        "request_size": 10,
        "probe_iters": 0,
    }
    request = jnp.arange(10)
    m0 = langevin(models.linear(2), unlearn_steps=0, **common)
    state, _ = m0.train(jax.random.key(0), data)
    _, charge, _ = m0.unlearn(jax.random.key(1), state, request, data)
    assert float(charge.epsilon) == pytest.approx(3.37, rel=2e-3)
    assert not bool(charge.certified) and bool(charge.valid)
    m1 = langevin(models.linear(2), **common)
    _, charge, info = m1.unlearn(jax.random.key(1), state, request, data)
    assert int(charge.steps) == int(info.steps) == 778
    assert int(charge.num_removed) == 10 and float(charge.epsilon) <= 1.0
    assert bool(charge.certified)


def chi2_two_sided_p(z: np.ndarray) -> float:
    stat, dof = float(np.sum(z**2)), z.size
    return 2 * min(scipy.stats.chi2.cdf(stat, dof), scipy.stats.chi2.sf(stat, dof))


# ---------------------------------------------------------------------------
# End to end: the method's noise, its adjacency, its certificate
# ---------------------------------------------------------------------------


def test_method_noise_matches_the_closed_form():
    """Rows x = 0 have zero loss gradient: one step from 0 is pure N(0, 2ησ²)."""
    data = Data(jnp.zeros((8, 4), jnp.float32), jnp.asarray([1.0, -1.0] * 4))
    m = langevin(
        models.linear(4),
        num_rows=8,
        lam=0.5,
        sigma=0.2,
        radius=1e3,
        epsilon=1.0,
        delta=1e-3,
        train_steps=1,
        unlearn_steps=0,
    )
    states, _ = jax.vmap(lambda k: m.train(k, data))(
        jax.random.split(jax.random.key(2), 4000)
    )
    eta = 1 / (0.25 + 0.5)  # η = 1/L derived for models.linear
    z = np.asarray(states.params, np.float64).ravel() / math.sqrt(2 * eta * 0.2**2)
    assert chi2_two_sided_p(z) > ALPHA
    assert chi2_two_sided_p(z / 1.05) < ALPHA  # control: 5% off in scale


@pytest.mark.parametrize("adjacency", ["replace", "remove"])
def test_adjacency_sets_the_normaliser(adjacency):
    data = tiny_data()
    m = small_method(
        sigma=1e-9, train_steps=1, unlearn_steps=0, adjacency=adjacency, max_requests=1
    )
    mask = jnp.asarray([True] * 6 + [False] * 2)
    state, _ = m.train(jax.random.key(0), data, mask)
    X, y = np.asarray(data.x, np.float64), np.asarray(data.y, np.float64)
    grads = (-y[:, None] * X / 2)[:6]  # ∇ log(1 + e^{−y w·x}) at w = 0
    norm = 8 if adjacency == "replace" else 6
    want = -(1 / 0.75) * grads.sum(0) / norm
    np.testing.assert_allclose(state.params, want, rtol=1e-5, atol=1e-7)


def certified_tv(eps: float, delta: float) -> float:
    """Largest total variation an (ε, δ)-indistinguishable pair can have."""
    return (math.exp(eps) - 1) * (1 - delta) / (math.exp(eps) + 1) + delta


def ks_along(a: np.ndarray, b: np.ndarray, directions) -> float:
    return max(scipy.stats.ks_2samp(a @ u, b @ u).statistic for u in directions)


# Two-sample test of the certificate on a strongly convex problem.
#
# If the unlearned law ν and the retrained law ν' are (ε, δ)-indistinguishable,
# every one-dimensional projection has Kolmogorov distance at most
# TV(ε, δ) = (e^ε − 1)(1 − δ)/(e^ε + 1) + δ. With N draws of each, the DKW
# inequality (Massart's constant) bounds each empirical CDF's error by a with
# probability 1 − 2e^{−2Na²}; over two samples and two directions the statistic
# exceeds TV + 2a with probability at most 8e^{−2Na²} = ALPHA. The controls (no
# unlearning steps; noise scaled down 4x while keeping the steps calibrated for
# the full noise) must exceed it. Retraining runs T = 60 steps with c = 1/3, so
# its law is within W∞ 2R·c^60 ≈ 1e-28 of the stationary law the certificate
# compares with.

TS_N = 10_000
TS_EPS, TS_DELTA, TS_SIGMA = 0.2, 1e-5, 0.1
TS_X = np.array([[0.9, 0.3], [0.2, -0.95], [-0.6, 0.7], [-0.99, -0.1]])
TS_Y = np.array([1.0, -1.0, 1.0, 1.0])  # row 3 is influential (the odd label)


def ts_build(**kw):
    args = {
        "num_rows": 4,
        "lam": 0.5,
        "sigma": TS_SIGMA,
        "radius": 5.0,
        "epsilon": TS_EPS,
        "delta": TS_DELTA,
        "train_steps": 60,
    }
    args.update(kw)
    return langevin(models.linear(2), **args)


@pytest.fixture(scope="module")
def two_sample():
    data = Data(jnp.asarray(TS_X, jnp.float32), jnp.asarray(TS_Y, jnp.float32))
    keys = jax.random.split(jax.random.key(0), (TS_N, 3))
    mask = jnp.ones(4, bool).at[3].set(False)
    method = ts_build()
    retrain = jax.jit(jax.vmap(lambda k: method.train(k[2], data, mask)[0].params))
    reference = np.asarray(retrain(keys), np.float64)
    u = TS_X[3] / np.linalg.norm(TS_X[3])
    directions = [u, np.array([-u[1], u[0]])]
    a = math.sqrt(math.log(8 / ALPHA) / (2 * TS_N))
    threshold = certified_tv(TS_EPS, TS_DELTA) + 2 * a
    return method, data, keys, reference, directions, threshold


def ts_unlearned(method, data, keys):
    def one(k):
        state, _ = method.train(k[0], data)
        state, charge, _ = method.unlearn(k[1], state, jnp.array([3]), data)
        return state.params, charge

    params, charge = jax.jit(jax.vmap(one))(keys)
    return np.asarray(params, np.float64), charge


def test_two_sample_certified_run_passes(two_sample):
    method, data, keys, reference, directions, threshold = two_sample
    params, charge = ts_unlearned(method, data, keys)
    assert bool(jnp.all(charge.certified)) and float(charge.epsilon[0]) <= TS_EPS
    assert ks_along(params, reference, directions) <= threshold


def test_two_sample_no_unlearning_steps_is_caught(two_sample):
    _, data, keys, reference, directions, threshold = two_sample
    params, charge = ts_unlearned(ts_build(unlearn_steps=0), data, keys)
    assert not bool(charge.certified[0])
    assert ks_along(params, reference, directions) > threshold


def test_two_sample_noise_scaled_down_is_caught(two_sample):
    _, data, keys, reference, directions, threshold = two_sample
    k = langevin_calibration(
        num_rows=4,
        strong_convexity=0.5,
        step_size=1 / 0.75,
        sigma=TS_SIGMA,
        clip_norm=1.0,
        epsilon=TS_EPS,
        delta=TS_DELTA,
    ).steps[0]
    params, _ = ts_unlearned(ts_build(sigma=TS_SIGMA / 4, unlearn_steps=k), data, keys)
    assert ks_along(params, reference, directions) > threshold


# ---------------------------------------------------------------------------
# Any parameter pytree: flax nnx and linen MLPs, under jit and vmap
# ---------------------------------------------------------------------------


MLP_ARGS = {
    "num_rows": 8,
    "lam": 0.1,
    "sigma": 0.01,
    "radius": 20.0,
    "epsilon": 1.0,
    "delta": 1e-3,
    "train_steps": 10,
    "learning_rate": 0.1,
    "clip_norm": 1.0,
    "allow_nonconvex": True,
    "unlearn_steps": 5,
    "max_requests": 2,
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
        "nnx": langevin(nnx_model, **MLP_ARGS),
        "linen": langevin(linen_model, **MLP_ARGS),
    }


def test_nnx_and_linen_mlps_under_jit_and_vmap(mlps):
    """vmap over keys and masks (train) and over keys and states (unlearn),
    under jit; one model agrees with the batch; nnx and linen (same weights)
    give the same models."""
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
        assert bool(jnp.all(charges.valid)) and not bool(jnp.any(charges.certified))
        first = jax.tree.leaves(states.params)[0]
        assert not np.allclose(
            first[0], first[1]
        )  # different keys, masks: different models
        new, charges, info = jax.jit(jax.vmap(m.unlearn, in_axes=(0, 0, None, None)))(
            keys, states, request, data
        )
        assert bool(jnp.all(info.valid)) and np.all(np.asarray(charges.steps) == 5)
        assert np.all(np.asarray(new.position) == 1) and not bool(
            jnp.any(new.mask[:, 5])
        )
        assert not bool(jnp.any(charges.certified))  # the escape hatch never certifies
        if name == "nnx":  # one call under jit agrees with the batch (linen: below)
            one, _ = jax.jit(m.train)(keys[1], data, masks[1])
            for a, b in zip(
                jax.tree.leaves(one.params), jax.tree.leaves(states.params)
            ):
                np.testing.assert_allclose(a, b[1], rtol=1e-5, atol=1e-6)
            assert m.predict(one.params, data.x).shape == (8,)
        out[name] = jax.tree.leaves(states.params) + jax.tree.leaves(new.params)
    for a, b in zip(out["nnx"], out["linen"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_an_mlp_needs_constants_or_the_escape_hatch():
    model, _ = models.from_nnx(models.init_nnx_mlp(jax.random.key(0), (2, 8, 2)))
    args = {
        k: v
        for k, v in MLP_ARGS.items()
        if k not in ("allow_nonconvex", "learning_rate")
    }
    with pytest.raises(ValueError, match="Cannot derive loss constants"):
        langevin(model, **args)
    # Declared (false) constants: the curvature probe refutes them at training.
    m = langevin(model, loss_constants=LossConstants(1.0, 1.0), probe_iters=8, **args)
    with pytest.raises(ValueError, match="not strongly convex"):
        m.train(jax.random.key(0), tiny_data(labels="int"))


# ---------------------------------------------------------------------------
# Errors: eager ValueError; under jit a poisoned charge and an unchanged model
# ---------------------------------------------------------------------------


def assert_poisoned_and_unchanged(old, new, charge):
    assert not bool(charge.valid) and not bool(charge.certified)
    assert math.isinf(float(charge.epsilon)) and int(charge.steps) == 0
    assert int(charge.num_removed) == 0
    np.testing.assert_array_equal(new.params, old.params)
    np.testing.assert_array_equal(new.mask, old.mask)
    assert int(new.position) == int(old.position)


def test_request_for_a_removed_row(small):
    data = tiny_data()
    state, _ = small.train(jax.random.key(0), data)
    state, charge, _ = small.unlearn(jax.random.key(1), state, np.array([4]), data)
    assert bool(charge.certified) and int(charge.position) == 1
    with pytest.raises(ValueError, match="already removed"):
        small.unlearn(jax.random.key(2), state, np.array([4]), data)
    new, charge, info = jax.jit(small.unlearn)(
        jax.random.key(2), state, jnp.array([4]), data
    )
    assert not bool(info.valid)
    assert_poisoned_and_unchanged(state, new, charge)


def test_requests_past_the_schedule_need_a_retrain(small):
    data = tiny_data()
    state, _ = small.train(jax.random.key(0), data)
    steps = []
    for i, row in enumerate([1, 2]):
        state, charge, _ = small.unlearn(
            jax.random.key(10 + i), state, np.array([row]), data
        )
        steps.append(int(charge.steps))
    assert int(state.total_steps) == 30 + sum(steps)
    with pytest.raises(ValueError, match="retrain"):
        small.unlearn(jax.random.key(3), state, np.array([3]), data)
    new, charge, _ = jax.jit(small.unlearn)(
        jax.random.key(3), state, jnp.array([3]), data
    )
    assert_poisoned_and_unchanged(state, new, charge)
    with pytest.raises(ValueError, match="exceeds request_size"):
        small.unlearn(jax.random.key(3), state, np.array([5, 6]), data)
    step = jax.jit(small.unlearn)
    with pytest.raises(ValueError, match="integers"):
        step(jax.random.key(3), state, jnp.array([3.0]), data)
    with pytest.raises(ValueError, match="non-empty"):
        step(jax.random.key(3), state, jnp.zeros((0,), jnp.int32), data)


def test_nan_data(small):
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


def test_mismatched_pytrees(small, mlps):
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
    with pytest.raises(ValueError, match="rows"):
        small.train(jax.random.key(0), tiny_data(n=9))


def concave_model():
    lin = models.linear(2)
    return models.Model(
        lin.params, lin.apply, lambda p, x, y: -0.5 * jnp.dot(p, x) ** 2, lin.predict
    )


def test_not_strongly_convex_is_refused():
    for lam in (0.0, -1.0):
        with pytest.raises(ValueError, match="not strongly convex"):
            small_method(lam=lam)
    with pytest.raises(ValueError, match="Cannot derive"):
        langevin(
            concave_model(),
            num_rows=8,
            lam=0.5,
            sigma=0.1,
            radius=5.0,
            epsilon=1.0,
            delta=1e-3,
            train_steps=5,
        )
    m = langevin(
        concave_model(),
        num_rows=8,
        lam=0.1,
        sigma=0.1,
        radius=5.0,
        epsilon=1.0,
        delta=1e-3,
        train_steps=5,
        loss_constants=LossConstants(1.0, 1.0),
        unlearn_steps=1,
    )
    with pytest.raises(ValueError, match="Hessian eigenvalue"):
        m.train(jax.random.key(0), tiny_data())
    _, charge = jax.jit(m.train)(jax.random.key(0), tiny_data(), None)
    assert not bool(charge.valid) and math.isinf(float(charge.epsilon))


def test_contract_violations_are_refused(small):
    with pytest.raises(ValueError, match="1/L"):
        small_method(learning_rate=2.0)
    with pytest.raises(ValueError, match="below the loss's gradient bound"):
        small_method(clip_norm=0.5)
    with pytest.raises(ValueError, match="adjacency"):
        small_method(adjacency="swap")
    m = small
    far = Data(tiny_data().x * 2.0, tiny_data().y)
    with pytest.raises(ValueError, match="norm <= 1"):
        m.train(jax.random.key(0), far)
    _, charge = jax.jit(m.train)(jax.random.key(0), far, None)
    assert not bool(charge.valid)


def test_remove_adjacency_refuses_when_too_few_rows_remain():
    m = small_method(adjacency="remove", max_requests=2)  # certifies with n = 7
    data = tiny_data()
    state, _ = m.train(jax.random.key(0), data, jnp.arange(8) != 0)  # 7 rows
    state, charge, _ = m.unlearn(jax.random.key(1), state, np.array([1]), data)
    assert bool(charge.valid)
    with pytest.raises(ValueError, match="fewer"):
        m.unlearn(jax.random.key(2), state, np.array([2]), data)
    new, charge, _ = jax.jit(m.unlearn)(jax.random.key(2), state, jnp.array([2]), data)
    assert_poisoned_and_unchanged(state, new, charge)


def test_float64_parameters_stay_float64():
    with jax.enable_x64(True):
        m = langevin(
            models.linear(2, dtype=jnp.float64),
            num_rows=8,
            lam=0.5,
            sigma=0.1,
            radius=5.0,
            epsilon=1.0,
            delta=1e-3,
            train_steps=5,
            unlearn_steps=3,
            probe_iters=2,
        )
        data = tiny_data()
        data = Data(data.x.astype(jnp.float64), data.y.astype(jnp.float64))
        state, _ = m.train(jax.random.key(0), data)
        new, charge, _ = m.unlearn(jax.random.key(1), state, jnp.array([1]), data)
        assert state.params.dtype == new.params.dtype == jnp.float64
        assert bool(charge.valid)


def test_state_is_a_pytree_without_the_data(small):
    data = tiny_data()
    state, charge = small.train(jax.random.key(0), data)
    assert isinstance(state, LangevinState)
    assert float(charge.stationarity_gap) == pytest.approx(
        2 * 5.0 * (1 - 0.5 / 0.75) ** 30, rel=1e-4
    )
    for leaf in jax.tree.leaves(state):
        assert np.shape(leaf) != np.shape(data.x)
