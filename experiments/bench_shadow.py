"""Shadow models for LiRA: 256 logistic regressions in one ``vmap`` vs a scikit-learn loop.

Prints ``shadow256_vs_sklearn``: the time of a loop of scikit-learn
``LogisticRegression`` fits (L-BFGS, no intercept) over 256 half-data subsets
of the MNIST 3-vs-8 subset, divided by the time of the same 256 fits in one
vmapped program (``dpunlearn.attacks.shadows.train_models`` over
``methods.retrain``, this package's batched L-BFGS), both to the same
tolerance on the same objective: the mean logistic loss plus
``(λ/2)‖w‖²`` (scikit-learn's ``C = 1/(λ·n_subset)``), stopped when
``‖∇F‖_∞ <= tol`` (scikit-learn's ``tol`` for ``lbfgs`` is the same
projected-gradient test on the same mean-form objective). The vmapped time
is reported without compilation (a second call with fresh keys and masks)
and with it; the two solutions are compared (largest parameter difference,
prediction agreement).

Then ``lira_scores_per_second``: LiRA's online fixed-variance scores
(logit-scaled confidences of every example under every model, per-example
Gaussians of the shadows, the likelihood ratio) per second over all
``models × examples`` pairs, after compilation.

Writes ``bench_shadow.json`` to ``--out`` with the machine (CPU model, core
count, load average before and after).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common

log = common.log


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--num-models", type=int, default=256)
    p.add_argument("--lam", type=float, default=1e-3)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--sklearn-models", type=int, default=None,
                   help="fit only this many with scikit-learn and scale the time (default all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/bench_shadow")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    import jax
    import jax.numpy as jnp
    from sklearn.linear_model import LogisticRegression

    from dpunlearn import data, methods, models
    from dpunlearn.attacks import lira, query, shadows

    os.makedirs(args.out, exist_ok=True)
    load0 = os.getloadavg()
    ds = data.load("mnist-subset", classes=(3, 8), seed=args.seed)
    X, y = ds.X_train.astype(np.float32), ds.y_train.astype(np.float32)
    n, d = X.shape
    M = args.num_models
    tr = methods.Data(jnp.asarray(X), jnp.asarray(y))
    method = methods.retrain(models.linear(d), lam=args.lam, tol=args.tol, steps=1000)
    k1, k2 = jax.random.split(jax.random.key(args.seed))
    log(f"[bench_shadow] {M} logistic regressions on half of n={n} rows (d={d}), λ={args.lam:g}, "
        f"tol {args.tol:g}; {_cpu_model()}, {os.cpu_count()} cores, load {load0[0]:.1f}")

    def fit_all(k):
        ka, kb = jax.random.split(k)
        masks = shadows.balanced_masks(ka, M, n)
        t0 = time.perf_counter()
        states, _ = shadows.train_models(method, jax.random.split(kb, M), tr, masks)
        jax.block_until_ready(states)
        return states, np.asarray(masks), time.perf_counter() - t0

    _, _, t_first = fit_all(k1)
    states, masks, t_vmap = fit_all(k2)
    W = np.asarray(states.params, np.float64)
    log(f"[vmap] first call (with compilation) {t_first:.2f} s; second call {t_vmap:.2f} s")

    m_sk = M if args.sklearn_models is None else min(M, args.sklearn_models)
    W_sk = np.zeros((m_sk, d))
    # One BLAS thread (see _common.single_threaded_blas: OpenBLAS workers
    # busy-wait on a shared 2-core machine); XLA keeps its own thread pool.
    with common.single_threaded_blas():
        t0 = time.perf_counter()
        for i in range(m_sk):
            rows = masks[i]
            clf = LogisticRegression(C=1.0 / (args.lam * rows.sum()), fit_intercept=False,
                                     tol=args.tol, max_iter=1000, solver="lbfgs")
            clf.fit(X[rows], y[rows])
            W_sk[i] = clf.coef_[0]
        t_sk = (time.perf_counter() - t0) * M / m_sk

    def grad_inf(w, rows):
        """‖∇F‖_∞ of the mean-form objective, float64."""
        Xr, yr = X[rows].astype(np.float64), y[rows].astype(np.float64)
        z = yr * (Xr @ w)
        g = -(Xr * (yr / (1.0 + np.exp(z)))[:, None]).mean(0) + args.lam * w
        return float(np.max(np.abs(g)))

    g_jax = max(grad_inf(W[i], masks[i]) for i in range(m_sk))
    g_sk = max(grad_inf(W_sk[i], masks[i]) for i in range(m_sk))
    log(f"[check] largest ‖∇F‖_∞ (float64): vmapped L-BFGS {g_jax:.2e}, scikit-learn {g_sk:.2e}")
    log(f"[sklearn] {m_sk} fits in {t_sk * m_sk / M:.2f} s "
        f"({1e3 * t_sk / M:.1f} ms per model{'; scaled to ' + str(M) if m_sk < M else ''})")
    diff = float(np.max(np.abs(W[:m_sk] - W_sk)))
    agree = float(np.mean(np.sign(X @ W[:m_sk].T) == np.sign(X @ W_sk.T)))
    speedup = t_sk / t_vmap
    log(f"shadow256_vs_sklearn {speedup:.1f}x (with compilation {t_sk / t_first:.1f}x); "
        f"max |w_jax − w_sklearn| {diff:.2e}, prediction agreement {agree:.4f}")

    # LiRA scores: confidences of all models on all rows, per-example stats of
    # the first half of the models, online fixed-variance scores of the rest.
    q = query.linear_query("pm1")

    def lira_scores(params):
        conf = lira.model_confidences(q, params, tr)
        half = M // 2
        st = lira.fit(conf[:half], masks[:half])
        return lira.score(st, conf[half:], "online_fixed")

    lira_scores(states.params)  # compile
    t0 = time.perf_counter()
    s = lira_scores(states.params)
    t_lira = time.perf_counter() - t0
    per_sec = s.size / t_lira
    log(f"lira_scores_per_second {per_sec:.3g} ({s.size} scores of {M - M // 2} target models × "
        f"{n} examples, statistics from {M // 2} shadows, in {t_lira:.3f} s)")
    load1 = os.getloadavg()
    result = {
        "shadow256_vs_sklearn": speedup,
        "shadow256_vs_sklearn_with_compilation": t_sk / t_first,
        "seconds_vmap": t_vmap, "seconds_vmap_first_call": t_first, "seconds_sklearn": t_sk,
        "sklearn_models_fitted": m_sk, "num_models": M, "num_rows": n, "dim": d,
        "lam": args.lam, "tol": args.tol,
        "max_grad_inf_jax": g_jax, "max_grad_inf_sklearn": g_sk,
        "max_abs_param_difference": diff, "prediction_agreement": agree,
        "lira_scores_per_second": per_sec, "lira_seconds": t_lira, "lira_num_scores": int(s.size),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
                    "load_average_before": list(load0), "load_average_after": list(load1)},
        "environment": common.environment(),
    }
    common.write_json(os.path.join(args.out, "bench_shadow.json"), result)
    return result


if __name__ == "__main__":
    main()
