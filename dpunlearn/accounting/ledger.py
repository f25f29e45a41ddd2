"""An append-only, crash-safe privacy ledger for a model's lifetime.

Every release of a model (the first training, each deletion request, each
retrain) is one JSON line in a file. The first line records the configuration
(currency, its constants, the target (ε, δ), and an optional DP budget), so a
ledger can be replayed from the file alone. At any point the ledger reports
two different things (``docs/accounting.md`` §1):

* **(U) the unlearning certificate** of the current model for the deleted
  records, in the currency of the unlearning method
  (:mod:`dpunlearn.accounting.currencies`). A full retrain resets it.
* **(D) the DP cost of all releases** for the records that remain (or for an
  observer of the whole transcript): every release's declared mechanisms are
  composed over *all* entries, retrains included. It never resets. A release
  that declares no mechanism (``"dp": null``) makes (D) infinite, and the
  report lists it. Two certified upper bounds are kept and the smaller one is
  reported (``LedgerSummary.dp_method`` says which):

  - ``"rdp"``: the RDP curves of all mechanisms are added order by order and
    converted with the improved conversion (any mix of mechanisms);
  - ``"exact-gaussian"``: when *every* declared mechanism is a
    (non-subsampled) Gaussian, k releases with noise multipliers σᵢ and
    counts cᵢ (sensitivity 1) are exactly one Gaussian with
    σ_eff = (Σ cᵢ/σᵢ²)^(−1/2) (Dong, Roth & Su 2019, GDP composition: the
    privacy-loss distributions add), whose tight ε is
    :func:`mechanisms.gaussian_epsilon` (Balle & Wang 2018). The ledger keeps
    the precision Σ cᵢ/σᵢ² (``dp_gaussian_precision``) for this.

File format (JSON Lines, UTF-8; one object per ``\\n``-terminated line, keys
sorted; ``prev`` and ``integrity``: see "Integrity" below)::

    {"kind": "config", "format": "dpunlearn-ledger", "version": 1,
     "currency": "langevin", "params": {...}, "target": {"epsilon": 1.0,
     "delta": 1e-4}, "budget": {"dp_epsilon": 8.0, "dp_delta": 1e-5},
     "integrity": {"chain": "sha256", "mac": null}, ...}
    {"kind": "train", "seq": 1, "dp": [{"mechanism": "gaussian",
     "noise_multiplier": 40.0, "count": 1000}], "time": ..., "prev": "9f2c..."}
    {"kind": "request", "seq": 2, "removed": 1, "steps": 1000, "dp": [...], ...}
    {"kind": "retrain", "seq": 3, "dp": [...], ...}

A ``certified_removal`` ledger records what :mod:`dpunlearn.certified`
certifies (the residual bound β of the current model, sum form):

* ``train`` and ``retrain`` may carry ``"residual_bound"`` (default 0): the
  trained model's own residual (``CertifiedState.training_residual``: the
  solver's leftover gradient plus rounding). It initialises β; a retrain
  resets β to it. A release whose training residual alone is over the budget
  is refused.
* a ``request`` carries ``"residual_bound"`` and may carry
  ``"residual_mode"``: ``"add"`` (default; Guo et al., Algorithm 2: β +=
  bound, with the step's ``RemovalInfo.bound_increment``) or ``"set"`` (β =
  bound, with ``RemovalInfo.cumulative_bound`` of a residual-correcting step,
  ``certified.remove(..., correct_residual=True)``, whose bound covers the
  whole current residual). Files written before these fields replay
  unchanged (β from 0, every bound added)::

    {"kind": "train", "seq": 1, "residual_bound": 5.8e-11, "dp": null}
    {"kind": "request", "seq": 2, "removed": 1, "residual_bound": 0.0012,
     "residual_mode": "add", "dp": null}

Crash safety: an entry is appended with a single ``os.write`` of the full
line to a descriptor opened with ``O_APPEND``, then ``os.fsync``; the file is
never rewritten. A crash can therefore only leave a *torn last line* (bytes
after the last ``\\n``). Readers recover every complete line before it and
report the torn tail with its byte offset (:class:`TornTail`); opening such a
ledger for appending raises :class:`TornTailError` until
:func:`repair_torn_tail` has moved the torn bytes to a side file. Appends hold
an exclusive ``flock`` (``flock(2)``, BSD advisory locking) and re-read the
file if another writer appended. Readers take no lock, except that a reader
which finds a torn last line checks that lock (shared ``flock``) and re-reads,
so an append still being written is never reported as torn. Where the
platform has no ``flock`` (no ``fcntl`` module) the ledger still imports and
replays (a torn tail is then re-read until it stops growing), but appending
raises ``OSError(ENOLCK)`` rather than risk two writers double-spending a
budget.

Integrity (Schneier & Kelsey 1999, "Secure audit logs to support computer
forensics"; Crosby & Wallach 2009, "Efficient data structures for
tamper-evident logging"). With ``Lᵢ`` the bytes of line i (newline excluded;
line 1 is the configuration) the chain values are ``h₁ = SHA-256(L₁)`` and
``hᵢ = SHA-256(hᵢ₋₁ ‖ Lᵢ)`` (FIPS 180-4; ``hᵢ₋₁`` as 32 raw bytes). Every
entry i ≥ 2 carries ``"prev": hex(hᵢ₋₁)``, and a new configuration declares
``"integrity": {"chain": "sha256", "mac": null}``. The *head* is the last
chain value; :attr:`Ledger.pin` / :attr:`LedgerIntegrity.pin` give
``"N:head"`` (N entries after the configuration).

* Detected by the chain alone (:class:`LedgerTamperedError`, naming the line
  and byte offset where the chain first fails): editing, inserting or deleting
  any line that is followed by a chained line, and an entry without a link in
  a chained ledger.
* Not detected by the chain alone: an edit of the *last* line, deleting last
  lines, and a forger who recomputes every link (a hash chain has no secret).
  A pin kept where the ledger's writers cannot change it, given back as
  ``expect_head`` (``--expect-head``), detects all three: the file must still
  hold ``h`` after entry N; honest appends since are fine.
* Optional keyed MAC (RFC 2104 HMAC-SHA256): a ledger created with
  ``key=`` (at least 32 bytes) declares ``"mac": "hmac-sha256"`` and every
  line, configuration included, carries ``"mac"`` = HMAC(key, the line's
  canonical encoding without ``mac``), which covers its link too. A
  reader given the key refuses any line without a valid MAC, so no line can
  be forged, edited or inserted without the key; deleting last lines still
  needs the pin. Without the key, MACs are reported ``"unverified"`` (their
  presence is still checked) and appending is refused.
* Ledgers written before the chain (no ``integrity``, no ``prev``) replay
  unchanged and are reported as chain ``"none"`` (edits not detected; the
  head and pin still cover every byte). The next append by this version
  starts the chain; its first link covers every earlier line.
* Stripping every link and the declaration (a downgrade to an unchained
  ledger) is detected by the pin or the key, not by the chain.

A request that would exceed a configured budget raises
:class:`BudgetExceededError` (a ``ValueError``) that says what is left and
what a retrain would restore; the file is untouched (all checks run before
the write).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import hmac
import json
import math
import os
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from dpunlearn import _validate
from dpunlearn.accounting import _locking, rdp
from dpunlearn.accounting import currencies as cur
from dpunlearn.accounting.currencies._common import _check_delta
from dpunlearn.accounting import events as ev
from dpunlearn.accounting import mechanisms as mech
from dpunlearn.errors import (  # re-exported: their historical import path
    BudgetExceededError,
    LedgerCorruptError,
    LedgerError,
    LedgerTamperedError,
    TornTailError,
)

__all__ = [
    "FORMAT",
    "VERSION",
    "CURRENCIES",
    "LedgerError",
    "LedgerCorruptError",
    "TornTailError",
    "LedgerTamperedError",
    "BudgetExceededError",
    "TornTail",
    "LedgerRead",
    "LedgerIntegrity",
    "LoadedLedger",
    "LedgerSetup",
    "LedgerSummary",
    "make_config",
    "parse_config",
    "initial_summary",
    "apply_entry",
    "check_entry",
    "entry_events",
    "dp_epsilon_pld",
    "replay",
    "read_ledger",
    "load_ledger",
    "replay_file",
    "repair_torn_tail",
    "MAX_LINE_BYTES",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "CHAIN",
    "MAC",
    "MIN_KEY_BYTES",
    "LOCK_TIMEOUT",
    "encode_entry",
    "summary_to_dict",
    "gaussian_release",
    "subsampled_gaussian_release",
    "laplace_release",
    "Ledger",
]

FORMAT = "dpunlearn-ledger"
VERSION = 1
#: Hash of the chain linking each line to all before it (FIPS 180-4).
CHAIN = "sha256"
#: Optional keyed MAC of every line (RFC 2104 HMAC with SHA-256).
MAC = "hmac-sha256"
#: Shortest MAC key accepted: RFC 2104 §3 discourages keys shorter than the
#: hash output (32 bytes for SHA-256).
MIN_KEY_BYTES = 32
#: Every registered currency (:data:`dpunlearn.accounting.currencies.REGISTRY`).
CURRENCIES = tuple(cur.REGISTRY)
_KINDS = ("train", "request", "retrain")
_COMMON_KEYS = {"kind", "seq", "time", "note", "dp", "prev", "mac"}
_MECHANISM_KEYS = {
    "gaussian": {"noise_multiplier"},
    "subsampled_gaussian": {"sampling_rate", "noise_multiplier"},
    "laplace": {"scale"},
}


# ---------------------------------------------------------------------------
# small records (the error types live in dpunlearn.errors)
# ---------------------------------------------------------------------------


class TornTail(NamedTuple):
    """An incomplete last line: where it starts and how long it is."""

    offset: int
    length: int
    preview: str


class LedgerIntegrity(NamedTuple):
    """What the integrity checks of :func:`read_ledger` established.

    Attributes:
      chain: ``"sha256"`` if entries carry the hash chain (or the
        configuration declares it), ``"none"`` for a ledger written before
        the chain existed (edits to it are not detected).
      unchained_entries: Entries written before the chain started (a legacy
        ledger appended to by this version); the first chained entry's link
        covers them, so edits to them are detected too.
      mac: ``"verified"`` (a key was given and every line's HMAC checked),
        ``"unverified"`` (lines carry MACs, no key was given) or ``"none"``.
      head: Hex SHA-256 chain value after the last complete line.
      num_entries: Complete entries after the configuration line.
    """

    chain: str
    unchained_entries: int
    mac: str
    head: str
    num_entries: int

    @property
    def pin(self) -> str:
        """``"<num_entries>:<head>"``: give it back as ``expect_head`` later
        to detect that lines were deleted from the end (or anything rewritten)."""
        return f"{self.num_entries}:{self.head}"


class LedgerRead(NamedTuple):
    """What :func:`read_ledger` recovered from a file."""

    entries: tuple[dict, ...]
    torn_tail: TornTail | None
    size: int  # bytes of complete lines (the offset the next append lands at)
    integrity: LedgerIntegrity | None = None


class LedgerSetup(NamedTuple):
    """The parsed configuration line."""

    currency: str
    config: Any  # the currency's config dataclass
    target_epsilon: float
    target_delta: float
    dp_epsilon: float | None
    dp_delta: float
    raw: dict


class LedgerSummary(NamedTuple):
    """Everything the ledger certifies after a prefix of its entries.

    Attributes:
      currency: The unlearning currency.
      num_entries: Entries after the config line.
      num_releases: Released models (train + requests + retrains).
      num_retrains: Retrains.
      num_requests: Deletion requests in total.
      requests_since_retrain: Requests since the last (re)train.
      total_removed: Points removed over the lifetime.
      state: The currency state (a NamedTuple from :mod:`currencies`).
      unlearning: (U) certificate of the current model.
      dp_epsilon: (D) ε of all releases at ``dp_delta``: the minimum of
        ``dp_epsilon_rdp`` and, when every declared mechanism is a
        (non-subsampled) Gaussian, the exact ε of the composed Gaussian
        (``gaussian_epsilon(dp_delta, sigma=dp_gaussian_precision**-0.5)``).
        Both are certified upper bounds on the privacy loss of the whole
        transcript (up to float64 rounding), so their minimum is one too; the
        (D) budget is checked against this value. 0 before any release;
        ``inf`` if a release is non-private.
      dp_delta: δ of the (D) report.
      dp_order: Rényi order at which ``dp_epsilon_rdp`` was attained (or None).
      dp_rdp: (D) RDP curve on :data:`rdp.DEFAULT_ORDERS` (tuple of floats).
      non_private_entries: ``seq`` of releases that declared no mechanism.
      dp_epsilon_rdp: (D) ε from ``dp_rdp`` (improved conversion).
      dp_method: Which bound ``dp_epsilon`` is: ``"exact-gaussian"``,
        ``"rdp"``, ``"non-private"`` (``inf``) or ``"none"`` (no mechanism
        declared yet, ε = 0).
      dp_gaussian_precision: Σ count/σ² over every declared Gaussian mechanism
        (the composed Gaussian has σ_eff = this ** −1/2); 0 if none.
      dp_non_gaussian_releases: Releases that declared at least one
        non-Gaussian mechanism (subsampled Gaussian, Laplace); when > 0 the
        exact-Gaussian bound does not apply and (D) is the RDP value.
    """

    currency: str
    num_entries: int
    num_releases: int
    num_retrains: int
    num_requests: int
    requests_since_retrain: int
    total_removed: int
    state: Any
    unlearning: cur.CertificateReport
    dp_epsilon: float
    dp_delta: float
    dp_order: float | None
    dp_rdp: tuple[float, ...]
    non_private_entries: tuple[int, ...]
    dp_epsilon_rdp: float
    dp_method: str
    dp_gaussian_precision: float
    dp_non_gaussian_releases: int


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _currency_config(
    currency: str, params: Mapping[str, Any], eps: float, delta: float
):
    return cur.get(currency).config(dict(params), eps, delta)


def _check_keys(where: str, d: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ValueError(
            f"Unknown key(s) {unknown} in {where}; expected a subset of "
            f"{sorted(allowed)}."
        )


def _u_budget(setup_currency: str, config) -> dict:
    return cur.get(setup_currency).budget(config)


def _plain(v: Any) -> Any:
    """JSON-ready copy: NumPy/JAX scalars become Python numbers, tuples lists."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (str, bool, int, float)) or v is None:
        return v
    if hasattr(v, "item") and np.ndim(v) == 0:
        return v.item()
    raise ValueError(
        f"Expected a JSON-serialisable value, got {type(v).__name__}: {v!r}."
    )


def make_config(
    *,
    currency: str,
    params: Mapping[str, Any],
    target_epsilon: float,
    target_delta: float,
    dp_epsilon: float | None = None,
    dp_delta: float | None = None,
    note: str | None = None,
) -> dict:
    """Builds (and validates) the configuration line of a new ledger.

    Args:
      currency: One of :data:`CURRENCIES`.
      params: Constants of the currency's config dataclass (for
        ``certified_removal``: ``sigma`` and ``method``; for ``dp_extractor``:
        ``extractor_epsilon``, ``extractor_delta`` and ``head`` = dict of a
        :class:`~currencies.CertifiedRemovalConfig`; see the dataclasses).
      target_epsilon, target_delta: The (U) target every release must certify
        (for ``certified_removal``/``sekhari``, the certified (ε, δ)).
      dp_epsilon: Optional (D) budget: refuse a release that would push the
        DP ε of all releases above it.
      dp_delta: δ of the (D) report (default: ``target_delta``).
      note: Free text kept in the file.

    Returns:
      The config dict (JSON-serialisable), with derived U budgets recorded
      under ``"budget"`` for the reader (replay recomputes them).
    """
    _check_delta(target_delta)
    if dp_delta is None:
        dp_delta = float(target_delta)
    _check_delta(dp_delta)
    if dp_epsilon is not None:
        _validate.positive(dp_epsilon=dp_epsilon)
    _validate.positive(target_epsilon=target_epsilon)
    params = _plain(dict(params))
    prepare = cur.get(currency).prepare
    if prepare is not None:
        params = prepare(params)
    config = _currency_config(
        currency, params, float(target_epsilon), float(target_delta)
    )
    raw = {
        "kind": "config",
        "format": FORMAT,
        "version": VERSION,
        "currency": currency,
        "params": json.loads(json.dumps(dict(params))),
        "target": {"epsilon": float(target_epsilon), "delta": float(target_delta)},
        "budget": {
            "dp_epsilon": None if dp_epsilon is None else float(dp_epsilon),
            "dp_delta": float(dp_delta),
            **_u_budget(currency, config),
        },
    }
    if note is not None:
        raw["note"] = str(note)
    return raw


def _integrity_spec(raw: Mapping[str, Any]) -> dict | None:
    """The configuration's ``integrity`` declaration (None: written before
    the hash chain). Unknown algorithms are refused, not skipped: a ledger
    whose checks cannot be run must not look verified."""
    spec = raw.get("integrity")
    if spec is None:
        return None
    if (
        not isinstance(spec, Mapping)
        or set(spec) != {"chain", "mac"}
        or spec["chain"] != CHAIN
        or spec["mac"] not in (None, MAC)
    ):
        raise LedgerCorruptError(
            f"Unsupported ledger integrity {spec!r}; expected "
            f"{{'chain': {CHAIN!r}, 'mac': None or {MAC!r}}}."
        )
    return dict(spec)


def _config_number(value: Any, name: str) -> float:
    """A number of the configuration line as a float (bools and strings refused)."""
    if isinstance(value, bool) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"Expected {name} to be a number, got {value!r}.")
    return float(value)


def parse_config(raw: Mapping[str, Any]) -> LedgerSetup:
    """Validates a configuration line and builds the currency config.

    Every value is checked as :func:`make_config` checks it (target ε > 0
    finite, δ's in (0, 1), DP budget > 0 finite or absent, the currency's
    constants), so a hand-edited file with, say, ``dp_epsilon`` −1 or NaN is
    refused with :class:`LedgerCorruptError` instead of replaying.
    """
    if not isinstance(raw, Mapping) or raw.get("kind") != "config":
        raise LedgerCorruptError(
            "Expected the first line to be the ledger configuration (kind='config')."
        )
    if raw.get("format") != FORMAT or raw.get("version") != VERSION:
        raise LedgerCorruptError(
            f"Expected format={FORMAT!r} version={VERSION}, got "
            f"{raw.get('format')!r} version={raw.get('version')!r}."
        )
    try:
        target = raw["target"]
        budget = raw.get("budget") or {}
        if not isinstance(target, Mapping) or not isinstance(budget, Mapping):
            raise ValueError("Expected 'target' and 'budget' to be JSON objects.")
        eps = _config_number(target["epsilon"], "target.epsilon")
        delta = _config_number(target["delta"], "target.delta")
        _validate.positive(target_epsilon=eps)
        _validate.open_interval(0.0, 1.0, target_delta=delta)
        config = _currency_config(raw["currency"], raw.get("params") or {}, eps, delta)
        dp_eps = budget.get("dp_epsilon")
        if dp_eps is not None:
            dp_eps = _config_number(dp_eps, "budget.dp_epsilon")
            _validate.positive(dp_epsilon=dp_eps)
        dp_delta = _config_number(budget.get("dp_delta", delta), "budget.dp_delta")
        _validate.open_interval(0.0, 1.0, dp_delta=dp_delta)
        _integrity_spec(raw)
    except LedgerCorruptError:
        raise
    except (KeyError, TypeError, ValueError, ArithmeticError) as e:
        raise LedgerCorruptError(f"Invalid ledger configuration: {e}") from None
    return LedgerSetup(raw["currency"], config, eps, delta, dp_eps, dp_delta, dict(raw))


# ---------------------------------------------------------------------------
# (D) mechanisms
# ---------------------------------------------------------------------------


def _release(mechanism: str, count: int, **params: float) -> dict:
    """A declared (D) mechanism: positive float ``params`` and ``count`` ≥ 1."""
    _validate.positive(**params)
    _validate.positive_int(count=count)
    return {
        "mechanism": mechanism,
        **{k: float(v) for k, v in params.items()},
        "count": int(count),
    }


def gaussian_release(noise_multiplier: float, count: int = 1) -> dict:
    """(D) mechanism: ``count`` Gaussian releases of sensitivity-1 queries with
    noise multiplier σ/Δ (Mironov 2017, Prop. 7)."""
    return _release("gaussian", count, noise_multiplier=noise_multiplier)


def subsampled_gaussian_release(
    sampling_rate: float, noise_multiplier: float, count: int = 1
) -> dict:
    """(D) mechanism: ``count`` Poisson-subsampled Gaussian steps (DP-SGD/noisy SGD)."""
    _validate.positive(sampling_rate=sampling_rate)
    if float(sampling_rate) > 1.0:
        raise ValueError(f"Expected sampling_rate={sampling_rate} in (0, 1].")
    return _release(
        "subsampled_gaussian",
        count,
        sampling_rate=sampling_rate,
        noise_multiplier=noise_multiplier,
    )


def laplace_release(scale: float, count: int = 1) -> dict:
    """(D) mechanism: ``count`` Laplace releases (sensitivity 1, scale b)."""
    return _release("laplace", count, scale=scale)


def _mechanism_event(mech: Mapping[str, Any], where: str) -> ev.Event:
    """The :mod:`events` event of one declared mechanism (validated)."""
    if not isinstance(mech, Mapping) or mech.get("mechanism") not in _MECHANISM_KEYS:
        raise ValueError(
            f"Expected {where} to be a mechanism with 'mechanism' in "
            f"{sorted(_MECHANISM_KEYS)}, got {mech!r}."
        )
    kind = mech["mechanism"]
    _check_keys(where, mech, _MECHANISM_KEYS[kind] | {"mechanism", "count"})
    missing = sorted(_MECHANISM_KEYS[kind] - set(mech))
    if missing:
        raise ValueError(f"Missing key(s) {missing} in {where}.")
    count = mech.get("count", 1)
    _validate.positive_int(count=count)
    try:
        if kind == "gaussian":
            return ev.GaussianEvent(
                sigma=float(mech["noise_multiplier"]), count=int(count)
            )
        if kind == "subsampled_gaussian":
            return ev.SubsampledGaussianEvent(
                q=float(mech["sampling_rate"]),
                sigma=float(mech["noise_multiplier"]),
                count=int(count),
            )
        return ev.LaplaceEvent(scale=float(mech["scale"]), count=int(count))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None


def entry_events(entry: Mapping[str, Any], where: str = "entry") -> list | None:
    """Events declared by one release (None if it declares no mechanism)."""
    dp = entry.get("dp")
    if dp is None:
        return None
    if not isinstance(dp, Sequence) or isinstance(dp, (str, bytes)) or not dp:
        raise ValueError(
            f"Expected {where}.dp to be null or a non-empty list of mechanisms, "
            f"got {dp!r}."
        )
    return [_mechanism_event(m, f"{where}.dp[{i}]") for i, m in enumerate(dp)]


def dp_epsilon_pld(entries: Sequence[Mapping[str, Any]], delta: float) -> float:
    """(D) ε of all releases in ``entries`` via dp_accounting's PLD (reporting).

    ``entries`` may start with the config line. ``inf`` if a release declares
    no mechanism; 0 if there is no mechanism at all.
    """
    events = []
    for i, e in enumerate(entries):
        if e.get("kind") == "config":
            continue
        got = entry_events(e, f"entry {e.get('seq', i)}")
        if got is None:
            return math.inf
        events.extend(got)
    if not events:
        return 0.0
    return ev.epsilon_pld(events, delta)


_ORDERS = rdp.DEFAULT_ORDERS


class _EntryDP(NamedTuple):
    """DP contribution of one release."""

    curve: np.ndarray  # RDP curve on DEFAULT_ORDERS
    precision: float  # Σ count/σ² of its Gaussian mechanisms
    non_gaussian: bool  # declares a mechanism other than a plain Gaussian


def _entry_dp(entry: Mapping[str, Any], where: str) -> _EntryDP | None:
    """RDP curve and Gaussian precision of one release (None if non-private).

    Gaussian mechanisms (sensitivity 1) contribute ``α · Σ count/(2σ²)`` to the
    curve and ``Σ count/σ²`` to the precision; the others go through
    :func:`events.rdp_curve`.
    """
    events = entry_events(entry, where)
    if events is None:
        return None
    precision = 0.0
    others = []
    for e in events:
        if isinstance(e, ev.GaussianEvent):
            precision += e.count / (e.sigma * e.sigma)  # sensitivity 1
        else:
            others.append(e)
    curve = (0.5 * precision) * _ORDERS
    if others:
        curve = curve + ev.rdp_curve(others, _ORDERS)
    return _EntryDP(curve, precision, bool(others))


def _exact_gaussian_epsilon(precision: float, delta: float) -> float | None:
    """ε at ``delta`` of the Gaussian with σ_eff = precision^(−1/2) (None if
    it cannot be evaluated, e.g. σ_eff underflows)."""
    if not (precision > 0.0 and math.isfinite(precision)):
        return None
    sigma_eff = 1.0 / math.sqrt(precision)
    if not (sigma_eff > 0.0 and math.isfinite(sigma_eff)):
        return None
    try:
        return mech.gaussian_epsilon(delta, sigma=sigma_eff)
    except ValueError:
        return None


def _dp_report(
    delta: float,
    total: np.ndarray,
    precision: float,
    non_gaussian: int,
    non_private: tuple[int, ...],
) -> tuple[float, float | None, float, str]:
    """(dp_epsilon, dp_order, dp_epsilon_rdp, dp_method) of the (D) ledger.

    Both candidates are certified upper bounds (RDP conversion; exact
    composed Gaussian when every mechanism is a plain Gaussian); the smaller
    is reported.
    """
    if non_private:
        return math.inf, None, math.inf, "non-private"
    positive = bool(np.any(total > 0))
    if not positive and precision == 0.0 and not non_gaussian:
        return 0.0, None, 0.0, "none"
    if positive:
        e, a = rdp.rdp_to_dp(_ORDERS, total, delta, method="improved")
        eps_rdp, order = float(e), float(a)
    else:  # curve underflowed to 0
        eps_rdp, order = 0.0, None
    eps, method = eps_rdp, "rdp"
    if not non_gaussian:
        exact = _exact_gaussian_epsilon(precision, delta)
        if exact is not None and exact <= eps_rdp:
            eps, method = exact, "exact-gaussian"
    return eps, order, eps_rdp, method


# ---------------------------------------------------------------------------
# the fold
# ---------------------------------------------------------------------------


def _init_state(setup: LedgerSetup):
    return cur.get(setup.currency).initial(setup.config)


def _train_state(setup: LedgerSetup, entry: Mapping[str, Any]):
    """Currency state of a freshly trained model (a ``train`` entry)."""
    return cur.get(setup.currency).train(setup.config, entry)


def _report(setup: LedgerSetup, state) -> cur.CertificateReport:
    return cur.get(setup.currency).report(
        setup.config, state, setup.target_epsilon, setup.target_delta
    )


def _request(setup: LedgerSetup, state, entry: Mapping[str, Any]):
    return cur.get(setup.currency).request(setup.config, state, entry)


def _retrain(setup: LedgerSetup, state, entry: Mapping[str, Any]):
    return cur.get(setup.currency).retrain(setup.config, state, entry)


def initial_summary(setup: LedgerSetup) -> LedgerSummary:
    """Summary of a ledger with only its configuration line (no release yet)."""
    return _Fold.initial(setup).summary(setup)


def _validate_entry(setup: LedgerSetup, entry: Any, seq: int, num_releases: int):
    where = f"entry {seq}"
    if not isinstance(entry, Mapping):
        raise ValueError(
            f"Expected {where} to be a JSON object, got {type(entry).__name__}."
        )
    kind = entry.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"Expected {where}.kind in {_KINDS}, got {kind!r}.")
    allowed = set(_COMMON_KEYS)
    currency = cur.get(setup.currency)
    allowed |= currency.request_keys if kind == "request" else currency.train_keys
    _check_keys(where, entry, allowed)
    if entry.get("seq", seq) != seq:
        raise LedgerCorruptError(
            f"Expected {where}.seq={seq}, got {entry.get('seq')!r} (entries out of "
            "order "
            "or missing)."
        )
    if kind == "train" and num_releases:
        raise ValueError(f"{where}: 'train' after the first release; use 'retrain'.")
    if kind != "train" and not num_releases:
        raise ValueError(f"{where}: {kind!r} before any 'train' entry.")


class _Fold:
    """Running totals of the fold, without the derived reports.

    :meth:`step` costs a few microseconds of array work per release (one
    addition of the RDP curve); the (ε, δ) conversions and the unlearning
    report are computed once, by :meth:`summary`. :func:`apply_entry` (the
    live path) and :func:`replay` share :meth:`step` and :meth:`summary`, and
    a summary round-trips through :meth:`from_summary` exactly (float64 in a
    tuple), so replay equals the live summary bit for bit.
    """

    __slots__ = (
        "non_gaussian",
        "non_private",
        "num_entries",
        "num_releases",
        "num_requests",
        "num_retrains",
        "precision",
        "rdp",
        "requests_since_retrain",
        "state",
        "total_removed",
    )

    @classmethod
    def initial(cls, setup: LedgerSetup) -> _Fold:
        f = cls()
        f.num_entries = f.num_releases = f.num_retrains = f.num_requests = 0
        f.requests_since_retrain = f.total_removed = 0
        f.state = _init_state(setup)
        f.rdp = np.zeros(_ORDERS.size)
        f.precision = 0.0
        f.non_gaussian = 0
        f.non_private = ()
        return f

    @classmethod
    def from_summary(cls, s: LedgerSummary) -> _Fold:
        f = cls()
        f.num_entries, f.num_releases = s.num_entries, s.num_releases
        f.num_retrains, f.num_requests = s.num_retrains, s.num_requests
        f.requests_since_retrain = s.requests_since_retrain
        f.total_removed = s.total_removed
        f.state = s.state
        f.rdp = np.array(s.dp_rdp, dtype=np.float64)
        f.precision = float(s.dp_gaussian_precision)
        f.non_gaussian = int(s.dp_non_gaussian_releases)
        f.non_private = tuple(s.non_private_entries)
        return f

    def step(self, setup: LedgerSetup, entry: Mapping[str, Any]) -> None:
        """Folds one entry in; raises ``ValueError`` (and changes nothing) if
        it is malformed."""
        seq = self.num_entries + 1
        _validate_entry(setup, entry, seq, self.num_releases)
        kind = entry["kind"]
        removed = 0
        if kind == "request":
            state = _request(setup, self.state, entry)
            removed = int(entry.get("removed", 1))
        elif kind == "retrain":  # the model is trained from scratch
            state = _retrain(setup, self.state, entry)
        else:
            state = _train_state(setup, entry)
        dp = _entry_dp(entry, f"entry {seq}")
        # all checks passed: commit
        if dp is None:
            self.non_private = self.non_private + (seq,)
        else:
            self.rdp = self.rdp + dp.curve
            self.precision = self.precision + dp.precision
            self.non_gaussian += dp.non_gaussian
        self.state = state
        self.num_entries = seq
        self.num_releases += 1
        self.num_retrains += kind == "retrain"
        self.num_requests += kind == "request"
        self.requests_since_retrain = (
            self.requests_since_retrain + 1 if kind == "request" else 0
        )
        self.total_removed += removed

    def summary(self, setup: LedgerSetup) -> LedgerSummary:
        dp_eps, dp_order, eps_rdp, method = _dp_report(
            setup.dp_delta,
            self.rdp,
            self.precision,
            self.non_gaussian,
            self.non_private,
        )
        return LedgerSummary(
            currency=setup.currency,
            num_entries=self.num_entries,
            num_releases=self.num_releases,
            num_retrains=self.num_retrains,
            num_requests=self.num_requests,
            requests_since_retrain=self.requests_since_retrain,
            total_removed=self.total_removed,
            state=self.state,
            unlearning=_report(setup, self.state),
            dp_epsilon=dp_eps,
            dp_delta=setup.dp_delta,
            dp_order=dp_order,
            dp_rdp=tuple(self.rdp.tolist()),
            non_private_entries=self.non_private,
            dp_epsilon_rdp=eps_rdp,
            dp_method=method,
            dp_gaussian_precision=self.precision,
            dp_non_gaussian_releases=self.non_gaussian,
        )


def apply_entry(
    setup: LedgerSetup, summary: LedgerSummary, entry: Mapping[str, Any]
) -> LedgerSummary:
    """Pure fold step: the summary after one more release.

    Every field is recomputed, (D) included (one RDP conversion and, for an
    all-Gaussian ledger, one exact Gaussian ε), so the summary after each
    append is the certified one. Raises ``ValueError`` for a malformed entry.
    Budgets are *not* enforced here (replay must reproduce history as
    written); see :meth:`Ledger.append`.
    """
    fold = _Fold.from_summary(summary)
    fold.step(setup, entry)
    return fold.summary(setup)


def replay(entries: Iterable[Mapping[str, Any]]) -> LedgerSummary:
    """Pure replay: the summary certified by a sequence of entries.

    ``entries[0]`` must be the configuration line. Equal to the summary the
    live :class:`Ledger` returned after its last append (the same fold, with
    the conversions done once at the end instead of after every entry).

    Example:
      >>> cfg = make_config(currency="certified_removal",
      ...                   params={"rule": "paper", "sigma": 10.0, "method": "paper"},
      ...                   target_epsilon=1.0, target_delta=1e-4)
      >>> s = replay([cfg, {"kind": "train", "dp": [gaussian_release(4.0)]},
      ...             {"kind": "request", "residual_bound": 0.5, "dp": None}])
      >>> round(s.unlearning.remaining, 4), s.dp_epsilon
      (1.7803, inf)
    """
    it = iter(entries)
    try:
        first = next(it)
    except StopIteration:
        raise LedgerCorruptError("Empty ledger: no configuration line.") from None
    setup = parse_config(first)
    fold = _Fold.initial(setup)
    for entry in it:
        fold.step(setup, entry)
    return fold.summary(setup)


def _min_k_hint(setup: LedgerSetup, state, entry: Mapping[str, Any]) -> str:
    """For a refused request of a recursive currency: what it would need from
    ``state`` (steps, epochs), or that nothing would do; ``""`` otherwise."""
    need = cur.get(setup.currency).next_need
    if need is None:
        return ""
    try:
        return "; this request needs " + need(
            setup.config, state, entry, setup.target_epsilon, setup.target_delta
        )
    except ValueError:
        return "; nothing certifies it without a retrain"


def _refusal(
    setup: LedgerSetup,
    before: LedgerSummary,
    after: LedgerSummary,
    entry: Mapping[str, Any],
) -> BudgetExceededError | None:
    """The error to raise if ``after`` breaks a configured budget."""
    u_before, u_after = before.unlearning, after.unlearning
    if entry["kind"] == "request" and not u_after.certified:
        hint = _min_k_hint(setup, before.state, entry)
        # What a full retrain (fresh randomness) would give this request.
        retrained = _retrain(setup, before.state, {"kind": "retrain"})
        fresh = _report(setup, retrained)
        after_retrain = _report(setup, _request(setup, retrained, entry))
        if after_retrain.certified:
            restore = fresh.remaining
            what = f"a full retrain would restore {restore:.6g} {u_before.unit}"
            if setup.currency == "certified_removal":
                what += " less the new model's training residual"
        else:
            restore = None
            what = "even a full retrain would not certify this request"
        if u_after.used > u_after.budget:
            over = (
                f"it would bring the unlearning certificate to {u_after.used:.6g} "
                f"{u_after.unit} > budget {u_after.budget:.6g}"
            )
        elif u_after.delta > setup.target_delta:  # within the budget, not within δ
            over = (
                f"it would bring the unlearning certificate's delta to "
                f"{u_after.delta:.6g} > target {setup.target_delta:.6g} (at "
                f"{u_after.used:.6g} of {u_after.budget:.6g} {u_after.unit})"
            )
        else:
            over = (
                f"it would leave the unlearning certificate uncertified (at "
                f"{u_after.used:.6g} of {u_after.budget:.6g} {u_after.unit})"
            )
        msg = (
            f"Request refused ({setup.currency}): {over}; "
            f"{max(u_before.remaining, 0.0):.6g} {u_before.unit} "
            f"left; {what}{hint}. The ledger file is unchanged."
        )
        return BudgetExceededError(
            msg,
            ledger="U",
            remaining=u_before.remaining,
            restored_by_retrain=restore,
            unit=u_before.unit,
        )
    if entry["kind"] != "request" and not u_after.certified:
        # Only a certified_removal (re)training can start over budget: its
        # training residual alone exceeds it.
        msg = (
            f"{entry['kind'].capitalize()} refused ({setup.currency}): the new "
            f"model's training residual {u_after.used:.6g} {u_after.unit} is over "
            f"the budget {u_after.budget:.6g}; no request could be certified. Train "
            "to a smaller tolerance (or in float64). The ledger file is unchanged."
        )
        return BudgetExceededError(
            msg,
            ledger="U",
            remaining=u_after.remaining,
            restored_by_retrain=None,
            unit=u_after.unit,
        )
    if setup.dp_epsilon is not None and not after.dp_epsilon <= setup.dp_epsilon:
        left = setup.dp_epsilon - before.dp_epsilon
        msg = (
            f"Release refused: the DP cost of all releases for the remaining records "
            f"would be epsilon={after.dp_epsilon:.6g} ({after.dp_method}) > dp budget "
            f"{setup.dp_epsilon:.6g} "
            f"(delta={setup.dp_delta:g}); {max(left, 0.0):.6g} epsilon left; a retrain "
            "would not restore it (this ledger never resets). The ledger file is "
            "unchanged."
        )
        return BudgetExceededError(
            msg, ledger="D", remaining=left, restored_by_retrain=None, unit="epsilon"
        )
    return None


def check_entry(
    setup: LedgerSetup, summary: LedgerSummary, entry: Mapping[str, Any]
) -> LedgerSummary:
    """:func:`apply_entry` plus budget enforcement: raises BudgetExceededError."""
    after = apply_entry(setup, summary, entry)
    err = _refusal(setup, summary, after, entry)
    if err is not None:
        raise err
    return after


# ---------------------------------------------------------------------------
# the file
# ---------------------------------------------------------------------------


def encode_entry(entry: Mapping[str, Any]) -> bytes:
    """One ledger line: compact JSON, sorted keys, ASCII, newline-terminated.

    Non-finite floats are rejected (they are not JSON)."""
    try:
        text = json.dumps(
            entry,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
        )
    except ValueError as e:
        raise ValueError(
            f"Entry is not JSON-serialisable without NaN/inf: {e}"
        ) from None
    return text.encode("ascii") + b"\n"


#: Longest line (bytes, newline excluded) a reader accepts and a writer writes.
#: Entries are a few hundred bytes; the bound keeps a damaged or hostile file
#: (a multi-gigabyte "line") from exhausting memory.
MAX_LINE_BYTES = 4 * 1024 * 1024
#: Deepest JSON nesting accepted. Entries need 3 (``config.params.head``);
#: the bound keeps ``json`` from recursing on a hostile line.
MAX_DEPTH = 32
#: Longest integer literal accepted (an int64 has at most 19 digits).
MAX_INT_DIGITS = 20
#: Seconds a reader waits for a writer holding the lock with a line
#: half-written (then TimeoutError).
LOCK_TIMEOUT = 10.0
_READ_CHUNK = 1 << 20
# Where no lock can be taken: a torn tail that grows within _SETTLE_S is an
# append in progress (one write call), so the file is read again, for at most
# _SETTLE_MAX_S in all.
_SETTLE_S = 0.05
_SETTLE_MAX_S = 2.0


def _json_depth(line: bytes) -> int:
    """Deepest ``[``/``{`` nesting of a JSON text, brackets in strings ignored.

    Exact for valid JSON; for invalid JSON it can differ only after the first
    syntax error, where ``json`` stops anyway. Linear and vectorised (no
    regular expression: one would backtrack quadratically on a hostile line).
    """
    b = np.frombuffer(line, dtype=np.uint8)
    if not b.size:
        return 0
    pos = np.arange(b.size)
    backslash = b == ord("\\")
    # A character is escaped when an odd run of backslashes precedes it.
    last_plain = np.maximum.accumulate(np.where(backslash, -1, pos))
    run_before = np.concatenate(([0], pos[:-1] - last_plain[:-1]))
    quote = (b == ord('"')) & (run_before % 2 == 0)
    outside = np.cumsum(quote) % 2 == 0  # even number of quotes so far
    opens = ((b == ord("[")) | (b == ord("{"))) & outside
    closes = ((b == ord("]")) | (b == ord("}"))) & outside
    return int(np.cumsum(opens.astype(np.int64) - closes).max(initial=0))


def _parse_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise ValueError(
            f"integer literal with {digits} digits (at most {MAX_INT_DIGITS} accepted)"
        )
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]!r} overflows float64")
    return value


def _refuse_constant(text: str):
    raise ValueError(f"{text} is not JSON (non-finite numbers are refused)")


def _loads(line: bytes, where: str) -> dict:
    """Parses one complete line, bounded: length, nesting, integer size."""
    if len(line) > MAX_LINE_BYTES:
        raise LedgerCorruptError(
            f"{where} is {len(line)} bytes long (at most {MAX_LINE_BYTES})."
        )
    # Counting brackets is cheap; the exact scan runs only when it could matter.
    if line.count(b"[") + line.count(b"{") > MAX_DEPTH:
        depth = _json_depth(line)
        if depth > MAX_DEPTH:
            raise LedgerCorruptError(
                f"{where} nests JSON {depth} deep (at most {MAX_DEPTH})."
            )
    try:
        obj = json.loads(
            line.decode("utf-8"),
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except UnicodeDecodeError as e:
        raise LedgerCorruptError(f"{where} is not valid UTF-8: {e}.") from None
    except json.JSONDecodeError as e:
        raise LedgerCorruptError(f"{where} is not valid JSON: {e}.") from None
    except ValueError as e:  # from the hooks above
        raise LedgerCorruptError(f"{where}: {e}.") from None
    except RecursionError:  # not reachable after the depth check; never a traceback
        raise LedgerCorruptError(f"{where} nests JSON too deep.") from None
    if not isinstance(obj, dict):
        raise LedgerCorruptError(f"{where} is not a JSON object.")
    return obj


def _link(prev: bytes, line: bytes) -> bytes:
    """Chain value after ``line``: SHA-256 of the previous value and the
    line's bytes (newline excluded); the first line's previous value is empty."""
    return hashlib.sha256(prev + line).digest()


def _mac_hex(key: bytes, entry: Mapping[str, Any]) -> str:
    """HMAC-SHA256 of the entry's canonical line without its ``mac`` field."""
    body = {k: v for k, v in entry.items() if k != "mac"}
    return hmac.new(key, encode_entry(body)[:-1], hashlib.sha256).hexdigest()


def _check_key(key: Any) -> bytes | None:
    if key is None:
        return None
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise ValueError(
            f"Expected key to be bytes (e.g. the contents of a key file), got "
            f"{type(key).__name__}."
        )
    key = bytes(key)
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"Expected key to be at least {MIN_KEY_BYTES} bytes (RFC 2104: "
            f"shorter keys weaken HMAC-SHA256), got {len(key)} bytes."
        )
    return key


def _parse_pin(expect_head: Any) -> tuple[int | None, str] | None:
    """``"HEAD"`` or ``"N:HEAD"`` (as :attr:`LedgerIntegrity.pin` writes it)."""
    if expect_head is None:
        return None
    text = expect_head.strip().lower() if isinstance(expect_head, str) else ""
    count, _, head = text.rpartition(":")
    ok = len(head) == 64 and all(c in "0123456789abcdef" for c in head)
    if ok and count:
        ok = count.isdigit()
    if not ok:
        raise ValueError(
            "Expected expect_head to be 'N:HEX' or 'HEX' (N entries, HEX the "
            f"64-digit SHA-256 chain value, as Ledger.pin gives), got {expect_head!r}."
        )
    return (int(count) if count else None), head


class _Scanner:
    """Incremental reader: feed bytes, get complete lines parsed and checked.

    Memory stays bounded by :data:`MAX_LINE_BYTES` plus one chunk beyond the
    parsed entries: an over-long line is refused as soon as it is seen. Each
    line's hash-chain link (and, with a key, its MAC) is checked as it is
    read; see the module docstring, "Integrity".
    """

    def __init__(self, path: str, key: bytes | None = None):
        self.path = path
        self.key = key
        self.buf = bytearray()
        self.offset = 0  # file offset of buf[0] = bytes of complete lines
        self.entries: list[dict] = []
        self.links: list[bytes] = []  # chain value after each line
        self.spec: dict | None = None  # the configuration's declaration
        self.chained = False  # an entry carrying 'prev' was seen
        self.unchained = 0
        self.macs = False

    def where(self) -> str:
        return f"{self.path}: line {len(self.entries) + 1} (byte offset {self.offset})"

    def feed(self, data: bytes) -> None:
        self.buf += data
        start = 0
        while (nl := self.buf.find(b"\n", start)) >= 0:
            self._line(bytes(self.buf[start:nl]))
            start = nl + 1
        del self.buf[:start]
        if len(self.buf) > MAX_LINE_BYTES:
            raise LedgerCorruptError(
                f"{self.where()} has no newline within {MAX_LINE_BYTES} bytes."
            )

    def _tampered(self, what: str) -> LedgerTamperedError:
        return LedgerTamperedError(
            f"{self.where()} {what}",
            line=len(self.entries) + 1,
            offset=self.offset,
        )

    def _line(self, line: bytes) -> None:
        obj = _loads(line, self.where())
        prev = self.links[-1] if self.links else b""
        if not self.entries:  # the configuration line
            try:
                self.spec = _integrity_spec(obj)
            except LedgerCorruptError as e:
                raise LedgerCorruptError(f"{self.where()}: {e}") from None
        elif "prev" not in obj:
            if self.chained or self.spec is not None:
                raise self._tampered(
                    "carries no hash-chain link ('prev') although the ledger is "
                    "chained: a line was inserted or rewritten."
                )
            self.unchained += 1
        elif obj["prev"] != prev.hex():
            raise self._tampered(
                "breaks the hash chain: its 'prev' is not the SHA-256 chain value "
                "of the lines before it, so a line before it was edited, inserted "
                "or deleted."
            )
        else:
            self.chained = True
        mac = obj.get("mac")
        self.macs |= mac is not None
        if self.key is not None:
            if not isinstance(mac, str):
                raise self._tampered(
                    "carries no MAC although a key was given (the ledger was "
                    "created without a key, or its MACs were stripped)."
                )
            expected = _mac_hex(self.key, obj)
            if not (mac.isascii() and hmac.compare_digest(mac, expected)):
                raise self._tampered(
                    "fails its MAC: the line was altered, or the key is wrong."
                )
        elif self.spec is not None and self.spec["mac"] and not isinstance(mac, str):
            raise self._tampered(
                "carries no MAC although the configuration declares HMAC-SHA256 "
                "(the line was inserted or rewritten)."
            )
        self.links.append(_link(prev, line))
        self.entries.append(obj)
        self.offset += len(line) + 1

    def finish(self, pin: tuple[int | None, str] | None = None) -> LedgerRead:
        torn = None
        if self.buf:
            preview = bytes(self.buf[:60]).decode("utf-8", "replace")
            torn = TornTail(self.offset, len(self.buf), preview)
        num_entries = max(len(self.entries) - 1, 0)
        integrity = LedgerIntegrity(
            chain=CHAIN if self.chained or self.spec is not None else "none",
            unchained_entries=self.unchained,
            mac="verified" if self.key else ("unverified" if self.macs else "none"),
            head=self.links[-1].hex() if self.links else "",
            num_entries=num_entries,
        )
        if pin is not None:
            self._check_pin(pin, num_entries)
        return LedgerRead(tuple(self.entries), torn, self.offset, integrity)

    def _check_pin(self, pin: tuple[int | None, str], num_entries: int) -> None:
        count, head = pin
        if count is None:
            if head not in {x.hex() for x in self.links}:
                raise LedgerTamperedError(
                    f"{self.path}: no line ends at the pinned head {head[:16]}...: "
                    "the ledger was truncated or rewritten.",
                    line=None,
                    offset=None,
                )
            return
        if count > num_entries or not self.links:
            raise LedgerTamperedError(
                f"{self.path}: holds {num_entries} entries but the pinned head "
                f"was taken after entry {count}: the ledger was truncated (its "
                "last entries deleted) or rewritten.",
                line=None,
                offset=None,
            )
        if self.links[count].hex() != head:
            raise LedgerTamperedError(
                f"{self.path}: the chain value after entry {count} is "
                f"{self.links[count].hex()[:16]}..., not the pinned "
                f"{head[:16]}...: the ledger was rewritten at or before entry "
                f"{count}.",
                line=count + 1,
                offset=None,
            )


def _scan_fd(
    fd: int,
    path: str,
    end: int | None = None,
    *,
    key: bytes | None = None,
    pin: tuple[int | None, str] | None = None,
) -> LedgerRead:
    """Reads and parses an open file from its start (up to byte ``end``)."""
    os.lseek(fd, 0, os.SEEK_SET)
    scanner = _Scanner(path, key)
    left = math.inf if end is None else end
    while left > 0 and (chunk := os.read(fd, int(min(_READ_CHUNK, left)))):
        scanner.feed(chunk)
        left -= len(chunk)
    return scanner.finish(pin)


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_regular(mode: int, path: str) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
    raise LedgerError(
        f"{path}: not a regular file ({kind}); a ledger is a regular file."
    )


def _open_regular(path: str, flags: int) -> int:
    """Opens ``path`` only if it is a regular file.

    A FIFO would block ``open`` or ``read`` forever and ``/dev/zero`` would
    never end, so the type is checked before opening (``stat``) and again on
    the descriptor (``fstat``: the path may have been replaced in between);
    ``O_NONBLOCK`` keeps the ``open`` of a FIFO from waiting for a writer.
    """
    _check_regular(os.stat(path).st_mode, path)
    fd = os.open(
        path, flags | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        _check_regular(os.fstat(fd).st_mode, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_ledger(
    path: str | os.PathLike,
    *,
    key: bytes | None = None,
    expect_head: str | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
) -> LedgerRead:
    """Reads every complete line of a ledger file, checks its integrity and
    reports a torn tail.

    An append in progress is never mistaken for a torn line. Reading takes
    no lock (so readers never hold up writers); only when the file seems to
    end in a torn line does the reader check the lock appends hold while
    writing, and re-read once the append is complete (see
    :func:`_resolve_torn`). Where no lock can be taken (no ``fcntl``, or a
    file system without ``flock``), a torn tail is read again until it stops
    growing.

    Only a regular file is read; each line must be at most
    :data:`MAX_LINE_BYTES` long, nest at most :data:`MAX_DEPTH` deep and hold
    integers of at most :data:`MAX_INT_DIGITS` digits and no NaN/inf.

    Args:
      path: The ledger file.
      key: The ledger's MAC key (bytes, at least :data:`MIN_KEY_BYTES`): every
        line must then carry a valid HMAC-SHA256.
      expect_head: A pin ``"N:HEX"`` (or ``"HEX"``) taken earlier from
        :attr:`LedgerIntegrity.pin` / :attr:`Ledger.pin`: the file must still
        hold that chain value after entry N (appends since are fine), which
        detects deleted last lines and any rewrite.
      lock_timeout: Seconds to wait for a writer that holds the lock with a
        line half-written.

    Returns:
      :class:`LedgerRead` with the parsed entries (config first), the torn
      tail (or None), the byte size of the complete lines and the
      :class:`LedgerIntegrity` established.

    Raises:
      FileNotFoundError: If the file does not exist.
      IsADirectoryError: If ``path`` is a directory.
      LedgerError: If ``path`` is another non-regular file (FIFO, device).
      LedgerTamperedError: If the hash chain, a MAC or the pin fails.
      LedgerCorruptError: If a *complete* line is not a JSON object within
        the bounds (that is not a crash artefact: the file was edited or
        damaged).
      TimeoutError: If a writer held the lock with a line half-written for
        ``lock_timeout`` seconds.
      ValueError: For a malformed ``key`` or ``expect_head``.
    """
    path = os.fspath(path)
    key = _check_key(key)
    pin = _parse_pin(expect_head)
    _validate.non_negative(lock_timeout=lock_timeout)
    fd = _open_regular(path, os.O_RDONLY)
    try:

        def scan(end: int | None = None) -> LedgerRead:
            return _scan_fd(fd, path, end, key=key, pin=pin)

        got = scan()
        if got.torn_tail is not None:
            got = _resolve_torn(fd, path, got, float(lock_timeout), scan)
        return got
    finally:
        os.close(fd)


def _resolve_torn(
    fd: int, path: str, got: LedgerRead, timeout: float, scan
) -> LedgerRead:
    """Tells an append in progress from an interrupted one, and re-reads.

    Appends write under an exclusive ``flock``. While one holds it, the file
    is re-read as soon as it grows (the append usually completes the line).
    Once a shared lock is held no append is half-written, so the file's size
    then ends with a whole append or with a really torn line; the bytes before
    it never change (append-only), so the lock is released at once and the
    file read up to that size.
    """
    deadline = time.monotonic() + timeout
    delay = 0.0002
    while True:
        state = _locking.try_shared(fd)
        if state is None:  # no locks here: wait for the tail to stop growing
            return _settled(fd, got, scan)
        if state:
            end = os.fstat(fd).st_size
            _locking.unlock(fd)
            return scan(end)
        if os.fstat(fd).st_size != got.size + got.torn_tail.length:
            got = scan()  # the writer wrote more
            if got.torn_tail is None:
                return got
        now = time.monotonic()
        if now >= deadline:
            raise TimeoutError(
                f"{path}: another process has held the ledger's lock for more "
                f"than {timeout:g} s with a line half-written (an append in "
                "progress, or a stopped writer); try again"
            )
        time.sleep(min(delay, deadline - now))
        delay = min(2 * delay, 0.01)


def _settled(fd: int, got: LedgerRead, scan) -> LedgerRead:
    """Without locks: re-reads while the torn tail is still growing."""
    deadline = time.monotonic() + _SETTLE_MAX_S
    while got.torn_tail is not None and time.monotonic() < deadline:
        time.sleep(_SETTLE_S)
        if os.fstat(fd).st_size == got.size + got.torn_tail.length:
            break  # unchanged: an interrupted append, not one in progress
        got = scan()
    return got


class LoadedLedger(NamedTuple):
    """A ledger file read and replayed once (:func:`load_ledger`)."""

    setup: LedgerSetup
    summary: LedgerSummary
    read: LedgerRead


def load_ledger(
    path: str | os.PathLike,
    *,
    allow_torn: bool = False,
    key: bytes | None = None,
    expect_head: str | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
) -> LoadedLedger:
    """Reads (:func:`read_ledger`, same arguments) and replays a ledger file.

    A torn tail raises :class:`TornTailError` unless ``allow_torn``, in which
    case the complete entries are replayed and the tail is reported in
    ``read.torn_tail``. The configuration, the summary and the integrity
    report all come from the same read.
    """
    path = os.fspath(path)
    got = read_ledger(path, key=key, expect_head=expect_head, lock_timeout=lock_timeout)
    if got.torn_tail is not None and not allow_torn:
        raise _torn_error(path, got)
    if not got.entries:
        raise LedgerCorruptError(f"{path}: no complete configuration line.")
    summary = _replay_read(path, got)
    return LoadedLedger(parse_config(got.entries[0]), summary, got)


def replay_file(
    path: str | os.PathLike,
    *,
    allow_torn: bool = False,
    key: bytes | None = None,
    expect_head: str | None = None,
    lock_timeout: float = LOCK_TIMEOUT,
) -> tuple[LedgerSummary, TornTail | None]:
    """Replays a ledger file: :func:`load_ledger`'s summary and torn tail."""
    got = load_ledger(
        path,
        allow_torn=allow_torn,
        key=key,
        expect_head=expect_head,
        lock_timeout=lock_timeout,
    )
    return got.summary, got.read.torn_tail


def _replay_read(path, got: LedgerRead) -> LedgerSummary:
    """:func:`replay` of the entries read from ``path``; a malformed entry is
    reported as :class:`LedgerCorruptError` naming the file."""
    try:
        return replay(got.entries)
    except LedgerCorruptError:
        raise
    except (ValueError, TypeError, ArithmeticError) as e:
        # Whatever a damaged entry trips over is the file's fault (exit 1 in
        # the CLI), not a bad argument.
        raise LedgerCorruptError(f"{os.fspath(path)}: {e}") from None


def _torn_error(path, got: LedgerRead) -> TornTailError:
    t = got.torn_tail
    return TornTailError(
        f"{os.fspath(path)}: torn last line at byte offset {t.offset} "
        f"({t.length} bytes, "
        f"after {len(got.entries)} complete lines): an append was interrupted. The "
        "complete entries are intact; use repair_torn_tail() / --repair to set the "
        "torn bytes aside before appending.",
        offset=t.offset,
        length=t.length,
        num_complete=len(got.entries),
    )


def repair_torn_tail(path: str | os.PathLike) -> TornTail | None:
    """Moves a torn last line to ``PATH.torn-<offset>`` and truncates it away.

    Only bytes after the last newline are removed (an append that never
    returned, so it was never acknowledged); they are saved first (fsynced).
    Returns the tail that was removed, or None if the file was intact.
    """
    path = os.fspath(path)
    fd = _open_regular(path, os.O_RDWR)
    try:
        _locking.exclusive(fd)
        got = _scan_fd(fd, path)
        if got.torn_tail is None:
            return None
        os.lseek(fd, got.size, os.SEEK_SET)
        torn = os.read(fd, got.torn_tail.length)  # <= MAX_LINE_BYTES
        side = f"{path}.torn-{got.torn_tail.offset}"
        sfd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(sfd, torn)
            os.fsync(sfd)
        finally:
            os.close(sfd)
        os.ftruncate(fd, got.size)
        os.fsync(fd)
        return got.torn_tail
    finally:
        os.close(fd)


def _bounded_line(entry: Mapping[str, Any]) -> bytes:
    """:func:`encode_entry`, refusing a line no reader would accept."""
    line = encode_entry(entry)
    if len(line) - 1 > MAX_LINE_BYTES:
        raise ValueError(
            f"Expected the encoded entry to be at most {MAX_LINE_BYTES} bytes "
            f"(MAX_LINE_BYTES), got {len(line) - 1}; shorten its note."
        )
    return line


def _write_all(fd: int, data: bytes) -> None:
    # A regular-file write is complete in one call in practice; continue if
    # the kernel returns short, so the line is still contiguous (O_APPEND).
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(path: str) -> None:
    d = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    try:
        os.fsync(d)
    finally:
        os.close(d)


def summary_to_dict(summary: LedgerSummary) -> dict:
    """JSON-friendly view of a summary (inf becomes the string "inf")."""

    def num(x):
        if x is None:
            return None
        x = float(x)
        return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")

    u = summary.unlearning
    state = summary.state
    state_d = {}
    for k, v in state._asdict().items():
        state_d[k] = (
            v._asdict()
            if hasattr(v, "_asdict")
            else (list(v) if isinstance(v, tuple) else v)
        )
    return {
        "currency": summary.currency,
        "num_entries": summary.num_entries,
        "num_releases": summary.num_releases,
        "num_retrains": summary.num_retrains,
        "num_requests": summary.num_requests,
        "requests_since_retrain": summary.requests_since_retrain,
        "total_removed": summary.total_removed,
        "state": state_d,
        "unlearning": {
            "certified": u.certified,
            "epsilon": num(u.epsilon),
            "delta": num(u.delta),
            "used": num(u.used),
            "budget": num(u.budget),
            "remaining": num(u.remaining),
            "unit": u.unit,
        },
        "dp": {
            "epsilon": num(summary.dp_epsilon),
            "delta": summary.dp_delta,
            "order": num(summary.dp_order),
            "accountant": summary.dp_method,
            "epsilon_rdp": num(summary.dp_epsilon_rdp),
            "gaussian_precision": num(summary.dp_gaussian_precision),
            "sigma_effective": (
                num(summary.dp_gaussian_precision**-0.5)
                if summary.dp_gaussian_precision > 0
                else None
            ),
            "non_gaussian_releases": summary.dp_non_gaussian_releases,
            "non_private_entries": list(summary.non_private_entries),
        },
    }


class Ledger:
    """A ledger file opened for appending.

    Use :meth:`create` for a new file and :meth:`open` for an existing one;
    :meth:`append` (or :meth:`train` / :meth:`request` / :meth:`retrain`)
    checks the budgets, appends one line crash-safely and returns the new
    :class:`LedgerSummary`. The object caches the summary, the file size and
    the chain head; if another process appended meanwhile, the file is
    re-read (and verified) and replayed under the lock before the check.
    """

    def __init__(
        self,
        path: str,
        setup: LedgerSetup,
        summary: LedgerSummary,
        size: int,
        *,
        head: bytes,
        key: bytes | None = None,
    ):
        self._path = path
        self._setup = setup
        self._summary = summary
        self._size = size
        self._head = head
        self._key = key

    @property
    def path(self) -> str:
        return self._path

    @property
    def setup(self) -> LedgerSetup:
        return self._setup

    @property
    def summary(self) -> LedgerSummary:
        return self._summary

    @property
    def head(self) -> str:
        """Hex SHA-256 chain value after the last line this object knows."""
        return self._head.hex()

    @property
    def pin(self) -> str:
        """``"<entries>:<head>"``: keep it somewhere the ledger's writers
        cannot change, and pass it as ``expect_head`` to :func:`replay_file`
        (``--expect-head`` in the CLI) to detect deleted last entries."""
        return f"{self._summary.num_entries}:{self.head}"

    @classmethod
    def create(
        cls, path: str | os.PathLike, *, key: bytes | None = None, **config_kwargs
    ) -> Ledger:
        """Creates a new ledger whose first line is :func:`make_config` (kwargs).

        Every entry is hash-chained to the lines before it. With ``key``
        (bytes, at least :data:`MIN_KEY_BYTES`), every line also carries an
        HMAC-SHA256 under it, and the key is needed to open the ledger for
        appending and to verify it.

        Raises FileExistsError if ``path`` exists (a ledger is never
        overwritten)."""
        path = os.fspath(path)
        key = _check_key(key)
        raw = make_config(**config_kwargs)
        raw["integrity"] = {"chain": CHAIN, "mac": MAC if key else None}
        if key is not None:
            raw["mac"] = _mac_hex(key, raw)
        setup = parse_config(raw)
        line = _bounded_line(raw)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            _write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(path)
        head = _link(b"", line[:-1])
        return cls(path, setup, initial_summary(setup), len(line), head=head, key=key)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        key: bytes | None = None,
        expect_head: str | None = None,
    ) -> Ledger:
        """Opens an existing ledger, verifying and replaying it.

        ``key`` and ``expect_head`` are as in :func:`read_ledger`; a ledger
        created with a key cannot be opened for appending without it.

        Raises:
          FileNotFoundError: If it does not exist.
          TornTailError: If its last line is torn (see :func:`repair_torn_tail`).
          LedgerTamperedError: If its hash chain, a MAC or the pin fails.
          LedgerCorruptError: If a complete line is invalid.
          ValueError: If the ledger has MACs and no ``key`` was given.
        """
        path = os.fspath(path)
        got = read_ledger(path, key=key, expect_head=expect_head)
        return cls._from_read(path, got, _check_key(key))

    @classmethod
    def _from_read(cls, path: str, got: LedgerRead, key: bytes | None) -> Ledger:
        if got.torn_tail is not None:
            raise _torn_error(path, got)
        if not got.entries:
            raise LedgerCorruptError(f"{path}: no complete configuration line.")
        setup = parse_config(got.entries[0])
        if key is None and got.integrity.mac != "none":
            raise ValueError(
                f"Expected key= to open {path} for appending: its lines carry "
                "HMAC-SHA256 MACs, which an append without the key would break."
            )
        summary = _replay_read(path, got)
        head = bytes.fromhex(got.integrity.head)
        return cls(path, setup, summary, got.size, head=head, key=key)

    def append(self, event: Mapping[str, Any]) -> LedgerSummary:
        """Checks budgets, appends one release, fsyncs, returns the new summary.

        ``seq``, ``time``, the chain link ``prev`` (and ``mac``) are filled
        in. Raises :class:`BudgetExceededError` (file unchanged) if the
        release would exceed a configured budget, and ``ValueError`` for a
        malformed event (file unchanged).
        """
        entry = _plain(dict(event))
        for written_here in ("seq", "prev", "mac"):
            entry.pop(written_here, None)
        entry.setdefault("time", round(time.time(), 6))
        # Read-write so that a changed file is re-read through this descriptor,
        # under the lock it holds.
        fd = _open_regular(self._path, os.O_RDWR | os.O_APPEND)
        try:
            _locking.exclusive(fd)
            size = os.fstat(fd).st_size
            if size != self._size:  # another writer appended (or the file changed)
                got = _scan_fd(fd, self._path, key=self._key)
                fresh = Ledger._from_read(self._path, got, self._key)
                self._setup, self._summary = fresh._setup, fresh._summary
                self._size, self._head = fresh._size, fresh._head
            entry["seq"] = self._summary.num_entries + 1
            new = check_entry(self._setup, self._summary, entry)
            entry["prev"] = self._head.hex()
            if self._key is not None:
                entry["mac"] = _mac_hex(self._key, entry)
            line = _bounded_line(entry)
            _write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock
        self._summary = new
        self._size += len(line)
        self._head = _link(self._head, line[:-1])
        return new

    def train(
        self,
        *,
        dp: Sequence[Mapping[str, Any]] | None,
        note: str | None = None,
        **fields,
    ) -> LedgerSummary:
        """Records the first training release (``dp``: its mechanisms or None).

        ``certified_removal``: ``residual_bound=`` the model's training
        residual (default 0) starts β."""
        return self.append(_event("train", dp=dp, note=note, **fields))

    def retrain(
        self,
        *,
        dp: Sequence[Mapping[str, Any]] | None,
        note: str | None = None,
        **extra,
    ) -> LedgerSummary:
        """Records a full retrain (resets U, adds to D).

        ``certified_removal``: ``residual_bound=`` the new model's training
        residual (default 0) is the β it resets to; ``dp_extractor``:
        ``scope=``."""
        return self.append(_event("retrain", dp=dp, note=note, **extra))

    def request(
        self,
        *,
        dp: Sequence[Mapping[str, Any]] | None,
        removed: int = 1,
        note: str | None = None,
        **fields,
    ) -> LedgerSummary:
        """Records a deletion request (currency fields such as ``residual_bound``,
        ``residual_mode``, ``steps`` or ``epochs`` as keywords)."""
        return self.append(
            _event("request", dp=dp, note=note, removed=removed, **fields)
        )


def _event(kind: str, *, dp, note, **fields) -> dict:
    e = {"kind": kind, "dp": None if dp is None else [dict(m) for m in dp], **fields}
    if note is not None:
        e["note"] = note
    return e
