"""Helpers shared by the second-order and gradient-descent methods.

Both :mod:`~dpunlearn.methods.sekhari` and
:mod:`~dpunlearn.methods.descent_to_delete` work on the parameters of *any*
model flattened to one vector (``jax.flatten_util.ravel_pytree``): Hessians,
projections onto an ℓ2 ball and isotropic Gaussian noise are defined on that
vector, and every release is unflattened back to the model's own pytree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from dpunlearn import _sharding, _validate, models
from dpunlearn.methods.base import Data
from dpunlearn.types import Array, PRNGKey, PyTree


class FlatModel(NamedTuple):
    """A model's loss as a function of one flat parameter vector.

    Attributes:
      flat0: The initial parameters, flattened (shape ``[p]``).
      unravel: ``flat -> params`` pytree (the model's own structure).
      loss: ``f(w, x, y)``: the per-example *regularised* loss
        ``loss(unravel(w), x, y) + (lam/2)‖w‖²`` on a flat ``w``.
      dim: ``p``.
    """

    flat0: Array
    unravel: Callable[[Array], PyTree]
    loss: Callable[[Array, Any, Array], Array]
    dim: int


def flatten_model(model: models.Model, lam: float) -> FlatModel:
    """The regularised per-example loss of ``model`` on flat parameters."""
    if not isinstance(model, models.Model):
        raise ValueError(
            f"Expected model to be a dpunlearn.models.Model, got {type(model).__name__}."
        )
    leaves = jax.tree.leaves(model.params)
    if not leaves:
        raise ValueError("Expected model.params to hold at least one array.")
    if any(not jnp.issubdtype(jnp.result_type(leaf), jnp.floating) for leaf in leaves):
        raise ValueError(
            "Expected every leaf of model.params to be floating, got dtypes "
            f"{[jnp.result_type(leaf) for leaf in leaves]}."
        )
    flat0, unravel = ravel_pytree(model.params)
    half_lam = 0.5 * float(lam)

    def loss(w, x, y):
        return jnp.reshape(model.loss(unravel(w), x, y), ()) + half_lam * jnp.vdot(
            w, w, precision=jax.lax.Precision.HIGHEST
        )

    return FlatModel(flat0, unravel, loss, int(flat0.shape[0]))


def check_loss_on_data(model: models.Model, data: Data) -> None:
    """Structural check: ``model.loss`` evaluates to a scalar on one example."""
    x0 = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(np.shape(a)[1:], jnp.result_type(a)), data.x
    )
    y0 = jax.ShapeDtypeStruct(np.shape(data.y)[1:], jnp.result_type(data.y))
    try:
        out = jax.eval_shape(model.loss, model.params, x0, y0)
    except Exception as err:  # flax and jax raise several types here
        raise ValueError(
            f"model.loss(params, x, y) failed on one example of data (x leaves of shape "
            f"{[s.shape for s in jax.tree.leaves(x0)]}, y of shape {y0.shape}): {err}"
        ) from err
    if not hasattr(out, "shape") or int(np.prod(out.shape)) != 1:
        raise ValueError(
            f"Expected model.loss to return a scalar per example, got {out}."
        )


def check_params_like(name: str, params: PyTree, reference: PyTree) -> None:
    """Raises unless ``params`` has the structure, shapes and dtypes of ``reference``."""
    s_got, s_want = jax.tree.structure(params), jax.tree.structure(reference)
    if s_got != s_want:
        raise ValueError(
            f"Expected {name} to have the model's parameter structure {s_want}, got {s_got}."
        )
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(reference)):
        if np.shape(got) != np.shape(want) or jnp.result_type(got) != jnp.result_type(
            want
        ):
            raise ValueError(
                f"Expected {name} leaves shaped like the model's parameters: got "
                f"{np.shape(got)} {jnp.result_type(got)}, expected {np.shape(want)} "
                f"{jnp.result_type(want)}."
            )


def check_vector(name: str, value: Array, shape: tuple[int, ...]) -> None:
    """Structural check of a state field."""
    if np.shape(value) != shape:
        raise ValueError(f"Expected {name} of shape {shape}, got {np.shape(value)}.")


def check_request_shape(request) -> None:
    """Structural checks that hold under ``jit`` too: a non-empty integer vector."""
    if np.ndim(request) != 1 or np.shape(request)[0] < 1:
        raise ValueError(
            f"Expected a non-empty 1-D request, got shape {np.shape(request)}."
        )
    if not jnp.issubdtype(jnp.result_type(request), jnp.integer):
        raise ValueError(
            f"Expected the request to hold integers, got dtype {jnp.result_type(request)}."
        )


def all_finite(data: Data) -> Array:
    """On-device: every floating entry of ``data`` is finite."""
    ok = jnp.asarray(True)
    for leaf in jax.tree.leaves(data):
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            ok = ok & jnp.all(jnp.isfinite(leaf))
    return ok


def rows(data: Data, idx: Array) -> Data:
    """The rows ``idx`` of ``data``."""
    take = lambda a: _sharding.gather_rows(a, idx)
    return Data(jax.tree.map(take, data.x), take(data.y))


def gaussian(key: PRNGKey, dim: int, dtype) -> Array:
    """``N(0, I_p)`` in ``dtype``: the one noise draw every release uses."""
    return jax.random.normal(key, (dim,), dtype)


def release(key: PRNGKey, secret: Array, sigma, unravel) -> PyTree:
    """``unravel(secret + σ·ξ)``, ``ξ ~ N(0, I_p)``: the Gaussian output mechanism."""
    noise = gaussian(key, secret.shape[0], secret.dtype)
    return unravel(secret + jnp.asarray(sigma, secret.dtype) * noise)


def is_concrete(*trees) -> bool:
    return all(_validate.is_concrete(t) for t in trees)


def eig_tolerance(dtype, dim: int, scale) -> Array:
    """Rounding allowance of a computed eigenvalue of a ``dim × dim`` matrix of
    norm about ``scale``: ``10·p·eps·scale`` (generous; eigh is backward stable)."""
    return 10.0 * dim * jnp.finfo(dtype).eps * scale


def where_tree(pred: Array, a: PyTree, b: PyTree) -> PyTree:
    """``a`` where ``pred`` else ``b``, leaf by leaf (same structure)."""
    return jax.tree.map(lambda u, v: jnp.where(pred, u, v), a, b)
