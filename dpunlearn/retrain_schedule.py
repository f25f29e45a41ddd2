"""When to retrain a certified-removal model, decided without looking at the secret.

Guo et al.'s Algorithm 2 retrains once the accumulated bound ``β(b)`` passes
the budget. ``β`` depends on the secret perturbation ``b``, so the decision
does too: the released models never come from the region of ``b`` where a
retrain would have fired, and the released distribution over-weights the rest
by about the retrain probability. In one dimension (20 identical rows,
``λn = 2``, ``σ = 20``, budget at the 99th percentile of ``β``) the claimed
``δ = 1e-4`` is in truth about ``1e-2`` (``tests/test_retrain_schedule.py``
computes it by quadrature).

The rule here decides from the data, the requests and *independent*
randomness only. ``M`` shadow models are trained with fresh keys and follow
the live model's requests (one ``vmap`` of :func:`dpunlearn.certified.train`
and :func:`~dpunlearn.certified.remove`). Each shadow computes the pointwise
``ε̄`` its own ``b`` would certify (:func:`dpunlearn.certified.removal_epsilon`)
and is marked once ``ε̄ > ε``. Let ``p_t`` be the probability, over ``b``,
that a model is marked by request ``t``. The live model keeps serving while
the one-sided Clopper–Pearson bound on ``p_t`` at confidence ``1 − η`` is at
most ``δ′``, and is retrained (with a fresh key, and new shadows) otherwise.

Guarantee (derivation in ``docs/certified_removal.md``). For non-adaptive
requests, every released model ``U_t`` satisfies, for all sets ``S``,
``P(U_t ∈ S) <= e^ε P(R_t ∈ S) + δ`` with ``R_t`` retraining on the remaining
data and ``δ = δ_E + δ′ + η + δ_round``: on the noise event (``δ_E``) and
unmarked ``b`` the privacy loss is at most ``ε``; ``b`` is marked with
probability ``p_t <= δ′`` unless the estimate failed; and because the counts
are monotone in ``t``, serving past the first ``t*`` with ``p_{t*} > δ′``
needs the single Clopper–Pearson failure at ``t*`` (probability ``<= η``).

Cost: ``M + 1`` trainings per (re)training and ``M + 1`` removals per
request. ``δ′`` cannot be certified below ``1 − η^{1/M} ≈ ln(1/η)/M``, so a
target ``δ = 1e-4`` needs ``M`` in the hundreds of thousands; small problems
afford it, large ones trade ``δ`` for ``M`` (:func:`min_shadows`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn import _sharding, certified, removal_certificate, stats
from dpunlearn.certified import CertifiedState
from dpunlearn.types import Array, ArrayLike, PRNGKey

__all__ = [
    "RetrainSchedule",
    "ScheduleTarget",
    "ScheduleVerdict",
    "advance",
    "init",
    "init_shadows",
    "make_target",
    "min_shadows",
    "paper_rule_uncertified",
    "plan",
    "update",
    "verdict",
]


#: Shadows vmapped together (the rest of the M are mapped over in chunks of
#: this size): bounds the memory of the Newton temporaries.
SHADOW_BATCH = 1024

#: The mesh axis the shadows are split over, when the context mesh
#: (``jax.set_mesh``) has it and its size divides ``M``
#: (:func:`dpunlearn._sharding.map_models`).
MODEL_AXIS = "model"


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class ScheduleTarget:
    """The certificate a schedule maintains. Static.

    Attributes:
      epsilon: ``ε`` of every released model.
      delta: Total ``δ = delta_noise + delta_schedule + confidence`` (plus the
        float32 rounding failure, reported by the verdict).
      delta_noise: ``δ_E``, the noise event of the pointwise bound.
      delta_schedule: ``δ′``, the allowed probability that ``ε̄ > ε``.
      confidence: ``η``, the failure probability of the Clopper–Pearson bound.
      num_shadows: ``M``.
    """

    epsilon: float
    delta: float
    delta_noise: float
    delta_schedule: float
    confidence: float
    num_shadows: int


def min_shadows(delta_schedule: float, confidence: float) -> int:
    """Smallest ``M`` whose zero-exceedance Clopper–Pearson bound is ``<= δ′``."""
    return int(math.ceil(math.log(confidence) / math.log1p(-delta_schedule)))


def make_target(
    epsilon: float,
    delta: float,
    num_shadows: int,
    *,
    noise_share: float = 0.5,
    confidence_share: float = 0.1,
) -> ScheduleTarget:
    """Splits ``delta`` into the noise event, ``δ′`` and the estimate's ``η``.

    ``δ_E = noise_share·δ``, ``η = confidence_share·δ``, ``δ′`` the rest.

    Raises:
      ValueError: if ``num_shadows`` cannot certify ``δ′`` even with no
        exceedance (the message says how many would).
    """
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError(f"Expected epsilon={epsilon} > 0 (finite).")
    if not (0 < delta < 1):
        raise ValueError(f"Expected delta={delta} in the open interval (0, 1).")
    if not (0 < noise_share and 0 < confidence_share and noise_share + confidence_share < 1):
        raise ValueError(
            "Expected noise_share > 0, confidence_share > 0 and their sum < 1, got "
            f"{noise_share}, {confidence_share}."
        )
    if isinstance(num_shadows, bool) or int(num_shadows) != num_shadows or num_shadows < 1:
        raise ValueError(f"Expected num_shadows={num_shadows!r} to be an integer >= 1.")
    dn, eta = noise_share * delta, confidence_share * delta
    ds = delta - dn - eta
    need = min_shadows(ds, eta)
    if num_shadows < need:
        raise ValueError(
            f"Expected num_shadows >= {need}: with {num_shadows} shadows the "
            f"Clopper–Pearson bound at confidence 1 − {eta:.3g} cannot go below "
            f"{1 - eta ** (1 / num_shadows):.3g} > δ′ = {ds:.3g} even with no "
            f"exceedance. Raise num_shadows or delta."
        )
    return ScheduleTarget(
        epsilon=float(epsilon),
        delta=float(delta),
        delta_noise=dn,
        delta_schedule=ds,
        confidence=eta,
        num_shadows=int(num_shadows),
    )


class RetrainSchedule(NamedTuple):
    """Shadow models that decide, from the data alone, when to retrain. A pytree.

    Attributes:
      shadows: ``M`` certified states stacked on a leading axis (fresh keys,
        same data, configuration, λ and σ as the live model).
      exceeded: ``bool[M]``, shadows whose ``ε̄`` passed ``ε`` since training.
      target: The static :class:`ScheduleTarget`.
    """

    shadows: CertifiedState
    exceeded: Array
    target: ScheduleTarget


class ScheduleVerdict(NamedTuple):
    """Whether the live model may be released after this request.

    Attributes:
      certified: ``True``: release; ``False``: retrain first.
      num_exceeded: Shadows marked so far. num_shadows: ``M``.
      exceed_upper: Clopper–Pearson upper bound on ``p_t`` at ``1 − η``.
      epsilon: The certified ``ε``.
      delta: The certified ``δ`` (``δ_E + δ′ + η`` plus the largest float32
        rounding failure among the shadows).
    """

    certified: bool
    num_exceeded: int
    num_shadows: int
    exceed_upper: float
    epsilon: float
    delta: float


def _event(state_like: CertifiedState, target: ScheduleTarget):
    n = state_like.mask.shape[-1]
    return removal_certificate.noise_event(
        target.delta_noise, num_rows=n, num_heads=state_like.config.num_heads
    )


def _first_shadow(schedule: RetrainSchedule) -> CertifiedState:
    """Shadow 0 (its configuration and shapes stand for all of them); on every
    device when the shadows are split over a mesh axis."""
    return jax.tree.map(lambda a: _sharding.index(a, 0), schedule.shadows)


def _epsilons(shadows: CertifiedState, event, dim: int) -> Array:
    """``ε̄`` of every shadow (vectorised :func:`certified.pointwise_epsilon`)."""
    del dim  # each state knows its own dimension
    return jax.vmap(lambda s: certified.pointwise_epsilon(s, event))(shadows)


def _verdict(schedule: RetrainSchedule) -> ScheduleVerdict:
    t = schedule.target
    k = int(np.sum(np.asarray(schedule.exceeded)))
    upper = stats.clopper_pearson_upper(k, t.num_shadows, t.confidence)
    rounding = float(np.max(np.asarray(schedule.shadows.rounding_failure)))
    return ScheduleVerdict(
        certified=bool(upper <= t.delta_schedule),
        num_exceeded=k,
        num_shadows=t.num_shadows,
        exceed_upper=upper,
        epsilon=t.epsilon,
        delta=t.delta_noise + t.delta_schedule + t.confidence + rounding,
    )


def init_shadows(
    key: PRNGKey,
    like: CertifiedState,
    X: ArrayLike,
    y: ArrayLike,
    target: ScheduleTarget,
) -> RetrainSchedule:
    """Trains the ``M`` shadows of a (re)trained live model. Jittable.

    Args:
      key: Fresh randomness, independent of the live model's key (split it
        off before training the live model, never reuse it).
      like: The live model right after (re)training: its mask, λ, σ and
        configuration are copied, never its perturbation.
      X, y: The training data.
      target: From :func:`make_target`.
    """
    keys = jax.random.split(key, target.num_shadows)
    X = jnp.asarray(X)
    yl = certified._labels(like, y)
    # lax.map in vmapped chunks: a vmap over 3·10⁵ shadows would hold every
    # shadow's n × d Newton temporaries at once.
    # On a mesh with a "model" axis the chunks are split over it.
    shadows = _sharding.map_models(
        lambda k: certified._train_impl(
            k, X, yl, like.mask, like.lam, like.sigma, config=like.config
        )[0],
        keys,
        batch_size=SHADOW_BATCH,
        axis=MODEL_AXIS,
    )
    exceeded = _epsilons(shadows, _event(like, target), _dim(like)) > target.epsilon
    return RetrainSchedule(shadows=shadows, exceeded=exceeded, target=target)


def advance(schedule: RetrainSchedule, idx, X, y) -> tuple[RetrainSchedule, Array]:
    """Applies one request to every shadow; returns the schedule and the number
    of marked shadows. Jittable (no host checks: see :func:`update`)."""
    first = _first_shadow(schedule)
    X = jnp.asarray(X)
    yl = certified._labels(first, y)
    cg_tol = certified._cg_tol(first, X)
    digest = certified._cached_digest(X)
    shadows, infos = _sharding.map_models(
        lambda s: certified._remove_impl(s, jnp.atleast_1d(idx), X, yl, digest, cg_tol),
        schedule.shadows,
        batch_size=SHADOW_BATCH,
        axis=MODEL_AXIS,
    )
    eps = _epsilons(shadows, _event(first, schedule.target), _dim(first))
    exceeded = schedule.exceeded | (eps > schedule.target.epsilon) | ~infos.valid
    new = RetrainSchedule(shadows=shadows, exceeded=exceeded, target=schedule.target)
    return new, jnp.sum(exceeded)


def verdict(num_exceeded: int, target: ScheduleTarget, rounding_failure: float = 0.0):
    """The host-side decision from a count of marked shadows (Clopper–Pearson)."""
    k = int(num_exceeded)
    upper = stats.clopper_pearson_upper(k, target.num_shadows, target.confidence)
    return ScheduleVerdict(
        certified=bool(upper <= target.delta_schedule),
        num_exceeded=k,
        num_shadows=target.num_shadows,
        exceed_upper=upper,
        epsilon=target.epsilon,
        delta=target.delta_noise + target.delta_schedule + target.confidence
        + float(rounding_failure),
    )


def _verdict(schedule: RetrainSchedule) -> ScheduleVerdict:
    return verdict(
        int(np.sum(np.asarray(schedule.exceeded))),
        schedule.target,
        float(np.max(np.asarray(schedule.shadows.rounding_failure))),
    )


def init(
    key: PRNGKey,
    like: CertifiedState,
    X: ArrayLike,
    y: ArrayLike,
    target: ScheduleTarget,
) -> tuple[RetrainSchedule, ScheduleVerdict]:
    """:func:`init_shadows` with host checks, and the verdict on the fresh model
    (a training residual too large for ``ε`` is caught here)."""
    certified._check_features(X)
    schedule = init_shadows(key, like, X, y, target)
    return schedule, _verdict(schedule)


def update(
    schedule: RetrainSchedule, idx: ArrayLike, X: ArrayLike, y: ArrayLike
) -> tuple[RetrainSchedule, ScheduleVerdict]:
    """Applies one request to every shadow and says whether to keep serving.

    Call it with the request *before* releasing the live model's update; on
    ``verdict.certified == False`` retrain the live model on the remaining
    rows with a fresh key and :func:`init` new shadows.
    """
    first = _first_shadow(schedule)
    # Host checks once (indices, data), on the first shadow: all share the mask.
    flat = certified._validate_request(first, idx, X, y, name="idx")
    new, _ = advance(schedule, jnp.asarray(np.atleast_1d(flat)), X, y)
    return new, _verdict(new)


def _dim(state: CertifiedState) -> int:
    return int(np.prod(state.params.shape[-2:] if state.config.num_classes else state.params.shape[-1:]))


class Plan(NamedTuple):
    """How many planned requests a schedule serves before it must retrain.

    Attributes:
      supported: Leading requests whose release is certified.
      exceed_counts: Shadows marked after each request ``[T]``.
      exceed_upper: Clopper–Pearson bounds ``[T]``.
      epsilons: ``ε̄`` of every shadow after every request ``[T, M]``.
      target: The target.
    """

    supported: int
    exceed_counts: np.ndarray
    exceed_upper: np.ndarray
    epsilons: np.ndarray
    target: ScheduleTarget


def plan(
    key: PRNGKey,
    like: CertifiedState,
    X: ArrayLike,
    y: ArrayLike,
    requests: ArrayLike,
    target: ScheduleTarget,
) -> Plan:
    """Runs the schedule over a known request sequence ``[T, k]`` in one scan.

    Equivalent to :func:`init` then :func:`update` per request, but compiled
    as one ``vmap`` over shadows of one ``lax.scan`` over requests; the
    Clopper–Pearson bounds are computed afterwards on the host.
    """
    schedule, verdict0 = init(key, like, X, y, target)
    first = _first_shadow(schedule)
    certified._validate_request(first, np.asarray(requests), X, y, name="idx_batches")
    X = jnp.asarray(X)
    yl = certified._labels(first, y)
    reqs = jnp.asarray(requests)
    cg_tol = certified._cg_tol(first, X)
    digest = certified._cached_digest(X)
    _, infos = _sharding.map_models(
        lambda s: certified._remove_sequence_impl(s, reqs, X, yl, digest, cg_tol),
        schedule.shadows,
        batch_size=SHADOW_BATCH,
        axis=MODEL_AXIS,
    )
    event = _event(first, target)
    dim = _dim(first)
    sigma = schedule.shadows.sigma[:, None]
    eps = removal_certificate.pointwise_epsilon(
        sigma=sigma,
        beta=infos.cumulative_bound,
        remainder_mass=infos.remainder_mass,
        unstructured=infos.unstructured_bound,
        logdet=infos.logdet_bound,
        row_norm=schedule.shadows.row_norm_bound[:, None],
        dim=dim,
        event=event,
    )
    marked = (eps > target.epsilon) | ~infos.valid
    marked = np.logical_or.accumulate(
        np.concatenate([np.asarray(schedule.exceeded)[:, None], np.asarray(marked)], 1),
        axis=1,
    )[:, 1:]
    counts = marked.sum(axis=0)
    upper = np.array(
        [stats.clopper_pearson_upper(int(c), target.num_shadows, target.confidence) for c in counts]
    )
    ok = upper <= target.delta_schedule
    supported = 0 if not verdict0.certified else int(np.argmin(ok)) if not ok.all() else len(ok)
    return Plan(
        supported=supported,
        exceed_counts=counts,
        exceed_upper=upper,
        epsilons=np.asarray(eps).T,
        target=target,
    )


def paper_rule_uncertified(state: CertifiedState, budget: float) -> bool:
    """Guo et al.'s Algorithm 2 test, ``β(b) <= budget``. **Not certified.**

    The decision depends on the secret ``b`` (see the module docstring); it is
    kept for reproductions and for measuring how much it leaks.
    """
    return bool(state.grad_residual_bound <= budget)
