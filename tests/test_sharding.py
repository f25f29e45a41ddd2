"""Sharding transparency: rows of X and y sharded over 4 (fake CPU) devices.

The device count is fixed when JAX starts, so the check runs in its own
process with ``JAX_NUM_CPU_DEVICES=4``, on a mesh with automatic axis types
(XLA places the row reductions) and on one with explicit axis types (under
``jax.set_mesh``; :mod:`dpunlearn._sharding` gives every row contraction,
gather and scatter its output sharding). On both: training and a sequence of
removals equal one device; the parameters and the perturbation come back
replicated and the mask split like the rows; and the compiled removal (with
either solver, ``"pcg"`` or ``"cholesky"``) moves
no more than ``k × d`` rows and ``d``-vectors between devices: it has no
all-gather of anything as large as ``X``.
"""

import os
import re
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import re, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    from dpunlearn import certified
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 8)); X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    X, y = X.astype(np.float32), y.astype(np.float32)
    a = certified.train(jax.random.key(0), X, y, lam=1e-2, sigma=1.0)
    idx = np.arange(6).reshape(3, 2)
    a2, ia = certified.remove_sequence(a, idx, X, y)
    kind = getattr(AxisType, sys.argv[1])
    mesh = jax.make_mesh((4,), ("data",), axis_types=(kind,))
    with jax.set_mesh(mesh):
        Xs = jax.device_put(X, NamedSharding(mesh, P("data", None)))
        ys = jax.device_put(y, NamedSharding(mesh, P("data")))
        b = certified.train(jax.random.key(0), Xs, ys, lam=1e-2, sigma=1.0)
        np.testing.assert_allclose(a.params, b.params, rtol=1e-4, atol=1e-5)
        b2, ib = certified.remove_sequence(b, idx, Xs, ys)
        np.testing.assert_allclose(a2.params, b2.params, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ia.cumulative_bound, ib.cumulative_bound, rtol=1e-3)
        np.testing.assert_allclose(ia.logdet_bound, ib.logdet_bound, rtol=1e-3)
        assert b2.mask.sharding.spec == P("data"), b2.mask.sharding
        for leaf in (b2.params, b2.perturbation):
            assert leaf.sharding.is_fully_replicated, leaf.sharding
        # The removal of rows held by two shards, compiled: which collectives?
        # Both solvers (the Cholesky one also bounds leverages row by row).
        c = certified.train(jax.random.key(0), Xs, ys, lam=1e-2, sigma=1.0,
                            solver="cholesky")
        remove = jax.jit(lambda s, i, X, y: certified.remove(s, i, X, y))
        hlos = [remove.lower(s, jnp.array([3, 150]), Xs, ys).compile().as_text()
                for s in (b, c)]
    pattern = r"= (.+?) (all-gather|all-reduce|all-to-all|collective-permute)(-start)?\\("
    for line in "\\n".join(hlos).splitlines():
        m = re.search(pattern, line)
        if m:
            print("collective", m.group(2), m.group(1))
    print("sharded-ok")
    """
)


def _element_counts(shapes: str) -> list[int]:
    """Element counts of the arrays in an HLO shape (``f32[2,8]{1,0}`` or a tuple)."""
    counts = []
    for dims in re.findall(r"\w+\[([\d,]*)\]", shapes):
        n = 1
        for d in filter(None, dims.split(",")):
            n *= int(d)
        counts.append(n)
    return counts


@pytest.mark.parametrize("kind", ["Auto", "Explicit"])
def test_row_sharded_training_and_removal_match_unsharded(kind):
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="4", JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, kind],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sharded-ok" in out.stdout
    collectives = [line.split(" ", 2)[1:] for line in out.stdout.splitlines()
                   if line.startswith("collective ")]
    # The removed rows (k x d) and d-vectors are all-reduced; X (n x d = 3200
    # floats) is never gathered, and nothing moves rows between devices.
    assert any(op == "all-reduce" for op, _ in collectives), collectives
    for op, shapes in collectives:
        assert op != "all-to-all" and op != "collective-permute", (op, shapes)
        if op == "all-gather":
            assert max(_element_counts(shapes)) < 400 * 8, (op, shapes)
