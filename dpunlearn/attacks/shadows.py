"""Many models at once: shadow, target and reference models of any method.

Every attack here needs many models of one method: trained on random subsets
(shadow models), and unlearned or retrained (target models). They are all
``jax.vmap(method.train)`` over keys and masks, and ``jax.vmap(method.unlearn)``
over keys, states and requests, through the common interface only
(:class:`dpunlearn.methods.Method`): adding a method to the package makes it
attackable with no code here. ``batch_size`` maps over the models in vmapped
chunks (``jax.lax.map``) to bound memory.

Masks follow the LiRA code (Carlini et al., S&P 2022): in
:func:`balanced_masks` every example is in exactly ``round(fraction·M)`` of the
``M`` models, so each example has the same number of "in" and "out" shadow
models.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn import _validate
from dpunlearn.methods.base import Data, Method, as_data
from dpunlearn.types import Array, PRNGKey

__all__ = [
    "balanced_masks",
    "map_models",
    "subset_masks",
    "train_models",
    "unlearn_models",
]


def balanced_masks(key: PRNGKey, num_models: int, num_rows: int, fraction: float = 0.5) -> Array:
    """``bool[M, n]``: every column (example) is true in ``round(fraction·M)`` rows.

    Rows (models) hold about ``fraction·n`` examples each.
    """
    _validate.positive_int(num_models=num_models, num_rows=num_rows)
    _validate.open_interval(0.0, 1.0, fraction=fraction)
    k = int(round(fraction * num_models))
    if not 0 < k < num_models:
        raise ValueError(
            f"Expected fraction·num_models={fraction * num_models} to round to a "
            f"count in [1, {num_models - 1}]."
        )
    u = jax.random.uniform(key, (num_models, num_rows))
    rank = jnp.argsort(jnp.argsort(u, axis=0), axis=0)
    return rank < k


def subset_masks(key: PRNGKey, num_models: int, num_rows: int, size: int) -> Array:
    """``bool[M, n]``: each model keeps exactly ``size`` rows, uniformly at random."""
    _validate.positive_int(num_models=num_models, num_rows=num_rows, size=size)
    if size > num_rows:
        raise ValueError(f"Expected size={size} <= num_rows={num_rows}.")
    u = jax.random.uniform(key, (num_models, num_rows))
    rank = jnp.argsort(jnp.argsort(u, axis=1), axis=1)
    return rank < size


def map_models(fn, xs, batch_size: int | None):
    """``vmap(fn)(xs)``, or ``lax.map`` over chunks of ``batch_size`` models."""
    if batch_size is None:
        return jax.vmap(fn)(xs)
    _validate.positive_int(batch_size=batch_size)
    return jax.lax.map(fn, xs, batch_size=batch_size)


def train_models(
    method: Method,
    keys: PRNGKey,
    data: Data,
    masks: Array,
    *,
    batch_size: int | None = None,
) -> tuple[Any, Any]:
    """Trains one model per ``(key, mask)``: ``(states, charges)`` stacked on axis 0.

    Args:
      method: Any method of the common interface.
      keys: ``[M]`` keys (``jax.random.split``).
      data: The full data; each model sees the rows of its mask.
      masks: ``bool[M, n]``.
      batch_size: Models per vmapped chunk (``None``: all at once).
    """
    data = as_data(data)
    masks = jnp.asarray(masks, bool)
    if masks.ndim != 2 or masks.shape[0] != keys.shape[0]:
        raise ValueError(
            f"Expected masks [M, n] with M = {keys.shape[0]} keys, got {masks.shape}."
        )

    return _train_program(method.train, batch_size)(keys, masks, data)


# One compiled program per (function, chunk size), so repeated calls (both
# sides of an attack, every seed of an audit, a wrapper such as
# ``planted.do_nothing`` that keeps ``train``) reuse the compilation.
@functools.lru_cache(maxsize=64)
def _train_program(train, batch_size: int | None):
    @jax.jit
    def run(keys, masks, data):
        return map_models(lambda km: train(km[0], data, km[1]), (keys, masks), batch_size)

    return run


@functools.lru_cache(maxsize=64)
def _unlearn_program(unlearn, batch_size: int | None):
    @jax.jit
    def run(keys, states, requests, data):
        return map_models(
            lambda ksr: unlearn(ksr[0], ksr[1], ksr[2], data),
            (keys, states, requests),
            batch_size,
        )

    return run


def unlearn_models(
    method: Method,
    keys: PRNGKey,
    states: Any,
    requests: Array,
    data: Data,
    *,
    batch_size: int | None = None,
) -> tuple[Any, Any, Any]:
    """Applies one request per model: ``(states, charges, infos)`` stacked.

    Args:
      method: The method that trained ``states``.
      keys: ``[M]`` fresh keys.
      states: ``M`` states stacked on axis 0 (from :func:`train_models`).
      requests: ``int[M, k]``, one request of ``k`` rows per model. Invalid
        requests are not checked here (they are traced): each method poisons
        its charge (see :mod:`dpunlearn.methods.base`); build requests from
        the models' masks.
      data: The data the states were trained on.
    """
    data = as_data(data)
    requests = jnp.asarray(requests)
    if requests.ndim != 2 or requests.shape[0] != keys.shape[0]:
        raise ValueError(
            f"Expected requests [M, k] with M = {keys.shape[0]} keys, got {requests.shape}."
        )
    if not np.issubdtype(requests.dtype, np.integer):
        raise ValueError(f"Expected integer requests, got dtype {requests.dtype}.")

    return _unlearn_program(method.unlearn, batch_size)(keys, states, requests, data)
