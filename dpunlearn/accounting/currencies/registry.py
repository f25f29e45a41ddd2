"""The registry the ledger looks currencies up in (no branching on names).

A :class:`Currency` says how a ledger keeps one unlearning currency: how to
build its configuration from the ledger's ``params``, which keys its entries
carry, how a train, a request and a retrain change its state, what its (U)
report is, and how a method's charge (:mod:`dpunlearn.methods`) becomes the
fields of a ledger entry. Each currency module registers one at import time.

Adding a currency: write its module in this package (pure, host-side
functions and a frozen config dataclass), end it with ``register(Currency(...))``,
import it in ``__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from dpunlearn.accounting.currencies._common import CertificateReport

__all__ = ["Currency", "REGISTRY", "get", "register"]


class Currency(NamedTuple):
    """How the ledger keeps one currency.

    Attributes:
      name: The ledger's ``currency`` value.
      config: ``(params, target_epsilon, target_delta) -> config``; validates
        (raises ``ValueError`` naming a bad key or value).
      request_keys: Currency-specific keys a ``request`` entry may carry.
      train_keys: Currency-specific keys of ``train`` / ``retrain`` entries.
      initial: ``config -> state`` before any release.
      train: ``(config, entry) -> state`` after a ``train`` entry.
      request: ``(config, state, entry) -> state``.
      retrain: ``(config, state, entry) -> state``.
      report: ``(config, state, target_epsilon, target_delta) -> CertificateReport``.
      budget: ``config -> dict``: derived budgets recorded in the file.
      from_charge: ``charge -> dict``: entry fields from a method's charge.
      next_need: Optional ``(config, state, entry, eps, delta) -> str``: what a
        refused request would need (a hint for the refusal message).
      prepare: Optional ``params -> params`` applied when a ledger is created
        (never on replay): fills defaults explicitly into the file, so that a
        later change of a default cannot change how an old file replays.
    """

    name: str
    config: Callable[[Mapping[str, Any], float, float], Any]
    request_keys: frozenset
    train_keys: frozenset
    initial: Callable[[Any], Any]
    train: Callable[[Any, Mapping[str, Any]], Any]
    request: Callable[[Any, Any, Mapping[str, Any]], Any]
    retrain: Callable[[Any, Any, Mapping[str, Any]], Any]
    report: Callable[[Any, Any, float, float], CertificateReport]
    budget: Callable[[Any], dict]
    from_charge: Callable[[Any], dict]
    next_need: Callable[..., str] | None = None
    prepare: Callable[[dict], dict] | None = None


REGISTRY: dict[str, Currency] = {}


def register(currency: Currency) -> Currency:
    """Adds ``currency`` to :data:`REGISTRY` (a name is registered once)."""
    if currency.name in REGISTRY:
        raise ValueError(f"Currency {currency.name!r} is already registered.")
    REGISTRY[currency.name] = currency
    return currency


def get(name: str) -> Currency:
    """The registered currency ``name``; ``ValueError`` listing the known ones."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Expected currency in {tuple(REGISTRY)}, got {name!r}."
        ) from None


def check_keys(where: str, d: Mapping[str, Any], allowed: set | frozenset) -> None:
    """Raises ``ValueError`` naming unknown keys of ``d``."""
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ValueError(
            f"Unknown key(s) {unknown} in {where}; expected a subset of "
            f"{sorted(allowed)}."
        )


def removed_count(entry: Mapping[str, Any]) -> int:
    """The entry's ``removed`` (default 1), an integer >= 1."""
    from dpunlearn import _validate

    removed = entry.get("removed", 1)
    _validate.positive_int(removed=removed)
    return int(removed)
