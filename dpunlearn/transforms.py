"""Gradient transformations for noisy training and unlearning, as optax transforms.

Every noisy method in :mod:`dpunlearn.methods` takes its steps through these,
so a user can chain them with any optax optimiser:

* :func:`clip_per_example` — clips each example's gradient (a leading batch
  axis, from ``jax.vmap(jax.grad(loss))``) to ℓ2 norm ``C`` over the whole
  pytree, then averages: the sensitivity control of DP-SGD (Abadi et al.,
  CCS 2016, Algorithm 1) and of noisy-GD unlearning (Chien et al., 2024).
* :func:`gaussian_noise` — adds ``N(0, std²)`` to every coordinate, one fresh
  key per leaf per step, the key kept in the state and split on every update
  (optax's convention). ``std`` is constant (``optax.add_noise`` anneals it).
* :func:`project_l2_ball` — makes the *parameters* land in the ℓ2 ball of
  radius ``R`` after the update: ``u ← Π(θ + u) − θ``, the Euclidean projection
  (not a rescaling onto the sphere: points inside are left alone). Projected
  noisy gradient descent needs it for its contraction argument (Chien, Wang,
  Chen, Li, "Langevin Unlearning", NeurIPS 2024, eq. 2).
* :func:`noisy_clipped_step` — the noisy step from per-example gradients:
  clip, average, add the (never clipped) L2 term ``λθ``, scale by ``−η``,
  add ``N(0, 2ησ²)`` (the Langevin step), project.
* :func:`noisy_step_from_sum` — the same step from the sum of already-clipped
  per-example gradients (what the noisy methods use, with
  :func:`dpunlearn.methods._noisy.clipped_grad_sum`: one pass over the data
  less per step).

Noise is sampled in the dtype of each leaf. JAX's threefry is not a
cryptographic generator: see the README's security note.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from dpunlearn.types import PRNGKey

__all__ = [
    "GaussianNoiseState",
    "clip_per_example",
    "gaussian_noise",
    "noisy_clipped_step",
    "noisy_step_from_sum",
    "project_l2_ball",
    "tree_norm",
]


def tree_norm(tree) -> jax.Array:
    """ℓ2 norm of a pytree (all leaves together)."""
    return optax.tree.norm(tree)


def clip_per_example(
    clip_norm: float, *, normalizer=None, reduce: str = "mean"
) -> optax.GradientTransformation:
    """Clips every example's gradient to ``clip_norm``, then averages (or sums) over examples.

    Expects updates with a leading example axis on every leaf (as returned
    by ``jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))``); returns the mean
    of the clipped gradients, shaped like the parameters. Each clipped
    gradient has norm ``<= clip_norm`` (optax's
    ``per_example_global_norm_clip``), so replacing one example moves the
    mean by at most ``2·clip_norm/B``. Must be first in a chain.

    Args:
      clip_norm: ``C > 0`` (a Python number).
      normalizer: Divide the sum of clipped gradients by this instead of the
        batch size ``B`` (a number or a traced scalar): e.g. the number of
        rows a mask keeps, when masked rows enter as zero gradients.
      reduce: ``"mean"`` (default) or ``"sum"``. ``"sum"`` returns the sum of
        clipped gradients (adding or removing one example moves it by at most
        ``clip_norm``): DP-SGD with Poisson sampling sums
        the clipped gradients of a sample of random size and divides by the
        *expected* batch size after the noise (:mod:`dpunlearn.dpsgd`). An
        all-zero gradient (a padding example) stays zero.
    """
    if not clip_norm > 0:
        raise ValueError(f"Expected clip_norm={clip_norm} > 0.")
    if reduce not in ("mean", "sum"):
        raise ValueError(f"Expected reduce in ('mean', 'sum'), got {reduce!r}.")

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        leaves, treedef = jax.tree.flatten(updates)
        batch = leaves[0].shape[0] if normalizer is None else normalizer
        clipped, _ = optax.transforms.per_example_global_norm_clip(leaves, clip_norm)
        if reduce == "sum":
            return jax.tree.unflatten(treedef, clipped), state
        scaled = [c / jnp.asarray(batch, c.dtype) for c in clipped]
        return jax.tree.unflatten(treedef, scaled), state

    return optax.GradientTransformation(init, update)


class GaussianNoiseState(NamedTuple):
    """The key of :func:`gaussian_noise`, split on every update."""

    key: PRNGKey


def gaussian_noise(std, *, key: PRNGKey) -> optax.GradientTransformation:
    """Adds ``N(0, std² I)`` to the updates, a fresh key per leaf and step.

    Args:
      std: Noise standard deviation (a number or a traced scalar), ``>= 0``.
      key: A ``jax.random`` key; the state keeps and splits it.
    """

    def init(params):
        del params
        return GaussianNoiseState(key=key)

    def update(updates, state, params=None):
        del params
        leaves, treedef = jax.tree.flatten(updates)
        new_key, *keys = jax.random.split(state.key, len(leaves) + 1)
        noisy = [
            u + jnp.asarray(std, u.dtype) * jax.random.normal(k, u.shape, u.dtype)
            for u, k in zip(leaves, keys)
        ]
        return jax.tree.unflatten(treedef, noisy), GaussianNoiseState(key=new_key)

    return optax.GradientTransformation(init, update)


def project_l2_ball(radius) -> optax.GradientTransformation:
    """Updates ``u`` such that ``θ + u = Π_{‖·‖ <= R}(θ + u_in)``: the Euclidean
    projection onto the ball (inside points unchanged). Needs ``params``."""

    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("project_l2_ball needs params: call update(u, s, params).")
        target = optax.apply_updates(params, updates)
        projected = optax.projections.projection_l2_ball(target, radius)
        return jax.tree.map(lambda p, q: q - p, params, projected), state

    return optax.GradientTransformation(init, update)


def noisy_clipped_step(
    *,
    learning_rate,
    noise_std,
    clip_norm: float | None,
    radius,
    key: PRNGKey,
    weight_decay=0.0,
    normalizer=None,
) -> optax.GradientTransformation:
    """One projected noisy (clipped) gradient step, from per-example gradients.

    ``θ ← Π_R(θ − η·(mean_i clip_C(∇ℓ_i(θ)) + λθ) + N(0, 2ησ² I))``: the
    update of projected noisy gradient descent / Langevin dynamics (Chien,
    Wang, Chen, Li 2024, eq. 2; with mini-batches, Chien et al. 2024
    "Certified Machine Unlearning via Noisy Stochastic Gradient Descent",
    eq. 3). ``noise_std`` is ``σ``; the noise added is ``√(2η)·σ`` per
    coordinate. With ``clip_norm=None`` the gradients are averaged without
    clipping (a loss with a known Lipschitz constant needs none).

    Args:
      learning_rate: ``η``.
      noise_std: ``σ`` (the added noise is ``√(2η)σ`` per coordinate).
      clip_norm: Per-example clip ``C``, or None.
      radius: ``R`` of the projection.
      key: Key of the noise (kept in the state, split every step).
      weight_decay: ``λ >= 0``: adds ``λθ`` after clipping and averaging, so
        the L2 term of the objective is never clipped (the noisy-SGD
        unlearning paper's form; it is the same for adjacent data sets and
        adds nothing to the sensitivity).
      normalizer: Divide the sum of (clipped) per-example gradients by this
        instead of the batch size (see :func:`clip_per_example`).
    """
    first = (
        clip_per_example(clip_norm, normalizer=normalizer)
        if clip_norm is not None
        else _mean_over_examples(normalizer)
    )
    return optax.chain(
        first, *_noisy_tail(learning_rate, noise_std, radius, key, weight_decay)
    )


def noisy_step_from_sum(
    *,
    learning_rate,
    noise_std,
    radius,
    key: PRNGKey,
    normalizer,
    weight_decay=0.0,
) -> optax.GradientTransformation:
    """:func:`noisy_clipped_step` for updates that are already the SUM of the
    clipped per-example gradients (no example axis), e.g. from
    :func:`dpunlearn.methods._noisy.clipped_grad_sum`.

    ``θ ← Π_R(θ − η·(u/normalizer + λθ) + N(0, 2ησ² I))`` with ``u`` the
    incoming sum: the same chain after the clip (same weight decay, scale,
    noise with the same key schedule, projection). The noisy methods use it
    because clipping inside the gradient computation (clip factors, then one
    batched backward pass) costs about one pass over the data less than
    materialising the per-example gradients for :func:`clip_per_example`.

    Args:
      learning_rate, noise_std, radius, key, weight_decay: As for
        :func:`noisy_clipped_step`.
      normalizer: Divide the sum by this (a number or a traced scalar): the
        batch size, or the ``N`` of the objective.
    """
    return optax.chain(
        _divide_by(normalizer),
        *_noisy_tail(learning_rate, noise_std, radius, key, weight_decay),
    )


def _noisy_tail(learning_rate, noise_std, radius, key, weight_decay):
    """The chain after the (clipped) mean: L2 term, −η, Langevin noise, projection."""
    decay = (
        [optax.add_decayed_weights(weight_decay)]
        if not (isinstance(weight_decay, (int, float)) and weight_decay == 0)
        else []
    )
    return [
        *decay,
        optax.scale(-learning_rate),
        gaussian_noise(jnp.sqrt(2.0 * learning_rate) * noise_std, key=key),
        project_l2_ball(radius),
    ]


def _divide_by(normalizer) -> optax.GradientTransformation:
    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u: u / jnp.asarray(normalizer, u.dtype), updates), state

    return optax.GradientTransformation(init, update)


def _mean_over_examples(normalizer=None) -> optax.GradientTransformation:
    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        if normalizer is None:
            return jax.tree.map(lambda u: jnp.mean(u, axis=0), updates), state
        total = jax.tree.map(lambda u: jnp.sum(u, axis=0), updates)
        return jax.tree.map(lambda u: u / jnp.asarray(normalizer, u.dtype), total), (
            state
        )

    return optax.GradientTransformation(init, update)
