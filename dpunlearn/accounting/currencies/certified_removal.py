"""Guo et al. certified removal: two currencies of one ledger name.

* ``rule="schedule"`` (the default of a new ledger; sound): a model is
  released only while the shadow models of
  :mod:`dpunlearn.retrain_schedule`, which never look at the secret
  perturbation, certify it; entries carry how many shadows are marked, and the
  ledger recomputes the Clopper–Pearson bound and refuses past ``δ′``.
* ``rule="paper"`` (Algorithm 2 of Guo et al., ICML 2020; **not certified**,
  kept for reproductions and for ledgers written before the schedule): β, the
  sum of residual bounds, against the budget of a Gaussian mechanism. It
  decides on β(b), which depends on the secret b (``docs/certified_removal.md``).

A ledger configuration without ``rule`` is a legacy paper-rule ledger and
replays exactly as written (its budget method then defaults to ``"paper"``,
the default of that time); everywhere else the budget method defaults to the
analytic Gaussian one.
"""


from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from dpunlearn import _validate
from dpunlearn.accounting import mechanisms
from dpunlearn.accounting.calibration import calibrate

from dpunlearn.accounting.currencies._common import (
    CertificateReport,
    _check_delta,
)

__all__ = [
    "cr_constant",
    "cr_budget",
    "cr_epsilon",
    "cr_sigma",
    "supported_removals",
    "CertifiedRemovalConfig",
    "CertifiedRemovalState",
    "cr_init",
    "cr_update",
    "cr_reset",
    "cr_report",
    "RetrainScheduleConfig",
    "RetrainScheduleState",
    "schedule_report",
]

# ---------------------------------------------------------------------------
# (a) Guo et al. certified removal
# ---------------------------------------------------------------------------


def cr_constant(delta: float) -> float:
    """c = √(2 ln(1.5/δ)) of Guo et al. (2020), Theorem 3 / Algorithm 2.

    Loss perturbation b ~ N(0, σ²I) with σ = cε′/ε gives (ε, δ)-certified
    removal for residual norm ε′, with δ = 1.5·e^{−c²/2}.

    Args:
      delta: δ in (0, 1).

    Returns:
      c > 0.
    """
    _check_delta(delta)
    # log(1.5/δ) without forming 1.5/δ, which overflows for subnormal δ.
    return math.sqrt(2.0 * (math.log(1.5) - math.log(float(delta))))


def cr_budget(
    *,
    sigma: float,
    epsilon: float,
    delta: float,
    method: Literal["paper", "analytic"] = "analytic",
) -> float:
    """Total gradient-residual budget β_max of Guo et al.'s Algorithm 2.

    Guo et al. (2020, Theorem 3, Algorithm 2) call a model whose accumulated
    (sum-form) residual bound β is ≤ β_max (ε, δ)-certified-removal. That is a
    Gaussian-mechanism argument for a *fixed* shift; the residual depends on
    the secret b, so β ≤ β_max alone is not a certificate (see
    :func:`dpunlearn.certified.removal_epsilon`). The package-wide default is
    the analytic budget:

    * ``method="paper"``: β_max = σε/c with c = √(2 ln(1.5/δ)). Valid only for
      ε ≤ 1 (Dwork & Roth 2014, Thm A.1: the classic calibration understates ε above 1); larger ε raises.
    * ``method="analytic"``: the largest β with the exact Gaussian δ
      (Balle & Wang 2018, Thm 8) of sensitivity β and noise σ at most δ; it is
      found by never-overshoot bisection and holds for any ε > 0.

    Args:
      sigma: Std σ > 0 of the loss perturbation b.
      epsilon: Target ε > 0.
      delta: Target δ in (0, 1).
      method: ``"paper"`` or ``"analytic"``.

    Returns:
      β_max > 0, in sum-form gradient-norm units (the objective Σℓ + (λn/2)‖w‖² + bᵀw of Guo et al., eq. 1; a mean-form bound is n′ times smaller).

    Raises:
      ValueError: On out-of-range arguments, naming the argument.

    Guarantees:
      A Gaussian mechanism with sensitivity ≤ the returned β_max and noise σ is
      (ε, δ)-DP; ``"analytic"`` never returns a β whose exact δ exceeds δ.

    Example:
      >>> round(cr_budget(sigma=10.0, epsilon=1.0, delta=1e-4, method="paper"), 3)
      2.28
      >>> round(cr_budget(sigma=10.0, epsilon=1.0, delta=1e-4), 3)
      3.139
    """
    _validate.positive(sigma=sigma, epsilon=epsilon)
    _check_delta(delta)
    sigma, epsilon, delta = float(sigma), float(epsilon), float(delta)
    if method == "paper":
        if epsilon > 1.0:
            raise ValueError(
                f"Expected epsilon={epsilon} <= 1 for method='paper' (the classic "
                "calibration understates epsilon above 1); use method='analytic'."
            )
        return sigma * epsilon / cr_constant(delta)
    if method == "analytic":

        def delta_at(beta: float) -> float:
            return mechanisms.gaussian_delta(epsilon, sigma=sigma, sensitivity=beta)

        hi = sigma
        while delta_at(hi) <= delta:
            hi *= 2.0
        lo = hi
        while delta_at(lo) > delta:
            lo *= 0.5
        return float(calibrate(delta_at, delta, lo=lo, hi=hi, increasing=True))
    raise ValueError(f"Expected method in ('paper', 'analytic'), got {method!r}.")


def cr_epsilon(
    residual: float,
    *,
    sigma: float,
    delta: float,
    method: Literal["paper", "analytic"] = "paper",
) -> float:
    """ε certified by a model with accumulated residual bound β = ``residual``.

    ``"paper"``: ε = cβ/σ (returns ``inf`` when that exceeds 1, where the
    classic calibration is not valid). ``"analytic"``: exact Gaussian ε at
    sensitivity β (0 when β = 0).

    Guarantees:
      Certified: the model is (returned ε, δ)-CR.
    """
    _validate.non_negative(residual=residual)
    _validate.positive(sigma=sigma)
    _check_delta(delta)
    if float(residual) / float(sigma) == 0.0:  # (also when the ratio underflows)
        return 0.0
    if method == "paper":
        eps = cr_constant(delta) * float(residual) / float(sigma)
        return eps if eps <= 1.0 else math.inf
    if method == "analytic":
        return mechanisms.gaussian_epsilon(delta, sigma=sigma, sensitivity=residual)
    raise ValueError(f"Expected method in ('paper', 'analytic'), got {method!r}.")


def cr_sigma(
    residual_budget: float,
    *,
    epsilon: float,
    delta: float,
    method: Literal["paper", "analytic"] = "paper",
) -> float:
    """Smallest loss-perturbation σ whose budget covers ``residual_budget``.

    ``"paper"``: σ = cβ/ε (Guo et al. 2020, Theorem 3; ε ≤ 1).
    ``"analytic"``: the analytic-Gaussian σ at sensitivity β.

    Guarantees:
      Certified: ``cr_budget(sigma=result, ...) >= residual_budget`` up to
      float rounding of the closed form (analytic: never undershoots).
    """
    _validate.positive(residual_budget=residual_budget, epsilon=epsilon)
    _check_delta(delta)
    if method == "paper":
        if epsilon > 1.0:
            raise ValueError(
                f"Expected epsilon={epsilon} <= 1 for method='paper'; use "
                "method='analytic'."
            )
        return cr_constant(delta) * float(residual_budget) / float(epsilon)
    if method == "analytic":
        return mechanisms.gaussian_sigma_analytic(epsilon, delta, residual_budget)
    raise ValueError(f"Expected method in ('paper', 'analytic'), got {method!r}.")


def supported_removals(bounds: Sequence[float] | np.ndarray, budget: float) -> int:
    """Number of leading removals whose cumulative residual bound fits the budget.

    The first k with ``cumsum(bounds)[k] > budget`` (Guo et al. 2020,
    Algorithm 2; how the paper's Fig. 1 counts supported removals). Vectorised.

    Args:
      bounds: Per-removal residual-norm bounds βᵢ ≥ 0, shape ``[T]``.
      budget: β_max ≥ 0 (e.g. from :func:`cr_budget`).

    Returns:
      k in [0, T].
    """
    b = np.asarray(bounds, dtype=np.float64)
    _validate.ndim("bounds", b, 1)
    _validate.finite_array("bounds", b)
    if np.any(b < 0):
        raise ValueError(f"Expected bounds >= 0, found {float(b.min())}.")
    _validate.non_negative(budget=budget)
    return int(np.searchsorted(np.cumsum(b), float(budget), side="right"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class CertifiedRemovalConfig:
    """Constants of a Guo et al. certified-removal model.

    Attributes:
      sigma: Loss-perturbation std σ > 0 (sum form).
      epsilon: Certified ε > 0.
      delta: Certified δ in (0, 1).
      method: ``"paper"`` (β_max = σε/c) or ``"analytic"``.
    """

    sigma: float
    epsilon: float
    delta: float
    method: Literal["paper", "analytic"] = "analytic"

    def __post_init__(self):
        _validate.positive(sigma=self.sigma, epsilon=self.epsilon)
        _check_delta(self.delta)
        if self.method not in ("paper", "analytic"):
            raise ValueError(
                f"Expected method in ('paper', 'analytic'), got {self.method!r}."
            )
        cr_budget(
            sigma=self.sigma, epsilon=self.epsilon, delta=self.delta, method=self.method
        )  # raises for paper with epsilon > 1

    @property
    def budget(self) -> float:
        return cr_budget(
            sigma=self.sigma, epsilon=self.epsilon, delta=self.delta, method=self.method
        )


class CertifiedRemovalState(NamedTuple):
    """Residual bound β of the current model, and the points removed since the
    last (re)training.

    ``β`` is the certified bound on the (sum-form) gradient residual of the
    released model on the remaining data: the training residual of the last
    (re)training plus every removal's bound since (:func:`cr_update` with
    ``mode="add"``), or the current step's bound alone (``mode="set"``).
    """

    residual: float = 0.0
    num_removed: int = 0


def _training_residual(value: float) -> float:
    _validate.non_negative(training_residual=value)
    return float(value)


def cr_init(training_residual: float = 0.0) -> CertifiedRemovalState:
    """State right after training (or a retrain) with a fresh perturbation b.

    Args:
      training_residual: β of the trained model before any removal: the
        training solver's leftover sum-form gradient norm plus its rounding
        allowance (``dpunlearn.certified.CertifiedState.training_residual``).
        0 (the default) only for an exact minimiser; a certified model's β
        does not start at 0.

    Raises:
      ValueError: if ``training_residual`` is negative or not finite.
    """
    return CertifiedRemovalState(_training_residual(training_residual), 0)


_CR_MODES = ("add", "set")


def cr_update(
    state: CertifiedRemovalState,
    residual_bound: float,
    num_removed: int = 1,
    *,
    mode: Literal["add", "set"] = "add",
) -> CertifiedRemovalState:
    """One removal's residual-norm bound, added to β or replacing it.

    * ``mode="add"`` (default; Guo et al., Algorithm 2): β ← β + βᵢ, where βᵢ
      is the step's bound *increment*: the sum-form data-dependent bound of the
      Newton step plus any solver residual (Guo et al. 2020, Algorithm 2;
      ``RemovalInfo.bound_increment``). The residual left by training and the
      earlier steps is carried over, so the bounds add up.
    * ``mode="set"``: β ← βᵢ, where βᵢ bounds the *whole* residual of the
      released model on its own (the residual-correcting Newton step,
      ``dpunlearn.certified.remove(..., correct_residual=True)``, whose
      ``RemovalInfo.cumulative_bound`` is the current step's bound: the step
      cancels the residual carried over). Only sound for such a bound: a
      step that does not cancel the carried-over residual must use ``"add"``.

    No budget check here: see :func:`cr_report` (or the ledger, which refuses).

    Raises:
      ValueError: ``residual_bound`` negative or not finite, ``num_removed``
        not an integer >= 1, ``mode`` not ``"add"`` or ``"set"``.
    """
    _validate.non_negative(residual_bound=residual_bound)
    _validate.positive_int(num_removed=num_removed)
    if mode not in _CR_MODES:
        raise ValueError(f"Expected mode in {_CR_MODES}, got {mode!r}.")
    bound = float(residual_bound)
    beta = bound if mode == "set" else state.residual + bound
    return CertifiedRemovalState(beta, state.num_removed + int(num_removed))


def cr_reset(
    state: CertifiedRemovalState, training_residual: float = 0.0
) -> CertifiedRemovalState:
    """Full retrain with a fresh b: β ← the new model's training residual
    (0 by default, for an exact minimiser)."""
    del state
    return cr_init(training_residual)


def cr_report(
    state: CertifiedRemovalState, config: CertifiedRemovalConfig
) -> CertificateReport:
    """(U) certificate: certified iff β ≤ β_max; ε, δ are the configured ones."""
    budget = config.budget
    ok = state.residual <= budget
    eps = (
        min(
            cr_epsilon(
                state.residual,
                sigma=config.sigma,
                delta=config.delta,
                method=config.method,
            ),
            config.epsilon,
        )
        if ok
        else math.inf
    )
    return CertificateReport(
        "certified_removal",
        ok,
        eps,
        config.delta,
        state.residual,
        budget,
        budget - state.residual,
        "residual_norm",
    )




# ---------------------------------------------------------------------------
# The sound currency: the retrain schedule's shadow counts.
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class RetrainScheduleConfig:
    """Constants of the shadow-model retrain schedule (:mod:`dpunlearn.retrain_schedule`).

    Attributes:
      epsilon: ε every released model carries.
      delta: The total δ = ``delta_noise + delta_schedule + confidence``.
      num_shadows: ``M``, the shadow models.
      delta_noise: δ_E of the pointwise bound's noise event.
      delta_schedule: δ′, the allowed probability that a shadow is marked.
      confidence: η, the failure probability of the Clopper–Pearson bound.
    """

    epsilon: float
    delta: float
    num_shadows: int
    delta_noise: float
    delta_schedule: float
    confidence: float

    def __post_init__(self):
        _validate.positive(epsilon=self.epsilon)
        _validate.positive_int(num_shadows=self.num_shadows)
        for name in ("delta", "delta_noise", "delta_schedule", "confidence"):
            _check_delta(getattr(self, name))
        parts = self.delta_noise + self.delta_schedule + self.confidence
        if parts > self.delta * (1 + 1e-9):
            raise ValueError(
                f"Expected delta_noise + delta_schedule + confidence = {parts:.6g} <= "
                f"delta = {self.delta:.6g}."
            )

    @classmethod
    def from_target(cls, target) -> "RetrainScheduleConfig":
        """From a :class:`dpunlearn.retrain_schedule.ScheduleTarget`."""
        return cls(
            epsilon=target.epsilon,
            delta=target.delta,
            num_shadows=target.num_shadows,
            delta_noise=target.delta_noise,
            delta_schedule=target.delta_schedule,
            confidence=target.confidence,
        )


class RetrainScheduleState(NamedTuple):
    """Shadows marked since the last (re)training, and rows removed since."""

    num_exceeded: int = 0
    num_removed: int = 0


def _exceeded(entry, config: RetrainScheduleConfig, at_least: int = 0) -> int:
    value = entry.get("shadows_exceeded")
    if value is None:
        raise ValueError("Expected shadows_exceeded in the entry (the schedule's count).")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"Expected shadows_exceeded to be an integer, got {value!r}.")
    if not at_least <= value <= config.num_shadows:
        raise ValueError(
            f"Expected shadows_exceeded in [{at_least}, {config.num_shadows}] (marks "
            f"never disappear before a retrain), got {value}."
        )
    return int(value)


def schedule_report(
    state: RetrainScheduleState, config: RetrainScheduleConfig
) -> CertificateReport:
    """(U): certified iff the Clopper–Pearson bound on the marked fraction is ≤ δ′."""
    from dpunlearn import stats

    upper = stats.clopper_pearson_upper(
        state.num_exceeded, config.num_shadows, config.confidence
    )
    ok = upper <= config.delta_schedule
    return CertificateReport(
        "certified_removal",
        ok,
        config.epsilon if ok else math.inf,
        config.delta,
        upper,
        config.delta_schedule,
        config.delta_schedule - upper,
        "exceed_probability",
    )


def _cr_config(params, eps: float, delta: float):
    from dpunlearn.accounting.currencies.registry import check_keys

    p = dict(params)
    rule = p.pop("rule", None)
    if rule == "schedule":
        check_keys(
            "params", p, {"num_shadows", "delta_noise", "delta_schedule", "confidence"}
        )
        return RetrainScheduleConfig(epsilon=eps, delta=delta, **p)
    if rule not in (None, "paper"):
        raise ValueError(f"Expected params.rule in ('schedule', 'paper'), got {rule!r}.")
    check_keys("params", p, {"sigma", "method"})
    if rule is None:  # a ledger written before the schedule: as it was written
        p.setdefault("method", "paper")
    return CertifiedRemovalConfig(epsilon=eps, delta=delta, **p)


def _residual_bound(entry, default):
    if "residual_bound" not in entry:
        if default is None:
            raise ValueError("Expected residual_bound in a certified_removal request.")
        return default
    try:
        value = float(entry["residual_bound"])
    except (TypeError, ValueError):
        raise ValueError(
            f"Expected residual_bound to be a number, got {entry['residual_bound']!r}."
        ) from None
    _validate.non_negative(residual_bound=value)
    return value


_RESIDUAL_MODES = ("add", "set")


def _residual_mode(entry) -> str:
    mode = entry.get("residual_mode", "add")
    if mode not in _RESIDUAL_MODES:
        raise ValueError(
            f"Expected residual_mode in {_RESIDUAL_MODES} ('add': beta += bound, "
            f"Algorithm 2; 'set': beta = bound, residual-correcting step), "
            f"got {mode!r}."
        )
    return mode


def _cr_initial(config):
    if isinstance(config, RetrainScheduleConfig):
        return RetrainScheduleState()
    return cr_init()


def _cr_train(config, entry):
    if isinstance(config, RetrainScheduleConfig):
        return RetrainScheduleState(_exceeded(entry, config), 0)
    return cr_init(_residual_bound(entry, 0.0))


def _cr_request(config, state, entry):
    from dpunlearn.accounting.currencies.registry import removed_count

    removed = removed_count(entry)
    if isinstance(config, RetrainScheduleConfig):
        return RetrainScheduleState(
            _exceeded(entry, config, state.num_exceeded), state.num_removed + removed
        )
    return cr_update(state, _residual_bound(entry, None), removed, mode=_residual_mode(entry))


def _cr_retrain(config, state, entry):
    if isinstance(config, RetrainScheduleConfig):
        # A retrain trains new shadows; a refusal's "what would a retrain
        # give" asks with no count, and a fresh model with no mark is the
        # best case.
        count = _exceeded(entry, config) if "shadows_exceeded" in entry else 0
        return RetrainScheduleState(count, 0)
    return cr_reset(state, _residual_bound(entry, 0.0))


def _cr_report(config, state, eps, delta):
    if isinstance(config, RetrainScheduleConfig):
        return schedule_report(state, config)
    return cr_report(state, config)


def _cr_budget(config) -> dict:
    if isinstance(config, RetrainScheduleConfig):
        return {"delta_schedule": config.delta_schedule}
    return {"residual_budget": config.budget}


def _cr_prepare(params: dict) -> dict:
    """New ledgers: the rule and the budget method are written explicitly."""
    p = dict(params)
    if "rule" not in p:
        if "sigma" in p:
            raise ValueError(
                "A certified_removal ledger with a residual budget (params.sigma) is "
                "Guo et al.'s Algorithm 2, whose retrain decision looks at the secret "
                "perturbation and is not certified: pass params.rule='paper' to keep "
                "it anyway, or the retrain schedule's params (rule='schedule', "
                "num_shadows, delta_noise, delta_schedule, confidence; see "
                "RetrainScheduleConfig.from_target)."
            )
        p["rule"] = "schedule"
    if p["rule"] == "paper":
        p.setdefault("method", "analytic")
    return p


def _cr_from_charge(charge) -> dict:
    """Entry fields from a :class:`dpunlearn.methods.certified_removal` charge."""
    fields = {"removed": int(charge.num_removed)} if int(charge.num_removed) else {}
    if int(charge.num_shadows) > 0:
        fields["shadows_exceeded"] = int(charge.num_exceeded)
    else:
        fields["residual_bound"] = float(charge.residual_bound)
        fields["residual_mode"] = "set"
    return fields


def _register():
    from dpunlearn.accounting.currencies.registry import Currency, register

    register(
        Currency(
            name="certified_removal",
            config=_cr_config,
            request_keys=frozenset(
                {"removed", "residual_bound", "residual_mode", "shadows_exceeded"}
            ),
            train_keys=frozenset({"residual_bound", "shadows_exceeded"}),
            initial=_cr_initial,
            train=_cr_train,
            request=_cr_request,
            retrain=_cr_retrain,
            report=_cr_report,
            budget=_cr_budget,
            from_charge=_cr_from_charge,
            prepare=_cr_prepare,
        )
    )


_register()
