"""Two JAX processes on one machine over loopback, as two hosts would run.

Each process starts ``jax.distributed`` (CPU collectives over gloo), holds
two fake CPU devices and only its own half of the rows; the four devices form
one ``data`` mesh axis, with automatic or explicit axis types (the latter set
with ``jax.set_mesh``). Certified removal trained and applied to the global,
row-sharded arrays gives the parameters and bounds of the same run on one
process holding all rows. Validation runs on the devices (nothing is fetched
that spans another host). The launch line is the README's multi-host recipe.
"""

import os
import socket
import subprocess
import sys
import textwrap

import pytest

WORKER = textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    process_id, port, kind = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id
    )
    import numpy as np
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding, PartitionSpec as P
    from dpunlearn import certified

    assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 8)); X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    X, y = X.astype(np.float32), y.astype(np.float32)

    # Reference: this process alone, all rows on its first device.
    ref = certified.train(jax.random.key(0), X, y, lam=1e-2, sigma=1.0)
    ref2, ref_info = certified.remove(ref, np.array([3, 250]), X, y)

    # Global arrays: this process supplies only its half of the rows.
    mesh = jax.make_mesh((4,), ("data",), axis_types=(getattr(jax.sharding.AxisType, kind),))
    if kind == "Explicit":
        jax.set_mesh(mesh)
    mine = slice(200 * process_id, 200 * (process_id + 1))
    Xg = jax.make_array_from_process_local_data(
        NamedSharding(mesh, P("data", None)), X[mine], X.shape)
    yg = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), y[mine], y.shape)
    s = certified.train(jax.random.key(0), Xg, yg, lam=1e-2, sigma=1.0)
    s2, info = certified.remove(s, np.array([3, 250]), Xg, yg)
    params = np.asarray(multihost_utils.process_allgather(s2.params, tiled=True))
    np.testing.assert_allclose(params, np.asarray(ref2.params), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(info.cumulative_bound), float(ref_info.cumulative_bound),
                               rtol=1e-3)
    try:
        certified.remove(s2, np.array([3]), Xg, yg)
    except ValueError as e:
        assert "already removed" in str(e), e
    else:
        raise AssertionError("a removed row was accepted")
    print("multihost-ok", process_id, flush=True)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["Auto", "Explicit"])
def test_two_processes_over_loopback_match_one(kind):
    port = str(_free_port())
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="2", JAX_PLATFORMS="cpu")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(i), port, kind],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=600))
    finally:
        for p in procs:
            p.kill()
    for i, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, err[-4000:]
        assert f"multihost-ok {i}" in out, out + err[-2000:]
