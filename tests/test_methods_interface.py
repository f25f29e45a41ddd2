"""Every registered method honours the common interface (dpunlearn.methods.base).

Adding a method: register its factory in ``dpunlearn.methods.FACTORIES`` and
give it a small configuration in ``BUILDERS`` below; this file then checks the
contract the ledger, the attacks and the benchmark rely on.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpunlearn import methods, models
from dpunlearn.accounting import ledger


def small_binary(n=48, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 0.2
    X /= 2 * np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(X @ rng.normal(size=d) > 0, 1.0, -1.0)
    return methods.Data(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32))


def _sisa():
    from dpunlearn import models

    return methods.sisa(
        model=models.linear(4), num_shards=3, num_slices=2, epochs=2, batch_size=8
    )


def _dp_extractor():
    from dpunlearn import dpsgd
    from dpunlearn.methods.dp_extractor import extractor_mlp

    model, features = extractor_mlp(jax.random.key(0), (4, 3, 1), kind="logistic")
    schedule = dpsgd.DPSGDConfig(
        noise_multiplier=1.0, clip_norm=1.0, sampling_rate=0.25, steps=4, chunk_size=8
    )
    return methods.dp_extractor(
        extractor=model, features=features, dpsgd_config=schedule, lam=0.1, sigma=1.0
    )


BUILDERS = {
    "certified_finetune": lambda: methods.certified_finetune(
        models.linear(4), num_rows=48, epsilon=1.0, delta=1e-5, init_clip=1.0,
        grad_clip=1.0, learning_rate=0.1, steps=10, train_steps=50,
    ),
    "certified_removal": lambda: methods.certified_removal(
        lam=0.1, sigma=1.0, epsilon=1.0, delta=0.05, num_shadows=300
    ),
    # Logistic loss, ‖x‖ <= 1/2: M = 1/(6√3) bounds the Hessian-Lipschitz constant.
    "sekhari": lambda: methods.sekhari(
        models.linear(4), lam=0.1, epsilon=1.0, delta=1e-5, capacity=4,
        hessian_lipschitz=0.0963, gradient_bound=1.0,
    ),
    "descent_to_delete": lambda: methods.descent_to_delete(
        models.linear(4), lam=0.1, epsilon=1.0, delta=1e-5, iterations=2,
        radius=2.0, smoothness=0.35, gradient_bound=0.7,
    ),
    "langevin": lambda: methods.langevin(
        models.linear(4), num_rows=48, lam=0.1, sigma=0.05, radius=5.0,
        epsilon=1.0, delta=1e-3, train_steps=100, request_size=2, max_requests=4,
    ),
    "noisy_sgd": lambda: methods.noisy_sgd(
        models.linear(4), num_rows=48, lam=0.1, sigma=0.05, radius=5.0,
        epsilon=1.0, delta=1e-3, batch_size=8, train_epochs=10, request_size=2,
    ),
    "dp_extractor": _dp_extractor,
    "fair_unlearning": lambda: methods.fair_unlearning(
        lam=0.1, sigma=1.0, fairness=1.0, group_column=0
    ),
    "sisa": _sisa,
    "retrain": lambda: methods.retrain(models.linear(4), lam=0.1),
}  # fmt: skip


def test_every_registered_method_has_a_builder():
    assert set(BUILDERS) == set(methods.FACTORIES)


@pytest.fixture(params=sorted(BUILDERS), scope="module")
def built(request):
    return request.param, BUILDERS[request.param]()


def test_bundle_shape(built):
    name, method = built
    assert isinstance(method, methods.Method)
    assert method.name == name
    assert method.currency in ledger.CURRENCIES


def test_train_unlearn_predict_contract(built):
    _, method = built
    data = small_binary()
    n = data.num_rows
    state, charge = method.train(jax.random.key(0), data, None)
    # The state never holds the data: no leaf carries the feature matrix.
    for leaf in jax.tree.leaves(state):
        assert np.shape(leaf) != np.shape(data.x) or not np.array_equal(leaf, data.x)
    assert hasattr(state, "params")
    preds = method.predict(state.params, data.x)
    assert preds.shape[0] == n
    request = jnp.array([3, 5])
    new, charge, info = method.unlearn(jax.random.key(1), state, request, data)
    assert jax.tree.structure(new) == jax.tree.structure(state)
    # The same request size reuses one compiled program.
    step = jax.jit(method.unlearn)
    _, _, _ = step(jax.random.key(2), new, jnp.array([7, 9]), data)
    before = step._cache_size()
    _, _, _ = step(jax.random.key(3), new, jnp.array([11, 13]), data)
    assert step._cache_size() == before


def test_vmap_over_keys_and_masks_trains_many_models(built):
    _, method = built
    data = small_binary()
    keys = jax.random.split(jax.random.key(5), 3)
    states, _ = jax.vmap(lambda k: method.train(k, data, None))(keys)
    leaves = jax.tree.leaves(states.params)
    assert all(leaf.shape[0] == 3 for leaf in leaves)
    masks = jnp.ones((3, data.num_rows), bool).at[jnp.arange(3), jnp.arange(3)].set(False)
    states, _ = jax.vmap(lambda m: method.train(jax.random.key(6), data, m))(masks)
    assert all(leaf.shape[0] == 3 for leaf in jax.tree.leaves(states.params))


def test_bad_requests_raise(built):
    _, method = built
    data = small_binary()
    state, _ = method.train(jax.random.key(0), data, None)
    for bad in (np.array([data.num_rows]), np.array([-1]), np.array([2, 2])):
        with pytest.raises(ValueError):
            method.unlearn(jax.random.key(1), state, bad, data)
    state, _, _ = method.unlearn(jax.random.key(1), state, np.array([4]), data)
    with pytest.raises(ValueError, match="already removed"):
        method.unlearn(jax.random.key(2), state, np.array([4]), data)
