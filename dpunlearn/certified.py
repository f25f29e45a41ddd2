"""Certified removal for linear models: loss-perturbed training and Newton removal.

Implements Guo, Goldstein, Hannun, van der Maaten, "Certified Data Removal from
Machine Learning Models", ICML 2020 (arXiv:1911.03030), with a certificate
that charges what the paper's leaves out (:mod:`dpunlearn.removal_certificate`, and the
derivation in ``docs/certified_removal.md``):

* **Training** (Algorithm 1): minimise the perturbed objective, in the sum form
  ``L_b(w; D) = Σ_i ℓ(wᵀx_i, y_i) + (λn/2)‖w‖² + bᵀw``, ``b ~ N(0, σ²I)``.
  This is the mean-form objective ``(1/n)Σℓ + (λ/2)‖w‖² + bᵀw/n`` times ``n``:
  same minimiser, gradients ``n`` times larger.
* **Removal** (§3, eq. 3): one Newton step with the Hessian of the *remaining*
  data at the current weights, ``w⁻ = w + H⁻¹Δ``, ``Δ = kλw + Σ_{j∈batch}
  ∇ℓ(wᵀx_j, y_j)``, for one point (``k = 1``) or a batch of ``k`` points.
* **Certificate**: every step bounds the gradient residual ``u`` of the
  released model (Theorem 1, Corollary 1 or our sharper integral form) and
  accumulates, per head, ``β ≥ ‖u‖``; beside it the remainder mass ``P``, the
  unstructured charges ``Q`` (solver leftovers and rounding) and the
  log-determinant ``J`` of the change of variables. :func:`removal_epsilon`
  turns them into the ``ε`` the released model has against retraining, at a
  stated ``δ``. These quantities depend on the secret ``b``: a decision to
  retrain taken on them leaks ``b`` (Algorithm 2 as stated does; see
  :mod:`dpunlearn.retrain_schedule` for the rule that does not).

The bounds, per removal and per head (``v = H⁻¹Δ``, ``s = X′v``, ``N`` a
certified upper bound on ``‖X‖₂``, ``r`` the row-norm bound):

* ``worst_case_bound`` = ``4γk²C²r⁵/(λ²n′)`` (Theorem 1 and its batch form,
  for ``b = 0``; informational);
* ``data_dependent_bound`` = ``γ·N·r·‖v‖·‖s‖`` (Corollary 1, ``bound_form=
  "corollary1"``) or, by default, ``(γ/2)·N·‖s ⊙ s‖₂`` (``"integral"``): the
  exact remainder ``X′ᵀρ``, ``ρ_i = ∫₀¹ (ℓ''(z_i + t s_i) − ℓ''(z_i)) s_i dt``,
  has ``|ρ_i| <= γ s_i²/2``; never more than half of Corollary 1;
* ``solve_residual`` = ``‖Δ − Hv‖`` with ``Hv`` accumulated from the
  solver's own products (no drift, no further pass), plus the rounding of
  those products and sums, of ``Δ`` and of storing ``w + v``.

Cost: the state keeps the margins ``Xw`` (with a certified bound on their
rounding), and a removal's ``Xv`` and ``Hv`` come from the CG products, so a
removal whose preconditioned CG converges in one iteration reads ``X`` twice
(``Xp``, ``Xᵀ(D ⊙ Xp)``); ``docs/certified_removal.md`` §7 derives the
rounding charges.

Heads of a one-vs-rest model are released together, one Gaussian mechanism in
``K·d`` dimensions: their residuals combine in ℓ2, ``β = √(Σ_h β_h²)``.

Precision: arithmetic is in ``X``'s dtype; every product asks for
``Precision.HIGHEST`` (:func:`dpunlearn.solvers.mm`). The certificate bounds
the *exact* gradient of the *stored* model, so it charges rounding: worst-case
in float64 (about ``1e-12`` relative); in float32 the probabilistic bound of
Higham & Mary (2019), whose failure probability is tracked in
``state.rounding_failure`` and added to δ by :func:`removal_epsilon`. Use
float64 (``JAX_ENABLE_X64=1``) when the certificate is the deliverable.

Configuration fixed at training (loss, heads, γ, bound form, solver, CG
settings, residual correction) is the static :class:`CertifiedConfig` inside
the state; it is never passed again. The state also keeps a fingerprint of
the training data, so a removal given other data is refused (eagerly) or
poisons the certificate (under ``jit``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import weakref
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify
from jax.scipy.linalg import cho_solve

from dpunlearn import _sharding, _validate, removal_certificate, solvers
from dpunlearn.accounting import currencies, mechanisms
from dpunlearn.errors import BudgetExceededError
from dpunlearn.losses import MarginLoss, get_loss
from dpunlearn.solvers import mm
from dpunlearn.types import Array, ArrayLike, PRNGKey

__all__ = [
    "BudgetExceededError",
    "Certificate",
    "CertifiedConfig",
    "CertifiedState",
    "RemovalInfo",
    "accuracy",
    "certificate",
    "certificate_epsilon",
    "data_fingerprint",
    "gamma_constant",
    "normalize_rows",
    "predict",
    "remove",
    "remove_sequence",
    "pointwise_epsilon",
    "removal_epsilon",
    "residual_budget",
    "retrain",
    "sample_perturbation",
    "supported_removals",
    "train",
    "true_residual",
]

Solver = Literal["pcg", "cholesky", "cg"]
Checks = Literal["poison", "checkify"]
_ROW_NORM_TOL = 1e-5  # float32 rounding of an L2-normalised row

# Rows by index and the mask without them: ``X[idx]`` and
# ``mask.at[idx].set(False)`` with the output sharding an explicit-sharding
# mesh needs (replicated rows, gathered by one all-reduce of ``k × d``; the
# mask keeps its row sharding). Plain indexing elsewhere.
_rows = _sharding.gather_rows


def _remove_rows(mask, idx):
    return _sharding.scatter(mask, idx, False)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class CertifiedConfig:
    """Everything about a certified model that is fixed at training. Static.

    A pytree with no leaves, held in :class:`CertifiedState`: ``jit`` treats
    it as part of the compiled program, ``vmap`` shares it.

    Attributes:
      loss: The margin loss.
      num_classes: ``K`` for one-vs-rest; ``None`` for a single head.
      gamma: ``"paper"`` (1/4, Guo et al.) or ``"tight"`` (1/(6√3)) for logistic.
      bound_form: ``"integral"`` (default) or ``"corollary1"``.
      solver: ``"pcg"``, ``"cholesky"`` or ``"cg"`` for removals.
      matrix_free: Newton–CG training, no ``d × d`` matrix.
      norm_method: How ``‖X‖₂`` is bounded (:func:`solvers.spectral_norm_bound`).
      tol: Mean-form gradient tolerance of training.
      max_steps: Newton step limit of training.
      cg_tol: Relative CG tolerance of removals (``None``: by dtype).
      cg_maxiter: CG iteration limit of removals.
      correct_residual: Take the residual-correcting Newton step.
      allow_empty_class: Allow a removal that leaves a class with no point.
      rounding_lambda: ``λ`` of Higham & Mary's probabilistic rounding bound
        (float32 only).
    """

    loss: MarginLoss
    num_classes: int | None = None
    gamma: str = "paper"
    bound_form: str = "integral"
    solver: str = "pcg"
    matrix_free: bool = False
    norm_method: str = "auto"
    tol: float = 1e-8
    max_steps: int = 100
    cg_tol: float | None = None
    cg_maxiter: int = 50
    correct_residual: bool = False
    allow_empty_class: bool = False
    rounding_lambda: float = 12.0

    @property
    def gamma_value(self) -> float:
        return self.loss.gamma_for(self.gamma)

    @property
    def num_heads(self) -> int:
        return 1 if self.num_classes is None else self.num_classes


class CertifiedState(NamedTuple):
    """A removal-enabled linear model. A pytree: ``jit``-, ``vmap``-able.

    The state never holds the data set: ``X`` and ``y`` are passed to every
    call, and checked against ``fingerprint``.

    Attributes:
      params: Weights ``[d]`` (binary, ridge) or ``[K, d]`` (one-vs-rest).
      perturbation: The secret loss perturbation ``b``, shape of ``params``.
        Never log or release it: the certificate rests on its secrecy.
      mask: ``bool[n]``, ``False`` for removed rows.
      lam: L2 strength λ (mean form). sigma: Std σ of ``b``.
      residual_bounds: ``β_h >= ‖u_h‖`` per head ``[K]``: the certified bound on
        each head's sum-form gradient residual.
      remainder_mass: ``P = Σ (γ/2)‖s‖²`` over steps and heads (the Taylor
        remainders' ℓ1 mass, :mod:`dpunlearn.removal_certificate`).
      unstructured_bounds: ``Q_h`` per head ``[K]``: the part of ``β_h`` with
        no row structure (solver leftovers, rounding).
      logdet_bound: ``J``, bound on the change-of-variables term.
      jacobian_drift: ``f`` per head ``[K]`` (residual-correcting steps only).
      training_residual: The training leftover (ℓ2 over heads), the part of
        ``β`` present before any removal.
      rounding_failure: Probability that a float32 rounding allowance failed
        (Higham–Mary model; 0 in float64). Added to δ.
      norm_bound: Certified upper bound on ``‖X‖₂`` (valid for all row subsets).
      row_norm_bound: ``max_i ‖x_i‖`` at training time.
      precond: Inverse Hessians at training time ``[K, d, d]`` (the removals'
        CG preconditioner; its accuracy does not matter, the solve residual is
        certified); ``None`` on the matrix-free path.
      margins: ``X wᵀ`` per head ``[K, n]``, kept up to date by every removal
        (``z ← z + Xv`` from the solver's own products), so that a removal
        spends no pass over ``X`` on recomputing them.
      margin_error: Certified bound per head ``[K]`` on ``|margins − X w|``
        (the rounding of computing and of updating them).
      num_removed: Rows removed since training (``int32``).
      fingerprint: ``uint32[4]`` digest of the training ``X`` and ``y``.
      config: The static :class:`CertifiedConfig`.
    """

    params: Array
    perturbation: Array
    mask: Array
    lam: Array
    sigma: Array
    residual_bounds: Array
    remainder_mass: Array
    unstructured_bounds: Array
    logdet_bound: Array
    jacobian_drift: Array
    training_residual: Array
    rounding_failure: Array
    norm_bound: Array
    row_norm_bound: Array
    precond: Array | None
    margins: Array
    margin_error: Array
    num_removed: Array
    fingerprint: Array
    config: CertifiedConfig

    @property
    def grad_residual_bound(self) -> Array:
        """``β = √(Σ_h β_h²)``, the bound on the residual of all heads together."""
        return jnp.sqrt(jnp.sum(self.residual_bounds**2, axis=-1))


class RemovalInfo(NamedTuple):
    """What one removal step certified (sum form; heads combined in ℓ2).

    These numbers depend on the secret perturbation: report them, but do not
    decide on them whether to release or retrain (that leaks ``b``; use
    :mod:`dpunlearn.retrain_schedule`).

    Attributes:
      worst_case_bound: Theorem 1's data-independent bound for this step.
      data_dependent_bound: Corollary 1 (or the integral form) for this step.
      solve_residual: ``‖Δ − Hv‖`` plus its rounding charges.
      bound_increment: ``data_dependent_bound + solve_residual`` per head,
        combined in ℓ2.
      cumulative_bound: ``β`` after this step: with ``correct_residual=False``
        (Algorithm 2) the running per-head sum, with ``True`` this step's bound.
      remainder_mass: ``P`` after this step.
      unstructured_bound: ``‖Q‖₂`` after this step.
      logdet_bound: ``J`` after this step.
      valid: The input was valid (else every bound is ``+inf`` and the model is
        unchanged). A valid step can still be uncertifiable: ``logdet_bound``
        is then ``+inf`` (margins moved so much that the map from ``b`` to the
        model may fold); the model is updated but has no certificate.
      num_remaining: Rows left after this step.
      solver_iterations: Iterations of the removal's solver, at most over
        heads (each spends two passes over ``X``; ``"cholesky"``: 1).
    """

    worst_case_bound: Array
    data_dependent_bound: Array
    solve_residual: Array
    bound_increment: Array
    cumulative_bound: Array
    remainder_mass: Array
    unstructured_bound: Array
    logdet_bound: Array
    valid: Array
    num_remaining: Array
    solver_iterations: Array


# ---------------------------------------------------------------------------
# Input validation (host side, before anything is traced).
# ---------------------------------------------------------------------------


@jax.jit
def _largest_row_norm(X):
    norms = jnp.sqrt(jnp.sum(jnp.square(X), axis=1))
    i = jnp.argmax(norms)
    return i, _sharding.index(norms, i)


def _check_features(X, *, values: bool = True) -> None:
    if isinstance(X, (str, bytes)) or (
        not hasattr(X, "shape") and not isinstance(X, (list, tuple))
    ):
        raise ValueError(
            f"Expected X to be a 2-D floating array [n, d], got {type(X).__name__}."
        )
    if not hasattr(X, "dtype"):
        try:
            X = np.asarray(X)
        except (ValueError, TypeError) as e:  # ragged lists
            raise ValueError(f"Expected X to be a 2-D floating array: {e}") from None
    _validate.ndim("X", X, 2)
    n, d = np.shape(X)
    if n == 0 or d == 0:
        raise ValueError(f"Expected X with at least one row and column, got {(n, d)}.")
    dtype = np.dtype(X.dtype) if not isinstance(X.dtype, str) else np.dtype(X.dtype)
    if dtype.kind != "f":
        raise ValueError(
            f"Expected X to have a floating dtype (float32 or float64), got {dtype}."
        )
    if dtype.itemsize < 4:
        raise ValueError(
            f"Expected X in float32 or float64, got {dtype}: a certificate's "
            f"rounding allowance in half precision would exceed any budget."
        )
    if not values:
        return  # removals: the fingerprint ties X to the checked training data
    _validate.finite_array("X", X)
    if not _validate.is_concrete(X):
        return
    if _validate.on_device(X):
        # On X's devices: only the largest norm and its row come back.
        i, norm = _largest_row_norm(X)
        i, norm = int(i), float(norm)
    else:
        norms = np.linalg.norm(np.asarray(X, np.float64), axis=1)
        i = int(np.argmax(norms))
        norm = float(norms[i])
    if norm > 1 + _ROW_NORM_TOL:
        raise ValueError(
            f"Expected every row of X to have L2 norm <= 1 (the certificate "
            f"assumes ‖x_i‖ <= 1); row {i} has norm {norm:.6g}. Call "
            f"dpunlearn.certified.normalize_rows(X) first."
        )


def _check_labels(y, n: int, loss: MarginLoss, num_classes: int | None) -> None:
    if isinstance(y, (str, bytes)):
        raise ValueError("Expected y to be a 1-D array of labels, got a string.")
    if not hasattr(y, "shape"):
        try:
            y = np.asarray(y)
        except (ValueError, TypeError) as e:
            raise ValueError(f"Expected y to be a 1-D array of labels: {e}") from None
    _validate.ndim("y", y, 1)
    if np.shape(y)[0] != n:
        raise ValueError(
            f"Shape mismatch: X has {n} rows but y has shape {np.shape(y)}."
        )
    if not _validate.is_concrete(y):
        return
    dtype = np.dtype(y.dtype)
    if dtype.kind not in "iufb":
        raise ValueError(f"Expected y to hold numbers, got dtype {dtype}.")
    if num_classes is not None and loss.labels != "pm1":
        raise ValueError(f"Expected num_classes=None for loss {loss.name!r}.")
    # A JAX array is checked on its devices (a few scalars come back).
    xp = jnp if _validate.on_device(y) else np
    arr = y if xp is jnp else np.asarray(y)
    _validate.finite_array("y", arr)
    if num_classes is not None:
        if dtype.kind not in "iu" and _first_true(arr != xp.round(arr), arr):
            raise ValueError(
                "Expected y to hold integer class labels 0..num_classes-1."
            )
        found = _first_true((arr < 0) | (arr >= num_classes), arr)
        if found:
            (i,), value = found
            raise ValueError(
                f"Expected y in [0, {num_classes - 1}] (num_classes={num_classes}); "
                f"y[{i}]={value}."
            )
        return
    if loss.labels == "pm1":
        found = _first_true((arr != 1) & (arr != -1), arr)
        if found:
            (i,), value = found
            raise ValueError(
                f"Expected y in {{-1, +1}} for loss {loss.name!r}; y[{i}]={value}. "
                f"For integer class labels pass num_classes."
            )


def _first_true(bad, arr):
    """``(index, value)`` of the first true entry of ``bad``, or ``None``."""
    if isinstance(bad, jax.Array):
        return _validate.first_violation(bad, arr)
    if not bad.any():
        return None
    where = tuple(int(j) for j in np.argwhere(bad)[0])
    return where, arr[where]


def _host_indices(idx, *, name: str) -> np.ndarray | None:
    """Concrete indices as int64 NumPy, range-checked *before* any narrowing.

    With x64 off, JAX stores an index as int32, so ``2**32 + 7`` would wrap to
    7; NumPy keeps the value so that it can be refused.
    """
    if not _validate.is_concrete(idx):
        return None
    if isinstance(idx, (str, bytes)):
        raise ValueError(f"Expected {name} to hold integers, got a string.")
    try:
        arr = np.asarray(idx)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"Expected {name} to hold integers: {e}") from None
    if arr.dtype == bool or arr.dtype.kind not in "iu":
        if arr.dtype.kind == "O":
            raise ValueError(
                f"Expected {name} to hold integers; {idx!r} is too large or not "
                f"an integer."
            )
        raise ValueError(f"Expected {name} to hold integers, got dtype {arr.dtype}.")
    return arr


@jax.jit
def _mask_at(mask, flat):
    """``mask[flat]`` and ``Σ mask``, on the mask's devices (k + 1 values back)."""
    return _sharding.gather_rows(mask, flat), jnp.sum(mask.astype(jnp.int32))


def _check_indices(arr: np.ndarray, mask, *, name: str) -> np.ndarray:
    flat = arr.reshape(-1)
    n = np.shape(mask)[0]
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
    # Only the requested rows of the mask and its count leave the device.
    if _validate.on_device(mask):
        present, remaining = _mask_at(mask, jnp.asarray(flat))
    else:
        m = np.asarray(mask)
        present, remaining = m[flat], m.sum()
    gone = ~np.asarray(present)
    if gone.any():
        raise ValueError(f"Row {flat[np.argmax(gone)]} in {name} was already removed.")
    if flat.size >= int(remaining):
        raise ValueError(
            f"{name} would remove all {int(remaining)} remaining rows; nothing would be "
            f"left to certify against. Train a new model instead."
        )
    return flat


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _class_counts(y, mask, flat, *, num_classes):
    """Rows per label among the kept rows, before and after removing ``flat``.

    Labels are ``{-1, +1}`` (columns 0, 1) or ``0..num_classes-1``; computed on
    the data's devices, 2·(number of labels) integers come back.
    """
    if num_classes is None:
        codes = (y > 0).astype(jnp.int32)
        size = 2
    else:
        codes = y.astype(jnp.int32)
        size = num_classes
    before = _sharding.scatter(
        jnp.zeros((size,), jnp.int32), codes, mask.astype(jnp.int32), op="add"
    )
    after = before.at[_sharding.gather_rows(codes, flat)].add(-1)
    return before, after


def _class_counts_host(y, mask, flat, num_classes):
    """:func:`_class_counts` in NumPy (for host arrays, and inside a trace)."""
    codes = (y > 0).astype(np.int64) if num_classes is None else y.astype(np.int64)
    size = 2 if num_classes is None else num_classes
    before = np.bincount(codes[mask], minlength=size)
    after = before - np.bincount(codes[flat], minlength=size)
    return before, after


def _check_classes(y, mask, flat, *, config: CertifiedConfig) -> None:
    if config.allow_empty_class or config.loss.labels != "pm1":
        return
    if not _validate.is_concrete(y):
        return
    if _validate.on_device(y) and _validate.on_device(mask):
        before, after = _class_counts(y, mask, jnp.asarray(flat), num_classes=config.num_classes)
    else:
        before, after = _class_counts_host(np.asarray(y), np.asarray(mask), flat, config.num_classes)
    emptied = np.flatnonzero((np.asarray(before) > 0) & (np.asarray(after) == 0))
    if emptied.size:
        label = int(emptied[0]) if config.num_classes else (-1, 1)[int(emptied[0])]
        raise ValueError(
            f"This removal leaves no remaining point with label {label}: the "
            f"{'head' if config.num_classes else 'model'} would then see one class "
            f"only. Train with allow_empty_class=True to allow it (the problem "
            f"stays strongly convex and the certificate holds)."
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
# Data fingerprint: exact, independent of the order of reduction.
# ---------------------------------------------------------------------------


def _digest(bits, seed: int):
    """``Σ_e bits_e · k_e mod 2³²`` with odd weights ``k_e = 2·(φ·e + seed) + 1``.

    A sum, so the same in any order of reduction. Changing any one entry
    always changes it (``Δ·k ≢ 0 mod 2³²`` for ``Δ ≢ 0`` and ``k`` odd); two
    or more changes collide with probability about ``2⁻³²`` per digest unless
    chosen to cancel. Three integer operations per entry: the digest costs
    about one pass over the data (a murmur-style mix per entry cost 35 matrix–
    vector products at MNIST size).
    """
    flat = bits.reshape(-1)
    pos = jnp.arange(flat.shape[0], dtype=jnp.uint32)
    weights = (pos * jnp.uint32(0x9E3779B1) + jnp.uint32(seed)) * jnp.uint32(2) + jnp.uint32(1)
    return jnp.sum(flat * weights, dtype=jnp.uint32)


def data_fingerprint(X: ArrayLike, y: ArrayLike) -> Array:
    """A ``uint32[4]`` digest of the bits of ``X`` and ``y`` (two hashes each).

    Computed on the device in one pass with integer arithmetic (two weighted
    sums with odd weights, :func:`_digest`): modular sums do not depend on the
    order of reduction, so the digest is bit-identical under any compilation
    (unlike a float projection), and any single changed entry changes it. It
    guards against careless mistakes (other data, other labels), not against
    an adversary who crafts colliding changes. Labels are hashed as given
    after conversion to ``int32`` (class ids) or ``X``'s dtype (±1, reals).
    """
    X = jnp.asarray(X)
    return _sharding.concatenate([_features_digest(X), _labels_digest(y, X.dtype)])


def _features_digest(X) -> Array:
    xb = jax.lax.bitcast_convert_type(X, jnp.uint32)
    return _sharding.stack([_digest(xb, 1), _digest(xb, 2)])


def _labels_digest(y, dtype) -> Array:
    y = jnp.asarray(y)
    y = y.astype(jnp.int32) if jnp.issubdtype(y.dtype, jnp.integer) else y.astype(dtype)
    yb = jax.lax.bitcast_convert_type(y, jnp.uint32)
    return _sharding.stack([_digest(yb, 3), _digest(yb, 4)])


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


def _rounding(dtype, m: int, config: CertifiedConfig) -> float:
    return removal_certificate.rounding_factor(dtype, m, lam=config.rounding_lambda)


def _gradient_rounding(F, r, abs_grad_sum, curv_sum, reg, w, b, u, loss, dz):
    """Bound on ``‖fl(g) − g‖`` for the sum-form gradient at the stored ``w``.

    ``g = Σ m_i ℓ'(z_i)x_i + reg·w + b`` with ``z = Xw``. The margins used are
    off by at most ``dz`` (computed afresh: ``F r‖w‖``, a length-``d`` sum with
    ``|x_iᵀ||w| <= r‖w‖``; stored: the state's ``margin_error``), which moves
    ``ℓ'_i`` by at most ``ℓ''·dz`` (a factor
    ``e^{c F r‖w‖}`` covers the curvature's change over that interval); ``ℓ'``
    itself is evaluated to ``8u`` relative; the weighted row sum is a
    length-``n`` sum (``F r Σ|ℓ'|``); adding ``reg·w + b`` rounds once more.
    """
    return (
        (F + 8 * u) * r * abs_grad_sum
        + r * dz * curv_sum * jnp.exp(loss.hess_log_lipschitz * dz)
        + (F + 2 * u) * (r * abs_grad_sum + reg * jnp.linalg.norm(w) + jnp.linalg.norm(b))
    )


def _train_valid(X, Y, mask, lam, sigma, num_classes, loss):
    """Device-side validity of training inputs (poisons the state under ``jit``)."""
    finite = jnp.all(jnp.isfinite(X)) & jnp.all(jnp.isfinite(Y))
    rows = jnp.max(jnp.linalg.norm(X, axis=1)) <= 1 + _ROW_NORM_TOL
    labels = jnp.all((Y == 1) | (Y == -1)) if loss.labels == "pm1" else True
    hyper = (lam > 0) & jnp.isfinite(lam) & (sigma >= 0) & jnp.isfinite(sigma)
    some_rows = jnp.sum(mask) >= 1
    return finite & rows & labels & hyper & some_rows


@functools.partial(jax.jit, static_argnames=("config",))
def _train_impl(key, X, y, mask, lam, sigma, *, config: CertifiedConfig):
    B = sample_perturbation(key, (config.num_heads, X.shape[1]), sigma, X.dtype)
    return _train_given_perturbation(B, X, y, mask, lam, sigma, config=config)


def _train_given_perturbation(B, X, y, mask, lam, sigma, *, config: CertifiedConfig):
    """Training for a given perturbation ``B [K, d]`` (verification only: the
    certificate needs ``B`` drawn from ``N(0, σ²I)`` with a secret key)."""
    loss = config.loss
    dtype = X.dtype
    n, d = X.shape
    k = config.num_heads
    num_classes = config.num_classes
    Y = _head_labels(y, num_classes, dtype)
    lam = jnp.asarray(lam, dtype)
    sigma = jnp.asarray(sigma, dtype)
    valid = _train_valid(X, Y, mask, lam, sigma, num_classes, loss)
    weights = mask.astype(dtype)
    n_rows = jnp.sum(weights)
    reg = lam * n_rows
    row_norm = jnp.max(jnp.linalg.norm(X, axis=1))
    F = _rounding(dtype, n + d, config)
    u = float(jnp.finfo(dtype).eps) / 2

    def rounding(w, Yh, bh):
        z = mm(X, w)
        g_abs = jnp.sum(weights * jnp.abs(loss.grad(z, Yh)))
        curv = jnp.sum(weights * loss.hess(z, Yh))
        dz = F * row_norm * jnp.linalg.norm(w)
        return _gradient_rounding(F, row_norm, g_abs, curv, reg, w, bh, u, loss, dz)

    def fit(Yh, bh):
        return solvers.newton_fit(
            X,
            Yh,
            weights,
            bh,
            lam,
            loss=loss,
            tol=jnp.asarray(config.tol, dtype) * n_rows,
            max_steps=config.max_steps,
            matrix_free=config.matrix_free,
            floor=lambda w: rounding(w, Yh, bh),
        )

    W, info = jax.vmap(fit)(Y, B)
    if config.matrix_free:
        precond = None
    else:
        eye = jnp.eye(d, dtype=dtype)

        def inverse_hessian(w, Yh):
            L = jnp.linalg.cholesky(solvers.hessian(w, X, Yh, weights, lam, loss))
            return cho_solve((L, True), eye)

        precond = jax.vmap(inverse_hessian)(W, Y)
    # The fit's own leftover gradient (as computed, inflated by the rounding
    # of that norm) plus the rounding of computing it: both are part of the
    # residual the certificate must cover.
    leftover = info.grad_norm * (1 + F) + jax.vmap(rounding)(W, Y, B)
    leftover = jnp.where(valid, leftover, jnp.inf)
    # Margins for the removals: one pass now saves one per removal.
    margins = jax.vmap(lambda w: mm(X, w))(W)
    margin_error = F * row_norm * jnp.linalg.norm(W, axis=-1)
    num_sums = k * (3 * n + 3 * d + 8) * (config.max_steps + 1)
    state = CertifiedState(
        params=_from_heads(W, num_classes),
        perturbation=_from_heads(B, num_classes),
        mask=mask,
        lam=lam,
        sigma=sigma,
        residual_bounds=leftover,
        remainder_mass=jnp.zeros((), dtype),
        unstructured_bounds=leftover,
        logdet_bound=jnp.zeros((), dtype),
        jacobian_drift=jnp.zeros((k,), dtype),
        training_residual=jnp.sqrt(jnp.sum(leftover**2)),
        rounding_failure=jnp.asarray(
            removal_certificate.rounding_failure(
                dtype, n + d, num_sums, lam=config.rounding_lambda
            ),
            dtype,
        ),
        norm_bound=solvers.spectral_norm_bound(X, method=config.norm_method),
        row_norm_bound=row_norm,
        precond=precond,
        margins=margins,
        margin_error=margin_error,
        num_removed=jnp.zeros((), jnp.int32),
        fingerprint=data_fingerprint(X, y),
        config=config,
    )
    return state, info


class _Step(NamedTuple):
    """A removal's Newton step and the products that certify it.

    ``xv`` and ``hv`` are accumulated from the products the solver computed
    anyway (``X p_j`` and ``H p_j`` for each search direction ``p_j``), so
    certifying the step and updating the margins costs no further pass over
    ``X``. ``hv_err`` bounds ``‖hv − H v‖`` for the stored ``v`` and the exact
    Hessian ``H`` at the model's exact margins (the products' rounding, the
    curvature's error from the margins' error, the accumulations' rounding);
    ``xv_err`` bounds ``|xv_i − x_iᵀv|`` for every row.
    """

    v: Array
    xv: Array
    hv: Array
    hv_err: Array
    xv_err: Array
    factor: Array | None
    hessian: Array | None
    iterations: Array


def _hessian_product(X, D, reg, p, *, F, r, dz, u, loss):
    """``(X p, H p, err)`` with ``H = Xᵀ diag(D) X + reg·I``: two passes over ``X``.

    ``err`` bounds ``‖fl(H p) − H⋆p‖`` where ``H⋆`` has the curvature at the
    exact margins: the row sum ``Xᵀ(D ⊙ Xp)`` (length ``n``), the rounding
    ``F r‖p‖`` of every ``x_iᵀp`` carried through ``D_i x_i``, the curvature's
    error ``γ dz`` (margins off by ``dz``) and its evaluation ``8u D``, and
    ``reg·p``.
    """
    xp = mm(X, p)
    dxp = D * xp
    q = mm(dxp, X) + reg * p
    p_norm = jnp.linalg.norm(p)
    err = (
        F * r * jnp.sum(jnp.abs(dxp))
        + F * r * r * p_norm * jnp.sum(D)
        + r * jnp.sum(jnp.abs(xp) * (loss.gamma * dz + 8 * u * D))
        + F * reg * p_norm
    )
    return xp, q, err


def _solve(X, D, reg, rhs, precond, config: CertifiedConfig, cg_tol, *, F, r, dz, u, h_norm):
    """Solves ``(Xᵀ diag(D) X + reg·I) v = rhs`` and certifies the result (:class:`_Step`).

    ``"cholesky"`` rebuilds and factors ``H`` (``n d²`` flops), then spends one
    product on ``X v`` and ``H v``. ``"pcg"`` runs conjugate gradients
    preconditioned by the stored inverse of the training-time Hessian (a
    ``d × d`` product; its accuracy does not matter because the residual is
    certified, not trusted); ``"cg"`` runs them without it. Each iteration
    spends one product ``(X p, H p)``, two passes over ``X``, and the step's
    ``X v`` and ``H v`` are accumulated from them (``v = Σ α_j p_j``), so a
    removal that converges in one iteration reads ``X`` twice. The residual
    ``rhs − H v`` is recomputed from the accumulated ``H v`` at every iteration
    (no recursive drift); the iterations stop once it is below
    ``max(cg_tol·‖rhs‖, the rounding charges)``: below the charges that
    no solve can avoid, more accuracy would not lower the certified bound.
    """
    product = functools.partial(_hessian_product, F=F, r=r, dz=dz, u=u, loss=config.loss)
    zero = jnp.zeros((), rhs.dtype)
    if config.solver == "cholesky":
        H = solvers.hessian_from_curvature(X, D, reg)
        L = jnp.linalg.cholesky(H)
        v = cho_solve((L, True), rhs)
        xv, hv, err = product(X, D, reg, v)
        xv_err = F * r * jnp.linalg.norm(v)
        return _Step(v, xv, hv, err, xv_err, L, H, jnp.ones((), jnp.int32))
    apply_precond = (lambda g: g) if config.solver == "cg" else (lambda g: mm(precond, g))
    threshold = cg_tol * jnp.linalg.norm(rhs)

    def charges(c):
        # Rounding charges so far: products, the accumulation of H v, and
        # the accumulation of v itself (moved through ‖H‖).
        return c["err"] + c["acc_hv"] + h_norm * c["acc_v"]

    def cond(c):
        res = jnp.linalg.norm(rhs - c["hv"])
        more = res > jnp.maximum(threshold, charges(c))
        return (c["k"] == 0) | (more & (c["k"] < config.cg_maxiter))

    def body(c):
        # The next direction, from the residual of the accumulated products:
        # the preconditioner is applied once per iteration, never after the last.
        res = rhs - c["hv"]
        g = apply_precond(res)
        rz = jnp.vdot(res, g)
        beta = jnp.where(c["rz"] > 0, rz / c["rz"], zero)
        p = g + beta * c["p"]
        xp, q, err = product(X, D, reg, p)
        pq = jnp.vdot(p, q)
        alpha = jnp.where(pq > 0, rz / pq, zero)
        a = jnp.abs(alpha)
        v = c["v"] + alpha * p
        xv = c["xv"] + alpha * xp
        hv = c["hv"] + alpha * q
        p_norm = jnp.linalg.norm(p)
        # Each accumulation x ← x + αy rounds the product and the sum (≤ u each).
        acc_v = c["acc_v"] + 2 * u * (a * p_norm + jnp.linalg.norm(v))
        acc_hv = c["acc_hv"] + 2 * u * (a * jnp.linalg.norm(q) + jnp.linalg.norm(hv))
        acc_xv = c["acc_xv"] + a * F * r * p_norm + 2 * u * (
            a * jnp.max(jnp.abs(xp)) + jnp.max(jnp.abs(xv))
        )
        return dict(
            v=v, xv=xv, hv=hv, p=p, rz=rz, k=c["k"] + 1,
            err=c["err"] + a * err, acc_v=acc_v, acc_hv=acc_hv, acc_xv=acc_xv,
        )  # fmt: skip

    init = dict(
        v=jnp.zeros_like(rhs), xv=jnp.zeros_like(D), hv=jnp.zeros_like(rhs),
        p=jnp.zeros_like(rhs), rz=zero, k=jnp.zeros((), jnp.int32),
        err=zero, acc_v=zero, acc_hv=zero, acc_xv=zero,
    )  # fmt: skip
    c = _sharding.while_loop(cond, body, init)
    return _Step(
        v=c["v"],
        xv=c["xv"],
        hv=c["hv"],
        hv_err=charges(c),
        xv_err=c["acc_xv"] + r * c["acc_v"],
        factor=None,
        hessian=None,
        iterations=c["k"],
    )


def _leverages(X, D, reg, r, H, L, F, u):
    """Upper bounds on ``x_iᵀK⁻¹x_i`` for every row, ``K = Xᵀdiag(D)X + reg·I``.

    Always the Sherman–Morrison bound ``r²/(reg + D_i r²)``. With the computed
    Hessian ``H`` and its Cholesky factor ``L`` (solver ``"cholesky"``, which
    paid ``n d²`` for them already), also a certified a-posteriori bound on the
    exact value, from ``y_i = M x_i`` with ``M ≈ L⁻¹`` (one row-wise product:
    row-sharded ``X`` stays sharded). No stability constant is assumed; every
    gap is measured or bounded (derivation: ``docs/certified_removal.md`` §9):

    * ``‖K − LLᵀ‖ <= η``: the rounding of forming ``H`` (``F (r²ΣD + reg)``,
      the trace of ``|X|ᵀdiag(D)|X|``) plus the measured ``‖H − LLᵀ‖_F`` and
      its product's rounding; then ``K ⪰ (1 − η/(reg − η)) LLᵀ``.
    * ``‖L⁻¹x‖ <= ‖Mx‖ + ‖L⁻¹‖‖I − LM‖‖x‖`` with ``‖L⁻¹‖² <= 1/(reg − η)``
      and the measured ``‖I − LM‖_F``.

    Where ``η >= reg/2`` the exact part is ``+inf`` (the Sherman–Morrison
    bound stands). ``F`` is the rounding allowance of a sum of
    ``max(n + d, d²)`` terms (the Frobenius norms sum ``d²``).
    """
    h = solvers.leverage_upper_bound(D, reg, r)
    if L is None:
        return h
    d = X.shape[1]
    eye = jnp.eye(d, dtype=X.dtype)
    M = jax.lax.linalg.triangular_solve(L, eye, left_side=True, lower=True)
    fro = lambda A: jnp.linalg.norm(A) * (1 + F)  # noqa: E731 (a computed norm, rounded up)
    L_fro, M_fro = fro(L), fro(M)
    eta = (F + 2 * u) * (r * r * jnp.sum(D) + reg) * (1 + F)
    eta = eta + fro(H - mm(L, L.T)) + (F + 2 * u) * (L_fro * L_fro + fro(H))
    E = fro(eye - mm(L, M)) + (F + 2 * u) * (L_fro * M_fro + math.sqrt(d))
    usable = eta < 0.5 * reg  # then reg − η > η >= 0
    gap = jnp.where(usable, reg - eta, 1.0)
    y_norm = jnp.linalg.norm(mm(X, M.T), axis=1) * (1 + F) + F * M_fro * r
    exact = (y_norm + r * E * jax.lax.rsqrt(gap)) ** 2 * (1 + F) / (1 - eta / gap)
    exact = jnp.where(usable, exact, jnp.inf)
    return jnp.minimum(h, exact)


def _index_valid(state: CertifiedState, idx, Y):
    """Device-side checks of one request (all must hold, else the step is poisoned)."""
    n = state.mask.shape[0]
    in_range = jnp.all((idx >= 0) & (idx < n))
    safe = jnp.clip(idx, 0, n - 1)
    present = jnp.all(_rows(state.mask, safe))
    ordered = jnp.sort(idx)
    distinct = jnp.all(ordered[1:] != ordered[:-1]) if idx.shape[0] > 1 else True
    left = jnp.sum(state.mask) - idx.shape[0] >= 1
    ok = in_range & present & distinct & left
    if not state.config.allow_empty_class and state.config.loss.labels == "pm1":
        # Every head keeps at least one positive and one negative row. Labels
        # are ±1, so one count over the rows per head gives all four (the
        # removed rows' labels are a gather of k).
        kept = jnp.sum(state.mask)
        before_pos = jnp.sum(state.mask[None, :] & (Y > 0), axis=1)
        before_neg = kept - before_pos
        removed_pos = jnp.sum(_rows(Y.T, safe) > 0, axis=0)
        pos = before_pos - removed_pos
        neg = before_neg - (idx.shape[0] - removed_pos)
        ok = ok & jnp.all((pos > 0) | (before_pos == 0))
        ok = ok & jnp.all((neg > 0) | (before_neg == 0))
    return ok, safe


def _remove_step(state: CertifiedState, idx, X, Y, data_ok, cg_tol, *, checks: Checks):
    config = state.config
    loss = config.loss
    num_classes = config.num_classes
    dtype = X.dtype
    n, d = X.shape
    k = idx.shape[0]
    lam = state.lam
    gamma = config.gamma_value
    r = state.row_norm_bound
    N = state.norm_bound

    idx_ok, safe = _index_valid(state, idx, Y)
    already = jnp.all(jnp.isfinite(state.residual_bounds))
    if checks == "checkify":
        checkify.check(idx_ok, "Removal indices must be in range, distinct, not "
                       "already removed, leave a row and (unless allowed) a class.")

    mask = _remove_rows(state.mask, safe)
    weights = mask.astype(dtype)
    n_prev = jnp.sum(state.mask.astype(dtype))
    n_left = jnp.sum(weights)
    reg = lam * n_left
    W = _as_heads(state.params, num_classes)
    B = _as_heads(state.perturbation, num_classes)
    P_inv = None if state.precond is None else state.precond
    X_rm = _rows(X, safe)
    F = _rounding(dtype, n + d, config)
    # The Cholesky leverages also take norms of d × d matrices (d² terms).
    F_wide = _rounding(dtype, max(n + d, d * d), config)
    u = float(jnp.finfo(dtype).eps) / 2
    h_norm = N * N * loss.hess_bound + reg  # ‖H‖ at any point

    def head(w, Yh, bh, precond, drift, z, dz):
        # z: the stored margins X w (off by at most dz), no pass over X.
        D_all = loss.hess(z, Yh)
        D = weights * D_all
        if config.correct_residual:
            # Newton step on the full gradient of the remaining perturbed
            # objective, g′ = ∇L_b(w; D′): it also cancels the residual left by
            # training and earlier removals. One pass over X.
            lg = weights * loss.grad(z, Yh)
            rhs = -(mm(lg, X) + reg * w + bh)
            rhs_err = _gradient_rounding(
                F, r, jnp.sum(jnp.abs(lg)), jnp.sum(D), reg, w, bh, u, loss, dz
            )
        else:
            # Δ: gradient of the removed terms, including the change λk·w of the
            # sum-form regulariser λn′/2‖w‖² (Guo et al. §3, batch form).
            lg_rm = loss.grad(_rows(z, safe), _rows(Yh, safe))
            rhs = k * lam * w + mm(lg_rm, X_rm)
            rhs_err = (F + 8 * u) * (
                k * lam * jnp.linalg.norm(w) + r * jnp.sum(jnp.abs(lg_rm))
            ) + r * dz * jnp.sum(_rows(D_all, safe)) * jnp.exp(loss.hess_log_lipschitz * dz)
        step = _solve(
            X, D, reg, rhs, precond, config, cg_tol, F=F, r=r, dz=dz, u=u, h_norm=h_norm
        )
        v, xv, chol, xv_err = step.v, step.xv, step.factor, step.xv_err
        # Certify the solve: the explicit residual of the accumulated H v, plus
        # the rounding of the products and their accumulation (step.hv_err), of
        # the right-hand side, and of storing w + v (which moves the gradient by
        # at most ‖H‖·u·‖w + v‖).
        res_hat = jnp.linalg.norm(rhs - step.hv)
        w_new = w + v
        solve_charge = (
            res_hat * (1 + F) + rhs_err + step.hv_err + u * h_norm * jnp.linalg.norm(w_new)
        )
        # The new margins, and how far they may be from X w_new: the old error,
        # X v's, the rounding of the sum and of storing w + v.
        z_new = z + xv
        dz_new = (
            dz + xv_err + u * (jnp.max(jnp.abs(z_new)) + r * jnp.linalg.norm(w_new))
        ) * (1 + F)
        # Margin changes of the remaining rows, inflated by their rounding, and
        # how far each row's curvature moves along the step (exact for a
        # unimodal ℓ'', inflated by the rounding of z and s).
        s = weights * (jnp.abs(xv) + xv_err)
        h_err = loss.gamma * (2 * dz + xv_err) + 16 * u * loss.hess_bound
        deviation = weights * (loss.hess_deviation(z, xv, Yh) + h_err)
        D_end = loss.hess(z + xv, Yh)
        change = weights * (jnp.abs(D_end - D_all) + h_err)
        if loss.hess_derivative is None:
            lin_err = jnp.zeros_like(s)
        else:
            third = loss.hess_derivative(z, Yh)
            lin_err = weights * jnp.minimum(
                jnp.abs(D_end - D_all - third * xv)
                + 2 * h_err
                + loss.fourth_bound * s * xv_err,
                0.5 * loss.fourth_bound * s * s,
            )
        # Row-wise Taylor remainder: |ρ_i| <= |s_i| max_t |ℓ''(z_i + t s_i) − ℓ''(z_i)|
        # and <= γ s_i²/2 (the integral of γ t s_i²).
        rho = s * jnp.minimum(deviation, 0.5 * gamma * s)
        if config.bound_form == "corollary1":
            dd = gamma * N * r * jnp.linalg.norm(v) * jnp.linalg.norm(s) * (1 + F) ** 2
        else:
            dd = N * jnp.linalg.norm(rho) * (1 + F)
        mass = jnp.sum(rho) * (1 + F)
        D_bar = D * (1 + 8 * u) + weights * loss.gamma * dz
        D_all_bar = D_all * (1 + 8 * u) + loss.gamma * dz
        h = _leverages(X, D, reg, r, step.hessian, chol, F_wide, u)
        removed_mass = jnp.sum(_rows(D_all_bar, safe) * _rows(h, safe))
        logdet = removal_certificate.logdet_step_bound(
            curvature=D_bar,
            curvature_change=change,
            linearization_error=lin_err,
            leverage=h,
            removed_leverage_mass=removed_mass,
            num_removed=k,
            lam=lam,
            n_left=n_left,
            norm_bound=N,
            loss=loss,
        )
        if config.correct_residual:
            logdet = logdet + removal_certificate.correct_mode_extra(
                curvature=D_bar,
                margin_change=s,
                leverage=h,
                drift=drift,
                lam=lam,
                n_prev=n_prev,
                norm_bound=N,
                loss=loss,
            )
            drift = removal_certificate.correct_mode_drift(
                curvature=D_bar,
                curvature_change=change,
                margin_change=s,
                drift=drift,
                removed_leverage_mass=removed_mass,
                num_removed=k,
                lam=lam,
                n_left=n_left,
                norm_bound=N,
                loss=loss,
            )
        return w_new, dd, solve_charge, mass, logdet, drift, z_new, dz_new, step.iterations

    heads = (W, Y, B, P_inv, state.jacobian_drift, state.margins, state.margin_error)
    if checks == "checkify":
        # checkify cannot thread errors through a batched while loop (CG):
        # map over heads sequentially instead of vmapping them.
        per_head = lambda a: head(
            a[0], a[1], a[2], None if P_inv is None else a[3], a[4], a[5], a[6]
        )
        packed = (W, Y, B, P_inv if P_inv is not None else W) + heads[4:]
        outs = jax.lax.map(per_head, packed)
    else:
        in_axes = (0, 0, 0, None if P_inv is None else 0, 0, 0, 0)
        outs = jax.vmap(head, in_axes=in_axes)(*heads)
    W_new, dd, res, mass, logdet, drift, margins, margin_error, iterations = outs
    increment = dd + res
    C = loss.grad_bound * r
    # Theorem 1 (with ‖x‖ <= r): ‖R‖ <= γ n′ r³ ‖v‖², ‖v‖ <= ‖rhs‖/(λ n′), and
    # ‖Δ‖ <= 2kC when ‖λw‖ <= C (b = 0); with the residual correction the
    # right-hand side also carries the residual so far (‖u‖ <= β).
    if gamma == 0:
        worst = jnp.zeros((), dtype)
    else:
        rhs_bound = 2 * k * C
        if config.correct_residual:
            rhs_bound = rhs_bound + state.residual_bounds
        worst_h = gamma * r**3 * rhs_bound**2 / (lam**2 * n_left) * jnp.ones_like(dd)
        worst = jnp.sqrt(jnp.sum(worst_h**2))
    if config.correct_residual:
        betas, unstructured = increment, res
        P, J = jnp.sum(mass), jnp.sum(logdet)
    else:
        betas = state.residual_bounds + increment
        unstructured = state.unstructured_bounds + res
        P = state.remainder_mass + jnp.sum(mass)
        J = state.logdet_bound + jnp.sum(logdet)
    # Invalid input leaves the model unchanged and poisons every bound. A valid
    # step whose Jacobian bound fails (the map b ↦ w may fold) is applied, but
    # J = +inf: the request is served, the release is not certified.
    valid = idx_ok & data_ok & already & jnp.all(jnp.isfinite(betas))
    poison = lambda new, old: jnp.where(valid, new, old)
    inf = jnp.asarray(jnp.inf, dtype)
    num_sums = W.shape[0] * (3 * n + 3 * d + 2 * k + 8) * (config.cg_maxiter + 3)
    fail = removal_certificate.rounding_failure(dtype, n + d, num_sums, lam=config.rounding_lambda)
    if config.solver == "cholesky":
        # The leverages' sums (H, its factor's checks L Lᵀ and L M, M = L⁻¹,
        # X Mᵀ, the norms), charged at the longest length, max(n + d, d²).
        fail = fail + removal_certificate.rounding_failure(
            dtype, max(n + d, d * d), W.shape[0] * (4 * d * d + n * d + 8),
            lam=config.rounding_lambda,
        )  # fmt: skip
    new_state = state._replace(
        params=poison(_from_heads(W_new, num_classes), state.params),
        mask=poison(mask, state.mask),
        residual_bounds=poison(betas, inf),
        remainder_mass=poison(P, inf),
        unstructured_bounds=poison(unstructured, inf),
        logdet_bound=poison(J, inf),
        jacobian_drift=poison(drift, state.jacobian_drift),
        margins=poison(margins, state.margins),
        margin_error=poison(margin_error, state.margin_error),
        rounding_failure=state.rounding_failure + fail,
        num_removed=state.num_removed + jnp.where(valid, k, 0).astype(jnp.int32),
    )
    l2 = lambda a: jnp.sqrt(jnp.sum(a**2))
    info = RemovalInfo(
        worst_case_bound=worst,
        data_dependent_bound=poison(l2(dd), inf),
        solve_residual=poison(l2(res), inf),
        bound_increment=poison(l2(increment), inf),
        cumulative_bound=new_state.grad_residual_bound,
        remainder_mass=new_state.remainder_mass,
        unstructured_bound=l2(new_state.unstructured_bounds),
        logdet_bound=new_state.logdet_bound,
        valid=valid,
        num_remaining=jnp.sum(new_state.mask).astype(jnp.int32),
        solver_iterations=jnp.max(iterations),
    )
    return new_state, info


def _data_ok(state, X, y, x_digest, checks):
    """``X, y`` are the training data: their digest equals the state's
    fingerprint. ``X``'s half is given (cached) or computed here in one pass;
    ``y``'s half (``n`` entries) always here. Once per call, not per step."""
    if x_digest is None:
        x_digest = _features_digest(X)
    digest = _sharding.concatenate([x_digest, _labels_digest(y, X.dtype)])
    ok = jnp.all(digest == state.fingerprint)
    if checks == "checkify":
        checkify.check(ok, "X, y differ from the data the model was trained on.")
    return ok


@functools.partial(jax.jit, static_argnames=("checks",))
def _remove_impl(state, idx, X, y, digest, cg_tol, *, checks="poison"):
    Y = _head_labels(y, state.config.num_classes, X.dtype)
    data_ok = _data_ok(state, X, y, digest, checks)
    return _remove_step(state, idx, X, Y, data_ok, cg_tol, checks=checks)


@functools.partial(jax.jit, static_argnames=("checks",))
def _remove_sequence_impl(state, idx_batches, X, y, digest, cg_tol, *, checks="poison"):
    Y = _head_labels(y, state.config.num_classes, X.dtype)
    data_ok = _data_ok(state, X, y, digest, checks)

    def step(s, idx):
        return _remove_step(s, idx, X, Y, data_ok, cg_tol, checks=checks)

    return jax.lax.scan(step, state, idx_batches)


# ---------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------


def _default_cg_tol(dtype) -> float:
    return 1e-12 if jnp.dtype(dtype) == jnp.float64 else 1e-6


def _hyper(name, value, *, positive: bool) -> None:
    if isinstance(value, (str, bytes, bool)):
        raise ValueError(f"Expected {name} to be a number, got {value!r}.")
    if positive:
        _validate.positive(**{name: value})
    else:
        _validate.non_negative(**{name: value})


def make_config(
    *,
    loss: str | MarginLoss = "logistic",
    num_classes: int | None = None,
    gamma: Literal["paper", "tight"] = "paper",
    bound_form: Literal["corollary1", "integral"] = "integral",
    solver: Solver | None = None,
    matrix_free: bool = False,
    norm_method: str = "auto",
    tol: float = 1e-8,
    max_steps: int = 100,
    cg_tol: float | None = None,
    cg_maxiter: int = 50,
    correct_residual: bool = False,
    allow_empty_class: bool = False,
) -> CertifiedConfig:
    """Validates and builds a :class:`CertifiedConfig` (see :func:`train`)."""
    loss = get_loss(loss)
    if num_classes is not None:
        _validate.positive_int(num_classes=num_classes)
    if gamma not in ("paper", "tight"):
        raise ValueError(f"Expected gamma in ('paper', 'tight'), got {gamma!r}.")
    if bound_form not in ("corollary1", "integral"):
        raise ValueError(
            f"Expected bound_form in ('corollary1', 'integral'), got {bound_form!r}."
        )
    if solver is None:
        solver = "cg" if matrix_free else "pcg"
    if solver not in ("pcg", "cholesky", "cg"):
        raise ValueError(
            f"Expected solver in ('pcg', 'cholesky', 'cg'), got {solver!r}."
        )
    if solver == "pcg" and matrix_free:
        raise ValueError(
            "solver='pcg' needs the training-time inverse Hessian; a matrix-free "
            "model has none. Use solver='cg' (or 'cholesky')."
        )
    _hyper("tol", tol, positive=True)
    if cg_tol is not None:
        _hyper("cg_tol", cg_tol, positive=True)
    _validate.positive_int(max_steps=max_steps, cg_maxiter=cg_maxiter)
    if norm_method not in ("auto", "gram", "frobenius"):
        raise ValueError(
            f"Expected norm_method in ('auto', 'gram', 'frobenius'), got {norm_method!r}."
        )
    return CertifiedConfig(
        loss=loss,
        num_classes=num_classes,
        gamma=gamma,
        bound_form=bound_form,
        solver=solver,
        matrix_free=bool(matrix_free),
        norm_method=norm_method,
        tol=float(tol),
        max_steps=int(max_steps),
        cg_tol=None if cg_tol is None else float(cg_tol),
        cg_maxiter=int(cg_maxiter),
        correct_residual=bool(correct_residual),
        allow_empty_class=bool(allow_empty_class),
    )


def train(
    key: PRNGKey,
    X: ArrayLike,
    y: ArrayLike,
    *,
    lam: float,
    sigma: float,
    mask: ArrayLike | None = None,
    config: CertifiedConfig | None = None,
    **config_kwargs,
) -> CertifiedState:
    """Trains a removal-enabled linear model with loss perturbation (Algorithm 1).

    Minimises ``(1/n) Σ_i ℓ(wᵀx_i, y_i) + (λ/2)‖w‖² + bᵀw/n`` with
    ``b ~ N(0, σ²I)`` by damped Newton's method, for binary logistic
    regression (``y ∈ {±1}``), ridge regression (``loss="ridge"``, real ``y``)
    or one-vs-rest logistic regression (``num_classes=K``, ``y ∈ {0..K−1}``;
    one perturbation column per head).

    Args:
      key: A ``jax.random`` key, consumed once to draw ``b``. Never reuse it
        (in particular not for :func:`retrain`, which refuses the same ``b``).
      X: Features ``[n, d]``, float32 or float64, every row with ``‖x_i‖ <= 1``.
      y: Labels ``[n]``.
      lam: L2 strength λ > 0 (mean form). Traced.
      sigma: Std σ >= 0 of ``b``. Traced. σ = 0 gives no certificate.
      mask: Optional ``bool[n]`` of rows to train on (default: all).
      config: A :class:`CertifiedConfig`, or its fields as keywords:
        ``loss`` (``"logistic"``, ``"ridge"``), ``num_classes``, ``gamma``
        (``"paper"``/``"tight"``), ``bound_form``, ``solver``, ``matrix_free``,
        ``norm_method``, ``tol`` (mean-form gradient tolerance; the leftover is
        charged; training also stops at the dtype's rounding floor),
        ``max_steps``, ``cg_tol``, ``cg_maxiter``, ``correct_residual``,
        ``allow_empty_class`` (see :func:`make_config` and :func:`remove`).

    Returns:
      A :class:`CertifiedState`; every later call reads its configuration.

    Raises:
      ValueError: bad shapes or dtypes, NaN/inf, rows with norm > 1, labels
        outside the expected set, ``lam <= 0``, ``sigma < 0``, an empty mask.
        Under ``jit`` (values unknown) the same conditions poison the state:
        its bounds are ``+inf``.

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
    _validate.prng_key("key", key)
    if config is None:
        config = make_config(**config_kwargs)
    elif config_kwargs:
        raise ValueError(
            f"Pass either config= or its fields, not both (got {sorted(config_kwargs)})."
        )
    _check_features(X)
    X = jnp.asarray(X)
    n = X.shape[0]
    _check_labels(y, n, config.loss, config.num_classes)
    _hyper("lam", lam, positive=True)
    _hyper("sigma", sigma, positive=False)
    if mask is None:
        mask = _sharding.ones_rows(X)
    else:
        if _validate.is_concrete(mask):
            m = np.asarray(mask)
            if m.dtype != bool:
                raise ValueError(f"Expected mask to be boolean, got dtype {m.dtype}.")
            if m.shape != (n,):
                raise ValueError(f"Expected mask of shape ({n},), got {m.shape}.")
            if not m.any():
                raise ValueError(
                    "Expected mask to keep at least one row; training on none "
                    "would return w = 0 with β = ‖b‖."
                )
        mask = jnp.asarray(mask, bool)
    y = jnp.asarray(y)
    if config.num_classes is not None and not jnp.issubdtype(y.dtype, jnp.integer):
        y = y.astype(jnp.int32)
    state, _ = _train_impl(key, X, y, mask, lam, sigma, config=config)
    return state


def retrain(
    key: PRNGKey,
    state: CertifiedState,
    X: ArrayLike,
    y: ArrayLike,
) -> CertifiedState:
    """Retrains from scratch on the remaining rows with a fresh ``b``.

    The new model is an exact run of the training algorithm on the remaining
    data, so its certificate starts afresh (``β`` = the new training residual).
    ``key`` must be new: a retrain whose perturbation equals the one it
    replaces (e.g. the training key again) is refused, because it would
    reuse the secret that the released models already depend on. Derive keys
    with ``jax.random.split`` or ``jax.random.fold_in(key, retrain_count)``.
    The configuration, λ and σ are the state's.
    """
    new = train(
        key,
        X,
        y,
        lam=state.lam,
        sigma=state.sigma,
        mask=state.mask,
        config=state.config,
    )
    same = jnp.all(new.perturbation == state.perturbation) & (state.sigma > 0)
    if _validate.is_concrete(same):
        if bool(same):
            raise ValueError(
                "Expected a fresh key for retrain: this key draws the same "
                "perturbation b as the model being replaced (was it the training "
                "key?). Use jax.random.split or fold_in to derive a new one."
            )
        return new
    inf = jnp.asarray(jnp.inf, new.residual_bounds.dtype)
    return new._replace(
        residual_bounds=jnp.where(same, inf, new.residual_bounds),
        unstructured_bounds=jnp.where(same, inf, new.unstructured_bounds),
    )


def remove(
    state: CertifiedState,
    idx: ArrayLike,
    X: ArrayLike,
    y: ArrayLike,
    *,
    checks: Checks = "poison",
) -> tuple[CertifiedState, RemovalInfo]:
    """Removes the rows ``idx`` with one Newton step and updates the certificate.

    Rows are masked, not deleted, so shapes stay fixed: calls with the same
    ``len(idx)`` reuse one compiled program. Loss, bound form, solver and the
    residual correction come from the state's configuration (set at
    :func:`train`). With ``correct_residual=True`` (beyond the paper) the step
    solves ``H v = −∇L_b(w; D′)``, the full gradient of the remaining
    perturbed objective: the gradient after the step is then ``−r + R`` (solve
    residual and Taylor remainder) only, so the residual left by training and
    earlier steps is cancelled and ``β`` is this step's bound, not a sum.

    Args:
      state: From :func:`train`, :func:`retrain` or a previous removal.
      idx: Integer row indices ``[k]`` (or a scalar) removed in one step.
      X, y: The arrays the model was trained on (checked by fingerprint).
      checks: Under ``jit`` values cannot raise. ``"poison"`` (default): an
        invalid request (index out of range, repeated or already removed,
        every row or a class's last row removed, other data) leaves the model
        unchanged and sets every bound to ``+inf``. ``"checkify"``: also emit
        :mod:`jax.experimental.checkify` checks; wrap the call with
        ``checkify.checkify`` to get an error.

    Returns:
      ``(new_state, info)``; see :class:`RemovalInfo`. The bounds depend on
      the secret ``b``: do not decide on them whether to retrain.

    Raises:
      ValueError: (eagerly) any of the invalid requests above, with a message
        naming the index; ``X``/``y`` that are not the training data.
    """
    flat = _validate_request(state, idx, X, y, name="idx")
    idx = jnp.asarray(np.atleast_1d(flat) if flat is not None else jnp.atleast_1d(idx))
    X, y = jnp.asarray(X), _labels(state, y)
    digest = _cached_digest(X)
    out = _remove_impl(state, idx, X, y, digest, _cg_tol(state, X), checks=checks)
    if flat is not None:
        _raise_if_other_data(state, out[0], X, y)
    return out


def remove_sequence(
    state: CertifiedState,
    idx_batches: ArrayLike,
    X: ArrayLike,
    y: ArrayLike,
    *,
    checks: Checks = "poison",
) -> tuple[CertifiedState, RemovalInfo]:
    """Applies a sequence of removal requests in one compiled ``lax.scan``.

    ``idx_batches`` has shape ``[T, k]``: request ``t`` removes the ``k`` rows
    ``idx_batches[t]`` in one Newton step. The returned ``info`` fields are
    stacked along ``T``. Other arguments as in :func:`remove`.
    """
    if _validate.is_concrete(idx_batches):
        arr = _host_indices(idx_batches, name="idx_batches")
        if arr.ndim != 2:
            raise ValueError(
                f"Expected idx_batches of shape [T, k], got {arr.shape}."
            )
    elif jnp.ndim(idx_batches) != 2:
        raise ValueError(
            f"Expected idx_batches of shape [T, k], got {jnp.shape(idx_batches)}."
        )
    flat = _validate_request(state, idx_batches, X, y, name="idx_batches")
    batches = jnp.asarray(flat.reshape(np.shape(idx_batches)) if flat is not None else idx_batches)
    X, y = jnp.asarray(X), _labels(state, y)
    digest = _cached_digest(X)
    out = _remove_sequence_impl(state, batches, X, y, digest, _cg_tol(state, X), checks=checks)
    if flat is not None:
        _raise_if_other_data(state, out[0], X, y)
    return out


#: Feature digests of device arrays already seen, by ``id(X)``; an entry is
#: dropped when its array is garbage-collected (so an id is never reused for
#: other data while its entry lives).
_DIGESTS: dict[int, Array] = {}


def _cached_digest(X) -> Array | None:
    """The features' half of the data fingerprint, computed once per array.

    A ``jax.Array`` cannot change, so the digest of the same ``X`` is computed
    once (one pass, in a separate program, on the array's devices) and reused
    by every later removal: a queue of removals on the same data reads ``X``
    only for the removals themselves. ``None`` inside a trace (the removal
    then computes it in its own program). The labels' half is cheap and is
    computed by every removal.
    """
    if not _validate.on_device(X):
        return None
    key = id(X)
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = _features_digest_jit(X)
        _DIGESTS[key] = digest
        weakref.finalize(X, _DIGESTS.pop, key, None)
    return digest


_features_digest_jit = jax.jit(_features_digest)


def _labels(state: CertifiedState, y) -> Array:
    y = jnp.asarray(y)
    if state.config.num_classes is not None and not jnp.issubdtype(y.dtype, jnp.integer):
        y = y.astype(jnp.int32)
    return y


def _cg_tol(state: CertifiedState, X) -> float:
    c = state.config.cg_tol
    return _default_cg_tol(X.dtype) if c is None else c


def _validate_request(state, idx, X, y, *, name):
    """Host-side checks of a request; returns the flat indices or None if traced."""
    if not isinstance(state, CertifiedState):
        raise ValueError(
            f"Expected state to be a CertifiedState (from train), got "
            f"{type(state).__name__}."
        )
    _check_features(X, values=False)
    n = state.mask.shape[0]
    if np.shape(X) != (n, state.params.shape[-1]):
        raise ValueError(
            f"Expected X of shape {(n, state.params.shape[-1])} (the training data), "
            f"got {np.shape(X)}."
        )
    _check_labels(y, n, state.config.loss, state.config.num_classes)
    arr = _host_indices(idx, name=name)
    if arr is None or not _validate.is_concrete(state.mask):
        return None
    if arr.ndim > 2 or (name == "idx" and arr.ndim > 1):
        raise ValueError(f"Expected {name} to be a scalar or 1-D, got shape {arr.shape}.")
    flat = _check_indices(arr, state.mask, name=name)
    _check_classes(y, state.mask, flat, config=state.config)
    return flat


def _raise_if_other_data(state, new_state, X, y) -> None:
    """After an eager removal: a poisoned result on other data is an error.

    The fingerprint is compared on the device inside the removal (one pass
    over X, shared with nothing else), which poisons the result; only when the
    result comes back invalid is the fingerprint recomputed here to say why.
    A state that was poisoned already stays poisoned without an error.
    """
    if bool(jnp.all(jnp.isfinite(new_state.residual_bounds))):
        return
    if not (_validate.is_concrete(state.fingerprint) and _validate.is_concrete(X)):
        return
    fp = data_fingerprint(jnp.asarray(X), _labels(state, y))
    if not bool(jnp.all(fp == state.fingerprint)):
        raise ValueError(
            "Expected X and y to be the data the model was trained on; their "
            "fingerprint differs (other rows, labels or dtype). A removal on "
            "other data would certify nothing."
        )


def true_residual(state: CertifiedState, X: ArrayLike, y: ArrayLike) -> Array:
    """The quantity every bound bounds: ``‖∇L_b(w; D′)‖`` (sum form, with ``+b``).

    The gradient of the *perturbed* objective on the remaining rows, over all
    heads concatenated (the maintainers' reading in facebookresearch/
    certified-removal issue #1: without ``+b`` the "residual" is about
    ``‖b‖``). For validation only: one pass over the data, in ``X``'s dtype
    (pass float64 arrays, with x64 enabled, for an exact reference).
    """
    config = state.config
    X = jnp.asarray(X)
    nc = config.num_classes
    Y = _head_labels(_labels(state, y), nc, X.dtype)
    W = _as_heads(state.params, nc).astype(X.dtype)
    B = _as_heads(state.perturbation, nc).astype(X.dtype)
    weights = state.mask.astype(X.dtype)
    G = jax.vmap(
        lambda w, Yh, b: solvers.gradient(
            w, X, Yh, weights, b, state.lam.astype(X.dtype), config.loss
        )
    )(W, Y, B)
    return jnp.linalg.norm(G)


def predict(state: CertifiedState, X: ArrayLike) -> Array:
    """Predictions: ±1 (binary logistic), class ids (one-vs-rest), reals (ridge)."""
    X = jnp.asarray(X)
    if state.config.num_classes is not None:
        return jnp.argmax(mm(X, state.params.T), axis=1)
    scores = mm(X, state.params)
    if state.config.loss.labels == "real":
        return scores
    return jnp.where(scores >= 0, 1, -1)


def accuracy(state: CertifiedState, X: ArrayLike, y: ArrayLike) -> float:
    """Fraction of correct classifications of a logistic or one-vs-rest model."""
    return float(jnp.mean(predict(state, X) == jnp.asarray(y)))


# ---------------------------------------------------------------------------
# The certificate of a released model.
# ---------------------------------------------------------------------------


def pointwise_epsilon(state: CertifiedState, event) -> Array:
    """``ε̄`` of one state on a :class:`removal_certificate.NoiseEvent`. Jittable.

    ``ε̄ = [σ z r P + σ(√(Kd) + t) Q + β²/2]/σ² + J`` (see :func:`removal_epsilon`).
    """
    return removal_certificate.pointwise_epsilon(
        sigma=state.sigma,
        beta=state.grad_residual_bound,
        remainder_mass=state.remainder_mass,
        unstructured=jnp.sqrt(jnp.sum(state.unstructured_bounds**2)),
        logdet=state.logdet_bound,
        row_norm=state.row_norm_bound,
        dim=int(np.prod(state.params.shape)),
        event=event,
    )


def removal_epsilon(state: CertifiedState, *, delta: float) -> float:
    """The ``ε`` this released model has against retraining, at noise-event ``δ``.

    ``ε̄ = [σ z r P + σ(√(Kd) + t) Q + β²/2]/σ² + J`` on an event of the
    perturbation of probability ``>= 1 − delta`` (:mod:`dpunlearn.removal_certificate`;
    ``docs/certified_removal.md``). The model is then ``(ε̄, delta +
    state.rounding_failure)``-indistinguishable from retraining *given this
    ``b``*: ``ε̄`` is a function of the secret, so it certifies a release only
    through a rule that decides from the data alone
    (:mod:`dpunlearn.retrain_schedule`), whose own ``δ′`` is added.
    """
    event = removal_certificate.noise_event(
        delta, num_rows=state.mask.shape[0], num_heads=state.config.num_heads
    )
    return float(pointwise_epsilon(state, event))


def residual_budget(
    *,
    sigma: float,
    epsilon: float,
    delta: float,
    method: Literal["paper", "analytic"] = "analytic",
) -> float:
    """The paper's residual budget: the largest ``β`` Algorithm 2 accepts.

    **Not a certificate.** Guo et al. (Theorem 3) treat the residual as a fixed
    shift of ``b``; it is a function of ``b`` (see :func:`removal_epsilon`).
    Kept for reproductions and for :mod:`dpunlearn.retrain_schedule`'s
    uncertified paper rule.

    * ``"paper"``: ``β = σε/c`` with ``c = √(2 ln(1.5/δ))`` (valid for ``ε <= 1``).
    * ``"analytic"``: the largest ``β`` with ``δ_G(ε; β/σ) <= δ``, ``δ_G`` the
      exact privacy profile of the Gaussian mechanism (Balle & Wang, ICML 2018,
      Theorem 8), the package-wide default.

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
    """The ``ε`` of a Gaussian mechanism with sensitivity ``β`` (Theorem 3's form).

    ``"paper"``: ``ε = cβ/σ``; ``inf`` where that exceeds 1. ``"analytic"``:
    the exact Gaussian-mechanism ``ε``. Valid for a *fixed* shift of norm
    ``β``; for a released model use :func:`removal_epsilon`.
    """
    return currencies.cr_epsilon(beta, sigma=sigma, delta=delta, method=method)


class Certificate(NamedTuple):
    """An ``(ε, δ)`` guarantee and how it was derived."""

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
    """The ``(ε, δ)`` of Theorem 3's Gaussian argument for a fixed shift ``β``.

    Give exactly one of ``epsilon`` or ``delta``; the other is computed.
    ``"paper"``: ``δ = 1.5·e^{−c²/2}`` with ``c = σε/β`` (``ε <= 1``);
    ``"analytic"``: the exact Gaussian profile (Balle & Wang 2018, Thm 8).
    The released model's certificate is :func:`removal_epsilon`.
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
    """Algorithm 2's count (uncertified): leading requests whose running sum of
    increments (from ``start``) stays within ``budget``."""
    if start > budget:
        return 0
    return currencies.supported_removals(bound_increments, budget - start)
