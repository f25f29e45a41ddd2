"""Fair unlearning (Oesterling, Ma, Calmon & Lakkaraju, AISTATS 2024) as a
method of the common interface.

"Fair Machine Unlearning: Data Removal while Mitigating Disparities" trains a
binary logistic regression with a convex equalized-odds penalty (Berk et al.
2017's pairwise form) and loss perturbation, and removes rows by one Newton
step on the *fair* objective. The penalty is not a sum over rows (removing a
row changes the pairwise vector and its normalisation), which is why
ordinary certified removal (:mod:`dpunlearn.methods.certified_removal`)
cannot keep it; here the step recomputes it on the remaining rows.

Objective (sum form, rows ``i`` where the mask holds, ``n′`` of them):

  L_b(θ) = Σ_i ℓ(y_i θᵀx_i) + (λn′/2)‖θ‖² + γn′(θᵀs)² + bᵀθ,
  s = (1/(n_a n_b)) Σ_{i∈a, j∈b, y_i = y_j} (x_i − x_j),

``ℓ`` the logistic loss, ``a``/``b`` the two groups, ``b ~ N(0, σ²I)``
(Oesterling et al., §4, eq. 4 with the pairwise equalized-odds penalty;
``s`` is computed from per-group, per-label sums in ``O(nd)``). Removal: one
Newton step from the current ``θ`` on the remaining rows' objective
(Oesterling et al., Algorithm 1), ``θ⁻ = θ − H′(θ)⁻¹∇L′_b(θ)`` with
``H′ = Σ σσ x xᵀ + λn′I + 2γn′ s′s′ᵀ``.

The sensitive attribute is a column of ``x`` (``group_column``: group ``a``
where it is ``> 0``); the model ignores that column (it is zeroed in the
features and the perturbation), so predictions never use the attribute.

**Accounting.** The charge is the currency ``"certified_removal"``'s paper
rule (Guo et al., ICML 2020, Algorithm 2, with a ledger created with
``rule="paper"``): the gradient residual ``‖∇L′_b(θ⁻)‖`` of the released
model, computed exactly from the data (mode ``"set"``). Like Algorithm 2 it
depends on the secret ``b`` and is **not** a sound certificate
(``docs/certified_removal.md``); there is no shadow schedule for this method.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dpunlearn import _sharding, _validate
from dpunlearn.methods.base import (
    Data,
    Method,
    check_data,
    check_mask,
    check_request,
    request_valid,
)
from dpunlearn.methods.certified_removal import CertifiedRemovalCharge
from dpunlearn.solvers import mm
from dpunlearn.types import Array, PRNGKey

__all__ = ["FairUnlearningState", "fair_unlearning", "fairness_vector"]


class FairUnlearningState(NamedTuple):
    """Weights, the secret perturbation (never release it), the row mask and
    the current gradient residual ``‖∇L_b(θ)‖``."""

    params: Array
    perturbation: Array
    mask: Array
    residual: Array
    num_removed: Array


def fairness_vector(X: Array, y: Array, group: Array, weights: Array) -> Array:
    """``s = (1/(n_a n_b)) Σ_{i∈a, j∈b, y_i=y_j} (x_i − x_j)`` over weighted rows.

    Per label ``c``: ``Σ_{i∈a_c} Σ_{j∈b_c} (x_i − x_j) = n_{b,c} S_{a,c} −
    n_{a,c} S_{b,c}`` with ``S`` the per-group, per-label feature sums.
    Jittable.
    """
    ga = weights * group
    gb = weights * (1 - group)
    s = jnp.zeros(X.shape[1], X.dtype)
    for c in (1.0, -1.0):
        sel = (y == c).astype(X.dtype)
        wa, wb = ga * sel, gb * sel
        s = s + jnp.sum(wb) * mm(wa, X) - jnp.sum(wa) * mm(wb, X)
    return s / jnp.maximum(jnp.sum(ga) * jnp.sum(gb), 1.0)


def fair_unlearning(
    *,
    lam: float,
    sigma: float,
    fairness: float,
    group_column: int,
    num_steps: int = 30,
) -> Method:
    """Oesterling et al.'s fair unlearning (see the module docstring).

    Args:
      lam: L2 strength ``λ > 0`` (mean form).
      sigma: Std ``σ >= 0`` of the loss perturbation ``b``.
      fairness: ``γ >= 0``, weight of the equalized-odds penalty (``0``: plain
        loss-perturbed logistic regression with Newton removal).
      group_column: Column of ``x`` holding the sensitive attribute (``> 0``
        is group ``a``); excluded from the model.
      num_steps: Newton steps of training (static).

    Data: ``Data(x [n, d], y ±1)``.
    """
    _validate.positive(lam=lam)
    _validate.non_negative(sigma=sigma, fairness=fairness)
    _validate.positive_int(num_steps=num_steps)
    if isinstance(group_column, bool) or not isinstance(group_column, int) or group_column < 0:
        raise ValueError(f"Expected group_column to be a non-negative int, got {group_column!r}.")

    def split(X):
        if group_column >= X.shape[1]:
            raise ValueError(
                f"Expected group_column < {X.shape[1]} (the number of features), got {group_column}."
            )
        group = (X[:, group_column] > 0).astype(X.dtype)
        return X.at[:, group_column].set(0.0), group

    def grad_hess(theta, X, y, group, weights, b):
        n = jnp.sum(weights)
        s = fairness_vector(X, y, group, weights)
        z = y * mm(X, theta)
        g = mm(weights * (-y * jax.nn.sigmoid(-z)), X)
        g = g + lam * n * theta + 2 * fairness * n * jnp.dot(s, theta) * s + b
        curv = weights * jax.nn.sigmoid(z) * jax.nn.sigmoid(-z)
        H = mm(X.T * curv, X) + lam * n * jnp.eye(X.shape[1], dtype=X.dtype)
        H = H + 2 * fairness * n * jnp.outer(s, s)
        return g, H

    def charge(state, valid, num_removed=0):
        return CertifiedRemovalCharge(
            num_removed=jnp.asarray(num_removed, jnp.int32),
            num_exceeded=jnp.zeros((), jnp.int32),
            num_shadows=jnp.zeros((), jnp.int32),
            residual_bound=jnp.where(valid, state.residual, jnp.inf),
            epsilon_pointwise=jnp.asarray(jnp.nan, state.params.dtype),
            rounding_failure=jnp.zeros((), state.params.dtype),
            valid=jnp.asarray(valid),
        )

    def train(key: PRNGKey, data: Data, mask=None):
        data = check_data(data)
        mask = check_mask(mask, data.num_rows, data=data)
        X = jnp.asarray(data.x)
        if group_column >= X.shape[1]:  # checked here, before the compiled fit
            split(X)
        return fit(key, X, jnp.asarray(data.y, X.dtype), mask)

    # One compiled program per data shape: called eagerly, the fori_loop
    # closed over this call's data and was compiled anew on every train.
    @jax.jit
    def fit(key, X, y, mask):
        X, group = split(X)
        weights = mask.astype(X.dtype)
        b = sigma * jax.random.normal(key, (X.shape[1],), X.dtype)
        b = b.at[group_column].set(0.0)

        def step(_, theta):
            g, H = grad_hess(theta, X, y, group, weights, b)
            return theta - jnp.linalg.solve(H, g)

        theta = _sharding.fori_loop(0, num_steps, step, jnp.zeros(X.shape[1], X.dtype))
        g, _ = grad_hess(theta, X, y, group, weights, b)
        state = FairUnlearningState(
            theta, b, mask, jnp.linalg.norm(g), jnp.zeros((), jnp.int32)
        )
        return state, charge(state, jnp.all(jnp.isfinite(theta)))

    def unlearn(key: PRNGKey, state: FairUnlearningState, request, data: Data):
        del key  # the Newton step is deterministic; the only secret is b
        data = check_data(data, num_rows=state.mask.shape[0])
        request = check_request(request, state.mask)
        request = jnp.atleast_1d(jnp.asarray(request))
        valid, safe = request_valid(request, state.mask)
        X, group = split(jnp.asarray(data.x))
        y = jnp.asarray(data.y, X.dtype)
        mask = jnp.where(valid, _sharding.scatter(state.mask, safe, False), state.mask)
        weights = mask.astype(X.dtype)
        g, H = grad_hess(state.params, X, y, group, weights, state.perturbation)
        theta = jnp.where(valid, state.params - jnp.linalg.solve(H, g), state.params)
        g_new, _ = grad_hess(theta, X, y, group, weights, state.perturbation)
        new = FairUnlearningState(
            theta,
            state.perturbation,
            mask,
            jnp.where(valid, jnp.linalg.norm(g_new), state.residual),
            state.num_removed + jnp.where(valid, request.shape[0], 0).astype(jnp.int32),
        )
        return new, charge(new, valid, request.shape[0]), {"valid": valid, "residual": new.residual}

    def predict(params, inputs):
        return jnp.where(mm(jnp.asarray(inputs), params) >= 0, 1, -1)

    return Method(
        name="fair_unlearning",
        currency="certified_removal",
        train=train,
        unlearn=unlearn,
        predict=predict,
    )
