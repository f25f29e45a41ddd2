"""The NeurIPS 2023 Machine Unlearning Challenge score, computed as specified.

Triantafillou, Kairouz, Pedregosa, Hayes, Kurmanji, Zhao, Dumoulin, Junior,
Mitliagkas, Wan, Sun Hosoya, Escalera, Guyon, Karolina Dziugaite, Trianafillou
et al. *Are we making progress in unlearning? Findings from the first NeurIPS
unlearning competition.* arXiv 2406.09073 (2024). The metric is the
organisers' evaluation code (google-deepmind/unlearning_evaluation,
``metric.py`` and ``main.py``), re-implemented here in NumPy (no GPU) with
the same constants and decision rules:

1. Inputs: for every forget example ``j``, the logit-scaled confidences of
   ``N`` unlearned models and of ``N`` models retrained without the forget
   set. The **positive** population of ``j`` is the one with the larger
   median (retrained if its median is strictly larger).
2. **Peaky guard**: if the smaller of the two ranges (max − min) is below
   1 % of the larger, ``ε_j = 50``.
3. Two families of decision rules, ``NUM_THRESHOLDS_PER_UNIT = 100``
   thresholds per unit of confidence: single thresholds (positive iff
   ``φ >= t``, ``t`` on ``linspace(min, max)`` of both populations) and
   double thresholds (the *peakier* population, the one with the smaller
   range, is predicted iff ``t_l <= φ <= t_r``; ``t_r`` spans the peakier
   population's ``[min + width − 2, max + 2]``, ``width`` its range, and for
   each ``t_r``, 400 values of ``t_l`` on ``[t_r − width − 2, t_r − width + 2]``).
4. Per threshold, with ``δ = 1e-5``: ``FPR = FNR = 0`` gives ``ε = ∞``; exactly
   one of them zero discards the threshold; otherwise
   ``ε_t = max(0, log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR)``
   (a NaN term, from ``1 − δ − rate < 0``, is ignored).
5. ``ε_j`` = the largest surviving ``ε_t``, clipped to ``[0, 50]``.
6. Points: ``max_ε = ⌈ln(N − 1)⌉``; buckets ``[0.5b, 0.5(b+1))`` whose upper
   edge is at most ``max_ε`` give ``2^{−b}`` points; ``ε_j`` beyond them 0.
7. **Forget quality** ``F`` = mean points; **final score**
   ``F × (RA_U / RA_R) × (TA_U / TA_R)`` with retain (RA) and test (TA)
   accuracies averaged over the ``N`` runs.

This is an estimate, not a bound (no confidence interval, a maximum over
hundreds of thresholds from ``N`` samples): two populations of retrained
models already score well below 1 at small ``N``. Every score here is
therefore reported next to its **null**, the same metric of ``N`` retrained
models against ``N`` other retrained models (:class:`ChallengeScore`).

Two situations the reference code does not define are made explicit: both
populations constant (a zero range; the reference divides 0 by 0) gives
``ε_j = 0`` if they are equal and 50 otherwise; and an example with every
threshold discarded (the reference's assertion fails) raises ``ValueError``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = [
    "DELTA",
    "EPSILON_CAP",
    "NUM_THRESHOLDS_PER_UNIT",
    "ChallengeScore",
    "challenge_audit",
    "challenge_score",
    "example_epsilons",
    "forget_quality",
    "points",
]

DELTA = 1e-5
EPSILON_CAP = 50
NUM_THRESHOLDS_PER_UNIT = 100
_BUFFER = 2.0


def _rates(tp: np.ndarray, fp: np.ndarray, num_pos: int, num_neg: int):
    """float32 rates from counts, as the reference computes them (a mean of
    float32 indicators): ``(tpr, fnr, fpr, tnr)``."""
    f = np.float32
    return (f(tp) / f(num_pos), f(num_pos - tp) / f(num_pos),
            f(fp) / f(num_neg), f(num_neg - fp) / f(num_neg))


def _rate_eps(tpr, fnr, fpr, tnr, delta):
    """Per-threshold ε (step 4), in float32 as the reference; NaN marks a
    discarded threshold."""
    tpr, fnr, fpr, tnr = (np.asarray(a, np.float32) for a in (tpr, fnr, fpr, tnr))
    both_zero = ((fpr + fnr) == 0) & ((tpr + tnr) == 2)
    one_zero = (fpr * fnr) == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(1 - delta - fpr) - np.log(fnr)
        b = np.log(1 - delta - fnr) - np.log(fpr)
    both_nan = np.isnan(a) & np.isnan(b)
    eps = np.clip(np.fmax(a, b), 0, None)
    eps = np.where(both_nan, np.nan, eps)
    eps = np.where(one_zero, np.nan, eps)
    return np.where(both_zero, np.inf, eps)


def _single(pos, neg, delta):
    allv = np.concatenate([pos, neg])
    lo, hi = allv.min(), allv.max()
    num = int(math.ceil((hi - lo) * NUM_THRESHOLDS_PER_UNIT))
    t = np.linspace(lo, hi, num)
    ps, ns = np.sort(pos), np.sort(neg)
    tp = pos.size - np.searchsorted(ps, t, side="left")  # pos >= t
    fp = neg.size - np.searchsorted(ns, t, side="left")
    return _rate_eps(*_rates(tp, fp, pos.size, neg.size), delta)


def _double(pos, neg, delta):
    pos_diff, neg_diff = np.ptp(pos), np.ptp(neg)
    smallest = min(pos_diff, neg_diff)
    if pos_diff >= neg_diff:  # "positive" = the peakier population
        pos, neg = neg, pos
    width = smallest
    lo = pos.min() + width - _BUFFER
    hi = pos.max() + _BUFFER
    right = np.linspace(lo, hi, int(math.ceil((hi - lo) * NUM_THRESHOLDS_PER_UNIT)))
    n_left = int(math.ceil(2 * _BUFFER * NUM_THRESHOLDS_PER_UNIT))
    left = np.concatenate(
        [np.linspace(r - width - _BUFFER, r - width + _BUFFER, num=n_left) for r in right]
    )
    right = np.repeat(right, n_left)
    ps, ns = np.sort(pos), np.sort(neg)

    def between(sorted_s):  # t_l <= c <= t_r
        c = np.searchsorted(sorted_s, right, side="right") - np.searchsorted(sorted_s, left, side="left")
        return np.maximum(c, 0)

    return _rate_eps(*_rates(between(ps), between(ns), pos.size, neg.size), delta)


def example_epsilons(unlearned, retrained, *, delta: float = DELTA) -> np.ndarray:
    """``ε_j`` of every forget example (steps 1–5).

    Args:
      unlearned, retrained: ``[N, F]`` logit-scaled confidences of the forget
        examples under ``N`` unlearned and ``N`` retrained models.
    """
    u = np.asarray(unlearned, np.float64)
    r = np.asarray(retrained, np.float64)
    if u.ndim != 2 or u.shape != r.shape:
        raise ValueError(f"Expected two [N, F] arrays of one shape, got {u.shape} and {r.shape}.")
    if u.shape[0] < 2:
        raise ValueError("Expected N >= 2 models per population.")
    if not (np.isfinite(u).all() and np.isfinite(r).all()):
        raise ValueError("Expected finite confidences.")
    retrain_pos = np.median(r, axis=0) > np.median(u, axis=0)
    out = np.empty(u.shape[1])
    for j in range(u.shape[1]):
        pos, neg = (r[:, j], u[:, j]) if retrain_pos[j] else (u[:, j], r[:, j])
        pd, nd = np.ptp(pos), np.ptp(neg)
        largest, smallest = max(pd, nd), min(pd, nd)
        if largest == 0:
            out[j] = 0.0 if pos[0] == neg[0] else EPSILON_CAP
            continue
        if smallest / largest < 0.01:
            out[j] = EPSILON_CAP
            continue
        eps = np.concatenate([_double(pos, neg, delta), _single(pos, neg, delta)])
        kept = eps[~np.isnan(eps)]
        if kept.size == 0:
            raise ValueError(f"Every threshold was discarded for forget example {j}.")
        out[j] = np.max(kept)
    return np.clip(out, 0, EPSILON_CAP).astype(np.float32).astype(np.float64)


def points(epsilons, num_models: int) -> np.ndarray:
    """Points of each ``ε_j`` (step 6) for ``N = num_models``."""
    max_eps = math.ceil(math.log(num_models - 1)) if num_models > 2 else 0
    e = np.asarray(epsilons, np.float64)
    pts = np.zeros_like(e)
    start, p, assigned = 0.0, 1.0, np.zeros(e.shape, bool)
    while start + 0.5 <= max_eps:
        hit = ~assigned & (e < start + 0.5)
        pts[hit], assigned = p, assigned | hit
        start, p = start + 0.5, p / 2
    return pts


def forget_quality(unlearned, retrained, *, delta: float = DELTA) -> float:
    """``F``: mean points over the forget examples (steps 1–7)."""
    eps = example_epsilons(unlearned, retrained, delta=delta)
    return float(np.mean(points(eps, np.shape(unlearned)[0])))


class ChallengeScore(NamedTuple):
    """The challenge score of one method, beside its retrain-vs-retrain null.

    Attributes:
      forget_quality: ``F`` of the method's unlearned models.
      final: ``F × (RA_U/RA_R) × (TA_U/TA_R)``.
      null_forget_quality: ``F`` of retrained vs other retrained models (what
        a perfect method scores at this ``N``).
      null_final: The null's final score.
      epsilons: ``ε_j`` per forget example (the method).
      null_epsilons: ``ε_j`` of the null.
      num_models: ``N``.
      retain_ratio, test_ratio: ``RA_U/RA_R`` and ``TA_U/TA_R``.
    """

    forget_quality: float
    final: float
    null_forget_quality: float
    null_final: float
    epsilons: np.ndarray
    null_epsilons: np.ndarray
    num_models: int
    retain_ratio: float
    test_ratio: float


def challenge_score(
    unlearned,
    retrained,
    retrained_null,
    *,
    retain_accuracy: tuple,
    test_accuracy: tuple,
    delta: float = DELTA,
) -> ChallengeScore:
    """The score of a method and its null.

    Args:
      unlearned: ``[N, F]`` confidences under the method's unlearned models.
      retrained: ``[N, F]`` under models retrained without the forget set.
      retrained_null: ``[N, F]`` under ``N`` *other* retrained models
        (independent of ``retrained``): the null population.
      retain_accuracy: ``(RA_U, RA_R, RA_null)`` mean retain accuracies of the
        unlearned, retrained and null models.
      test_accuracy: ``(TA_U, TA_R, TA_null)``.
    """
    n = np.shape(unlearned)[0]
    if np.shape(retrained_null) != np.shape(retrained):
        raise ValueError("Expected retrained_null of the same shape as retrained.")
    eps = example_epsilons(unlearned, retrained, delta=delta)
    null_eps = example_epsilons(retrained_null, retrained, delta=delta)
    f = float(np.mean(points(eps, n)))
    f0 = float(np.mean(points(null_eps, n)))
    ra_u, ra_r, ra_0 = (float(a) for a in retain_accuracy)
    ta_u, ta_r, ta_0 = (float(a) for a in test_accuracy)
    rr, tr = ra_u / ra_r, ta_u / ta_r
    return ChallengeScore(
        forget_quality=f,
        final=f * rr * tr,
        null_forget_quality=f0,
        null_final=f0 * (ra_0 / ra_r) * (ta_0 / ta_r),
        epsilons=eps,
        null_epsilons=null_eps,
        num_models=int(n),
        retain_ratio=rr,
        test_ratio=tr,
    )


def challenge_audit(
    key,
    method,
    data,
    forget,
    test,
    *,
    num_models: int,
    query=None,
    batch_size: int | None = None,
) -> ChallengeScore:
    """The challenge score of ``method`` (any method of the common interface).

    ``num_models`` models are trained on all rows and asked to forget
    ``forget`` (the unlearned population; the challenge unlearns one original
    model many times, here each run has its own original so that a method
    whose unlearning is deterministic is still scored on its whole
    distribution), ``num_models`` are trained on the retained rows (the
    reference), and ``num_models`` more on the retained rows (the null).

    Args:
      key: Randomness of every model.
      method: The method.
      data: Training data ``Data(x, y)``; ``forget`` are row indices.
      test: Held-out ``Data(x, y)`` for the test accuracy.
      num_models: ``N`` per population (the challenge used 512).
      query: Black-box access (default
        :func:`~dpunlearn.attacks.query.linear_query`).
      batch_size: Models per vmapped chunk.
    """
    import jax
    import jax.numpy as jnp

    from dpunlearn.attacks import shadows
    from dpunlearn.attacks.query import confidence, linear_query
    from dpunlearn.methods.base import as_data

    data, test = as_data(data), as_data(test)
    query = linear_query() if query is None else query
    forget = np.atleast_1d(np.asarray(forget))
    n = data.num_rows
    retain = np.ones(n, bool)
    retain[forget] = False
    N = int(num_models)
    k_orig, k_unl, k_ref, k_null = jax.random.split(key, 4)
    full = jnp.ones((N, n), bool)
    kept = jnp.broadcast_to(jnp.asarray(retain), (N, n))
    orig, _ = shadows.train_models(method, jax.random.split(k_orig, N), data, full, batch_size=batch_size)
    reqs = jnp.broadcast_to(jnp.asarray(forget, jnp.int32), (N, forget.size))
    unl, _, _ = shadows.unlearn_models(method, jax.random.split(k_unl, N), orig, reqs, data, batch_size=batch_size)
    ref, _ = shadows.train_models(method, jax.random.split(k_ref, N), data, kept, batch_size=batch_size)
    null, _ = shadows.train_models(method, jax.random.split(k_null, N), data, kept, batch_size=batch_size)
    fx, fy = data.x[forget], data.y[forget]
    rx, ry = data.x[retain], data.y[retain]

    @jax.jit
    def measure(params):
        conf = jax.vmap(lambda p: confidence(query, p, fx, fy))(params)
        acc = lambda x, y: jax.vmap(lambda p: jnp.mean(method.predict(p, x) == y))(params)
        return conf, acc(rx, ry), acc(test.x, test.y)

    cu, ra_u, ta_u = (np.asarray(a, np.float64) for a in measure(unl.params))
    cr, ra_r, ta_r = (np.asarray(a, np.float64) for a in measure(ref.params))
    c0, ra_0, ta_0 = (np.asarray(a, np.float64) for a in measure(null.params))
    return challenge_score(
        cu, cr, c0,
        retain_accuracy=(ra_u.mean(), ra_r.mean(), ra_0.mean()),
        test_accuracy=(ta_u.mean(), ta_r.mean(), ta_0.mean()),
    )
