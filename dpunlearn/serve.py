"""Serving deletion requests: apply, record, and retrain when the ledger refuses.

:func:`serve` is the host-side loop a deployed model runs for every request,
for any method of :mod:`dpunlearn.methods`:

1. the method unlearns the request (``method.unlearn``);
2. the charge is recorded in the ledger (the currency's ``from_charge`` gives
   the entry's fields); the ledger recomputes the certificate and refuses a
   release past its budget, leaving the file unchanged;
3. on a refusal, or when the method says its own calibration is spent
   (:class:`dpunlearn.errors.RetrainRequired`: a deletion capacity, a step
   schedule), the model is retrained from scratch on the remaining rows with
   a fresh key (``method.train``), the retrain is recorded, and that model,
   which already excludes the request, is released.

Optionally a request monitor (:class:`dpunlearn.monitor.RequestMonitor`, or
any callable ``(request, state, data) -> Decision``) is consulted first: a
refused or deferred request is not applied and nothing is recorded; an
applied one carries the decision (``Decision.note()``) in the ledger entry's
``note``.

Keys: ``key`` is consumed (split into the unlearning and the retraining keys);
pass a new one per request, e.g. ``jax.random.fold_in(key, request_number)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn.accounting import currencies
from dpunlearn.accounting.ledger import BudgetExceededError, Ledger, LedgerSummary
from dpunlearn.errors import RetrainRequired
from dpunlearn.methods.base import Data, Method, check_request
from dpunlearn.types import PRNGKey

__all__ = ["ServeResult", "record_training", "serve"]


class ServeResult(NamedTuple):
    """What serving one request did.

    Attributes:
      state: The released model's state.
      charge: The charge recorded (of the retrain, if there was one).
      info: The method's info of the unlearning step (``None`` if refused
        before unlearning).
      retrained: Whether the ledger refused the update and the model was
        retrained.
      summary: The ledger summary after recording (``None`` without a ledger).
      refusal: The refusal's message, if any (the ledger's, or the monitor's
        when it did not let the request through).
      monitor: The monitor's decision (``None`` without a monitor).
    """

    state: Any
    charge: Any
    info: Any
    retrained: bool
    summary: LedgerSummary | None
    refusal: str | None
    monitor: Any = None


def _fields(ledger: Ledger, charge, kind: str) -> dict:
    currency = currencies.get(ledger.setup.currency)
    fields = currency.from_charge(jax.device_get(charge))
    allowed = currency.request_keys if kind == "request" else currency.train_keys
    return {k: v for k, v in fields.items() if k in allowed}


def record_training(
    ledger: Ledger, charge, *, dp=None, kind: str = "train", note: str | None = None
) -> LedgerSummary:
    """Records a (re)training's charge (``kind`` ``"train"`` or ``"retrain"``)."""
    fields = _fields(ledger, charge, kind)
    if kind == "train":
        return ledger.train(dp=dp, note=note, **fields)
    return ledger.retrain(dp=dp, note=note, **fields)


def serve(
    method: Method,
    state,
    request,
    data: Data,
    *,
    key: PRNGKey,
    ledger: Ledger | None = None,
    dp=None,
    monitor=None,
) -> ServeResult:
    """Serves one deletion request (see the module docstring).

    Args:
      method: The method that trained ``state``.
      state: The live model's state.
      request: Row indices to delete (1-D integers).
      data: The training data.
      key: Fresh randomness for this request (split here; never reused).
      ledger: Where to record; ``None`` applies the request without checks.
      dp: The (D) mechanisms this release declares (see the ledger).
      monitor: Optional request monitor, consulted before anything is applied
        (see the module docstring).

    Returns:
      A :class:`ServeResult`. The released model is ``result.state``.

    Raises:
      ValueError: an invalid request (nothing is recorded).
      BudgetExceededError: a refusal that even a retrain cannot resolve (the
        (D) budget, which retraining never restores).
    """
    request = check_request(request, state.mask)
    k_unlearn, k_retrain = jax.random.split(key)
    decision = None if monitor is None else monitor(request, state, data)
    if decision is not None and not decision.applied:
        return ServeResult(state, None, None, False, None, f"monitor: {decision.reason}", decision)
    note = None if decision is None else decision.note()

    def retrain(reason: str, info=None) -> ServeResult:
        mask = np.asarray(state.mask).copy()
        mask[np.asarray(request)] = False
        retrained, charge = method.train(k_retrain, data, jnp.asarray(mask))
        summary = (
            None
            if ledger is None
            else record_training(ledger, charge, dp=dp, kind="retrain", note=note)
        )
        return ServeResult(retrained, charge, info, True, summary, reason, decision)

    try:
        new, charge, info = method.unlearn(k_unlearn, state, request, data)
    except RetrainRequired as spent:  # the method's own calibration is spent
        return retrain(str(spent))
    if ledger is None:
        return ServeResult(new, charge, info, False, None, None, decision)
    try:
        summary = ledger.request(dp=dp, note=note, **_fields(ledger, charge, "request"))
        return ServeResult(new, charge, info, False, summary, None, decision)
    except BudgetExceededError as refusal:
        if refusal.ledger != "U":
            raise
        return retrain(str(refusal), info)
