"""The common interface of unlearning methods.

A method is a small bundle of pure functions, in the spirit of
``optax.GradientTransformation``: a factory (e.g.
:func:`dpunlearn.methods.langevin`) closes over the static configuration and
returns a :class:`Method`:

* ``train(key, data, mask) -> (state, charge)`` trains on the rows of ``data``
  where ``mask`` is true. ``vmap`` over keys or masks gives many models at once
  (shadow models, shards, seeds).
* ``unlearn(key, state, request, data) -> (state, charge, info)`` removes the
  rows ``request`` (a fixed-size integer array, so one request size compiles
  once) from the model.
* ``predict(params, inputs) -> outputs`` on a batch of inputs.
* ``currency``: the name of the accounting currency the charges are in
  (:mod:`dpunlearn.accounting.currencies`); the ledger and :func:`dpunlearn.serve.serve`
  look it up in the registry.

Conventions every method follows:

* **State never holds the data.** ``data`` is passed to every call; a state
  holds parameters, secrets (noise, un-noised iterates), the row mask and
  counters. Every state has a ``params`` field (what is released) and a
  ``mask`` field (``bool[n]``, the rows it was trained on minus those removed).
* **Nothing fixed at training is passed again.** Hyperparameters, the loss,
  the noise calibration live in the factory's closure.
* **Keys are explicit.** ``train`` and ``unlearn`` take a key and never reuse
  it (methods that need no randomness to unlearn ignore theirs).
* **A charge** is a ``NamedTuple`` of arrays in the currency's units (jittable),
  with at least ``num_removed``; the currency's ``from_charge`` turns it into
  the fields of a ledger entry on the host.
* **Bad input**: structure errors raise ``ValueError``; value errors raise
  eagerly (:func:`check_request`) and, under ``jit``, poison the charge (its
  certificate fields become ``+inf``) and leave the model unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn import _sharding, _validate
from dpunlearn.types import Array, ArrayLike, PRNGKey, PyTree

__all__ = [
    "Data",
    "Method",
    "check_data",
    "check_mask",
    "check_request",
    "request_valid",
]


class Data(NamedTuple):
    """A data set as the methods see it: ``x [n, ...]`` and ``y [n]``."""

    x: Array
    y: Array

    @property
    def num_rows(self) -> int:
        return int(jax.tree.leaves(self.x)[0].shape[0])


class Method(NamedTuple):
    """An unlearning method: its name, its currency and three pure functions.

    Attributes:
      name: Short name (``"langevin"``, ``"certified_removal"``, ...).
      currency: Name of its accounting currency (a registry key).
      train: ``(key, data, mask) -> (state, charge)``.
      unlearn: ``(key, state, request, data) -> (state, charge, info)``.
      predict: ``(params, inputs) -> outputs`` over a batch.
    """

    name: str
    currency: str
    train: Callable[[PRNGKey, Data, Array], tuple[Any, Any]]
    unlearn: Callable[[PRNGKey, Any, Array, Data], tuple[Any, Any, Any]]
    predict: Callable[[PyTree, Array], Array]


def as_data(data) -> Data:
    """Accepts a :class:`Data` or an ``(x, y)`` pair."""
    if isinstance(data, Data):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        return Data(*data)
    raise ValueError(
        f"Expected data to be dpunlearn.methods.Data(x, y) or an (x, y) pair, got "
        f"{type(data).__name__}."
    )


def check_data(data, *, num_rows: int | None = None) -> Data:
    """Structural checks: leading dimensions agree (and equal ``num_rows``)."""
    data = as_data(data)
    leaves = jax.tree.leaves(data.x)
    if not leaves:
        raise ValueError("Expected data.x to hold at least one array.")
    n = np.shape(leaves[0])[0] if np.ndim(leaves[0]) else None
    if n is None or any(np.shape(leaf)[:1] != (n,) for leaf in leaves):
        raise ValueError(
            f"Expected every leaf of data.x to share a leading row axis, got shapes "
            f"{[np.shape(leaf) for leaf in leaves]}."
        )
    if np.ndim(data.y) < 1 or np.shape(data.y)[0] != n:
        raise ValueError(
            f"Shape mismatch: data.x has {n} rows but data.y has shape {np.shape(data.y)}."
        )
    if num_rows is not None and n != num_rows:
        raise ValueError(
            f"Expected data with {num_rows} rows (the data the model was trained on), "
            f"got {n}."
        )
    for leaf in leaves:
        _validate.finite_array("data.x", leaf)
    if jnp.issubdtype(jnp.result_type(data.y), jnp.floating):
        _validate.finite_array("data.y", data.y)
    return data


def check_mask(mask, num_rows: int, *, data: Data | None = None) -> Array:
    """``mask``: ``bool[n]`` keeping at least one row (checked when concrete).

    The default (every row) is split over devices like the rows of ``data``
    when given (explicitly sharded data; elsewhere it is the plain mask).
    """
    if mask is None:
        if data is not None:
            return _sharding.ones_rows(data.x)
        return jnp.ones((num_rows,), bool)
    if np.shape(mask) != (num_rows,):
        raise ValueError(f"Expected mask of shape ({num_rows},), got {np.shape(mask)}.")
    if _validate.is_concrete(mask):
        m = np.asarray(mask)
        if m.dtype != bool:
            raise ValueError(f"Expected mask to be boolean, got dtype {m.dtype}.")
        if not m.any():
            raise ValueError("Expected mask to keep at least one row.")
    return jnp.asarray(mask, bool)


def check_request(request: ArrayLike, mask: ArrayLike, *, name: str = "request") -> Array:
    """Eager checks of a request against the current mask; returns an int array.

    A request is a 1-D array of distinct row indices, in range, not removed
    before, leaving at least one row. Values are range-checked as int64 before
    any narrowing (with x64 off JAX would wrap ``2**32 + 7`` to ``7``).
    Traced requests pass through (see :func:`request_valid`).
    """
    if isinstance(request, (str, bytes)):
        raise ValueError(f"Expected {name} to hold integers, got a string.")
    if not _validate.is_concrete(request):
        if jnp.ndim(request) != 1:
            raise ValueError(f"Expected {name} to be 1-D, got shape {jnp.shape(request)}.")
        return request
    arr = np.atleast_1d(np.asarray(request))
    if arr.dtype == bool or arr.dtype.kind not in "iu":
        raise ValueError(f"Expected {name} to hold integers, got dtype {arr.dtype}.")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"Expected {name} to be a non-empty 1-D array, got shape {arr.shape}.")
    if not _validate.is_concrete(mask):
        return jnp.asarray(arr)
    m = np.asarray(mask)
    n = m.shape[0]
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        raise ValueError(
            f"Expected every {name} index in [0, {n - 1}]; got {arr[np.argmax(bad)]} "
            f"(negative indices are not allowed)."
        )
    uniq, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"Expected distinct {name} indices; {uniq[np.argmax(counts > 1)]} is repeated.")
    gone = ~m[arr]
    if gone.any():
        raise ValueError(f"Row {arr[np.argmax(gone)]} in {name} was already removed.")
    if arr.size >= m.sum():
        raise ValueError(f"{name} would remove all {int(m.sum())} remaining rows.")
    return jnp.asarray(arr)


def request_valid(request: Array, mask: Array) -> tuple[Array, Array]:
    """On-device validity of a request (for ``jit``): ``(valid, safe_indices)``.

    ``safe_indices`` are clipped into range so that gathers and scatters never
    silently drop or wrap; use them only where ``valid`` holds.
    """
    n = mask.shape[0]
    in_range = jnp.all((request >= 0) & (request < n))
    safe = jnp.clip(request, 0, n - 1)
    present = jnp.all(_sharding.gather_rows(mask, safe))
    ordered = jnp.sort(request)
    distinct = jnp.all(ordered[1:] != ordered[:-1]) if request.shape[0] > 1 else True
    left = jnp.sum(mask) - request.shape[0] >= 1
    return in_range & present & distinct & left, safe
