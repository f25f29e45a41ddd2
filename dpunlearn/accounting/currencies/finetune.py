"""Certified noisy fine-tuning (Koloskova, Allouah, Jha, Guerraoui, Koyejo, ICML 2025).

The unlearning procedure (:func:`dpunlearn.methods.certified_finetune`) clips
the current model to the ball of radius ``C₀`` and runs ``T`` noisy steps on
the rows that remain. It is certified against **retraining on the remaining
rows, then the same procedure**; the two runs share the retained data, so the
steps are the same random map in both and they differ only in where they
start (two points of the ``C₀`` ball). Nothing accumulates across requests:
every request starts again from a clipped model, whatever the model it comes
from, so every request is certified at the same (ε, δ) and a retrain is
never required. Two variants, two accountants (derivations in
``docs/finetune.md``):

**Gradient clipping (privacy amplification by iteration, PABI).** Steps
``θ ← θ − η(clip_{C₁}(g(θ)) + λθ) + N(0, σ²I)`` with ``ρ = 1 − ηλ``. With

    S = 2C₀ρ^T + 2ηC₁·Σ_{j<T} ρ^j,    W = Σ_{j<T} ρ^{2j},    R = S²/(2σ²W),

the Rényi divergence between the two laws after ``T`` steps is at most
``α·R`` **at every order** α > 1, in both directions. Proof (Feldman,
Mironov, Talwar, Thakurta 2018, shifted Rényi divergences): the map
``φ(θ) = ρθ − η·clip(g(θ))`` satisfies ``‖φ(x) − φ(y)‖ ≤ ρ‖x − y‖ + 2ηC₁``
for ANY loss (no convexity), so by coupling and post-processing
``D^{(ρz + 2ηC₁)}(φ#μ‖φ#ν) ≤ D^{(z)}(μ‖ν)``; the Gaussian shift reduction
``D^{(z)}(μ∗N‖ν∗N) ≤ D^{(z+a)}(μ‖ν) + αa²/(2σ²)`` spends ``a_t`` per step;
starting at ``z₀ = 2C₀`` (the ball's diameter, divergence 0) and ending at
``z_T = 0`` forces ``Σ_t ρ^{T−1−t}a_t = S``, and Cauchy–Schwarz gives the
cheapest allocation ``a_t ∝ ρ^{T−1−t}``, costing ``αR``. For constant σ the
intermediate shifts of that allocation stay ``>= 0`` (required by the shift
lemmas; :func:`pabi_allocation` checks any schedule). ``α·R`` is exactly
the Rényi divergence of two Gaussians ``S/√W·σ`` apart, so it is attained
when the gradient term vanishes (a linear loss with ``C₁ → 0``): the bound
is tight. Conversion to (ε, δ) keeps the order:
``ε = min_α αR + ln(1 − 1/α) − (ln δ + ln α)/(α − 1)`` (Canonne, Kamath &
Steinke 2020, Prop. 12), i.e. R-zCDP converted by
:func:`dpunlearn.accounting.mechanisms.zcdp_to_dp`.

*The authors' code* (stair-lab/certified-unlearning-neural-networks-icml-2025,
``trainer.py``) computes the same ``S`` and, for λ > 0, the same σ; but
(i) for λ = 0 it sets ``σ² = S²/(4RT)`` where the derivation (and the λ → 0
limit of its own λ > 0 branch, and its own tracker ``S²/(2Σσ_t²)``) gives
``S²/(2RT)``: its σ is √2 too small and delivers ``2R``, the factor 2; and
(ii) its conversion ``min_α R + ln(1 − 1/α) − (ln δ + ln α)/(α − 1)`` drops
the α multiplying R: at R = 1, δ = 1e-5 it reports ε = 1.004 where the bound
gives 7.077 (tests show the exact δ at its ε far above the target).

**Model clipping (contraction coefficients).** Steps
``θ ← Π_C(θ − η(∇L(θ) + λθ)) + N(0, σ²I)`` (noise after the projection onto
the ball of radius ``C``; any loss). Every step is a Gaussian kernel whose
means lie in a set of diameter ``2C``, so with ``r = 2C/σ`` the hockey-stick
divergence ``E_{e^ε}`` contracts as

    δ_{t+1} = δ_t · θ_{ε̃_t}(r),   ε̃_t = ln(1 + (e^ε − 1)/δ_t),   δ₀ = 1,

``θ_ε(r)`` the Gaussian mechanism's exact δ(ε) at sensitivity ratio ``r``
(Balle & Wang 2018; :func:`dpunlearn.accounting.mechanisms.gaussian_delta`).
Proof: write ``μ − e^ε ν = a − b`` with ``a, b >= 0`` of masses ``δ`` and
``δ + e^ε − 1``; then ``E_{e^ε}(μK‖νK) <= δ·E_{γ'}(āK‖b̄K) <= δ·sup_{x,x'}
E_{γ'}(K(x)‖K(x'))`` with ``γ' = 1 + (e^ε − 1)/δ`` (joint convexity);
``δ·θ_{ln(1+(e^ε−1)/δ)}(r)`` is non-decreasing in δ, so the recursion may
run on upper bounds. ``δ₁ = θ_ε(2C/σ)``, one Gaussian release.

All functions are host-side float64; nothing is jitted.

References:
  Koloskova, Allouah, Jha, Guerraoui, Koyejo. Certified Unlearning for Neural
  Networks. ICML 2025. https://arxiv.org/abs/2506.06985
  Feldman, Mironov, Talwar, Thakurta. Privacy Amplification by Iteration.
  FOCS 2018. https://arxiv.org/abs/1808.06651
  Asoodeh, Diaz, Calmon. Privacy amplification of iterative algorithms via
  contraction coefficients. ISIT 2020 (the E_γ contraction used here is
  re-derived in docs/finetune.md, Lemma C).
  Balle, Wang. Improving the Gaussian Mechanism for Differential Privacy.
  ICML 2018. https://arxiv.org/abs/1805.06530
  Canonne, Kamath, Steinke. The Discrete Gaussian for Differential Privacy.
  NeurIPS 2020 (Prop. 12). https://arxiv.org/abs/2004.00010
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from dpunlearn import _validate
from dpunlearn.accounting import _guards, mechanisms
from dpunlearn.accounting.currencies._common import (
    CertificateReport,
    Conversion,
    _check_conversion,
    _check_delta,
    _epsilon_report,
    _reach_target,
    _smallest_float,
)

__all__ = [
    "VARIANTS",
    "FinetuneConfig",
    "FinetuneState",
    "PabiAllocation",
    "contractive_delta",
    "contractive_epsilon",
    "contractive_log_delta",
    "contractive_min_sigma",
    "contractive_min_steps",
    "finetune_epsilon",
    "finetune_init",
    "finetune_min_sigma",
    "finetune_report",
    "finetune_reset",
    "finetune_update",
    "pabi_allocation",
    "pabi_epsilon",
    "pabi_min_sigma",
    "pabi_noise_weight",
    "pabi_rdp",
    "pabi_rdp_coefficient",
    "pabi_shift",
    "pabi_steps",
]

VARIANTS = ("gradient_clip", "model_clip")
Variant = Literal["gradient_clip", "model_clip"]

# Largest number of steps contractive_min_steps tries before giving up.
_MAX_STEPS = 10**7


# ---------------------------------------------------------------------------
# Gradient clipping: privacy amplification by iteration
# ---------------------------------------------------------------------------


def _log_rho(step_size: float, weight_decay: float) -> float:
    """ln ρ = log1p(−ηλ) after checking η > 0, λ >= 0, ηλ < 1."""
    _validate.positive(step_size=step_size)
    _validate.non_negative(weight_decay=weight_decay)
    rate = float(step_size) * float(weight_decay)
    if not rate < 1.0:
        raise ValueError(
            f"Expected step_size*weight_decay={rate} < 1 (ρ = 1 − ηλ must be in (0, 1])."
        )
    return math.log1p(-rate)


def _geometric(log_q: float, count: int) -> float:
    """Σ_{j<count} q^j from ln q <= 0, without cancellation (count for q = 1)."""
    if log_q == 0.0:
        return float(count)
    return math.expm1(count * log_q) / math.expm1(log_q)


def pabi_shift(
    *,
    init_clip: float,
    grad_clip: float,
    step_size: float,
    weight_decay: float = 0.0,
    steps: int,
) -> float:
    """``S = 2C₀ρ^T + 2ηC₁·Σ_{j<T} ρ^j``, ρ = 1 − ηλ: the total shift to absorb.

    ``2C₀ρ^T`` is the diameter of the starting ball carried through ``T``
    ρ-contractions; each step adds at most ``2ηC₁`` (two clipped gradients).
    Equals ``2C₀ρ^T + (2C₁/λ)(1 − ρ^T)`` for λ > 0 and ``2C₀ + 2ηC₁T`` for λ = 0.
    """
    _validate.positive(init_clip=init_clip, grad_clip=grad_clip)
    steps = _guards.count("steps", steps)
    log_rho = _log_rho(step_size, weight_decay)
    return 2.0 * float(init_clip) * math.exp(steps * log_rho) + 2.0 * float(
        step_size
    ) * float(grad_clip) * _geometric(log_rho, steps)


def pabi_noise_weight(
    *, step_size: float, weight_decay: float = 0.0, steps: int
) -> float:
    """``W = Σ_{j<T} ρ^{2j}`` (``T`` for λ = 0): the noise of the ``T`` steps
    seen at the end, in units of σ² (``σ²W`` is the variance of Σ_t ρ^{T−1−t}ξ_t)."""
    steps = _guards.count("steps", steps)
    return _geometric(2.0 * _log_rho(step_size, weight_decay), steps)


def pabi_rdp_coefficient(
    *,
    init_clip: float,
    grad_clip: float,
    step_size: float,
    weight_decay: float = 0.0,
    steps: int,
    sigma: float,
) -> float:
    """``R = S²/(2σ²W)``: ``D_α(unlearned ‖ retrained-then-same) <= α·R`` for every α > 1.

    ``inf`` when ``S/σ`` overflows (an honest, vacuous bound).
    """
    _validate.positive(sigma=sigma)
    s = pabi_shift(
        init_clip=init_clip,
        grad_clip=grad_clip,
        step_size=step_size,
        weight_decay=weight_decay,
        steps=steps,
    )
    w = pabi_noise_weight(step_size=step_size, weight_decay=weight_decay, steps=steps)
    ratio = s / float(sigma)
    return 0.5 * ratio * ratio / w


def pabi_rdp(orders: Sequence[float] | np.ndarray, **kw) -> np.ndarray:
    """The Rényi curve ``α·R`` at ``orders`` (α > 1), keywords as
    :func:`pabi_rdp_coefficient`. The order is never dropped."""
    a = np.asarray(orders, dtype=np.float64)
    _validate.array_in_range("orders", a, 1.0, math.inf)
    with np.errstate(over="ignore", invalid="ignore"):
        return a * pabi_rdp_coefficient(**kw)


def pabi_epsilon(
    rdp_coefficient: float, delta: float, *, conversion: Conversion = "improved"
) -> float:
    """ε at ``delta`` of the curve ``α ↦ α·R`` (R-zCDP), minimised over every α > 1.

    ``"improved"``: ``min_α αR + ln(1 − 1/α) − (ln δ + ln α)/(α − 1)``
    (Canonne, Kamath & Steinke 2020, Prop. 12); ``"classic"``:
    ``R + 2√(R ln(1/δ))`` (Bun & Steinke 2016, Prop. 1.3, the minimum of
    Mironov's ``αR + ln(1/δ)/(α − 1)``). Both through
    :func:`dpunlearn.accounting.mechanisms.zcdp_to_dp`.
    """
    _check_delta(delta)
    _check_conversion(conversion)
    r = float(rdp_coefficient)
    if math.isnan(r) or r < 0.0:
        raise ValueError(f"Expected rdp_coefficient={r} >= 0.")
    if r == 0.0:
        return 0.0
    if r == math.inf:
        return math.inf
    return mechanisms.zcdp_to_dp(r, float(delta), method=conversion)


def pabi_min_sigma(
    *,
    init_clip: float,
    grad_clip: float,
    step_size: float,
    weight_decay: float = 0.0,
    steps: int,
    target_epsilon: float,
    delta: float,
    conversion: Conversion = "improved",
) -> float:
    """Smallest constant σ whose T steps certify ``(target_epsilon, delta)``.

    Never overshoots: the returned σ certifies the target as
    :func:`pabi_epsilon` of :func:`pabi_rdp_coefficient` evaluates it, and the
    next smaller float64 does not (:func:`dpunlearn.accounting.calibration.calibrate`).
    """
    _validate.positive(target_epsilon=target_epsilon)
    _check_delta(delta)
    kw = {
        "init_clip": init_clip,
        "grad_clip": grad_clip,
        "step_size": step_size,
        "weight_decay": weight_decay,
        "steps": steps,
    }
    s = pabi_shift(**kw)
    w = pabi_noise_weight(step_size=step_size, weight_decay=weight_decay, steps=steps)
    # Seed: the classic conversion solved for R, (√(L + ε) − √L)², L = ln(1/δ).
    log_inv = -math.log(delta)
    root = float(target_epsilon) / (
        math.sqrt(log_inv + float(target_epsilon)) + math.sqrt(log_inv)
    )
    start = s / (root * math.sqrt(2.0 * w))

    def eps(sigma: float) -> float:
        return pabi_epsilon(
            pabi_rdp_coefficient(sigma=sigma, **kw), delta, conversion=conversion
        )

    return _reach_target(
        _smallest_float, eps, target_epsilon, start=start, name="sigma"
    )


def pabi_steps(*, init_clip: float, grad_clip: float, step_size: float) -> int:
    """``T = ⌈C₀/(ηC₁)⌉``: for λ = 0 it minimises R at fixed σ (the minimum of
    ``(2C₀ + 2ηC₁T)²/T`` is at ``T = C₀/(ηC₁)``); the authors' default."""
    _validate.positive(init_clip=init_clip, grad_clip=grad_clip, step_size=step_size)
    t = float(init_clip) / (float(step_size) * float(grad_clip))
    return _guards.count("steps", max(1, math.ceil(t)))


class PabiAllocation(NamedTuple):
    """The shift allocation behind :func:`pabi_rdp_coefficient`, for any σ schedule.

    Attributes:
      rdp_coefficient: ``R = S²/(2Σ_t ρ^{2(T−1−t)}σ_t²)``.
      reductions: ``a_t = S·ρ^{T−1−t}σ_t²/Σ_k ρ^{2(T−1−k)}σ_k²``, the shift each
        step's noise absorbs (cost ``αa_t²/(2σ_t²)``).
      shifts: ``z_0 = 2C₀, …, z_T = 0``, ``z_{t+1} = ρz_t + 2ηC₁ − a_t``.
      feasible: every ``z_t >= 0`` (up to rounding). The shift lemmas need it:
        with ``feasible`` False the schedule's ``R`` is NOT a certificate. A
        constant σ is always feasible; noise that decreases along the steps
        (as the authors' ``decreasing`` schedule) need not be.
    """

    rdp_coefficient: float
    reductions: np.ndarray
    shifts: np.ndarray
    feasible: bool


def pabi_allocation(
    *,
    init_clip: float,
    grad_clip: float,
    step_size: float,
    weight_decay: float = 0.0,
    sigmas: Sequence[float] | np.ndarray,
) -> PabiAllocation:
    """The Cauchy–Schwarz allocation of the shift over a σ schedule (see
    :class:`PabiAllocation`); ``sigmas[t]`` is the noise of step ``t``."""
    sig = np.asarray(sigmas, dtype=np.float64)
    if sig.ndim != 1 or sig.size == 0:
        raise ValueError(
            f"Expected sigmas to be a non-empty 1-D array, got shape {sig.shape}."
        )
    _validate.array_in_range("sigmas", sig, 0.0, math.inf)
    steps = int(sig.size)
    s = pabi_shift(
        init_clip=init_clip,
        grad_clip=grad_clip,
        step_size=step_size,
        weight_decay=weight_decay,
        steps=steps,
    )
    rho = math.exp(_log_rho(step_size, weight_decay))
    weights = rho ** np.arange(steps - 1, -1, -1, dtype=np.float64)  # ρ^{T−1−t}
    v = float(np.sum(weights**2 * sig**2))
    a = s * weights * sig**2 / v
    z = np.empty(steps + 1)
    z[0] = 2.0 * float(init_clip)
    push = 2.0 * float(step_size) * float(grad_clip)
    for t in range(steps):
        z[t + 1] = rho * z[t] + push - a[t]
    tol = 1e-9 * (z[0] + push * steps)
    return PabiAllocation(0.5 * s * s / v, a, z, bool(np.all(z >= -tol)))


# ---------------------------------------------------------------------------
# Model clipping: contraction of the hockey-stick divergence
# ---------------------------------------------------------------------------


def _check_contractive(model_clip: float, sigma: float) -> float:
    _validate.positive(model_clip=model_clip, sigma=sigma)
    return 2.0 * float(model_clip) / float(sigma)


@functools.lru_cache(maxsize=256)
def _contractive_log_delta(epsilon: float, r: float, steps: int) -> float:
    log_em1 = epsilon + math.log(-math.expm1(-epsilon))  # ln(e^ε − 1)
    log_d = 0.0  # δ₀ = 1: any two starting laws
    for _ in range(steps):
        eps_t = float(np.logaddexp(0.0, log_em1 - log_d))  # ln(1 + (e^ε − 1)/δ_t)
        log_d += mechanisms._gaussian_log_delta(eps_t, r)
        if log_d == -math.inf:
            break
    return log_d


def contractive_log_delta(
    epsilon: float, *, model_clip: float, sigma: float, steps: int
) -> float:
    """``ln δ_T`` of the model-clipping variant at ``epsilon`` (module doc).

    ``δ_{t+1} = δ_t·θ_{ε̃_t}(2C/σ)``, ``ε̃_t = ln(1 + (e^ε − 1)/δ_t)``,
    ``δ₀ = 1``; θ is :func:`dpunlearn.accounting.mechanisms.gaussian_delta`
    (in log space, so δ_T far below float64's range stays exact).
    """
    _validate.positive(epsilon=epsilon)
    steps = _guards.count("steps", steps)
    return _contractive_log_delta(
        float(epsilon), _check_contractive(model_clip, sigma), steps
    )


def contractive_delta(
    epsilon: float, *, model_clip: float, sigma: float, steps: int
) -> float:
    """``δ_T`` (see :func:`contractive_log_delta`)."""
    return math.exp(
        contractive_log_delta(epsilon, model_clip=model_clip, sigma=sigma, steps=steps)
    )


@functools.lru_cache(maxsize=64)
def _contractive_epsilon(delta: float, r: float, steps: int) -> float:
    target = math.log(delta)
    return _reach_target(
        _smallest_float,
        lambda e: _contractive_log_delta(e, r, steps),
        target,
        start=1.0,
        name="epsilon",
    )


def contractive_epsilon(
    delta: float, *, model_clip: float, sigma: float, steps: int
) -> float:
    """Smallest ε with ``δ_T(ε) <= delta`` (δ_T is non-increasing in ε), on
    the safe side: the returned ε certifies ``delta`` as evaluated."""
    _check_delta(delta)
    steps = _guards.count("steps", steps)
    return _contractive_epsilon(
        float(delta), _check_contractive(model_clip, sigma), steps
    )


def contractive_min_sigma(
    *, model_clip: float, steps: int, target_epsilon: float, delta: float
) -> float:
    """Smallest σ with ``δ_T(target_epsilon) <= delta`` (never overshoots).

    δ_T is non-increasing in σ (every factor θ_ε̃(2C/σ) is, and the recursion
    is non-decreasing in δ_t); seeded by the one-step (analytic Gaussian) σ.
    """
    _validate.positive(target_epsilon=target_epsilon, model_clip=model_clip)
    _check_delta(delta)
    steps = _guards.count("steps", steps)
    target = math.log(delta)
    start = mechanisms.gaussian_sigma_analytic(
        float(target_epsilon), float(delta), 2.0 * float(model_clip)
    )

    def log_delta(sigma: float) -> float:
        return _contractive_log_delta(
            float(target_epsilon), _check_contractive(model_clip, sigma), steps
        )

    return _reach_target(_smallest_float, log_delta, target, start=start, name="sigma")


def contractive_min_steps(
    *,
    model_clip: float,
    sigma: float,
    target_epsilon: float,
    delta: float,
    max_steps: int = _MAX_STEPS,
) -> int:
    """Smallest T with ``δ_T(target_epsilon) <= delta`` (δ_t decreases in t)."""
    _validate.positive(target_epsilon=target_epsilon)
    _check_delta(delta)
    max_steps = _guards.count("max_steps", max_steps)
    r = _check_contractive(model_clip, sigma)
    eps = float(target_epsilon)
    log_em1 = eps + math.log(-math.expm1(-eps))
    target = math.log(delta)
    log_d = 0.0
    for t in range(1, max_steps + 1):
        log_d += mechanisms._gaussian_log_delta(
            float(np.logaddexp(0.0, log_em1 - log_d)), r
        )
        if log_d <= target:
            # The same arithmetic as contractive_log_delta: it agrees.
            return t
    raise ValueError(
        f"target_epsilon={target_epsilon} unreachable: delta={delta} not reached in "
        f"{max_steps} steps with sigma={sigma}; raise sigma."
    )


# ---------------------------------------------------------------------------
# The currency
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    """Constants of a certified fine-tuning deployment (fixed at training).

    Attributes:
      variant: ``"gradient_clip"`` (PABI) or ``"model_clip"`` (contraction).
      init_clip: ``C₀``, the model clip before the noisy steps.
      step_size: ``η`` of the noisy steps.
      weight_decay: ``λ >= 0`` (``ηλ < 1``).
      grad_clip: ``C₁`` (``gradient_clip`` only).
      model_clip: ``C``, the projection radius (``model_clip`` only).
      conversion: RDP → DP conversion of the PABI bound (``"improved"`` or
        ``"classic"``; ignored by ``model_clip``).
    """

    variant: Variant = "gradient_clip"
    init_clip: float
    step_size: float
    weight_decay: float = 0.0
    grad_clip: float | None = None
    model_clip: float | None = None
    conversion: Conversion = "improved"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"Expected variant in {VARIANTS}, got {self.variant!r}.")
        _validate.positive(init_clip=self.init_clip)
        _log_rho(self.step_size, self.weight_decay)
        _check_conversion(self.conversion)
        need, other = (
            ("grad_clip", "model_clip")
            if self.variant == "gradient_clip"
            else ("model_clip", "grad_clip")
        )
        if getattr(self, need) is None:
            raise ValueError(f"variant={self.variant!r} needs {need}.")
        _validate.positive(**{need: getattr(self, need)})
        if getattr(self, other) is not None:
            raise ValueError(
                f"variant={self.variant!r} does not use {other}; leave it None."
            )

    def rdp_coefficient(self, *, steps: int, sigma: float) -> float:
        """R of the PABI bound (``gradient_clip`` only)."""
        if self.variant != "gradient_clip":
            raise ValueError(
                "The model_clip variant has no Rényi bound; see contractive_log_delta."
            )
        return pabi_rdp_coefficient(
            init_clip=self.init_clip,
            grad_clip=self.grad_clip,
            step_size=self.step_size,
            weight_decay=self.weight_decay,
            steps=steps,
            sigma=sigma,
        )

    def epsilon(self, *, steps: int, sigma: float, delta: float) -> float:
        """ε certified at ``delta`` by ``steps`` noisy steps of std ``sigma``."""
        if self.variant == "gradient_clip":
            return pabi_epsilon(
                self.rdp_coefficient(steps=steps, sigma=sigma),
                delta,
                conversion=self.conversion,
            )
        return contractive_epsilon(
            delta, model_clip=self.model_clip, sigma=sigma, steps=steps
        )

    def certifies(
        self, *, steps: int, sigma: float, epsilon: float, delta: float
    ) -> bool:
        """Whether ``steps`` steps of std ``sigma`` certify ``(epsilon, delta)``."""
        if self.variant == "gradient_clip":
            return self.epsilon(steps=steps, sigma=sigma, delta=delta) <= epsilon
        return contractive_log_delta(
            epsilon, model_clip=self.model_clip, sigma=sigma, steps=steps
        ) <= math.log(delta)


def finetune_min_sigma(
    config: FinetuneConfig, *, steps: int, target_epsilon: float, delta: float
) -> float:
    """Smallest σ whose ``steps`` noisy steps certify the target (either variant)."""
    if config.variant == "gradient_clip":
        return pabi_min_sigma(
            init_clip=config.init_clip,
            grad_clip=config.grad_clip,
            step_size=config.step_size,
            weight_decay=config.weight_decay,
            steps=steps,
            target_epsilon=target_epsilon,
            delta=delta,
            conversion=config.conversion,
        )
    return contractive_min_sigma(
        model_clip=config.model_clip,
        steps=steps,
        target_epsilon=target_epsilon,
        delta=delta,
    )


class FinetuneState(NamedTuple):
    """The latest release: its steps and σ (``num_requests = 0``: a fresh
    (re)training, ε = 0). Nothing else accumulates (module doc)."""

    steps: int = 0
    sigma: float = 0.0
    num_requests: int = 0


def finetune_init() -> FinetuneState:
    """State after (re)training."""
    return FinetuneState()


def finetune_update(
    state: FinetuneState,
    config: FinetuneConfig,
    *,
    removed: int,
    steps: int,
    sigma: float,
) -> FinetuneState:
    """A request served by ``steps`` noisy steps of std ``sigma`` (any number
    of rows ``removed``: the certificate does not depend on it)."""
    del config
    _guards.count("removed", removed)
    steps = _guards.count("steps", steps)
    _validate.positive(sigma=sigma)
    return FinetuneState(steps, float(sigma), state.num_requests + 1)


def finetune_reset(state: FinetuneState) -> FinetuneState:
    """A full retrain: the model is a fresh sample of the comparator's law."""
    del state
    return finetune_init()


def finetune_epsilon(
    state: FinetuneState, config: FinetuneConfig, delta: float
) -> float:
    """ε of the current model at ``delta`` (0 after a (re)training)."""
    _check_delta(delta)
    if state.num_requests == 0:
        return 0.0
    return config.epsilon(steps=state.steps, sigma=state.sigma, delta=delta)


def finetune_report(
    state: FinetuneState, config: FinetuneConfig, *, target_epsilon: float, delta: float
) -> CertificateReport:
    """(U) of the current model: certified iff its latest request certifies
    ``(target_epsilon, delta)`` (checked directly, not through the reported ε)."""
    eps = finetune_epsilon(state, config, delta)
    ok = state.num_requests == 0 or config.certifies(
        steps=state.steps, sigma=state.sigma, epsilon=target_epsilon, delta=delta
    )
    return _epsilon_report(
        "finetune", eps, float(delta), float(target_epsilon), certified=ok
    )


def _register():
    from dpunlearn.accounting.currencies.registry import (
        Currency,
        check_keys,
        register,
        removed_count,
    )

    def config(params, eps, delta):
        check_keys(
            "params", params, {f.name for f in dataclasses.fields(FinetuneConfig)}
        )
        return FinetuneConfig(**params)

    def request(cfg, state, entry):
        for key in ("steps", "sigma"):
            if key not in entry:
                raise ValueError(f"Expected {key} in a finetune request.")
        return finetune_update(
            state,
            cfg,
            removed=removed_count(entry),
            steps=entry["steps"],
            sigma=entry["sigma"],
        )

    def next_need(cfg, state, entry, eps, delta):
        sigma = finetune_min_sigma(
            cfg, steps=entry["steps"], target_epsilon=eps, delta=delta
        )
        return f"sigma >= {sigma!r} with steps = {entry['steps']}"

    def prepare(params):
        full = dataclasses.asdict(FinetuneConfig(**params))
        return {k: v for k, v in full.items() if v is not None}

    register(
        Currency(
            name="finetune",
            config=config,
            request_keys=frozenset({"removed", "steps", "sigma"}),
            train_keys=frozenset(),
            initial=lambda cfg: finetune_init(),
            train=lambda cfg, entry: finetune_init(),
            request=request,
            retrain=lambda cfg, state, entry: finetune_reset(state),
            report=lambda cfg, state, eps, delta: finetune_report(
                state, cfg, target_epsilon=eps, delta=delta
            ),
            budget=lambda cfg: {},
            from_charge=lambda charge: {
                "removed": int(charge.num_removed),
                "steps": int(charge.steps),
                "sigma": float(charge.sigma),
            },
            next_need=next_need,
            prepare=prepare,
        )
    )


_register()
