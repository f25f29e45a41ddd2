"""Privacy attacks on unlearning and empirical audits, on the embedded data sets.

Reproduces at small scale the expected outcomes of:

* Chen et al., "When Machine Unlearning Jeopardizes Privacy", CCS 2021: the
  dual-model attack (sorted difference of the original and unlearned
  posteriors, attack model trained on shadow pairs) against exact
  retraining, beside the classic single-model attack, with DegCount and
  DegRate. Expected: dual AUC well above the classic attack's (≈ 0.5–0.6).
* Carlini et al., "Membership Inference Attacks From First Principles",
  S&P 2022 (LiRA) and Hayes et al., SaTML 2025 (U-LiRA): shadow models in one
  ``vmap`` of ``method.train``; TPR at FPR 1e-3 and 1e-2. Expected: LiRA far
  above the global threshold at low FPR; U-LiRA ≈ 0.5 on exact retraining and
  high on a method that does nothing (a planted bug).
* Bertran et al., "Reconstruction Attacks on Machine Unlearning", NeurIPS 2024:
  the deleted record from ``H(θ − θ')`` with the true Hessian and one from
  public data, against the Avg / MaxDiff baselines; and the cosine as the
  noise ``σ`` of certified removal grows.
* Jagielski et al., NeurIPS 2020 (ε lower bounds with Clopper–Pearson) and
  Steinke et al., NeurIPS 2023 (one run): audits of certified removal against
  its pointwise certificate, and of the same code with its noise scaled down
  (a planted bug); the NeurIPS 2023 unlearning-challenge score of exact
  retraining and of doing nothing, next to its retrain-vs-retrain null.

Writes ``config.json``, ``results.json`` (list ``records``: one per attack ×
method × data set × setting, with ``attack``, ``method``, ``dataset``,
``auc``, ``tpr_at_fpr_1e-3``, ``tpr_at_fpr_1e-2`` with intervals,
``epsilon_lower_bound``, ``epsilon_certified`` (null where nothing is
certified about what the attack distinguishes), ``planted_bug``) and ROC
PNGs to ``--out``.

``epsilon_lower_bound`` of a membership attack pools scores over examples
and model pairs: the ε of *that* game (not independent runs, so an
indication, not a certified bound); the audits' bounds are from independent
runs and hold at the stated confidence.

Sizes: ``--tiny`` (CI: digits; no sweeps, no public Hessian, no exact-retrain
audit or challenge score, which have their own tests), ``--smoke`` (all three
data sets, every scenario), default full size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common

log = common.log

SIZES = {
    "tiny": dict(datasets=("digits",), max_train=300, originals=3, unlearned=6,
                 shadows=16, targets=2, audit_runs=100, rec_rows=4, challenge_models=8,
                 sigmas=(), sekhari_eps=(), losses=("logistic",), hessians=("true",),
                 exact_audit=False, challenge=False, mlp_steps=300),
    "smoke": dict(datasets=("digits", "mnist-subset", "breast-cancer"), max_train=400,
                  originals=4, unlearned=10, shadows=32, targets=4, audit_runs=200,
                  rec_rows=10, challenge_models=16, sigmas=(10.0,),
                  sekhari_eps=(1.0, 1000.0), losses=("logistic", "ridge"),
                  hessians=("true", "public"), exact_audit=True, challenge=True, mlp_steps=400),
    "full": dict(datasets=("digits", "mnist-subset", "breast-cancer"), max_train=1000,
                 originals=8, unlearned=15, shadows=128, targets=8, audit_runs=1000,
                 rec_rows=50, challenge_models=64, sigmas=(0.01, 0.1, 1.0, 10.0, 100.0),
                 sekhari_eps=(0.1, 1.0, 10.0, 100.0, 1000.0), losses=("logistic", "ridge"),
                 hessians=("true", "public"), exact_audit=True, challenge=True, mlp_steps=1000),
}
FPRS = (1e-3, 1e-2)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--datasets", default=None,
                   help="comma-separated subset of digits,mnist-subset,breast-cancer")
    p.add_argument("--lam", type=float, default=1e-3, help="mean-form L2 of every model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/privacy_attacks")
    p.add_argument("--smoke", action="store_true", help="all data sets, small (< 5 min)")
    p.add_argument("--tiny", action="store_true", help="digits only, tiny (CI)")
    p.add_argument("--no-plots", action="store_true")
    return p


def _task(name, max_train, seed):
    """``(train, test, kind, num_classes)``: digits 10-class softmax; MNIST 3 vs 8
    and breast cancer binary (labels ±1)."""
    import jax.numpy as jnp

    from dpunlearn import data
    from dpunlearn.methods import Data

    classes = (3, 8) if name == "mnist-subset" else None
    ds = data.load(name, classes=classes, seed=seed)
    multi = ds.num_classes > 2
    ydt = jnp.int32 if multi else jnp.float32
    n = min(max_train, ds.X_train.shape[0])
    tr = Data(jnp.asarray(ds.X_train[:n]), jnp.asarray(ds.y_train[:n], ydt))
    te = Data(jnp.asarray(ds.X_test), jnp.asarray(ds.y_test, ydt))
    return tr, te, ("softmax" if multi else "pm1"), ds.num_classes


def _rate(result, f):
    pt = result.tpr_at[f]
    return {"tpr": pt.tpr, "interval": list(pt.tpr_interval), "fpr": pt.fpr,
            "threshold": pt.threshold, "tp": pt.tp, "num_pos": pt.num_pos, "num_neg": pt.num_neg}


def _record(attack, method, dataset, result=None, *, eps_lb=None, eps_cert=None,
            planted=False, **extra):
    rec = {"attack": attack, "method": method, "dataset": dataset,
           "auc": None, "tpr_at_fpr_1e-3": None, "tpr_at_fpr_1e-2": None,
           "epsilon_lower_bound": eps_lb, "epsilon_certified": eps_cert,
           "planted_bug": bool(planted)}
    if result is not None:
        rec["auc"] = result.auc
        rec["tpr_at_fpr_1e-3"] = _rate(result, 1e-3)
        rec["tpr_at_fpr_1e-2"] = _rate(result, 1e-2)
        rec["balanced_accuracy"] = result.balanced_accuracy
    rec.update(extra)
    return rec


def _game_epsilon(result, delta=1e-5):
    from dpunlearn.audit import epsilon as E

    b = E.epsilon_lower_bound(result.scores_pos, result.scores_neg, delta=delta)
    return b.lower, list(b.interval)


def run_membership(key, ds_name, tr, kind, num_classes, sz, lam, curves):
    import jax

    from dpunlearn import methods, models
    from dpunlearn.attacks import classifier, lira, membership, query
    from dpunlearn.audit import planted

    d = tr.x.shape[1]
    model = models.linear(d, num_classes=num_classes if kind == "softmax" else None)
    m = methods.retrain(model, lam=lam, tol=1e-4)
    q = query.linear_query(kind)
    recs = []
    k1, k2, k3 = jax.random.split(key, 3)
    t0 = time.perf_counter()
    res = membership.dual_model_attack(
        k1, m, tr, query=q, attack_model=classifier.MLPAttack(steps=sz["mlp_steps"]),
        num_originals=sz["originals"], num_unlearned=sz["unlearned"])
    secs = time.perf_counter() - t0
    for r, name in ((res.dual, "dual_sorted_diff"), (res.classic, "classic"),
                    (res.classic_unlearned, "classic_unlearned")):
        lb, ci = _game_epsilon(r)
        recs.append(_record(name, m.name, ds_name, r, eps_lb=lb, planted=False,
                            epsilon_interval=ci, deg_count=res.deg_count if name.startswith("dual") else None,
                            deg_rate=res.deg_rate if name.startswith("dual") else None,
                            pairs=int(res.target.labels.size // 2), seconds=secs))
        curves.append((ds_name, "membership", f"{name} (AUC {r.auc:.2f})", r.roc))
    log(f"[membership] {ds_name}: dual AUC {res.dual.auc:.3f}, classic {res.classic.auc:.3f}, "
        f"classic on unlearned {res.classic_unlearned.auc:.3f}, DegCount {res.deg_count:.2f}, "
        f"DegRate {res.deg_rate:.3f} ({secs:.1f} s)")
    t0 = time.perf_counter()
    li = lira.lira_attack(k2, m, tr, query=q, num_shadows=sz["shadows"], num_targets=sz["targets"])
    for v in ("online", "online_fixed", "offline_fixed", "global"):
        r = li.results[v]
        recs.append(_record(f"lira_{v}", m.name, ds_name, r, eps_lb=_game_epsilon(r)[0],
                            num_shadows=li.num_shadows, seconds_train=li.seconds_train))
        curves.append((ds_name, "lira", f"lira {v} (AUC {r.auc:.2f})", r.roc))
    log(f"[lira] {ds_name}: online_fixed AUC {li.results['online_fixed'].auc:.3f} "
        f"TPR@1% {li.results['online_fixed'].tpr_at[1e-2].tpr:.3f}; global "
        f"{li.results['global'].auc:.3f} / {li.results['global'].tpr_at[1e-2].tpr:.3f} "
        f"({time.perf_counter() - t0:.1f} s)")
    for meth, bug in ((m, False), (planted.do_nothing(m), True)):
        t0 = time.perf_counter()
        ul = lira.ulira_attack(k3, meth, tr, query=q, num_shadows=sz["shadows"],
                               num_targets=sz["targets"])
        for v in ("online_fixed", "offline_fixed", "population"):
            r = ul.results[v]
            # Exact retraining certifies ε = 0 for exactly this game.
            recs.append(_record(f"ulira_{v}", meth.name, ds_name, r, eps_lb=_game_epsilon(r)[0],
                                eps_cert=0.0, planted=bug, num_shadows=ul.num_shadows))
            curves.append((ds_name, "ulira", f"{meth.name}: u-lira {v} (AUC {r.auc:.2f})", r.roc))
        log(f"[u-lira] {ds_name} {meth.name}: online_fixed AUC "
            f"{ul.results['online_fixed'].auc:.3f}, population {ul.results['population'].auc:.3f} "
            f"({time.perf_counter() - t0:.1f} s)")
    return recs


def run_reconstruction(key, ds_name, tr, te, kind, sz, lam):
    """Binary logistic regression (and ridge on the same rows) with a bias column."""
    import jax
    import jax.numpy as jnp

    from dpunlearn import methods, models
    from dpunlearn.attacks import reconstruction as R
    from dpunlearn.methods import Data

    def with_bias(x):
        return jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], 1) / jnp.sqrt(2.0)

    if kind == "softmax":  # one class against the rest
        y = jnp.where(tr.y == 3, 1.0, -1.0)
        yp = jnp.where(te.y == 3, 1.0, -1.0)
    else:
        y, yp = tr.y, te.y
    X, P = with_bias(tr.x), with_bias(te.x)
    d = X.shape[1]
    data, public = Data(X, y), Data(P, yp)
    rows = np.arange(sz["rec_rows"])
    recs = []
    apply = lambda w, x: jnp.dot(w, x, precision=jax.lax.Precision.HIGHEST)
    ridge = models.Model(jnp.zeros(d, jnp.float32), apply,
                         lambda w, x, t: 0.5 * jnp.square(apply(w, x) - t), apply)
    for loss, model in (("logistic", models.linear(d)), ("ridge", ridge)):
        if loss not in sz["losses"]:
            continue
        m = methods.retrain(model, lam=lam, tol=1e-6, steps=500)
        for h in sz["hessians"]:
            r = R.reconstruction_attack(key, m, data, rows, public=public, loss=loss, lam=lam,
                                        hessian_source=h, sign_coordinate=d - 1)
            recs.append(_record(f"reconstruction_{h}_hessian", f"retrain_{loss}", ds_name,
                                **_rec_stats(r)))
            log(f"[reconstruction] {ds_name} {loss} exact retrain, {h} Hessian: median cosine "
                f"{np.median(r.cosine):.4f} (centred {np.median(r.cosine_centred):.4f}); "
                f"Avg {np.median(r.cosine_avg):.3f}, MaxDiff {np.median(r.cosine_maxdiff):.3f} "
                f"(centred {np.median(r.cosine_maxdiff_centred):.3f})")
    # Certified removal's loss perturbation as the noise grows. The same b is
    # in θ and θ', so the difference carries little of it.
    for sigma in sz["sigmas"]:
        m = methods.certified_removal(lam=lam * 10, sigma=sigma, epsilon=1.0, delta=1e-5,
                                      num_shadows=0)
        r = R.reconstruction_attack(key, m, data, rows, public=public, loss="logistic",
                                    lam=lam * 10, hessian_source="true", sign_coordinate=d - 1)
        recs.append(_record("reconstruction_true_hessian", "certified_removal", ds_name,
                            sigma=sigma, **_rec_stats(r)))
        log(f"[reconstruction] {ds_name} certified removal σ={sigma:g}: median cosine "
            f"{np.median(r.cosine):.4f} (centred {np.median(r.cosine_centred):.4f})")
    # Sekhari et al.: fresh Gaussian output noise on every release (rows have
    # norm <= 1: M = 1/(6√3) bounds the logistic Hessian-Lipschitz constant).
    for eps in sz["sekhari_eps"]:
        m = methods.sekhari(models.linear(d), lam=lam * 10, epsilon=eps, delta=1e-5, capacity=1,
                            hessian_lipschitz=0.0963, gradient_bound=2.0, calibration="analytic")
        r = R.reconstruction_attack(key, m, data, rows, public=public, loss="logistic",
                                    lam=lam * 10, hessian_source="true", sign_coordinate=d - 1)
        recs.append(_record("reconstruction_true_hessian", "sekhari", ds_name,
                            sekhari_epsilon=eps, **_rec_stats(r)))
        log(f"[reconstruction] {ds_name} Sekhari ε={eps:g}: median cosine "
            f"{np.median(r.cosine):.4f} (centred {np.median(r.cosine_centred):.4f}; Avg "
            f"{np.median(r.cosine_avg):.3f})")
    return recs


def _rec_stats(r):
    med = lambda a: float(np.median(a))
    return {"cosine_median": med(r.cosine), "cosine_min": float(np.min(r.cosine)),
            "cosine_centred_median": med(r.cosine_centred),
            "baseline_avg_cosine_median": med(r.cosine_avg),
            "baseline_maxdiff_cosine_median": med(r.cosine_maxdiff),
            "baseline_maxdiff_centred_median": med(r.cosine_maxdiff_centred),
            "num_deleted": int(r.rows.size)}


def run_audits(key, ds_name, tr, te, kind, sz, lam, curves):
    import jax
    import jax.numpy as jnp
    import optax

    from dpunlearn import methods, models
    from dpunlearn.audit import challenge, planted, runner
    from dpunlearn.methods import Data

    recs = []
    if kind == "softmax":
        ybin, ytest = jnp.where(tr.y == 3, 1.0, -1.0), jnp.where(te.y == 3, 1.0, -1.0)
    else:
        ybin, ytest = tr.y, te.y
    n_cr = min(100, tr.x.shape[0])
    data = Data(tr.x[:n_cr], ybin[:n_cr])
    forget = np.arange(10)
    k1, k2, k3 = jax.random.split(key, 3)
    delta = 1e-5
    # Certified removal at σ = 1 (λ = 0.03): its claim is the largest pointwise
    # ε̄ its charges certify; the planted bug runs the same code at σ = 1e-4
    # and keeps that claim.
    claim = None
    for sigma, bug in ((1.0, False), (1e-4, True)):
        m = methods.certified_removal(lam=0.03, sigma=sigma, epsilon=1.0, delta=delta,
                                      num_shadows=0)
        rep = runner.audit_unlearning(k1, m, data, forget, num_runs=sz["audit_runs"], delta=delta,
                                      statistic="params", epsilon_claimed=claim or 0.0)
        if claim is None:
            claim = float(np.max(np.asarray(rep.charges_unlearned.epsilon_pointwise)))
        recs.append(_record("audit_params", "certified_removal" + ("_noise_1e-4x" if bug else ""),
                            ds_name, None, eps_lb=rep.epsilon_lower_bound, eps_cert=claim,
                            planted=bug, auc=rep.auc, epsilon_interval=list(rep.interval),
                            violation=bool(rep.epsilon_lower_bound > claim), sigma=sigma,
                            num_runs=rep.num_runs, confidence=rep.bound.confidence,
                            delta=delta))
        curves.append((ds_name, "audit", f"CR σ={sigma:g} (AUC {rep.auc:.2f})", rep.roc))
        log(f"[audit] {ds_name} certified removal σ={sigma:g}{' (planted bug)' if bug else ''}: "
            f"ε_LB {rep.epsilon_lower_bound:.3f} vs certified {claim:.3f} "
            f"({'VIOLATION' if rep.epsilon_lower_bound > claim else 'ok'}), AUC {rep.auc:.3f}")
    if not sz["exact_audit"]:
        return recs
    # Exact retraining (deterministic L-BFGS): ε = 0 certified.
    ex = methods.retrain(models.linear(data.x.shape[1]), lam=0.03, tol=1e-5)
    rep = runner.audit_unlearning(k2, ex, data, forget, num_runs=min(sz["audit_runs"], 100),
                                  delta=delta, statistic="confidence", epsilon_claimed=0.0)
    recs.append(_record("audit_confidence", "retrain", ds_name, None, eps_lb=rep.epsilon_lower_bound,
                        eps_cert=0.0, auc=rep.auc, num_runs=rep.num_runs, delta=delta))
    log(f"[audit] {ds_name} exact retrain: ε_LB {rep.epsilon_lower_bound:.3f} (certified 0)")
    if not sz["challenge"]:
        return recs
    # Challenge score: stochastic retraining vs doing nothing; the forget set
    # is mislabelled rows (memorised by the original).
    n = tr.x.shape[0]
    y = ybin.at[:20].multiply(-1.0)
    cdata, test = Data(tr.x, y), Data(te.x, ytest)
    sgd = methods.retrain(models.linear(tr.x.shape[1]), lam=lam, optimizer=optax.sgd(0.3),
                          steps=300, batch_size=16, name="retrain_sgd")
    for meth, bug in ((sgd, False), (planted.do_nothing(sgd), True)):
        s = challenge.challenge_audit(k3, meth, cdata, np.arange(20), test,
                                      num_models=sz["challenge_models"])
        recs.append(_record("challenge_score", meth.name, ds_name, None, eps_cert=0.0 if not bug else None,
                            planted=bug, forget_quality=s.forget_quality, final=s.final,
                            null_forget_quality=s.null_forget_quality, null_final=s.null_final,
                            median_example_epsilon=float(np.median(s.epsilons)),
                            null_median_example_epsilon=float(np.median(s.null_epsilons)),
                            num_models=s.num_models, num_train=n))
        log(f"[challenge] {ds_name} {meth.name}: F {s.forget_quality:.3f} (null "
            f"{s.null_forget_quality:.3f}), final {s.final:.3f}, median ε_j "
            f"{np.median(s.epsilons):.2f} (null {np.median(s.null_epsilons):.2f})")
    return recs


def plot(curves, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for ds in sorted({c[0] for c in curves}):
        groups = [g for g in ("membership", "lira", "ulira", "audit") if any(c[0] == ds and c[1] == g for c in curves)]
        fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 4), squeeze=False)
        for ax, g in zip(axes[0], groups):
            for _, _, label, roc in (c for c in curves if c[0] == ds and c[1] == g):
                ax.plot(np.maximum(roc.fpr, 1e-4), np.maximum(roc.tpr, 1e-4), label=label)
            ax.plot([1e-4, 1], [1e-4, 1], "k:", lw=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(1e-3, 1)
            ax.set_ylim(1e-3, 1)
            ax.set_xlabel("FPR")
            ax.set_ylabel("TPR")
            ax.set_title(f"{ds}: {g}")
            ax.legend(fontsize=6, loc="lower right")
        fig.tight_layout()
        path = os.path.join(out, f"roc_{ds}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    size = "tiny" if args.tiny else "smoke" if args.smoke else "full"
    sz = dict(SIZES[size])
    if args.datasets:
        sz["datasets"] = tuple(s.strip() for s in args.datasets.split(",") if s.strip())
    import jax

    os.makedirs(args.out, exist_ok=True)
    env = common.environment()
    common.write_json(os.path.join(args.out, "config.json"),
                      {"options": vars(args), "size": size, "sizes": sz, "environment": env})
    log(f"[privacy_attacks] size {size}, data sets {', '.join(sz['datasets'])}; jax "
        f"{env['jax']} on {env['backend']}; writing to {args.out}")
    clock = common.Stopwatch()
    records, curves, timings = [], [], {}
    key = jax.random.key(args.seed)
    with common.single_threaded_blas():
        for i, name in enumerate(sz["datasets"]):
            k = jax.random.fold_in(key, i)
            km, kr, ka = jax.random.split(k, 3)
            tr, te, kind, nc = _task(name, sz["max_train"], args.seed)
            log(f"[data] {name}: n_train {tr.x.shape[0]}, d {tr.x.shape[1]}, {kind}")
            t0 = time.perf_counter()
            records += run_membership(km, name, tr, kind, nc, sz, args.lam, curves)
            records += run_reconstruction(kr, name, tr, te, kind, sz, args.lam)
            records += run_audits(ka, name, tr, te, kind, sz, args.lam, curves)
            timings[name] = time.perf_counter() - t0
    pngs = [] if args.no_plots else plot(curves, args.out)
    result = {"records": records, "seconds": clock.elapsed(), "seconds_per_dataset": timings,
              "size": size, "pngs": [os.path.basename(p) for p in pngs],
              "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
              "environment": env}
    common.write_json(os.path.join(args.out, "results.json"), result)
    rows = [(r["dataset"], r["attack"], r["method"], "" if r["auc"] is None else f"{r['auc']:.3f}",
             "" if r["tpr_at_fpr_1e-2"] is None else f"{r['tpr_at_fpr_1e-2']['tpr']:.3f}",
             "" if r["epsilon_lower_bound"] is None else f"{r['epsilon_lower_bound']:.2f}",
             "" if r["epsilon_certified"] is None else f"{r['epsilon_certified']:.2f}",
             "bug" if r["planted_bug"] else "")
            for r in records if r["auc"] is not None or r["epsilon_lower_bound"] is not None]
    log(common.format_table(rows, ("data", "attack", "method", "AUC", "TPR@1%", "ε_LB", "ε_cert", ""),
                            left=(0, 1, 2, 7), title="privacy attacks"))
    log(f"[done] {len(records)} records in {clock.elapsed():.1f} s (load average "
        f"{os.getloadavg()[0]:.1f})")
    return result


if __name__ == "__main__":
    main()
