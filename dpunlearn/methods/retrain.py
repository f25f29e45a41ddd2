"""Exact unlearning by retraining from scratch: the baseline every attack compares to.

``unlearn`` trains a new model on the remaining rows with a fresh key, so the
unlearned model has exactly the distribution of a model that never saw the
removed rows (ε = 0; the ledger currency ``"exact"``). It is the reference
hypothesis of every unlearning attack and audit (:mod:`dpunlearn.attacks`,
:mod:`dpunlearn.audit`), and the "retrain" arm of the NeurIPS 2023
unlearning-challenge score.

**Objective.** ``F(θ) = (1/|m|) Σ_{i: m_i} loss(θ, x_i, y_i) + (λ/2)‖θ‖²`` over
the rows of the mask ``m`` (any :class:`~dpunlearn.models.Model`; the
parameters are flattened with ``ravel_pytree`` only for the L2 term and the
default solver).

**Trainers.**

* ``optimizer=None`` (default): full-batch L-BFGS
  (:func:`dpunlearn.methods._minimize.lbfgs`) until ``‖∇F‖_∞ <= tol`` or
  ``steps`` iterations. Deterministic given the data: the key is unused
  unless ``init_scale > 0``. Written to batch under ``jax.vmap`` (hundreds of
  shadow models in one program); ``optax.lbfgs`` does not batch well.
* ``optimizer=<optax.GradientTransformation>``: ``steps`` updates, full batch
  (``batch_size=None``) or minibatches of ``batch_size`` rows drawn uniformly
  with replacement from the mask with the key (stochastic: independent
  retrains differ, which the challenge score needs). Optimisers that want
  ``value``/``grad``/``value_fn`` (``optax.lbfgs``) receive them.

``init_scale > 0`` starts from ``model.params + init_scale·N(0, I)`` drawn
from the key (random initialisation for non-convex models).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from dpunlearn import _sharding, _validate, models
from dpunlearn.methods import _minimize
from dpunlearn.methods.base import (
    Data,
    Method,
    check_data,
    check_mask,
    check_request,
    request_valid,
)
from dpunlearn.types import Array, PRNGKey

__all__ = ["ExactCharge", "RetrainInfo", "RetrainState", "retrain"]


class RetrainState(NamedTuple):
    """A model trained from scratch (no secrets: nothing to hide but the data).

    Attributes:
      params: The released parameters (the model's pytree).
      mask: ``bool[n]``: the rows the model was trained on.
    """

    params: object
    mask: Array


class ExactCharge(NamedTuple):
    """What a training or a request costs in the ``"exact"`` currency (nothing).

    Attributes:
      num_removed: Rows removed (0 for a training or a refused request).
      valid: The request was valid (else the model is unchanged and the
        currency refuses the charge).
    """

    num_removed: Array
    valid: Array


class RetrainInfo(NamedTuple):
    """How the (re)training ended.

    Attributes:
      valid: The request was valid.
      steps: Solver iterations (``steps`` for an optax trainer).
      grad_norm: ``‖∇F‖_∞`` at the returned parameters (full batch).
      converged: ``grad_norm <= tol`` (always ``True`` when ``tol`` is None).
    """

    valid: Array
    steps: Array
    grad_norm: Array
    converged: Array


def retrain(
    model: models.Model,
    *,
    lam: float,
    optimizer: optax.GradientTransformation | None = None,
    steps: int = 200,
    tol: float | None = 1e-5,
    batch_size: int | None = None,
    init_scale: float = 0.0,
    name: str = "retrain",
) -> Method:
    """Exact unlearning: retrain on the remaining rows with a fresh key.

    Args:
      model: Any :class:`~dpunlearn.models.Model`.
      lam: L2 strength (mean form), ``>= 0``.
      optimizer: ``None`` for full-batch L-BFGS, or an optax transformation.
      steps: Iteration limit (L-BFGS) or number of updates (optax). Static.
      tol: L-BFGS gradient tolerance ``‖∇F‖_∞`` (ignored by optax trainers).
      batch_size: Minibatch size for an optax trainer (``None``: full batch).
      init_scale: Std of a random initialisation around ``model.params``.
      name: The method's name (e.g. ``"retrain_sgd"`` for a second setting).

    Returns:
      A :class:`~dpunlearn.methods.base.Method` with currency ``"exact"``.
      ``train`` returns ``(RetrainState, ExactCharge)``; ``unlearn`` returns
      ``(RetrainState, ExactCharge, RetrainInfo)``.

    Guarantees:
      ``unlearn(key, state, r, data)`` is ``train(key, data, mask − r)``:
      exactly a model that never saw the rows ``r`` (tested bit for bit).
    """
    if not isinstance(model, models.Model):
        raise ValueError(
            f"Expected model to be a dpunlearn.models.Model, got {type(model).__name__}."
        )
    _validate.non_negative(lam=lam, init_scale=init_scale)
    _validate.positive_int(steps=steps)
    if optimizer is None:
        if tol is None:
            raise ValueError("Expected tol > 0 for the default L-BFGS trainer.")
        _validate.positive(tol=tol)
        if batch_size is not None:
            raise ValueError("batch_size needs an optax optimizer (L-BFGS is full batch).")
    if batch_size is not None:
        _validate.positive_int(batch_size=batch_size)
    lam, init_scale = float(lam), float(init_scale)
    flat0, unravel = ravel_pytree(model.params)
    dtype = flat0.dtype
    per_example = jax.vmap(model.loss, in_axes=(None, 0, 0))

    def objective(params, data: Data, weights):
        vals = per_example(params, data.x, data.y)
        flat, _ = ravel_pytree(params)
        return jnp.sum(weights * vals) / jnp.sum(weights) + 0.5 * lam * jnp.vdot(flat, flat)

    def init_params(key):
        if init_scale == 0.0:
            return flat0
        return flat0 + init_scale * jax.random.normal(key, flat0.shape, dtype)

    def fit(key, data: Data, mask):
        weights = mask.astype(dtype)
        k_init, k_batches = jax.random.split(key)
        w0 = init_params(k_init)
        full = lambda w: objective(unravel(w), data, weights)
        if optimizer is None:
            w, info = _minimize.lbfgs(full, w0, tol=float(tol), max_steps=steps)
            return unravel(w), info.steps, info.grad_norm, info.converged
        opt = optax.with_extra_args_support(optimizer)
        n = mask.shape[0]
        probs = weights / jnp.sum(weights)

        def step(carry, k):
            w, s = carry
            if batch_size is None:
                fn = full
            else:
                idx = jax.random.choice(k, n, (batch_size,), p=probs)
                take = lambda a: _sharding.gather_rows(a, idx)
                sub = Data(jax.tree.map(take, data.x), take(data.y))
                fn = lambda v: objective(unravel(v), sub, jnp.ones((batch_size,), dtype))
            value, grad = jax.value_and_grad(fn)(w)
            updates, s = opt.update(grad, s, w, value=value, grad=grad, value_fn=fn)
            return (optax.apply_updates(w, updates), s), None

        (w, _), _ = _sharding.scan(
            step, (w0, opt.init(w0)), jax.random.split(k_batches, steps)
        )
        gnorm = jnp.max(jnp.abs(jax.grad(full)(w)))
        return unravel(w), jnp.asarray(steps), gnorm, jnp.asarray(True)

    @jax.jit
    def train_impl(key, data, mask):
        params, _, _, _ = fit(key, data, mask)
        return RetrainState(params, mask)

    @jax.jit
    def unlearn_impl(key, state, request, data):
        valid, safe = request_valid(request, state.mask)
        mask = _sharding.scatter(state.mask, safe, False)
        params, k, gnorm, conv = fit(key, data, mask)
        new = RetrainState(params, mask)
        out = jax.tree.map(lambda a, b: jnp.where(valid, a, b), new, state)
        charge = ExactCharge(jnp.where(valid, request.shape[0], 0).astype(jnp.int32), valid)
        return out, charge, RetrainInfo(valid, k, gnorm, conv)

    def train(key: PRNGKey, data: Data, mask=None):
        _validate.prng_key("key", key)
        data = check_data(data)
        mask = check_mask(mask, data.num_rows, data=data)
        state = train_impl(key, data, mask)
        return state, ExactCharge(jnp.zeros((), jnp.int32), jnp.asarray(True))

    def unlearn(key: PRNGKey, state: RetrainState, request, data: Data):
        _validate.prng_key("key", key)
        data = check_data(data, num_rows=int(np.shape(state.mask)[-1]))
        request = check_request(request, state.mask)
        return unlearn_impl(key, state, jnp.asarray(request), data)

    def predict(params, inputs):
        return jax.vmap(model.predict, in_axes=(None, 0))(params, inputs)

    return Method(name=name, currency="exact", train=train, unlearn=unlearn, predict=predict)
