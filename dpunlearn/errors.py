"""Package-wide error types of dpunlearn.

They live in their own module, with no dependency beyond the standard
library, so that importing them (``from dpunlearn.errors import
BudgetExceededError``) never pulls in platform-specific code such as file
locking. :mod:`dpunlearn.accounting.ledger` re-exports them under their old
names.

Hierarchy (every one is a ``ValueError``)::

    LedgerError
    ├── LedgerCorruptError        a complete line is not a valid entry
    │   ├── TornTailError         the file ends in an interrupted append
    │   └── LedgerTamperedError   the hash chain / MAC / pinned head disagrees
    └── BudgetExceededError       a release would exceed a configured budget
"""

from __future__ import annotations

__all__ = [
    "RetrainRequired",
    "LedgerError",
    "LedgerCorruptError",
    "TornTailError",
    "LedgerTamperedError",
    "BudgetExceededError",
]


class LedgerError(ValueError):
    """Base class of ledger errors (a ``ValueError``)."""


class LedgerCorruptError(LedgerError):
    """A complete line of the ledger is not a valid entry (not a crash artefact)."""


class TornTailError(LedgerCorruptError):
    """The file ends in an incomplete line (a write was interrupted).

    Attributes:
      offset: Byte offset at which the torn line starts.
      length: Number of torn bytes.
      num_complete: Number of complete lines before it (config included).
    """

    def __init__(self, message: str, *, offset: int, length: int, num_complete: int):
        super().__init__(message)
        self.offset = offset
        self.length = length
        self.num_complete = num_complete


class LedgerTamperedError(LedgerCorruptError):
    """The ledger's integrity check failed: a line was edited, inserted or
    deleted, a MAC does not verify, or the file no longer holds a pinned head.

    Attributes:
      line: 1-based line number of the first line that fails (the
        configuration is line 1), or ``None`` when the whole file is at fault
        (e.g. truncated below a pinned head).
      offset: Byte offset at which that line starts (or ``None``).
    """

    def __init__(self, message: str, *, line: int | None, offset: int | None):
        super().__init__(message)
        self.line = line
        self.offset = offset


class BudgetExceededError(LedgerError):
    """A release was refused because it would exceed a configured budget.

    Attributes:
      ledger: ``"U"`` (unlearning certificate) or ``"D"`` (DP of all releases).
      remaining: Budget left before the refused release, in ``unit``.
      restored_by_retrain: Budget a full retrain would restore (``None`` for
        the D ledger, which a retrain never restores).
      unit: Unit of ``remaining``.
    """

    def __init__(
        self,
        message: str,
        *,
        ledger: str,
        remaining: float,
        restored_by_retrain: float | None,
        unit: str,
    ):
        super().__init__(message)
        self.ledger = ledger
        self.remaining = remaining
        self.restored_by_retrain = restored_by_retrain
        self.unit = unit


class RetrainRequired(ValueError):
    """A method's certificate cannot cover one more request from this model.

    Raised by a method's ``unlearn`` when what it calibrated at training is
    spent (Sekhari et al.'s deletion capacity, the precomputed step schedule
    of Langevin or noisy-SGD unlearning): the request must be served by
    retraining on the remaining rows with a fresh key, which
    :func:`dpunlearn.serve.serve` does.
    """
