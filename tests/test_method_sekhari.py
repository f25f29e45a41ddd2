"""Contract tests for dpunlearn.methods.sekhari (Sekhari et al., NeurIPS 2021).

Statistical tests state their false-failure rate; each has a control that must
fail (a miscalibrated or missing unlearning step), so a test that cannot fail
is caught.
"""

from __future__ import annotations

import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.flatten_util import ravel_pytree

from dpunlearn import models
from dpunlearn.accounting import currencies
from dpunlearn.methods.base import Data

# The module (``dpunlearn.methods.sekhari`` is the factory re-exported by the package).
sk = importlib.import_module("dpunlearn.methods.sekhari")

M_LOGISTIC = 1.0 / (
    6.0 * math.sqrt(3.0)
)  # |σ''| bound: Hessian-Lipschitz constant, ‖x‖ <= 1


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def make_binary(n=200, d=4, seed=0, dtype=np.float32, scale=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 0.2
    X *= scale / np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(X @ rng.normal(size=d) + 0.3 * rng.normal(size=n) > 0, 1.0, -1.0)
    return Data(jnp.asarray(X, dtype), jnp.asarray(y, dtype))


def make_method(d=4, *, dtype=jnp.float32, **kw):
    cfg = {
        "lam": 0.5,
        "epsilon": 1.0,
        "delta": 1e-5,
        "capacity": 5,
        "hessian_lipschitz": M_LOGISTIC,
        "gradient_bound": 1.5,
    }
    cfg.update(kw)
    return sk.sekhari(models.linear(d, dtype=dtype), **cfg)


def without(n, rows):
    mask = np.ones(n, bool)
    mask[np.asarray(rows)] = False
    return mask


# ---------------------------------------------------------------------------
# Noise scale: closed forms and the §12.5 test vectors.
# ---------------------------------------------------------------------------

VECTOR_1 = {
    "n": 10_000,
    "capacity": 1,
    "epsilon": 1.0,
    "delta": 1e-5,
    "lam": 0.01,
    "hessian_lipschitz": M_LOGISTIC,
    "gradient_bound": 1.0,
}
VECTOR_2 = {
    "n": 1000,
    "capacity": 5,
    "epsilon": 0.5,
    "delta": 1e-6,
    "lam": 0.1,
    "hessian_lipschitz": M_LOGISTIC,
    "gradient_bound": 2.0,
}


@pytest.mark.parametrize(
    "vector, gamma, classic, analytic",
    [(VECTOR_1, 1.925e-3, 9.324e-3, 7.180e-3), (VECTOR_2, 1.925e-2, 0.2040, 0.1551)],
)
def test_noise_std_matches_test_vectors(vector, gamma, classic, analytic):
    geo = {
        k: vector[k]
        for k in ("n", "capacity", "lam", "hessian_lipschitz", "gradient_bound")
    }
    assert sk.sensitivity(**geo) == pytest.approx(gamma, rel=5e-4)
    assert sk.noise_std(**vector) == pytest.approx(classic, rel=5e-4)
    assert sk.noise_std(**vector, calibration="analytic") == pytest.approx(
        analytic, rel=5e-4
    )
    # At tol = 0 the method's σ is the accountant's, bit for bit.
    assert sk.noise_std(**vector) == currencies.sekhari_sigma(
        vector["epsilon"],
        vector["delta"],
        hessian_lipschitz=vector["hessian_lipschitz"],
        lipschitz=vector["gradient_bound"],
        strong_convexity=vector["lam"],
        n=vector["n"],
        capacity=vector["capacity"],
    )
    # The paper's closed form σ = (γ/ε)·√(2 ln(1.25/δ)), γ = 2Mm²L²/(λ³n²).
    v = vector
    g = (
        2
        * v["hessian_lipschitz"]
        * v["capacity"] ** 2
        * v["gradient_bound"] ** 2
        / (v["lam"] ** 3 * v["n"] ** 2)
    )
    assert sk.noise_std(**vector) == pytest.approx(
        g / v["epsilon"] * math.sqrt(2 * math.log(1.25 / v["delta"])), rel=1e-12
    )


def test_tight_gamma_and_tolerance_terms():
    geo = {
        "n": 10_000,
        "lam": 0.01,
        "hessian_lipschitz": M_LOGISTIC,
        "gradient_bound": 1.0,
    }
    assert sk.sensitivity(capacity=1, tight=True, **geo) == pytest.approx(
        4.812e-4, rel=5e-4
    )
    assert sk.sensitivity(capacity=10, tight=True, **geo) == pytest.approx(
        4.821e-2, rel=5e-4
    )
    # The optimisation tolerance only ever adds noise, and vanishes with τ.
    base = sk.sensitivity(capacity=3, **geo)
    for tau in (1e-12, 1e-8, 1e-5):
        with_tau = sk.sensitivity(capacity=3, tol=tau, **geo)
        lam, M, L, n, m = 0.01, M_LOGISTIC, 1.0, 10_000, 3
        want = M / (2 * lam) * ((2 * (tau + m * L / n) / lam) ** 2 + (tau / lam) ** 2)
        assert with_tau == pytest.approx(want, rel=1e-12)
        assert with_tau > base
    assert sk.sensitivity(capacity=3, tol=1e-14, **geo) == pytest.approx(base, rel=1e-8)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("vector, calibration, want", [(VECTOR_1, "classic", 9.324e-3)])
def test_trained_sigma_is_the_test_vector(vector, calibration, want):
    # End to end: the method trained on n rows releases with the §12.5 σ
    # (x64: the default tol is 100·eps, so γ_τ/γ − 1 < 1e-8).
    data = make_binary(n=vector["n"], d=2, seed=1, dtype=np.float64, scale=0.9)
    method = sk.sekhari(
        models.linear(2, dtype=jnp.float64),
        lam=vector["lam"],
        epsilon=vector["epsilon"],
        delta=vector["delta"],
        capacity=vector["capacity"],
        hessian_lipschitz=vector["hessian_lipschitz"],
        gradient_bound=vector["gradient_bound"],
        calibration=calibration,
    )
    state, charge = method.train(jax.random.key(0), data)
    assert float(state.sigma) == pytest.approx(want, rel=5e-4)
    assert float(charge.sigma) == float(state.sigma)
    assert float(charge.epsilon) == vector["epsilon"] and bool(charge.valid)
    assert int(charge.num_removed) == 0


def test_classic_needs_epsilon_at_most_one():
    with pytest.raises(ValueError, match="epsilon"):
        make_method(epsilon=2.0)
    make_method(epsilon=2.0, calibration="analytic")


# ---------------------------------------------------------------------------
# The certificate: deterministic contract and a two-sample test of the laws.
# ---------------------------------------------------------------------------


@pytest.mark.usefixtures("x64")
def test_unlearned_point_within_gamma_of_retraining():
    # ‖w̄ − ŵ′‖ <= γ_τ after each cumulative request (the quantity σ is
    # calibrated to), against a retrain on the remaining rows polished the same
    # way. The tight γ (<= the paper's γ for m <= n/2) is the stricter check.
    data = make_binary(n=120, d=5, seed=2, dtype=np.float64)
    cfg = {"lam": 0.05, "capacity": 6, "gradient_bound": 2.0}
    method = make_method(
        5, dtype=jnp.float64, tight=True, calibration="analytic", **cfg
    )
    state, _ = method.train(jax.random.key(0), data)
    tol = 100 * np.finfo(np.float64).eps * 2.0  # the default
    geo = {
        "n": 120,
        "capacity": 6,
        "lam": 0.05,
        "hessian_lipschitz": M_LOGISTIC,
        "gradient_bound": 2.0,
        "tol": tol,
    }
    assert float(state.sigma) == pytest.approx(
        sk.noise_std(
            epsilon=1.0, delta=1e-5, calibration="analytic", tight=True, **geo
        ),
        rel=1e-12,
    )
    assert sk.sensitivity(tight=True, **geo) <= sk.sensitivity(**geo)
    # Adversarial deletions: the rows with the largest gradients at ŵ.
    margins = np.asarray(data.y) * np.asarray(data.x @ state.erm)
    order = np.argsort(margins)  # most misclassified first: largest |ℓ'|
    removed = []
    for request in (order[:2], order[2:4], order[4:6]):  # one request size: one compile
        state, charge, info = method.unlearn(
            jax.random.key(len(removed) + 1), state, np.asarray(request), data
        )
        removed += list(request)
        ref, _ = method.train(jax.random.key(99), data, without(120, removed))
        dist = np.linalg.norm(np.asarray(state.secret) - np.asarray(ref.secret))
        assert dist <= float(charge.sensitivity)
        assert int(charge.total_removed) == len(removed)
        assert int(charge.num_removed) == len(request)
        # Without the Newton step the model would be much farther away.
        assert (
            np.linalg.norm(np.asarray(state.erm) - np.asarray(ref.secret)) > 10 * dist
        )
        assert float(info.max_gradient_norm) <= 2.0


def _flat(tree_batch):
    return jax.vmap(lambda t: ravel_pytree(t)[0])(tree_batch)


def two_sample_pvalues(a, b, direction):
    """Per-coordinate two-sample KS p-values and one on a fixed projection."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ps = [scipy.stats.ks_2samp(a[:, j], b[:, j]).pvalue for j in range(a.shape[1])]
    ps.append(scipy.stats.ks_2samp(a @ direction, b @ direction).pvalue)
    return np.asarray(ps)


ALPHA = 1e-3  # family-wise false-failure rate (Bonferroni over p + 1 tests)


def test_unlearned_and_retrained_laws_agree_and_controls_fail():
    # N keys in one vmap: the released model after deleting U against the
    # retrained model on S \ U released through the same map with the same σ.
    # Under the certificate both are N(·, σ²I) with centres within γ; here
    # the centres agree to float32 rounding (asserted: shift/σ < 1e-3), so
    # the family of p + 1 KS tests at Bonferroni level ALPHA/(p+1) falsely
    # fails with probability <= 1.2e-3 (ALPHA, inflated by at most ×1.11 for
    # a KS shift <= 1e-3/√(2π) at N = 2000). Controls (must fail): the same
    # unlearned centre released with σ/10, and no unlearning at all.
    n, d, N = 200, 4, 2000
    data = make_binary(n=n, d=d, seed=3)
    method = make_method(d)
    state, _ = method.train(jax.random.key(0), data)
    margins = np.asarray(data.y) * np.asarray(data.x @ state.erm)
    U = np.argsort(margins)[:3]  # adversarial: largest gradients
    keys = jax.random.split(jax.random.key(1), 3 * N)
    k_unlearn, k_train, k_ref = keys[:N], keys[N : 2 * N], keys[2 * N :]

    unlearn = jax.vmap(lambda k: method.unlearn(k, state, U, data))
    new, charge, _ = unlearn(k_unlearn)
    unlearned = _flat(new.params)
    sigma = float(charge.sigma[0])
    assert np.all(np.asarray(charge.valid)) and np.all(
        np.asarray(charge.num_removed) == 3
    )
    assert sigma == pytest.approx(
        sk.noise_std(
            n=n,
            capacity=5,
            epsilon=1.0,
            delta=1e-5,
            lam=0.5,
            hessian_lipschitz=M_LOGISTIC,
            gradient_bound=1.5,
            tol=100 * float(np.finfo(np.float32).eps) * 1.5,
        ),
        rel=1e-5,
    )

    ref_states, _ = jax.vmap(lambda k: method.train(k, data, without(n, U)))(k_train)
    retrained = _flat(
        jax.vmap(lambda k, s: sk.reference_release(k, s, sigma))(k_ref, ref_states)
    )

    secret = np.asarray(new.secret[0], np.float64)
    shift = (
        np.linalg.norm(secret - np.asarray(ref_states.secret[0], np.float64)) / sigma
    )
    assert shift < 1e-3
    assert np.allclose(np.std(np.asarray(unlearned), axis=0), sigma, rtol=0.1)

    direction = np.random.default_rng(7).normal(size=d)
    direction /= np.linalg.norm(direction)
    level = ALPHA / (d + 1)
    assert two_sample_pvalues(unlearned, retrained, direction).min() >= level

    # Control 1: the unlearning step right, the noise ten times too small.
    one_state = jax.tree.map(lambda a: a[0], new)
    weak = _flat(
        jax.vmap(lambda k: sk.reference_release(k, one_state, sigma / 10))(k_unlearn)
    )
    assert two_sample_pvalues(weak, retrained, direction).min() < level
    # Control 2: the noise right, no unlearning (the trained model's centre).
    no_shift = np.linalg.norm(np.asarray(state.secret) - secret) / sigma
    assert no_shift > 0.5  # the deletion moves the model visibly at this σ
    stale = _flat(jax.vmap(lambda k: sk.reference_release(k, state, sigma))(k_unlearn))
    assert two_sample_pvalues(stale, retrained, direction).min() < level


# ---------------------------------------------------------------------------
# Refusals: eager ValueError, and under jit a poisoned charge and an unchanged model.
# ---------------------------------------------------------------------------


def assert_poisoned(old, new, charge):
    assert not bool(charge.valid)
    assert float(charge.epsilon) == math.inf
    assert int(charge.num_removed) == 0
    for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture(scope="module")
def trained():
    data = make_binary(n=40, d=3, seed=4)
    method = make_method(3, capacity=3)
    state, _ = method.train(jax.random.key(0), data)
    return method, state, data


def test_capacity_exceeded(trained):
    method, state, data = trained
    state, _, _ = method.unlearn(jax.random.key(1), state, np.array([0, 1]), data)
    with pytest.raises(ValueError, match="capacity=3"):
        method.unlearn(jax.random.key(2), state, np.array([2, 3]), data)
    new, charge, info = jax.jit(method.unlearn)(
        jax.random.key(2), state, jnp.array([2, 3]), data
    )
    assert not bool(info.within_capacity)
    assert_poisoned(state, new, charge)
    # Exactly at capacity is fine.
    _, charge, _ = method.unlearn(jax.random.key(3), state, np.array([2]), data)
    assert int(charge.total_removed) == 3 and bool(charge.valid)


def test_capacity_above_half_the_rows():
    data = make_binary(n=8, d=2, seed=5)
    with pytest.raises(ValueError, match="capacity=5"):
        make_method(2, capacity=5).train(jax.random.key(0), data)
    make_method(2, capacity=5, tight=True).train(jax.random.key(0), data)


def test_already_removed_row(trained):
    method, state, data = trained
    state, _, _ = method.unlearn(jax.random.key(1), state, np.array([4]), data)
    with pytest.raises(ValueError, match="already removed"):
        method.unlearn(jax.random.key(2), state, np.array([4]), data)
    new, charge, info = jax.jit(method.unlearn)(
        jax.random.key(2), state, jnp.array([4]), data
    )
    assert not bool(info.request_ok)
    assert_poisoned(state, new, charge)


def test_mismatched_pytrees(trained):
    method, state, data = trained
    other, _ = models.from_nnx(models.init_nnx_mlp(jax.random.key(0), (3, 4, 2)))
    bad = state._replace(params=other.params)
    with pytest.raises(ValueError, match="parameter structure"):
        method.unlearn(jax.random.key(1), bad, np.array([0]), data)
    with pytest.raises(ValueError, match="structure"):
        jax.jit(method.unlearn)(jax.random.key(1), bad, jnp.array([0]), data)
    wrong_shape = state._replace(params=jnp.zeros(5))
    with pytest.raises(ValueError, match="shaped like"):
        method.unlearn(jax.random.key(1), wrong_shape, np.array([0]), data)
    with pytest.raises(ValueError, match="model.loss"):
        method.train(jax.random.key(0), Data(jnp.ones((40, 5)), data.y))


def test_nan_in_data(trained):
    method, state, data = trained
    x = np.asarray(data.x).copy()
    x[6, 1] = np.nan
    bad = Data(jnp.asarray(x), data.y)
    with pytest.raises(ValueError, match="finite"):
        method.train(jax.random.key(0), bad)
    with pytest.raises(ValueError, match="finite"):
        method.unlearn(jax.random.key(1), state, np.array([6]), bad)
    new, charge, info = jax.jit(method.unlearn)(
        jax.random.key(1), state, jnp.array([6]), bad
    )
    assert not bool(info.finite)
    assert_poisoned(state, new, charge)
    _, charge = jax.jit(method.train)(jax.random.key(0), bad, jnp.ones(40, bool))
    assert not bool(charge.valid) and float(charge.epsilon) == math.inf


def test_gradient_bound_violated():
    data = make_binary(n=40, d=3, seed=4)
    method = make_method(3, gradient_bound=0.05)
    state, _ = method.train(jax.random.key(0), data)
    with pytest.raises(ValueError, match="gradient_bound=0.05"):
        method.unlearn(jax.random.key(1), state, np.array([0]), data)


def concave_model(d):
    # loss = softplus(−y w·x) − (c/2)(w·x)²: its Hessian has eigenvalue
    # about −c‖x‖² along x, so the regularised loss is not λ-strongly convex.
    base = models.linear(d)

    def loss(w, x, y):
        z = jnp.dot(w, x)
        return jax.nn.softplus(-y * z) - 0.5 * 2.0 * z * z / (1.0 + 0.01 * z * z)

    return base._replace(loss=loss)


def test_not_strongly_convex():
    with pytest.raises(ValueError, match="strongly convex"):
        make_method(lam=0.0)
    with pytest.raises(ValueError, match="strongly convex"):
        make_method(lam=-1.0)
    data = make_binary(n=40, d=3, seed=4)
    method = sk.sekhari(
        concave_model(3),
        lam=0.5,
        epsilon=1.0,
        delta=1e-5,
        capacity=3,
        hessian_lipschitz=1.0,
        gradient_bound=10.0,
    )
    with pytest.raises(ValueError, match="not lam-strongly convex"):
        method.train(jax.random.key(0), data)
    state, charge = jax.jit(method.train)(jax.random.key(0), data, jnp.ones(40, bool))
    assert not bool(charge.valid) and float(charge.epsilon) == math.inf
    assert float(charge.min_eigenvalue) < 0.5
    with pytest.raises(ValueError, match="poisoned"):
        method.unlearn(jax.random.key(1), state, np.array([0]), data)
    new, charge, info = jax.jit(method.unlearn)(
        jax.random.key(1), state, jnp.array([0]), data
    )
    assert not bool(info.trained_ok)
    assert_poisoned(state, new, charge)


# ---------------------------------------------------------------------------
# Any parameter pytree: logistic regression, an nnx MLP, the same MLP in linen.
# ---------------------------------------------------------------------------


def build_model(kind, d):
    if kind == "linear":
        return models.linear(d), make_binary(n=48, d=d, seed=6)
    rng = np.random.default_rng(6)
    X = rng.normal(size=(48, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = (X @ rng.normal(size=d) > 0).astype(np.int32)
    data = Data(jnp.asarray(X, jnp.float32), jnp.asarray(y))
    if kind == "nnx":
        model, _ = models.from_nnx(models.init_nnx_mlp(jax.random.key(1), (d, 6, 2)))
    else:
        module, variables = models.init_linen_mlp(jax.random.key(1), (d, 6, 2))
        model = models.from_linen(module, variables)
    return model, data


@pytest.mark.parametrize("kind", ["nnx"])
def test_mlp_refused_unless_convexity_waived(kind):
    # The certificate needs convexity: an MLP's Hessian at its solution has
    # eigenvalues below λ, and the default check refuses it.
    model, data = build_model(kind, 3)
    strict = sk.sekhari(
        model,
        lam=0.1,
        epsilon=1.0,
        delta=1e-5,
        capacity=2,
        hessian_lipschitz=1.0,
        gradient_bound=10.0,
        tol=0.05,
    )
    with pytest.raises(ValueError, match="not lam-strongly convex"):
        strict.train(jax.random.key(0), data)


@pytest.mark.parametrize("kind", ["linear", "nnx", "linen"])
def test_any_pytree_under_jit_and_vmap(kind):
    # A ReLU MLP is neither convex nor smooth at its kinks: Newton reaches a
    # gradient norm of about 1e-2 only, so it runs with tol=0.05 (which enters
    # σ) and check_convexity=False (its ε is then conditional, see the module).
    d = 3
    model, data = build_model(kind, d)
    convex = kind == "linear"
    tol = 1e-4 if convex else 0.05
    method = sk.sekhari(
        model,
        lam=0.1,
        epsilon=1.0,
        delta=1e-5,
        capacity=2,
        hessian_lipschitz=1.0,
        gradient_bound=10.0,
        tol=tol,
        check_convexity=convex,
    )
    key = jax.random.key(0)
    state, charge = method.train(key, data)
    assert jax.tree.structure(state.params) == jax.tree.structure(model.params)
    assert bool(charge.valid) and bool(charge.convexity_checked) == convex
    assert float(jnp.linalg.norm(state.grad)) <= tol

    keys = jax.random.split(jax.random.key(1), 3)
    batch, charges = jax.jit(jax.vmap(method.train, in_axes=(0, None, None)))(
        jnp.concatenate([key[None], keys[:2]]), data, jnp.ones(48, bool)
    )
    assert np.all(np.asarray(charges.valid))
    np.testing.assert_allclose(batch.erm[0], state.erm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        _flat(batch.params)[0], ravel_pytree(state.params)[0], rtol=1e-5, atol=1e-5
    )
    flat_params = np.asarray(_flat(batch.params))
    assert not np.allclose(flat_params[1], flat_params[2])  # fresh noise per key
    np.testing.assert_allclose(batch.secret[1], batch.secret[2], rtol=1e-6, atol=1e-7)

    new, charge, _info = jax.jit(method.unlearn)(
        keys[2], state, jnp.array([5, 9]), data
    )
    assert bool(charge.valid) and int(charge.total_removed) == 2
    assert not bool(new.mask[5]) and not bool(new.mask[9]) and int(new.mask.sum()) == 46
    assert jax.tree.structure(new.params) == jax.tree.structure(model.params)
    assert np.all(np.isfinite(np.asarray(new.secret)))
    if kind == "nnx":  # the eager path (host checks, then the same program)
        eager, _, _ = method.unlearn(keys[2], state, np.array([5, 9]), data)
        np.testing.assert_allclose(eager.secret, new.secret, rtol=1e-5, atol=1e-6)
    out = method.predict(new.params, data.x)
    assert out.shape == (48,)
