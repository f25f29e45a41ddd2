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
privacy loss). Before a PLD evaluation the counts of every repeat are pushed
down to the leaves, and a repeated randomized response is composed by this
module's accountant as one PLD self-composed ``k`` times (correct, and fast:
expanding it into ``k`` explicit compositions took minutes for k = 1e6). The
guard is also applied to raw ``DpEvent``s passed in by the user.

Work limits: dp_accounting's PLD is a dense array over the privacy-loss grid,
whose size grows with the count (a Gaussian composed 1e9 times asked for
72.8 TiB). Before composing, the grid size is estimated per event (closed
forms, and dp_accounting's own Chernoff truncation rule for
self-compositions); past 2**24 points (or 2**22 points of Gaussian PLD to
build) :func:`epsilon_pld` and :func:`delta_pld` raise a ``ValueError`` that
names ``value_discretization_interval`` and the alternatives (RDP, or the
exact closed forms for Gaussian and pure-DP compositions).

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
import math
from typing import Iterable, Union

import attr
import dp_accounting
import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from dpunlearn import _validate
from dpunlearn.accounting import _guards
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
    """Validates an event's positive parameters, then its ``count`` (an
    integer in [1, 2**53], the largest count float64 holds exactly)."""
    _validate.positive(**positive)
    _guards.count("count", count)


@dataclasses.dataclass(frozen=True)
class GaussianEvent:
    """``count`` releases of a query with L2 sensitivity Δ plus N(0, σ² I) noise.

    Attributes:
      sigma: Noise standard deviation σ > 0.
      sensitivity: L2 sensitivity Δ > 0 (under the neighbouring relation used).
      count: Number of independent releases, an integer in [1, 2**53].
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
      count: Number of releases (steps), an integer in [1, 2**53].
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
      count: Number of releases, an integer in [1, 2**53].
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
      count: Number of uses, an integer in [1, 2**53].
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
        _guards.count("num_buckets", self.num_buckets, minimum=2)
        _guards.count("count", self.count)


@dataclasses.dataclass(frozen=True)
class ZCDPEvent:
    """``count`` mechanisms that are each ρ-zCDP (RDP curve ρα).

    Supported by the RDP paths only (dp_accounting's PLD has no zCDP event).

    Attributes:
      rho: ρ > 0.
      count: Number of mechanisms, an integer in [1, 2**53].
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
      count: Number of uses, an integer in [1, 2**53].
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
      population_size: Number of records n, an integer in [1, 2**53].
      sample_size: Batch size m, an integer with 1 ≤ m ≤ n.
      sigma: Noise multiplier σ > 0 (noise std / replace-one L2 sensitivity).
      count: Number of releases (steps), an integer in [1, 2**53].
    """

    population_size: int
    sample_size: int
    sigma: float
    count: int = 1

    def __post_init__(self):
        _guards.count("population_size", self.population_size)
        _guards.count("sample_size", self.sample_size)
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


@attr.s(frozen=True, slots=True, auto_attribs=True)
class _RepeatedRandomizedResponseDpEvent(dp_accounting.DpEvent):
    """``count`` uses of randomized response, for this module's PLD accountant.

    What :func:`_guard_rr_counts` turns a repeated randomized response into:
    :class:`_PLDAccountant` composes it as one PLD self-composed ``count``
    times (stock dp_accounting would ignore the count of a
    ``RandomizedResponseDpEvent``; expanding it into ``count`` copies was
    correct but took minutes for count = 1e6).
    """

    event: dp_accounting.RandomizedResponseDpEvent
    count: int


def _leaf_counts(ev: dp_accounting.DpEvent, mult: int, out: list) -> None:
    """Appends (leaf, total count) pairs of ``ev``, counts multiplied through repeats."""
    if isinstance(ev, (dp_accounting.SelfComposedDpEvent, _RepeatedRandomizedResponseDpEvent)):
        _leaf_counts(ev.event, mult * int(ev.count), out)
    elif isinstance(ev, dp_accounting.ComposedDpEvent):
        for x in ev.events:
            _leaf_counts(x, mult, out)
    else:
        out.append((ev, mult))


def _merged_leaf_counts(ev: dp_accounting.DpEvent) -> list[tuple[dp_accounting.DpEvent, int]]:
    """Leaves of ``ev`` with their total counts, equal leaves merged (composition
    is commutative), in order of first appearance. Counts above 2**53 raise."""
    pairs: list = []
    _leaf_counts(ev, 1, pairs)
    merged: dict = {}
    order: list = []
    for leaf, c in pairs:
        try:
            key = ("h", leaf)
            hash(key)
        except TypeError:  # unhashable leaf (e.g. list fields): kept on its own
            key = ("id", id(leaf), len(order))
        if key not in merged:
            merged[key] = [leaf, 0]
            order.append(key)
        merged[key][1] += c
    out = [(merged[k][0], merged[k][1]) for k in order]
    for leaf, c in out:
        if c > _guards.MAX_COUNT:
            raise ValueError(
                f"Expected the total count of {type(leaf).__name__} to be at most 2**53 "
                f"(the largest count float64 holds exactly), got {c}."
            )
    return out


def _guard_rr_counts(ev: dp_accounting.DpEvent) -> dp_accounting.DpEvent:
    """Rewrites ``ev`` so that every repeat reaches dp_accounting with its count.

    Counts are pushed down to the leaves (``SelfComposedDpEvent(Composed([a,
    b]), k)`` becomes ``Composed([a×k, b×k])``) and equal leaves are merged;
    a repeated randomized response becomes a
    :class:`_RepeatedRandomizedResponseDpEvent` (the PLD count bug, see the
    module docstring), any other repeated leaf a ``SelfComposedDpEvent``.
    """
    nodes = []
    for leaf, c in _merged_leaf_counts(ev):
        if c == 1:
            nodes.append(leaf)
        elif isinstance(leaf, dp_accounting.RandomizedResponseDpEvent):
            nodes.append(_RepeatedRandomizedResponseDpEvent(leaf, c))
        else:
            nodes.append(dp_accounting.SelfComposedDpEvent(leaf, c))
    return nodes[0] if len(nodes) == 1 else dp_accounting.ComposedDpEvent(nodes)


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
    ``ComposedDpEvent`` (stock dp_accounting's PLD ignores its count; see
    module docstring), up to 10,000 copies; a larger count raises
    ``ValueError`` (this module's :func:`epsilon_pld`, :func:`delta_pld` and
    :func:`epsilon_rdp` take any count without copies). A sequence becomes a
    ``ComposedDpEvent`` in order, an empty one ``NoOpDpEvent``; an event that
    already is a ``DpEvent`` passes through unchanged.

    Args:
      events: One event or a sequence of events (ours or ``DpEvent``s).

    Returns:
      A ``dp_accounting.DpEvent``.

    Raises:
      TypeError: If an element is neither our event nor a ``DpEvent``.
      ValueError: For a randomized response with count above 10,000.
    """
    return _to_dp_event(events, expand_rr=True)


# Most copies to_dp_event makes of a repeated randomized response.
_MAX_RR_COPIES = 10_000


def _to_dp_event(events, *, expand_rr: bool) -> dp_accounting.DpEvent:
    """:func:`to_dp_event`; with ``expand_rr=False`` a repeated randomized
    response stays a ``SelfComposedDpEvent`` (for this module's accountants,
    which handle its count)."""
    out = []
    for e in _as_list(events):
        if isinstance(e, dp_accounting.DpEvent):
            out.append(e)
            continue
        base = _single_dp_event(e)
        if e.count == 1:
            out.append(base)
        elif expand_rr and isinstance(e, RandomizedResponseEvent):
            if e.count > _MAX_RR_COPIES:
                raise ValueError(
                    f"Expected count <= {_MAX_RR_COPIES} for a RandomizedResponseEvent in "
                    f"to_dp_event (it is expanded into count copies, as stock dp_accounting's "
                    f"PLD ignores its count), got count={e.count}; epsilon_pld, delta_pld and "
                    "epsilon_rdp take any count."
                )
            out.append(dp_accounting.ComposedDpEvent([base] * int(e.count)))
        else:
            out.append(dp_accounting.SelfComposedDpEvent(base, int(e.count)))
    if not out:
        return dp_accounting.NoOpDpEvent()
    return out[0] if len(out) == 1 else dp_accounting.ComposedDpEvent(out)


def _leaves(ev: dp_accounting.DpEvent):
    if isinstance(ev, (dp_accounting.SelfComposedDpEvent, _RepeatedRandomizedResponseDpEvent)):
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


# PLD work limits. dp_accounting builds dense arrays over the privacy-loss
# grid: a Gaussian (or subsampled Gaussian) PLD costs ~1.3 µs per point to
# build, a self-composition ~0.3 µs and ~60 bytes per point of its result
# (FFTs). Past _PLD_MAX_POINTS = 2**24 points in all (≈ 5 s, ≈ 1 GiB) or
# _PLD_MAX_BUILD = 2**22 points of Gaussian PLDs to build (≈ 5 s) the
# accountant refuses instead of running for minutes or exhausting memory (a
# Gaussian with σ = 1 composed 1e9 times asked for 72.8 TiB).
_PLD_MAX_POINTS = 1 << 24
_PLD_MAX_BUILD = 1 << 22
# dp_accounting truncates the Gaussian at log-mass −50, i.e. ±√100 = ±10 sd.
_PLD_GAUSSIAN_SD = 10.0
# Its Chernoff truncation of self-compositions (pld_pmf, tail mass 1e-15).
_PLD_TAIL_MASS = 1e-15
# Noise multipliers above this are composed as this one (a smaller σ only
# adds privacy loss, so the result stays an upper bound): dp_accounting
# overflows near σ = 1e154, and the loss is below 1e-100 here anyway.
_PLD_MAX_NOISE = 1e100
# e^ε overflows in dp_accounting's from_privacy_parameters beyond ε ≈ 709.
_PLD_MAX_PURE_EPSILON = 700.0


def _chernoff_length(u: np.ndarray, mass: np.ndarray, n1: float, count: int) -> float:
    """Length of dp_accounting's dense PMF after ``count``-fold self-composition.

    Mirrors ``dp_accounting.pld.common.compute_self_convolve_bounds``: a PMF
    on ``n1`` grid points, Chernoff bounds at orders ±j/n1 (j = 1..20) with
    tail mass 1e-15. The single PMF is described by its normalised loss
    positions ``u`` in [0, 1] and their masses (exact for two- and three-point
    losses, a fine quadrature for continuous ones).
    """
    if count == 1:
        return n1
    log_tail = math.log(2.0 / _PLD_TAIL_MASS)
    scale = (n1 - 1.0) / n1
    upper, lower = (n1 - 1.0) * count, 0.0
    for j in range(1, 21):
        for sgn in (1.0, -1.0):
            log_mgf = float(special.logsumexp(sgn * j * u * scale, b=mass))
            bound = (count * log_mgf + log_tail) * n1 / (sgn * j)
            if not math.isfinite(bound):
                continue
            if sgn > 0:
                upper = min(upper, math.ceil(bound))
            else:
                lower = max(lower, math.floor(bound))
    return max(upper - lower + 1.0, n1)


def _two_point(p_high: float) -> tuple[np.ndarray, np.ndarray]:
    return np.array([0.0, 1.0]), np.array([1.0 - p_high, p_high])


def _pld_build_points(leaf: dp_accounting.DpEvent, count: int, interval: float) -> float:
    """Grid points of the Gaussian-type PLD dp_accounting builds point by point."""
    if isinstance(leaf, dp_accounting.GaussianDpEvent):
        return _pld_points(leaf, count, interval)
    if isinstance(leaf, dp_accounting.PoissonSampledDpEvent) and isinstance(
        leaf.event, dp_accounting.GaussianDpEvent
    ):
        return _pld_points(leaf, 1, interval)
    return 0.0


def _pld_points(leaf: dp_accounting.DpEvent, count: int, interval: float) -> float:
    """Estimated grid points of one leaf's PLD composed ``count`` times (0 if unknown).

    Within ~30% of dp_accounting 0.6.0's actual sizes (tests compare them).
    """
    if isinstance(leaf, dp_accounting.GaussianDpEvent):
        if leaf.noise_multiplier == 0:
            return 0.0
        # dp_accounting composes k Gaussians as one with σ/√k; its loss
        # r·x − r²/2 spans r² + 2·10·r over x in [−10, r + 10] (measured:
        # 2.9e6 points at r = 10, 1.2e8 at r = 100, grid 1e-4).
        r = math.sqrt(count) / min(float(leaf.noise_multiplier), _PLD_MAX_NOISE)
        return (r * r + 2.0 * _PLD_GAUSSIAN_SD * r) / interval + 1.0
    if isinstance(leaf, _RepeatedRandomizedResponseDpEvent):
        return _pld_points(leaf.event, count * int(leaf.count), interval)
    if isinstance(leaf, dp_accounting.RandomizedResponseDpEvent):
        p, k = float(leaf.noise_parameter), int(leaf.num_buckets)
        if p == 0.0 or k == 1:
            return 0.0
        eps0 = math.log1p(k * (1.0 - p) / p)
        u = np.array([1.0, 0.0, 0.5])
        mass = np.array([1.0 - p + p / k, p / k, max(0.0, (k - 2.0) * p / k)])
        return _chernoff_length(u, mass, 2.0 * eps0 / interval + 1.0, count)
    if isinstance(leaf, PureEpsilonDpEvent):
        eps0 = float(leaf.epsilon)
        u, mass = _two_point(float(special.expit(eps0)))
        return _chernoff_length(u, mass, 2.0 * eps0 / interval + 1.0, count)
    if isinstance(leaf, dp_accounting.LaplaceDpEvent) or (
        isinstance(leaf, dp_accounting.PoissonSampledDpEvent)
        and isinstance(leaf.event, dp_accounting.LaplaceDpEvent)
    ):
        lap = leaf if isinstance(leaf, dp_accounting.LaplaceDpEvent) else leaf.event
        if lap.noise_multiplier == 0:
            return 0.0
        eps0 = 1.0 / float(lap.noise_multiplier)
        # Loss of Laplace(0, b) vs shift 1: +ε0 w.p. ½, −ε0 w.p. e^{−ε0}/2,
        # linear in between: a two-point bound on its spread is close enough.
        u, mass = _two_point(0.5 / (0.5 + 0.5 * math.exp(-eps0)))
        return _chernoff_length(u, mass, 2.0 * eps0 / interval + 1.0, count)
    if isinstance(leaf, dp_accounting.PoissonSampledDpEvent) and isinstance(
        leaf.event, dp_accounting.GaussianDpEvent
    ):
        q, nm = float(leaf.sampling_probability), float(leaf.event.noise_multiplier)
        if q == 0.0 or nm == 0.0:
            return 0.0
        nm = min(nm, _PLD_MAX_NOISE)
        if nm < 1e-50:  # the loss spans ≈ 1/(2σ²) > 1e99 nats: far past any cap
            return math.inf
        # Loss L(x) = log(1 − q + q e^{(2x − 1)/(2σ²)}) on x ∈ [−10σ, 1 + 10σ]
        # under the mixture (remove) and under N(0, σ²) (add: −L).
        x = np.linspace(-_PLD_GAUSSIAN_SD * nm, 1.0 + _PLD_GAUSSIAN_SD * nm, 2001)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            loss = np.logaddexp(math.log1p(-q) if q < 1.0 else -np.inf,
                                math.log(q) + (2.0 * x - 1.0) / (2.0 * nm * nm))
            width = float(loss.max() - loss.min())
            if not (width > 0.0 and math.isfinite(width)):
                return 1.0 if width == 0.0 else math.inf
            u = (loss - loss.min()) / width
            base = -0.5 * (x / nm) ** 2
            shifted = -0.5 * ((x - 1.0) / nm) ** 2
            w_add = np.exp(base - base.max())
            w_rem = (1.0 - q) * np.exp(base - base.max()) + q * np.exp(shifted - base.max())
        n1 = width / interval + 1.0
        return max(
            _chernoff_length(u, w_rem / w_rem.sum(), n1, count),
            _chernoff_length(1.0 - u, w_add / w_add.sum(), n1, count),
        )
    return 0.0  # other events: dp_accounting's own limits apply


def _check_pld_size(ev: dp_accounting.DpEvent, interval: float) -> None:
    """Raises before dp_accounting allocates more than the PLD work limits."""
    total = build = 0.0
    for leaf, c in _merged_leaf_counts(ev):
        total += _pld_points(leaf, c, interval)
        build += _pld_build_points(leaf, c, interval)
    if total > _PLD_MAX_POINTS or build > _PLD_MAX_BUILD:
        what, cap = (total, "2**24 in all") if total > _PLD_MAX_POINTS else (
            build, "2**22 for Gaussian PLDs, built point by point")
        raise ValueError(
            f"The PLD of these events needs about {what:.3g} grid points at "
            f"value_discretization_interval={interval:g}, more than the cap ({cap}; "
            f"about {total * 60 / 2**30:.3g} GiB and minutes of work): use a coarser "
            "value_discretization_interval, or the RDP route "
            "(epsilon_rdp, rdp_curve); a composition of Gaussians alone is exactly one "
            "Gaussian (mechanisms.gaussian_epsilon at sigma = (sum of sigma_i^-2)^-1/2), "
            "and k pure-DP uses are exact in mechanisms.pure_dp_composition_epsilon."
        )


class _PLDAccountant(dp_accounting.pld.PLDAccountant):
    """dp_accounting's PLD accountant plus pure DP, repeated RR and huge σ.

    * :class:`PureEpsilonDpEvent`: a pure event repeated ``count`` times (its
      own count, times every enclosing ``SelfComposedDpEvent``'s) composes
      the PLD of the dominating randomized-response pair,
      ``from_privacy_parameters((ε, 0))`` (losses ±ε with probabilities
      e^ε/(1+e^ε), 1/(1+e^ε), rounded up to the grid), self-composed
      ``count`` times. ε above 700 (where dp_accounting's e^ε overflows) is
      refused.
    * :class:`_RepeatedRandomizedResponseDpEvent`: the randomized-response PLD
      self-composed ``count`` times in one step (the stock path ignores the
      count).
    * Gaussian noise multipliers (plain or Poisson-sampled) above 1e100 are
      composed as 1e100: an upper bound (less noise), where dp_accounting
      would overflow near 1e154.

    Everything else is the parent's code.
    """

    def _maybe_compose(self, event, count, do_compose):
        pld_lib = dp_accounting.pld.privacy_loss_distribution
        if isinstance(event, PureEpsilonDpEvent):
            if float(event.epsilon) > _PLD_MAX_PURE_EPSILON:
                return dp_accounting.privacy_accountant.PrivacyAccountant.CompositionErrorDetails(
                    invalid_event=event,
                    error_message=(
                        f"epsilon={float(event.epsilon)} above {_PLD_MAX_PURE_EPSILON} "
                        "overflows dp_accounting's PLD (e^epsilon); use "
                        "mechanisms.pure_dp_composition_epsilon or epsilon_rdp"
                    ),
                )
            if do_compose:
                pure = pld_lib.from_privacy_parameters(
                    dp_accounting.pld.common.DifferentialPrivacyParameters(
                        float(event.epsilon), 0.0
                    ),
                    value_discretization_interval=self._value_discretization_interval,
                )
                self._pld = self._pld.compose(pure.self_compose(int(count)))
            return None
        if isinstance(event, _RepeatedRandomizedResponseDpEvent):
            rr, total = event.event, int(count) * int(event.count)
            error = super()._maybe_compose(rr, 1, False)  # relation check
            if error is not None or not do_compose:
                return error
            if rr.num_buckets == 1 or rr.noise_parameter == 0:
                return super()._maybe_compose(rr, 1, True)  # no-op / not private
            rr_pld = pld_lib.from_randomized_response(
                noise_parameter=rr.noise_parameter,
                num_buckets=rr.num_buckets,
                value_discretization_interval=self._value_discretization_interval,
                neighboring_relation=self.neighboring_relation,
            )
            self._pld = self._pld.compose(rr_pld.self_compose(total))
            return None
        if (
            isinstance(event, dp_accounting.GaussianDpEvent)
            and count > 0  # supports() probes with count 0
            and event.noise_multiplier / math.sqrt(count) > _PLD_MAX_NOISE
        ):
            event = dp_accounting.GaussianDpEvent(_PLD_MAX_NOISE * math.sqrt(count))
        if (
            isinstance(event, dp_accounting.PoissonSampledDpEvent)
            and isinstance(event.event, dp_accounting.GaussianDpEvent)
            and event.event.noise_multiplier > _PLD_MAX_NOISE
        ):
            event = dp_accounting.PoissonSampledDpEvent(
                event.sampling_probability, dp_accounting.GaussianDpEvent(_PLD_MAX_NOISE)
            )
        return super()._maybe_compose(event, count, do_compose)


# Noise multipliers outside this range break dp_accounting's RDP formulas.
_RDP_NOISE_RANGE = (1e-100, 1e100)


def _extreme_gaussian(event) -> tuple[float | None, float] | None:
    """(q or None, σ) of a (Poisson-sampled) Gaussian leaf whose noise
    multiplier is outside :data:`_RDP_NOISE_RANGE`; None otherwise."""
    q = None
    if isinstance(event, dp_accounting.PoissonSampledDpEvent) and isinstance(
        event.event, dp_accounting.GaussianDpEvent
    ):
        q, event = float(event.sampling_probability), event.event
        if q == 0.0:
            return None
    if not isinstance(event, dp_accounting.GaussianDpEvent):
        return None
    nm = float(event.noise_multiplier)
    lo, hi = _RDP_NOISE_RANGE
    return (q, nm) if nm > 0.0 and not lo <= nm <= hi else None


class _RdpAccountant(dp_accounting.rdp.RdpAccountant):
    """dp_accounting's RDP accountant plus :class:`PureEpsilonDpEvent` and extreme σ.

    Gaussian leaves (plain or Poisson-sampled) with a noise multiplier outside
    [1e-100, 1e100], where dp_accounting's formulas divide by zero or
    overflow, add this package's curve of the same event
    (:func:`~dpunlearn.accounting.rdp.gaussian_rdp`,
    :func:`~dpunlearn.accounting.rdp.subsampled_gaussian_rdp`) instead.
    The curve of a pure event is dp_accounting's own randomized-response RDP
    (``REPLACE_ONE``) of the dominating pair, noise parameter 2/(1 + e^ε) and
    two buckets, times ``count``; that pair dominates every (ε, 0)-DP
    mechanism under any relation, so the curve is added whatever this
    accountant's relation is. For ε above 700, where that noise parameter
    underflows to 0 (dp_accounting would report a non-private release), our
    own curve of the same pair (:func:`~dpunlearn.accounting.rdp.pure_dp_rdp`,
    at most ε at every order) is added instead.
    """

    def _maybe_compose(self, event, count, do_compose):
        extreme = _extreme_gaussian(event)
        if extreme is not None:
            # dp_accounting divides by σ² (ZeroDivisionError for σ = 1e-300,
            # OverflowError for σ = 1e300): our curve of the same event, with
            # the same support check (the relation) as dp_accounting's.
            q, nm = extreme
            probe = dp_accounting.GaussianDpEvent(1.0)
            if q is not None:
                probe = dp_accounting.PoissonSampledDpEvent(q, probe)
            error = super()._maybe_compose(probe, count, False)
            if error is not None or not do_compose:
                return error
            orders = np.asarray(self.orders, np.float64)
            if q is None:
                curve = rdp_lib.gaussian_rdp(orders, nm)
            else:
                curve = rdp_lib.subsampled_gaussian_rdp(orders, q, nm)
            with np.errstate(over="ignore"):
                self._rdp = self._rdp + int(count) * curve
            return None
        if isinstance(event, PureEpsilonDpEvent):
            if do_compose:
                eps = float(event.epsilon)
                if eps > _PLD_MAX_PURE_EPSILON:
                    curve = rdp_lib.pure_dp_rdp(np.asarray(self.orders, np.float64), eps)
                else:
                    noise = 2.0 * float(special.expit(-eps))  # 2/(1 + e^ε), no overflow
                    rr = dp_accounting.RandomizedResponseDpEvent(noise, 2)
                    curve = (
                        dp_accounting.rdp.RdpAccountant(
                            orders=list(self.orders),
                            neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE,
                        )
                        .compose(rr)
                        .rdp
                    )
                self._rdp = self._rdp + int(count) * np.asarray(curve)
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


# Coarsest PLD grid step accepted: dp_accounting computes e^step − 1, which
# overflows near 710; steps above a few nats make the PLD meaningless anyway.
_PLD_MAX_INTERVAL = 10.0


def _pld_accountant(events, neighboring_relation, value_discretization_interval):
    _validate.positive(value_discretization_interval=value_discretization_interval)
    if not float(value_discretization_interval) <= _PLD_MAX_INTERVAL:
        raise ValueError(
            f"Expected value_discretization_interval={float(value_discretization_interval)} "
            f"<= {_PLD_MAX_INTERVAL} (the PLD grid step, in nats)."
        )
    ev = _guard_rr_counts(_to_dp_event(events, expand_rr=False))
    if any(isinstance(x, dp_accounting.SampledWithoutReplacementDpEvent) for x in _leaves(ev)):
        raise ValueError(
            "PLDAccountant cannot account for SampledWithoutReplacementGaussianEvent "
            "(SampledWithoutReplacementDpEvent): dp_accounting 0.6.0 has no PLD for "
            "sampling without replacement; use epsilon_rdp or rdp_curve."
        )
    _check_pld_size(ev, float(value_discretization_interval))
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
      value_discretization_interval: PLD grid step in (0, 10]; finer is
        tighter and slower.

    Returns:
      ε ≥ 0 as a Python float.

    Raises:
      ValueError: For ``delta`` outside [0, 1), an unknown relation, an
        event the accountant cannot handle (message names the sub-event), a
        PLD grid beyond the work limits (module docstring; the message names
        ``value_discretization_interval``), or total counts beyond 2**53.
      TypeError: For something that is not an event.

    Guarantees:
      An upper bound up to dp_accounting's discretisation and truncation
      (about 1e-4 in ε for the default grid; ``docs/accounting.md`` §6). Not our
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
    ev = _to_dp_event(events, expand_rr=False)  # dp_accounting's RDP respects RR counts
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
