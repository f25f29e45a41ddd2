"""What an attacker observes when it queries a released model.

Every attack in :mod:`dpunlearn.attacks` sees a model only through a
:class:`Query`: its outputs on chosen inputs (black box), or, for the
reconstruction attack, its parameters (white box). A query turns parameters
into **logits** ``[n, K]``; from them come the posterior vectors
(:func:`posteriors`) and the **logit-scaled confidence** of the true label
(:func:`confidence`),

    φ(x, y) = log p_y(x) − log(1 − p_y(x)) = z_y − log Σ_{k≠y} e^{z_k},

the statistic of LiRA (Carlini et al., S&P 2022), U-LiRA and the NeurIPS 2023
unlearning-challenge metric, computed here from the logits without forming
the probabilities (no underflow, no ``1e-45`` guard needed).

Kinds of output:

* ``"pm1"``: one margin ``z = f(x)`` per example and labels ``y ∈ {−1, +1}``
  (binary logistic regression). Logits are ``[z, 0]``: column 0 is the class
  ``+1``, so ``p_{+1} = sigmoid(z)`` and ``φ = y·z``.
* ``"softmax"``: ``K`` logits and integer labels ``0..K−1``.
* ``"real"``: regression (ridge). The "posterior" is the prediction ``[n, 1]``
  and the confidence is ``−(f(x) − y)²`` (higher = better fit), the usual
  membership statistic for regression.

Queries for the models in this package: :func:`linear_query` (weights ``[d]``
or ``[K, d]``: certified removal, and Sekhari / Descent-to-Delete / retrain
on :func:`dpunlearn.models.linear`), :func:`model_query` (any
:class:`~dpunlearn.models.Model`), and the release defences :func:`label_only`
and :func:`top_k` (Chen et al., CCS 2021, §7).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dpunlearn import models
from dpunlearn.types import Array, PyTree

__all__ = [
    "KINDS",
    "Query",
    "confidence",
    "label_only",
    "linear_query",
    "model_query",
    "posteriors",
    "top_k",
]

KINDS = ("pm1", "softmax", "real")


class Query(NamedTuple):
    """Black-box access to a released model.

    Attributes:
      logits: ``(params, x [n, ...]) -> [n, K]`` (``[n, 2]`` for ``"pm1"``,
        ``[n, 1]`` for ``"real"``).
      kind: ``"pm1"``, ``"softmax"`` or ``"real"``.
      release: ``posteriors [n, K] -> what is released`` (identity unless a
        defence such as :func:`label_only` wraps the query).
    """

    logits: Callable[[PyTree, Array], Array]
    kind: str
    release: Callable[[Array], Array] | None = None


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"Expected kind in {KINDS}, got {kind!r}.")


def _columns(out: Array, kind: str) -> Array:
    if kind == "pm1":
        z = jnp.reshape(out, (out.shape[0],))
        return jnp.stack([z, jnp.zeros_like(z)], axis=1)
    if kind == "real":
        return jnp.reshape(out, (out.shape[0], 1))
    return out


def linear_query(kind: str = "pm1") -> Query:
    """A linear model: weights ``[d]`` (one margin) or ``[K, d]`` (``K`` logits).

    ``kind`` is ``"pm1"`` or ``"real"`` for ``[d]`` weights and ``"softmax"``
    for ``[K, d]`` (one-vs-rest heads are read as softmax logits).
    """
    _check_kind(kind)

    def logits(params, x):
        w = jnp.asarray(params)
        out = jnp.matmul(x, w.T, precision=jax.lax.Precision.HIGHEST)
        return _columns(out, kind)

    return Query(logits, kind)


def model_query(model: models.Model, kind: str = "softmax") -> Query:
    """Any :class:`~dpunlearn.models.Model`: ``vmap(model.apply)`` over the batch."""
    _check_kind(kind)

    def logits(params, x):
        out = jax.vmap(model.apply, in_axes=(None, 0))(params, x)
        return _columns(out, kind)

    return Query(logits, kind)


def _label_index(y: Array, kind: str) -> Array:
    if kind == "pm1":
        return jnp.where(jnp.asarray(y) > 0, 0, 1)
    return jnp.asarray(y).astype(jnp.int32)


def posteriors(query: Query, params: PyTree, x: Array) -> Array:
    """What the model releases for ``x``: softmax posteriors ``[n, K]``
    (predictions ``[n, 1]`` for ``"real"``), after the query's defence."""
    z = query.logits(params, x)
    p = z if query.kind == "real" else jax.nn.softmax(z, axis=-1)
    return p if query.release is None else query.release(p)


def confidence(query: Query, params: PyTree, x: Array, y: Array) -> Array:
    """The logit-scaled confidence ``φ(x, y)`` ``[n]`` (``−(f(x) − y)²`` for
    ``"real"``). Raw logits: a defence wrapped around the query does not apply
    (attacks on defended releases use :func:`posteriors`)."""
    z = query.logits(params, x)
    if query.kind == "real":
        return -jnp.square(z[:, 0] - jnp.asarray(y, z.dtype))
    idx = _label_index(y, query.kind)
    zy = jnp.take_along_axis(z, idx[:, None], axis=1)[:, 0]
    others = jnp.where(jax.nn.one_hot(idx, z.shape[1], dtype=bool), -jnp.inf, z)
    return zy - jax.nn.logsumexp(others, axis=1)


def label_only(query: Query) -> Query:
    """Defence: release only the predicted label (one-hot of the argmax)."""
    if query.kind == "real":
        raise ValueError("label_only applies to classifiers, not kind='real'.")

    def release(p):
        return jax.nn.one_hot(jnp.argmax(p, axis=-1), p.shape[-1], dtype=p.dtype)

    return query._replace(release=release)


def top_k(query: Query, k: int) -> Query:
    """Defence: release the ``k`` largest posteriors; every other entry is the
    average of the mass left, ``(1 − Σ top-k)/(K − k)`` (as in Chen et al.'s
    code)."""
    if query.kind == "real":
        raise ValueError("top_k applies to classifiers, not kind='real'.")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"Expected k to be an integer >= 1, got {k!r}.")

    def release(p):
        K = p.shape[-1]
        if k >= K:
            return p
        order = jnp.argsort(-p, axis=-1)
        top = jax.nn.one_hot(order[..., :k], K, dtype=bool).any(axis=-2)
        rest = (1 - jnp.sum(jnp.where(top, p, 0), axis=-1, keepdims=True)) / (K - k)
        return jnp.where(top, p, rest)

    return query._replace(release=release)
