"""Exact unlearning (SISA, Bourtoule et al., IEEE S&P 2021): nothing to spend.

An exact method retrains whatever a deleted record touched, so the released
model is distributed exactly as a model trained without it: the (U)
certificate is ε = 0, δ = 0 after every request, with no budget to run out
of. The currency still counts what happened (rows removed, constituent models
retrained since the last full training) so that the ledger shows the cost.

A charge from an invalid request (a poisoned charge of a jitted ``unlearn``:
the model was left unchanged) is refused by :func:`exact_from_charge` rather
than recorded: nothing was removed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

from dpunlearn.accounting import _guards
from dpunlearn.accounting.currencies._common import CertificateReport

__all__ = [
    "ExactConfig",
    "ExactState",
    "exact_from_charge",
    "exact_init",
    "exact_report",
    "exact_reset",
    "exact_update",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExactConfig:
    """An exact-unlearning ledger has no constants (ε = δ = 0 always)."""


class ExactState(NamedTuple):
    """What the ledger counts since the last full training.

    Attributes:
      num_removed: Rows removed.
      shards_retrained: Constituent models retrained (summed over requests).
    """

    num_removed: int = 0
    shards_retrained: int = 0


def exact_init() -> ExactState:
    """State after a (re)training."""
    return ExactState()


def exact_update(
    state: ExactState, num_removed: int = 1, shards_retrained: int = 0
) -> ExactState:
    """Counts a request; the certificate stays ε = 0."""
    _guards.count("num_removed", num_removed, minimum=1)
    _guards.count("shards_retrained", shards_retrained, minimum=0)
    return ExactState(
        state.num_removed + int(num_removed),
        state.shards_retrained + int(shards_retrained),
    )


def exact_reset(state: ExactState) -> ExactState:
    """A full retrain starts the counts over."""
    del state
    return exact_init()


def exact_report(state: ExactState) -> CertificateReport:
    """(U): certified with ε = 0, δ = 0; ``used`` counts rows removed, the
    budget is unlimited."""
    return CertificateReport(
        "exact",
        True,
        0.0,
        0.0,
        float(state.num_removed),
        math.inf,
        math.inf,
        "deleted_points",
    )


def exact_from_charge(charge) -> dict:
    """Ledger fields of a method's charge (:class:`~dpunlearn.methods.sisa.SisaCharge`).

    Raises:
      ValueError: for the charge of an invalid request (``charge.valid`` false):
        the model was not changed and nothing may be recorded.
    """
    valid = getattr(charge, "valid", True)
    if not bool(valid):
        raise ValueError(
            "Refusing to record the charge of an invalid request: the model was left "
            "unchanged (check the request against the mask)."
        )
    fields = {"removed": int(charge.num_removed)}
    shards = getattr(charge, "num_shards_retrained", None)
    if shards is not None:
        fields["shards_retrained"] = int(shards)
    return fields


def _register():
    from dpunlearn.accounting.currencies.registry import (
        Currency,
        check_keys,
        register,
        removed_count,
    )

    def config(params, eps, delta):
        del eps, delta
        check_keys("params", params, set())
        return ExactConfig()

    def request(cfg, state, entry):
        del cfg
        return exact_update(
            state, removed_count(entry), entry.get("shards_retrained", 0)
        )

    register(
        Currency(
            name="exact",
            config=config,
            request_keys=frozenset({"removed", "shards_retrained"}),
            train_keys=frozenset(),
            initial=lambda cfg: exact_init(),
            train=lambda cfg, entry: exact_init(),
            request=request,
            retrain=lambda cfg, state, entry: exact_reset(state),
            report=lambda cfg, state, eps, delta: exact_report(state),
            budget=lambda cfg: {},
            from_charge=exact_from_charge,
        )
    )


_register()
