"""Reconstructing a deleted record from the parameter change (white box).

Bertran, Tang, Kearns, Morgenstern, Roth, Wu. *Reconstruction Attacks on
Machine Unlearning: Simple Models are Vulnerable.* NeurIPS 2024.
https://arxiv.org/abs/2405.20272

**Threat model.** The attacker sees the parameters before (``θ``) and after
(``θ'``) the deletion of one record, knows the model class, the loss, the
regulariser ``λ`` and the training-set size ``n``, and can sample public
data from the same distribution, but not the training set. Goal: the
deleted ``x``.

**Attack.** For a regularised empirical risk in sum form,
``L_D(θ) = Σ_{i∈D} ℓ(θ; x_i, y_i) + (λ|D|/2)‖θ‖²`` (the mean-form objective of
every method in this package: the regulariser's weight shrinks by ``λ/2``
when a row leaves), with ``∇L_D(θ) = 0`` and ``∇L_{D∖x}(θ') = 0``,
``∇L_D(θ') = ℓ'(θ'ᵀx, y)·x + λθ'`` for a linear model. To first order
``H_D (θ' − θ) ≈ ℓ'·x + λθ'``, so

    x̂ = H (θ − θ') + λθ'  ∝  −ℓ'·x.

(Bertran et al. write a regulariser of fixed weight; then the ``λθ'`` term
is absent: pass ``lam=0`` to :func:`reconstruct`.) For ridge regression
(constant Hessian) and exact retraining this is exact:
``x̂ = (y − xᵀθ')·x``. For Newton-step removal from ``θ`` (Guo et al.'s, with
the Hessian of the remaining rows at ``θ``) it is exact up to replacing
``λθ'`` by ``λθ`` (a second-order difference), because the removed row's own
term ``ℓ''xxᵀ`` maps the step onto ``x`` as well.

* ``hessian="true"``: ``H = Σ_{i∈D} ∇²ℓ(θ; x_i, y_i) + λn I`` over the training
  rows (what the data holder could compute: the attack's upper end).
* ``hessian="public"``: ``Ĥ = (n/m) Σ_{public} ∇²ℓ(θ; x, y) + λn I`` from ``m``
  public samples.

**Sign.** ``x̂`` is known up to sign (the sign of ``ℓ'`` depends on the
unknown label). With a coordinate known to be positive (a constant bias
feature, ``sign_coordinate``) the sign is fixed as in the paper; otherwise it
is aligned with the public mean.

**Metric and baselines** (the paper's): cosine similarity of ``x̂`` and the
deleted ``x``; **Avg** = the mean of the public samples; **MaxDiff** = the
public sample whose prediction changes most between ``θ`` and ``θ'``.
Non-negative pixel data make Avg high (every image looks like the mean
image): always read the cosine against the baseline. The derivation, and why
certified removal's loss perturbation does not protect the pair ``(θ, θ')``,
are in ``docs/attacks_and_audits.md`` §1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from dpunlearn import _validate
from dpunlearn.methods.base import Data, Method, as_data
from dpunlearn.types import Array, PRNGKey

__all__ = [
    "LOSSES",
    "ReconstructionResult",
    "cosine",
    "hessian",
    "reconstruct",
    "reconstruction_attack",
]


def _logistic(w, x, y):
    return jax.nn.softplus(-y * jnp.vdot(w, x))


def _ridge(w, x, y):
    return 0.5 * jnp.square(jnp.vdot(w, x) - y)


#: Per-example losses of linear models ``ℓ(w, x, y)`` (``y ∈ {±1}`` for logistic).
LOSSES: dict[str, Callable] = {"logistic": _logistic, "ridge": _ridge}


def _loss_fn(loss) -> Callable:
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"Expected loss in {tuple(LOSSES)} or a callable, got {loss!r}.")
    return LOSSES[loss]


def hessian(loss, params, x, y, *, lam: float, num_rows: int | None = None) -> Array:
    """``(N/m) Σ_rows ∇²ℓ(θ; x, y) + λN I`` on the flattened parameters ``[p, p]``.

    Args:
      loss: ``"logistic"``, ``"ridge"`` or ``ℓ(params, x, y) -> scalar``.
      params: ``θ`` (any pytree).
      x, y: The ``m`` rows the Hessian is summed over.
      lam: Mean-form L2 strength.
      num_rows: ``N``, the training-set size the sum stands for (default
        ``m``: the rows are the training set).
    """
    _validate.non_negative(lam=lam)
    fn = _loss_fn(loss)
    flat, unravel = ravel_pytree(params)
    m = x.shape[0]
    N = m if num_rows is None else num_rows
    per = jax.vmap(jax.hessian(lambda w, xi, yi: fn(unravel(w), xi, yi)), in_axes=(None, 0, 0))
    H = jnp.sum(per(flat, x, y), axis=0) * (N / m)
    return H + lam * N * jnp.eye(flat.shape[0], dtype=flat.dtype)


def reconstruct(params_before, params_after, hess: Array, *, lam: float = 0.0) -> Array:
    """``H (θ − θ') + λθ'`` flattened: proportional to the deleted record (sign
    aside). ``lam`` is the mean-form L2 strength (0 for a fixed-weight
    regulariser)."""
    a, _ = ravel_pytree(params_before)
    b, _ = ravel_pytree(params_after)
    return jnp.matmul(hess, a - b, precision=jax.lax.Precision.HIGHEST) + lam * b


def cosine(a, b) -> np.ndarray:
    """Row-wise cosine similarity of ``[..., d]`` arrays (0 for a zero vector)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    den = np.where((na > 0) & (nb > 0), na * nb, 1.0)
    return np.sum(a * b, axis=-1) / den


class ReconstructionResult(NamedTuple):
    """Reconstructions of deleted records and the paper's baselines.

    Attributes:
      rows: ``[T]`` indices of the deleted records.
      reconstructions: ``[T, d]`` sign-aligned ``x̂``.
      cosine: ``[T]`` cosine of ``x̂`` and ``x``.
      cosine_avg: ``[T]`` cosine of the public mean and ``x`` (Avg).
      cosine_maxdiff: ``[T]`` cosine of the MaxDiff public sample and ``x``.
      cosine_centred: ``[T]`` cosine after centring on the public mean, with
        ``x̂`` scaled so that its ``sign_coordinate`` equals that constant
        feature's value (read off the public data: the bias feature fixes the
        scale as well as the sign); NaN without ``sign_coordinate``.
        Avg scores 0 here, so this reads without the baseline.
      cosine_maxdiff_centred: ``[T]`` the same for the MaxDiff sample.
      hessian: ``"true"`` or ``"public"``.
    """

    rows: np.ndarray
    reconstructions: np.ndarray
    cosine: np.ndarray
    cosine_avg: np.ndarray
    cosine_maxdiff: np.ndarray
    cosine_centred: np.ndarray
    cosine_maxdiff_centred: np.ndarray
    hessian: str


def reconstruction_attack(
    key: PRNGKey,
    method: Method,
    data: Data,
    rows,
    *,
    public: Data,
    loss="logistic",
    lam: float,
    hessian_source: str = "true",
    sign_coordinate: int | None = None,
    mask=None,
) -> ReconstructionResult:
    """Trains one model with ``method``, deletes each of ``rows`` in turn
    (each from the same trained model, one ``vmap``), and reconstructs it.

    Args:
      key: Randomness of training and of every unlearning.
      method: A method of the common interface on a linear model (params a
        flat weight vector ``[d]``).
      data: Training data.
      rows: Row indices to delete, one at a time (each from the original).
      public: Public samples ``Data(x, y)`` from the same distribution.
      loss: The training loss (``"logistic"``, ``"ridge"`` or a callable).
      lam: The method's mean-form L2 strength.
      hessian_source: ``"true"`` (training rows) or ``"public"``.
      sign_coordinate: Index of a constant positive feature (a bias column).
      mask: Rows trained on (default all).
    """
    data, public = as_data(data), as_data(public)
    if hessian_source not in ("true", "public"):
        raise ValueError(f'Expected hessian_source "true" or "public", got {hessian_source!r}.')
    rows = np.atleast_1d(np.asarray(rows))
    k_train, k_unl = jax.random.split(key)
    state, _ = method.train(k_train, data, mask)
    theta = state.params
    train_mask = np.asarray(state.mask)
    n = int(train_mask.sum())
    keys = jax.random.split(k_unl, rows.size)

    @jax.jit
    def unlearn_all(keys, reqs):
        return jax.vmap(lambda k, r: method.unlearn(k, state, r, data)[0].params)(keys, reqs)

    after = unlearn_all(keys, jnp.asarray(rows[:, None], jnp.int32))
    if hessian_source == "true":
        sel = np.nonzero(train_mask)[0]
        H = hessian(loss, theta, data.x[sel], data.y[sel], lam=lam)
    else:
        H = hessian(loss, theta, public.x, public.y, lam=lam, num_rows=n)
    rec = np.asarray(jax.vmap(lambda a: reconstruct(theta, a, H, lam=lam))(after), np.float64)
    x = np.asarray(data.x, np.float64)[rows]
    pub = np.asarray(public.x, np.float64)
    avg = pub.mean(axis=0)
    if sign_coordinate is not None:
        sign = np.sign(rec[:, sign_coordinate])
    else:
        sign = np.sign(rec @ avg)
    rec = rec * np.where(sign == 0, 1.0, sign)[:, None]
    # MaxDiff: the public sample whose output changes most.
    flat_b, _ = ravel_pytree(theta)
    out_b = pub @ np.asarray(flat_b, np.float64).reshape(-1)
    out_a = pub @ np.asarray(after, np.float64).reshape(rows.size, -1).T  # [m, T]
    best = np.argmax(np.abs(out_a - out_b[:, None]), axis=0)
    if sign_coordinate is not None:
        # The constant feature's value (its public mean) fixes the scale.
        scale = rec[:, sign_coordinate : sign_coordinate + 1] / avg[sign_coordinate]
        scaled = rec / np.where(scale == 0, 1.0, scale)
        cen = cosine(scaled - avg, x - avg)
        cen_md = cosine(pub[best] - avg, x - avg)
    else:
        cen = cen_md = np.full(rows.size, np.nan)
    return ReconstructionResult(
        rows=rows,
        reconstructions=rec,
        cosine=cosine(rec, x),
        cosine_avg=cosine(np.broadcast_to(avg, x.shape), x),
        cosine_maxdiff=cosine(pub[best], x),
        cosine_centred=cen,
        cosine_maxdiff_centred=cen_md,
        hessian=hessian_source,
    )
