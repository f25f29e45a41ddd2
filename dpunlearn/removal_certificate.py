"""The certificate of a certified-removal model, derived with every term charged.

Guo, Goldstein, Hannun and van der Maaten (ICML 2020, Theorem 3) certify the
Newton-removed model ``w_T`` against retraining by noting that ``w_T`` is the
exact minimiser of the remaining objective for the shifted perturbation
``c = b − u(b)``, ``u`` the gradient residual, and then bounding the Gaussian
density ratio ``φ(b)/φ(c)`` as if ``u`` were fixed. Two things are missing from
that argument, and this module supplies both (the derivation, in full, is in
``docs/certified_removal.md``):

1. **The change of variables.** The released model is a function ``Φ(b)`` of
   the perturbation; its density at ``w`` is ``φ(b)/|det ∂Φ(b)|`` while the
   retrained model's is ``φ(c)·det H_T(w)``. The privacy loss therefore has a
   log-determinant term ``J``. Per Newton removal it telescopes into
   ``log det(I − H_{t−1}⁻¹T_t) + log det H_t(w_t) − log det H_t(w_{t−1})``,
   whose two parts cancel to first order; :func:`logdet_step_bound` bounds
   what is left from the quantities a removal computes anyway (margin changes
   ``s = X′v`` and curvatures), with no ``d × d`` work.
2. **The residual depends on b.** ``⟨b, u(b)⟩`` is not a Gaussian with
   variance ``σ²‖u‖²`` when ``u`` moves with ``b`` (a residual aligned with
   ``b`` makes it ``≈ σ√d‖u‖``). The Taylor remainder of a Newton step is
   ``X′ᵀρ`` with ``‖ρ‖₁ <= (γ/2)‖s‖²``, so ``|⟨b, X′ᵀρ⟩| <= max_i |x_iᵀb|·‖ρ‖₁``,
   and ``max_i |x_iᵀb|`` has a Gaussian tail over ``n`` rows; the other parts of
   ``u`` (solver leftovers, rounding; norm ``<= Q``) are bounded through
   ``‖b‖ <= σ(√D + t)``, a chi tail.

Together (the event ``E`` where both tails hold has probability ``>= 1 − δ_E``):

    |privacy loss| <= ε̄ = [σ z r P + σ(√D + t) Q + β²/2] / σ² + J

with ``P`` the accumulated remainder mass ``Σ (γ/2)‖s‖²``, ``Q`` the ℓ2 norm
over heads of the unstructured charges, ``β`` the bound on ``‖u‖``, ``r`` the
row-norm bound, ``D`` the number of perturbed coordinates, ``z`` and ``t`` the
two tail quantiles (:func:`noise_event`). This is a *pointwise* bound at the
realised ``b``; it depends on ``b``, so the decision to keep serving requests
must not look at it (see :mod:`dpunlearn.retrain_schedule`).

Everything here is pure ``jax.numpy`` (usable inside ``jit``) except the
host-side helpers that return Python floats (:func:`noise_event`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from scipy import special

from dpunlearn.types import Array

__all__ = [
    "NoiseEvent",
    "correct_mode_drift",
    "correct_mode_extra",
    "curvature_ratio",
    "logdet_step_bound",
    "noise_event",
    "pointwise_epsilon",
    "rounding_factor",
    "rounding_failure",
]


class NoiseEvent(NamedTuple):
    """The high-probability event on the perturbation that the bound uses.

    Attributes:
      z_rows: ``|x_iᵀb_h| <= σ z_rows ‖x_i‖`` for every row ``i`` and head ``h``.
      t_norm: ``‖b‖ <= σ(√D + t_norm)``.
      delta: ``P(E^c) <= 2nK Φ̄(z_rows) + exp(−t_norm²/2) = delta``.
    """

    z_rows: float
    t_norm: float
    delta: float


def noise_event(delta: float, *, num_rows: int, num_heads: int = 1) -> NoiseEvent:
    """Splits ``delta`` evenly between the row tail and the norm tail.

    * Rows: each ``x_iᵀb_h / ‖x_i‖ ~ N(0, σ²)``; a union bound over the
      ``nK`` of them gives ``P(max > σz) <= 2nK Φ̄(z)``; ``z`` solves
      ``2nK Φ̄(z) = δ/2``.
    * Norm: ``‖·‖`` is 1-Lipschitz and ``E‖b‖ <= σ√D``, so Gaussian
      concentration (Tsirelson–Ibragimov–Sudakov) gives
      ``P(‖b‖ >= σ(√D + t)) <= e^{−t²/2}``; ``t = √(2 ln(2/δ))``.

    The split is fixed in advance: choosing it after seeing ``b``-dependent
    quantities would need a union over the choices.
    """
    if not (0.0 < delta < 1.0):
        raise ValueError(f"Expected delta={delta} in the open interval (0, 1).")
    if num_rows < 1 or num_heads < 1:
        raise ValueError(
            f"Expected num_rows >= 1 and num_heads >= 1, got {num_rows}, {num_heads}."
        )
    half = delta / 2.0
    # Φ̄(z) = half / (2nK): use the inverse complementary error function in
    # log-safe form (ndtri of a tiny probability is exact in scipy).
    z = float(-special.ndtri(half / (2.0 * num_rows * num_heads)))
    t = math.sqrt(2.0 * math.log(1.0 / half))
    return NoiseEvent(z_rows=z, t_norm=t, delta=float(delta))


def pointwise_epsilon(
    *,
    sigma,
    beta,
    remainder_mass,
    unstructured,
    logdet,
    row_norm,
    dim: int,
    event: NoiseEvent,
):
    """``ε̄``: a bound on ``|privacy loss|`` at the realised ``b``, on the event.

    ``ε̄ = [σ z r P + σ(√D + t) Q + β²/2]/σ² + J`` (module docstring). Valid in
    both directions (unlearned against retrained and back), for outputs whose
    perturbation lies in the event. ``+inf`` when ``σ = 0`` or any input is
    not finite (a poisoned certificate stays poisoned).

    Args:
      sigma: Std of ``b``. beta: ``≥ ‖u‖``. remainder_mass: ``P``.
      unstructured: ``Q`` (ℓ2 over heads). logdet: ``J``. row_norm: ``r``.
      dim: ``D``, the number of perturbed coordinates (``K·d``). Static.
      event: From :func:`noise_event`.
    """
    sigma = jnp.asarray(sigma)
    linear = (
        event.z_rows * row_norm * remainder_mass
        + (math.sqrt(dim) + event.t_norm) * unstructured
    ) / sigma
    eps = linear + 0.5 * (beta / sigma) ** 2 + logdet
    bad = ~jnp.isfinite(eps) | (sigma <= 0)
    return jnp.where(bad, jnp.inf, eps)


def curvature_ratio(*, curvature, change, reg, norm_bound):
    """``κ`` with ``X′ᵀ diag(|change|) X′ ⪯ κ K``, ``K = X′ᵀ diag(ℓ'') X′ + reg·I``.

    ``κ = max_i |change_i| / (ℓ''_i + reg/N²)``: then ``X′ᵀ diag(|change|) X′ ⪯
    κ X′ᵀ diag(ℓ'') X′ + κ (reg/N²) X′ᵀX′ ⪯ κ K`` because ``X′ᵀX′ ⪯ N² I``.
    """
    return jnp.max(jnp.abs(change) / (curvature + reg / norm_bound**2))


def logdet_step_bound(
    *,
    curvature,
    curvature_change,
    linearization_error,
    leverage,
    removed_leverage_mass,
    num_removed,
    lam,
    n_left,
    norm_bound,
    loss,
):
    """Bound on one Newton removal's log-determinant term (one head).

    With ``K = H_t(w_{t−1})`` (remaining rows, current weights), ``R`` the
    removed rows' Hessian (``R ⪰ 0``), ``E = X′ᵀ diag(ℓ''(z + s) − ℓ''(z)) X′``
    and ``T = X′ᵀ diag(ℓ'''(z) s) X′ = E − Q``, the step's term is

        log det(K + R − E + Q) − log det(K + R) + log det(K + E) − log det K
        = [φ(K, E) − φ(K + R − E, E)] + [log det(K + R − E + Q) − log det(K + R − E)],

    ``φ(M, E) = log det(M + E) − log det M = ∫₀¹ tr((M + θE)⁻¹E) dθ``. The first
    bracket is ``∫₀¹ tr((K + θE)⁻¹(R − E)(K + R − (1−θ)E)⁻¹E) dθ``: the two parts
    of the step cancel to first order, and Hölder's inequality leaves
    ``(‖K^{-1/2}RK^{-1/2}‖ + κ)·‖K^{-1/2}EK^{-1/2}‖_*/(1 − κ)²`` with
    ``−κK ⪯ E ⪯ κK`` (:func:`curvature_ratio`). With upper bounds
    ``h_i >= x_iᵀK⁻¹x_i`` on the leverages (exact ones from a Cholesky factor,
    or :func:`dpunlearn.solvers.leverage_upper_bound`, which needs no ``d × d`` work):

    * ``‖K^{-1/2}EK^{-1/2}‖_* <= Σ_i |ℓ''(z_i + s_i) − ℓ''(z_i)| h_i``;
    * ``‖K^{-1/2}RK^{-1/2}‖ <= Σ_removed ℓ''_j h_j + k/n′``;
    * the second bracket: with ``e_i >= |ℓ''(z_i+s_i) − ℓ''(z_i) − ℓ'''(z_i)s_i|``
      (computed, or ``M₄s_i²/2``) and ``q = Σ_i e_i h_i/(1 − κ)`` it is at most
      ``q/(1 − q)`` (``K + R − E ⪰ (1 − κ)K``).

    Returns ``+inf`` unless ``κ < 1`` and ``q < 1``: the step's Jacobian may then
    be singular (the map ``b ↦ w`` may fold), and nothing is certified.

    Args:
      curvature: ``ℓ''`` of the remaining rows at ``w_{t−1}`` (0 for removed).
      curvature_change: ``|ℓ''(z + s) − ℓ''(z)|`` (0 for removed rows).
      linearization_error: ``e_i`` above (0 for removed rows).
      leverage: ``h_i >= x_iᵀK⁻¹x_i`` for every row.
      removed_leverage_mass: ``Σ_j ℓ''_j h_j`` over the rows removed in this step.
      num_removed: ``k``. lam: λ (mean form). n_left: ``n′``.
      norm_bound: ``N >= ‖X‖₂``. loss: the :class:`~dpunlearn.losses.MarginLoss`.
    """
    if loss.hess_peak is None:
        return jnp.zeros((), curvature.dtype)  # constant ℓ'' (ridge): J = 0
    reg = lam * n_left
    h = leverage
    kappa = curvature_ratio(
        curvature=curvature, change=curvature_change, reg=reg, norm_bound=norm_bound
    )
    e_nuc = jnp.sum(jnp.abs(curvature_change) * h)
    r_op = removed_leverage_mass + num_removed / n_left
    main = (r_op + kappa) * e_nuc / (1 - kappa) ** 2
    q = jnp.sum(linearization_error * h) / (1 - kappa)
    bound = main + q / (1 - q)
    return jnp.where((kappa < 1) & (q < 1), bound, jnp.inf)


def correct_mode_extra(
    *, curvature, margin_change, leverage, drift, lam, n_prev, norm_bound, loss
):
    """The extra log-determinant term of a residual-correcting step.

    With the correcting step, ``∂w_t/∂b = −H_t(w_{t−1})⁻¹(I + T_t ∂w_{t−1}/∂b)``;
    writing ``∂w_t/∂b = −H̃_t⁻¹(I + E_t)`` (``H̃_t`` the Hessian of the current
    objective at ``w_t``), the log-determinant of the release is
    ``log det(I + E_T)``, which equals the accumulate-mode step term plus
    ``log det(I − Y)``, ``Y`` similar to ``(I − S)⁻¹SF`` with
    ``S = H̃^{-1/2}TH̃^{-1/2}`` and ``F`` the previous drift (``‖F‖ <= f``,
    :func:`correct_mode_drift`). ``|ℓ'''| <= cℓ''`` gives ``‖S‖ <= κ₁`` (as in
    :func:`curvature_ratio` with ``cℓ''|s|``) and ``‖S‖_* <= τ = Σ cℓ''_i|s_i| h_i``;
    hence ``|log det(I − Y)| <= y_*/(1 − y)`` with ``y_* = τf/(1 − κ₁)``,
    ``y = κ₁f/(1 − κ₁)``. ``+inf`` unless ``κ₁ < 1`` and ``y < 1``.
    """
    if loss.hess_peak is None:
        return jnp.zeros((), curvature.dtype)
    reg = lam * n_prev
    third = loss.hess_log_lipschitz * curvature * jnp.abs(margin_change)
    k1 = curvature_ratio(curvature=curvature, change=third, reg=reg, norm_bound=norm_bound)
    tau = jnp.sum(third * leverage)  # K ⪯ H̃_{t−1}: K's leverages bound H̃'s
    y_nuc = tau * drift / (1 - k1)
    y_op = k1 * drift / (1 - k1)
    return jnp.where((k1 < 1) & (y_op < 1), y_nuc / (1 - y_op), jnp.inf)


def correct_mode_drift(
    *,
    curvature,
    curvature_change,
    margin_change,
    drift,
    removed_leverage_mass,
    num_removed,
    lam,
    n_left,
    norm_bound,
    loss,
):
    """``f_t >= ‖H̃_t^{1/2}E_tH̃_t^{-1/2}‖`` after a residual-correcting step.

    ``I + F_t = A(I − Z)`` with ``A = H̃_t^{1/2}K_t⁻¹H̃_t^{1/2}`` (eigenvalues in
    ``[1 − κ, 1 + κ]``) and ``‖Z‖ <= κ₁(1 + f_{t−1})√((1 + κ)(1 + ρ_R)/(1 − κ))``,
    ``ρ_R`` the removed rows' relative curvature; so
    ``f_t <= κ + (1 + κ)‖Z‖``. ``f = 0`` for an exact minimiser.
    """
    if loss.hess_peak is None:
        return jnp.zeros((), margin_change.dtype)
    reg = lam * n_left
    kappa = curvature_ratio(
        curvature=curvature, change=curvature_change, reg=reg, norm_bound=norm_bound
    )
    third = loss.hess_log_lipschitz * curvature * jnp.abs(margin_change)
    k1 = curvature_ratio(curvature=curvature, change=third, reg=reg, norm_bound=norm_bound)
    rho = removed_leverage_mass + num_removed / n_left
    z = k1 * (1 + drift) * jnp.sqrt((1 + kappa) * (1 + rho) / (1 - kappa))
    f = kappa + (1 + kappa) * z
    return jnp.where(kappa < 1, f, jnp.inf)


def rounding_factor(dtype, m: int, *, lam: float = 12.0) -> float:
    """Relative error allowance for a computed sum of ``m`` terms.

    float64: the worst case ``γ_m = m u/(1 − m u)`` (Higham, *Accuracy and
    Stability of Numerical Algorithms*, 2nd ed., Lemma 3.1). Lower precisions:
    the probabilistic ``γ̃_m(λ) = exp(λ√m u + m u²/(1 − u)) − 1`` of Higham &
    Mary (SIAM J. Sci. Comput. 41(5), 2019, Theorem 3.1), which holds with
    probability ``>= 1 − 2m e^{−λ²(1−u)²/2}`` per sum under their model of
    independent, mean-zero rounding errors; :func:`rounding_failure` adds up
    that probability so that it can be charged to δ. The worst case ``m u``
    exceeds a float32 budget at MNIST size.
    """
    u = float(np.finfo(dtype).eps) / 2
    if np.dtype(dtype) == np.float64:
        return m * u / (1 - m * u)
    return math.expm1(lam * math.sqrt(m) * u + m * u * u / (1 - u))


def rounding_failure(dtype, m: int, num_sums: int, *, lam: float = 12.0) -> float:
    """Probability that one of ``num_sums`` length-``m`` float32 sums breaks its allowance.

    Zero in float64 (the allowance is worst-case). Otherwise the union bound
    ``num_sums · 2m e^{−λ²(1−u)²/2}`` over Higham & Mary's model; with the
    default ``λ = 12`` it is about ``1e-27`` per sum at ``m = 10⁴``.
    """
    if np.dtype(dtype) == np.float64:
        return 0.0
    u = float(np.finfo(dtype).eps) / 2
    return num_sums * 2.0 * m * math.exp(-0.5 * (lam * (1 - u)) ** 2)
