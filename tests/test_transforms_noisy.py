"""The noisy transforms of dpunlearn.transforms: clipping, noise, projection.

Statistical tests have false-failure rate ``ALPHA`` and wrong-scale controls
that must be rejected; keys are fixed (reproducible).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.stats

from dpunlearn import transforms

ALPHA = 1e-3  # false-failure rate of every statistical test in this file


def test_clip_per_example_respects_the_norm_and_keeps_small_gradients():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(64, 5)) * np.logspace(-2, 2, 64)[:, None]
    tree = {
        "a": jnp.asarray(g[:, :2], jnp.float32),
        "b": jnp.asarray(g[:, 2:], jnp.float32),
    }
    tx = transforms.clip_per_example(1.0)
    one = jax.vmap(
        lambda t: tx.update(jax.tree.map(lambda x: x[None], t), tx.init(None))[0]
    )(tree)
    norms = np.sqrt(
        np.sum(np.asarray(one["a"]) ** 2, 1) + np.sum(np.asarray(one["b"]) ** 2, 1)
    )
    assert np.all(norms <= 1.0 + 1e-6)
    small = np.linalg.norm(g, axis=1) < 1.0
    np.testing.assert_allclose(np.asarray(one["a"])[small], g[small, :2], rtol=1e-6)
    mean, _ = tx.update(tree, tx.init(None))
    np.testing.assert_allclose(
        mean["a"], np.mean(np.asarray(one["a"]), 0), rtol=1e-5, atol=1e-7
    )
    # Control: a norm slightly above C would be caught.
    assert not np.all(norms * 1.001 <= 1.0 + 1e-6)


def test_weight_decay_and_normalizer_are_exact():
    g = jnp.asarray([[1.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    params = jnp.asarray([0.5, -0.5])
    tx = transforms.noisy_clipped_step(
        learning_rate=0.1,
        noise_std=0.0,
        clip_norm=2.0,
        radius=10.0,
        key=jax.random.key(0),
        weight_decay=0.3,
        normalizer=2.0,
    )
    upd, _ = tx.update(g, tx.init(params), params)
    want = -0.1 * (
        (np.array([1.0, 0.0]) + np.array([0.0, 2.0])) / 2.0 + 0.3 * np.asarray(params)
    )
    np.testing.assert_allclose(upd, want, rtol=1e-6)


def chi2_two_sided_p(z: np.ndarray) -> float:
    stat, dof = float(np.sum(z**2)), z.size
    return 2 * min(scipy.stats.chi2.cdf(stat, dof), scipy.stats.chi2.sf(stat, dof))


def test_noise_variance_is_two_eta_sigma_squared():
    eta, sigma = 0.3, 0.7
    params = {"w": jnp.zeros((50,)), "b": jnp.zeros((2, 25))}
    zeros = jax.tree.map(lambda p: jnp.zeros((1,) + p.shape), params)

    def draw(key):
        tx = transforms.noisy_clipped_step(
            learning_rate=eta, noise_std=sigma, clip_norm=1.0, radius=1e6, key=key
        )
        upd, _ = tx.update(zeros, tx.init(params), params)
        return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(upd)])

    z = np.asarray(jax.vmap(draw)(jax.random.split(jax.random.key(0), 400)), np.float64)
    z = z.ravel() / math.sqrt(2 * eta * sigma**2)  # 40,000 values
    assert chi2_two_sided_p(z) > ALPHA
    assert scipy.stats.kstest(z, "norm").pvalue > ALPHA
    # Wrong-scale controls must be rejected.
    for scale in (0.97, 1.03):
        assert chi2_two_sided_p(z / scale) < ALPHA
    for scale in (2 / 3, 3 / 2):
        assert scipy.stats.kstest(z / scale, "norm").pvalue < ALPHA
    # Fresh noise per leaf and per key.
    draws = z.reshape(400, 100)
    assert not np.allclose(draws[:, :50], draws[:, 50:])
    assert not np.allclose(draws[0], draws[1])


def test_projection_lands_in_the_ball_and_leaves_inside_points_alone():
    params = jnp.asarray([0.1, 0.2, -0.1])
    tx = transforms.noisy_clipped_step(
        learning_rate=1.0,
        noise_std=1e-3,
        clip_norm=None,
        radius=1.0,
        key=jax.random.key(1),
    )
    far, _ = tx.update(jnp.asarray([[-50.0, 0.0, 0.0]]), tx.init(params), params)
    new = optax.apply_updates(params, far)
    assert float(jnp.linalg.norm(new)) <= 1.0 + 1e-6
    assert (
        float(jnp.linalg.norm(new)) >= 1.0 - 1e-6
    )  # projected onto the sphere, not inside
    near, _ = tx.update(jnp.asarray([[0.01, 0.0, 0.0]]), tx.init(params), params)
    inside = optax.apply_updates(params, near)
    assert float(jnp.linalg.norm(inside)) < 1.0
    assert abs(float(inside[0]) - 0.09) < 1e-2  # the step, not a rescaling
