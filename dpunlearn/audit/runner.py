"""Audit a method of the common interface: unlearned models against retrained ones.

The (U) guarantee of a certified unlearning method: a model trained on ``D``
and then asked to forget ``F`` is (ε, δ)-indistinguishable from a model
trained on ``D ∖ F`` (with fresh randomness). :func:`audit_unlearning` samples
both distributions with ``num_runs`` independent keys each (one ``vmap`` of
``method.train`` and one of ``method.unlearn``), reduces every model to one
score (a *statistic*), and turns the two samples of scores into a
high-confidence lower bound on ε (:func:`dpunlearn.audit.epsilon.epsilon_lower_bound`,
Jagielski et al. 2020). A correct method's bound exceeds its certificate with
probability at most ``alpha``; a bound above the claim is a violation.

Statistics:

* ``"confidence"`` (black box): the mean logit-scaled confidence of the forget
  rows (:func:`dpunlearn.attacks.query.confidence`).
* ``"params"`` (white box): the projection of the flattened parameters on the
  difference of the two populations' means, estimated on the runs the bound
  uses for selection only (even indices), so the evaluation runs stay
  untouched.
* a callable ``params_stack -> scores [N]``.

:func:`audit_models` is the same bound from parameters the caller already has.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from dpunlearn import _validate
from dpunlearn.attacks import roc, shadows
from dpunlearn.attacks.query import Query, confidence, linear_query
from dpunlearn.audit.epsilon import EpsilonBound, epsilon_lower_bound
from dpunlearn.methods.base import Data, Method, as_data
from dpunlearn.types import PRNGKey

__all__ = [
    "AuditReport",
    "audit_models",
    "audit_unlearning",
    "claimed_epsilon",
    "unlearning_runs",
]


class AuditReport(NamedTuple):
    """An empirical audit of one method.

    Attributes:
      method: The method's name.
      epsilon_lower_bound: ``bound.lower``.
      interval: ``bound.interval``.
      epsilon_claimed: The certificate's ε (``None``: the method claims none).
      delta: δ the bound is stated at.
      violation: ``lower > epsilon_claimed`` (``None`` without a claim).
      bound: The full :class:`~dpunlearn.audit.epsilon.EpsilonBound`.
      statistic: The statistic's name.
      num_runs: Runs per hypothesis.
      auc: AUC of the statistic, unlearned vs retrained, on the evaluation
        runs (odd indices: the ``"params"`` direction is fitted on the even
        ones); 0.5 = no signal.
      roc: Its ROC curve (the same runs).
      scores_unlearned, scores_retrained: The statistic of every run.
      charges_unlearned: The unlearning charges (stacked).
      seconds: Wall-clock seconds of training and unlearning.
    """

    method: str
    epsilon_lower_bound: float
    interval: tuple[float, float]
    epsilon_claimed: float | None
    delta: float
    violation: bool | None
    bound: EpsilonBound
    statistic: str
    num_runs: int
    auc: float
    roc: roc.RocCurve
    scores_unlearned: np.ndarray
    scores_retrained: np.ndarray
    charges_unlearned: Any
    seconds: float


def unlearning_runs(
    key: PRNGKey,
    method: Method,
    data: Data,
    forget,
    *,
    num_runs: int,
    mask=None,
    batch_size: int | None = None,
):
    """``num_runs`` models trained on ``mask`` then unlearned ``forget``, and
    ``num_runs`` trained on ``mask ∖ forget``; independent keys throughout.

    Returns:
      ``(unlearned_states, unlearned_charges, retrained_states)``, stacked.
    """
    data = as_data(data)
    _validate.positive_int(num_runs=num_runs)
    n = data.num_rows
    forget = np.atleast_1d(np.asarray(forget))
    base = np.ones(n, bool) if mask is None else np.asarray(mask, bool).copy()
    if not base[forget].all():
        raise ValueError("Expected every forget row to be in the training mask.")
    reduced = base.copy()
    reduced[forget] = False
    k_train, k_unl, k_ref = jax.random.split(key, 3)
    masks = jnp.broadcast_to(jnp.asarray(base), (num_runs, n))
    states, _ = shadows.train_models(
        method, jax.random.split(k_train, num_runs), data, masks, batch_size=batch_size
    )
    reqs = jnp.broadcast_to(jnp.asarray(forget, jnp.int32), (num_runs, forget.size))
    unl, charges, _ = shadows.unlearn_models(
        method, jax.random.split(k_unl, num_runs), states, reqs, data, batch_size=batch_size
    )
    ref, _ = shadows.train_models(
        method,
        jax.random.split(k_ref, num_runs),
        data,
        jnp.broadcast_to(jnp.asarray(reduced), (num_runs, n)),
        batch_size=batch_size,
    )
    return unl, charges, ref


def _flat_stack(params) -> np.ndarray:
    return np.asarray(jax.vmap(lambda p: ravel_pytree(p)[0])(params), np.float64)


def _statistic(statistic, query, forget_x, forget_y, params_u, params_r):
    if callable(statistic):
        return np.asarray(statistic(params_u), np.float64), np.asarray(statistic(params_r), np.float64), getattr(statistic, "__name__", "custom")
    if statistic == "confidence":
        fn = jax.jit(jax.vmap(lambda p: jnp.mean(confidence(query, p, forget_x, forget_y))))
        return np.asarray(fn(params_u), np.float64), np.asarray(fn(params_r), np.float64), "confidence"
    if statistic == "params":
        fu, fr = _flat_stack(params_u), _flat_stack(params_r)
        direction = fu[0::2].mean(axis=0) - fr[0::2].mean(axis=0)
        return fu @ direction, fr @ direction, "params"
    raise ValueError(f'Expected statistic "confidence", "params" or a callable, got {statistic!r}.')


def audit_models(
    params_unlearned,
    params_retrained,
    *,
    delta: float,
    forget=None,
    query: Query | None = None,
    statistic: str | Callable = "confidence",
    alpha: float = 0.05,
    family: str = "threshold",
    num_thresholds: int = 64,
) -> tuple[EpsilonBound, np.ndarray, np.ndarray, str]:
    """The ε lower bound from two stacks of independently drawn models.

    Args:
      params_unlearned, params_retrained: Parameters stacked on axis 0, one
        per independent run of each hypothesis.
      delta: δ of the guarantee.
      forget: ``Data(x, y)`` of the forget set (for ``"confidence"``).
      query: Black-box access (default :func:`linear_query`).
      statistic, alpha, family, num_thresholds: See the module docstring and
        :func:`~dpunlearn.audit.epsilon.epsilon_lower_bound`.

    Returns:
      ``(bound, scores_unlearned, scores_retrained, statistic_name)``.
    """
    query = linear_query() if query is None else query
    fx = fy = None
    if statistic == "confidence":
        if forget is None:
            raise ValueError('statistic="confidence" needs the forget set (forget=Data(x, y)).')
        forget = as_data(forget)
        fx, fy = forget.x, forget.y
    su, sr, name = _statistic(statistic, query, fx, fy, params_unlearned, params_retrained)
    bound = epsilon_lower_bound(
        su, sr, delta=delta, alpha=alpha, family=family, num_thresholds=num_thresholds
    )
    return bound, su, sr, name


def claimed_epsilon(charges) -> float | None:
    """The largest ε a stack of charges certifies, if the charges carry one
    (``epsilon``: Sekhari, Descent-to-Delete); ``None`` otherwise."""
    if hasattr(charges, "epsilon"):
        return float(np.max(np.asarray(charges.epsilon)))
    return None


def audit_unlearning(
    key: PRNGKey,
    method: Method,
    data: Data,
    forget,
    *,
    num_runs: int,
    delta: float,
    epsilon_claimed: float | None = None,
    statistic: str | Callable = "confidence",
    query: Query | None = None,
    alpha: float = 0.05,
    family: str = "threshold",
    num_thresholds: int = 64,
    mask=None,
    batch_size: int | None = None,
) -> AuditReport:
    """Runs the audit of ``method`` on deleting the rows ``forget``.

    Args:
      key: Randomness of every run.
      method: Any method of the common interface.
      data: Training data.
      forget: Row indices deleted in one request.
      num_runs: Independent runs per hypothesis.
      delta: δ of the certificate audited.
      epsilon_claimed: The certificate's ε; default :func:`claimed_epsilon`
        of the unlearning charges (``None`` if they carry none).
      statistic, query, alpha, family, num_thresholds: See :func:`audit_models`.
      mask: Rows trained on (default all).
      batch_size: Models per vmapped chunk.
    """
    data = as_data(data)
    forget = np.atleast_1d(np.asarray(forget))
    t0 = time.perf_counter()
    unl, charges, ref = unlearning_runs(
        key, method, data, forget, num_runs=num_runs, mask=mask, batch_size=batch_size
    )
    jax.block_until_ready((unl, ref))
    seconds = time.perf_counter() - t0
    fset = Data(data.x[forget], data.y[forget])
    bound, su, sr, name = audit_models(
        unl.params, ref.params, delta=delta, forget=fset, query=query, statistic=statistic,
        alpha=alpha, family=family, num_thresholds=num_thresholds,
    )
    claim = claimed_epsilon(charges) if epsilon_claimed is None else float(epsilon_claimed)
    return AuditReport(
        method=method.name,
        epsilon_lower_bound=bound.lower,
        interval=bound.interval,
        epsilon_claimed=claim,
        delta=float(delta),
        violation=None if claim is None else bool(bound.lower > claim),
        bound=bound,
        statistic=name,
        num_runs=int(num_runs),
        auc=roc.auc(su[1::2], sr[1::2]),
        roc=roc.roc_curve(su[1::2], sr[1::2]),
        scores_unlearned=su,
        scores_retrained=sr,
        charges_unlearned=charges,
        seconds=seconds,
    )
