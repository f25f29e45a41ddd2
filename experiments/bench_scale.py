"""Scaling of certified removal over devices, and one removal at GPU scale.

Two parts, both printed as ``name: value`` and written to ``--out`` as JSON:

1. **Device scaling** (any machine). Rows sharded over a ``data`` mesh axis of
   1, 2, 4 and 8 devices (on a CPU, fake devices:
   ``JAX_NUM_CPU_DEVICES``, each count in its own process, since the count is
   fixed when JAX starts). For training (``certified.train``) and removal
   (``certified.remove_sequence``, one row per request):

   * strong scaling, fixed n: efficiency ``t_1 / (k · t_k)`` (1 is perfect);
   * weak scaling, n ∝ k: efficiency ``t_1 / t_k``.

   Fake CPU devices share the machine's cores: on a 2-core CPU the ideal is
   about 2/k for k > 2, and the figure measures the overhead of sharding as
   much as parallel speed.

2. **One removal at scale** (``--gpu``, when a GPU is present): seconds per
   certified removal at n = 1,000,000, d = 1,000 in float32 (products at
   ``Precision.HIGHEST``, as the certificate needs) and in float64, and the
   fraction of the device's memory bandwidth reached: bytes of X read per
   removal (``passes · n · d · itemsize``, two passes per solver iteration,
   counted from ``RemovalInfo.solver_iterations``) over the time, against the
   peak given by ``--peak-gbps`` (or a small table of known devices); and the
   same for one ``X @ v``. ``--allow-cpu`` runs this part on a CPU at small
   sizes (a check of the script, not a GPU figure).

Usage::

    python experiments/bench_scale.py                     # scaling on fake CPU devices
    python experiments/bench_scale.py --gpu --peak-gbps 4800   # on an H200 (HBM3e)
    python experiments/bench_scale.py --skip-scaling --gpu --allow-cpu \
        --gpu-rows 4000 --gpu-cols 100 --removals 5          # the GPU part, on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common

DEVICE_COUNTS = (1, 2, 4, 8)

# Peak memory bandwidth in GB/s of a few accelerators (vendor data sheets).
PEAK_GBPS = {"H200": 4800.0, "H100": 3350.0, "A100": 2039.0, "L4": 300.0}

WORKER = r"""
import json, sys, time
import jax, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from dpunlearn import certified
n, d, removals, repeats = (int(a) for a in sys.argv[1:5])
k = jax.device_count()
rng = np.random.default_rng(0)
X = rng.normal(size=(n, d)).astype(np.float32)
X /= np.linalg.norm(X, axis=1, keepdims=True)
y = np.where(X[:, 0] > 0, 1.0, -1.0).astype(np.float32)
mesh = jax.make_mesh((k,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
X = jax.device_put(X, NamedSharding(mesh, P("data", None)))
y = jax.device_put(y, NamedSharding(mesh, P("data")))
idx = np.arange(removals).reshape(removals, 1)

def best(f):
    f()  # compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return min(times)

train = lambda: jax.block_until_ready(
    certified.train(jax.random.key(0), X, y, lam=1e-3, sigma=1.0).params)
state = certified.train(jax.random.key(0), X, y, lam=1e-3, sigma=1.0)
remove = lambda: jax.block_until_ready(
    certified.remove_sequence(state, idx, X, y)[0].params)
print(json.dumps({"devices": k, "n": n, "d": d, "train_s": best(train),
                  "removal_s": best(remove) / removals}))
"""


def run_worker(devices: int, n: int, d: int, removals: int, repeats: int) -> dict:
    env = dict(os.environ, JAX_NUM_CPU_DEVICES=str(devices), JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(n), str(d), str(removals), str(repeats)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def scaling(args) -> dict:
    strong, weak = [], []
    for k in DEVICE_COUNTS:
        strong.append(run_worker(k, args.n, args.d, args.removals, args.repeats))
        print(f"[strong] {strong[-1]}", flush=True)
        weak.append(
            run_worker(k, args.weak_rows * k, args.d, args.removals, args.repeats)
        )
        print(f"[weak]   {weak[-1]}", flush=True)
    figures = {}
    for what in ("train", "removal"):
        t1 = strong[0][f"{what}_s"]
        w1 = weak[0][f"{what}_s"]
        for s, w in zip(strong[1:], weak[1:]):
            k = s["devices"]
            figures[f"{what}_strong_efficiency_{k}"] = t1 / (k * s[f"{what}_s"])
            figures[f"{what}_weak_efficiency_{k}"] = w1 / w[f"{what}_s"]
    return {"strong": strong, "weak": weak, "figures": figures}


def gpu_removal(args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from dpunlearn import certified, solvers

    device = jax.devices()[0]
    if device.platform != "gpu" and not args.allow_cpu:
        raise SystemExit("--gpu needs a GPU (jax.devices() has none); --allow-cpu "
                         "runs the same measurement on the CPU (small sizes).")
    peak = args.peak_gbps
    if peak is None:
        peak = next((v for k, v in PEAK_GBPS.items() if k in device.device_kind), None)
    results = {"device": device.device_kind, "peak_gbps": peak}
    n, d = args.gpu_rows, args.gpu_cols
    for dtype in ("float32", "float64"):
        if dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        key = jax.random.key(0)
        X = jax.random.normal(key, (n, d), dtype)
        X = X / jnp.linalg.norm(X, axis=1, keepdims=True)
        y = jnp.where(X[:, 0] > 0, 1.0, -1.0).astype(dtype)
        state = certified.train(jax.random.key(1), X, y, lam=1e-4, sigma=1.0)
        idx = np.arange(args.removals).reshape(-1, 1)

        def f(state=state, idx=idx, X=X, y=y):
            return jax.block_until_ready(certified.remove_sequence(state, idx, X, y))

        _, info = f()
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        per_removal = min(times) / args.removals
        # Passes over X per removal: two per solver iteration (X p, Xᵀ(D ⊙ Xp)).
        passes = 2 * float(np.mean(info.solver_iterations))
        v = jnp.ones((d,), dtype)
        mv = jax.jit(lambda X, v: solvers.mm(X, v))
        jax.block_until_ready(mv(X, v))
        t = time.perf_counter()
        for _ in range(20):
            jax.block_until_ready(mv(X, v))
        matvec = (time.perf_counter() - t) / 20
        bytes_x = n * d * jnp.dtype(dtype).itemsize
        row = {
            "removal_s": per_removal,
            "matvec_s": matvec,
            "removal_vs_matvec": per_removal / matvec,
            "passes_per_removal": passes,
            "removal_gbps": passes * bytes_x / per_removal / 1e9,
            "matvec_gbps": bytes_x / matvec / 1e9,
        }
        if peak:
            # Bytes of X a removal reads over its time, against the device's peak.
            row["removal_bandwidth_fraction"] = row["removal_gbps"] / peak
            row["matvec_bandwidth_fraction"] = row["matvec_gbps"] / peak
        results[dtype] = row
        print(f"[gpu {dtype}] {row}", flush=True)
    return results


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--n", type=int, default=16_384, help="rows, strong scaling (16,384)"
    )
    p.add_argument(
        "--weak-rows", type=int, default=4_096, help="rows per device, weak (4,096)"
    )
    p.add_argument("--d", type=int, default=256, help="columns (256)")
    p.add_argument("--removals", type=int, default=20, help="requests timed (20)")
    p.add_argument("--repeats", type=int, default=3, help="best of (3)")
    p.add_argument(
        "--gpu", action="store_true", help="also time one removal at GPU scale"
    )
    p.add_argument("--gpu-rows", type=int, default=1_000_000)
    p.add_argument("--gpu-cols", type=int, default=1_000)
    p.add_argument(
        "--peak-gbps", type=float, default=None, help="device peak bandwidth"
    )
    p.add_argument("--skip-scaling", action="store_true")
    p.add_argument(
        "--allow-cpu", action="store_true",
        help="run the --gpu measurement on a CPU (a check of the script at small sizes)",
    )
    p.add_argument("--out", default="results/bench_scale.json")
    args = p.parse_args(argv)
    machine = {
        "platform": platform.platform(),
        "cpu": common.cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    print(f"machine: {machine}", flush=True)
    result = {"machine": machine, "config": vars(args)}
    if not args.skip_scaling:
        result["scaling"] = scaling(args)
        for name, value in result["scaling"]["figures"].items():
            print(f"{name}: {value:.3f}")
    if args.gpu:
        result["gpu"] = gpu_removal(args)
        for dtype in ("float32", "float64"):
            for name, value in result["gpu"][dtype].items():
                print(f"gpu_{dtype}_{name}: {value:.4g}")
    result["machine"]["load_average_after"] = os.getloadavg()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, default=float)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
