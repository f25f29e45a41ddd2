"""Empirical audits of unlearning and DP guarantees.

* :mod:`.epsilon` — ε lower bounds from a distinguishing test with
  Clopper–Pearson intervals (Jagielski, Ullman, Oprea, NeurIPS 2020):
  :func:`epsilon_lower_bound` from scores of the two hypotheses.
* :mod:`.runner` — :func:`audit_unlearning` runs the test against any method
  of the common interface (unlearned vs retrained models);
  :func:`audit_models` takes the two stacks of models and the forget set.
* :mod:`.one_run` — the one-run audit (Steinke, Nasr, Jagielski, NeurIPS
  2023), with its δ term.
* :mod:`.challenge` — the NeurIPS 2023 unlearning-challenge score, exactly as
  its evaluation code computes it, always with its retrain-vs-retrain null.
* :mod:`.planted` — deliberately broken methods an audit must catch.

A correct method's audit exceeds its certificate with probability at most
``alpha`` (the bound's stated confidence); a bound above the claim is a
violation.
"""

from dpunlearn.audit import challenge, epsilon, one_run, planted, runner
from dpunlearn.audit.challenge import (
    ChallengeScore,
    challenge_audit,
    challenge_score,
    forget_quality,
)
from dpunlearn.audit.epsilon import (
    EpsilonBound,
    epsilon_from_rates,
    epsilon_lower_bound,
    epsilon_lower_bound_from_counts,
)
from dpunlearn.audit.one_run import (
    one_run_audit,
    one_run_epsilon,
    one_run_unlearning_audit,
)
from dpunlearn.audit.runner import AuditReport, audit_models, audit_unlearning

__all__ = [
    "AuditReport",
    "ChallengeScore",
    "EpsilonBound",
    "audit_models",
    "audit_unlearning",
    "challenge",
    "challenge_audit",
    "challenge_score",
    "epsilon",
    "epsilon_from_rates",
    "epsilon_lower_bound",
    "epsilon_lower_bound_from_counts",
    "forget_quality",
    "one_run",
    "one_run_audit",
    "one_run_epsilon",
    "one_run_unlearning_audit",
    "planted",
    "runner",
]
