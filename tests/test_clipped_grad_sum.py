"""The fused clipped-gradient path of the noisy methods.

:func:`dpunlearn.methods._noisy.clipped_grad_sum` followed by
:func:`dpunlearn.transforms.noisy_step_from_sum` must give the update of
:func:`dpunlearn.methods._noisy.per_example_grads` followed by
:func:`dpunlearn.transforms.noisy_clipped_step` (same key, same noise), up to
float32 rounding, for a linear model and a flax MLP, with dropped rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dpunlearn import models, transforms
from dpunlearn.methods import _noisy


def _data(n=40, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.linspace(0.1, 3.0, n)[:, None]
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    keep = rng.random(n) < 0.7
    return (
        jnp.asarray(x, jnp.float32),
        jnp.asarray(y, jnp.float32),
        jnp.asarray(keep),
    )


def _reference(loss, params, x, y, keep, clip):
    grads, norms = _noisy.per_example_grads(loss, params, x, y, keep)
    summed, _ = optax.transforms.per_example_global_norm_clip(
        jax.tree.leaves(grads), clip
    )
    return jax.tree.unflatten(jax.tree.structure(params), summed), norms


def _mlp(d, classes):
    module = models.init_nnx_mlp(jax.random.key(3), (d, 5, classes))
    model, _ = models.from_nnx(module)
    return model


@pytest.mark.parametrize("clip", [0.05, 1.0, 1e6])
@pytest.mark.parametrize("block_rows", [None, 7, 40])  # one block; 5 + remainder; exact
def test_linear_sum_and_norms_match_per_example_path(clip, block_rows):
    x, y, keep = _data()
    model = models.linear(x.shape[1])
    params = jnp.asarray(np.random.default_rng(1).normal(size=x.shape[1]), jnp.float32)
    got, norms = jax.jit(
        _noisy.clipped_grad_sum, static_argnums=(0, 5), static_argnames="block_rows"
    )(model.loss, params, x, y, keep, clip, block_rows=block_rows)
    want, want_norms = _reference(model.loss, params, x, y, keep, clip)
    np.testing.assert_allclose(norms, want_norms, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert float(jnp.max(jnp.where(keep, 0.0, norms))) == 0.0


def test_mlp_sum_matches_per_example_path_and_dropped_rows_count_nothing():
    x, _, keep = _data(n=30, d=4, seed=2)
    y = jnp.asarray(np.random.default_rng(2).integers(0, 3, size=30), jnp.int32)
    model = _mlp(4, 3)
    got, norms = _noisy.clipped_grad_sum(
        model.loss, model.params, x, y, keep, 0.3, block_rows=8
    )
    want, want_norms = _reference(model.loss, model.params, x, y, keep, 0.3)
    np.testing.assert_allclose(norms, want_norms, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Control: changing a dropped row's data changes nothing.
    dropped = int(np.flatnonzero(~np.asarray(keep))[0])
    x2 = x.at[dropped].set(100.0)
    again, _ = _noisy.clipped_grad_sum(
        model.loss, model.params, x2, y, keep, 0.3, block_rows=8
    )
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)


def test_noisy_step_from_sum_is_the_same_update_and_noise():
    x, y, keep = _data(n=25, d=5, seed=4)
    model = models.linear(5)
    params = jnp.asarray(np.random.default_rng(5).normal(size=5), jnp.float32)
    kw = dict(learning_rate=0.3, noise_std=0.2, radius=1.5, weight_decay=0.1)
    key = jax.random.key(7)
    old = transforms.noisy_clipped_step(clip_norm=0.5, normalizer=25, key=key, **kw)
    new = transforms.noisy_step_from_sum(normalizer=25, key=key, **kw)
    grads, _ = _noisy.per_example_grads(model.loss, params, x, y, keep)
    total, _ = _noisy.clipped_grad_sum(model.loss, params, x, y, keep, 0.5)
    s_old, s_new = old.init(params), new.init(params)
    p_old = p_new = params
    for _ in range(3):  # the noise key advances identically
        u_old, s_old = old.update(grads, s_old, p_old)
        u_new, s_new = new.update(total, s_new, p_new)
        p_old, p_new = (
            optax.apply_updates(p_old, u_old),
            optax.apply_updates(p_new, u_new),
        )
        np.testing.assert_allclose(p_new, p_old, rtol=1e-5, atol=1e-6)
        grads, _ = _noisy.per_example_grads(model.loss, p_old, x, y, keep)
        total, _ = _noisy.clipped_grad_sum(model.loss, p_new, x, y, keep, 0.5)
    assert float(jnp.linalg.norm(p_new)) <= 1.5 + 1e-5
    # Control: another key gives other noise.
    other = transforms.noisy_step_from_sum(normalizer=25, key=jax.random.key(8), **kw)
    u_other, _ = other.update(total, other.init(params), params)
    u_first, _ = new.update(total, new.init(params), params)
    assert not np.allclose(u_other, u_first)
