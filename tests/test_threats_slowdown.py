"""The slow-down attack (Marchant et al., AAAI 2022) against certified removal."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpunlearn import data as D
from dpunlearn import methods
from dpunlearn.accounting import ledger as L
from dpunlearn.threats import _implicit, slowdown


def digits_binary(n):
    ds = D.load("digits", seed=0, label_format="int")
    y = np.where(ds.y_train >= 5, 1.0, -1.0).astype("f4")
    return methods.Data(ds.X_train[:n], y[:n])


def paper_ledger(tmp_path, name, sigma):
    return L.Ledger.create(
        tmp_path / name,
        currency="certified_removal",
        params={"rule": "paper", "sigma": sigma},
        target_epsilon=1.0,
        target_delta=1e-4,
    )


def test_implicit_gradient_matches_central_differences():
    # d/dX of a function of the fitted weights, by the implicit function
    # theorem, against float64 central differences of a full refit.
    with jax.enable_x64(True):
        r = np.random.default_rng(0)
        X = r.normal(size=(30, 4)) / 3
        y = np.where(r.normal(size=30) + X[:, 0] > 0, 1.0, -1.0)
        u = r.normal(size=4)

        @jax.jit
        def f(X):
            return jnp.dot(u, _implicit.fit_logistic(X, y, 0.05))

        g = np.asarray(jax.grad(f)(jnp.asarray(X)))
        h = 1e-5
        for i, j in [(0, 0), (7, 2), (29, 3)]:
            E = np.zeros_like(X)
            E[i, j] = h
            fd = (f(jnp.asarray(X + E)) - f(jnp.asarray(X - E))) / (2 * h)
            assert g[i, j] == pytest.approx(float(fd), rel=1e-5, abs=1e-9)
        # The minimiser is a root of the first-order condition.
        w = _implicit.fit_logistic(jnp.asarray(X), y, 0.05)
        grad = _implicit.logistic_grad_rows(w, jnp.asarray(X), y).sum(0) + 0.05 * 30 * w
        assert float(jnp.linalg.norm(grad)) < 1e-10


def test_projection_lands_in_every_set():
    r = np.random.default_rng(1)
    c = np.abs(r.normal(size=(5, 8))).astype("f4")
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = c + r.normal(size=c.shape).astype("f4")
    for norm in ("linf", "l2"):
        p = np.asarray(slowdown.project_ball_box(jnp.asarray(x), jnp.asarray(c), radius=0.1, norm=norm))
        dist = np.abs(p - c).max(1) if norm == "linf" else np.linalg.norm(p - c, axis=1)
        assert (dist <= 0.1 + 1e-5).all()
        assert (np.linalg.norm(p, axis=1) <= 1 + 1e-6).all() and (p >= 0).all()
        # A point already inside stays put.
        q = np.asarray(slowdown.project_ball_box(jnp.asarray(c), jnp.asarray(c), radius=0.1, norm=norm))
        np.testing.assert_allclose(q, c, atol=1e-6)
    with pytest.raises(ValueError, match="norm"):
        slowdown.project_ball_box(jnp.asarray(x), jnp.asarray(c), radius=0.1, norm="l1")


def test_bad_attacker_rows_are_named():
    d = digits_binary(50)
    with pytest.raises(ValueError, match="attacker_rows"):
        slowdown.craft_slowdown(d, [3, 3], lam=1e-3, radius=0.1)
    with pytest.raises(ValueError, match="attacker_rows"):
        slowdown.craft_slowdown(d, [60], lam=1e-3, radius=0.1)
    with pytest.raises(ValueError, match="radius"):
        slowdown.craft_slowdown(d, [1], lam=1e-3, radius=0.0)


def test_slowdown_cuts_removals_per_retrain_to_30_percent_of_clean(tmp_path):
    # Marchant et al. report the retrain interval falling by 70-100 %. Here:
    # 400 digits rows (binary: digit >= 5), the attacker owns 20 (5 %),
    # l_inf radius 0.1 around its rows, certified removal with lam = 1e-3,
    # sigma = 0.5 and the paper's budget rule; all 20 rows are removed one by
    # one through serve(). The result is deterministic given the seeds.
    lam, sigma, radius = 1e-3, 0.5, 0.1
    d = digits_binary(400)
    rows = np.random.default_rng(0).choice(400, 20, replace=False)
    poison = slowdown.craft_slowdown(d, rows, lam=lam, radius=radius, num_steps=20)
    assert float(poison.charge_after) > 3 * float(poison.charge_before)
    X = np.asarray(d.x).copy()
    assert np.abs(np.asarray(poison.x) - X[rows]).max() <= radius + 1e-5
    method = methods.certified_removal(lam=lam, sigma=sigma, epsilon=1.0, delta=1e-4, num_shadows=0)

    def interval(x, name):
        ledger = paper_ledger(tmp_path, name, sigma)
        return slowdown.serve_removals(
            method, methods.Data(x, d.y), rows, key=jax.random.key(7), ledger=ledger
        )

    clean = interval(X, "clean.jsonl")
    Xp = X.copy()
    Xp[rows] = np.asarray(poison.x)
    attacked = interval(Xp, "poison.jsonl")
    # Control: a random perturbation of the same size (random signs at the
    # l_inf radius, projected the same way) must NOT reach the criterion.
    signs = np.random.default_rng(1).choice([-1.0, 1.0], size=X[rows].shape).astype("f4")
    Xr = X.copy()
    Xr[rows] = np.asarray(
        slowdown.project_ball_box(jnp.asarray(X[rows] + radius * signs), jnp.asarray(X[rows]), radius=radius)
    )
    random = interval(Xr, "random.jsonl")
    assert clean.num_retrains >= 1  # the budget binds on clean data too
    assert attacked.removals_per_retrain <= 0.3 * clean.removals_per_retrain
    assert random.removals_per_retrain > 0.3 * clean.removals_per_retrain
