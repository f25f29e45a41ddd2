"""Deletion requests chosen to degrade accuracy.

Threat (Qian, Zhao, Le, Ma & Huai, KDD 2023, "Towards Understanding and
Enhancing Robustness of Deep Learning Models against Malicious Unlearning
Attacks"; the "requests that destroy accuracy" of the survey of Chen et al.,
AI Magazine 2025): a coalition of data subjects requests the deletion of
their own, genuine records, chosen so that the unlearned model's accuracy
falls as much as possible. Unlike Huang et al.'s "Unlearn and Burn" (arXiv
2410.09591) the requests name real training rows, so a membership check
does not stop them.

Selection: greedy by influence, as in :mod:`dpunlearn.threats.fairness`, on
the mean logistic loss of an evaluation set: deleting row ``i`` (weight
``ω_i`` 1 → 0) changes it by about ``−∂L_eval(w*(ω))/∂ω_i`` (Koh & Liang,
ICML 2017, eq. 4), computed by implicit differentiation of the fitted weights
(:mod:`dpunlearn.threats._implicit`); ``rounds`` refits.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn import _validate
from dpunlearn.methods.base import Data
from dpunlearn.solvers import mm
from dpunlearn.threats._implicit import fit_logistic

__all__ = ["AccuracySelection", "select_accuracy_deletions"]


@jax.jit
def _influence(X, y, weights, lam, Xe, ye):
    def loss(weights):
        w = fit_logistic(X, y, lam, weights)
        return jnp.mean(jax.nn.softplus(-ye * mm(Xe, w)))

    return jax.value_and_grad(loss)(weights)


class AccuracySelection(NamedTuple):
    """``rows``: the rows to request, in order; ``surrogate``: the evaluation
    loss of the attacker's refit before and after each round."""

    rows: np.ndarray
    surrogate: np.ndarray


def select_accuracy_deletions(
    data: Data,
    num_deletions: int,
    *,
    lam: float,
    eval_data: Data,
    rounds: int = 5,
    candidates=None,
    sign: float = 1.0,
) -> AccuracySelection:
    """Greedy influence selection of ``num_deletions`` rows whose deletion
    raises the loss on ``eval_data`` most (binary logistic, labels ``±1``).

    Args:
      data: Training rows ``Data(X [n, d], y ±1)``.
      num_deletions: ``k``.
      lam: The ``λ`` the attacker assumes (mean form).
      eval_data: Rows the attacker evaluates on (e.g. its own held-out data).
      rounds: Greedy rounds (refits).
      candidates: Optional indices the attacker controls (default: all rows).
      sign: ``+1`` raises the loss; ``−1`` lowers it (the control).
    """
    _validate.positive_int(num_deletions=num_deletions, rounds=rounds)
    _validate.positive(lam=lam)
    X = jnp.asarray(data.x)
    n = X.shape[0]
    y = jnp.asarray(data.y, X.dtype)
    allowed = np.zeros(n, bool)
    if candidates is None:
        allowed[:] = True
    else:
        c = np.asarray(candidates)
        if c.ndim != 1 or c.dtype.kind not in "iu" or c.size and (c.min() < 0 or c.max() >= n):
            raise ValueError(f"Expected candidates to be 1-D integer indices in [0, {n - 1}].")
        allowed[c] = True
    if num_deletions > allowed.sum() or num_deletions >= n:
        raise ValueError(
            f"Expected num_deletions <= {int(allowed.sum())} candidates (and < {n}), got {num_deletions}."
        )
    Xe, ye = jnp.asarray(eval_data.x, X.dtype), jnp.asarray(eval_data.y, X.dtype)
    weights = np.ones(n, np.dtype(X.dtype))
    chosen, trace = [], []
    per_round = np.diff(np.linspace(0, num_deletions, rounds + 1).round().astype(int))
    for k in per_round:
        val, grad = _influence(X, y, jnp.asarray(weights), lam, Xe, ye)
        trace.append(float(val))
        score = -sign * np.asarray(grad)
        score[(weights == 0) | ~allowed] = -np.inf
        pick = np.argsort(-score, kind="stable")[: int(k)]
        weights[pick] = 0
        chosen.extend(int(i) for i in pick)
    val, _ = _influence(X, y, jnp.asarray(weights), lam, Xe, ye)
    trace.append(float(val))
    return AccuracySelection(np.asarray(chosen, np.int64), np.asarray(trace))
