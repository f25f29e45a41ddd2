"""Contract tests for dpunlearn.methods.descent_to_delete (Neel et al., ALT 2021).

Statistical tests state their false-failure rate; each has a control that must
fail (an unlearner whose noise is about ten times too small).
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

# The module (``dpunlearn.methods.descent_to_delete`` is the factory re-exported by the package).
dd = importlib.import_module("dpunlearn.methods.descent_to_delete")


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def make_binary(n=100, d=3, seed=0, dtype=np.float32, scale=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 0.2
    X *= scale / np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(X @ rng.normal(size=d) + 0.3 * rng.normal(size=n) > 0, 1.0, -1.0)
    return Data(jnp.asarray(X, dtype), jnp.asarray(y, dtype))


# Logistic loss, ‖x‖ <= 1, ball of radius R: m = λ, β = 1/4 + λ, L = 1 + λR.
LAM, RADIUS = 0.1, 2.0
LOGISTIC = {
    "lam": LAM,
    "radius": RADIUS,
    "smoothness": 0.25 + LAM,
    "gradient_bound": 1.0 + LAM * RADIUS,
}


def make_method(d=3, *, dtype=jnp.float32, **kw):
    cfg = {"epsilon": 1.0, "delta": 1e-5, "iterations": 2, **LOGISTIC}
    cfg.update(kw)
    return dd.descent_to_delete(models.linear(d, dtype=dtype), **cfg)


def without(n, rows):
    mask = np.ones(n, bool)
    mask[np.asarray(rows)] = False
    return mask


# ---------------------------------------------------------------------------
# Noise scale: closed forms and the §12.5 / §3 test vectors.
# ---------------------------------------------------------------------------

MNIST_N = 11_982
MNIST = {
    "lipschitz": 1.0,
    "strong_convexity": 0.011982,
    "smoothness": 0.261982,
    "n": MNIST_N,
}
MNIST_TABLE = {  # (I, ε) -> σ as printed (paper calibration, δ = 1/n)
    (1, 0.5): "5.105", (1, 1.0): "2.585", (1, 2.0): "1.324",
    (2, 0.5): "2.436", (2, 1.0): "1.233", (2, 2.0): "0.6315",
    (5, 0.5): "0.843", (5, 1.0): "0.427", (5, 2.0): "0.219",
    (100, 0.5): "5.18e-5", (100, 1.0): "2.62e-5", (100, 2.0): "1.34e-5",
}  # fmt: skip


def as_printed(value: float, printed: str) -> float:
    """``value`` rounded to the significant digits of ``printed``."""
    digits = len(printed.split("e")[0].replace(".", "").lstrip("0"))
    return float(f"{value:.{digits}g}")


def paper_sigma(eps, delta, *, lipschitz, strong_convexity, smoothness, n, iterations):
    """σ = 4√2·Lγ^I/(m n (1 − γ^I) κ), κ = √(ln(1/δ)+ε) − √(ln(1/δ)), written out."""
    m, beta = strong_convexity, smoothness
    g = ((beta - m) / (beta + m)) ** iterations
    kappa = math.sqrt(math.log(1 / delta) + eps) - math.sqrt(math.log(1 / delta))
    return 4 * math.sqrt(2) * lipschitz * g / (m * n * (1 - g) * kappa)


@pytest.mark.parametrize(("iterations", "eps"), sorted(MNIST_TABLE))
def test_sigma_table_at_mnist_constants(iterations, eps):
    printed = MNIST_TABLE[(iterations, eps)]
    got = currencies.d2d_sigma(eps, 1 / MNIST_N, iterations=iterations, **MNIST)
    assert as_printed(got, printed) == float(printed)
    assert got == pytest.approx(
        paper_sigma(eps, 1 / MNIST_N, iterations=iterations, **MNIST), rel=1e-12
    )


@pytest.mark.parametrize(("iterations", "eps"), [(1, 1.0), (5, 2.0)])
def test_method_sigma_at_mnist_constants(iterations, eps):
    # End to end: the training release and the first deletion (from the
    # n = 11,982 rows) carry the table's σ.
    data = make_binary(n=MNIST_N, d=2, seed=1, scale=0.9)
    method = dd.descent_to_delete(
        models.linear(2),
        lam=MNIST["strong_convexity"],
        smoothness=MNIST["smoothness"],
        gradient_bound=1.0,
        radius=1.0,
        epsilon=eps,
        delta=1 / MNIST_N,
        iterations=iterations,
    )
    state, charge = method.train(jax.random.key(0), data)
    printed = MNIST_TABLE[(iterations, eps)]
    assert as_printed(float(charge.sigma), printed) == float(printed)
    assert int(charge.num_rows) == MNIST_N
    _, charge, _ = method.unlearn(jax.random.key(1), state, np.array([17]), data)
    assert as_printed(float(charge.sigma), printed) == float(printed)
    assert int(charge.num_rows) == MNIST_N and int(charge.iterations) == iterations
    assert int(charge.num_removed) == 1 and int(charge.total_iterations) == iterations


WORKED = {"lipschitz": 1.0, "strong_convexity": 0.1, "smoothness": 0.35}


@pytest.mark.parametrize(
    ("calibration", "want"),
    [("paper", 0.1750), ("tight", 8.751e-2), ("analytic", 6.662e-2)],
)
def test_worked_example_weak(calibration, want):
    # §12.2: L = 1, m = 0.1, β = 0.35, n = 1000, I = 2, ε = 1, δ = 1e-5, D = 2 → T = 10.
    data = make_binary(n=1000, d=10, seed=2, scale=0.9)
    method = dd.descent_to_delete(
        models.linear(10),
        lam=0.1,
        smoothness=0.35,
        gradient_bound=1.0,
        radius=1.0,
        epsilon=1.0,
        delta=1e-5,
        iterations=2,
        calibration=calibration,
    )
    _, charge = method.train(jax.random.key(0), data)
    assert float(charge.sigma) == pytest.approx(want, rel=5e-4)
    assert int(charge.iterations) == 10  # T
    assert float(charge.sigma) == pytest.approx(
        currencies.d2d_sigma(
            1.0, 1e-5, n=1000, iterations=2, variant=calibration, **WORKED
        ),
        rel=1e-6,
    )


def test_worked_example_strong():
    # §12.5: same constants, d = 10: I_min = 8, I_1 = 13, σ_s(I_1) = 3.988e-4.
    data = make_binary(n=1000, d=10, seed=2, scale=0.9)
    cfg = {
        "lam": 0.1,
        "smoothness": 0.35,
        "gradient_bound": 1.0,
        "radius": 1.0,
        "epsilon": 1.0,
        "delta": 1e-5,
        "variant": "strong",
    }
    with pytest.raises(ValueError, match="iterations=7 >= 8"):
        dd.descent_to_delete(models.linear(10), iterations=7, **cfg)
    with pytest.raises(ValueError, match="calibration"):
        dd.descent_to_delete(
            models.linear(10), iterations=8, calibration="tight", **cfg
        )
    method = dd.descent_to_delete(models.linear(10), iterations=8, **cfg)
    state, charge = method.train(jax.random.key(0), data)
    assert float(charge.sigma) == pytest.approx(3.988e-4, rel=5e-4)
    # T satisfies the steady-state condition for the largest I_i (i <= n).
    i_max = currencies.d2d_strong_iterations(
        1000, iterations=8, dim=10, delta=1e-5, strong_convexity=0.1, smoothness=0.35
    )
    assert int(charge.iterations) == currencies.d2d_initial_iterations(
        iterations=i_max, diameter=2.0, n=1000, **WORKED
    )
    state, charge, _ = method.unlearn(jax.random.key(1), state, np.array([3]), data)
    assert int(charge.iterations) == 13 and int(state.num_updates) == 1
    assert float(charge.sigma) == pytest.approx(3.988e-4, rel=5e-4)
    # Two more rows: updates i = 2, 3 at n = 999, 998.
    state, charge, _ = method.unlearn(jax.random.key(2), state, np.array([4, 5]), data)
    its = [
        currencies.d2d_strong_iterations(
            i, iterations=8, dim=10, delta=1e-5, strong_convexity=0.1, smoothness=0.35
        )
        for i in (2, 3)
    ]
    assert int(charge.iterations) == its[1] and int(charge.total_iterations) == sum(its)
    assert float(charge.sigma) == pytest.approx(
        currencies.d2d_strong_sigma(1.0, 1e-5, n=998, iterations=its[1], **WORKED),
        rel=1e-5,
    )


# ---------------------------------------------------------------------------
# The certificate: deterministic contract and a two-sample test of the laws.
# ---------------------------------------------------------------------------


@pytest.mark.usefixtures("x64")
def test_secret_within_sensitivity_of_retraining():
    # ‖θ′_i − A(D_i)‖ <= Δ = 4Lγ^I/(m n (1 − γ^I)) after each request (n the
    # smallest set a row was deleted from): the distance σ is calibrated to.
    n = 80
    data = make_binary(n=n, d=4, seed=3, dtype=np.float64)
    method = make_method(4, dtype=jnp.float64, iterations=1)
    state, _ = method.train(jax.random.key(0), data)
    removed = []
    for step, request in enumerate(([5, 6], [7, 30], [31, 2])):
        state, charge, _ = method.unlearn(
            jax.random.key(step + 1), state, np.array(request), data
        )
        removed += request
        n_min = n - len(removed) + 1
        assert int(charge.num_rows) == n_min
        ref, _ = method.train(jax.random.key(50), data, without(n, removed))
        dist = np.linalg.norm(np.asarray(state.secret) - np.asarray(ref.secret))
        bound = currencies.d2d_sensitivity(
            lipschitz=1.2, strong_convexity=LAM, smoothness=0.35, n=n_min, iterations=1
        )
        assert dist <= bound
        assert float(charge.sigma) == pytest.approx(
            currencies.d2d_sigma(
                1.0,
                1e-5,
                lipschitz=1.2,
                strong_convexity=LAM,
                smoothness=0.35,
                n=n_min,
                iterations=1,
            ),
            rel=1e-10,
        )


def _flat(tree_batch):
    return jax.vmap(lambda t: ravel_pytree(t)[0])(tree_batch)


def two_sample_pvalues(a, b, direction):
    """Per-coordinate two-sample KS p-values and one on a fixed projection."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ps = [scipy.stats.ks_2samp(a[:, j], b[:, j]).pvalue for j in range(a.shape[1])]
    ps.append(scipy.stats.ks_2samp(a @ direction, b @ direction).pvalue)
    return np.asarray(ps)


ALPHA = 1e-3  # family-wise false-failure rate (Bonferroni over p + 1 tests)


@pytest.mark.parametrize("variant", ["weak", "strong"])
def test_unlearned_and_retrained_laws_agree_and_control_fails(variant):
    # N keys in one vmap: the release after deleting row U against A(D \ U)
    # (train on the remaining rows, vmapped over keys) plus N(0, σ²I) with the
    # release's σ. The un-noised centres agree far below σ (asserted:
    # shift/σ < 1e-3; for the strong variant the centre is I_1 GD steps on
    # D \ U from the un-noised θ_T, the training noise being contracted by
    # γ^{I_1} ~ 1e-4), so the p + 1 KS tests at Bonferroni level ALPHA/(p+1)
    # falsely fail with probability <= 1.1e-3 (ALPHA inflated by at most ×1.1
    # by a KS shift of 1e-3/√(2π) at N = 2000). Control (must fail): the same
    # method calibrated for ε = 15, whose σ is about a tenth.
    n, d, N = 100, 3, 2000
    data = make_binary(n=n, d=d, seed=4)
    iterations = 2 if variant == "weak" else 10
    U = np.array([3])
    keys = jax.random.split(jax.random.key(1), 4 * N).reshape(4, N)

    def unlearned_sample(method):
        if variant == "weak":  # the secret is deterministic: one training
            state, _ = method.train(jax.random.key(0), data)
            run = jax.vmap(lambda k: method.unlearn(k, state, U, data))
            new, charge, _ = run(keys[0])
        else:  # the state is noisy: train and unlearn per key

            def one(k1, k2):
                state, charge = method.train(k1, data)
                return (*method.unlearn(k2, state, U, data), charge)

            new, charge, _, trained = jax.vmap(one)(keys[0], keys[1])
            one_unlearned.update(T=int(trained.iterations[0]))
        assert np.all(np.asarray(charge.valid))
        one_unlearned.update(state=jax.tree.map(lambda a: a[0], new))
        one_unlearned.update(I=int(charge.iterations[0]))
        return _flat(new.params), float(charge.sigma[0])

    one_unlearned = {}
    method = make_method(d, iterations=iterations, variant=variant)
    unlearned, sigma = unlearned_sample(method)
    ref_states, _ = jax.vmap(lambda k: method.train(k, data, without(n, U)))(keys[2])
    release = jax.vmap(lambda k, s: dd.reference_release(k, s, sigma))
    retrained = _flat(release(keys[3], ref_states))

    if variant == "weak":
        centre = one_unlearned["state"].secret
    else:  # the same GD steps without any noise: a weak run with I = I_1
        twin = make_method(d, iterations=one_unlearned["I"],
                           train_iterations=one_unlearned["T"])  # fmt: skip
        state, _ = twin.train(jax.random.key(0), data)
        centre = twin.unlearn(jax.random.key(0), state, U, data)[0].secret
    ref_centre = np.asarray(ref_states.secret[0], np.float64)
    shift = np.linalg.norm(np.asarray(centre, np.float64) - ref_centre) / sigma
    assert shift < 1e-3
    assert np.allclose(np.std(np.asarray(unlearned), axis=0), sigma, rtol=0.1)

    direction = np.random.default_rng(7).normal(size=d)
    direction /= np.linalg.norm(direction)
    level = ALPHA / (d + 1)
    assert two_sample_pvalues(unlearned, retrained, direction).min() >= level

    control = make_method(d, iterations=iterations, variant=variant, epsilon=15.0)
    weak_noise, control_sigma = unlearned_sample(control)
    assert control_sigma < 0.15 * sigma
    assert two_sample_pvalues(weak_noise, retrained, direction).min() < level


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
    data = make_binary(n=40, d=3, seed=5)
    method = make_method(3)
    state, _ = method.train(jax.random.key(0), data)
    return method, state, data


def test_already_removed_row(trained):
    method, state, data = trained
    state, _, _ = method.unlearn(jax.random.key(1), state, np.array([4]), data)
    with pytest.raises(ValueError, match="already removed"):
        method.unlearn(jax.random.key(2), state, np.array([4]), data)
    unlearn = jax.jit(method.unlearn)
    new, charge, info = unlearn(jax.random.key(2), state, jnp.array([4]), data)
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
    with pytest.raises(ValueError, match="shaped like"):
        method.unlearn(
            jax.random.key(1), state._replace(params=jnp.zeros(4)), [0], data
        )
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
    unlearn = jax.jit(method.unlearn)
    new, charge, info = unlearn(jax.random.key(1), state, jnp.array([6]), bad)
    assert not bool(info.finite)
    assert_poisoned(state, new, charge)


def test_gradient_bound_violated():
    data = make_binary(n=40, d=3, seed=5)
    method = make_method(3, gradient_bound=0.05, smoothness=0.35)
    state, _ = method.train(jax.random.key(0), data)
    with pytest.raises(ValueError, match="gradient_bound=0.05"):
        method.unlearn(jax.random.key(1), state, np.array([0]), data)


def test_train_iterations_too_small():
    data = make_binary(n=40, d=3, seed=5)
    with pytest.raises(ValueError, match="train_iterations=1 >="):
        make_method(3, train_iterations=1).train(jax.random.key(0), data)


def concave_model(d):
    # loss = softplus(−y w·x) − (w·x)²/(1 + 0.01 (w·x)²): negative curvature
    # along x, so the regularised loss is not λ-strongly convex.
    base = models.linear(d)

    def loss(w, x, y):
        z = jnp.dot(w, x)
        return jax.nn.softplus(-y * z) - z * z / (1.0 + 0.01 * z * z)

    return base._replace(loss=loss)


def test_not_strongly_convex():
    for lam in (0.0, -1.0):
        with pytest.raises(ValueError, match="strongly convex"):
            make_method(lam=lam)
    with pytest.raises(ValueError, match="smoothness"):
        make_method(smoothness=0.05)  # β < m
    data = make_binary(n=40, d=3, seed=5)
    cfg = {"epsilon": 1.0, "delta": 1e-5, "iterations": 2, **LOGISTIC}
    method = dd.descent_to_delete(concave_model(3), **cfg)
    with pytest.raises(ValueError, match="not lam-strongly convex"):
        method.train(jax.random.key(0), data)
    state, charge = jax.jit(method.train)(jax.random.key(0), data, jnp.ones(40, bool))
    assert not bool(charge.valid) and float(charge.epsilon) == math.inf
    with pytest.raises(ValueError, match="poisoned"):
        method.unlearn(jax.random.key(1), state, np.array([0]), data)
    new, charge, info = jax.jit(method.unlearn)(
        jax.random.key(1), state, jnp.array([0]), data
    )
    assert not bool(info.trained_ok)
    assert_poisoned(state, new, charge)
    # An understated smoothness is refused by the same Hessian check.
    with pytest.raises(ValueError, match="smoothness=0.15"):
        make_method(smoothness=0.15).train(jax.random.key(0), make_binary(n=40, seed=5))


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


def test_mlp_refused_unless_convexity_waived():
    model, data = build_model("nnx", 3)
    method = dd.descent_to_delete(
        model, epsilon=1.0, delta=1e-5, iterations=3, lam=0.05, radius=5.0,
        smoothness=2.0, gradient_bound=10.0,
    )  # fmt: skip
    with pytest.raises(ValueError, match="not lam-strongly convex"):
        method.train(jax.random.key(0), data)


@pytest.mark.parametrize(
    ("kind", "variant"),
    [("linear", "weak"), ("linear", "strong"), ("nnx", "weak"), ("nnx", "strong"),
     ("linen", "weak")],
)  # fmt: skip
def test_any_pytree_under_jit_and_vmap(kind, variant):
    # The MLP runs with check_convexity=False: the same iterations and noise,
    # ε conditional on strong convexity and smoothness (see the module).
    d = 3
    model, data = build_model(kind, d)
    convex = kind == "linear"
    smoothness = 0.35 if convex else 2.0
    p = ravel_pytree(model.params)[0].shape[0]
    iterations = 2
    if variant == "strong":
        iterations = currencies.d2d_strong_min_iterations(
            1.0, 1e-5, dim=p, strong_convexity=0.1, smoothness=smoothness
        )
    method = dd.descent_to_delete(
        model,
        epsilon=1.0,
        delta=1e-5,
        iterations=iterations,
        lam=0.1,
        radius=5.0,
        smoothness=smoothness,
        gradient_bound=10.0,
        variant=variant,
        check_convexity=convex,
    )
    key = jax.random.key(0)
    state, charge = method.train(key, data)
    assert jax.tree.structure(state.params) == jax.tree.structure(model.params)
    assert bool(charge.valid) and bool(charge.convexity_checked) == convex

    keys = jax.random.split(jax.random.key(1), 3)
    batch, charges = jax.jit(jax.vmap(method.train, in_axes=(0, None, None)))(
        jnp.concatenate([key[None], keys[:2]]), data, jnp.ones(48, bool)
    )
    assert np.all(np.asarray(charges.valid))
    np.testing.assert_allclose(batch.secret[0], state.secret, rtol=1e-5, atol=1e-6)
    flat_params = np.asarray(_flat(batch.params))
    np.testing.assert_allclose(
        flat_params[0], ravel_pytree(state.params)[0], rtol=1e-5, atol=1e-6
    )
    assert not np.allclose(flat_params[1], flat_params[2])  # fresh noise per key

    unlearn = jax.jit(method.unlearn)
    new, charge, _ = unlearn(keys[2], state, jnp.array([5, 9]), data)
    assert bool(charge.valid) and int(charge.num_removed) == 2
    assert int(new.mask.sum()) == 46 and int(new.num_updates) == 2
    assert jax.tree.structure(new.params) == jax.tree.structure(model.params)
    assert np.all(np.isfinite(np.asarray(new.secret)))
    if kind == "nnx":  # the eager path (host checks, then the same program)
        eager, _, _ = method.unlearn(keys[2], state, np.array([5, 9]), data)
        np.testing.assert_allclose(eager.secret, new.secret, rtol=1e-5, atol=1e-6)
    assert method.predict(new.params, data.x).shape == (48,)
