"""Contract tests for dpunlearn.certified (Guo et al., ICML 2020).

Every guarantee is checked against the quantity it bounds. Statistical tests
state their false-failure rate.
"""

from __future__ import annotations

import dataclasses
import math

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from dpunlearn import certified, solvers

x64 = pytest.fixture(autouse=False)(lambda: (yield from _x64()))


def _x64():
    with jax.enable_x64(True):
        yield


def make_binary(n=160, d=8, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    w_true = rng.normal(size=d)
    X = rng.normal(size=(n, d)) + 0.3
    X /= np.linalg.norm(X, axis=1, keepdims=True) * rng.uniform(1.0, 1.5, size=(n, 1))
    y = np.where(X @ w_true + 0.3 * rng.normal(size=n) > 0, 1.0, -1.0)
    return X.astype(dtype), y.astype(dtype)


def make_multiclass(n=150, d=6, k=3, seed=1):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d))
    y = np.arange(n) % k
    X = centers[y] + 0.8 * rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, y


# ---------------------------------------------------------------------------
# Exactness and optimality.
# ---------------------------------------------------------------------------


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("batch", [1, 3])
def test_ridge_removal_equals_retraining(batch):
    # γ = 0 for the squared loss: the Newton step lands exactly on the optimum of
    # the remaining data with the same perturbation b (same key).
    rng = np.random.default_rng(3)
    X, _ = make_binary(n=120, d=7)
    y = X @ rng.normal(size=7) + 0.1 * rng.normal(size=120)
    key = jax.random.key(11)
    state = certified.train(key, X, y, lam=1e-2, sigma=2.0, loss="ridge", tol=1e-12)
    idx = np.arange(4 * batch).reshape(4, batch) * 5 + 2
    for step in idx:
        state, info = certified.remove(state, step, X, y)
        assert float(info.data_dependent_bound) == 0.0
        assert float(info.worst_case_bound) == 0.0
    mask = np.ones(120, bool)
    mask[idx.reshape(-1)] = False
    retrained = certified.train(
        key, X, y, lam=1e-2, sigma=2.0, loss="ridge", mask=mask, tol=1e-12
    )
    np.testing.assert_allclose(state.params, retrained.params, rtol=0, atol=1e-11)
    assert float(certified.true_residual(state, X, y)) < 1e-10


@pytest.mark.usefixtures("x64")
def test_unperturbed_training_matches_sklearn():
    from sklearn.linear_model import LogisticRegression

    X, y = make_binary(n=200, d=6)
    lam = 1e-2
    state = certified.train(jax.random.key(0), X, y, lam=lam, sigma=0.0, tol=1e-12)
    ref = LogisticRegression(
        C=1 / (len(y) * lam), fit_intercept=False, tol=1e-12, max_iter=10_000
    )
    ref.fit(X, y)
    np.testing.assert_allclose(state.params, ref.coef_[0], rtol=1e-6, atol=1e-8)


@pytest.mark.usefixtures("x64")
def test_newton_removal_is_closer_to_retrained_optimum_than_original():
    X, y = make_binary(n=200, d=8, seed=4)
    key = jax.random.key(5)
    state = certified.train(key, X, y, lam=1e-3, sigma=1.0, tol=1e-12)
    idx = np.array([1, 17, 33, 50, 71])
    removed, _ = certified.remove(state, idx, X, y)
    mask = np.ones(len(y), bool)
    mask[idx] = False
    retrained = certified.train(key, X, y, lam=1e-3, sigma=1.0, mask=mask, tol=1e-12)
    before = np.linalg.norm(state.params - retrained.params)
    after = np.linalg.norm(removed.params - retrained.params)
    assert after < 0.05 * before, (after, before)


# ---------------------------------------------------------------------------
# The certificate: bounds hold against the true residual.
# ---------------------------------------------------------------------------


@pytest.mark.usefixtures("x64")
@hypothesis.settings(max_examples=12, deadline=None, derandomize=True)
@hypothesis.given(
    seed=st.integers(0, 10_000),
    batch=st.sampled_from([1, 2, 5]),
    steps=st.integers(1, 6),
    gamma=st.sampled_from(["paper", "tight"]),
    bound_form=st.sampled_from(["corollary1", "integral"]),
    solver=st.sampled_from(["pcg", "cholesky"]),
    correct=st.booleans(),
)
def test_true_residual_never_exceeds_cumulative_bound(
    seed, batch, steps, gamma, bound_form, solver, correct
):
    X, y = make_binary(n=150, d=8, seed=seed % 7)
    rng = np.random.default_rng(seed)
    # Small λ and σ: large steps, so the bound is exercised, not vacuous.
    state = certified.train(
        jax.random.key(seed),
        X,
        y,
        lam=3e-4,
        sigma=0.5,
        tol=1e-10,
        gamma=gamma,
        bound_form=bound_form,
        solver=solver,
        correct_residual=correct,
    )
    order = rng.permutation(len(y))[: batch * steps].reshape(steps, batch)
    for idx in order:
        try:
            state, info = certified.remove(state, idx, X, y)
        except ValueError as err:  # a class emptied: allowed to refuse explicitly
            assert "label" in str(err)
            return
        residual = float(certified.true_residual(state, X, y))
        assert residual <= float(info.cumulative_bound) * (1 + 1e-9) + 1e-12
        assert float(info.data_dependent_bound) <= float(info.worst_case_bound)
        # One head: the ℓ2 combination is the plain sum of the two charges.
        np.testing.assert_allclose(
            info.bound_increment,
            info.data_dependent_bound + info.solve_residual,
            rtol=1e-12,
        )


@pytest.mark.usefixtures("x64")
def test_residual_correction_keeps_the_bound_from_accumulating():
    X, y = make_binary(n=300, d=10, seed=3)
    state = certified.train(jax.random.key(3), X, y, lam=1e-3, sigma=1.0, tol=1e-4)
    corrected = certified.train(
        jax.random.key(3), X, y, lam=1e-3, sigma=1.0, tol=1e-4, correct_residual=True
    )
    idx = np.arange(40).reshape(20, 2)
    plain, pi = certified.remove_sequence(state, idx, X, y)
    fixed, fi = certified.remove_sequence(corrected, idx, X, y)
    true_plain = float(certified.true_residual(plain, X, y))
    true_fixed = float(certified.true_residual(fixed, X, y))
    assert true_fixed <= float(fi.cumulative_bound[-1])
    assert true_plain <= float(pi.cumulative_bound[-1])
    # β is the last step's bound, not a running sum, and the training residual
    # (tol = 1e-4 leaves a visible one) is cancelled by the first step.
    np.testing.assert_allclose(fi.cumulative_bound, fi.bound_increment, rtol=1e-12)
    assert float(fi.cumulative_bound[-1]) < 0.2 * float(pi.cumulative_bound[-1])
    assert true_fixed < 0.1 * true_plain
    assert np.all(
        np.asarray(fi.data_dependent_bound) <= np.asarray(fi.worst_case_bound)
    )
    # The same model to first order: both approximate the retrained optimum.
    np.testing.assert_allclose(
        fixed.params, plain.params, rtol=0, atol=1e-2 * np.linalg.norm(plain.params)
    )


@pytest.mark.usefixtures("x64")
def test_integral_bound_is_at_most_half_of_corollary1():
    X, y = make_binary(n=150, d=8, seed=2)
    idx = np.arange(12).reshape(6, 2)
    trained = {
        form: certified.train(
            jax.random.key(2), X, y, lam=1e-3, sigma=1.0, bound_form=form
        )
        for form in ("corollary1", "integral")
    }
    _, a = certified.remove_sequence(trained["corollary1"], idx, X, y)
    _, b = certified.remove_sequence(trained["integral"], idx, X, y)
    assert np.all(
        np.asarray(b.data_dependent_bound)
        <= 0.5 * np.asarray(a.data_dependent_bound) + 1e-15
    )


@pytest.mark.usefixtures("x64")
def test_cumulative_bound_charges_training_and_solve_residuals():
    X, y = make_binary(n=150, d=8, seed=1)
    state = certified.train(jax.random.key(3), X, y, lam=1e-3, sigma=1.0, tol=1e-4)
    assert float(state.training_residual) > 0
    np.testing.assert_allclose(state.grad_residual_bound, state.training_residual)
    np.testing.assert_allclose(
        float(state.training_residual),
        float(certified.true_residual(state, X, y)),
        rtol=1e-6,
    )
    new, infos = certified.remove_sequence(state, np.arange(8).reshape(4, 2), X, y)
    expected = float(state.training_residual) + float(np.sum(infos.bound_increment))
    np.testing.assert_allclose(float(new.grad_residual_bound), expected, rtol=1e-12)
    assert np.all(np.asarray(infos.solve_residual) > 0)


@pytest.mark.usefixtures("x64")
def test_sequence_equals_repeated_single_removals():
    X, y = make_binary(n=150, d=8, seed=5)
    state = certified.train(jax.random.key(4), X, y, lam=1e-3, sigma=1.0)
    idx = np.array([[3, 9], [12, 40], [77, 5]])
    seq_state, seq_info = certified.remove_sequence(state, idx, X, y)
    s = state
    for t, row in enumerate(idx):
        s, info = certified.remove(s, row, X, y)
        np.testing.assert_allclose(
            info.cumulative_bound, seq_info.cumulative_bound[t], rtol=1e-10
        )
    np.testing.assert_allclose(s.params, seq_state.params, rtol=1e-10, atol=1e-12)
    assert int(seq_state.num_removed) == 6


@pytest.mark.usefixtures("x64")
def test_solvers_agree():
    X, y = make_binary(n=150, d=8, seed=6)
    out = {
        s: certified.remove(
            certified.train(jax.random.key(6), X, y, lam=1e-3, sigma=1.0, solver=s),
            np.array([2, 3]),
            X,
            y,
        )
        for s in ("pcg", "cholesky", "cg")
    }
    for s in ("cholesky", "cg"):
        np.testing.assert_allclose(
            out[s][0].params, out["pcg"][0].params, rtol=1e-8, atol=1e-10
        )
        np.testing.assert_allclose(
            out[s][1].data_dependent_bound,
            out["pcg"][1].data_dependent_bound,
            rtol=1e-6,
        )


@pytest.mark.usefixtures("x64")
def test_matrix_free_path_matches_dense():
    X, y = make_binary(n=150, d=8, seed=7)
    dense = certified.train(jax.random.key(7), X, y, lam=1e-3, sigma=1.0, tol=1e-11)
    free = certified.train(
        jax.random.key(7),
        X,
        y,
        lam=1e-3,
        sigma=1.0,
        tol=1e-11,
        matrix_free=True,
        norm_method="frobenius",
    )
    assert free.precond is None
    np.testing.assert_allclose(free.params, dense.params, rtol=1e-7, atol=1e-9)
    d2, di = certified.remove(dense, np.array([4]), X, y)
    f2, fi = certified.remove(free, np.array([4]), X, y)
    np.testing.assert_allclose(f2.params, d2.params, rtol=1e-7, atol=1e-9)
    # The Frobenius-type norm bound is looser, never tighter.
    assert float(fi.data_dependent_bound) >= float(di.data_dependent_bound) * (1 - 1e-9)


@pytest.mark.usefixtures("x64")
def test_one_vs_rest_heads_combine_in_l2():
    # K heads released together are one Gaussian mechanism in K·d dimensions:
    # the residual of all heads is bounded by √(Σ β_h²), not Σ β_h.
    X, y = make_multiclass()
    k = 3
    state = certified.train(jax.random.key(8), X, y, lam=1e-3, sigma=1.0, num_classes=k)
    assert state.params.shape == (k, X.shape[1]) and state.precond.shape == (k, 6, 6)
    idx = np.array([0, 4, 8])
    new, info = certified.remove(state, idx, X, y)
    binary = dataclasses.replace(state.config, num_classes=None)
    per_head, betas = [], []
    for h in range(k):
        yh = np.where(y == h, 1.0, -1.0)
        head = state._replace(
            params=state.params[h],
            perturbation=state.perturbation[h],
            precond=state.precond[h : h + 1],
            residual_bounds=state.residual_bounds[h : h + 1],
            unstructured_bounds=state.unstructured_bounds[h : h + 1],
            jacobian_drift=state.jacobian_drift[h : h + 1],
            margins=state.margins[h : h + 1],
            margin_error=state.margin_error[h : h + 1],
            fingerprint=certified.data_fingerprint(X, yh),
            config=binary,
        )
        hs, hi = certified.remove(head, idx, X, yh)
        per_head.append(float(hi.data_dependent_bound))
        betas.append(float(hi.cumulative_bound))
        np.testing.assert_allclose(hs.params, new.params[h], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        float(info.data_dependent_bound), np.linalg.norm(per_head), rtol=1e-10
    )
    np.testing.assert_allclose(float(info.cumulative_bound), np.linalg.norm(betas), rtol=1e-10)
    assert float(info.cumulative_bound) < sum(betas)  # tighter than the summed form
    assert float(certified.true_residual(new, X, y)) <= float(info.cumulative_bound)
    assert certified.accuracy(new, X, y) > 0.8
    # Over a sequence the ℓ2 budget supports more removals than the sum (up to √K).
    seq, infos = certified.remove_sequence(state, np.arange(60).reshape(20, 3), X, y)
    l2 = np.asarray(infos.cumulative_bound)
    summed = np.asarray(jnp.sum(seq.residual_bounds))
    assert l2[-1] < summed <= np.sqrt(k) * l2[-1] * (1 + 1e-12)
    assert float(certified.true_residual(seq, X, y)) <= l2[-1]


# ---------------------------------------------------------------------------
# The noise: distribution, keys, transformations.
# ---------------------------------------------------------------------------

# Each KS test below runs at level α = 1e-3: the correct-σ test fails by chance
# with probability 1e-3; the controls at 2/3 σ and 3/2 σ with n = 4,000 samples
# are rejected with probability > 1 − 1e-12 (the KS distance is ≥ 0.13 there,
# the critical value ≈ 0.031).
KS_ALPHA = 1e-3


@pytest.mark.parametrize(
    "factor,should_pass", [(1.0, True), (2 / 3, False), (1.5, False)]
)
def test_perturbation_is_gaussian_with_scale_sigma(factor, should_pass):
    sigma = 3.0
    b = certified.sample_perturbation(jax.random.key(21), (4, 1000), sigma)
    p = scipy.stats.kstest(np.asarray(b).ravel() / (sigma * factor), "norm").pvalue
    assert (p > KS_ALPHA) == should_pass, p


def test_training_uses_sample_perturbation_and_keys():
    X, y = make_binary(n=100, d=5, dtype=np.float32)
    a = certified.train(jax.random.key(1), X, y, lam=1e-2, sigma=2.0)
    b = certified.train(jax.random.key(1), X, y, lam=1e-2, sigma=2.0)
    c = certified.train(jax.random.key(2), X, y, lam=1e-2, sigma=2.0)
    np.testing.assert_array_equal(a.perturbation, b.perturbation)
    np.testing.assert_array_equal(a.params, b.params)
    assert len(np.unique(np.concatenate([a.perturbation, c.perturbation]))) == 10
    expected = certified.sample_perturbation(jax.random.key(1), (1, 5), 2.0)[0]
    np.testing.assert_array_equal(a.perturbation, expected)
    assert a.params.dtype == jnp.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    with jax.enable_x64(dtype == np.float64):
        X, y = make_binary(n=80, d=4, dtype=dtype)
        state = certified.train(jax.random.key(0), X, y, lam=1e-2, sigma=1.0)
        state, info = certified.remove(state, np.array([1]), X, y)
        assert state.params.dtype == dtype and info.cumulative_bound.dtype == dtype


def test_jit_and_eager_agree():
    X, y = make_binary(n=100, d=5, dtype=np.float32)
    state = certified.train(jax.random.key(0), X, y, lam=1e-2, sigma=1.0)
    idx = np.array([3, 4])
    eager = certified.remove(state, idx, X, y)
    jitted = jax.jit(lambda s: certified.remove(s, idx, X, y))(state)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        eager,
        jitted,
    )
    trained = jax.jit(lambda k: certified.train(k, X, y, lam=1e-2, sigma=1.0))(
        jax.random.key(0)
    )
    np.testing.assert_allclose(trained.params, state.params, rtol=1e-5, atol=1e-6)


def test_vmap_over_keys_matches_loop():
    X, y = make_binary(n=100, d=5, dtype=np.float32)
    keys = jax.random.split(jax.random.key(9), 3)
    batched = jax.vmap(lambda k: certified.train(k, X, y, lam=1e-2, sigma=1.0))(keys)
    assert batched.params.shape == (3, 5)
    for i in range(3):
        single = certified.train(keys[i], X, y, lam=1e-2, sigma=1.0)
        np.testing.assert_allclose(
            batched.params[i], single.params, rtol=1e-5, atol=1e-6
        )
    removed, infos = jax.vmap(lambda s: certified.remove(s, np.array([0]), X, y))(
        batched
    )
    assert infos.cumulative_bound.shape == (3,)


def test_repeated_removals_compile_once():
    X, y = make_binary(n=100, d=5, dtype=np.float32, seed=3)
    state = certified.train(jax.random.key(0), X, y, lam=1e-2, sigma=1.0)
    state, _ = certified.remove(state, np.array([0]), X, y)
    size = certified._remove_impl._cache_size()
    for i in range(1, 6):
        state, _ = certified.remove(state, np.array([i]), X, y)
    assert certified._remove_impl._cache_size() == size


# ---------------------------------------------------------------------------
# Budget, retrain, certificate values.
# ---------------------------------------------------------------------------


def test_certificate_hand_values():
    # σ = 10, ε = 1, δ = 1e-4: c = √(2 ln(1.5e4)) = 4.385, budget σε/c = 2.280.
    c = math.sqrt(2 * math.log(1.5 / 1e-4))
    assert round(c, 3) == 4.385
    paper = certified.residual_budget(sigma=10, epsilon=1, delta=1e-4, method="paper")
    assert round(paper, 3) == 2.280
    assert (
        round(
            certified.residual_budget(sigma=10, epsilon=1, delta=1e-5, method="paper"),
            3,
        )
        == 2.048
    )
    analytic = certified.residual_budget(
        sigma=10, epsilon=1, delta=1e-4, method="analytic"
    )
    assert abs(analytic - 3.139) < 1e-3 and analytic > paper
    # Inverse: the budget certifies exactly the target ε (never more than it).
    assert (
        abs(
            certified.certificate_epsilon(
                sigma=10, beta=paper, delta=1e-4, method="paper"
            )
            - 1
        )
        < 1e-12
    )
    eps = certified.certificate_epsilon(sigma=10, beta=analytic, delta=1e-4)
    assert eps <= 1 + 1e-9 and eps > 0.999
    with pytest.raises(ValueError, match="epsilon"):
        certified.residual_budget(sigma=10, epsilon=2, delta=1e-4, method="paper")


def test_certificate_both_ways():
    # Paper: σ = 10, β = 2.280 (the budget), ε = 1 gives back δ = 1e-4.
    beta = certified.residual_budget(sigma=10, epsilon=1, delta=1e-4, method="paper")
    cert = certified.certificate(sigma=10, beta=beta, epsilon=1.0, method="paper")
    assert abs(cert.delta - 1e-4) < 1e-12
    # Analytic at the same σ, β and ε: a smaller δ (tighter), and the round trip.
    tight = certified.certificate(sigma=10, beta=beta, epsilon=1.0)
    assert tight.delta < cert.delta
    back = certified.certificate(sigma=10, beta=beta, delta=tight.delta)
    assert abs(back.epsilon - 1.0) < 1e-6
    # Hand value: r = β/σ = 1, ε = 4.377178 ⇔ δ = 1e-5 (accountant reference value).
    assert (
        abs(certified.certificate(sigma=1, beta=1, delta=1e-5).epsilon - 4.377178)
        < 1e-5
    )
    with pytest.raises(ValueError, match="exactly one"):
        certified.certificate(sigma=1, beta=1)


def test_analytic_certificate_never_looser_than_paper():
    rng = np.random.default_rng(0)
    for _ in range(50):
        sigma, delta, beta = (
            10 ** rng.uniform(-1, 2),
            10 ** rng.uniform(-10, -2),
            rng.uniform(0.01, 1),
        )
        beta = min(
            beta * sigma, 0.999 * sigma / math.sqrt(2 * math.log(1.5 / delta))
        )  # paper ε < 1
        assert (
            certified.certificate_epsilon(sigma=sigma, beta=beta, delta=delta)
            <= certified.certificate_epsilon(
                sigma=sigma, beta=beta, delta=delta, method="paper"
            )
            + 1e-12
        )


def test_retrain_resets_and_refuses_the_same_perturbation():
    X, y = make_binary(n=120, d=6, dtype=np.float32, seed=8)
    state = certified.train(jax.random.key(0), X, y, lam=1e-3, sigma=0.1)
    spent, _ = certified.remove_sequence(state, np.arange(20).reshape(20, 1), X, y)
    assert float(spent.grad_residual_bound) > float(state.grad_residual_bound)
    fresh = certified.retrain(jax.random.key(1), spent, X, y)
    np.testing.assert_allclose(fresh.grad_residual_bound, fresh.training_residual)
    assert float(fresh.remainder_mass) == 0 and float(fresh.logdet_bound) == 0
    assert not np.asarray(fresh.mask)[:20].any() and int(fresh.num_removed) == 0
    assert not np.allclose(fresh.perturbation, state.perturbation)
    assert fresh.config == state.config
    # The training key again draws the same b: refused eagerly ...
    with pytest.raises(ValueError, match="fresh key"):
        certified.retrain(jax.random.key(0), spent, X, y)
    # ... and poisoned under jit, where nothing can raise.
    poisoned = jax.jit(lambda k, s: certified.retrain(k, s, X, y))(jax.random.key(0), spent)
    assert not np.isfinite(float(poisoned.grad_residual_bound))


def test_spectral_norm_bound_is_an_upper_bound():
    rng = np.random.default_rng(0)
    for trial in range(30):
        n, d = rng.integers(2, 300), rng.integers(1, 60)
        X = rng.normal(size=(n, d)) * rng.uniform(0.01, 10) + rng.uniform(-1, 1)
        true = np.linalg.norm(X, 2)
        for dtype in (np.float32,):
            bound = float(solvers.spectral_norm_bound(jnp.asarray(X, dtype)))
            assert true <= bound <= true * 1.01 + 1e-6, (trial, true, bound)
            assert true <= float(
                solvers.spectral_norm_bound(jnp.asarray(X, dtype), method="frobenius")
            )


# ---------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    X, y = make_binary(n=60, d=4, dtype=np.float32)
    state = certified.train(jax.random.key(0), X, y, lam=1e-2, sigma=1.0)
    return X, y, state


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(lam=0.0), "lam"),
        (dict(lam=-1.0), "lam"),
        (dict(sigma=-1.0), "sigma"),
        (dict(lam=float("nan")), "lam"),
        (dict(tol=0.0), "tol"),
    ],
)
def test_bad_hyperparameters_raise(small, kwargs, match):
    X, y, _ = small
    args = dict(lam=1e-2, sigma=1.0) | kwargs
    with pytest.raises(ValueError, match=match):
        certified.train(jax.random.key(0), X, y, **args)


def test_bad_data_raise(small):
    X, y, _ = small
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="norm <= 1"):
        certified.train(key, X * 3, y, lam=1e-2, sigma=1.0)
    Xn = X.copy()
    Xn[5, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        certified.train(key, Xn, y, lam=1e-2, sigma=1.0)
    with pytest.raises(ValueError, match=r"\{-1, \+1\}"):
        certified.train(key, X, np.where(y > 0, 1.0, 0.0), lam=1e-2, sigma=1.0)
    with pytest.raises(ValueError, match="num_classes"):
        certified.train(key, X, np.arange(60) % 3, lam=1e-2, sigma=1.0, num_classes=2)
    with pytest.raises(ValueError, match="Shape mismatch"):
        certified.train(key, X, y[:-1], lam=1e-2, sigma=1.0)
    with pytest.raises(ValueError, match="ndim"):
        certified.train(key, X[0], y, lam=1e-2, sigma=1.0)
    ok = certified.train(key, certified.normalize_rows(X * 3), y, lam=1e-2, sigma=1.0)
    assert ok.params.shape == (4,)


@pytest.mark.parametrize(
    "idx,match",
    [
        (np.array([60]), r"in \[0, 59\]"),
        (np.array([-1]), "negative"),
        (np.array([3, 3]), "repeated"),
        (np.array([], dtype=int), "at least one"),
        (np.array([1.0]), "integers"),
    ],
)
def test_bad_indices_raise(small, idx, match):
    X, y, state = small
    with pytest.raises(ValueError, match=match):
        certified.remove(state, idx, X, y)


def test_removed_twice_and_remove_all_raise(small):
    X, y, state = small
    s, _ = certified.remove(state, np.array([7]), X, y)
    with pytest.raises(ValueError, match="already removed"):
        certified.remove(s, np.array([7]), X, y)
    with pytest.raises(ValueError, match="repeated"):
        certified.remove_sequence(state, np.array([[1], [1]]), X, y)
    with pytest.raises(ValueError, match="all 60 remaining"):
        certified.remove(state, np.arange(60), X, y)
    with pytest.raises(ValueError, match="bound_form"):
        certified.train(jax.random.key(0), X, y, lam=1e-2, sigma=1.0, bound_form="x")
    with pytest.raises(ValueError, match="delta"):
        certified.residual_budget(sigma=1.0, epsilon=1.0, delta=1.0)


def test_removing_a_whole_class_is_explicit(small):
    X, y, state = small
    positives = np.flatnonzero(y > 0)
    with pytest.raises(ValueError, match="no remaining point with label 1"):
        certified.remove(state, positives, X, y)
    allowed = certified.train(
        jax.random.key(0), X, y, lam=1e-2, sigma=1.0, allow_empty_class=True
    )
    s, info = certified.remove(allowed, positives, X, y)
    assert np.isfinite(np.asarray(s.params)).all() and np.isfinite(
        float(info.cumulative_bound)
    )
    assert float(certified.true_residual(s, X, y)) <= float(info.cumulative_bound)


def _residual_float64(state, X, y, lam):
    """The exact (float64 NumPy) perturbed-gradient norm of a float32 state."""
    X = np.asarray(X, np.float64)
    w = np.asarray(state.params, np.float64)
    b = np.asarray(state.perturbation, np.float64)
    m = np.asarray(state.mask, np.float64)
    z = X @ w
    grad = -y / (1 + np.exp(y * z))
    return np.linalg.norm((m * grad) @ X + lam * m.sum() * w + b)


@pytest.mark.parametrize("seed", range(6))
def test_float32_bounds_cover_the_exact_residual(seed):
    # The certificate is computed in float32; the quantity it bounds is the
    # exact gradient of the stored float32 model. The rounding allowance must
    # cover the gap (Higham & Mary's model for float32 sums).
    rng = np.random.default_rng(seed)
    n = int(rng.choice([200, 1500]))
    X, y = make_binary(n=n, d=20, seed=seed, dtype=np.float32)
    lam = 10 ** rng.uniform(-4, -2)
    state = certified.train(
        jax.random.key(seed), X, y, lam=lam, sigma=float(rng.uniform(0.1, 5)), tol=1e-7
    )
    assert _residual_float64(state, X, y.astype(np.float64), lam) <= float(
        state.grad_residual_bound
    )
    batch = int(rng.choice([1, 4]))
    idx = rng.permutation(n)[: 8 * batch].reshape(8, batch)
    state, infos = certified.remove_sequence(state, idx, X, y)
    exact = _residual_float64(state, X, y.astype(np.float64), lam)
    assert exact <= float(infos.cumulative_bound[-1]), (
        exact,
        float(infos.cumulative_bound[-1]),
    )


def test_ridge_float32_bound_covers_rounding():
    # γ = 0: the only charges are solve and rounding terms; they must still cover
    # the exact residual of the float32 model.
    rng = np.random.default_rng(1)
    X, _ = make_binary(n=800, d=30, dtype=np.float32)
    y = (X @ rng.normal(size=30) + 0.1 * rng.normal(size=800)).astype(np.float32)
    state = certified.train(
        jax.random.key(0), X, y, lam=1e-3, sigma=10.0, loss="ridge", tol=1e-7
    )
    state, infos = certified.remove_sequence(state, np.arange(40).reshape(20, 2), X, y)
    X64, y64 = X.astype(np.float64), y.astype(np.float64)
    w, b = (
        np.asarray(state.params, np.float64),
        np.asarray(state.perturbation, np.float64),
    )
    m = np.asarray(state.mask, np.float64)
    exact = np.linalg.norm((m * (X64 @ w - y64)) @ X64 + 1e-3 * m.sum() * w + b)
    assert exact <= float(infos.cumulative_bound[-1])


def test_vmap_over_lambda_matches_loop():
    # λ and σ are traced: a sweep is one compiled program, vmapped.
    X, y = make_binary(n=100, d=5, dtype=np.float32, seed=4)
    lams = jnp.array([1e-3, 1e-2, 1e-1], jnp.float32)
    batched = jax.vmap(lambda lam: certified.train(jax.random.key(0), X, y, lam=lam, sigma=1.0))(lams)
    removed, infos = jax.vmap(lambda s: certified.remove(s, np.array([3]), X, y))(batched)
    for j, lam in enumerate([1e-3, 1e-2, 1e-1]):
        single = certified.train(jax.random.key(0), X, y, lam=lam, sigma=1.0)
        np.testing.assert_allclose(batched.params[j], single.params, rtol=1e-5, atol=1e-6)
        _, info = certified.remove(single, np.array([3]), X, y)
        # float32: the training residual sits at the rounding floor (rel ~1e-4).
        np.testing.assert_allclose(infos.cumulative_bound[j], info.cumulative_bound, rtol=1e-3)


def test_low_precision_products_break_the_norm_bound_highest_keeps_it(monkeypatch):
    # On TPUs (bfloat16 passes) and recent NVIDIA GPUs (TF32) a float32 product at
    # default precision rounds its inputs far above float32's unit roundoff; the
    # certificate's rounding margins assume the latter. Simulate such a device:
    # products round their inputs to bfloat16 unless they ask for HIGHEST.
    real = jnp.matmul

    def accelerator_matmul(a, b, *, precision=None, **kw):
        if precision != jax.lax.Precision.HIGHEST:
            a, b = jnp.asarray(a), jnp.asarray(b)
            a = a.astype(jnp.bfloat16).astype(a.dtype)
            b = b.astype(jnp.bfloat16).astype(b.dtype)
        return real(a, b, precision=precision, **kw)

    monkeypatch.setattr(jnp, "matmul", accelerator_matmul)
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(30):
        n, d = rng.integers(20, 300), rng.integers(5, 60)
        X = (rng.normal(size=(n, d)) + rng.uniform(-1, 1)).astype(np.float32)
        cases.append((X, np.linalg.norm(X.astype(np.float64), 2)))

    def undershoots():
        jax.clear_caches()
        return sum(
            float(solvers.spectral_norm_bound(jnp.asarray(X), method="gram")) < true
            for X, true in cases
        )

    assert undershoots() == 0  # the library asks for HIGHEST: certified
    monkeypatch.setattr(solvers, "PRECISION", jax.lax.Precision.DEFAULT)
    assert undershoots() >= 3  # default precision on such a device: not certified
    jax.clear_caches()


def test_one_budget_value_from_every_entry_point(tmp_path):
    # σ = 10, ε = 1, δ = 1e-4: the analytic budget 3.139 is the one default.
    from dpunlearn import cli
    from dpunlearn.accounting import currencies
    from dpunlearn.accounting import ledger as L

    kw = dict(sigma=10.0, epsilon=1.0, delta=1e-4)
    values = {
        "certified.residual_budget": certified.residual_budget(**kw),
        "currencies.cr_budget": currencies.cr_budget(**kw),
        "CertifiedRemovalConfig": currencies.CertifiedRemovalConfig(**kw).budget,
        "ledger": L.Ledger.create(
            tmp_path / "l.jsonl",
            currency="certified_removal",
            params={"rule": "paper", "sigma": 10.0},
            target_epsilon=1.0,
            target_delta=1e-4,
        ).setup.config.budget,
    }
    import contextlib
    import io
    import json as _json

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(
            "budget certified-removal --rule paper --sigma 10 --epsilon 1 --delta 1e-4 --json".split()
        )
    assert code == 0
    values["cli --rule paper"] = _json.loads(buf.getvalue())["budget"]["analytic"]
    for name, value in values.items():
        assert value == pytest.approx(3.1390245831182946, rel=1e-12), name
