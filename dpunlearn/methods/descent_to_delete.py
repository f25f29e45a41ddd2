"""Descent-to-Delete (Neel, Roth, Sharifi-Malvajerdi, ALT 2021): perturbed projected GD.

Neel, Roth, Sharifi-Malvajerdi. *Descent-to-Delete: Gradient-Based Methods for
Machine Unlearning.* ALT 2021. https://arxiv.org/abs/2007.02923 (perturbed
gradient descent and its Theorem 3.1 noise; the strong-unlearning variant).

**Problem.** ``F_D(θ) = (1/|D|) Σ_{z∈D} f(θ, z)`` with
``f = loss + (λ/2)‖θ‖²`` over the ℓ2 ball ``Θ = {‖θ‖ <= R}`` of the flattened
parameters (any pytree, ``ravel_pytree``). Assumptions: F is ``m = λ``-strongly
convex and β-smooth on Θ (``smoothness``), and ``‖∇f(θ, z)‖ <= L``
(``gradient_bound``) on Θ.

**Steps.** Projected GD ``θ ← Π_Θ(θ − η ∇F_D(θ))`` with ``η = 2/(β + m)``, a
contraction with ``γ = (β − m)/(β + m)`` (per-example gradients by
``vmap(grad)``, ``K`` steps in ``lax.scan``).

**Training** ``A(D)``: ``T`` steps from ``θ_init = Π_Θ(model.params)`` on ``D``;
``T`` (``train_iterations``) defaults to the smallest value for which
``γ^T·2R <= E`` (``currencies.d2d_initial_iterations``, with the largest
per-update ``I`` for the strong variant). Releases ``θ_T + N(0, σ² I)``.

**Unlearning a row** (one *update*; a request of ``k`` rows runs ``k`` updates
in turn, inside one ``lax.scan``):

* ``variant="weak"`` (the paper's perturbed GD): ``I`` steps on the remaining
  rows from the **secret, un-noised** iterate ``θ′``; after the last update of
  the request, publish ``θ′ + N(0, σ² I)`` with (Theorem 3.1 as implemented by
  both public codes, ``currencies.d2d_sigma``)

      σ = 4√2·L·γ^I / (m·n·(1 − γ^I)·(√(ln(1/δ) + ε) − √(ln(1/δ))))   ("paper"),

  half of it (``"tight"``: the zCDP Gaussian on the derived distance
  ``Δ = 4Lγ^I/(mn(1−γ^I))``), or the exact Gaussian on Δ (``"analytic"``).
  ``n`` is the smallest data set a row was deleted from (``n_before − k + 1``).
  Only the *published* outputs are certified; the state holds the secret.
* ``variant="strong"`` (state = the noisy model): the ``i``-th update runs
  ``I_i = I + ⌈ln ln(4 p i/δ)/ln(1/γ)⌉`` steps from the **published** iterate
  and adds ``N(0, σ_i² I)`` with
  ``σ_i = 8Lγ^{I_i}/(m n (1 − γ^{I_i}) (√(2ln(2/δ)+3ε) − √(2ln(2/δ)+2ε)))``
  (``currencies.d2d_strong_iterations`` / ``d2d_strong_sigma``; constants as in
  the Graph-COM code, structure verified, constants not re-derived); requires
  ``I >= currencies.d2d_strong_min_iterations``. Training publishes
  ``θ_T + N(0, σ_1² I)`` at ``n = n₀`` (the scale of the first update; a choice
  made here: the public code does not noise its training output).

Nothing accumulates: every release is (ε, δ) (for non-adaptive requests) and
the certificate's reference is ``A(D_i) + N(0, σ² I)`` with the **same** σ
(:func:`reference_release` of a model retrained on ``D_i``).

**Checks**, eagerly with a ``ValueError`` or under ``jit`` by poisoning the
charge (``epsilon = +inf``, model unchanged): ``lam > 0``, ``smoothness >= lam``,
``iterations >= I_min`` (strong), ``train_iterations`` large enough, finite
data, a valid request, ``‖∇f(θ, z)‖ <= L`` for the deleted rows at the update's
start (a necessary condition of the bound over Θ), and with
``check_convexity=True`` the Hessian of ``F`` at the trained iterate has
eigenvalues in ``[m, β]`` up to rounding (an ``O(p²)``-memory check).

**Non-convex models** (an MLP): the contraction needs strong convexity and
smoothness; ``check_convexity=True`` refuses an MLP whose Hessian leaves
``[m, β]``. ``check_convexity=False`` runs the same iterations and noise and
the charge carries ``convexity_checked=False``: ε is then conditional on
``F`` being m-strongly convex and β-smooth on Θ, which for a network is an
assumption, not a certificate.
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

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
from dpunlearn.types import Array, PRNGKey, PyTree

__all__ = [
    "D2DCharge",
    "D2DInfo",
    "D2DState",
    "descent_to_delete",
    "reference_release",
]

Variant = Literal["weak", "strong"]
Calibration = Literal["paper", "tight", "analytic"]


class D2DState(NamedTuple):
    """A Descent-to-Delete model (arrays only; never holds data).

    Attributes:
      params: The published model ``θ̂`` in the model's pytree structure.
      secret: Flat ``[p]``. Weak: the un-noised iterate ``θ′`` (secret; never
        release it). Strong: the un-noised training output until the first
        update (unused by unlearning), then the flattened ``params``.
      mask: ``bool[n]``: rows still in the model.
      num_updates: Single-row updates since training (``i``).
      sigma: σ of the latest release.
      valid: False if training violated an assumption (later charges poisoned).
    """

    params: PyTree
    secret: Array
    mask: Array
    num_updates: Array
    sigma: Array
    valid: Array


class D2DCharge(NamedTuple):
    """What a training or a request costs, in the ``"d2d"`` currency.

    Attributes:
      num_removed: Rows removed by this call (= single-row updates run; 0 for
        training or a refused request). The ``"d2d"`` ledger books one row per
        entry: a request of ``k`` rows is ``k`` entries.
      iterations: GD steps per update, ``I`` (weak) or ``I_i`` of the last
        update (strong); ``T`` for training.
      total_iterations: GD steps this call ran.
      sigma: σ of the published release.
      num_rows: ``n`` in σ: the smallest data set a row was deleted from
        (``n₀`` for training).
      epsilon: ε of the release (``+inf`` when poisoned; conditional on
        convexity when ``convexity_checked`` is False).
      delta: δ of the certificate.
      convexity_checked: Whether the Hessian check ran at training.
      valid: Every check passed (else the model is unchanged).
    """

    num_removed: Array
    iterations: Array
    total_iterations: Array
    sigma: Array
    num_rows: Array
    epsilon: Array
    delta: Array
    convexity_checked: Array
    valid: Array


class D2DInfo(NamedTuple):
    """Diagnostics of one request.

    Attributes:
      valid: All checks passed.
      request_ok: Indices distinct, in range, present, leaving a row.
      finite: The data are finite.
      gradient_bound_ok: ``‖∇f(θ, z)‖ <= L`` for the deleted rows at the start.
      trained_ok: The state's training was valid.
      max_gradient_norm: ``max ‖∇f(θ, z)‖`` over the deleted rows.
    """

    valid: Array
    request_ok: Array
    finite: Array
    gradient_bound_ok: Array
    trained_ok: Array
    max_gradient_norm: Array


def reference_release(key: PRNGKey, state: D2DState, sigma) -> PyTree:
    """``state.secret + N(0, σ² I)`` in the model's structure.

    The certificate's reference: pass the state of a model retrained (``train``)
    on the remaining rows, whose ``secret`` is the un-noised ``A(D_i)``, and the
    ``sigma`` of the release it is compared with (``charge.sigma``). The same
    Gaussian draw as the method's own releases.
    """
    _, unravel = ravel_pytree(state.params)
    return _flat.release(key, state.secret, sigma, unravel)


def descent_to_delete(
    model: models.Model,
    *,
    lam: float,
    epsilon: float,
    delta: float,
    iterations: int,
    radius: float,
    smoothness: float,
    gradient_bound: float,
    variant: Variant = "weak",
    calibration: Calibration | None = None,
    train_iterations: int | None = None,
    check_convexity: bool = True,
) -> Method:
    """Descent-to-Delete: projected GD, a secret iterate and per-release noise.

    Args:
      model: Any :class:`~dpunlearn.models.Model`; ``θ_init = Π_Θ(model.params)``.
      lam: L2 strength, the strong convexity ``m > 0`` of ``F``.
      epsilon, delta: (ε, δ) of every release.
      iterations: ``I``, GD steps per single-row update.
      radius: ``R`` of the ball Θ (diameter ``2R`` in ``T``).
      smoothness: β of the regularised mean loss on Θ (``>= lam``); for the
        logistic loss with ``‖x‖ <= 1``, ``1/4 + lam``.
      gradient_bound: L, bound on ``‖∇f(θ, z)‖`` of the regularised loss on Θ;
        for the logistic loss, ``max‖x‖ + lam·R``.
      variant: ``"weak"`` (published outputs certified) or ``"strong"``.
      calibration: Weak variant only: ``"paper"`` (default), ``"tight"`` or
        ``"analytic"`` (see the module docstring).
      train_iterations: ``T``; default the smallest that the certificate
        allows for the data's row count; a smaller value raises.
      check_convexity: Check the Hessian at training (module docstring).

    Returns:
      A :class:`~dpunlearn.methods.base.Method` with currency ``"d2d"``.

    Raises:
      ValueError: ``lam <= 0``, ``smoothness < lam``, bad constants, or
        (strong) ``iterations`` below the minimum.

    Guarantees:
      Certified (conditional on the module docstring's assumptions, of which
      β and L over all of Θ are not fully checked): each published release is
      (ε, δ)-indistinguishable from :func:`reference_release` of ``train`` on
      the remaining rows with the release's σ.
    """
    if isinstance(lam, (int, float, np.number)) and not lam > 0:
        raise ValueError(
            f"Expected lam={lam} > 0: Descent-to-Delete's contraction needs an "
            "m-strongly convex loss, which the L2 term (lam/2)‖θ‖² provides."
        )
    _validate.positive(
        lam=lam,
        epsilon=epsilon,
        radius=radius,
        smoothness=smoothness,
        gradient_bound=gradient_bound,
    )
    _validate.open_interval(0.0, 1.0, delta=delta)
    _validate.positive_int(iterations=iterations)
    if variant not in ("weak", "strong"):
        raise ValueError(f"Expected variant in ('weak', 'strong'), got {variant!r}.")
    if variant == "strong" and calibration is not None:
        raise ValueError(
            "calibration applies to the weak variant; the strong variant has its own σ."
        )
    calibration = calibration or "paper"
    if calibration not in ("paper", "tight", "analytic"):
        raise ValueError(
            f"Expected calibration in ('paper', 'tight', 'analytic'), got {calibration!r}."
        )
    if train_iterations is not None:
        _validate.positive_int(train_iterations=train_iterations)
    m, beta, L, R = float(lam), float(smoothness), float(gradient_bound), float(radius)
    epsilon, delta = float(epsilon), float(delta)
    currencies.d2d_contraction(m, beta)  # raises unless β >= m > 0
    eta = 2.0 / (beta + m)
    flat = _flat.flatten_model(model, m)
    dtype, p = flat.flat0.dtype, flat.dim
    const = {"lipschitz": L, "strong_convexity": m, "smoothness": beta}
    if variant == "strong":
        i_min = currencies.d2d_strong_min_iterations(
            epsilon, delta, dim=p, strong_convexity=m, smoothness=beta
        )
        if iterations < i_min:
            raise ValueError(
                f"Expected iterations={iterations} >= {i_min} for the strong variant "
                f"(d2d_strong_min_iterations at ε={epsilon}, δ={delta}, p={p})."
            )
        sigma_one = None
    else:
        # σ ∝ 1/n exactly (n enters only Δ): σ(n) = σ(1)/n.
        sigma_one = currencies.d2d_sigma(
            epsilon, delta, n=1, iterations=iterations, variant=calibration, **const
        )

    @functools.lru_cache(maxsize=8)
    def schedule(n_rows: int):
        """Host constants for data with ``n_rows`` rows: (T_required, strong tables)."""
        if variant == "weak":
            i_last = iterations
            tables = None
        else:

            def it(i):
                return currencies.d2d_strong_iterations(
                    i,
                    iterations=iterations,
                    dim=p,
                    delta=delta,
                    strong_convexity=m,
                    smoothness=beta,
                )

            i_first, i_last = it(1), it(max(n_rows, 1))
            breaks = []
            for v in range(i_first + 1, i_last + 1):  # first update index with I_i >= v
                lo, hi = 1, max(n_rows, 1)
                while lo < hi:
                    mid = (lo + hi) // 2
                    lo, hi = (lo, mid) if it(mid) >= v else (mid + 1, hi)
                breaks.append(lo)
            sig = [
                currencies.d2d_strong_sigma(epsilon, delta, n=1, iterations=v, **const)
                for v in range(i_first, i_last + 1)
            ]
            tables = (
                i_first,
                np.asarray(breaks, np.int64),
                np.asarray(sig, np.float64),
            )
        return i_last, tables

    def required_t(n: int, n_rows: int) -> int:
        i_last, _ = schedule(n_rows)
        return currencies.d2d_initial_iterations(
            iterations=i_last, diameter=2.0 * R, n=max(n, 1), **const
        )

    per_grad = jax.vmap(jax.grad(flat.loss), in_axes=(None, 0, 0))

    def project(w):
        norm = jnp.linalg.norm(w)
        return w * jnp.minimum(1.0, R / jnp.where(norm > 0, norm, 1.0))

    def gd_step(w, data, mask):
        grads = jnp.where(mask[:, None], per_grad(w, data.x, data.y), 0)
        g = jnp.sum(grads, axis=0) / jnp.sum(mask).astype(dtype)
        return project(w - eta * g)

    def gd(w, data, mask, steps):
        """``steps`` projected GD steps (a Python int: ``lax.scan``; traced: a loop)."""
        if isinstance(steps, int):
            w, _ = _sharding.scan(
                lambda w, _: (gd_step(w, data, mask), None), w, None, length=steps
            )
            return w
        return _sharding.fori_loop(0, steps, lambda _, w: gd_step(w, data, mask), w)

    def strong_iterations(i, tables):
        i_first, breaks, _ = tables
        return i_first + jnp.sum(i >= jnp.asarray(breaks, jnp.int32)).astype(jnp.int32)

    def strong_sigma(iters, n, tables):
        i_first, _, sig = tables
        return jnp.asarray(sig, dtype)[iters - i_first] / n

    def eps_charge(valid):
        return jnp.where(valid, jnp.asarray(epsilon, dtype), jnp.inf)

    @functools.partial(jax.jit, static_argnames="steps")
    def train_impl(key, data, mask, *, steps):
        _, tables = schedule(mask.shape[0])
        n0 = jnp.sum(mask)
        w = gd(project(flat.flat0), data, mask, steps)
        if variant == "weak":
            sigma = jnp.asarray(sigma_one, dtype) / n0.astype(dtype)
        else:
            sigma = strong_sigma(jnp.asarray(tables[0]), n0.astype(dtype), tables)
        params = _flat.release(key, w, sigma, flat.unravel)
        finite = _flat.all_finite(data) & jnp.all(jnp.isfinite(w))
        if check_convexity:

            def F(v):
                vals = jax.vmap(flat.loss, in_axes=(None, 0, 0))(v, data.x, data.y)
                return jnp.sum(jnp.where(mask, vals, 0)) / n0.astype(dtype)

            H = jax.hessian(F)(w)
            s = jnp.linalg.eigvalsh(0.5 * (H + H.T))
            tol = _flat.eig_tolerance(dtype, p + mask.shape[0], beta)
            convex = (s[0] >= m - tol) & (s[-1] <= beta + tol)
            extremes = (s[0], s[-1])
        else:
            convex = jnp.asarray(True)
            extremes = (jnp.asarray(jnp.nan, dtype), jnp.asarray(jnp.nan, dtype))
        valid = finite & convex
        state = D2DState(
            params=params,
            secret=w,
            mask=mask,
            num_updates=jnp.zeros((), jnp.int32),
            sigma=sigma,
            valid=valid,
        )
        charge = D2DCharge(
            num_removed=jnp.zeros((), jnp.int32),
            iterations=jnp.asarray(steps, jnp.int32),
            total_iterations=jnp.asarray(steps, jnp.int32),
            sigma=sigma,
            num_rows=n0.astype(jnp.int32),
            epsilon=eps_charge(valid),
            delta=jnp.asarray(delta, dtype),
            convexity_checked=jnp.asarray(check_convexity),
            valid=valid,
        )
        return (
            state,
            charge,
            {"finite": finite, "convex": convex, "eigenvalues": extremes},
        )

    def train(key: PRNGKey, data: Data, mask: Array | None = None):
        _validate.prng_key("key", key)
        data = check_data(data)
        n_rows = data.num_rows
        mask = check_mask(mask, n_rows, data=data)
        _flat.check_loss_on_data(model, data)
        n0 = int(np.sum(np.asarray(mask))) if _flat.is_concrete(mask) else n_rows
        needed = required_t(n0, n_rows)
        steps = (
            train_iterations
            if train_iterations is not None
            else required_t(n_rows, n_rows)
        )
        if steps < needed:
            raise ValueError(
                f"Expected train_iterations={steps} >= {needed}: T must bring the "
                f"trained iterate within the steady-state distance (γ^T·2R <= E at "
                f"n={n0}{', for the largest I_i' if variant == 'strong' else ''})."
            )
        state, charge, diag = train_impl(key, data, mask, steps=steps)
        if _flat.is_concrete(charge.valid) and not bool(charge.valid):
            if not bool(diag["finite"]):
                raise ValueError(
                    "Training produced non-finite values (check data and model)."
                )
            lo, hi = (float(v) for v in diag["eigenvalues"])
            raise ValueError(
                "The regularised loss is not lam-strongly convex and smooth on the "
                f"iterates: the Hessian at the trained iterate has eigenvalues in "
                f"[{lo:.6g}, {hi:.6g}], outside [lam={m}, smoothness={beta}] beyond "
                "rounding. Descent-to-Delete's certificate needs both; "
                "check_convexity=False runs anyway, with a certificate conditional "
                "on an assumption that this check refutes."
            )
        return state, charge

    @jax.jit
    def unlearn_impl(key, state: D2DState, request, data):
        _, tables = schedule(state.mask.shape[0])
        req_ok, safe = request_valid(request, state.mask)
        k = request.shape[0]
        n_before = jnp.sum(state.mask)
        finite = _flat.all_finite(data)
        start = state.secret if variant == "weak" else ravel_pytree(state.params)[0]
        sub = _flat.rows(data, safe)
        gnorms = jnp.linalg.norm(per_grad(start, sub.x, sub.y), axis=1)
        max_gnorm = jnp.max(gnorms)
        grad_ok = jnp.all(gnorms <= L * (1 + 10 * jnp.finfo(dtype).eps))
        k_final, k_updates = jax.random.split(key)

        def update(carry, xs):
            w, mask, i = carry
            idx, k_j = xs
            n_j = jnp.sum(mask).astype(dtype)
            mask = _sharding.scatter(mask, idx, False)
            i = i + 1
            if variant == "weak":
                w = gd(w, data, mask, iterations)
                its, sigma = jnp.asarray(iterations, jnp.int32), jnp.zeros((), dtype)
            else:
                its = strong_iterations(i, tables)
                w = gd(w, data, mask, its)
                sigma = strong_sigma(its, n_j, tables)
                w = w + sigma * _flat.gaussian(k_j, p, dtype)
            return (w, mask, i), (its, sigma)

        (w, mask, i), (its, sigmas) = _sharding.scan(
            update,
            (start, state.mask, state.num_updates),
            (safe, jax.random.split(k_updates, k)),
        )
        n_min = n_before - k + 1
        if variant == "weak":
            sigma = jnp.asarray(sigma_one, dtype) / n_min.astype(dtype)
            params = _flat.release(k_final, w, sigma, flat.unravel)
        else:
            sigma = sigmas[-1]
            params = flat.unravel(w)
        valid = state.valid & req_ok & finite & grad_ok & jnp.all(jnp.isfinite(w))
        new = D2DState(
            params=params,
            secret=w,
            mask=mask,
            num_updates=i,
            sigma=sigma,
            valid=state.valid,
        )
        out_state = _flat.where_tree(valid, new, state)
        charge = D2DCharge(
            num_removed=jnp.where(valid, k, 0).astype(jnp.int32),
            iterations=its[-1],
            total_iterations=jnp.sum(its).astype(jnp.int32),
            sigma=sigma,
            num_rows=n_min.astype(jnp.int32),
            epsilon=eps_charge(valid),
            delta=jnp.asarray(delta, dtype),
            convexity_checked=jnp.asarray(check_convexity),
            valid=valid,
        )
        info = D2DInfo(
            valid=valid,
            request_ok=req_ok,
            finite=finite,
            gradient_bound_ok=grad_ok,
            trained_ok=state.valid,
            max_gradient_norm=max_gnorm,
        )
        return out_state, charge, info

    def check_state(state, n_rows):
        if not isinstance(state, D2DState):
            raise ValueError(
                f"Expected a D2DState (from this method's train), got {type(state).__name__}."
            )
        _flat.check_params_like("state.params", state.params, model.params)
        _flat.check_vector("state.secret", state.secret, (p,))
        _flat.check_vector("state.mask", state.mask, (n_rows,))

    def unlearn(key: PRNGKey, state: D2DState, request, data: Data):
        _validate.prng_key("key", key)
        data = check_data(data)
        check_state(state, data.num_rows)
        request = check_request(request, state.mask)
        _flat.check_request_shape(request)
        if _flat.is_concrete(state.valid) and not bool(state.valid):
            raise ValueError(
                "This state's training charge was poisoned (an assumption failed at "
                "training); it certifies no deletion. Retrain."
            )
        new, charge, info = unlearn_impl(key, state, request, data)
        if _flat.is_concrete(info.valid) and not bool(info.valid):
            if not bool(info.request_ok):
                raise ValueError(
                    "Invalid request (out of range, repeated, already removed or all rows)."
                )
            if not bool(info.finite):
                raise ValueError("Expected data to be finite.")
            if not bool(info.gradient_bound_ok):
                raise ValueError(
                    f"A deleted row has ‖∇f(θ, z)‖={float(info.max_gradient_norm):.6g} > "
                    f"gradient_bound={L}: the noise was calibrated for gradient_bound."
                )
            raise ValueError("Unlearning produced non-finite parameters.")
        return new, charge, info

    def predict(params, inputs):
        return jax.vmap(model.predict, in_axes=(None, 0))(params, inputs)

    return Method(
        name="descent_to_delete",
        currency="d2d",
        train=train,
        unlearn=unlearn,
        predict=predict,
    )
