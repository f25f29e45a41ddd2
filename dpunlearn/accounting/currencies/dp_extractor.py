"""DP feature extractor + certified-removal head (Guo et al. 2020, §4.3): group privacy."""


from __future__ import annotations

import dataclasses
import math
from typing import Literal, NamedTuple


from dpunlearn import _validate
from dpunlearn.accounting import _guards, mechanisms

from dpunlearn.accounting.currencies._common import (
    CertificateReport,
    _check_count,
    _check_delta,
    _epsilon_report,
    _largest_int,
)
from dpunlearn.accounting.currencies.certified_removal import (
    CertifiedRemovalConfig,
    CertifiedRemovalState,
    RetrainScheduleConfig,
    RetrainScheduleState,
    cr_init,
    cr_report,
    cr_update,
    schedule_report,
)

__all__ = [
    "extractor_head_epsilon",
    "extractor_max_removals",
    "ExtractorHeadConfig",
    "ExtractorHeadState",
    "extractor_init",
    "extractor_update",
    "extractor_reset",
    "extractor_report",
]

# ---------------------------------------------------------------------------
# (f) DP feature extractor + certified-removal head
# ---------------------------------------------------------------------------


def extractor_head_epsilon(
    num_removed: int,
    *,
    extractor_epsilon: float,
    extractor_delta: float,
    head_epsilon: float,
    head_delta: float,
) -> tuple[float, float]:
    """(ε, δ) for k removals from a DP extractor followed by a CR head.

    (kε_DP + ε_CR, k·e^{(k−1)ε_DP}·δ_DP + δ_CR): group privacy on the
    (ε_DP, δ_DP)-DP extractor (Dwork & Roth 2014, Thm 2.2) composed additively
    with the head's certified removal (Guo et al. 2020, §4.3;
    ``docs/accounting.md`` §1). k = 0 gives the head alone.

    Guarantees:
      Certified (generic group privacy; not tight for Gaussian extractors).
    """
    _validate.positive(extractor_epsilon=extractor_epsilon, head_epsilon=head_epsilon)
    _validate.non_negative(head_delta=head_delta, extractor_delta=extractor_delta)
    for name, value in (("extractor_delta", extractor_delta), ("head_delta", head_delta)):
        if float(value) >= 1.0:
            raise ValueError(f"Expected {name}={float(value)} in the interval [0, 1).")
    _check_count("num_removed", num_removed)
    if num_removed == 0:
        return float(head_epsilon), float(head_delta)
    ke, kd = mechanisms.group_privacy(
        extractor_epsilon, extractor_delta, int(num_removed)
    )
    return ke + float(head_epsilon), min(1.0, kd + float(head_delta))


def extractor_max_removals(
    *,
    extractor_epsilon: float,
    extractor_delta: float,
    head_epsilon: float,
    head_delta: float,
    target_epsilon: float,
    target_delta: float,
) -> int:
    """Largest k with :func:`extractor_head_epsilon` ≤ (target ε, target δ).

    Uses the never-overshoot integer :func:`calibrate` on the monotone
    violation max(ε/ε_target, δ/δ_target). Searched up to 2**53 (returned
    if even that many removals fit).
    """
    _validate.positive(target_epsilon=target_epsilon, extractor_epsilon=extractor_epsilon)
    _check_delta(target_delta)

    def ratio(k: int) -> float:
        e, d = extractor_head_epsilon(
            int(k),
            extractor_epsilon=extractor_epsilon,
            extractor_delta=extractor_delta,
            head_epsilon=head_epsilon,
            head_delta=head_delta,
        )
        return max(e / target_epsilon, d / target_delta)

    if ratio(0) > 1.0:
        raise ValueError(
            f"Expected head_epsilon={head_epsilon} <= target_epsilon={target_epsilon}"
            f" and head_delta={head_delta} <= target_delta={target_delta}."
        )
    # kε_DP ≤ ε_target bounds k; the ratio can overflow to inf (a float ≥ 2**53).
    bound = float(target_epsilon) / float(extractor_epsilon)
    hi = math.floor(bound) + 1 if bound < _guards.MAX_COUNT else _guards.MAX_COUNT
    hi = min(hi, _guards.MAX_COUNT)
    return max(0, _largest_int(ratio, 1.0, lo=0, hi=hi))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExtractorHeadConfig:
    """A DP extractor in front of a Guo et al. CR head.

    Attributes:
      extractor_epsilon, extractor_delta: (ε_DP, δ_DP) of the extractor.
      head: The head's certificate, (ε_CR, δ_CR) its ``epsilon``, ``delta``:
        a :class:`RetrainScheduleConfig` (shadow heads decide when to retrain,
        sound) or a :class:`CertifiedRemovalConfig` (Algorithm 2's residual
        budget, whose retrain decision looks at the head's secret noise).
      target_epsilon, target_delta: Total (ε, δ) every release must certify.
    """

    extractor_epsilon: float
    extractor_delta: float
    head: CertifiedRemovalConfig | RetrainScheduleConfig
    target_epsilon: float
    target_delta: float

    def __post_init__(self):
        _validate.positive(
            extractor_epsilon=self.extractor_epsilon, target_epsilon=self.target_epsilon
        )
        _validate.non_negative(extractor_delta=self.extractor_delta)
        if self.extractor_delta >= 1.0:
            raise ValueError(
                f"Expected extractor_delta={self.extractor_delta} in [0, 1)."
            )
        _check_delta(self.target_delta)
        if not isinstance(self.head, (CertifiedRemovalConfig, RetrainScheduleConfig)):
            raise ValueError(
                "Expected head to be a RetrainScheduleConfig or a CertifiedRemovalConfig."
            )


class ExtractorHeadState(NamedTuple):
    """Removed points the extractor saw (the group size k), and the head's CR state."""

    num_removed: int = 0
    head: CertifiedRemovalState | RetrainScheduleState = CertifiedRemovalState()


def extractor_init(config: ExtractorHeadConfig | None = None) -> ExtractorHeadState:
    """State after training extractor and head (a schedule head: no mark yet)."""
    if config is not None and isinstance(config.head, RetrainScheduleConfig):
        return ExtractorHeadState(0, RetrainScheduleState())
    return ExtractorHeadState()


def extractor_update(
    state: ExtractorHeadState,
    residual_bound: float,
    num_removed: int = 1,
    *,
    extractor_removed: int | None = None,
    shadows_exceeded: int | None = None,
) -> ExtractorHeadState:
    """k ← k + removed; the head's β ← β + βᵢ (or, for a schedule head, its
    count of marked shadows ← ``shadows_exceeded``).

    ``extractor_removed`` (default ``num_removed``): how many of the removed
    rows the extractor was trained on. Rows it never saw (a head trained on
    other rows than the extractor) cost the head's β only, not group privacy.
    """
    if extractor_removed is None:
        extractor_removed = num_removed
    _check_count("extractor_removed", extractor_removed)
    if extractor_removed > num_removed:
        raise ValueError(
            f"Expected extractor_removed={extractor_removed} <= removed={num_removed}."
        )
    if isinstance(state.head, RetrainScheduleState):
        if shadows_exceeded is None:
            raise ValueError("Expected shadows_exceeded for a schedule head.")
        head = RetrainScheduleState(
            int(shadows_exceeded), state.head.num_removed + int(num_removed)
        )
    else:
        head = cr_update(state.head, residual_bound, num_removed)
    return ExtractorHeadState(state.num_removed + int(extractor_removed), head)


def extractor_reset(
    state: ExtractorHeadState, *, scope: Literal["full", "head"] = "full"
) -> ExtractorHeadState:
    """Retrain. ``"full"`` (extractor and head from scratch) resets everything;
    ``"head"`` only resets β: the extractor still saw the removed points, so
    the group size k is kept."""
    if scope == "full":
        return extractor_init()
    if scope == "head":
        if isinstance(state.head, RetrainScheduleState):
            return ExtractorHeadState(state.num_removed, RetrainScheduleState())
        return ExtractorHeadState(state.num_removed, cr_init())
    raise ValueError(f"Expected scope in ('full', 'head'), got {scope!r}.")


def extractor_report(
    state: ExtractorHeadState, config: ExtractorHeadConfig
) -> CertificateReport:
    """(U) certificate: the head must be within β_max and the composed (ε, δ)
    within the target. ``used``/``budget`` are in ε."""
    if isinstance(config.head, RetrainScheduleConfig):
        head = schedule_report(state.head, config.head)
    else:
        head = cr_report(state.head, config.head)
    eps, dlt = extractor_head_epsilon(
        state.num_removed,
        extractor_epsilon=config.extractor_epsilon,
        extractor_delta=config.extractor_delta,
        head_epsilon=config.head.epsilon,
        head_delta=config.head.delta,
    )
    if not head.certified:
        eps = math.inf
    ok = head.certified and eps <= config.target_epsilon and dlt <= config.target_delta
    return _epsilon_report(
        "dp_extractor", eps, dlt, config.target_epsilon, certified=ok
    )


def _prepare(params: dict) -> dict:
    p = dict(params)
    head = dict(p.get("head") or {})
    if head.get("rule") != "schedule":
        head = {"method": "analytic", **head}
    p["head"] = head
    return p


def _register():
    from dpunlearn.accounting.currencies.certified_removal import _exceeded, _residual_bound
    from dpunlearn.accounting.currencies.registry import (
        Currency,
        check_keys,
        register,
        removed_count,
    )

    def config(params, eps, delta):
        p = dict(params)
        check_keys("params", p, {"extractor_epsilon", "extractor_delta", "head"})
        head = dict(p.pop("head", {}) or {})
        if head.get("rule") == "schedule":
            head.pop("rule")
            check_keys(
                "params.head",
                head,
                {"epsilon", "delta", "num_shadows", "delta_noise", "delta_schedule",
                 "confidence"},
            )
            head_config = RetrainScheduleConfig(**head)
        else:
            head.pop("rule", None)
            check_keys("params.head", head, {"sigma", "epsilon", "delta", "method"})
            head.setdefault("method", "paper")  # ledgers written before the default changed
            head_config = CertifiedRemovalConfig(**head)
        return ExtractorHeadConfig(
            head=head_config,
            target_epsilon=eps,
            target_delta=delta,
            **p,
        )

    def request(cfg, state, entry):
        removed = removed_count(entry)
        if isinstance(cfg.head, RetrainScheduleConfig):
            return extractor_update(
                state,
                0.0,
                removed,
                extractor_removed=entry.get("extractor_removed", removed),
                shadows_exceeded=_exceeded(entry, cfg.head, state.head.num_exceeded),
            )
        return extractor_update(
            state,
            _residual_bound(entry, None),
            removed,
            extractor_removed=entry.get("extractor_removed", removed),
        )

    def train(cfg, entry):
        state = extractor_init(cfg)
        if isinstance(cfg.head, RetrainScheduleConfig) and "shadows_exceeded" in entry:
            state = ExtractorHeadState(
                0, RetrainScheduleState(_exceeded(entry, cfg.head), 0)
            )
        return state

    def retrain(cfg, state, entry):
        new = extractor_reset(state, scope=entry.get("scope", "full"))
        if isinstance(cfg.head, RetrainScheduleConfig):
            count = _exceeded(entry, cfg.head) if "shadows_exceeded" in entry else 0
            new = ExtractorHeadState(new.num_removed, RetrainScheduleState(count, 0))
        return new

    def from_charge(charge):
        if not bool(getattr(charge, "valid", True)):
            raise ValueError(
                "Refusing to record the charge of an invalid request: the model was "
                "left unchanged (check the request against the mask)."
            )
        fields = {"removed": int(charge.num_removed)}
        if int(getattr(charge, "num_shadows", 0)) > 0:
            fields["shadows_exceeded"] = int(charge.num_exceeded)
        else:
            fields["residual_bound"] = float(charge.residual_bound)
        extractor_removed = getattr(charge, "num_extractor_removed", None)
        if extractor_removed is not None:
            fields["extractor_removed"] = int(extractor_removed)
        return fields

    register(
        Currency(
            name="dp_extractor",
            config=config,
            request_keys=frozenset(
                {"removed", "residual_bound", "extractor_removed", "shadows_exceeded"}
            ),
            train_keys=frozenset({"scope", "shadows_exceeded"}),
            initial=extractor_init,
            train=train,
            request=request,
            retrain=retrain,
            report=lambda cfg, state, eps, delta: extractor_report(state, cfg),
            budget=lambda cfg: (
                {"head_delta_schedule": cfg.head.delta_schedule}
                if isinstance(cfg.head, RetrainScheduleConfig)
                else {"head_residual_budget": cfg.head.budget}
            ),
            from_charge=from_charge,
            prepare=_prepare,
        )
    )


_register()
