"""Models as the unlearning methods see them: parameters and pure functions.

A :class:`Model` is a parameter pytree plus ``apply(params, x) -> output`` and
a per-example ``loss(params, x, y) -> scalar`` (one example: ``x`` without the
batch axis). Methods batch with ``jax.vmap`` and never hold a framework
object, so any JAX model works. Adapters:

* :func:`from_nnx` — a flax nnx module, split into its graph definition and
  its ``nnx.Param`` state (``nnx.split``); :func:`to_nnx` merges parameters
  back into a module.
* :func:`from_linen` — a flax linen module and its variables (``apply`` with
  ``{"params": params}``).
* :func:`linear` — a linear model on flat features (logistic or softmax).

Losses (:func:`logistic_loss`, :func:`softmax_cross_entropy`) take the model's
output and the label; :func:`make_loss` composes them with ``apply``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dpunlearn.types import Array, PRNGKey, PyTree

__all__ = [
    "Model",
    "accuracy",
    "from_linen",
    "from_nnx",
    "linear",
    "logistic_loss",
    "make_loss",
    "softmax_cross_entropy",
    "to_nnx",
]


class Model(NamedTuple):
    """Initial parameters and the pure functions of a model.

    Attributes:
      params: A parameter pytree (any structure: dict, ``nnx.State``, array).
      apply: ``apply(params, x) -> output`` for ONE example ``x``.
      loss: ``loss(params, x, y) -> scalar`` for one example.
      predict: ``predict(params, x) -> label`` for one example.
    """

    params: PyTree
    apply: Callable[[PyTree, Array], Array]
    loss: Callable[[PyTree, Array, Array], Array]
    predict: Callable[[PyTree, Array], Array]


def logistic_loss(output: Array, y: Array) -> Array:
    """``log(1 + e^{−y·output})`` for a scalar output and ``y ∈ {−1, +1}``."""
    return jax.nn.softplus(-y * jnp.reshape(output, ()))


def softmax_cross_entropy(output: Array, y: Array) -> Array:
    """Cross-entropy of logits ``[K]`` against an integer label."""
    return optax.losses.softmax_cross_entropy_with_integer_labels(output, y)


def _label_fn(kind: str) -> Callable[[Array], Array]:
    if kind == "logistic":
        return lambda out: jnp.where(jnp.reshape(out, ()) >= 0, 1, -1)
    return lambda out: jnp.argmax(out, axis=-1)


def make_loss(apply, kind: str = "softmax") -> tuple[Callable, Callable]:
    """``(loss, predict)`` from ``apply`` and ``kind`` ("logistic"/"softmax")."""
    if kind not in ("logistic", "softmax"):
        raise ValueError(f"Expected kind in ('logistic', 'softmax'), got {kind!r}.")
    base = logistic_loss if kind == "logistic" else softmax_cross_entropy
    label = _label_fn(kind)
    return (
        lambda params, x, y: base(apply(params, x), y),
        lambda params, x: label(apply(params, x)),
    )


def linear(dim: int, *, num_classes: int | None = None, dtype=jnp.float32) -> Model:
    """A linear model ``w·x`` (binary logistic, ``y ∈ {±1}``) or ``W x`` (softmax).

    Starts at zero (training is convex; the initialisation does not matter).
    """
    if num_classes is None:
        params = jnp.zeros((dim,), dtype)
        apply = lambda w, x: jnp.dot(w, x, precision=jax.lax.Precision.HIGHEST)
        kind = "logistic"
    else:
        params = jnp.zeros((num_classes, dim), dtype)
        apply = lambda W, x: jnp.dot(W, x, precision=jax.lax.Precision.HIGHEST)
        kind = "softmax"
    loss, predict = make_loss(apply, kind)
    return Model(params, apply, loss, predict)


def from_nnx(module, *, kind: str = "softmax") -> tuple[Model, Any]:
    """A flax nnx module as a :class:`Model`, and what :func:`to_nnx` needs back.

    ``graphdef, params, rest = nnx.split(module, nnx.Param, ...)``; the model
    applies ``nnx.merge(graphdef, params, rest)`` to one example (a batch axis
    of one is added and removed), so only ``nnx.Param`` leaves are trained.

    Returns:
      ``(model, (graphdef, rest))``.
    """
    from flax import nnx

    graphdef, params, rest = nnx.split(module, nnx.Param, ...)

    def apply(p, x):
        return nnx.merge(graphdef, p, rest)(x[None])[0]

    loss, predict = make_loss(apply, kind)
    return Model(params, apply, loss, predict), (graphdef, rest)


def to_nnx(params: PyTree, handle) -> Any:
    """Merges trained parameters back into an nnx module (``nnx.merge``)."""
    from flax import nnx

    graphdef, rest = handle
    return nnx.merge(graphdef, params, rest)


def from_linen(module, variables, *, kind: str = "softmax") -> Model:
    """A flax linen module and its ``variables`` as a :class:`Model`.

    Trains ``variables["params"]``; other collections are held fixed.
    """
    rest = {k: v for k, v in variables.items() if k != "params"}

    def apply(p, x):
        return module.apply({"params": p, **rest}, x[None])[0]

    loss, predict = make_loss(apply, kind)
    return Model(variables["params"], apply, loss, predict)


def accuracy(model: Model, params: PyTree, x: Array, y: Array) -> Array:
    """Fraction of correct labels over a batch (vmapped ``predict``)."""
    return jnp.mean(jax.vmap(model.predict, in_axes=(None, 0))(params, x) == y)


def init_nnx_mlp(key: PRNGKey, sizes: tuple[int, ...]):
    """A small flax nnx MLP (ReLU hidden layers), for tests and experiments."""
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, sizes, rngs):
            self.layers = nnx.List(
                [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])]
            )

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = jax.nn.relu(layer(x))
            return self.layers[-1](x)

    return MLP(sizes, nnx.Rngs(params=key))


def init_linen_mlp(key: PRNGKey, sizes: tuple[int, ...]):
    """The same MLP in flax linen: ``(module, variables)``."""
    import flax.linen as nn

    class MLP(nn.Module):
        sizes: tuple[int, ...]

        @nn.compact
        def __call__(self, x):
            for width in self.sizes[1:-1]:
                x = jax.nn.relu(nn.Dense(width)(x))
            return nn.Dense(self.sizes[-1])(x)

    module = MLP(tuple(sizes))
    return module, module.init(key, jnp.zeros((1, sizes[0])))
