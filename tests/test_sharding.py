"""Sharding transparency: rows of X and y sharded over 4 (fake CPU) devices.

The device count is fixed when JAX starts, so the check runs in its own
process with ``JAX_NUM_CPU_DEVICES=4``. Meshes with automatic axis types are
supported (XLA inserts the row reductions); explicit-sharding meshes would need
``out_sharding`` annotations on every contraction and are not supported yet.
"""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from dpunlearn import certified
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 8)); X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    X, y = X.astype(np.float32), y.astype(np.float32)
    mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    Xs = jax.device_put(X, NamedSharding(mesh, P("data", None)))
    ys = jax.device_put(y, NamedSharding(mesh, P("data")))
    a = certified.train(jax.random.key(0), X, y, lam=1e-2, sigma=1.0)
    b = certified.train(jax.random.key(0), Xs, ys, lam=1e-2, sigma=1.0)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-4, atol=1e-5)
    idx = np.arange(6).reshape(3, 2)
    a2, ia = certified.remove_sequence(a, idx, X, y)
    b2, ib = certified.remove_sequence(b, idx, Xs, ys)
    np.testing.assert_allclose(a2.params, b2.params, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ia.cumulative_bound, ib.cumulative_bound, rtol=1e-3)
    assert b2.mask.sharding.spec == P("data"), b2.mask.sharding
    print("sharded-ok")
    """
)


def test_row_sharded_training_and_removal_match_unsharded():
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="4", JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sharded-ok" in out.stdout
