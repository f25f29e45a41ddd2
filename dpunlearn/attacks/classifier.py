"""Attack models: binary classifiers trained on shadow features.

Chen et al. (CCS 2021) train a scikit-learn classifier (decision tree by
default; random forest, logistic regression and MLP also) on features of
shadow model pairs. Any object with scikit-learn's ``fit(X, y)`` /
``predict_proba(X)`` works in :mod:`dpunlearn.attacks.membership`; the two
here need only JAX and optax:

* :class:`LogisticAttack`: L2-regularised logistic regression on
  standardised features (full-batch L-BFGS; deterministic).
* :class:`MLPAttack`: one ReLU hidden layer, Adam, full batch (the key of
  its ``seed`` fixes the initialisation).
"""

from __future__ import annotations

import copy
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dpunlearn.methods import _minimize

__all__ = ["LogisticAttack", "MLPAttack", "fresh"]


class _Standardised:
    def _prep(self, X, fit: bool):
        X = np.asarray(X, np.float64)
        if X.ndim != 2:
            raise ValueError(f"Expected features [N, F], got shape {X.shape}.")
        if fit:
            self.mean_ = X.mean(axis=0)
            sd = X.std(axis=0)
            self.scale_ = np.where(sd > 0, sd, 1.0)
        return jnp.asarray((X - self.mean_) / self.scale_, jnp.float32)

    @staticmethod
    def _labels(y):
        y = np.asarray(y)
        if not np.isin(y, (0, 1)).all():
            raise ValueError("Expected labels in {0, 1}.")
        return jnp.asarray(y, jnp.float32)

    def predict_proba(self, X):
        z = np.asarray(self._logit(self._prep(X, fit=False)), np.float64)
        p = 1.0 / (1.0 + np.exp(-z))
        return np.stack([1 - p, p], axis=1)


class LogisticAttack(_Standardised):
    """Logistic regression, mean log-loss + ``(l2/2)‖w‖²`` (bias unpenalised)."""

    def __init__(self, l2: float = 1e-3):
        self.l2 = float(l2)

    def fit(self, X, y):
        Xs, ys = self._prep(X, fit=True), self._labels(y)
        v = _fit_logistic(Xs, ys, jnp.float32(self.l2))
        f = Xs.shape[1]
        self.coef_, self.intercept_ = v[:f], v[f]
        return self

    def _logit(self, Xs):
        return Xs @ self.coef_ + self.intercept_


class MLPAttack(_Standardised):
    """One hidden ReLU layer of ``hidden`` units, Adam on the mean log-loss."""

    def __init__(self, hidden: int = 64, steps: int = 1000, learning_rate: float = 1e-2,
                 l2: float = 1e-4, seed: int = 0):
        self.hidden, self.steps, self.learning_rate = int(hidden), int(steps), float(learning_rate)
        self.l2, self.seed = float(l2), int(seed)

    def fit(self, X, y):
        Xs, ys = self._prep(X, fit=True), self._labels(y)
        f = Xs.shape[1]
        k1, k2 = jax.random.split(jax.random.key(self.seed))
        params = {
            "w1": jax.random.normal(k1, (f, self.hidden)) * jnp.sqrt(2.0 / f),
            "b1": jnp.zeros(self.hidden),
            "w2": jax.random.normal(k2, (self.hidden,)) * jnp.sqrt(1.0 / self.hidden),
            "b2": jnp.zeros(()),
        }
        self.params_ = _fit_mlp(
            params, Xs, ys, jnp.float32(self.l2), jnp.float32(self.learning_rate), self.steps
        )
        return self

    @staticmethod
    def _forward(p, Xs):
        h = jax.nn.relu(Xs @ p["w1"] + p["b1"])
        return h @ p["w2"] + p["b2"]

    def _logit(self, Xs):
        return self._forward(self.params_, Xs)


@jax.jit
def _fit_logistic(Xs, ys, l2):
    f = Xs.shape[1]

    def loss(v):
        z = Xs @ v[:f] + v[f]
        return jnp.mean(jax.nn.softplus(z) - ys * z) + 0.5 * l2 * jnp.vdot(v[:f], v[:f])

    v, _ = _minimize.lbfgs(loss, jnp.zeros(f + 1, Xs.dtype), tol=1e-6, max_steps=500)
    return v


@functools.partial(jax.jit, static_argnums=5)
def _fit_mlp(params, Xs, ys, l2, learning_rate, steps):
    """Full-batch Adam (compiled once per shape and ``steps``)."""
    opt = optax.adam(learning_rate)

    def loss(p):
        z = MLPAttack._forward(p, Xs)
        reg = jnp.vdot(p["w1"], p["w1"]) + jnp.vdot(p["w2"], p["w2"])
        return jnp.mean(jax.nn.softplus(z) - ys * z) + 0.5 * l2 * reg

    def step(c, _):
        p, s = c
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return p


def fresh(model):
    """An unfitted copy (``sklearn.base.clone`` for scikit-learn estimators)."""
    try:
        from sklearn.base import BaseEstimator, clone

        if isinstance(model, BaseEstimator):
            return clone(model)
    except ImportError:  # pragma: no cover - scikit-learn is optional
        pass
    return copy.deepcopy(model)
