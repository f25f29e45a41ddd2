"""Every registered method on a 2 x 4 mesh: rows over ``data``, models over ``model``.

The device count is fixed when JAX starts, so the check runs in its own
process with ``JAX_NUM_CPU_DEVICES=8`` (fake CPU devices). For each method of
``tests/test_methods_interface.py``'s ``BUILDERS``, on a mesh with automatic
axis types (XLA places the reductions) and on one with explicit axis types
(``jax.make_mesh``'s default, under ``jax.set_mesh``: every array's type
carries its sharding and :mod:`dpunlearn._sharding` supplies the output
shardings of row contractions, gathers and scatters):

* **data axis**: training and one request on data whose rows are sharded over
  the mesh's ``data`` axis give the same parameters (to float tolerance: the
  row reductions run in another order) as on one device;
* **model axis**: ``vmap(method.train)`` over keys sharded over the ``model``
  axis, with the rows sharded over ``data``, equals the unsharded ``vmap``.

The one-device results are computed once and compared with both meshes.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from dpunlearn.methods import FACTORIES

SCRIPT = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    sys.path.insert(0, {tests!r})
    from test_methods_interface import BUILDERS, small_binary
    from dpunlearn import methods

    assert jax.device_count() == 8, jax.devices()
    data = small_binary()                      # 48 rows: 12 per data shard
    request = jnp.array([3, 5])
    keys = jax.random.split(jax.random.key(2), 2)

    def close(a, b, what):
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=2e-3, atol=2e-4,
                                       err_msg=what)

    def on_mesh(mesh):
        sharded = methods.Data(
            jax.device_put(data.x, NamedSharding(mesh, P("data", None))),
            jax.device_put(data.y, NamedSharding(mesh, P("data"))),
        )
        return sharded, jax.device_put(keys, NamedSharding(mesh, P("model")))

    names = sys.argv[1:] or sorted(BUILDERS)
    for name in names:
        method = BUILDERS[name]()
        a, _ = method.train(jax.random.key(0), data, None)
        a2, _, _ = method.unlearn(jax.random.key(1), a, request, data)
        va, _ = jax.vmap(lambda k: method.train(k, data, None))(keys)
        for kind in (AxisType.Auto, AxisType.Explicit):
            mesh = jax.make_mesh((2, 4), ("model", "data"), axis_types=(kind,) * 2)
            with jax.set_mesh(mesh):
                sharded, keys_sharded = on_mesh(mesh)
                b, _ = method.train(jax.random.key(0), sharded, None)
                close(a.params, b.params, f"{{name}} {{kind}}: train")
                b2, _, _ = method.unlearn(jax.random.key(1), b, request, sharded)
                close(a2.params, b2.params, f"{{name}} {{kind}}: unlearn")
                vb, _ = jax.vmap(lambda k: method.train(k, sharded, None))(keys_sharded)
                close(va.params, vb.params, f"{{name}} {{kind}}: vmap over the model axis")
            print("sharded-ok", name, kind.name, flush=True)
    """
)


# Two halves of the methods in two processes, so that pytest-xdist can run them
# side by side; certified removal (its shadow models) costs about as much as four
# of the others (measured on 2 CPU cores), and methods not named here go second.
FIRST_HALF = {
    "certified_removal", "certified_finetune", "descent_to_delete", "fair_unlearning",
    "sekhari",
}  # fmt: skip


@pytest.mark.parametrize("half", [0, 1])
def test_every_method_on_a_model_by_data_mesh(half):
    names = [n for n in sorted(FACTORIES) if (n in FIRST_HALF) == (half == 0)]
    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="8", JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(tests=tests), *names],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    for name in names:
        for kind in ("Auto", "Explicit"):
            assert f"sharded-ok {name} {kind}" in out.stdout, out.stdout


SISA_SCRIPT = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    from dpunlearn import methods, models, retrain_schedule

    assert jax.device_count() == 8, jax.devices()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)) + 0.2
    X /= 2 * np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(X @ rng.normal(size=4) > 0, 1.0, -1.0)
    data = methods.Data(jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32))
    sisa = methods.sisa(model=models.linear(4), num_shards=4, num_slices=2, epochs=2,
                        batch_size=8)
    request = jnp.array([3, 5])
    keys = jax.random.split(jax.random.key(2), 4)
    a, _ = sisa.train(jax.random.key(0), data, None)
    a2, _, _ = sisa.unlearn(jax.random.key(1), a, request, data)
    va, _ = jax.vmap(lambda k: sisa.train(k, data, None))(keys)

    def close(u, v, what):
        for p, q in zip(jax.tree.leaves(u), jax.tree.leaves(v)):
            np.testing.assert_allclose(np.asarray(p), np.asarray(q), rtol=1e-5, atol=1e-6,
                                       err_msg=what)

    def meshes():
        # 4 x 2 ("model" x "data") meshes of both kinds, the rows on "data".
        for kind in (AxisType.Auto, AxisType.Explicit):
            mesh = jax.make_mesh((4, 2), ("model", "data"), axis_types=(kind,) * 2)
            with jax.set_mesh(mesh):
                sharded = methods.Data(
                    jax.device_put(data.x, NamedSharding(mesh, P("data", None))),
                    jax.device_put(data.y, NamedSharding(mesh, P("data"))),
                )
            yield kind, mesh, sharded

    for kind, mesh, sharded in meshes():
        with jax.set_mesh(mesh):
            b, _ = sisa.train(jax.random.key(0), sharded, None)
            # The 4 constituents and their checkpoints: one per model device.
            for leaf in jax.tree.leaves((b.params.constituents, b.checkpoints)):
                assert leaf.sharding.spec[0] == "model", (kind, leaf.sharding)
                assert leaf.addressable_shards[0].data.shape[0] == 1, leaf.sharding
            close(a.params, b.params, f"{kind}: train")
            b2, _, _ = sisa.unlearn(jax.random.key(1), b, request, sharded)
            close(a2.params, b2.params, f"{kind}: unlearn")
            for leaf in jax.tree.leaves(b2.params.constituents):
                assert leaf.sharding.spec[0] == "model", (kind, leaf.sharding)
            # Models over the same axis from outside: the inner shards stay
            # together on each model device.
            ks = jax.device_put(keys, NamedSharding(mesh, P("model")))
            vb, _ = jax.vmap(lambda k: sisa.train(k, sharded, None))(ks)
            close(va.params, vb.params, f"{kind}: vmap over models")
        print("sisa-ok", kind.name, flush=True)

    # Certified removal's shadow models: 48 in chunks of 16 (a smaller
    # SHADOW_BATCH than the default 1024, so that the chunked path runs), each
    # chunk split over "model", their margins over "data". (δ = 0.2 lets 48
    # shadows certify; the test is about placement, not about δ.)
    retrain_schedule.SHADOW_BATCH = 16
    cr = methods.certified_removal(lam=0.1, sigma=1.0, epsilon=1.0, delta=0.2,
                                   num_shadows=48)
    a, _ = cr.train(jax.random.key(0), data, None)
    a2, charge_a, _ = cr.unlearn(jax.random.key(1), a, request, data)
    for kind, mesh, sharded in meshes():
        with jax.set_mesh(mesh):
            b, _ = cr.train(jax.random.key(0), sharded, None)
            b2, charge_b, _ = cr.unlearn(jax.random.key(1), b, request, sharded)
            for state in (b, b2):
                shadows = state.schedule.shadows
                for leaf in (shadows.params, shadows.mask, shadows.margins):
                    assert leaf.sharding.spec[0] == "model", (kind, leaf.sharding)
                    assert leaf.addressable_shards[0].data.shape[0] == 12, leaf.sharding
                assert "data" in tuple(shadows.margins.sharding.spec), shadows.margins.sharding
            close(a.schedule.shadows.params, b.schedule.shadows.params, f"{kind}: shadows")
            close(a2.schedule.shadows.params, b2.schedule.shadows.params,
                  f"{kind}: shadows after a request")
            assert int(charge_a.num_exceeded) == int(charge_b.num_exceeded)
            np.testing.assert_allclose(charge_a.epsilon_pointwise, charge_b.epsilon_pointwise,
                                       rtol=1e-3)
        print("shadows-ok", kind.name, flush=True)
    """
)


def test_models_inside_a_method_split_over_the_model_axis():
    """SISA's own ``vmap`` over its ``S`` shards, and certified removal's
    shadow models, are split over the ``model`` axis of a 4 × 2 mesh (one
    constituent, or 12 of 48 shadows, per device), with the rows over
    ``data``; training and unlearning equal one device."""
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="8", JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", SISA_SCRIPT],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    for kind in ("Auto", "Explicit"):
        assert f"sisa-ok {kind}" in out.stdout, out.stdout
        assert f"shadows-ok {kind}" in out.stdout, out.stdout
