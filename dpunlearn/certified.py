"""Certified removal for linear models: loss-perturbed training and Newton removal.

Implements Guo, Goldstein, Hannun, van der Maaten, "Certified Data Removal from
Machine Learning Models", ICML 2020 (arXiv:1911.03030):

* **Training** (Algorithm 1): minimise the perturbed objective, in the sum form
  ``L_b(w; D) = Σ_i ℓ(wᵀx_i, y_i) + (λn/2)‖w‖² + bᵀw``, ``b ~ N(0, σ²I)``.
  This is the mean-form objective ``(1/n)Σℓ + (λ/2)‖w‖² + bᵀw/n`` times ``n``:
  same minimiser, gradients ``n`` times larger.
* **Removal** (§3, eq. 3): one Newton step with the Hessian of the *remaining*
  data at the current weights, ``w⁻ = w + H⁻¹Δ``, ``Δ = kλw + Σ_{j∈batch}
  ∇ℓ(wᵀx_j, y_j)``, for one point (``k = 1``) or a batch of ``k`` points.
* **Certificate** (Theorem 3, Algorithm 2): the gradient residual ``u`` of the
  released model on the remaining data is bounded after every removal; the
  bounds add up to ``β``. While ``β`` stays within the residual budget for a
  target ``(ε, δ)`` (:func:`residual_budget`), the released model is
  ``(ε, δ)``-indistinguishable from retraining. Past it, :func:`retrain`.

Everything is in the **sum form** (``algorithms.md`` §11: a mean-form bound
compared with ``σε/c`` overstates the supported removals ``n``-fold). The state
charges, beside the per-removal bounds, the training solver's leftover gradient
and the residual of every linear solve.

The bounds, per removal and per head (``v = H⁻¹Δ``, ``s = X′v``, ``N`` a
certified upper bound on ``‖X‖₂``, which bounds ``‖X′‖₂`` for every row subset):

* ``worst_case_bound`` = ``4γk²C²/(λ²n′)`` (Theorem 1; its batch form);
* ``data_dependent_bound`` = ``γ·N·‖v‖·‖s‖`` (Corollary 1, ``bound_form=
  "corollary1"``) or, by default, ``(γ/2)·N·‖s‖₄²`` (``bound_form="integral"``). The second
  is derived from the exact remainder ``∫₀¹ (H(w+tv) − H(w)) v dt =
  X′ᵀ ∫₀¹ (ℓ''(z + t s) − ℓ''(z)) ⊙ s dt``, each entry at most ``γ t s_i²`` in
  modulus, so its norm is at most ``(γ/2)‖X′‖₂‖s ⊙ s‖₂``; since
  ``‖s‖₄² ≤ ‖s‖_∞‖s‖₂ ≤ ‖v‖‖s‖₂`` when ``‖x_i‖ ≤ 1``, it is never more than half
  of Corollary 1;
* ``solve_residual`` = ``‖Δ − Hv‖``, recomputed explicitly after the solve.

The cumulative bound grows by ``data_dependent_bound + solve_residual``.

Precision: all arithmetic is in ``X``'s dtype (float32 by default, float64
when ``JAX_ENABLE_X64=1``). The certificate bounds the *exact* gradient of the
*stored* model, so the charges include an allowance for rounding: of the
training residual's computation, of each explicit solve residual and ``Δ``, and
of storing ``w + v`` (it moves the gradient by at most ``‖H‖·u·(‖w‖ + ‖v‖)``).
In float64 the allowance uses worst-case error bounds and is negligible (about
``1e-12`` relative). In float32 the summation part uses the probabilistic bound
of Higham & Mary (2019) (worst-case bounds would exceed a typical budget) and
the storage part is worst-case; together they cost about ``1e-3`` of budget
per removal at MNIST size, so float64 certifies more removals. Tests check the
float32 bounds against residuals recomputed exactly in float64.
"""

from __future__ import annotations

import functools
import math
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve

from dpunlearn import _validate, solvers
from dpunlearn.accounting import currencies, mechanisms
from dpunlearn.errors import BudgetExceededError
from dpunlearn.losses import MarginLoss, get_loss
from dpunlearn.types import Array, ArrayLike, PRNGKey

__all__ = [
    "BudgetExceededError",
    "Certificate",
    "CertifiedState",
    "RemovalInfo",
    "accuracy",
    "certificate",
    "certificate_epsilon",
    "gamma_constant",
    "normalize_rows",
    "predict",
    "remove",
    "remove_sequence",
    "residual_budget",
    "retrain",
    "sample_perturbation",
    "supported_removals",
    "train",
    "true_residual",
]

Solver = Literal["pcg", "cholesky", "cg"]
_ROW_NORM_TOL = 1e-5  # float32 rounding of an L2-normalised row


class CertifiedState(NamedTuple):
    """A removal-enabled linear model. A pytree: ``jit``-, ``vmap``-able.

    The state never holds the data set: ``X`` and ``y`` are passed to every call.

    Attributes:
      params: Weights ``[d]`` (binary, ridge) or ``[K, d]`` (one-vs-rest).
      perturbation: The secret loss perturbation ``b``, shape of ``params``.
        Never log or release it: the certificate rests on its secrecy.
      mask: ``bool[n]``, ``False`` for removed rows.
      lam: L2 strength λ (mean form). sigma: Std σ of ``b``.
      grad_residual_bound: ``β``, the cumulative certified bound on the sum-form
        gradient residual (training leftover + every removal's increment),
        summed over heads.
      training_residual: The training solver's leftover gradient norm (sum form,
        summed over heads); the part of ``β`` present before any removal.
      norm_bound: Certified upper bound on ``‖X‖₂`` (valid for all row subsets).
      row_norm_bound: ``max_i ‖x_i‖`` at training time (``<= 1``).
      precond: Inverse of the Hessian at training time, ``[d, d]`` or
        ``[K, d, d]``: the preconditioner of later removals' CG solves (any
        symmetric positive definite matrix is valid; solve residuals are
        certified). ``None`` on the matrix-free path.
      num_removed: Rows removed since training (``int32``).
    """

    params: Array
    perturbation: Array
    mask: Array
    lam: Array
    sigma: Array
    grad_residual_bound: Array
    training_residual: Array
    norm_bound: Array
    row_norm_bound: Array
    precond: Array | None
    num_removed: Array


class RemovalInfo(NamedTuple):
    """What one removal step certified (all sum form, summed over heads).

    Attributes:
      worst_case_bound: Theorem 1's data-independent bound for this step.
      data_dependent_bound: Corollary 1 (or the integral form) for this step.
      solve_residual: ``‖Δ − Hv‖`` of the linear solve (charged to ``β``).
      bound_increment: ``data_dependent_bound + solve_residual``.
      cumulative_bound: ``β`` after this step: a bound on the released model's
        gradient residual. With ``correct_residual=False`` (Algorithm 2) it is
        the running sum; with ``correct_residual=True`` it is this step's
        ``bound_increment`` (the earlier residual is cancelled).
      within_budget: ``cumulative_bound <= budget`` (``True`` if no budget).
      num_remaining: Rows left after this step.
    """

    worst_case_bound: Array
    data_dependent_bound: Array
    solve_residual: Array
    bound_increment: Array
    cumulative_bound: Array
    within_budget: Array
    num_remaining: Array


# ---------------------------------------------------------------------------
# Input validation (host side, before anything is traced).
# ---------------------------------------------------------------------------


def _check_features(X) -> None:
    _validate.ndim("X", X, 2)
    if not jnp.issubdtype(jnp.result_type(X), jnp.floating):
        raise ValueError(
            f"Expected X to have a floating dtype, got {jnp.result_type(X)}."
        )
    _validate.finite_array("X", X)
    if _validate.is_concrete(X):
        norms = np.linalg.norm(np.asarray(X, np.float64), axis=1)
        i = int(np.argmax(norms))
        if norms.size and norms[i] > 1 + _ROW_NORM_TOL:
            raise ValueError(
                f"Expected every row of X to have L2 norm <= 1 (the certificate "
                f"assumes ‖x_i‖ <= 1); row {i} has norm {norms[i]:.6g}. Call "
                f"dpunlearn.certified.normalize_rows(X) first."
            )


def _check_labels(y, n: int, loss: MarginLoss, num_classes: int | None) -> None:
    _validate.ndim("y", y, 1)
    if np.shape(y)[0] != n:
        raise ValueError(
            f"Shape mismatch: X has {n} rows but y has shape {np.shape(y)}."
        )
    if not _validate.is_concrete(y):
        return
    arr = np.asarray(y)
    if num_classes is not None:
        if loss.labels != "pm1":
            raise ValueError(f"Expected num_classes=None for loss {loss.name!r}.")
        if arr.dtype.kind not in "iu" and not np.all(arr == np.round(arr)):
            raise ValueError(
                "Expected y to hold integer class labels 0..num_classes-1."
            )
        bad = (arr < 0) | (arr >= num_classes)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"Expected y in [0, {num_classes - 1}] (num_classes={num_classes}); "
                f"y[{i}]={arr[i]}."
            )
        return
    _validate.finite_array("y", arr)
    if loss.labels == "pm1":
        bad = ~np.isin(arr, (-1, 1))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"Expected y in {{-1, +1}} for loss {loss.name!r}; y[{i}]={arr[i]}. "
                f"For integer class labels pass num_classes."
            )


def _check_indices(idx, mask, *, name: str = "idx") -> np.ndarray | None:
    """Checks removal indices against the mask; returns them as NumPy or None if traced."""
    if not (_validate.is_concrete(idx) and _validate.is_concrete(mask)):
        return None
    arr = np.asarray(idx)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"Expected {name} to hold integers, got dtype {arr.dtype}.")
    flat = arr.reshape(-1)
    m = np.asarray(mask)
    n = m.shape[0]
    if flat.size == 0:
        raise ValueError(
            f"Expected {name} to name at least one row, got an empty array."
        )
    out = (flat < 0) | (flat >= n)
    if out.any():
        raise ValueError(
            f"Expected every {name} in [0, {n - 1}]; got {flat[np.argmax(out)]} "
            f"(negative indices are not allowed)."
        )
    uniq, counts = np.unique(flat, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"Expected distinct {name}; row {uniq[np.argmax(counts > 1)]} is repeated."
        )
    gone = ~m[flat]
    if gone.any():
        raise ValueError(f"Row {flat[np.argmax(gone)]} in {name} was already removed.")
    if flat.size >= m.sum():
        raise ValueError(
            f"{name} would remove all {int(m.sum())} remaining rows; nothing would be "
            f"left to certify against. Train a new model instead."
        )
    return flat


def _check_classes(y, mask, flat, *, num_classes, loss, allow_empty_class) -> None:
    if allow_empty_class or loss.labels != "pm1" or not _validate.is_concrete(y):
        return
    arr = np.asarray(y)
    m = np.asarray(mask).copy()
    before = set(np.unique(arr[m]).tolist())
    m[flat] = False
    after = set(np.unique(arr[m]).tolist())
    emptied = sorted(before - after)
    if emptied:
        raise ValueError(
            f"This removal leaves no remaining point with label {emptied[0]}: the "
            f"{'head' if num_classes else 'model'} would then see one class only. "
            f"Pass allow_empty_class=True to proceed (the problem stays strongly "
            f"convex and the certificate holds)."
        )


def normalize_rows(X: ArrayLike) -> Array:
    """Scales every row of ``X`` to L2 norm at most 1 (rows already inside are kept)."""
    X = jnp.asarray(X)
    norms = jnp.linalg.norm(X, axis=1, keepdims=True)
    return X / jnp.maximum(norms, 1.0)


def sample_perturbation(key: PRNGKey, shape, sigma, dtype=jnp.float32) -> Array:
    """Draws the loss perturbation ``b ~ N(0, σ²I)`` (Guo et al., Algorithm 1).

    This is the only randomness of training; :func:`train` calls it with the
    shape ``[K, d]`` (``K = 1`` for a single head) and its own key.
    """
    return jnp.asarray(sigma, dtype) * jax.random.normal(key, shape, dtype)


def gamma_constant(loss: str | MarginLoss = "logistic", which: str = "paper") -> float:
    """``γ``, the Lipschitz constant of ``ℓ''``: ``"paper"`` (1/4) or ``"tight"`` (1/(6√3))."""
    return get_loss(loss).gamma_for(which)


# ---------------------------------------------------------------------------
# Kernels (pure, jitted). Internally every model has a leading head axis.
# ---------------------------------------------------------------------------


def _head_labels(y, num_classes: int | None, dtype) -> Array:
    if num_classes is None:
        return jnp.asarray(y, dtype)[None, :]
    y = jnp.asarray(y)
    return jnp.where(y[None, :] == jnp.arange(num_classes)[:, None], 1.0, -1.0).astype(
        dtype
    )


def _as_heads(a: Array, num_classes: int | None) -> Array:
    return a[None] if num_classes is None else a


def _from_heads(a: Array, num_classes: int | None) -> Array:
    return a[0] if num_classes is None else a


def _rounding_factor(dtype, m: int):
    """Relative error allowance for a computed sum of ``m`` products.

    float64: the worst case ``γ_m = m u/(1 − m u)`` (Higham, *Accuracy and
    Stability of Numerical Algorithms*, Lemma 3.1 and eq. 3.4), ``u`` the unit
    roundoff. Lower precisions: ``8 √m u``, the probabilistic bound of Higham &
    Mary (SIAM J. Sci. Comput. 2019, Theorem 3.1), which holds with probability
    at least ``1 − 2m·e^{−32}`` per sum under its model of independent
    rounding errors; the worst case ``m u`` would be larger than a float32
    budget at MNIST size.
    """
    u = float(jnp.finfo(dtype).eps) / 2
    if jnp.dtype(dtype) == jnp.float64:
        return m * u / (1 - m * u)
    return 8.0 * math.sqrt(m) * u


def _gradient_rounding(X_row_norm, loss_grad_abs_sum, reg, w, b, factor):
    """Allowance for the rounding of a computed sum-form gradient.

    ``|fl(g) − g| <= factor · (Σ_i |ℓ'_i| ‖x_i‖ + reg ‖w‖ + ‖b‖)`` in norm, where
    ``Σ_i |ℓ'_i| ‖x_i‖ <= row_norm · Σ_i |ℓ'_i|`` needs no pass over ``X``.
    """
    return factor * (
        X_row_norm * loss_grad_abs_sum + reg * jnp.linalg.norm(w) + jnp.linalg.norm(b)
    )


@functools.partial(
    jax.jit,
    static_argnames=("loss", "num_classes", "max_steps", "matrix_free", "norm_method"),
)
def _train_impl(
    key,
    X,
    y,
    mask,
    lam,
    sigma,
    tol,
    *,
    loss,
    num_classes,
    max_steps,
    matrix_free,
    norm_method,
):
    dtype = X.dtype
    n, d = X.shape
    k = 1 if num_classes is None else num_classes
    Y = _head_labels(y, num_classes, dtype)
    lam = jnp.asarray(lam, dtype)
    sigma = jnp.asarray(sigma, dtype)
    B = sample_perturbation(key, (k, d), sigma, dtype)
    weights = mask.astype(dtype)
    tol_sum = jnp.asarray(tol, dtype) * jnp.sum(weights)

    def fit(Yh, bh):
        return solvers.newton_fit(
            X,
            Yh,
            weights,
            bh,
            lam,
            loss=loss,
            tol=tol_sum,
            max_steps=max_steps,
            matrix_free=matrix_free,
        )

    W, info = jax.vmap(fit)(Y, B)
    if matrix_free:
        precond = None
    else:
        eye = jnp.eye(d, dtype=dtype)

        def inverse_hessian(w, Yh):
            L = jnp.linalg.cholesky(solvers.hessian(w, X, Yh, weights, lam, loss))
            return cho_solve((L, True), eye)

        precond = _from_heads(jax.vmap(inverse_hessian)(W, Y), num_classes)
    # The fit's own leftover gradient, plus the rounding of computing it: both
    # are part of the residual the certificate must cover.
    row_norm = jnp.max(jnp.linalg.norm(X, axis=1))
    factor = _rounding_factor(dtype, n + d)

    def rounding(w, Yh, bh):
        g_abs = jnp.sum(weights * jnp.abs(loss.grad(X @ w, Yh)))
        return _gradient_rounding(
            row_norm, g_abs, lam * jnp.sum(weights), w, bh, factor
        )

    leftover = jnp.sum(info.grad_norm) + jnp.sum(jax.vmap(rounding)(W, Y, B))
    state = CertifiedState(
        params=_from_heads(W, num_classes),
        perturbation=_from_heads(B, num_classes),
        mask=mask,
        lam=lam,
        sigma=sigma,
        grad_residual_bound=leftover,
        training_residual=leftover,
        norm_bound=solvers.spectral_norm_bound(X, method=norm_method),
        row_norm_bound=row_norm,
        precond=precond,
        num_removed=jnp.zeros((), jnp.int32),
    )
    return state, info


def _newton_direction(
    X, Yh, weights, reg, w, rhs, precond, solver, cg_tol, cg_maxiter, loss
):
    """Solves ``H v = rhs`` with ``H`` the Hessian of the remaining rows at ``w``.

    Returns ``(v, Xv, D)``: the direction, ``X v`` over all rows, and the
    curvature ``D`` (so that ``H = Xᵀ diag(D) X + reg·I``).

    ``"cholesky"`` rebuilds and factors ``H`` (``n d²`` flops); ``"pcg"`` runs CG
    preconditioned by the stored inverse of the training-time Hessian, a
    matrix–vector product (on XLA's CPU backend 7× faster than two triangular
    solves with its Cholesky factor; its accuracy does not matter because the
    residual is certified, not trusted); ``"cg"`` runs CG without it.
    """
    curvature = lambda z: weights * loss.hess(z, Yh)
    if solver == "cholesky":
        D = curvature(X @ w)
        H = solvers.hessian_from_curvature(X, D, reg)
        v = cho_solve((jnp.linalg.cholesky(H), True), rhs)
        return v, X @ v, D
    apply_precond = None if solver == "cg" else (lambda r: precond @ r)
    v, Xv, D, _ = solvers.pcg_gram(
        X, curvature, reg, rhs, w, precond=apply_precond, tol=cg_tol, maxiter=cg_maxiter
    )
    return v, Xv, D


def _remove_step(
    state: CertifiedState,
    idx,
    X,
    Y,
    budget,
    *,
    loss,
    gamma,
    bound_form,
    solver,
    cg_tol,
    cg_maxiter,
    num_classes,
    correct_residual,
):
    dtype = X.dtype
    lam = state.lam
    mask = state.mask.at[idx].set(False)
    weights = mask.astype(dtype)
    n_left = jnp.sum(weights)
    k = idx.shape[0]
    W = _as_heads(state.params, num_classes)
    B = _as_heads(state.perturbation, num_classes)
    factors = None if state.precond is None else _as_heads(state.precond, num_classes)
    X_rm = X[idx]
    n, d = X.shape
    factor = _rounding_factor(dtype, n + d)
    u = float(jnp.finfo(dtype).eps)  # covers the two roundings of w + v per entry

    def head(w, Yh, bh, precond):
        reg = lam * n_left
        r = state.row_norm_bound
        if correct_residual:
            # Newton step on the full gradient of the remaining perturbed
            # objective, g′ = ∇L_b(w; D′): it also cancels the residual left by
            # training and earlier removals (one extra pass over X).
            z = X @ w
            lg = weights * loss.grad(z, Yh)
            rhs = -(lg @ X + reg * w + bh)
            rhs_rounding = _gradient_rounding(
                r, jnp.sum(jnp.abs(lg)), reg, w, bh, factor
            )
        else:
            # Δ: gradient of the removed terms, including the change λk·w of the
            # sum-form regulariser λn′/2‖w‖² (Guo et al. §3, batch form).
            lg_rm = loss.grad(X_rm @ w, Yh[idx])
            rhs = k * lam * w + lg_rm @ X_rm
            rhs_rounding = factor * (
                k * lam * jnp.linalg.norm(w) + r * jnp.sum(jnp.abs(lg_rm))
            )
        v, xv, D = _newton_direction(
            X, Yh, weights, reg, w, rhs, precond, solver, cg_tol, cg_maxiter, loss
        )
        # Certify the solve: recompute the residual explicitly (one pass over X),
        # plus an allowance for the rounding of that computation, of the
        # right-hand side, and of storing w + v (which moves the gradient by at
        # most ‖H‖·u·(‖w‖ + ‖v‖)).
        solve_res = jnp.linalg.norm(rhs - ((D * xv) @ X + reg * v))
        hv_terms = r * jnp.sum(jnp.abs(D * xv)) + reg * jnp.linalg.norm(v)
        h_norm = state.norm_bound**2 * jnp.max(D) + reg
        solve_res = (
            solve_res
            + factor * hv_terms
            + rhs_rounding
            + u * h_norm * (jnp.linalg.norm(w) + jnp.linalg.norm(v))
        )
        s = weights * xv  # X′v with removed rows zeroed
        if bound_form == "corollary1":
            dd = gamma * state.norm_bound * jnp.linalg.norm(v) * jnp.linalg.norm(s)
        else:
            dd = 0.5 * gamma * state.norm_bound * jnp.linalg.norm(s * s)
        return w + v, dd, solve_res

    if factors is None:
        W_new, dd, res = jax.vmap(lambda w, Yh, bh: head(w, Yh, bh, None))(W, Y, B)
    else:
        W_new, dd, res = jax.vmap(head)(W, Y, B, factors)
    num_heads = W.shape[0]
    C = loss.grad_bound * state.row_norm_bound
    # Theorem 1: ‖R‖ <= γ n′ ‖v‖² with ‖v‖ <= ‖rhs‖/(λ n′), ‖Δ‖ <= 2kC per head;
    # with the residual correction ‖rhs‖ <= 2kC + ‖u‖, and Σ_h ‖u_h‖ <= β.
    if gamma == 0:
        worst = jnp.zeros((), dtype)
    elif correct_residual:
        worst = (
            gamma
            * (num_heads * 2 * k * C + state.grad_residual_bound) ** 2
            / (lam**2 * n_left)
        )
    else:
        worst = num_heads * 4 * gamma * k**2 * C**2 / (lam**2 * n_left)
    dd, res = jnp.sum(dd), jnp.sum(res)
    increment = dd + res
    # Without the correction the residual left so far is carried over (the
    # bounds add up, Algorithm 2); with it, the step cancels it.
    beta = increment if correct_residual else state.grad_residual_bound + increment
    new_state = state._replace(
        params=_from_heads(W_new, num_classes),
        mask=mask,
        grad_residual_bound=beta,
        num_removed=state.num_removed + k,
    )
    info = RemovalInfo(
        worst_case_bound=worst,
        data_dependent_bound=dd,
        solve_residual=res,
        bound_increment=increment,
        cumulative_bound=beta,
        within_budget=beta <= budget,
        num_remaining=n_left.astype(jnp.int32),
    )
    return new_state, info


_REMOVE_STATIC = (
    "loss",
    "gamma",
    "bound_form",
    "solver",
    "cg_maxiter",
    "num_classes",
    "correct_residual",
)


@functools.partial(jax.jit, static_argnames=_REMOVE_STATIC)
def _remove_impl(state, idx, X, y, budget, cg_tol, **static):
    Y = _head_labels(y, static["num_classes"], X.dtype)
    return _remove_step(state, idx, X, Y, budget, cg_tol=cg_tol, **static)


@functools.partial(jax.jit, static_argnames=_REMOVE_STATIC)
def _remove_sequence_impl(state, idx_batches, X, y, budget, cg_tol, **static):
    Y = _head_labels(y, static["num_classes"], X.dtype)

    def step(s, idx):
        return _remove_step(s, idx, X, Y, budget, cg_tol=cg_tol, **static)

    return jax.lax.scan(step, state, idx_batches)


# ---------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------


def _num_classes_of(state: CertifiedState) -> int | None:
    return None if state.params.ndim == 1 else state.params.shape[0]


def _default_cg_tol(dtype) -> float:
    return 1e-12 if jnp.dtype(dtype) == jnp.float64 else 1e-6


def train(
    key: PRNGKey,
    X: ArrayLike,
    y: ArrayLike,
    *,
    lam: float,
    sigma: float,
    loss: str | MarginLoss = "logistic",
    num_classes: int | None = None,
    tol: float = 1e-8,
    max_steps: int = 100,
    matrix_free: bool = False,
    norm_method: str = "auto",
    mask: ArrayLike | None = None,
) -> CertifiedState:
    """Trains a removal-enabled linear model with loss perturbation (Algorithm 1).

    Minimises ``(1/n) Σ_i ℓ(wᵀx_i, y_i) + (λ/2)‖w‖² + bᵀw/n`` with
    ``b ~ N(0, σ²I)`` by damped Newton's method, for binary logistic
    regression (``y ∈ {±1}``), ridge regression (``loss="ridge"``, real ``y``)
    or one-vs-rest logistic regression (``num_classes=K``, ``y ∈ {0..K−1}``;
    one perturbation column per head).

    Args:
      key: A ``jax.random`` key, consumed once to draw ``b``.
      X: Features ``[n, d]``, floating, every row with ``‖x_i‖ <= 1``.
      y: Labels ``[n]``.
      lam: L2 strength λ > 0 (mean form). Traced.
      sigma: Std σ >= 0 of ``b``. Traced. σ = 0 gives no certificate.
      loss: ``"logistic"`` or ``"ridge"`` (or a :class:`MarginLoss`). Static.
      num_classes: ``K`` for one-vs-rest; ``None`` for a single head. Static.
      tol: Mean-form gradient-norm tolerance of the solver. Whatever is left,
        ``n ×`` the mean-form norm, is charged to ``grad_residual_bound``.
      max_steps: Newton step limit. Static.
      matrix_free: Newton–CG on Hessian–vector products, no ``d × d`` matrix
        (and no Cholesky preconditioner for removals). Static.
      norm_method: How ``‖X‖₂`` is bounded; see
        :func:`dpunlearn.solvers.spectral_norm_bound`. Static.
      mask: Optional ``bool[n]`` of rows to train on (default: all).

    Returns:
      A :class:`CertifiedState`.

    Raises:
      ValueError: bad shapes, NaN/inf, rows with norm > 1, labels outside the
        expected set, ``lam <= 0``, ``sigma < 0``, ``tol <= 0``.

    Guarantees:
      ``params`` minimises the perturbed objective up to the sum-form gradient
      norm ``training_residual``, which is charged to ``grad_residual_bound``.

    Example:
      >>> import jax, numpy as np
      >>> X = np.eye(4, 3)[[0, 1, 2, 0, 1, 2]] * 0.5
      >>> y = np.array([1.0, -1.0, 1.0, 1.0, -1.0, 1.0])
      >>> state = train(jax.random.key(0), X, y, lam=0.1, sigma=0.5)
      >>> state.params.shape, bool(state.training_residual < 1e-3)
      ((3,), True)
      >>> state, info = remove(state, np.array([3]), X, y)
      >>> bool(true_residual(state, X, y) <= info.cumulative_bound)
      True
    """
    loss = get_loss(loss)
    _check_features(X)
    X = jnp.asarray(X)
    n = X.shape[0]
    _check_labels(y, n, loss, num_classes)
    _validate.positive(lam=lam, tol=tol)
    _validate.non_negative(sigma=sigma)
    _validate.positive_int(max_steps=max_steps)
    if num_classes is not None:
        _validate.positive_int(num_classes=num_classes)
    if mask is None:
        mask = jnp.ones((n,), bool)
    else:
        mask = jnp.asarray(mask, bool)
        if mask.shape != (n,):
            raise ValueError(f"Expected mask of shape ({n},), got {mask.shape}.")
    state, _ = _train_impl(
        key,
        X,
        jnp.asarray(y),
        mask,
        lam,
        sigma,
        tol,
        loss=loss,
        num_classes=num_classes,
        max_steps=max_steps,
        matrix_free=matrix_free,
        norm_method=norm_method,
    )
    return state


def retrain(
    key: PRNGKey,
    state: CertifiedState,
    X: ArrayLike,
    y: ArrayLike,
    **kwargs,
) -> CertifiedState:
    """Retrains from scratch on the remaining rows with a fresh ``b``; resets ``β``.

    This is what Algorithm 2 does once the residual budget is spent: the new
    model is an exact run of the training algorithm on the remaining data, so
    the unlearning certificate starts afresh (``β`` = the new training
    residual). ``key`` must be new (never the training key). ``kwargs`` are
    passed to :func:`train` (``loss``, ``tol``, ``max_steps``...); ``lam``,
    ``sigma`` and ``num_classes`` default to the state's.
    """
    kwargs.setdefault(
        "lam", float(state.lam) if _validate.is_concrete(state.lam) else state.lam
    )
    kwargs.setdefault(
        "sigma",
        float(state.sigma) if _validate.is_concrete(state.sigma) else state.sigma,
    )
    kwargs.setdefault("num_classes", _num_classes_of(state))
    kwargs.setdefault("matrix_free", state.precond is None)
    return train(key, X, y, mask=state.mask, **kwargs)


def remove(
    state: CertifiedState,
    idx: ArrayLike,
    X: ArrayLike,
    y: ArrayLike,
    *,
    loss: str | MarginLoss = "logistic",
    gamma: Literal["paper", "tight"] = "paper",
    bound_form: Literal["corollary1", "integral"] = "integral",
    solver: Solver | None = None,
    budget: float | None = None,
    strict: bool = False,
    allow_empty_class: bool = False,
    cg_tol: float | None = None,
    cg_maxiter: int = 50,
    correct_residual: bool = False,
) -> tuple[CertifiedState, RemovalInfo]:
    """Removes the rows ``idx`` with one Newton step and updates the certificate.

    Rows are masked, not deleted, so shapes stay fixed: calls with the same
    ``len(idx)`` reuse one compiled program.

    Args:
      state: From :func:`train`, :func:`retrain` or a previous removal.
      idx: Integer row indices ``[k]`` (or a scalar) removed in one step.
      X, y: The arrays the model was trained on.
      loss: As in training. Static.
      gamma: ``"paper"`` (1/4, Guo et al.) or ``"tight"`` (1/(6√3)) for logistic.
      bound_form: ``"integral"`` (default: the exact-remainder form derived in
        the module docstring, never more than half of Corollary 1) or
        ``"corollary1"`` (the paper's data-dependent bound, for reproductions).
      solver: ``"pcg"`` (default with a stored preconditioner: CG
        preconditioned by the training-time inverse Hessian; about five passes
        over ``X`` per removal), ``"cholesky"`` (rebuild and factor the Hessian: exact,
        ``n d²``), ``"cg"`` (matrix-free; default without a factor).
      budget: Residual budget (from :func:`residual_budget`); ``None`` = no check.
      strict: Raise :class:`BudgetExceededError` instead of returning a state
        whose ``info.within_budget`` is ``False``.
      allow_empty_class: Allow a removal that leaves a class with no point.
      cg_tol: Relative CG tolerance (default 1e-6 in float32, 1e-12 in float64);
        whatever residual is left is charged to the bound.
      cg_maxiter: CG iteration limit. Static.
      correct_residual: Beyond the paper (derived here, see below). ``False``
        (default): Guo et al.'s step ``v = H⁻¹Δ`` on the removed points' terms;
        the residual ``u`` left by training and earlier steps is carried over,
        so ``β`` grows by each step's bound (Algorithm 2). ``True``: the step
        solves ``H v = −∇L_b(w; D′)``, the full gradient of the remaining
        perturbed objective (one more pass over ``X``). The gradient after the
        step is then ``−r + R`` (solve residual and Taylor remainder) only,
        because ``∇L_b(w; D′) + Hv = −r``; the carried-over residual is
        cancelled, and ``β`` becomes this step's bound instead of a running
        sum. The certificate argument (Theorem 3) only needs a bound on the
        released model's residual, so the budget no longer drains with the
        number of requests. Static.

    Returns:
      ``(new_state, info)``; see :class:`RemovalInfo`.

    Raises:
      ValueError: an index out of range, negative, repeated, already removed;
        a removal of every remaining row; (unless allowed) of a class's last row.
      BudgetExceededError: in strict mode, when the budget would be exceeded.
        Checks on ``idx`` need concrete values; under ``jit`` they are skipped.
    """
    return _checked_removal(
        _remove_impl,
        state,
        jnp.atleast_1d(jnp.asarray(idx)),
        X,
        y,
        name="idx",
        loss=loss,
        gamma=gamma,
        bound_form=bound_form,
        solver=solver,
        budget=budget,
        strict=strict,
        allow_empty_class=allow_empty_class,
        cg_tol=cg_tol,
        cg_maxiter=cg_maxiter,
        correct_residual=correct_residual,
    )


def remove_sequence(
    state: CertifiedState,
    idx_batches: ArrayLike,
    X: ArrayLike,
    y: ArrayLike,
    *,
    loss: str | MarginLoss = "logistic",
    gamma: Literal["paper", "tight"] = "paper",
    bound_form: Literal["corollary1", "integral"] = "integral",
    solver: Solver | None = None,
    budget: float | None = None,
    strict: bool = False,
    allow_empty_class: bool = False,
    cg_tol: float | None = None,
    cg_maxiter: int = 50,
    correct_residual: bool = False,
) -> tuple[CertifiedState, RemovalInfo]:
    """Applies a sequence of removal requests in one compiled ``lax.scan``.

    ``idx_batches`` has shape ``[T, k]``: request ``t`` removes the ``k`` rows
    ``idx_batches[t]`` in one Newton step. The returned ``info`` fields are
    stacked along ``T``. In strict mode, if any step exceeds the budget, a
    :class:`BudgetExceededError` names the first such step and nothing is
    returned (the caller keeps ``state``). Other arguments as in :func:`remove`.
    """
    batches = jnp.asarray(idx_batches)
    if batches.ndim != 2:
        raise ValueError(f"Expected idx_batches of shape [T, k], got {batches.shape}.")
    return _checked_removal(
        _remove_sequence_impl,
        state,
        batches,
        X,
        y,
        name="idx_batches",
        loss=loss,
        gamma=gamma,
        bound_form=bound_form,
        solver=solver,
        budget=budget,
        strict=strict,
        allow_empty_class=allow_empty_class,
        cg_tol=cg_tol,
        cg_maxiter=cg_maxiter,
        correct_residual=correct_residual,
    )


def _checked_removal(
    impl,
    state,
    indices,
    X,
    y,
    *,
    name,
    loss,
    gamma,
    bound_form,
    solver,
    budget,
    strict,
    allow_empty_class,
    cg_tol,
    cg_maxiter,
    correct_residual,
):
    """Host-side checks, the compiled removal, then the strict-mode budget check."""
    loss = get_loss(loss)
    X = jnp.asarray(X)
    flat = _check_indices(indices, state.mask, name=name)
    if flat is not None:
        _check_classes(
            y,
            state.mask,
            flat,
            num_classes=_num_classes_of(state),
            loss=loss,
            allow_empty_class=allow_empty_class,
        )
    new_state, info = impl(
        state,
        indices,
        X,
        jnp.asarray(y),
        _budget_value(budget),
        _default_cg_tol(X.dtype) if cg_tol is None else cg_tol,
        **_static(state, loss, gamma, bound_form, solver, cg_maxiter, correct_residual),
    )
    if strict and _validate.is_concrete(info.within_budget):
        ok = np.atleast_1d(np.asarray(info.within_budget))
        if not ok.all():
            t = int(np.argmin(ok))
            step = jax.tree.map(lambda a: np.atleast_1d(np.asarray(a))[t], info)
            prefix = f"At request {t}: " if indices.ndim == 2 else ""
            raise _budget_error(prefix, step, budget)
    return new_state, info


def _static(
    state, loss, gamma, bound_form, solver, cg_maxiter, correct_residual
) -> dict:
    if bound_form not in ("corollary1", "integral"):
        raise ValueError(
            f"Expected bound_form in ('corollary1', 'integral'), got {bound_form!r}."
        )
    if solver is None:
        solver = "cg" if state.precond is None else "pcg"
    if solver not in ("pcg", "cholesky", "cg"):
        raise ValueError(
            f"Expected solver in ('pcg', 'cholesky', 'cg'), got {solver!r}."
        )
    if solver == "pcg" and state.precond is None:
        raise ValueError(
            "solver='pcg' needs a preconditioner; this state is matrix-free."
        )
    _validate.positive_int(cg_maxiter=cg_maxiter)
    return dict(
        loss=loss,
        gamma=loss.gamma_for(gamma),
        bound_form=bound_form,
        solver=solver,
        cg_maxiter=cg_maxiter,
        num_classes=_num_classes_of(state),
        correct_residual=bool(correct_residual),
    )


def _budget_value(budget) -> float:
    if budget is None:
        return math.inf
    _validate.positive(budget=budget)
    return float(budget)


def _budget_error(prefix: str, info, budget: float) -> BudgetExceededError:
    after = float(info.cumulative_bound)
    before = after - float(info.bound_increment)
    return BudgetExceededError(
        f"{prefix}this removal would raise the residual bound from {before:.6g} to "
        f"{after:.6g}, past the budget {budget:.6g} (left before it: "
        f"{budget - before:.6g}). Retrain (dpunlearn.certified.retrain) to reset the "
        f"bound to the new model's training residual.",
        ledger="U",
        remaining=budget - before,
        restored_by_retrain=budget,
        unit="residual_norm",
    )


def true_residual(
    state: CertifiedState,
    X: ArrayLike,
    y: ArrayLike,
    *,
    loss: str | MarginLoss = "logistic",
) -> Array:
    """The quantity every bound bounds: ``‖∇L_b(w; D′)‖`` (sum form, with ``+b``).

    The gradient of the *perturbed* objective on the remaining rows, over all
    heads concatenated (the maintainers' reading in facebookresearch/
    certified-removal issue #1: without ``+b`` the "residual" is about
    ``‖b‖``). For validation only: one pass over the data.
    """
    loss = get_loss(loss)
    X = jnp.asarray(X)
    nc = _num_classes_of(state)
    Y = _head_labels(jnp.asarray(y), nc, X.dtype)
    W, B = _as_heads(state.params, nc), _as_heads(state.perturbation, nc)
    weights = state.mask.astype(X.dtype)
    G = jax.vmap(
        lambda w, Yh, b: solvers.gradient(w, X, Yh, weights, b, state.lam, loss)
    )(W, Y, B)
    return jnp.linalg.norm(G)


def predict(
    state: CertifiedState, X: ArrayLike, *, loss: str | MarginLoss = "logistic"
) -> Array:
    """Predictions: ±1 (binary logistic), class ids (one-vs-rest), reals (ridge)."""
    X = jnp.asarray(X)
    if state.params.ndim == 2:
        return jnp.argmax(X @ state.params.T, axis=1)
    scores = X @ state.params
    return scores if get_loss(loss).labels == "real" else jnp.where(scores >= 0, 1, -1)


def accuracy(state: CertifiedState, X: ArrayLike, y: ArrayLike) -> float:
    """Fraction of correct classifications of a logistic or one-vs-rest model."""
    return float(jnp.mean(predict(state, X) == jnp.asarray(y)))


# ---------------------------------------------------------------------------
# Certificate: from (σ, β) to (ε, δ) and back.
# ---------------------------------------------------------------------------


def residual_budget(
    *,
    sigma: float,
    epsilon: float,
    delta: float,
    method: Literal["paper", "analytic"] = "analytic",
) -> float:
    """The largest cumulative residual ``β`` for which the model is ``(ε, δ)``-CR.

    * ``"paper"``: ``β = σε/c`` with ``c = √(2 ln(1.5/δ))`` (Guo et al.,
      Theorem 3: ``b ~ N(0, (cε′/ε)²I)`` gives ``(ε, δ)``-CR with
      ``δ = 1.5 e^{−c²/2}`` when the residual is at most ``ε′``). Like the
      classic Gaussian mechanism, this tail bound is only valid for ``ε <= 1``;
      larger ``ε`` raises.
    * ``"analytic"``: the largest ``β`` with ``δ_G(ε; β/σ) <= δ``, where
      ``δ_G`` is the exact privacy profile of the Gaussian mechanism (Balle &
      Wang, ICML 2018, Theorem 8). Valid because the proof of Theorem 3
      reduces the certificate to the ratio of the densities of ``N(0, σ²I)``
      at ``b`` and at ``b + u`` with ``‖u‖ <= β``: its privacy-loss random
      variable is exactly that of a Gaussian mechanism with sensitivity ``β``,
      whose tight ``(ε, δ)`` curve Theorem 8 gives. It is therefore never
      smaller than the paper's budget for ``ε <= 1`` and holds for any
      ``ε > 0``. The search never returns a budget above the exact one.

    Example:
      >>> round(residual_budget(sigma=10, epsilon=1, delta=1e-4, method="paper"), 3)
      2.28
      >>> round(residual_budget(sigma=10, epsilon=1, delta=1e-4), 3)
      3.139
    """
    return currencies.cr_budget(
        sigma=sigma, epsilon=epsilon, delta=delta, method=method
    )


def certificate_epsilon(
    *,
    sigma: float,
    beta: float,
    delta: float,
    method: Literal["paper", "analytic"] = "analytic",
) -> float:
    """The ``ε`` certified for a cumulative residual bound ``β`` at ``δ``.

    ``"paper"``: ``ε = cβ/σ`` (Theorem 3); ``inf`` where that exceeds 1 (outside
    the bound's validity). ``"analytic"``: the exact Gaussian-mechanism ``ε`` at
    sensitivity ``β`` (see :func:`residual_budget`).
    """
    return currencies.cr_epsilon(beta, sigma=sigma, delta=delta, method=method)


class Certificate(NamedTuple):
    """An ``(ε, δ)`` certified-removal guarantee and how it was derived."""

    epsilon: float
    delta: float
    method: str


def certificate(
    *,
    sigma: float,
    beta: float,
    epsilon: float | None = None,
    delta: float | None = None,
    method: Literal["paper", "analytic"] = "analytic",
) -> Certificate:
    """The ``(ε, δ)`` that a model with noise ``σ`` and cumulative bound ``β`` has.

    Give exactly one of ``epsilon`` or ``delta``; the other is computed.

    * ``"paper"`` (Guo et al., Theorem 3): with ``c = σε/β``,
      ``δ = 1.5·e^{−c²/2}``; valid for ``ε <= 1``.
    * ``"analytic"``: ``δ = δ_G(ε; sensitivity β, σ)``, the exact privacy
      profile of the Gaussian mechanism (Balle & Wang 2018, Theorem 8); valid
      for every ``ε > 0`` and never larger than the paper's ``δ`` where both
      apply. Why it is valid: see :func:`residual_budget`.
    """
    if (epsilon is None) == (delta is None):
        raise ValueError("Expected exactly one of epsilon or delta.")
    _validate.positive(sigma=sigma)
    _validate.non_negative(beta=beta)
    if method not in ("paper", "analytic"):
        raise ValueError(f"Expected method in ('paper', 'analytic'), got {method!r}.")
    if delta is not None:
        eps = certificate_epsilon(sigma=sigma, beta=beta, delta=delta, method=method)
        return Certificate(epsilon=eps, delta=float(delta), method=method)
    _validate.positive(epsilon=epsilon)
    if beta == 0:
        return Certificate(epsilon=float(epsilon), delta=0.0, method=method)
    if method == "paper":
        if epsilon > 1:
            raise ValueError(
                f"Expected epsilon={epsilon} <= 1 for method='paper'; use 'analytic'."
            )
        c = sigma * epsilon / beta
        return Certificate(float(epsilon), min(1.0, 1.5 * math.exp(-c * c / 2)), method)
    delta_g = mechanisms.gaussian_delta(epsilon, sigma=sigma, sensitivity=beta)
    return Certificate(float(epsilon), delta_g, method)


def supported_removals(
    bound_increments: ArrayLike, budget: float, *, start: float = 0.0
) -> int:
    """How many requests fit: the number of leading requests whose cumulative
    bound (``start`` + running sum of increments) stays within ``budget``.

    This is Algorithm 2's accounting (``correct_residual=False``). With
    ``correct_residual=True`` the bounds do not add: count the leading
    requests whose ``cumulative_bound`` is within the budget instead."""
    if start > budget:
        return 0
    return currencies.supported_removals(bound_increments, budget - start)
