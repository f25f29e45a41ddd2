"""Attacks on machine unlearning, through the common method interface only.

Every attack sees a :class:`~dpunlearn.methods.Method`, the models it
releases before and after a deletion request (black box through a
:class:`~dpunlearn.attacks.query.Query`, or white box for reconstruction),
and public data; so every method of :mod:`dpunlearn.methods` is attacked the
same way, and a new method is attackable as soon as it is registered.

* :mod:`.query` — what the attacker observes (posteriors, logit-scaled
  confidence; label-only and top-k release defences).
* :mod:`.shadows` — many models at once (``vmap`` of ``train``/``unlearn``
  over keys, masks and requests).
* :mod:`.membership` — the classic attack and Chen et al.'s dual-model attack
  (CCS 2021), DegCount and DegRate.
* :mod:`.lira` — LiRA (Carlini et al., S&P 2022) and U-LiRA (Hayes et al.,
  SaTML 2025), online and offline, fixed or per-example variance.
* :mod:`.reconstruction` — Bertran et al. (NeurIPS 2024): the deleted record
  from ``H(θ − θ')``.
* :mod:`.roc` — ROC curves, AUC, TPR at fixed low FPR with exact intervals.
* :mod:`.classifier` — attack models (logistic regression, MLP) in JAX.

Audits (ε lower bounds, the one-run audit, the unlearning-challenge score)
are in :mod:`dpunlearn.audit`.
"""

from dpunlearn.attacks import (
    classifier,
    lira,
    membership,
    query,
    reconstruction,
    roc,
    shadows,
)
from dpunlearn.attacks.lira import lira_attack, ulira_attack
from dpunlearn.attacks.membership import dual_model_attack
from dpunlearn.attacks.query import (
    Query,
    confidence,
    linear_query,
    model_query,
    posteriors,
)
from dpunlearn.attacks.reconstruction import reconstruction_attack
from dpunlearn.attacks.roc import AttackResult, auc, roc_curve, tpr_at_fpr

__all__ = [
    "AttackResult",
    "Query",
    "auc",
    "classifier",
    "confidence",
    "dual_model_attack",
    "linear_query",
    "lira",
    "lira_attack",
    "membership",
    "model_query",
    "posteriors",
    "query",
    "reconstruction",
    "reconstruction_attack",
    "roc",
    "roc_curve",
    "shadows",
    "tpr_at_fpr",
    "ulira_attack",
]
