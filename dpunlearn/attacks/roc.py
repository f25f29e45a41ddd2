"""ROC curves, AUC and TPR at a fixed low FPR, with exact binomial intervals.

Convention: a higher score means "member" (positive). Host-side NumPy,
float64. The intervals are Clopper–Pearson (:mod:`dpunlearn.stats`) on the
counts at the chosen threshold: they describe the rates *of that threshold*;
choosing the threshold on the same data (as every ROC does) is not
corrected for.

Carlini et al. (S&P 2022, "Membership Inference Attacks From First
Principles") argue for TPR at low FPR on log-log ROC axes instead of AUC or
accuracy; both are reported here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dpunlearn import stats

__all__ = [
    "AttackResult",
    "RatePoint",
    "RocCurve",
    "auc",
    "balanced_accuracy",
    "evaluate",
    "roc_curve",
    "tpr_at_fpr",
]


def _scores(name: str, s) -> np.ndarray:
    arr = np.asarray(s, np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"Expected {name} to hold at least one score.")
    if np.isnan(arr).any():
        raise ValueError(f"Expected {name} without NaN.")
    return arr


class RocCurve(NamedTuple):
    """``fpr``/``tpr`` at every distinct threshold (``score >= threshold``),
    from ``(0, 0)`` to ``(1, 1)``, and the area under it."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float


def _counts(pos: np.ndarray, neg: np.ndarray):
    """Thresholds (descending distinct scores) and cumulative TP/FP counts."""
    allv = np.concatenate([pos, neg])
    thr = np.unique(allv)[::-1]
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    tp = pos.size - np.searchsorted(pos_sorted, thr, side="left")
    fp = neg.size - np.searchsorted(neg_sorted, thr, side="left")
    return thr, tp, fp


def roc_curve(scores_pos, scores_neg) -> RocCurve:
    """The empirical ROC curve of "member iff score >= t" over all ``t``."""
    pos, neg = _scores("scores_pos", scores_pos), _scores("scores_neg", scores_neg)
    thr, tp, fp = _counts(pos, neg)
    fpr = np.concatenate([[0.0], fp / neg.size])
    tpr = np.concatenate([[0.0], tp / pos.size])
    thr = np.concatenate([[np.inf], thr])
    return RocCurve(fpr, tpr, thr, auc(pos, neg))


def auc(scores_pos, scores_neg) -> float:
    """``P(S₊ > S₋) + P(S₊ = S₋)/2`` (Mann–Whitney; equals the ROC area)."""
    pos, neg = _scores("scores_pos", scores_pos), _scores("scores_neg", scores_neg)
    neg_sorted = np.sort(neg)
    below = np.searchsorted(neg_sorted, pos, side="left")
    equal = np.searchsorted(neg_sorted, pos, side="right") - below
    return float((below.sum() + 0.5 * equal.sum()) / (pos.size * neg.size))


class RatePoint(NamedTuple):
    """The operating point of a ROC curve at a target FPR.

    Attributes:
      target_fpr: The FPR asked for.
      threshold: The smallest threshold whose empirical FPR is at most the
        target (``inf``: no positive prediction at all).
      tpr, fpr: Empirical rates at ``threshold``.
      tpr_interval, fpr_interval: Two-sided Clopper–Pearson intervals at
        ``1 − alpha`` (``alpha/2`` per side).
      tp, fp, num_pos, num_neg: The counts.
      alpha: The intervals' failure probability.
    """

    target_fpr: float
    threshold: float
    tpr: float
    fpr: float
    tpr_interval: tuple[float, float]
    fpr_interval: tuple[float, float]
    tp: int
    fp: int
    num_pos: int
    num_neg: int
    alpha: float


def tpr_at_fpr(scores_pos, scores_neg, target_fpr: float, *, alpha: float = 0.05) -> RatePoint:
    """TPR at the largest empirical FPR not above ``target_fpr``.

    With ``num_neg`` non-members an FPR below ``1/num_neg`` means no false
    positive at all; the interval on the FPR says how little that proves.
    """
    if not (0.0 <= target_fpr <= 1.0):
        raise ValueError(f"Expected target_fpr={target_fpr} in [0, 1].")
    pos, neg = _scores("scores_pos", scores_pos), _scores("scores_neg", scores_neg)
    thr, tp, fp = _counts(pos, neg)
    ok = fp <= target_fpr * neg.size * (1 + 1e-12)
    if ok.any():
        i = int(np.nonzero(ok)[0][-1])  # thresholds descend: the last one allowed
        t, tpi, fpi = float(thr[i]), int(tp[i]), int(fp[i])
    else:
        t, tpi, fpi = float("inf"), 0, 0
    return RatePoint(
        target_fpr=float(target_fpr),
        threshold=t,
        tpr=tpi / pos.size,
        fpr=fpi / neg.size,
        tpr_interval=stats.clopper_pearson_interval(tpi, pos.size, alpha),
        fpr_interval=stats.clopper_pearson_interval(fpi, neg.size, alpha),
        tp=tpi,
        fp=fpi,
        num_pos=int(pos.size),
        num_neg=int(neg.size),
        alpha=float(alpha),
    )


def balanced_accuracy(scores_pos, scores_neg) -> float:
    """``max_t 1 − (FPR + FNR)/2`` over thresholds (LiRA's "accuracy")."""
    pos, neg = _scores("scores_pos", scores_pos), _scores("scores_neg", scores_neg)
    _, tp, fp = _counts(pos, neg)
    acc = 1 - (fp / neg.size + (1 - tp / pos.size)) / 2
    return float(max(acc.max(), 0.5))


class AttackResult(NamedTuple):
    """Scores of an attack on members (positives) and non-members, evaluated.

    Attributes:
      name: The attack (``"lira_online"``, ``"dual_sorted_diff"``, ...).
      auc: Area under the ROC curve.
      roc: The full curve.
      tpr_at: ``{target_fpr: RatePoint}``.
      balanced_accuracy: ``max_t 1 − (FPR + FNR)/2``.
      scores_pos, scores_neg: The raw scores (higher = member).
    """

    name: str
    auc: float
    roc: RocCurve
    tpr_at: dict
    balanced_accuracy: float
    scores_pos: np.ndarray
    scores_neg: np.ndarray


def evaluate(
    name: str,
    scores_pos,
    scores_neg,
    *,
    fprs: tuple[float, ...] = (1e-3, 1e-2),
    alpha: float = 0.05,
) -> AttackResult:
    """ROC, AUC, balanced accuracy and TPR at each FPR of ``fprs``."""
    pos = _scores("scores_pos", scores_pos)
    neg = _scores("scores_neg", scores_neg)
    return AttackResult(
        name=name,
        auc=auc(pos, neg),
        roc=roc_curve(pos, neg),
        tpr_at={f: tpr_at_fpr(pos, neg, f, alpha=alpha) for f in fprs},
        balanced_accuracy=balanced_accuracy(pos, neg),
        scores_pos=pos,
        scores_neg=neg,
    )
