"""Sekhari et al.: a Newton step from stored statistics plus Gaussian output noise.

Sekhari, Acharya, Kamath, Suresh. *Remember What You Want to Forget:
Algorithms for Machine Unlearning.* NeurIPS 2021. https://arxiv.org/abs/2103.03279
(the learning/unlearning pair for strongly convex losses, ``A_sc``/``Ā_sc``, and
its deletion guarantee, Theorem 3 in the team's notes; the theorem numbers were
not checked against the paper's text).

**Problem.** Every per-example loss ``f(w, z) = loss(w, x, y) + (λ/2)‖w‖²`` is
λ-strongly convex and M-Hessian-Lipschitz; ``F̂(w) = (1/n) Σ_{z∈S} f(w, z)``.
``w`` is any parameter pytree, flattened to ``p`` numbers
(``jax.flatten_util.ravel_pytree``).

**Learning** ``A_sc``: ŵ = argmin F̂ (damped Newton to ``‖∇F̂(ŵ)‖ <= tol``) and
the statistics ``T(S) = (∇²F̂(ŵ), ∇F̂(ŵ))`` (``O(p²)`` memory, independent of
``n``). The gradient ``∇F̂(ŵ)`` is zero for the exact minimiser; storing it
makes the unlearning step exact for the computed ŵ (see *Optimisation error*).

**Unlearning** ``Ā_sc`` of a cumulative delete set ``U`` (``|U| = k <= m``), from
ŵ, ``T(S)`` and the deleted rows only (never the rest of ``S``):

* ``Ĥ = (n ∇²F̂(ŵ) − Σ_{z∈U} ∇²f(ŵ, z)) / (n − k)``  (the Hessian of the
  remaining mean loss at ŵ),
* ``w̄ = ŵ − Ĥ⁻¹ (n ∇F̂(ŵ) − Σ_{z∈U} ∇f(ŵ, z)) / (n − k)``; with
  ``∇F̂(ŵ) = 0`` this is the paper's ``w̄ = ŵ + Ĥ⁻¹ Σ_U ∇f(ŵ, z)/(n − k)``,
* release ``w̃ = w̄ + ν``, ``ν ~ N(0, σ² I_p)``, fresh ``ν`` for every release.

Every release recomputes ``w̄`` from ŵ with the *cumulative* ``U`` (the state
keeps ``Σ_U ∇f`` and ``Σ_U ∇²f`` at ŵ, so a request touches only its own rows).

**What is released at training.** ``Ā_sc(∅, A_sc(S), T(S))``: the same map
with ``U = ∅``, i.e. ``ŵ − ∇²F̂(ŵ)⁻¹∇F̂(ŵ) + ν`` (ŵ polished by one Newton step,
plus noise of the same σ). This is also the certificate's reference: the
retrained model on ``S \\ U`` released through the same map,
``Ā_sc(∅, A_sc(S\\U), T(S\\U))``, **with the same σ** (the σ of the model the
deletions were made from; :func:`reference_release` builds it).

**Noise** (Sekhari et al., the
γ/σ equations of the deletion guarantee):

* ``γ = 2 M m² L² / (λ³ n²)`` (``tight=True``: ``M m² L² / (2 λ³ (n − m)²)``),
  :func:`dpunlearn.accounting.currencies.sekhari_gamma`;
* ``σ = (γ/ε)·√(2 ln(1.25/δ))`` (``calibration="classic"``, the paper's;
  needs ε <= 1), or the exact analytic Gaussian (``"analytic"``, Balle & Wang
  2018) or zCDP (``"zcdp"``) on the same γ:
  :func:`dpunlearn.accounting.currencies.sekhari_sigma`.

``m`` is the **capacity**, fixed up front: σ is calibrated once, at training,
for up to ``m`` deletions, and a request that would bring ``|U|`` past ``m``
is refused (a ``ValueError`` naming the capacity; under ``jit`` a poisoned
charge and an unchanged model). The (U) certificate of every release is
(ε, δ); releasing many outputs with independent noise is a (D)-ledger
question (:mod:`dpunlearn.accounting.ledger`).

**Optimisation error.** The certificate assumes an exact ŵ. With
``‖∇F̂(ŵ)‖ <= τ`` (``tol``) the Newton step above (which uses the stored
``∇F̂(ŵ)``) still gives ``‖w̄ − ŵ′‖ <= (M/2λ)·a²`` with ``ŵ′`` the exact
minimiser on ``S\\U`` and ``a = (nτ + mL)/(λ(n − m))`` (tight) or its upper
bound ``2(τ + mL/n)/λ`` (``m <= n/2``); the reference, a retrain with the same
``τ`` polished by one Newton step, lies within ``(M/2λ)(τ/λ)²`` of ``ŵ′``. The
noise is calibrated to the sum, ``γ_τ`` (:func:`sensitivity`); ``γ_τ = γ`` at
``τ = 0`` and σ is scaled by ``γ_τ/γ`` (σ is linear in the sensitivity for all
three calibrations).

**Assumptions the method checks**, eagerly with a ``ValueError`` or under
``jit`` by poisoning the charge (``epsilon = +inf``, model unchanged):

* ``lam > 0`` (the strong convexity comes from the L2 term);
* ``‖∇F̂(ŵ)‖ <= tol`` after training;
* ``check_convexity=True``: the smallest eigenvalue of ``∇²F̂(ŵ)`` (training)
  and of ``Ĥ`` (each request) is at least ``lam`` up to rounding, i.e. the
  loss is convex where it is evaluated (necessary, not sufficient, for global
  strong convexity);
* ``‖∇f(ŵ, z)‖ <= gradient_bound`` for every deleted ``z`` (only these enter
  γ);
* ``capacity <= n/2`` (``tight``: ``< n``), ``|U| <= capacity``, finite data,
  a valid request (:func:`~dpunlearn.methods.base.check_request`).

``hessian_lipschitz`` (M) cannot be checked; for the logistic loss with
``‖x‖ <= 1``, ``M = 1/(6√3)``.

**Non-convex models** (an MLP): the certificate needs convexity, and the
check above refuses such a model. ``check_convexity=False`` is the explicit
escape hatch: training and unlearning run (Newton directions use
``max(|eigenvalue|, λ)``, i.e. the step of the λ-strongly-convex quadratic
model), the charge carries ``convexity_checked=False``, and its ε is then
**conditional**: it holds only if the regularised loss is λ-strongly convex
and M-Hessian-Lipschitz on a region containing ŵ and every retrained
minimiser, and retraining returns the minimiser in that region. For a neural
network this is an assumption, not a certificate.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from dpunlearn.errors import RetrainRequired
from dpunlearn import _sharding, _validate, models
from dpunlearn.accounting import currencies
from dpunlearn.methods import _flat
from dpunlearn.methods.base import (
    Data,
    Method,
    check_data,
    check_mask,
    check_request,
    request_valid,
)
from dpunlearn.solvers import mm
from dpunlearn.types import Array, PRNGKey, PyTree

__all__ = [
    "SekhariCharge",
    "SekhariInfo",
    "SekhariState",
    "noise_std",
    "reference_release",
    "sekhari",
    "sensitivity",
]

Calibration = Literal["classic", "analytic", "zcdp"]
_CALIBRATIONS = ("classic", "analytic", "zcdp")


class SekhariState(NamedTuple):
    """A model trained for Newton unlearning (all fields are arrays; never holds data).

    Attributes:
      params: The released model ``w̃ = w̄ + N(0, σ² I)``, in the model's own
        pytree structure.
      secret: ``w̄`` flat ``[p]``: the un-noised point of the latest release.
        Secret: never release it.
      erm: ŵ flat ``[p]``, the minimiser found at training. Secret.
      grad: ``∇F̂(ŵ)`` ``[p]``, the training residual (part of ``T(S)``).
      hessian: ``∇²F̂(ŵ)`` ``[p, p]`` (``T(S)``).
      removed_grad: ``Σ_{z∈U} ∇f(ŵ, z)`` ``[p]`` over the deleted rows so far.
      removed_hessian: ``Σ_{z∈U} ∇²f(ŵ, z)`` ``[p, p]``.
      mask: ``bool[n]``: rows still in the model.
      num_train: ``n``, rows at training (int32).
      num_removed: ``|U|``, rows deleted since training (int32).
      sigma: σ of every release of this model (calibrated at training).
      valid: False if training violated an assumption (every later charge is
        then poisoned).
    """

    params: PyTree
    secret: Array
    erm: Array
    grad: Array
    hessian: Array
    removed_grad: Array
    removed_hessian: Array
    mask: Array
    num_train: Array
    num_removed: Array
    sigma: Array
    valid: Array


class SekhariCharge(NamedTuple):
    """What a training or a request costs, in the ``"sekhari"`` currency.

    Attributes:
      num_removed: Rows removed by this call (0 for training or a refused
        request); the ledger's ``removed``.
      total_removed: ``|U|`` since training (what the currency counts).
      capacity: ``m``.
      sigma: σ of this release.
      sensitivity: ``γ_τ``, the distance bound σ is calibrated to.
      epsilon: ε this release certifies: the configured ε, ``+inf`` when
        poisoned (conditional on convexity when ``convexity_checked`` is False).
      delta: δ of the certificate.
      min_eigenvalue: Smallest eigenvalue of the Hessian used (report only).
      convexity_checked: Whether strong convexity was checked (False: the
        ``check_convexity=False`` escape hatch).
      valid: Every check passed (else the model is unchanged).
    """

    num_removed: Array
    total_removed: Array
    capacity: Array
    sigma: Array
    sensitivity: Array
    epsilon: Array
    delta: Array
    min_eigenvalue: Array
    convexity_checked: Array
    valid: Array


class SekhariInfo(NamedTuple):
    """Diagnostics of one request (which check failed, if any).

    Attributes:
      valid: All checks passed.
      request_ok: Indices distinct, in range, present, leaving a row.
      within_capacity: ``|U| <= capacity`` after the request.
      finite: The deleted rows are finite.
      gradient_bound_ok: ``‖∇f(ŵ, z)‖ <= gradient_bound`` for the deleted rows.
      strongly_convex: ``λ_min(Ĥ) >= lam`` up to rounding (True when unchecked).
      trained_ok: The state's training was valid.
      max_gradient_norm: ``max_z ‖∇f(ŵ, z)‖`` over the deleted rows.
      min_eigenvalue: ``λ_min(Ĥ)``.
      step_norm: ``‖w̄ − ŵ‖``.
    """

    valid: Array
    request_ok: Array
    within_capacity: Array
    finite: Array
    gradient_bound_ok: Array
    strongly_convex: Array
    trained_ok: Array
    max_gradient_norm: Array
    min_eigenvalue: Array
    step_norm: Array


# ---------------------------------------------------------------------------
# Calibration (host, float64) and its on-device twin.
# ---------------------------------------------------------------------------


def _sensitivity(n, *, capacity, lam, hessian_lipschitz, gradient_bound, tol, tight):
    """γ_τ (see the module docstring); works on Python floats and jnp arrays."""
    m, L, M = capacity, gradient_bound, hessian_lipschitz
    if tight:
        a = (n * tol + m * L) / (lam * (n - m))
    else:
        a = 2.0 * (tol + m * L / n) / lam
    return M / (2.0 * lam) * (a * a + (tol / lam) ** 2)


def sensitivity(
    *,
    n: int,
    capacity: int,
    lam: float,
    hessian_lipschitz: float,
    gradient_bound: float,
    tol: float = 0.0,
    tight: bool = False,
) -> float:
    """γ_τ: the bound on ``‖w̄ − (retrained, polished ŵ′)‖`` σ is calibrated to.

    Equals :func:`~dpunlearn.accounting.currencies.sekhari_gamma` at ``tol=0``
    (``2Mm²L²/(λ³n²)``, or ``Mm²L²/(2λ³(n−m)²)`` when ``tight``); a training
    tolerance ``τ > 0`` adds the terms derived in the module docstring.
    """
    gamma = currencies.sekhari_gamma(
        hessian_lipschitz=hessian_lipschitz,
        lipschitz=gradient_bound,
        strong_convexity=lam,
        n=n,
        capacity=capacity,
        tight=tight,
    )
    _validate.non_negative(tol=tol)
    if tol == 0:
        return gamma
    return _sensitivity(
        float(n),
        capacity=float(capacity),
        lam=float(lam),
        hessian_lipschitz=float(hessian_lipschitz),
        gradient_bound=float(gradient_bound),
        tol=float(tol),
        tight=tight,
    )


def noise_std(
    *,
    n: int,
    capacity: int,
    epsilon: float,
    delta: float,
    lam: float,
    hessian_lipschitz: float,
    gradient_bound: float,
    tol: float = 0.0,
    calibration: Calibration = "classic",
    tight: bool = False,
) -> float:
    """σ of every release of a model trained on ``n`` rows (host, float64).

    ``currencies.sekhari_sigma(...) · γ_τ/γ``: at ``tol=0`` exactly
    :func:`~dpunlearn.accounting.currencies.sekhari_sigma` (the paper's
    ``σ = (γ/ε)√(2 ln(1.25/δ))`` for ``"classic"``).
    """
    sigma = currencies.sekhari_sigma(
        epsilon,
        delta,
        hessian_lipschitz=hessian_lipschitz,
        lipschitz=gradient_bound,
        strong_convexity=lam,
        n=n,
        capacity=capacity,
        method=calibration,
        tight=tight,
    )
    if tol == 0:
        return sigma
    gamma = currencies.sekhari_gamma(
        hessian_lipschitz=hessian_lipschitz,
        lipschitz=gradient_bound,
        strong_convexity=lam,
        n=n,
        capacity=capacity,
        tight=tight,
    )
    return (
        sigma
        * sensitivity(
            n=n,
            capacity=capacity,
            lam=lam,
            hessian_lipschitz=hessian_lipschitz,
            gradient_bound=gradient_bound,
            tol=tol,
            tight=tight,
        )
        / gamma
    )


def reference_release(key: PRNGKey, state: SekhariState, sigma) -> PyTree:
    """``state.secret + N(0, σ² I)`` in the model's structure.

    The certificate's reference: pass the state of a model retrained on
    ``S \\ U`` and the ``sigma`` of the model the deletions were made from
    (``charge.sigma``). It is the same Gaussian draw the method's own
    releases use, so with ``sigma = state.sigma`` it has the law of
    ``state.params``.
    """
    _, unravel = ravel_pytree(state.params)
    return _flat.release(key, state.secret, sigma, unravel)


# ---------------------------------------------------------------------------
# The method.
# ---------------------------------------------------------------------------


def sekhari(
    model: models.Model,
    *,
    lam: float,
    epsilon: float,
    delta: float,
    capacity: int,
    hessian_lipschitz: float,
    gradient_bound: float,
    calibration: Calibration = "classic",
    tight: bool = False,
    train_steps: int = 50,
    tol: float | None = None,
    check_convexity: bool = True,
) -> Method:
    """Newton-step unlearning with Gaussian output noise (Sekhari et al. 2021).

    Args:
      model: Any :class:`~dpunlearn.models.Model` (a parameter pytree and a
        per-example loss). Training starts from ``model.params``.
      lam: L2 strength λ > 0: ``f = loss + (λ/2)‖w‖²`` is λ-strongly convex
        when ``loss`` is convex.
      epsilon, delta: The (ε, δ) every release certifies.
      capacity: ``m``, the most deletions certified before a retrain (fixed up
        front; σ grows as ``m²``). At most ``n/2`` (``tight``: ``< n``).
      hessian_lipschitz: M, operator-norm Lipschitz constant of ``∇²f(·, z)``.
      gradient_bound: L, bound on ``‖∇f(ŵ, z)‖`` (regularised loss) of every
        row that may be deleted; checked on each deleted row.
      calibration: ``"classic"`` (the paper's ``√(2 ln(1.25/δ))/ε``, ε <= 1),
        ``"analytic"`` (exact Gaussian, any ε) or ``"zcdp"``.
      tight: Use ``γ = Mm²L²/(2λ³(n−m)²)`` (valid for any ``m < n``).
      train_steps: Most damped-Newton steps at training.
      tol: τ, the gradient norm training must reach; enters σ (module
        docstring). Default ``100·eps·max(1, L)`` in the parameters' dtype.
      check_convexity: Check strong convexity at every Hessian (see the module
        docstring for what ``False`` means for the certificate).

    Returns:
      A :class:`~dpunlearn.methods.base.Method` with currency ``"sekhari"``.
      ``train`` returns ``(SekhariState, SekhariCharge)``, ``unlearn`` returns
      ``(SekhariState, SekhariCharge, SekhariInfo)``.

    Raises:
      ValueError: ``lam <= 0`` (not strongly convex), bad constants, or
        ``calibration="classic"`` with ``epsilon > 1``.

    Guarantees:
      Certified (conditional on the assumptions of the module docstring, of
      which M cannot be checked): every release after deleting a cumulative
      ``U`` with ``|U| <= capacity`` is (ε, δ)-indistinguishable from
      :func:`reference_release` of a model retrained on ``S \\ U``, with the
      same σ.
    """
    if isinstance(lam, (int, float, np.number)) and not lam > 0:
        raise ValueError(
            f"Expected lam={lam} > 0: Sekhari et al.'s certificate needs a "
            "λ-strongly convex loss, and the strong convexity comes from the L2 "
            "term (lam/2)‖w‖² (a loss that is not strongly convex cannot be "
            "certified)."
        )
    _validate.positive(
        lam=lam,
        epsilon=epsilon,
        hessian_lipschitz=hessian_lipschitz,
        gradient_bound=gradient_bound,
    )
    _validate.open_interval(0.0, 1.0, delta=delta)
    _validate.positive_int(capacity=capacity, train_steps=train_steps)
    if calibration not in _CALIBRATIONS:
        raise ValueError(
            f"Expected calibration in {_CALIBRATIONS}, got {calibration!r}."
        )
    lam, epsilon, delta = float(lam), float(epsilon), float(delta)
    M, L = float(hessian_lipschitz), float(gradient_bound)
    # σ per unit of sensitivity: every calibration is linear in γ.
    probe = {
        "n": 2 * capacity,
        "capacity": capacity,
        "lam": lam,
        "hessian_lipschitz": M,
        "gradient_bound": L,
        "tight": tight,
    }
    kappa = noise_std(
        epsilon=epsilon, delta=delta, calibration=calibration, **probe
    ) / (sensitivity(**probe))

    flat = _flat.flatten_model(model, lam)
    dtype = flat.flat0.dtype
    p = flat.dim
    tol = 100.0 * float(jnp.finfo(dtype).eps) * max(1.0, L) if tol is None else tol
    _validate.positive(tol=tol)
    tol = float(tol)

    per_grad = jax.vmap(jax.grad(flat.loss), in_axes=(None, 0, 0))
    per_hess = jax.vmap(jax.hessian(flat.loss), in_axes=(None, 0, 0))

    def sigma_of(n):
        gamma = _sensitivity(
            n,
            capacity=capacity,
            lam=lam,
            hessian_lipschitz=M,
            gradient_bound=L,
            tol=tol,
            tight=tight,
        )
        return (kappa * gamma).astype(dtype)

    def capacity_ok(n):
        return capacity < n if tight else 2 * capacity <= n

    def objective(data: Data, mask: Array):
        n = jnp.sum(mask).astype(dtype)

        def F(w):
            vals = jax.vmap(flat.loss, in_axes=(None, 0, 0))(w, data.x, data.y)
            return jnp.sum(jnp.where(mask, vals, 0)) / n

        return F

    def damped(s):
        # Newton on the λ-strongly-convex model: a no-op when λ_min >= λ.
        return jnp.maximum(jnp.abs(s), lam)

    def center(erm, grad, hessian, removed_grad, removed_hessian, n, k):
        """``w̄ = ŵ − Ĥ⁻¹ ∇F_{S\\U}(ŵ)`` from the stored statistics; λ_min(Ĥ)."""
        nk = n - k
        H = (n * hessian - removed_hessian) / nk
        g = (n * grad - removed_grad) / nk
        s, V = jnp.linalg.eigh(0.5 * (H + H.T))
        step = mm(V, mm(g, V) / jnp.maximum(s, lam))
        return erm - step, s[0], jnp.max(jnp.abs(s))

    def newton(F, w0):
        """Damped Newton (backtracking on F) until ‖∇F‖ <= tol/100, a stall or
        ``train_steps``; a full step that leaves F unchanged up to rounding is
        accepted (near the optimum float32 cannot see Armijo's decrease)."""
        gradF, hessF = jax.grad(F), jax.hessian(F)
        slack = 10 * jnp.finfo(dtype).eps

        def body(c):
            i, w, g, _ = c
            H = hessF(w)
            s, V = jnp.linalg.eigh(0.5 * (H + H.T))
            d = mm(V, mm(g, V) / damped(s))
            f0, slope = F(w), jnp.vdot(g, d)

            def search(ls):
                t, _ = ls
                f1 = F(w - t * d)
                ok = (f1 <= f0 - 1e-4 * t * slope) | (
                    (t == 1) & (f1 <= f0 + slack * jnp.abs(f0))
                )
                ok = ok & jnp.isfinite(f1)
                return jnp.where(ok, t, 0.5 * t), ok

            t, ok = _sharding.while_loop(
                lambda ls: ~ls[1] & (ls[0] > 1e-9),
                search,
                (jnp.asarray(1.0, dtype), jnp.asarray(False)),
            )
            w = jnp.where(ok, w - t * d, w)
            return i + 1, w, gradF(w), ok

        init = (jnp.asarray(0), w0, gradF(w0), jnp.asarray(True))
        _, w, _, _ = _sharding.while_loop(
            lambda c: (
                (c[0] < train_steps) & (jnp.linalg.norm(c[2]) > 0.01 * tol) & c[3]
            ),
            body,
            init,
        )
        return w

    def convex_ok(min_eig, scale, n_rows):
        if not check_convexity:
            return jnp.asarray(True)
        return min_eig >= lam - _flat.eig_tolerance(dtype, p + n_rows, scale + lam)

    def charge(*, num_removed, total, sigma, min_eig, valid):
        return SekhariCharge(
            num_removed=jnp.asarray(num_removed, jnp.int32),
            total_removed=jnp.asarray(total, jnp.int32),
            capacity=jnp.asarray(capacity, jnp.int32),
            sigma=jnp.asarray(sigma, dtype),
            sensitivity=jnp.asarray(sigma / kappa, dtype),
            epsilon=jnp.where(valid, jnp.asarray(epsilon, dtype), jnp.inf),
            delta=jnp.asarray(delta, dtype),
            min_eigenvalue=jnp.asarray(min_eig, dtype),
            convexity_checked=jnp.asarray(check_convexity),
            valid=jnp.asarray(valid),
        )

    @jax.jit
    def train_impl(key, data, mask):
        n_rows = mask.shape[0]
        n = jnp.sum(mask).astype(dtype)
        F = objective(data, mask)
        erm = newton(F, flat.flat0)
        grad = jax.grad(F)(erm)
        hessian = jax.hessian(F)(erm)
        zeros_p = jnp.zeros((p,), dtype)
        zeros_pp = jnp.zeros((p, p), dtype)
        secret, min_eig, scale = center(erm, grad, hessian, zeros_p, zeros_pp, n, 0)
        sigma = sigma_of(n)
        params = _flat.release(key, secret, sigma, flat.unravel)
        gnorm = jnp.linalg.norm(grad)
        checks = {
            "converged": gnorm <= tol,
            "strongly_convex": convex_ok(min_eig, scale, n_rows),
            "capacity_ok": capacity_ok(jnp.sum(mask)),
            "finite": _flat.all_finite(data) & jnp.all(jnp.isfinite(secret)),
        }
        valid = (
            checks["converged"]
            & checks["strongly_convex"]
            & checks["capacity_ok"]
            & checks["finite"]
        )
        state = SekhariState(
            params=params,
            secret=secret,
            erm=erm,
            grad=grad,
            hessian=hessian,
            removed_grad=zeros_p,
            removed_hessian=zeros_pp,
            mask=mask,
            num_train=jnp.sum(mask).astype(jnp.int32),
            num_removed=jnp.zeros((), jnp.int32),
            sigma=sigma,
            valid=valid,
        )
        out = charge(num_removed=0, total=0, sigma=sigma, min_eig=min_eig, valid=valid)
        return state, out, dict(checks, grad_norm=gnorm, min_eigenvalue=min_eig)

    def train(key: PRNGKey, data: Data, mask: Array | None = None):
        _validate.prng_key("key", key)
        data = check_data(data)
        mask = check_mask(mask, data.num_rows, data=data)
        _flat.check_loss_on_data(model, data)
        if _flat.is_concrete(mask):
            n = int(np.sum(np.asarray(mask)))
            if not capacity_ok(n):
                bound = f"< n={n}" if tight else f"<= n/2={n / 2}"
                raise ValueError(
                    f"Expected capacity={capacity} {bound} (the training rows); "
                    "Sekhari et al.'s guarantee holds for at most n/2 deletions "
                    "(tight=True: fewer than n)."
                )
        state, out, diag = train_impl(key, data, mask)
        if _flat.is_concrete(out.valid) and not bool(out.valid):
            raise _train_error(diag)
        return state, out

    def _train_error(diag) -> ValueError:
        if not bool(diag["finite"]):
            return ValueError(
                "Training produced non-finite values (check data and model)."
            )
        if not bool(diag["strongly_convex"]):
            return ValueError(
                "The regularised loss is not lam-strongly convex at the solution: the "
                f"smallest Hessian eigenvalue is {float(diag['min_eigenvalue']):.6g} < "
                f"lam={lam} (beyond rounding). Sekhari et al.'s certificate needs "
                "strong convexity; check_convexity=False runs anyway, with a "
                "certificate conditional on an assumption that this check refutes."
            )
        if not bool(diag["converged"]):
            return ValueError(
                f"Training did not converge: ‖∇F̂(ŵ)‖={float(diag['grad_norm']):.3g} > "
                f"tol={tol:.3g} after train_steps={train_steps} Newton steps; raise "
                "train_steps or tol (tol enters σ)."
            )
        return ValueError(f"Expected capacity={capacity} <= n/2 of the training rows.")

    @jax.jit
    def unlearn_impl(key, state: SekhariState, request, data):
        n_rows = state.mask.shape[0]
        req_ok, safe = request_valid(request, state.mask)
        k = request.shape[0]
        total = state.num_removed + k
        within = total <= capacity
        sub = _flat.rows(data, safe)
        finite = _flat.all_finite(sub)
        grads = per_grad(state.erm, sub.x, sub.y)
        gnorms = jnp.linalg.norm(grads, axis=1)
        max_gnorm = jnp.max(gnorms)
        grad_ok = jnp.all(gnorms <= L * (1 + 10 * jnp.finfo(dtype).eps))
        removed_grad = state.removed_grad + jnp.sum(grads, axis=0)
        removed_hessian = state.removed_hessian + jnp.sum(
            per_hess(state.erm, sub.x, sub.y), axis=0
        )
        n = state.num_train.astype(dtype)
        secret, min_eig, scale = center(
            state.erm,
            state.grad,
            state.hessian,
            removed_grad,
            removed_hessian,
            n,
            total.astype(dtype),
        )
        convex = convex_ok(min_eig, scale, n_rows)
        valid = (
            state.valid
            & req_ok
            & within
            & finite
            & grad_ok
            & convex
            & jnp.all(jnp.isfinite(secret))
        )
        params = _flat.release(key, secret, state.sigma, flat.unravel)
        new = state._replace(
            params=params,
            secret=secret,
            removed_grad=removed_grad,
            removed_hessian=removed_hessian,
            mask=_sharding.scatter(state.mask, safe, False),
            num_removed=total.astype(jnp.int32),
        )
        out_state = _flat.where_tree(valid, new, state)
        out = charge(
            num_removed=jnp.where(valid, k, 0),
            total=out_state.num_removed,
            sigma=state.sigma,
            min_eig=min_eig,
            valid=valid,
        )
        info = SekhariInfo(
            valid=valid,
            request_ok=req_ok,
            within_capacity=within,
            finite=finite,
            gradient_bound_ok=grad_ok,
            strongly_convex=convex,
            trained_ok=state.valid,
            max_gradient_norm=max_gnorm,
            min_eigenvalue=min_eig,
            step_norm=jnp.linalg.norm(secret - state.erm),
        )
        return out_state, out, info

    def check_state(state, n_rows):
        if not isinstance(state, SekhariState):
            raise ValueError(
                f"Expected a SekhariState (from this method's train), got {type(state).__name__}."
            )
        _flat.check_params_like("state.params", state.params, model.params)
        _flat.check_vector("state.erm", state.erm, (p,))
        _flat.check_vector("state.secret", state.secret, (p,))
        _flat.check_vector("state.hessian", state.hessian, (p, p))
        _flat.check_vector("state.mask", state.mask, (n_rows,))

    def unlearn(key: PRNGKey, state: SekhariState, request, data: Data):
        _validate.prng_key("key", key)
        data = check_data(data)
        check_state(state, data.num_rows)
        request = check_request(request, state.mask)
        _flat.check_request_shape(request)
        k = int(np.shape(request)[0])
        if _flat.is_concrete(state.num_removed, state.valid):
            if not bool(state.valid):
                raise ValueError(
                    "This state's training charge was poisoned (an assumption failed "
                    "at training); it certifies no deletion. Retrain."
                )
            total = int(state.num_removed) + k
            if total > capacity:
                raise RetrainRequired(
                    f"Request of {k} rows would bring the deletions since training to "
                    f"{total} > capacity={capacity}: σ was calibrated for at most "
                    f"capacity={capacity} deletions. Retrain on the remaining rows."
                )
        new, out, info = unlearn_impl(key, state, request, data)
        if _flat.is_concrete(info.valid) and not bool(info.valid):
            raise _unlearn_error(info)
        return new, out, info

    def _unlearn_error(info: SekhariInfo) -> ValueError:
        if not bool(info.request_ok):
            return ValueError(
                "Invalid request (out of range, repeated, already removed or all rows)."
            )
        if not bool(info.finite):
            return ValueError("Expected the deleted rows of data to be finite.")
        if not bool(info.gradient_bound_ok):
            return ValueError(
                f"A deleted row has ‖∇f(ŵ, z)‖={float(info.max_gradient_norm):.6g} > "
                f"gradient_bound={L}: the noise was calibrated for gradient_bound."
            )
        if not bool(info.strongly_convex):
            return ValueError(
                "The remaining loss is not lam-strongly convex at ŵ: λ_min(Ĥ)="
                f"{float(info.min_eigenvalue):.6g} < lam={lam}."
            )
        return ValueError("Unlearning produced non-finite parameters.")

    def predict(params, inputs):
        return jax.vmap(model.predict, in_axes=(None, 0))(params, inputs)

    return Method(
        name="sekhari",
        currency="sekhari",
        train=train,
        unlearn=unlearn,
        predict=predict,
    )
