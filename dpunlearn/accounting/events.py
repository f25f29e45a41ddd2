"""Mechanism descriptions and interop with Google's ``dp_accounting``.

Our events are small frozen dataclasses that say what was released and how
often (``count``). They convert to ``dp_accounting.DpEvent`` trees
(:func:`to_dp_event`) so dp_accounting's PLD and RDP accountants can evaluate a
ledger (:func:`epsilon_pld`, :func:`delta_pld`, :func:`epsilon_rdp`), and to
our own vectorised RDP curves (:func:`rdp_curve`), which is the cheap path for
long ledgers.

Known fault guarded here: dp_accounting 0.6.0's ``PLDAccountant`` ignores the
``count`` of a ``RandomizedResponseDpEvent`` (both ``compose(rr, k)`` and
``SelfComposedDpEvent(rr, k)`` report the one-fold ε, under-reporting the
privacy loss). Before a PLD evaluation every repeated sub-tree that contains
randomized response is expanded into ``k`` explicit compositions, which
dp_accounting handles correctly. The guard is also applied to raw
``DpEvent``s passed in by the user.

Pure (ε, 0)-DP mechanisms (:class:`PureDPEvent`) have no ``DpEvent`` in
dp_accounting 0.6.0. They become :class:`PureEpsilonDpEvent` (a ``DpEvent``
subclass defined here), which this module's accountants evaluate with
dp_accounting's own pieces: the PLD of the dominating randomized-response
pair from ``privacy_loss_distribution.from_privacy_parameters((ε, 0))``,
self-composed ``count`` times in one step (so the randomized-response count
fault cannot occur, and losses ±ε lie on the grid when ε is a multiple of
the discretisation interval), and the RDP curve of that same pair.
Sampling without replacement (:class:`SampledWithoutReplacementGaussianEvent`)
is evaluated by dp_accounting's ``RdpAccountant`` (Wang-Balle-Kasiviswanathan
bound, ``REPLACE_ONE`` only); its PLD accountant does not support it.

Neighbouring relation: by default the relation is inferred: ``REPLACE_ONE``
when every leaf is randomized response or sampling without replacement (the
only relation dp_accounting supports for them), ``ADD_OR_REMOVE_ONE``
otherwise. Pure-DP leaves hold under whichever relation their ε was stated
for and do not take part in the inference. Sensitivities must have been
computed under the same relation.

References:
  Google differential-privacy team. dp_accounting (PyPI 0.6.0).
  https://github.com/google/differential-privacy/tree/main/python/dp_accounting
  Meiser, Mohammadi. Tight on Budget? Tight Bounds for r-Fold Approximate
  Differential Privacy. CCS 2018 (privacy loss distributions).
  Doroshenko, Ghazi, Kamath, Kumar, Manurangsi. Connect the Dots: Tighter
  Discrete Approximations of Privacy Loss Distributions. PETS 2022.
  Kairouz, Oh, Viswanath. The Composition Theorem for Differential Privacy.
  ICML 2015, Theorem 3.3. https://arxiv.org/abs/1311.0776
  Wang, Balle, Kasiviswanathan. Subsampled Rényi Differential Privacy and
  Analytical Moments Accountant. AISTATS 2019, Theorem 9 (Gaussian form:
  Theorem 27 of https://arxiv.org/abs/1808.00087).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Union

import attr
import dp_accounting
import numpy as np
from numpy.typing import ArrayLike

from dpunlearn import _validate
from dpunlearn.accounting import rdp as rdp_lib

__all__ = [
    "GaussianEvent",
    "SubsampledGaussianEvent",
    "LaplaceEvent",
    "RandomizedResponseEvent",
    "ZCDPEvent",
    "PureDPEvent",
    "SampledWithoutReplacementGaussianEvent",
    "PureEpsilonDpEvent",
    "Event",
    "to_dp_event",
    "rdp_curve",
    "epsilon_pld",
    "delta_pld",
    "epsilon_rdp",
]


def _check_counted(count: int, **positive: float) -> None:
    """Validates an event's positive parameters, then its ``count`` (≥ 1)."""
    _validate.positive(**positive)
    _validate.positive_int(count=count)


@dataclasses.dataclass(frozen=True)
class GaussianEvent:
    """``count`` releases of a query with L2 sensitivity Δ plus N(0, σ² I) noise.

    Attributes:
      sigma: Noise standard deviation σ > 0.
      sensitivity: L2 sensitivity Δ > 0 (under the neighbouring relation used).
      count: Number of independent releases, an integer ≥ 1.
    """

    sigma: float
    sensitivity: float = 1.0
    count: int = 1

    def __post_init__(self):
        _check_counted(self.count, sigma=self.sigma, sensitivity=self.sensitivity)


@dataclasses.dataclass(frozen=True)
class SubsampledGaussianEvent:
    """``count`` Poisson-subsampled Gaussian releases (add/remove adjacency).

    Attributes:
      q: Poisson sampling probability in [0, 1].
      sigma: Noise multiplier σ > 0 (noise std / L2 sensitivity).
      count: Number of releases (steps), an integer ≥ 1.
    """

    q: float
    sigma: float
    count: int = 1

    def __post_init__(self):
        _validate.array_in_range("q", self.q, 0.0, 1.0, lo_closed=True, hi_closed=True)
        if np.ndim(self.q) != 0:
            raise ValueError(f"Expected q to be a scalar, got shape {np.shape(self.q)}.")
        _check_counted(self.count, sigma=self.sigma)


@dataclasses.dataclass(frozen=True)
class LaplaceEvent:
    """``count`` releases with Laplace(scale) noise on an L1-sensitivity-Δ query.

    Attributes:
      scale: Laplace scale b > 0 (each release is (Δ/b, 0)-DP).
      sensitivity: L1 sensitivity Δ > 0.
      count: Number of releases, an integer ≥ 1.
    """

    scale: float
    sensitivity: float = 1.0
    count: int = 1

    def __post_init__(self):
        _check_counted(self.count, scale=self.scale, sensitivity=self.sensitivity)


@dataclasses.dataclass(frozen=True)
class RandomizedResponseEvent:
    """``count`` uses of k-ary randomized response (replace-one adjacency).

    With probability ``1 − noise_parameter`` the true bucket is reported,
    otherwise a uniformly random one (dp_accounting's convention).

    Attributes:
      noise_parameter: p in (0, 1].
      num_buckets: k ≥ 2.
      count: Number of uses, an integer ≥ 1.
    """

    noise_parameter: float
    num_buckets: int = 2
    count: int = 1

    def __post_init__(self):
        _validate.array_in_range(
            "noise_parameter", self.noise_parameter, 0.0, 1.0, hi_closed=True
        )
        if np.ndim(self.noise_parameter) != 0:
            raise ValueError("Expected noise_parameter to be a scalar.")
        _validate.positive_int(num_buckets=self.num_buckets, count=self.count)
        if self.num_buckets < 2:
            raise ValueError(f"Expected num_buckets={self.num_buckets} >= 2.")


@dataclasses.dataclass(frozen=True)
class ZCDPEvent:
    """``count`` mechanisms that are each ρ-zCDP (RDP curve ρα).

    Supported by the RDP paths only (dp_accounting's PLD has no zCDP event).

    Attributes:
      rho: ρ > 0.
      count: Number of mechanisms, an integer ≥ 1.
    """

    rho: float
    count: int = 1

    def __post_init__(self):
        _check_counted(self.count, rho=self.rho)


@dataclasses.dataclass(frozen=True)
class PureDPEvent:
    """``count`` uses of a generic (ε, 0)-DP mechanism.

    Accounted through the dominating pair of pure ε-DP, binary randomized
    response with p = e^ε/(1 + e^ε) (Kairouz, Oh & Viswanath 2015, Theorem
    3.3, optimal composition): PLD via dp_accounting's
    ``from_privacy_parameters((ε, 0))`` self-composed ``count`` times, RDP via
    :func:`~dpunlearn.accounting.rdp.pure_dp_rdp`. The exact k-fold value is
    :func:`~dpunlearn.accounting.mechanisms.pure_dp_composition_epsilon`.
    Valid under any neighbouring relation for which the mechanism is ε-DP.

    Attributes:
      epsilon: Pure ε > 0 of one use (finite).
      count: Number of uses, an integer ≥ 1.
    """

    epsilon: float
    count: int = 1

    def __post_init__(self):
        _check_counted(self.count, epsilon=self.epsilon)


@dataclasses.dataclass(frozen=True)
class SampledWithoutReplacementGaussianEvent:
    """``count`` Gaussian releases on fixed-size batches sampled without replacement.

    Each release draws ``sample_size`` distinct records uniformly from the
    ``population_size`` records and adds N(0, σ² Δ²) noise to a query of L2
    sensitivity Δ; ``sigma`` is the noise multiplier σ. Replace-one adjacency
    only (the population size is public). Evaluated by dp_accounting's
    ``RdpAccountant`` with ``SampledWithoutReplacementDpEvent``, i.e. the
    subsampled-RDP bound of Wang, Balle & Kasiviswanathan (AISTATS 2019,
    Theorem 9; the Gaussian form is Theorem 27 of arXiv:1808.00087). No PLD.

    Attributes:
      population_size: Number of records n, an integer ≥ 1.
      sample_size: Batch size m, an integer with 1 ≤ m ≤ n.
      sigma: Noise multiplier σ > 0 (noise std / replace-one L2 sensitivity).
      count: Number of releases (steps), an integer ≥ 1.
    """

    population_size: int
    sample_size: int
    sigma: float
    count: int = 1

    def __post_init__(self):
        _validate.positive_int(population_size=self.population_size, sample_size=self.sample_size)
        if self.sample_size > self.population_size:
            raise ValueError(
                f"Expected sample_size={self.sample_size} <= "
                f"population_size={self.population_size}."
            )
        _check_counted(self.count, sigma=self.sigma)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class PureEpsilonDpEvent(dp_accounting.DpEvent):
    """``dp_accounting.DpEvent`` for one use of a generic (ε, 0)-DP mechanism.

    dp_accounting 0.6.0 has no such event; only the accountants of this
    module (:func:`epsilon_pld`, :func:`delta_pld`, :func:`epsilon_rdp`)
    evaluate it, through the dominating randomized-response pair (Kairouz, Oh
    & Viswanath 2015, Theorem 3.3). Repeat it with ``SelfComposedDpEvent``.
    """

    epsilon: float


Event = Union[
    GaussianEvent,
    SubsampledGaussianEvent,
    LaplaceEvent,
    RandomizedResponseEvent,
    ZCDPEvent,
    PureDPEvent,
    SampledWithoutReplacementGaussianEvent,
]
_EVENT_TYPES = (
    GaussianEvent,
    SubsampledGaussianEvent,
    LaplaceEvent,
    RandomizedResponseEvent,
    ZCDPEvent,
    PureDPEvent,
    SampledWithoutReplacementGaussianEvent,
)


def _as_list(events) -> list:
    if isinstance(events, (*_EVENT_TYPES, dp_accounting.DpEvent)):
        return [events]
    if isinstance(events, Iterable) and not isinstance(events, (str, bytes)):
        out = list(events)
        for i, e in enumerate(out):
            if not isinstance(e, (*_EVENT_TYPES, dp_accounting.DpEvent)):
                raise TypeError(
                    f"Expected events[{i}] to be a dpunlearn event or a "
                    f"dp_accounting.DpEvent, got {type(e).__name__}."
                )
        return out
    raise TypeError(
        "Expected an event, a dp_accounting.DpEvent, or a sequence of them; got "
        f"{type(events).__name__}."
    )


def _single_dp_event(e: Event) -> dp_accounting.DpEvent:
    if isinstance(e, GaussianEvent):
        return dp_accounting.GaussianDpEvent(float(e.sigma) / float(e.sensitivity))
    if isinstance(e, SubsampledGaussianEvent):
        return dp_accounting.PoissonSampledDpEvent(
            float(e.q), dp_accounting.GaussianDpEvent(float(e.sigma))
        )
    if isinstance(e, LaplaceEvent):
        # dp_accounting's Laplace noise_multiplier is scale/sensitivity (ε = 1/it).
        return dp_accounting.LaplaceDpEvent(float(e.scale) / float(e.sensitivity))
    if isinstance(e, RandomizedResponseEvent):
        return dp_accounting.RandomizedResponseDpEvent(
            float(e.noise_parameter), int(e.num_buckets)
        )
    if isinstance(e, ZCDPEvent):
        return dp_accounting.ZCDpEvent(float(e.rho))
    if isinstance(e, PureDPEvent):
        return PureEpsilonDpEvent(float(e.epsilon))
    if isinstance(e, SampledWithoutReplacementGaussianEvent):
        return dp_accounting.SampledWithoutReplacementDpEvent(
            int(e.population_size),
            int(e.sample_size),
            dp_accounting.GaussianDpEvent(float(e.sigma)),
        )
    raise TypeError(f"Unknown event type {type(e).__name__}.")  # pragma: no cover


def _contains_rr(ev: dp_accounting.DpEvent) -> bool:
    if isinstance(ev, dp_accounting.RandomizedResponseDpEvent):
        return True
    if isinstance(ev, dp_accounting.SelfComposedDpEvent):
        return _contains_rr(ev.event)
    if isinstance(ev, dp_accounting.ComposedDpEvent):
        return any(_contains_rr(x) for x in ev.events)
    if isinstance(ev, (dp_accounting.PoissonSampledDpEvent,)):
        return _contains_rr(ev.event)
    return False


def _guard_rr_counts(ev: dp_accounting.DpEvent) -> dp_accounting.DpEvent:
    """Expands repeated sub-trees containing randomized response (PLD count bug)."""
    if isinstance(ev, dp_accounting.SelfComposedDpEvent):
        inner = _guard_rr_counts(ev.event)
        if _contains_rr(inner):
            return dp_accounting.ComposedDpEvent([inner] * int(ev.count))
        return dp_accounting.SelfComposedDpEvent(inner, ev.count)
    if isinstance(ev, dp_accounting.ComposedDpEvent):
        return dp_accounting.ComposedDpEvent([_guard_rr_counts(x) for x in ev.events])
    return ev


def to_dp_event(events) -> dp_accounting.DpEvent:
    """Converts our event(s) into one ``dp_accounting.DpEvent``.

    Mapping (noise multipliers are noise scale / sensitivity):

    * ``GaussianEvent(σ, Δ)`` → ``GaussianDpEvent(σ/Δ)``
    * ``SubsampledGaussianEvent(q, σ)`` → ``PoissonSampledDpEvent(q, GaussianDpEvent(σ))``
    * ``LaplaceEvent(b, Δ)`` → ``LaplaceDpEvent(b/Δ)``
    * ``RandomizedResponseEvent(p, k)`` → ``RandomizedResponseDpEvent(p, k)``
    * ``ZCDPEvent(ρ)`` → ``ZCDpEvent(ρ)``
    * ``PureDPEvent(ε)`` → :class:`PureEpsilonDpEvent` ``(ε)`` (this module's)
    * ``SampledWithoutReplacementGaussianEvent(n, m, σ)`` →
      ``SampledWithoutReplacementDpEvent(n, m, GaussianDpEvent(σ))``

    ``count > 1`` becomes ``SelfComposedDpEvent(e, count)``, except for
    randomized response, which becomes ``count`` explicit copies in a
    ``ComposedDpEvent`` (dp_accounting's PLD ignores its count; see module
    docstring). A sequence becomes a ``ComposedDpEvent`` in order; an event
    that already is a ``DpEvent`` passes through unchanged.

    Args:
      events: One event or a sequence of events (ours or ``DpEvent``s).

    Returns:
      A ``dp_accounting.DpEvent``.

    Raises:
      TypeError: If an element is neither our event nor a ``DpEvent``.
    """
    out = []
    for e in _as_list(events):
        if isinstance(e, dp_accounting.DpEvent):
            out.append(e)
            continue
        base = _single_dp_event(e)
        if e.count == 1:
            out.append(base)
        elif isinstance(e, RandomizedResponseEvent):
            out.append(dp_accounting.ComposedDpEvent([base] * int(e.count)))
        else:
            out.append(dp_accounting.SelfComposedDpEvent(base, int(e.count)))
    return out[0] if len(out) == 1 else dp_accounting.ComposedDpEvent(out)


def _leaves(ev: dp_accounting.DpEvent):
    if isinstance(ev, dp_accounting.SelfComposedDpEvent):
        yield from _leaves(ev.event)
    elif isinstance(ev, dp_accounting.ComposedDpEvent):
        for x in ev.events:
            yield from _leaves(x)
    else:
        yield ev


_RELATIONS = {
    "add_or_remove_one": dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
    "replace_one": dp_accounting.NeighboringRelation.REPLACE_ONE,
    "replace_special": dp_accounting.NeighboringRelation.REPLACE_SPECIAL,
}


# Leaves dp_accounting only accounts for under REPLACE_ONE, and leaves that
# hold under any relation (ignored by the inference).
_REPLACE_ONE_ONLY = (
    dp_accounting.RandomizedResponseDpEvent,
    dp_accounting.SampledWithoutReplacementDpEvent,
)
_RELATION_FREE = (dp_accounting.NoOpDpEvent, PureEpsilonDpEvent)


def _relation(ev: dp_accounting.DpEvent, neighboring_relation):
    if neighboring_relation is None:
        leaves = [x for x in _leaves(ev) if not isinstance(x, _RELATION_FREE)]
        if leaves and all(isinstance(x, _REPLACE_ONE_ONLY) for x in leaves):
            return dp_accounting.NeighboringRelation.REPLACE_ONE
        return dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
    if isinstance(neighboring_relation, dp_accounting.NeighboringRelation):
        return neighboring_relation
    key = str(neighboring_relation).lower()
    if key not in _RELATIONS:
        raise ValueError(
            f"Expected neighboring_relation in {tuple(_RELATIONS)} or None, "
            f"got {neighboring_relation!r}."
        )
    return _RELATIONS[key]


class _PLDAccountant(dp_accounting.pld.PLDAccountant):
    """dp_accounting's PLD accountant plus :class:`PureEpsilonDpEvent`.

    A pure event repeated ``count`` times (its own count, times every
    enclosing ``SelfComposedDpEvent``'s) composes the PLD of the dominating
    randomized-response pair, ``from_privacy_parameters((ε, 0))`` (losses ±ε
    with probabilities e^ε/(1+e^ε), 1/(1+e^ε), rounded up to the grid),
    self-composed ``count`` times: the count is respected, unlike
    dp_accounting's ``RandomizedResponseDpEvent`` path. Everything else is the
    parent's code.
    """

    def _maybe_compose(self, event, count, do_compose):
        if isinstance(event, PureEpsilonDpEvent):
            if do_compose:
                pure = dp_accounting.pld.privacy_loss_distribution.from_privacy_parameters(
                    dp_accounting.pld.common.DifferentialPrivacyParameters(
                        float(event.epsilon), 0.0
                    ),
                    value_discretization_interval=self._value_discretization_interval,
                )
                self._pld = self._pld.compose(pure.self_compose(int(count)))
            return None
        return super()._maybe_compose(event, count, do_compose)


class _RdpAccountant(dp_accounting.rdp.RdpAccountant):
    """dp_accounting's RDP accountant plus :class:`PureEpsilonDpEvent`.

    The curve of a pure event is dp_accounting's own randomized-response RDP
    (``REPLACE_ONE``) of the dominating pair, noise parameter 2/(1 + e^ε) and
    two buckets, times ``count``; that pair dominates every (ε, 0)-DP
    mechanism under any relation, so the curve is added whatever this
    accountant's relation is.
    """

    def _maybe_compose(self, event, count, do_compose):
        if isinstance(event, PureEpsilonDpEvent):
            if do_compose:
                rr = dp_accounting.RandomizedResponseDpEvent(
                    2.0 / (1.0 + np.exp(float(event.epsilon))), 2
                )
                curve = (
                    dp_accounting.rdp.RdpAccountant(
                        orders=list(self.orders),
                        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE,
                    )
                    .compose(rr)
                    .rdp
                )
                self._rdp = self._rdp + int(count) * curve
            return None
        return super()._maybe_compose(event, count, do_compose)


def _compose(accountant, ev):
    try:
        return accountant.compose(ev)
    except dp_accounting.UnsupportedEventError as err:
        raise ValueError(
            f"{type(accountant).__name__} (relation "
            f"{accountant.neighboring_relation.name}) cannot account for this event: {err}"
        ) from err


def _pld_accountant(events, neighboring_relation, value_discretization_interval):
    _validate.positive(value_discretization_interval=value_discretization_interval)
    ev = _guard_rr_counts(to_dp_event(events))
    if any(isinstance(x, dp_accounting.SampledWithoutReplacementDpEvent) for x in _leaves(ev)):
        raise ValueError(
            "PLDAccountant cannot account for SampledWithoutReplacementGaussianEvent "
            "(SampledWithoutReplacementDpEvent): dp_accounting 0.6.0 has no PLD for "
            "sampling without replacement; use epsilon_rdp or rdp_curve."
        )
    acc = _PLDAccountant(
        _relation(ev, neighboring_relation),
        value_discretization_interval=float(value_discretization_interval),
    )
    return _compose(acc, ev)


def epsilon_pld(
    events,
    delta: float,
    *,
    neighboring_relation=None,
    value_discretization_interval: float = 1e-4,
) -> float:
    """ε at ``delta`` of the composition of ``events`` via dp_accounting's PLD.

    Uses ``dp_accounting.pld.PLDAccountant`` (pessimistic estimate, i.e. an
    upper bound on the true ε up to its documented truncation, with
    connect-the-dots discretisation for the Gaussian and Laplace), with the
    randomized-response count guard of this module. A :class:`PureDPEvent`
    composes the PLD of its dominating randomized-response pair,
    self-composed ``count`` times (see :class:`PureEpsilonDpEvent`);
    :class:`SampledWithoutReplacementGaussianEvent` is not supported here
    (``ValueError``; use :func:`epsilon_rdp`). For long pure-DP compositions
    dp_accounting truncates the tails of the self-composed PLD into the
    infinite loss, so ``delta=0`` then gives ``inf``; the exact value is
    :func:`~dpunlearn.accounting.mechanisms.pure_dp_composition_epsilon`.

    Args:
      events: One event or a sequence (ours or ``dp_accounting.DpEvent``).
      delta: δ in [0, 1) (δ = 0 asks for pure ε; ``inf`` if there is none).
      neighboring_relation: ``None`` (infer, see module docstring),
        ``"add_or_remove_one"``, ``"replace_one"``, ``"replace_special"`` or a
        ``dp_accounting.NeighboringRelation``.
      value_discretization_interval: PLD grid step (> 0); finer is tighter
        and slower.

    Returns:
      ε ≥ 0 as a Python float.

    Raises:
      ValueError: For ``delta`` outside [0, 1), an unknown relation, or an
        event the accountant cannot handle (message names the sub-event).
      TypeError: For something that is not an event.

    Guarantees:
      An upper bound up to dp_accounting's discretisation and truncation
      (about 1e-4 in ε for the default grid; see accountants.md §3). Not our
      code: estimated-vs-certified status is dp_accounting's.
    """
    _validate.non_negative(delta=delta)
    if float(delta) >= 1.0:
        raise ValueError(f"Expected delta={float(delta)} in the interval [0, 1).")
    acc = _pld_accountant(events, neighboring_relation, value_discretization_interval)
    return float(acc.get_epsilon(float(delta)))


def delta_pld(
    events,
    epsilon: float,
    *,
    neighboring_relation=None,
    value_discretization_interval: float = 1e-4,
) -> float:
    """δ at ``epsilon`` of the composition of ``events`` via dp_accounting's PLD.

    Args and guarantees as :func:`epsilon_pld`, with ``epsilon`` ≥ 0 finite.

    Returns:
      δ in [0, 1] as a Python float.

    Raises:
      ValueError: For a negative or non-finite ``epsilon``, or as
        :func:`epsilon_pld`.
    """
    _validate.non_negative(epsilon=epsilon)
    acc = _pld_accountant(events, neighboring_relation, value_discretization_interval)
    return float(acc.get_delta(float(epsilon)))


def epsilon_rdp(
    events,
    delta: float,
    *,
    orders: ArrayLike | None = None,
    neighboring_relation=None,
) -> float:
    """ε at ``delta`` of the composition of ``events`` via dp_accounting's RDP.

    Uses ``dp_accounting.rdp.RdpAccountant`` on ``orders`` (default our
    :data:`~dpunlearn.accounting.rdp.DEFAULT_ORDERS`, the same grid as
    dp_accounting's). This is the oracle path; :func:`rdp_curve` with
    :func:`~dpunlearn.accounting.rdp.rdp_to_dp` is the fast path.
    A :class:`PureDPEvent` adds dp_accounting's randomized-response curve of
    its dominating pair; :class:`SampledWithoutReplacementGaussianEvent` is
    dp_accounting's Wang-Balle-Kasiviswanathan bound (``REPLACE_ONE``, which is
    inferred when every other leaf allows it).

    Args:
      events: One event or a sequence (ours or ``dp_accounting.DpEvent``).
      delta: δ in (0, 1).
      orders: RDP orders (> 1).
      neighboring_relation: As :func:`epsilon_pld`.

    Returns:
      ε ≥ 0 as a Python float.

    Raises:
      ValueError: As :func:`epsilon_pld`.

    Guarantees:
      Certified (RDP conversion), up to dp_accounting's fractional-order
      series, which over-estimates slightly (conservative).
    """
    _validate.open_interval(0.0, 1.0, delta=delta)
    alpha = rdp_lib.DEFAULT_ORDERS if orders is None else np.asarray(orders, np.float64)
    ev = to_dp_event(events)
    acc = _RdpAccountant(
        orders=[float(a) for a in alpha],
        neighboring_relation=_relation(ev, neighboring_relation),
    )
    return float(_compose(acc, ev).get_epsilon(float(delta)))


def _wor_gaussian_rdp(alpha: np.ndarray, n: int, m: int, sigma: float) -> np.ndarray:
    """dp_accounting's RDP curve of one sampled-without-replacement Gaussian step."""
    acc = dp_accounting.rdp.RdpAccountant(
        orders=[float(a) for a in alpha],
        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE,
    )
    event = dp_accounting.SampledWithoutReplacementDpEvent(
        n, m, dp_accounting.GaussianDpEvent(sigma)
    )
    return np.asarray(_compose(acc, event).rdp, dtype=np.float64)


def rdp_curve(events, orders: ArrayLike | None = None) -> np.ndarray:
    """RDP curve of the composition of our ``events``, with our vectorised code.

    Sums ``count × curve`` over events (Mironov 2017, Prop. 1) using
    :mod:`dpunlearn.accounting.rdp`: Gaussian α Δ²/(2σ²), Poisson-subsampled
    Gaussian (Mironov-Talwar-Zhang 2019), Laplace (Mironov 2017, Prop. 6),
    randomized response (replace-one), zCDP ρα and pure ε-DP (the dominating
    randomized-response pair, :func:`~dpunlearn.accounting.rdp.pure_dp_rdp`).
    Events of one type are evaluated in one vectorised call.
    :class:`SampledWithoutReplacementGaussianEvent` is not re-derived here: its
    curve is delegated to dp_accounting's ``RdpAccountant`` (``REPLACE_ONE``,
    Wang-Balle-Kasiviswanathan 2019, Thm 9) through its public ``rdp``
    property, once per distinct (n, m, σ). Mixing replace-one events
    (randomized response, sampling without replacement) with add/remove
    events is the caller's responsibility: the curves are simply added.

    Args:
      events: One of our events or a sequence of them (``DpEvent``s are not
        accepted here).
      orders: RDP orders (default :data:`~dpunlearn.accounting.rdp.DEFAULT_ORDERS`).

    Returns:
      float64 array of shape ``[len(orders)]``.

    Raises:
      TypeError: For a ``DpEvent`` or a non-event.

    Guarantees:
      As the per-mechanism functions in :mod:`dpunlearn.accounting.rdp`.
    """
    alpha = rdp_lib.DEFAULT_ORDERS if orders is None else np.asarray(orders, np.float64)
    evs = _as_list(events)
    total = np.zeros(alpha.size)
    by_type: dict[type, list] = {}
    for i, e in enumerate(evs):
        if isinstance(e, dp_accounting.DpEvent):
            raise TypeError(
                f"rdp_curve takes dpunlearn events only; events[{i}] is a "
                f"{type(e).__name__}. Use epsilon_rdp for DpEvents."
            )
        by_type.setdefault(type(e), []).append(e)

    def counts(es):
        return np.array([e.count for e in es], dtype=np.float64)

    for t, es in by_type.items():
        if t is GaussianEvent:
            c = rdp_lib.gaussian_rdp(
                alpha, [e.sigma for e in es], [e.sensitivity for e in es]
            )
        elif t is SubsampledGaussianEvent:
            c = rdp_lib.subsampled_gaussian_rdp(
                alpha, [e.q for e in es], [e.sigma for e in es]
            )
        elif t is LaplaceEvent:
            c = rdp_lib.laplace_rdp(alpha, [e.scale for e in es], [e.sensitivity for e in es])
        elif t is RandomizedResponseEvent:
            c = np.stack(
                [
                    rdp_lib.randomized_response_rdp(alpha, e.noise_parameter, e.num_buckets)
                    for e in es
                ]
            )
        elif t is PureDPEvent:
            c = rdp_lib.pure_dp_rdp(alpha, [e.epsilon for e in es])
        elif t is SampledWithoutReplacementGaussianEvent:
            cache: dict[tuple, np.ndarray] = {}
            for e in es:
                key = (int(e.population_size), int(e.sample_size), float(e.sigma))
                if key not in cache:
                    cache[key] = _wor_gaussian_rdp(alpha, *key)
            c = np.stack(
                [
                    cache[(int(e.population_size), int(e.sample_size), float(e.sigma))]
                    for e in es
                ]
            )
        else:  # ZCDPEvent
            c = np.array([e.rho for e in es])[:, None] * alpha
        total = total + rdp_lib.compose_rdp(c, counts(es))
    return total
