"""Privacy auditing with one training run (Steinke, Nasr, Jagielski, NeurIPS 2023).

Steinke, Nasr, Jagielski. *Privacy Auditing with One (1) Training Run.*
NeurIPS 2023. https://arxiv.org/abs/2305.08846 (Theorem 3.1 and the p-value
of its Appendix D, with the δ term).

``m`` canaries are each included independently with probability ½; after a
single run, the auditor guesses "in" for the ``k₊`` highest-scoring canaries
and "out" for the ``k₋`` lowest and abstains on the rest: ``r = k₊ + k₋``
guesses, ``v`` correct. If the mechanism is (ε, δ)-DP in each canary's
inclusion, ``v`` is stochastically dominated up to the δ term by
``Binomial(r, q)``, ``q = e^ε/(1 + e^ε)``, and the p-value of observing at
least ``v`` correct guesses is

    p(ε, δ) = P[Bin(r, q) >= v] + 2mδ · max_{1<=i<=v} P[v > Bin(r, q) >= v − i] / i

(capped at 1). The audit's lower bound is the largest ε with
``p(ε, δ) < β``; it holds with probability at least ``1 − β``. (Copies of
the paper's snippet exist with the δ term commented out; it is kept here.)

**Unlearning.** With ``unlearn=True`` every included canary is trained on and
then deleted in one request: a method certified (ε, δ)-close to retraining
makes every released model (ε, δ)-close to ``train(D)`` whatever the
inclusion vector, hence (2ε, (1 + e^ε)δ)-DP in each canary's inclusion:
:func:`one_run_unlearning_claim` gives that pair, which is what the
one-run bound is compared with.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats as _stats

from dpunlearn import _validate
from dpunlearn.attacks.query import Query, confidence, linear_query
from dpunlearn.methods.base import Data, Method, as_data
from dpunlearn.types import PRNGKey

__all__ = [
    "OneRunResult",
    "one_run_audit",
    "one_run_epsilon",
    "one_run_p_value",
    "one_run_unlearning_audit",
    "one_run_unlearning_claim",
]


def _check_counts(m: int, r: int, v: int) -> None:
    for name, val in (("m", m), ("r", r), ("v", v)):
        if isinstance(val, bool) or int(val) != val:
            raise ValueError(f"Expected {name}={val!r} to be an integer.")
    if not 0 <= v <= r <= m:
        raise ValueError(f"Expected 0 <= v <= r <= m, got v={v}, r={r}, m={m}.")


def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """``p(ε, δ)`` above: the chance of ``>= v`` correct guesses out of ``r``."""
    _check_counts(m, r, v)
    if not epsilon >= 0:
        raise ValueError(f"Expected epsilon={epsilon} >= 0.")
    if not 0 <= delta <= 1:
        raise ValueError(f"Expected delta={delta} in [0, 1].")
    q = 1.0 / (1.0 + math.exp(-epsilon)) if epsilon < 700 else 1.0
    tail = float(_stats.binom.sf(v - 1, r, q))  # P[Bin >= v]
    if v == 0 or delta == 0:
        return min(tail, 1.0)
    # P[v > Bin >= v − i] for i = 1..v, the cumulative sum of pmf(v−1), pmf(v−2), ...
    pmf = _stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)
    worst = float(np.max(np.cumsum(pmf) / np.arange(1, v + 1)))
    return min(tail + 2.0 * m * delta * worst, 1.0)


def one_run_epsilon(m: int, r: int, v: int, *, delta: float, beta: float = 0.05) -> float:
    """Largest ε with ``p(ε, δ) < β`` (bisection to 1e-9 relative), or 0."""
    _check_counts(m, r, v)
    if not 0 < beta < 1:
        raise ValueError(f"Expected beta={beta} in (0, 1).")
    if one_run_p_value(m, r, v, 0.0, delta) >= beta:
        return 0.0
    lo, hi = 0.0, 1.0
    while one_run_p_value(m, r, v, hi, delta) < beta:
        lo, hi = hi, 2 * hi
        if hi > 1e3:
            return math.inf
    while hi - lo > 1e-9 * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        if one_run_p_value(m, r, v, mid, delta) < beta:
            lo = mid
        else:
            hi = mid
    return lo


class OneRunResult(NamedTuple):
    """A one-run audit.

    Attributes:
      epsilon_lower_bound: Largest ε with ``p < beta`` (best over ``k``).
      confidence: ``1 − beta`` (with the search over ``ks`` corrected by
        Bonferroni).
      delta: δ of the audited guarantee.
      m, r, v: Canaries, guesses and correct guesses of the best ``k``.
      k: Guesses per side (``k₊ = k₋ = k``) of the best bound.
      per_k: ``{k: (r, v, ε)}`` for every ``k`` tried.
    """

    epsilon_lower_bound: float
    confidence: float
    delta: float
    m: int
    r: int
    v: int
    k: int
    per_k: dict


def one_run_audit(scores, included, *, delta: float, beta: float = 0.05, ks=None) -> OneRunResult:
    """The bound from canary scores (higher = "in") and the inclusion bits.

    ``ks``: guesses per side tried (default ``m/20, m/10, m/4`` rounded); the
    bound of each ``k`` is computed at ``beta/len(ks)`` and the best is kept,
    so the whole search holds at ``1 − beta``.
    """
    s = np.asarray(scores, np.float64).reshape(-1)
    inc = np.asarray(included, bool).reshape(-1)
    if s.shape != inc.shape:
        raise ValueError(f"Shape mismatch: got {s.shape} and {inc.shape}.")
    m = s.size
    if ks is None:
        ks = sorted({max(1, m // 20), max(1, m // 10), max(1, m // 4)})
    ks = [int(k) for k in ks]
    if any(k < 1 or 2 * k > m for k in ks):
        raise ValueError(f"Expected every k in [1, m/2 = {m // 2}], got {ks}.")
    order = np.argsort(s, kind="stable")
    b = beta / len(ks)
    per_k = {}
    for k in ks:
        v = int(inc[order[-k:]].sum() + (~inc[order[:k]]).sum())
        per_k[k] = (2 * k, v, one_run_epsilon(m, 2 * k, v, delta=delta, beta=b))
    k_best = max(per_k, key=lambda k: per_k[k][2])
    r, v, eps = per_k[k_best]
    return OneRunResult(eps, 1 - beta, float(delta), m, r, v, k_best, per_k)


def one_run_unlearning_claim(epsilon: float, delta: float) -> tuple[float, float]:
    """The per-canary DP ``(2ε, (1 + e^ε)δ)`` implied by an (ε, δ) unlearning
    certificate (see the module docstring)."""
    return 2.0 * epsilon, (1.0 + math.exp(epsilon)) * delta


def one_run_unlearning_audit(
    key: PRNGKey,
    method: Method,
    data: Data,
    canaries,
    *,
    query: Query | None = None,
    delta: float,
    beta: float = 0.05,
    unlearn: bool = True,
    ks=None,
) -> OneRunResult:
    """One run against ``method``: include each canary row with probability ½,
    train once on the other rows plus the included canaries, delete the
    included canaries in one request (``unlearn=True``), and audit with the
    canaries' logit-scaled confidences under the released model.

    ``delta`` is the per-canary δ of the guarantee being audited
    (:func:`one_run_unlearning_claim` for an unlearning certificate).
    """
    data = as_data(data)
    query = linear_query() if query is None else query
    canaries = np.asarray(canaries)
    _validate.positive_int(num_canaries=int(canaries.size))
    k_in, k_train, k_unl = jax.random.split(key, 3)
    included = np.asarray(jax.random.bernoulli(k_in, 0.5, (canaries.size,)))
    mask = np.ones(data.num_rows, bool)
    mask[canaries[~included]] = False
    state, _ = method.train(k_train, data, jnp.asarray(mask))
    if unlearn and included.any():
        state, _, _ = method.unlearn(k_unl, state, jnp.asarray(canaries[included]), data)
    conf = confidence(query, state.params, data.x[canaries], data.y[canaries])
    return one_run_audit(np.asarray(conf), included, delta=delta, beta=beta, ks=ks)
