"""Guo et al. certified removal: the residual-norm currency (Algorithm 2) and the retrain-schedule currency."""


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
    return math.sqrt(2.0 * math.log(1.5 / float(delta)))


def cr_budget(
    *,
    sigma: float,
    epsilon: float,
    delta: float,
    method: Literal["paper", "analytic"] = "paper",
) -> float:
    """Total gradient-residual budget β_max of a Guo et al. certified-removal model.

    While the accumulated (sum-form) residual-norm bound β stays ≤ β_max the
    released model is (ε, δ)-certified-removal (Guo et al. 2020, Algorithm 2;
    ``algorithms.md`` §1.5):

    * ``method="paper"``: β_max = σε/c with c = √(2 ln(1.5/δ)). Valid only for
      ε ≤ 1 (``algorithms.md`` §11.7); larger ε raises.
    * ``method="analytic"``: the largest β with the exact Gaussian δ
      (Balle & Wang 2018, Thm 8) of sensitivity β and noise σ at most δ; it is
      found by never-overshoot bisection and holds for any ε > 0.

    Args:
      sigma: Std σ > 0 of the loss perturbation b.
      epsilon: Target ε > 0.
      delta: Target δ in (0, 1).
      method: ``"paper"`` or ``"analytic"``.

    Returns:
      β_max > 0, in sum-form gradient-norm units (``algorithms.md`` §11.1).

    Raises:
      ValueError: On out-of-range arguments, naming the argument.

    Guarantees:
      Certified: a model whose residual bound is ≤ the returned β_max is
      (ε, δ)-CR. ``"analytic"`` never returns a β whose exact δ exceeds δ.

    Example:
      >>> round(cr_budget(sigma=10.0, epsilon=1.0, delta=1e-4), 3)
      2.28
      >>> round(cr_budget(sigma=10.0, epsilon=1.0, delta=1e-4, method="analytic"), 3)
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
      sigma: Loss-perturbation std σ > 0 (sum form, ``algorithms.md`` §11).
      epsilon: Certified ε > 0.
      delta: Certified δ in (0, 1).
      method: ``"paper"`` (β_max = σε/c) or ``"analytic"``.
    """

    sigma: float
    epsilon: float
    delta: float
    method: Literal["paper", "analytic"] = "paper"

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
      Newton step plus any solver residual (``algorithms.md`` §1.5, §11.5;
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
    (0 by default, for an exact minimiser; ``accountants.md`` §5.7)."""
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


