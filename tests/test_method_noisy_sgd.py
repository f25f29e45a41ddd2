"""Noisy-SGD unlearning (dpunlearn.methods.noisy_sgd).

Statistical tests state their false-failure rate ``ALPHA`` and have controls
that a wrong implementation must fail; keys are fixed (reproducible).
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
from dpunlearn.methods import Data, LossConstants, noisy_sgd
from dpunlearn.methods.noisy_sgd import (
    NoisySGDState,
    cyclic_batches,
    noisy_sgd_calibration,
    noisy_sgd_plan,
)

ALPHA = 1e-3  # false-failure rate of every statistical test in this file

N_MNIST = 11_982
M_MNIST = 1e-6 * N_MNIST  # authors' λ = 1e-6; our lam = λn
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
        "batch_size": 2,
        "train_epochs": 10,
        "request_size": 1,
        "max_requests": 2,
    }
    args.update(kw)
    return noisy_sgd(models.linear(2), **args)


@pytest.fixture(scope="module")
def small():
    return small_method()


# ---------------------------------------------------------------------------
# Calibration: Z_B and epochs against the reference values and closed forms
# ---------------------------------------------------------------------------


def mnist_calibration(batch_size, **kw):
    args = {
        "num_rows": N_MNIST,
        "strong_convexity": M_MNIST,
        "step_size": 1 / L_MNIST,
        "sigma": 0.03,
        "clip_norm": 1.0,
        "batch_size": batch_size,
        "epsilon": 1.0,
        "delta": 1 / N_MNIST,
    }
    args.update(kw)
    return noisy_sgd_calibration(**args)


@pytest.mark.parametrize(
    "batch_size, z_b, epochs",
    [(128, 0.0604, 1), (512, 0.0224, 1), (N_MNIST, 0.01393, 2)],
)
def test_step_radius_and_epochs_match_reference_and_closed_form(
    batch_size, z_b, epochs
):
    cal = mnist_calibration(batch_size, max_requests=1)
    assert cal.step_radius == pytest.approx(z_b, rel=2e-3)
    eta = 1 / L_MNIST
    c = 1 - eta * M_MNIST
    closed = 2 * eta / (batch_size * (1 - c ** (N_MNIST / batch_size)))
    assert cal.step_radius == pytest.approx(closed, rel=1e-12)
    assert cal.radii == (pytest.approx(closed, rel=1e-12),)
    assert cal.epochs == (epochs,) and cal.epsilons[0] <= 1.0
    # The loose bound in closed form: min_α αA + B/(α−1) = A + 2√(AB).
    A = closed**2 * c ** (2 * epochs * N_MNIST / batch_size) / (2 * eta * 0.03**2)
    B = math.log(N_MNIST)
    assert cal.epsilons[0] == pytest.approx(A + 2 * math.sqrt(A * B), rel=1e-6)
    assert cal.noise_std == pytest.approx(math.sqrt(2 * eta) * 0.03, rel=1e-12)


@pytest.mark.parametrize(
    "batch_size, z_b", [(128, 0.0604), (512, 0.0224), (N_MNIST, 0.01393)]
)
def test_factory_plan_derives_the_constants_and_the_reference_radius(batch_size, z_b):
    """The factory's own resolution for models.linear on MNIST (d = 784)."""
    plan = noisy_sgd_plan(
        models.linear(784),
        num_rows=N_MNIST,
        lam=M_MNIST,
        sigma=0.03,
        radius=100.0,
        epsilon=1.0,
        delta=1 / N_MNIST,
        batch_size=batch_size,
        train_epochs=100,
    )
    assert plan.constants.step_size == pytest.approx(1 / L_MNIST, rel=1e-12)
    assert plan.calibration.step_radius == pytest.approx(z_b, rel=2e-3)
    assert plan.calibration.radii[0] == pytest.approx(plan.calibration.step_radius)
    assert plan.calibration.unlimited and max(plan.calibration.epsilons) <= 1.0


def test_sequential_radius_is_the_linear_w_infinity_recursion():
    cal = mnist_calibration(N_MNIST, max_requests=6)
    c = 1 - M_MNIST / L_MNIST
    z = 0.0
    for k, z_s, after in zip(cal.epochs, cal.radii, cal.radii_after):
        z = z + cal.step_radius
        assert z_s == pytest.approx(z, rel=1e-9)
        z = z * c**k
        assert after == pytest.approx(z, rel=1e-9)
    assert max(cal.epsilons) <= 1.0


@pytest.mark.parametrize("batch_size", [128, N_MNIST])
def test_unlimited_tail_bounds_every_later_request(batch_size):
    """With max_requests=None the last K serves every later request: iterate
    the exact recursion 300 more requests and check the tail bounds them."""
    cal = mnist_calibration(batch_size)
    assert cal.unlimited
    cfg = cal.config
    state = cur.wsgd_init()
    for k in cal.epochs[:-1]:
        state = cur.wsgd_update(state, cfg, removed=1, epochs=k)
    k_tail = cal.epochs[-1]
    worst_eps = worst_z = 0.0
    for _ in range(300):
        state = cur.wsgd_update(state, cfg, removed=1, epochs=k_tail)
        worst_eps = max(worst_eps, cur.wsgd_epsilon(state, cfg, 1 / N_MNIST)[0])
        worst_z = max(worst_z, state.pre_radius)
    assert worst_eps <= cal.epsilons[-1] <= 1.0
    assert worst_z <= cal.radii[-1] * (1 + 1e-12)
    # The bound is not loose by much: the radius approaches it.
    assert worst_z >= 0.98 * cal.radii[-1]


def test_method_charges_carry_the_reference_calibration():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(N_MNIST, 2))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    data = Data(jnp.asarray(X, jnp.float32), jnp.asarray(np.sign(X[:, 0]), jnp.float32))
    for batch_size, z_b, epochs in ((128, 0.0604, 1),):  # b = 512, n: calibration only
        m = noisy_sgd(
            models.linear(2),
            num_rows=N_MNIST,
            lam=M_MNIST,
            sigma=0.03,
            radius=100.0,
            epsilon=1.0,
            delta=1 / N_MNIST,
            batch_size=batch_size,
            train_epochs=1,
            max_requests=1,
            probe_iters=0,
        )
        state, _ = m.train(jax.random.key(0), data)
        new, charge, info = m.unlearn(jax.random.key(1), state, jnp.array([7]), data)
        assert int(charge.epochs) == int(info.epochs) == epochs
        assert float(charge.radius) == pytest.approx(z_b, rel=2e-3)
        assert float(charge.epsilon) <= 1.0 and bool(charge.certified)
        assert int(new.total_epochs) == 1 + epochs


# ---------------------------------------------------------------------------
# Cyclic mini-batches over a permutation fixed at training
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n, b", [(10, 4), (12, 3), (7, 7)])
def test_cyclic_batches_visit_every_row_once_per_epoch(n, b):
    perm = jax.random.permutation(jax.random.key(n), n)
    batches = np.asarray(cyclic_batches(perm, b))
    assert batches.shape == (-(-n // b), b)
    flat = batches.ravel()
    np.testing.assert_array_equal(flat[:n], np.asarray(perm))  # in permutation order
    assert np.all(flat[n:] == -1)  # padding only at the end
    assert sorted(flat[flat >= 0].tolist()) == list(range(n))


def reference_trajectory(
    X, y, perm, keep_by_epoch, *, lam, eta, b, radius, fixed_batch=False
):
    """Float64 NumPy PNSGD (noise-free): cyclic batches over ``perm``."""
    theta = np.zeros(X.shape[1])
    n = X.shape[0]
    batches = [perm[j : j + b] for j in range(0, n, b)]
    for keep in keep_by_epoch:
        for j, rows in enumerate(batches):
            rows = batches[0] if fixed_batch else rows
            g = np.zeros_like(theta)
            for i in rows:
                if keep[i]:
                    g += -y[i] * X[i] / (1 + np.exp(y[i] * X[i] @ theta))
            theta = theta - eta * (g / b + lam * theta)
            norm = np.linalg.norm(theta)
            theta = theta if norm <= radius else theta * radius / norm
    return theta


def test_training_and_unlearning_follow_the_fixed_cyclic_order():
    """σ ≈ 0: the method's iterates equal a float64 re-implementation that takes a
    fresh batch each step, cycling over the permutation kept in the state;
    unlearning continues the same cycle with the removed row nulled."""
    n, d, b = 10, 3, 4
    data = tiny_data(n=n, d=d, seed=3)
    m = noisy_sgd(
        models.linear(d),
        num_rows=n,
        lam=0.2,
        sigma=1e-9,
        radius=0.3,
        epsilon=1.0,
        delta=1e-3,
        batch_size=b,
        train_epochs=3,
        unlearn_epochs=2,
        max_requests=1,
    )
    state, _ = m.train(jax.random.key(7), data)
    perm = np.asarray(state.perm)
    assert sorted(perm.tolist()) == list(range(n))
    X, y = np.asarray(data.x, np.float64), np.asarray(data.y, np.float64)
    eta = 1 / (0.25 + 0.2)  # η = 1/L derived for models.linear (rows of norm <= 1)
    kw = {"lam": 0.2, "eta": eta, "b": b, "radius": 0.3}
    full = np.ones(n, bool)
    want = reference_trajectory(X, y, perm, [full] * 3, **kw)
    np.testing.assert_allclose(state.params, want, rtol=1e-4, atol=1e-6)
    # Control: one batch drawn once and reused would be a different model.
    wrong = reference_trajectory(X, y, perm, [full] * 3, fixed_batch=True, **kw)
    assert not np.allclose(wrong, want, rtol=1e-3, atol=1e-4)
    removed = int(perm[5])
    new, charge, _ = m.unlearn(jax.random.key(8), state, np.array([removed]), data)
    kept = full.copy()
    kept[removed] = False
    want = reference_trajectory(X, y, perm, [full] * 3 + [kept] * 2, **kw)
    np.testing.assert_allclose(new.params, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(new.perm, state.perm)
    assert int(charge.epochs) == 2 and int(new.total_epochs) == 5


def test_permutation_comes_from_the_key(small):
    data = tiny_data()
    a, _ = small.train(jax.random.key(0), data)
    b, _ = small.train(jax.random.key(0), data)
    np.testing.assert_array_equal(a.perm, b.perm)
    perms = {
        tuple(np.asarray(small.train(k, data)[0].perm).tolist())
        for k in jax.random.split(jax.random.key(1), 4)
    }
    assert len(perms) > 1
    assert all(sorted(p) == list(range(8)) for p in perms)


def chi2_two_sided_p(z: np.ndarray) -> float:
    stat, dof = float(np.sum(z**2)), z.size
    return 2 * min(scipy.stats.chi2.cdf(stat, dof), scipy.stats.chi2.sf(stat, dof))


def test_noise_of_every_step_matches_the_closed_form():
    """Rows x = 0 (zero loss gradients), n = 4, b = 2: one epoch is two steps,
    θ = (1 − ηλ)ξ₁ + ξ₂ with ξ ~ N(0, 2ησ²): variance 2ησ²(1 + (1 − ηλ)²)."""
    data = Data(jnp.zeros((4, 3), jnp.float32), jnp.asarray([1.0, -1.0, 1.0, -1.0]))
    m = noisy_sgd(
        models.linear(3),
        num_rows=4,
        lam=0.5,
        sigma=0.2,
        radius=1e3,
        epsilon=1.0,
        delta=1e-3,
        batch_size=2,
        train_epochs=1,
        unlearn_epochs=0,
        max_requests=1,
    )
    states, _ = jax.vmap(lambda k: m.train(k, data))(
        jax.random.split(jax.random.key(2), 5000)
    )
    eta = 1 / 0.75
    var = 2 * eta * 0.2**2 * (1 + (1 - eta * 0.5) ** 2)
    z = np.asarray(states.params, np.float64).ravel() / math.sqrt(var)
    assert chi2_two_sided_p(z) > ALPHA
    assert scipy.stats.kstest(z, "norm").pvalue > ALPHA
    # Controls: noise of one step only, or a 5% scale error, are rejected.
    assert chi2_two_sided_p(z * math.sqrt(var / (2 * eta * 0.2**2))) < ALPHA
    assert chi2_two_sided_p(z / 1.05) < ALPHA


# ---------------------------------------------------------------------------
# Two-sample test of the certificate (see tests/test_method_langevin.py)
# ---------------------------------------------------------------------------
#
# If the unlearned and retrained laws are (ε, δ)-indistinguishable, each 1-D
# projection has Kolmogorov distance <= TV(ε, δ) = (e^ε − 1)(1 − δ)/(e^ε + 1) + δ.
# DKW (Massart) over two samples of N and two directions: the statistic exceeds
# TV + 2a, a = √(ln(8/ALPHA)/(2N)), with probability <= ALPHA. The comparator
# retrains T = 30 epochs (W∞ to its limit <= 2R·c^{60} with c = 1/3, far below
# float32); the controls are no unlearning epochs, and noise scaled down 4x
# with the epochs calibrated for the full noise.

TS_N = 10_000
TS_EPS, TS_DELTA, TS_SIGMA = 0.2, 1e-5, 0.2
TS_X = np.array([[0.9, 0.3], [0.2, -0.95], [-0.6, 0.7], [-0.99, -0.1]])
TS_Y = np.array([1.0, -1.0, 1.0, 1.0])


def certified_tv(eps: float, delta: float) -> float:
    return (math.exp(eps) - 1) * (1 - delta) / (math.exp(eps) + 1) + delta


def ks_along(a, b, directions) -> float:
    return max(scipy.stats.ks_2samp(a @ u, b @ u).statistic for u in directions)


def ts_build(**kw):
    args = {
        "num_rows": 4,
        "lam": 0.5,
        "sigma": TS_SIGMA,
        "radius": 5.0,
        "epsilon": TS_EPS,
        "delta": TS_DELTA,
        "batch_size": 2,
        "train_epochs": 30,
    }
    args.update(kw)
    return noisy_sgd(models.linear(2), **args)


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
    return (
        method,
        data,
        keys,
        reference,
        directions,
        certified_tv(TS_EPS, TS_DELTA) + 2 * a,
    )


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
    assert float(charge.radius[0]) > 0
    assert ks_along(params, reference, directions) <= threshold


def test_two_sample_no_unlearning_epochs_is_caught(two_sample):
    _, data, keys, reference, directions, threshold = two_sample
    params, charge = ts_unlearned(ts_build(unlearn_epochs=0), data, keys)
    assert not bool(charge.certified[0])
    assert ks_along(params, reference, directions) > threshold


def test_two_sample_noise_scaled_down_is_caught(two_sample):
    _, data, keys, reference, directions, threshold = two_sample
    k = noisy_sgd_calibration(
        num_rows=4,
        strong_convexity=0.5,
        step_size=1 / 0.75,
        sigma=TS_SIGMA,
        clip_norm=1.0,
        batch_size=2,
        epsilon=TS_EPS,
        delta=TS_DELTA,
        radius=5.0,
    ).epochs[0]
    params, _ = ts_unlearned(ts_build(sigma=TS_SIGMA / 4, unlearn_epochs=k), data, keys)
    assert ks_along(params, reference, directions) > threshold


# ---------------------------------------------------------------------------
# flax nnx and linen MLPs under jit and vmap
# ---------------------------------------------------------------------------

MLP_ARGS = {
    "num_rows": 8,
    "lam": 0.1,
    "sigma": 0.01,
    "radius": 20.0,
    "epsilon": 1.0,
    "delta": 1e-3,
    "batch_size": 4,
    "train_epochs": 5,
    "learning_rate": 0.1,
    "clip_norm": 1.0,
    "allow_nonconvex": True,
    "unlearn_epochs": 2,
    "max_requests": 2,
}


@pytest.fixture(scope="module")
def mlps():
    nnx_model, _ = models.from_nnx(models.init_nnx_mlp(jax.random.key(0), (2, 8, 2)))
    module, variables = models.init_linen_mlp(jax.random.key(1), (2, 8, 2))
    params = jax.tree.unflatten(
        jax.tree.structure(variables["params"]), jax.tree.leaves(nnx_model.params)
    )
    linen_model = models.from_linen(module, {"params": params})
    return {
        "nnx": noisy_sgd(nnx_model, **MLP_ARGS),
        "linen": noisy_sgd(linen_model, **MLP_ARGS),
    }


def test_nnx_and_linen_mlps_under_jit_and_vmap(mlps):
    data = tiny_data(labels="int")
    keys = jax.random.split(jax.random.key(5), 3)
    masks = jnp.ones((3, 8), bool).at[jnp.arange(3), jnp.arange(3)].set(False)
    out = {}
    for name, m in mlps.items():
        states, charges = jax.jit(jax.vmap(m.train, in_axes=(0, None, 0)))(
            keys, data, masks
        )
        assert all(leaf.shape[0] == 3 for leaf in jax.tree.leaves(states.params))
        assert bool(jnp.all(charges.valid)) and not bool(jnp.any(charges.certified))
        new, charges, info = jax.jit(jax.vmap(m.unlearn, in_axes=(0, 0, None, None)))(
            keys, states, jnp.array([6]), data
        )
        assert bool(jnp.all(info.valid)) and np.all(np.asarray(charges.epochs) == 2)
        assert not bool(jnp.any(new.mask[:, 6])) and not bool(
            jnp.any(charges.certified)
        )
        assert m.predict(jax.tree.map(lambda x: x[0], new.params), data.x).shape == (8,)
        out[name] = jax.tree.leaves(states.params) + jax.tree.leaves(new.params)
    for a, b in zip(out["nnx"], out["linen"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# Errors: eager ValueError; under jit a poisoned charge and an unchanged model
# ---------------------------------------------------------------------------


def assert_poisoned_and_unchanged(old, new, charge):
    assert not bool(charge.valid) and not bool(charge.certified)
    assert math.isinf(float(charge.epsilon)) and math.isinf(float(charge.radius))
    assert int(charge.epochs) == 0 and int(charge.num_removed) == 0
    np.testing.assert_array_equal(new.params, old.params)
    np.testing.assert_array_equal(new.mask, old.mask)
    assert int(new.position) == int(old.position)


def test_request_for_a_removed_row_and_past_the_schedule(small):
    data = tiny_data()
    state, _ = small.train(jax.random.key(0), data)
    state, charge, _ = small.unlearn(jax.random.key(1), state, np.array([4]), data)
    assert bool(charge.certified) and int(charge.position) == 1
    with pytest.raises(ValueError, match="already removed"):
        small.unlearn(jax.random.key(2), state, np.array([4]), data)
    new, charge, _ = jax.jit(small.unlearn)(
        jax.random.key(2), state, jnp.array([4]), data
    )
    assert_poisoned_and_unchanged(state, new, charge)
    state, charge, _ = small.unlearn(jax.random.key(3), state, np.array([5]), data)
    assert int(charge.position) == 2
    with pytest.raises(ValueError, match="retrain"):
        small.unlearn(jax.random.key(4), state, np.array([6]), data)
    new, charge, _ = jax.jit(small.unlearn)(
        jax.random.key(4), state, jnp.array([6]), data
    )
    assert_poisoned_and_unchanged(state, new, charge)


def test_nan_data_and_mismatched_pytrees(small):
    data = tiny_data()
    state, _ = small.train(jax.random.key(0), data)
    bad = Data(data.x.at[2, 0].set(jnp.inf), data.y)
    with pytest.raises(ValueError, match="finite"):
        small.unlearn(jax.random.key(1), state, np.array([0]), bad)
    new, charge, _ = jax.jit(small.unlearn)(
        jax.random.key(1), state, jnp.array([0]), bad
    )
    assert_poisoned_and_unchanged(state, new, charge)
    for params in (jnp.zeros(3), [jnp.zeros(2)]):
        with pytest.raises(ValueError, match="Mismatched parameter pytree"):
            small.unlearn(
                jax.random.key(1), state._replace(params=params), np.array([0]), data
            )
    with pytest.raises(ValueError, match="perm"):
        small.unlearn(
            jax.random.key(1), state._replace(perm=state.perm[:4]), np.array([0]), data
        )


def test_refusals_at_construction():
    with pytest.raises(ValueError, match="not strongly convex"):
        small_method(lam=0.0)
    with pytest.raises(ValueError, match="adjacency='replace' only"):
        small_method(adjacency="remove")
    with pytest.raises(ValueError, match="batch_size"):
        small_method(batch_size=9)
    model, _ = models.from_nnx(models.init_nnx_mlp(jax.random.key(0), (2, 4, 2)))
    with pytest.raises(ValueError, match="Cannot derive"):
        noisy_sgd(
            model, **{k: v for k, v in MLP_ARGS.items() if k != "allow_nonconvex"}
        )


def test_declared_constants_contradicted_by_the_data():
    lin = models.linear(2)
    concave = models.Model(
        lin.params, lin.apply, lambda p, x, y: -(jnp.dot(p, x) ** 2), lin.predict
    )
    m = noisy_sgd(
        concave,
        num_rows=8,
        lam=0.1,
        sigma=0.1,
        radius=5.0,
        epsilon=1.0,
        delta=1e-3,
        batch_size=2,
        train_epochs=2,
        loss_constants=LossConstants(1.0, 1.0),
        unlearn_epochs=1,
        max_requests=1,
    )
    with pytest.raises(ValueError, match="Hessian eigenvalue"):
        m.train(jax.random.key(0), tiny_data())
    _, charge = jax.jit(m.train)(jax.random.key(0), tiny_data(), None)
    assert not bool(charge.valid) and math.isinf(float(charge.epsilon))


def test_state_never_holds_the_data(small):
    data = tiny_data()
    state, charge = small.train(jax.random.key(0), data)
    assert isinstance(state, NoisySGDState) and int(charge.epochs) == 10
    for leaf in jax.tree.leaves(state):
        assert np.shape(leaf) != np.shape(data.x)
