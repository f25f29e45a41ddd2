"""Empirical lower bounds on ε from a distinguishing test, with exact intervals.

Jagielski, Ullman, Oprea. *Auditing Differentially Private Machine Learning:
How Private is Private SGD?* NeurIPS 2020. https://arxiv.org/abs/2006.07709

If two output distributions ``P₁`` (e.g. models unlearned by a method) and
``P₀`` (models retrained without the records) are (ε, δ)-indistinguishable,
every test with rejection region ``S`` ("positive" when the output is in
``S``) obeys ``P₁(S) <= e^ε P₀(S) + δ`` and ``P₀(Sᶜ) <= e^ε P₁(Sᶜ) + δ``, i.e.

    ε >= ε(FPR, FNR) = max( log((1 − δ − FNR)/FPR), log((1 − δ − FPR)/FNR) ),

and the same with the roles of ``P₀`` and ``P₁`` swapped (the guarantee is
symmetric; both orientations are searched). With ``N₁`` and ``N₀``
independent runs, ``FPR`` and ``FNR`` are replaced by their one-sided
Clopper–Pearson upper limits at ``α/2`` each (:mod:`dpunlearn.stats`):
the resulting ``lower`` is below the ``ε`` of the test, hence below the true
ε, with probability at least ``1 − α``. An audit of a correct method
therefore exceeds its certificate with probability at most ``α``.

**Choosing the test.** The region must not be chosen on the data it is
evaluated on. ``selection="split"`` (default) chooses it on the runs of even
index and evaluates it once on the odd ones; ``"bonferroni"`` uses all runs
and divides ``α`` by the number of candidate regions. Candidates: half-lines
``score >= t`` (``family="threshold"``) or also intervals ``t_l <= score <=
t_r`` (``family="interval"``), with edges at ``num_thresholds`` quantiles of the
selection scores, log-spaced into both tails.

**Intervals.** ``interval`` is a two-sided ``1 − α`` interval for the ε of the
chosen test (limits at ``α/4`` on each rate and side); ``estimate`` is the
plug-in value from the raw rates (not a bound).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dpunlearn import stats

__all__ = [
    "EpsilonBound",
    "epsilon_from_rates",
    "epsilon_lower_bound",
    "epsilon_lower_bound_from_counts",
]


def epsilon_from_rates(fpr, fnr, delta: float) -> np.ndarray:
    """``max(log((1−δ−FNR)/FPR), log((1−δ−FPR)/FNR), 0)`` elementwise.

    ``+inf`` where a numerator is positive and its denominator is zero.
    """
    fpr = np.asarray(fpr, np.float64)
    fnr = np.asarray(fnr, np.float64)

    def term(num, den):
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log(np.maximum(num, 0.0)) - np.log(den)
        out = np.where(num <= 0, -np.inf, out)
        return np.where((den <= 0) & (num > 0), np.inf, out)

    eps = np.maximum(term(1 - delta - fnr, fpr), term(1 - delta - fpr, fnr))
    return np.maximum(eps, 0.0)


class EpsilonBound(NamedTuple):
    """An empirical lower bound on ε and the test it comes from.

    Attributes:
      lower: ``ε`` lower bound, valid with probability ``>= confidence``.
      interval: Two-sided ``confidence`` interval for the ε of the chosen test.
      estimate: Plug-in ε of the chosen test's raw rates (not a bound).
      confidence: ``1 − α``.
      delta: The δ the bound is stated at.
      tpr, fpr: Raw rates of the chosen test on the evaluation runs (positive
        = the first population, ``scores_pos``, unless ``swapped``).
      tp, fp, num_pos, num_neg: Evaluation counts.
      region: ``(t_l, t_r)``: the test says "positive" iff ``t_l <= s <= t_r``.
      swapped: The chosen test calls the *second* population positive.
      selection: ``"split"``, ``"bonferroni"`` or ``"fixed"``.
      num_candidates: Regions searched.
    """

    lower: float
    interval: tuple[float, float]
    estimate: float
    confidence: float
    delta: float
    tpr: float
    fpr: float
    tp: int
    fp: int
    num_pos: int
    num_neg: int
    region: tuple[float, float]
    swapped: bool
    selection: str
    num_candidates: int


def _check(delta: float, alpha: float) -> None:
    if not (0.0 <= delta < 1.0):
        raise ValueError(f"Expected delta={delta} in [0, 1).")
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"Expected alpha={alpha} in (0, 1).")


def _bounds(tp, fp, num_pos, num_neg, delta, alpha):
    """(lower at α/2 per rate, interval at α/4 per rate and side, estimate)."""
    tp, fp = np.asarray(tp), np.asarray(fp)
    fn = num_pos - tp
    up = lambda k, n, a: stats.clopper_pearson_array(k, n, a, side="upper")
    lo = lambda k, n, a: stats.clopper_pearson_array(k, n, a, side="lower")
    lower = epsilon_from_rates(up(fp, num_neg, alpha / 2), up(fn, num_pos, alpha / 2), delta)
    i_lo = epsilon_from_rates(up(fp, num_neg, alpha / 4), up(fn, num_pos, alpha / 4), delta)
    i_hi = epsilon_from_rates(lo(fp, num_neg, alpha / 4), lo(fn, num_pos, alpha / 4), delta)
    est = epsilon_from_rates(fp / num_neg, fn / num_pos, delta)
    return lower, i_lo, i_hi, est


def epsilon_lower_bound_from_counts(
    tp: int, fp: int, num_pos: int, num_neg: int, *, delta: float, alpha: float = 0.05
) -> EpsilonBound:
    """The bound for one test fixed in advance: ``tp`` of ``num_pos`` positive
    runs and ``fp`` of ``num_neg`` negative runs were called positive."""
    _check(delta, alpha)
    for name, (k, n) in {"tp": (tp, num_pos), "fp": (fp, num_neg)}.items():
        if int(n) != n or n < 1 or int(k) != k or not 0 <= k <= n:
            raise ValueError(f"Expected 0 <= {name} <= its count >= 1, got {k}, {n}.")
    lower, i_lo, i_hi, est = _bounds(int(tp), int(fp), int(num_pos), int(num_neg), delta, alpha)
    return EpsilonBound(
        lower=float(lower), interval=(float(i_lo), float(i_hi)), estimate=float(est),
        confidence=1 - alpha, delta=float(delta), tpr=tp / num_pos, fpr=fp / num_neg,
        tp=int(tp), fp=int(fp), num_pos=int(num_pos), num_neg=int(num_neg),
        region=(math.nan, math.nan), swapped=False, selection="fixed", num_candidates=1,
    )


def _levels(num: int, size: int) -> np.ndarray:
    """Quantile levels: half log-spaced into each tail (down to ``1/size``),
    so tail regions (low FPR) are resolved as finely as the sample allows."""
    half = max(num // 2, 2)
    tail = np.geomspace(1.0 / max(size, 2), 0.5, half)
    return np.unique(np.concatenate([tail, 1.0 - tail]))


def _candidates(scores: np.ndarray, num_thresholds: int, family: str):
    """Regions ``[t_l, t_r]`` with edges between consecutive distinct scores at
    :func:`_levels` (plus ±inf ends)."""
    u = np.unique(scores)
    if u.size < 2:
        return np.zeros((0, 2))
    idx = np.unique(np.clip(np.round(_levels(num_thresholds, u.size) * (u.size - 1)).astype(int), 0, u.size - 2))
    # Midpoints between neighbouring distinct scores: no selection score sits
    # on an edge.
    edges = (u[idx] + u[idx + 1]) / 2
    if family == "threshold":
        # Half-lines [t, inf); (-inf, t] is the complement, which the swapped
        # orientation covers (ε(FPR, FNR) is symmetric).
        return np.stack([edges, np.full_like(edges, np.inf)], 1)
    cuts = np.concatenate([[-np.inf], edges, [np.inf]])
    i, j = np.triu_indices(cuts.size, k=1)
    regions = np.stack([cuts[i], cuts[j]], 1)
    return regions[~((regions[:, 0] == -np.inf) & (regions[:, 1] == np.inf))]


def _count(sorted_s: np.ndarray, regions: np.ndarray) -> np.ndarray:
    hi = np.searchsorted(sorted_s, regions[:, 1], side="right")
    lo = np.searchsorted(sorted_s, regions[:, 0], side="left")
    return hi - lo


def epsilon_lower_bound(
    scores_pos,
    scores_neg,
    *,
    delta: float,
    alpha: float = 0.05,
    family: str = "threshold",
    selection: str = "split",
    num_thresholds: int = 64,
) -> EpsilonBound:
    """A ``1 − alpha`` lower bound on ε from one score per independent run.

    Args:
      scores_pos: Scores of runs of the first hypothesis (e.g. unlearned models).
      scores_neg: Scores of runs of the second (e.g. retrained models).
      delta: The δ of the guarantee being audited.
      alpha: Failure probability of the bound.
      family: ``"threshold"`` (half-lines) or ``"interval"`` (also intervals).
      selection: ``"split"`` (choose on even-indexed runs, evaluate on odd) or
        ``"bonferroni"`` (all runs, ``α`` divided by the candidates).
      num_thresholds: Quantiles of the selection scores used as edges.

    Returns:
      An :class:`EpsilonBound`.
    """
    _check(delta, alpha)
    if family not in ("threshold", "interval"):
        raise ValueError(f'Expected family "threshold" or "interval", got {family!r}.')
    if selection not in ("split", "bonferroni"):
        raise ValueError(f'Expected selection "split" or "bonferroni", got {selection!r}.')
    pos = np.asarray(scores_pos, np.float64).reshape(-1)
    neg = np.asarray(scores_neg, np.float64).reshape(-1)
    if np.isnan(pos).any() or np.isnan(neg).any():
        raise ValueError("Expected scores without NaN.")
    need = 2 if selection == "split" else 1
    if pos.size < need or neg.size < need:
        raise ValueError(f"Expected at least {need} scores per population.")
    if selection == "split":
        sel_p, sel_n, ev_p, ev_n = pos[0::2], neg[0::2], pos[1::2], neg[1::2]
    else:
        sel_p, sel_n, ev_p, ev_n = pos, neg, pos, neg
    regions = _candidates(np.concatenate([sel_p, sel_n]), num_thresholds, family)
    if regions.shape[0] == 0:  # every selection score equal: no informative region
        regions = np.array([[-np.inf, np.inf]])
    num_candidates = 2 * regions.shape[0]  # both orientations
    sp, sn = np.sort(sel_p), np.sort(sel_n)
    tp, fp = _count(sp, regions), _count(sn, regions)
    a_sel = alpha if selection == "split" else alpha / num_candidates
    # Orientation A: positive = first population; B: the second.
    lower_a, _, _, est_a = _bounds(tp, fp, sel_p.size, sel_n.size, delta, a_sel)
    lower_b, _, _, est_b = _bounds(fp, tp, sel_n.size, sel_p.size, delta, a_sel)
    # Rank by the bound on the selection runs (robust to lucky tails), then the estimate.
    key_a = np.stack([lower_a, est_a], 1)
    key_b = np.stack([lower_b, est_b], 1)
    best_a = np.lexsort((key_a[:, 1], key_a[:, 0]))[-1]
    best_b = np.lexsort((key_b[:, 1], key_b[:, 0]))[-1]
    swapped = tuple(key_b[best_b]) > tuple(key_a[best_a])
    region = regions[best_b if swapped else best_a]
    ep, en = np.sort(ev_p), np.sort(ev_n)
    tp1 = int(_count(ep, region[None])[0])
    fp1 = int(_count(en, region[None])[0])
    if swapped:
        tp1, fp1, n_pos, n_neg = fp1, tp1, ev_n.size, ev_p.size
    else:
        n_pos, n_neg = ev_p.size, ev_n.size
    a_ev = alpha if selection == "split" else alpha / num_candidates
    lower, i_lo, i_hi, est = _bounds(tp1, fp1, n_pos, n_neg, delta, a_ev)
    return EpsilonBound(
        lower=float(lower), interval=(float(i_lo), float(i_hi)), estimate=float(est),
        confidence=1 - alpha, delta=float(delta), tpr=tp1 / n_pos, fpr=fp1 / n_neg,
        tp=tp1, fp=fp1, num_pos=int(n_pos), num_neg=int(n_neg),
        region=(float(region[0]), float(region[1])), swapped=bool(swapped),
        selection=selection, num_candidates=int(num_candidates),
    )
