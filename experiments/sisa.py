"""SISA (Bourtoule et al., IEEE S&P 2021): accuracy and seconds per deletion request.

For each data set (the embedded MNIST subset, all ten classes, and
scikit-learn's digits) and each ``S`` (shards) and ``R`` (slices), trains a
SISA ensemble of small MLPs (``dpunlearn.methods.sisa``, one ``vmap`` over the
shards, majority vote) and serves ``--requests`` deletion requests of
``--request-size`` rows each, drawn

* ``uniform``: uniformly from the remaining rows, or
* ``one-shard``: uniformly from the remaining rows of shard 0 (requests
  concentrated on one shard, the favourable case of Bourtoule et al.'s
  non-uniform request distributions),

timing every request (compiled; the first call is warmed up on a throwaway
request). The baseline is full retraining: one model (``S = R = 1``, same
epochs) retrained from scratch without the same rows, timed right after every
SISA request (the load of a shared machine drifts) as a request to that one
model, which retrains it: the same compiled path and fixed overheads as a
SISA request. The speed-up is the ratio of the medians; the ``train`` call is
recorded too. Beside it, the *work model* counts minibatch steps (full
retraining ``e·ceil(n/B)``; a request, its affected shards' slice steps from
the first affected slice on, :func:`minibatch_steps`): the speed-up with
fixed overheads and vectorisation left out. Exactness is checked for every
configuration and distribution: the state after the last request equals
``train`` with the same key on the remaining rows, bit for bit.

Writes ``results.json`` (configuration, environment, one record per
(dataset, S, R, distribution)), ``sisa_accuracy.png`` and ``sisa_speedup.png``
to ``--out`` and prints a table.

Usage::

    python experiments/sisa.py                      # default: a few minutes on 2 cores
    python experiments/sisa.py --smoke --out results/smoke_sisa   # CI
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common

DATASETS = ("mnist-subset", "digits")
# Per data set: (hidden width, learning rate, epochs e).
HYPER = {"mnist-subset": (64, 3e-3, 10), "digits": (64, 1e-2, 20)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--datasets",
        default=None,
        help=f"comma-separated, from {DATASETS} (default: both; --smoke: digits)",
    )
    p.add_argument(
        "--shards", default=None, help="values of S (default 1,2,5,10,20; --smoke: 1,2)"
    )
    p.add_argument(
        "--slices", default=None, help="values of R (default 1,5; --smoke: 1,2)"
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="e (default per data set: mnist-subset 10, digits 20; --smoke: 2)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="minibatch (default 32)")
    p.add_argument(
        "--requests",
        type=int,
        default=None,
        help="requests per distribution (default 5; --smoke: 2)",
    )
    p.add_argument(
        "--request-size",
        type=int,
        default=None,
        help="rows per request (default 5; --smoke: 2)",
    )
    p.add_argument(
        "--aggregation",
        default="vote",
        choices=("vote", "mean"),
        help="majority vote or averaged probabilities (default vote)",
    )
    p.add_argument("--seed", type=int, default=0, help="(default 0)")
    p.add_argument("--out", default="results/sisa", help="(default results/sisa)")
    p.add_argument("--smoke", action="store_true", help="tiny and fast (CI)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    p.add_argument("--copy-plots-to", default=None, help="also copy the PNGs here")
    return p


FULL = {
    "datasets": ",".join(DATASETS),
    "shards": "1,2,5,10,20",
    "slices": "1,5",
    "epochs": None,
    "requests": 5,
    "request_size": 5,
}
SMOKE = {
    "datasets": "digits",
    "shards": "1,2",
    "slices": "1,2",
    "epochs": 2,
    "requests": 2,
    "request_size": 2,
}


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fills the options left unset from ``SMOKE`` (with ``--smoke``) or ``FULL``."""
    for k, v in (SMOKE if args.smoke else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.dataset_list = [d.strip() for d in args.datasets.split(",") if d.strip()]
    for d in args.dataset_list:
        if d not in DATASETS:
            raise ValueError(f"Expected datasets from {DATASETS}, got {d!r}.")
    args.shard_list = common.parse_ints(args.shards, "--shards")
    args.slice_list = common.parse_ints(args.slices, "--slices")
    if args.requests < 1 or args.request_size < 1:
        raise ValueError(
            f"Expected --requests >= 1 and --request-size >= 1, got "
            f"{args.requests} and {args.request_size}."
        )
    if not args.shard_list or min(args.shard_list) < 1:
        raise ValueError(
            f"Expected --shards to list positive integers, got {args.shards!r}."
        )
    if not args.slice_list or min(args.slice_list) < 1:
        raise ValueError(
            f"Expected --slices to list positive integers, got {args.slices!r}."
        )
    return args


def _leaves_equal(a, b) -> bool:
    import jax
    import jax.numpy as jnp

    def eq(u, v):
        if jax.dtypes.issubdtype(u.dtype, jax.dtypes.prng_key):
            u, v = jax.random.key_data(u), jax.random.key_data(v)
        return bool(jnp.array_equal(u, v))

    return all(jax.tree.leaves(jax.tree.map(eq, a, b)))


def _draw(rng, state, dist: str, size: int) -> np.ndarray:
    mask = np.asarray(state.mask)
    pool = mask & (np.asarray(state.shard) == 0) if dist == "one-shard" else mask
    rows = np.flatnonzero(pool)
    if rows.size < size + 1:
        raise ValueError(f"Not enough rows left for a request of {size} ({dist}).")
    return np.sort(rng.choice(rows, size=size, replace=False))


def run_dataset(name: str, args, log) -> list[dict]:
    import jax
    import jax.numpy as jnp

    from dpunlearn import data as D
    from dpunlearn import models
    from dpunlearn.methods import Data, sisa
    from dpunlearn.methods.sisa import expected_speedup

    ds = D.load(name, seed=args.seed, label_format="int")
    hidden, lr, epochs = HYPER[name]
    epochs = args.epochs or epochs
    data = Data(jnp.asarray(ds.X_train), jnp.asarray(ds.y_train))
    Xte, yte = jnp.asarray(ds.X_test), np.asarray(ds.y_test)
    n, d = ds.X_train.shape
    model, _ = models.from_nnx(
        models.init_nnx_mlp(jax.random.key(args.seed), (d, hidden, 10))
    )
    log(
        f"[data] {name}: n_train={n} n_test={len(yte)} d={d}; MLP {d}-{hidden}-10, "
        f"Adam lr={lr}, e={epochs} epochs, batch {args.batch_size}"
    )

    def make(S, R):
        return sisa(
            model=model,
            num_shards=S,
            num_slices=R,
            epochs=epochs,
            batch_size=args.batch_size,
            learning_rate=lr,
            aggregation=args.aggregation,
        )

    def acc(method, state):
        return float(np.mean(np.asarray(method.predict(state.params, Xte)) == yte))

    # Full retraining baseline: one model (S = R = 1) on the remaining rows,
    # from scratch. Timed as a request to the S = R = 1 model (which retrains
    # it on the remaining rows, bit for bit ``train`` without them: asserted
    # below for the S = R = 1 configuration), so that baseline and SISA
    # requests go through the same compiled path and fixed overheads; the
    # ``train`` call (a few host round trips more) is recorded beside it.
    full = make(1, 1)
    key = jax.random.key(args.seed + 1)
    full_state, _ = full.train(key, data)  # compiles
    st = full_state
    train_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        st, _ = full.train(key, data)
        jax.block_until_ready(st)
        train_times.append(time.perf_counter() - t0)
    full_acc = acc(full, st)
    rng_full = np.random.default_rng([args.seed, 0])
    jax.block_until_ready(
        full.unlearn(key, st, _draw(rng_full, st, "uniform", args.request_size), data)
    )
    times = []
    for _ in range(3):
        req = _draw(rng_full, st, "uniform", args.request_size)
        t0 = time.perf_counter()
        jax.block_until_ready(full.unlearn(key, st, req, data))
        times.append(time.perf_counter() - t0)
    retrain_s = float(np.median(times))
    train_call_s = float(np.median(train_times))
    full_steps = minibatch_steps([0], n, 1, 1, epochs, args.batch_size)
    log(
        f"[full retrain] {retrain_s:.3f} s ({full_steps} minibatch steps; the train "
        f"call {train_call_s:.3f} s), test accuracy {full_acc:.4f}"
    )

    rows = []
    for S in args.shard_list:
        for R in args.slice_list:
            if S > n or R > -(-n // S):
                log(f"[skip] S={S} R={R}: too few rows")
                continue
            method = make(S, R)
            t0 = time.perf_counter()
            state, _ = method.train(key, data)
            jax.block_until_ready(state)
            compile_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            state, _ = method.train(key, data)
            jax.block_until_ready(state)
            train_s = time.perf_counter() - t0
            acc0 = acc(method, state)
            rng0 = np.random.default_rng(args.seed)
            warm = _draw(rng0, state, "uniform", args.request_size)
            jax.block_until_ready(method.unlearn(key, state, warm, data))  # compile
            for dist in ("uniform", "one-shard"):
                rng = np.random.default_rng([args.seed, S, R, dist == "one-shard"])
                st = state
                secs, full_secs, shards, steps, work = [], [], [], [], []
                for _ in range(args.requests):
                    req = _draw(rng, st, dist, args.request_size)
                    t0 = time.perf_counter()
                    st, charge, info = method.unlearn(key, st, req, data)
                    jax.block_until_ready(st)
                    secs.append(time.perf_counter() - t0)
                    # Paired baseline, right after: full retraining without the
                    # same rows (the load of a shared machine drifts).
                    t0 = time.perf_counter()
                    jax.block_until_ready(full.unlearn(key, full_state, req, data))
                    full_secs.append(time.perf_counter() - t0)
                    shards.append(int(charge.num_shards_retrained))
                    steps.append(int(charge.num_slice_steps))
                    work.append(
                        minibatch_steps(
                            info.first_slice, n, S, R, epochs, args.batch_size
                        )
                    )
                    assert bool(charge.valid)
                # Exactness: the unlearned model is training without the rows.
                ref, _ = method.train(key, data, st.mask)
                exact = _leaves_equal(st, ref)
                assert exact, f"unlearned != retrained (S={S}, R={R}, {dist})"
                mean_s = float(np.mean(secs))
                med_s, med_full = float(np.median(secs)), float(np.median(full_secs))
                row = {
                    "dataset": name,
                    "shards": S,
                    "slices": R,
                    "distribution": dist,
                    "n_train": n,
                    "request_size": args.request_size,
                    "requests": args.requests,
                    "slice_epochs": int(method_slice_epochs(epochs, R)),
                    "train_seconds": train_s,
                    "train_compile_seconds": compile_train,
                    "accuracy_before": acc0,
                    "accuracy_after": acc(method, st),
                    "full_retrain_seconds": med_full,
                    "full_retrain_seconds_paired": full_secs,
                    "full_retrain_seconds_at_start": retrain_s,
                    "full_accuracy": full_acc,
                    "full_train_call_seconds": train_call_s,
                    "seconds_per_request": secs,
                    "mean_seconds_per_request": mean_s,
                    "median_seconds_per_request": float(np.median(secs)),
                    "speedup": med_full / med_s,
                    "shards_retrained": shards,
                    "slice_steps": steps,
                    "minibatch_steps_per_request": work,
                    "full_retrain_minibatch_steps": full_steps,
                    "work_speedup": full_steps / float(np.mean(work)),
                    "expected_speedup_one_row": expected_speedup(S, R),
                    "bit_identical_to_retraining": exact,
                }
                rows.append(row)
                log(
                    f"  S={S:2d} R={R} {dist:9s} acc {acc0:.4f}->{row['accuracy_after']:.4f}"
                    f"  {med_s * 1e3:8.2f} ms/request (full {med_full * 1e3:.1f})"
                    f"  x{row['speedup']:7.1f}"
                    f" (work model x{row['work_speedup']:.1f})"
                    f"  shards/request {np.mean(shards):.1f}  exact={exact}"
                )
    return rows


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def minibatch_steps(first_slice, n: int, S: int, R: int, epochs: int, B: int) -> int:
    """Minibatch steps a SISA request runs (the cost model of ``fit_shard``).

    Shard ``s`` retrains slice steps ``r = first_slice[s] .. R-1``; step ``r``
    runs ``E`` epochs of ``ceil((r+1)·P / B)`` minibatches, with ``P =
    ceil(ceil(n/S)/R)`` places per slice and ``E = slice_epochs(e, R)``. Full
    retraining (``S = R = 1``) is ``e·ceil(n/B)`` steps. Removed rows keep their
    places (weight zero), so the count does not shrink with removals.
    """
    E = method_slice_epochs(epochs, R)
    P = _ceil_div(_ceil_div(n, S), R)
    return int(
        sum(
            E * _ceil_div((r + 1) * P, B)
            for r0 in np.asarray(first_slice).tolist()
            for r in range(int(r0), R)
        )
    )


def method_slice_epochs(epochs: int, R: int) -> int:
    from dpunlearn.methods.sisa import slice_epochs

    return slice_epochs(epochs, R)


def plot(rows: list[dict], out: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False
    )
    for ax, name in zip(axes[0], datasets):
        sub = [
            r for r in rows if r["dataset"] == name and r["distribution"] == "uniform"
        ]
        for R in sorted({r["slices"] for r in sub}):
            pts = sorted(
                (r["shards"], r["accuracy_before"]) for r in sub if r["slices"] == R
            )
            ax.plot(*zip(*pts), marker="o", label=f"SISA, R={R}")
        ax.axhline(
            sub[0]["full_accuracy"],
            color="k",
            ls="--",
            label="one model (full retrain)",
        )
        ax.set_xscale("log")
        ax.set_xlabel("shards S")
        ax.set_ylabel("test accuracy")
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    paths.append(os.path.join(out, "sisa_accuracy.png"))
    fig.savefig(paths[-1], dpi=130)
    plt.close(fig)

    fig, axes = plt.subplots(
        1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False
    )
    for ax, name in zip(axes[0], datasets):
        sub = [r for r in rows if r["dataset"] == name]
        for R in sorted({r["slices"] for r in sub}):
            for dist, ls in (("uniform", "-"), ("one-shard", ":")):
                pts = sorted(
                    (r["shards"], r["speedup"])
                    for r in sub
                    if r["slices"] == R and r["distribution"] == dist
                )
                (line,) = ax.plot(*zip(*pts), marker="o", ls=ls, label=f"R={R}, {dist}")
                pts = sorted(
                    (r["shards"], r["work_speedup"])
                    for r in sub
                    if r["slices"] == R and r["distribution"] == dist
                )
                ax.plot(
                    *zip(*pts),
                    ls=ls,
                    color=line.get_color(),
                    lw=0.8,
                    alpha=0.6,
                    label="work model (thin)"
                    if (R, dist) == (sub[0]["slices"], "uniform")
                    else None,
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("shards S")
        ax.set_ylabel("full retrain s / request s")
        ax.set_title(f"{name}: {sub[0]['request_size']} rows per request")
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(os.path.join(out, "sisa_speedup.png"))
    fig.savefig(paths[-1], dpi=130)
    plt.close(fig)
    return paths


def table(rows: list[dict]) -> str:
    out = []
    for r in rows:
        out.append(
            (
                r["dataset"],
                r["shards"],
                r["slices"],
                r["distribution"],
                f"{r['accuracy_before']:.3f}",
                f"{r['accuracy_after']:.3f}",
                f"{r['median_seconds_per_request'] * 1e3:.1f}",
                f"{r['full_retrain_seconds'] * 1e3:.1f}",
                f"{r['speedup']:.1f}",
                f"{np.mean(r['shards_retrained']):.1f}",
                f"{r['work_speedup']:.1f}",
                f"{r['expected_speedup_one_row']:.1f}",
            )
        )
    return common.format_table(
        out,
        (
            "dataset",
            "S",
            "R",
            "requests",
            "acc",
            "acc after",
            "ms/request",
            "ms/full retrain",
            "speed-up",
            "shards/req",
            "work model",
            "3RS/(2R+1)",
        ),
        left=(0, 3),
    )


def run(args) -> dict:
    clock = common.Stopwatch()
    os.makedirs(args.out, exist_ok=True)

    def log(msg):
        print(f"[{clock.elapsed():6.1f}s] {msg}", flush=True)

    config = {
        "options": {k: v for k, v in vars(args).items() if not k.endswith("_list")},
        "environment": common.environment(),
    }
    common.write_json(os.path.join(args.out, "config.json"), config)
    rows = []
    for name in args.dataset_list:
        rows += run_dataset(name, args, log)
    result = {"config": config, "rows": rows, "wall_seconds": clock.elapsed()}
    if not args.no_plots:
        result["plots"] = plot(rows, args.out)
        if args.copy_plots_to:
            os.makedirs(args.copy_plots_to, exist_ok=True)
            for p in result["plots"]:
                shutil.copy(p, args.copy_plots_to)
    common.write_json(os.path.join(args.out, "results.json"), result)
    print("\n" + table(rows))
    print(f"\nwrote {os.path.join(args.out, 'results.json')} ({clock.elapsed():.1f} s)")
    return result


def main(argv: list[str] | None = None) -> dict:
    args = resolve(build_parser().parse_args(argv))
    return run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
