"""Retraining from scratch (the exact baseline of every attack) and its L-BFGS.

Deterministic checks (fixed keys, exact or solver-tolerance equality): no
statistical test here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dpunlearn import models, serve
from dpunlearn.accounting import currencies as cur
from dpunlearn.accounting import ledger as L
from dpunlearn.methods import Data, _minimize, retrain


def small(n=60, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(X @ rng.normal(size=d) + 0.3 * rng.normal(size=n) > 0, 1.0, -1.0)
    return Data(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32))


def test_unlearn_is_training_on_the_remaining_rows_bit_for_bit():
    data = small()
    m = retrain(models.linear(5), lam=0.1)
    state, charge = m.train(jax.random.key(0), data)
    new, charge, info = m.unlearn(jax.random.key(1), state, jnp.array([3, 7]), data)
    mask = np.ones(60, bool)
    mask[[3, 7]] = False
    ref, _ = m.train(jax.random.key(1), data, jnp.asarray(mask))
    assert np.array_equal(np.asarray(new.mask), mask)
    assert np.array_equal(np.asarray(new.params), np.asarray(ref.params))
    assert bool(info.converged) and float(info.grad_norm) <= 1e-5
    assert int(charge.num_removed) == 2 and bool(charge.valid)
    # And it moved: the removed rows mattered.
    assert not np.allclose(np.asarray(new.params), np.asarray(state.params))


def test_lbfgs_matches_the_closed_form_ridge_solution_under_vmap():
    rng = np.random.default_rng(1)
    A = jnp.asarray(rng.normal(size=(4, 30, 6)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(4, 30)), jnp.float32)

    def solve(A, b):
        f = lambda w: 0.5 * jnp.mean((A @ w - b) ** 2) + 0.05 * jnp.vdot(w, w)
        return _minimize.lbfgs(f, jnp.zeros(6, A.dtype), tol=1e-6, max_steps=200)

    w, info = jax.jit(jax.vmap(solve))(A, b)
    An, bn = np.asarray(A, np.float64), np.asarray(b, np.float64)
    for i in range(4):
        exact = np.linalg.solve(An[i].T @ An[i] / 30 + 0.1 * np.eye(6), An[i].T @ bn[i] / 30)
        np.testing.assert_allclose(np.asarray(w[i]), exact, atol=1e-4)
    assert np.all(np.asarray(info.grad_norm) <= 1e-4)


def test_sgd_trainer_is_stochastic_and_deterministic_per_key():
    data = small()
    m = retrain(models.linear(5), lam=0.1, optimizer=optax.sgd(0.5), steps=50, batch_size=8)
    a, _ = m.train(jax.random.key(0), data)
    b, _ = m.train(jax.random.key(0), data)
    c, _ = m.train(jax.random.key(1), data)
    assert np.array_equal(np.asarray(a.params), np.asarray(b.params))
    assert not np.array_equal(np.asarray(a.params), np.asarray(c.params))


def test_ledger_records_exact_requests_and_refuses_invalid_ones(tmp_path):
    data = small()
    m = retrain(models.linear(5), lam=0.1)
    state, charge = m.train(jax.random.key(0), data)
    led = L.Ledger.create(
        tmp_path / "r.jsonl", currency="exact", params={}, target_epsilon=1.0, target_delta=1e-5
    )
    serve.record_training(led, charge)
    out = serve.serve(m, state, np.array([4, 9]), data, key=jax.random.key(1), ledger=led)
    s = out.summary
    assert s.unlearning.certified and s.unlearning.epsilon == 0.0
    assert s.state.num_removed == 2
    _, bad, _ = jax.jit(m.unlearn)(jax.random.key(2), out.state, jnp.array([4]), data)
    assert not bool(bad.valid) and int(bad.num_removed) == 0
    with pytest.raises(ValueError, match="invalid request"):
        cur.get("exact").from_charge(jax.device_get(bad))


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="model"):
        retrain("linear", lam=0.1)
    with pytest.raises(ValueError, match="lam"):
        retrain(models.linear(3), lam=-1.0)
    with pytest.raises(ValueError, match="batch_size"):
        retrain(models.linear(3), lam=0.1, batch_size=4)
