"""Benchmark: one SISA deletion request against full retraining; vmapped shards against a loop.

On the embedded MNIST subset (all ten classes, n = 4,000, d = 784; MLP
784-64-10, Adam, e = 10 epochs, batch 32 — the settings of
``experiments/sisa.py``), compile time excluded, medians over repeats:

* ``sisa_request_vs_retrain``: seconds to retrain one model (``S = R = 1``)
  from scratch on all rows, divided by seconds per single-row request to a
  SISA ensemble with ``S = 10``, ``R = 5`` (rows drawn uniformly; each request
  retrains its shard from the checkpoint before the row's slice). The
  expectation from the cost model is ``3RS/(2R+1) = 13.6``.
* ``vmapped_shards_vs_loop``: seconds to train ``S = 20`` shards (``R = 5``)
  as a loop of 20 single-shard programs, divided by seconds to train them in
  one ``vmap`` over the shard axis (the same result bit for bit).

Prints the two ratios one per line as ``name: value`` (stdout) and writes every
figure to JSON.

Usage:
  python experiments/bench_sisa.py [--requests 10] [--repeats 3] [--out F]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common  # also puts the checkout on sys.path

from dpunlearn import data as D
from dpunlearn import models
from dpunlearn.methods import Data, sisa
from dpunlearn.methods.sisa import expected_speedup


def _time(fn, repeats: int) -> float:
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times))



def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/bench_sisa.json")
    args = p.parse_args(argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)
    load_before = os.getloadavg()
    t_start = time.perf_counter()

    ds = D.load("mnist-subset", seed=args.seed, label_format="int")
    data = Data(jnp.asarray(ds.X_train), jnp.asarray(ds.y_train))
    n, d = ds.X_train.shape
    model, _ = models.from_nnx(
        models.init_nnx_mlp(jax.random.key(args.seed), (d, 64, 10))
    )
    key = jax.random.key(args.seed + 1)

    def make(S, R, **kw):
        return sisa(
            model=model,
            num_shards=S,
            num_slices=R,
            epochs=args.epochs,
            batch_size=32,
            learning_rate=3e-3,
            **kw,
        )

    full = make(1, 1)
    retrain_s = _time(lambda: full.train(key, data)[0], args.repeats)
    log(f"full retrain (S=R=1): {retrain_s:.3f} s")

    ens = make(10, 5)
    state, _ = ens.train(key, data)
    rng = np.random.default_rng(args.seed)
    rows = rng.choice(n, size=args.requests + 1, replace=False)
    jax.block_until_ready(ens.unlearn(key, state, rows[:1], data))  # compile
    secs, steps = [], []
    for r in rows[1:]:
        t = time.perf_counter()
        state, charge, _ = ens.unlearn(key, state, np.array([r]), data)
        jax.block_until_ready(state)
        secs.append(time.perf_counter() - t)
        steps.append(int(charge.num_slice_steps))
    request_s = float(np.median(secs))
    log(
        f"SISA S=10 R=5 request: median {request_s * 1e3:.2f} ms "
        f"(mean slice steps retrained {np.mean(steps):.2f} of 5)"
    )

    vm, lp = make(20, 5), make(20, 5, vectorize=False)
    vmap_s = _time(lambda: vm.train(key, data)[0], args.repeats)
    loop_s = _time(lambda: lp.train(key, data)[0], args.repeats)
    log(f"S=20 R=5 training: vmap {vmap_s:.3f} s, loop of 20 {loop_s:.3f} s")

    ratios = {
        "sisa_request_vs_retrain": retrain_s / request_s,
        "vmapped_shards_vs_loop": loop_s / vmap_s,
    }
    machine = f"{common.cpu_model()}, {os.cpu_count()} cores, {jax.default_backend()}"
    print(f"# machine: {machine}; load average {load_before[0]:.2f} at start")
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")
    result = {
        "ratios": ratios,
        "full_retrain_seconds": retrain_s,
        "request_seconds_median": request_s,
        "request_seconds": secs,
        "slice_steps_retrained": steps,
        "expected_speedup_one_row": expected_speedup(10, 5),
        "train_vmap_seconds_s20": vmap_s,
        "train_loop_seconds_s20": loop_s,
        "config": {
            "n": n,
            "d": d,
            "epochs": args.epochs,
            "requests": args.requests,
            "repeats": args.repeats,
            "seed": args.seed,
        },
        "machine": {
            "cpu": common.cpu_model(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "backend": jax.default_backend(),
            "devices": [str(dv) for dv in jax.devices()],
            "jax": jax.__version__,
            "loadavg_before": list(load_before),
            "loadavg_after": list(os.getloadavg()),
        },
        "wall_seconds": time.perf_counter() - t_start,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"# wrote {args.out}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
