"""Malicious deletion requests and the request monitor, measured end to end.

Scenarios (``--scenarios``, default all), each through the common method
interface with :func:`dpunlearn.methods.certified_removal` as the server:

* ``slowdown`` (Marchant et al., AAAI 2022): digits, binary (digit >= 5); the
  attacker owns 5 % of the rows and perturbs them within an l_inf ball of
  radius 0.1; all its rows are then removed one by one through
  :func:`dpunlearn.serve.serve` with a paper-rule ledger. Reports removals per
  retrain for clean, poisoned and randomly perturbed (same radius) rows, test
  accuracy, and the monitor's AUC on the poison rows.
* ``fairness``: synthetic data with a 30 % minority group (German credit,
  the real data set with a sensitive attribute, is in ``dpunlearn bench`` and
  tests/test_threats_fairness.py; this script has no data set option); 5 % of
  the rows chosen by influence; equalized-
  odds and demographic-parity gaps after the deletions vs random deletions;
  monitor AUC.
* ``camouflage`` (Di et al., NeurIPS 2023): digits, 10 classes. Dirty-label
  (``--camouflage dirty``, the default): success after deleting the
  camouflage and stealth before, for several k; monitor AUC of the camouflage
  requests against random requests of k rows. Clean-label (``--camouflage
  clean``; ``both`` runs the two): k = 20 poison and 20 camouflage rows brewed
  by gradient matching from the rows after the first n (their labels kept),
  for several l_inf budgets relative to the feature range, and a control
  whose perturbations are random signs of the largest budget.
* ``selection`` (accuracy-degrading requests): breast cancer; held-out loss
  and error after 40 chosen deletions vs random ones.
* ``backdoor`` (Liu et al., AAAI 2024, poison + mitigation): digits, 10
  classes; attack success rate on triggered test inputs before and after the
  mitigation rows are deleted, and after deleting as many random rows.

Writes ``results.json`` and ``threats.png`` to ``--out``; prints progress and
a summary table. ``--size smoke`` is the size of the tests (a few minutes on
2 cores); ``--size full`` is larger.

Usage:
  python experiments/threats.py [--size smoke|full] [--out DIR] [--seed 0]
                                [--camouflage dirty|clean|both]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common

SIZES = {
    "smoke": {
        "sd_n": 400, "sd_m": 20, "sd_steps": 20, "fair_n": 1000, "fair_k": 50, "fair_random": 5,
        "camo_n": 1000, "camo_targets": 12, "camo_ks": (3, 10, 20), "mon_ordinary": 24,
        "camo_clean_n": 1000, "camo_clean_eps": (16 / 255, 0.25, 0.5),
        "sel_k": 40, "sel_random": 5, "bd_n": 1000, "bd_poison": 20, "bd_mitigation": 60,
    },
    "full": {
        "sd_n": 1000, "sd_m": 50, "sd_steps": 30, "fair_n": 3000, "fair_k": 150, "fair_random": 20,
        "camo_n": 1437, "camo_targets": 40, "camo_ks": (3, 5, 10, 20), "mon_ordinary": 100,
        "camo_clean_n": 1000, "camo_clean_eps": (16 / 255, 0.125, 0.25, 0.5),
        "sel_k": 40, "sel_random": 20, "bd_n": 1000, "bd_poison": 20, "bd_mitigation": 60,
    },
}
SCENARIOS = ("slowdown", "fairness", "camouflage", "selection", "backdoor")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=tuple(SIZES), default="smoke")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/threats")
    p.add_argument("--camouflage", choices=("dirty", "clean", "both"), default="dirty",
                   help="which camouflage variant(s) the camouflage scenario runs")
    return p


def _auc(M, mal, ordinary, seed):
    import numpy as np

    ref = M.fit_reference(ordinary)
    sm = np.array([M.combine(f, ref)[0] for f in mal])
    so = np.array([M.combine(f, ref)[0] for f in ordinary])
    pooled = np.concatenate([sm, so])
    rng = np.random.default_rng(seed)
    shuffled = []
    for _ in range(50):
        perm = rng.permutation(pooled.size)
        shuffled.append(M.roc_auc(pooled[perm[: sm.size]], pooled[perm[sm.size :]]))
    per = {}
    for c, name in enumerate(M.COMPONENTS):
        if np.isfinite(mal[:, c]).all() and np.isfinite(ordinary[:, c]).all():
            per[name] = M.roc_auc(mal[:, c], ordinary[:, c])
    return {"auc": M.roc_auc(sm, so), "auc_shuffled": float(np.mean(shuffled)), "auc_per_component": per,
            "flagged_malicious": float(np.mean(sm > ref.threshold)), "flagged_ordinary": float(np.mean(so > ref.threshold))}


def slowdown(cfg, seed):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from dpunlearn import data as D
    from dpunlearn import methods
    from dpunlearn import monitor as M
    from dpunlearn.accounting import ledger as L
    from dpunlearn.threats import slowdown as sd

    lam, sigma, radius = 1e-3, 0.5, 0.1
    ds = D.load("digits", seed=seed, label_format="int")
    y = np.where(ds.y_train >= 5, 1.0, -1.0).astype("f4")
    yt = np.where(ds.y_test >= 5, 1.0, -1.0).astype("f4")
    n, m = cfg["sd_n"], cfg["sd_m"]
    d = methods.Data(ds.X_train[:n], y[:n])
    rows = np.random.default_rng(seed).choice(n, m, replace=False)
    poison, secs = _common.timed(sd.craft_slowdown, d, rows, lam=lam, radius=radius, num_steps=cfg["sd_steps"])
    X = np.asarray(d.x).copy()
    Xp = X.copy()
    Xp[rows] = np.asarray(poison.x)
    signs = np.random.default_rng(seed + 1).choice([-1.0, 1.0], size=X[rows].shape).astype("f4")
    Xr = X.copy()
    Xr[rows] = np.asarray(sd.project_ball_box(jnp.asarray(X[rows] + radius * signs), jnp.asarray(X[rows]), radius=radius))
    method = methods.certified_removal(lam=lam, sigma=sigma, epsilon=1.0, delta=1e-4, num_shadows=0)
    out = {"lam": lam, "sigma": sigma, "radius": radius, "n": n, "attacker_rows": m,
           "craft_seconds": secs, "surrogate_before": float(poison.charge_before),
           "surrogate_after": float(poison.charge_after)}  # fmt: skip
    tmp = tempfile.mkdtemp()
    for name, x in (("clean", X), ("poisoned", Xp), ("random", Xr)):
        ledger = L.Ledger.create(
            os.path.join(tmp, name + ".jsonl"), currency="certified_removal",
            params={"rule": "paper", "sigma": sigma}, target_epsilon=1.0, target_delta=1e-4,
        )  # fmt: skip
        count = sd.serve_removals(method, methods.Data(x, d.y), rows, key=jax.random.key(seed + 7), ledger=ledger)
        st, _ = method.train(jax.random.key(seed), methods.Data(x, d.y), None)
        acc = float((np.asarray(method.predict(st.params, ds.X_test)) == yt).mean())
        out[name] = {"removals": count.num_removals, "retrains": count.num_retrains,
                     "removals_per_retrain": count.removals_per_retrain, "test_accuracy": acc}  # fmt: skip
        _common.log(f"  slowdown {name}: {count.num_retrains} retrains / {count.num_removals} removals, acc {acc:.3f}")
    out["interval_ratio"] = out["poisoned"]["removals_per_retrain"] / out["clean"]["removals_per_retrain"]
    st, _ = method.train(jax.random.key(seed), methods.Data(Xp, d.y), None)
    feat = M.linear_features(lam)
    ordinary = M.reference_features(feat, st, methods.Data(Xp, d.y), key=jax.random.key(seed + 1), num_requests=cfg["mon_ordinary"])
    mal = np.stack([feat(np.array([r]), st, methods.Data(Xp, d.y)) for r in rows])
    out["monitor"] = _auc(M, mal, ordinary, seed)
    return out


def fairness(cfg, seed):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from dpunlearn import methods
    from dpunlearn import monitor as M
    from dpunlearn.threats import fairness as F

    lam, k = 1e-3, cfg["fair_k"]
    tr, gtr = F.synthetic_groups(seed, cfg["fair_n"])
    te, gte = F.synthetic_groups(seed + 1, 4000)
    method = methods.certified_removal(lam=lam, sigma=0.01, epsilon=1.0, delta=1e-4, num_shadows=0)
    state, _ = method.train(jax.random.key(seed), tr, None)

    def gaps(st):
        p = np.asarray(method.predict(st.params, te.x))
        return {"eo": F.equalized_odds_gap(p, te.y, gte), "dp": F.demographic_parity_gap(p, gte),
                "accuracy": float((p == np.asarray(te.y)).mean())}  # fmt: skip

    def after(rows):
        st, _, _ = method.unlearn(jax.random.key(seed + 1), state, jnp.asarray(rows), tr)
        return gaps(st)

    base = gaps(state)
    sel, secs = _common.timed(F.select_fairness_deletions, tr, gtr, k, lam=lam, rounds=5)
    targeted = after(sel.rows)
    rnd = [after(np.random.default_rng(seed + 10 + s).choice(tr.x.shape[0], k, replace=False)) for s in range(cfg["fair_random"])]
    out = {"n": cfg["fair_n"], "deletions": k, "select_seconds": secs, "original": base, "targeted": targeted,
           "random_mean": {key: float(np.mean([r[key] for r in rnd])) for key in base},
           "random_mean_abs_eo_change": float(np.mean([abs(r["eo"] - base["eo"]) for r in rnd])),
           "targeted_minority_fraction": float(gtr[sel.rows].mean()),
           "targeted_positive_fraction": float((np.asarray(tr.y)[sel.rows] > 0).mean())}  # fmt: skip
    out["eo_widening_ratio"] = (targeted["eo"] - base["eo"]) / max(out["random_mean_abs_eo_change"], 1e-12)
    _common.log(f"  fairness: EO {base['eo']:.3f} -> targeted {targeted['eo']:.3f}, random {out['random_mean']['eo']:.3f}")
    feat = M.linear_features(lam, fairness=(te, gte))
    ordinary = M.reference_features(feat, state, tr, key=jax.random.key(seed + 1), num_requests=cfg["mon_ordinary"])
    mal = np.stack([feat(np.array([r]), state, tr) for r in sel.rows])
    out["monitor"] = _auc(M, mal, ordinary, seed)
    return out


def camouflage(cfg, seed, variant="dirty"):
    out = camouflage_dirty(cfg, seed) if variant in ("dirty", "both") else {}
    if variant in ("clean", "both"):
        out["clean"] = camouflage_clean(cfg, seed)
    return out


def camouflage_clean(cfg, seed):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from dpunlearn import data as D
    from dpunlearn import methods
    from dpunlearn.threats import camouflage as C

    lam, k = 1e-5, 20
    ds = D.load("digits", seed=seed, label_format="int")
    n = cfg["camo_clean_n"]
    tr = methods.Data(ds.X_train[:n], ds.y_train[:n].astype(np.int32))
    pool = methods.Data(ds.X_train[n:], ds.y_train[n:].astype(np.int32))
    method = methods.certified_removal(lam=lam, sigma=0.01, epsilon=1.0, delta=1e-4, num_shadows=0, num_classes=10)
    state, _ = method.train(jax.random.key(seed), tr, None)
    pred = np.asarray(method.predict(state.params, ds.X_test))
    targets = np.flatnonzero(pred == ds.y_test)[: cfg["camo_targets"]]
    out = {"n": n, "k": k, "lam": lam, "targets": len(targets), "norm": "linf",
           "budget": "epsilon * (max - min of the training features)", "by_eps": {}}  # fmt: skip

    def trial(i, j, eps, control):
        yt = int(ds.y_test[j])
        a = C.craft_clean_camouflage(jax.random.key(seed + 100 + i), tr, pool, ds.X_test[j], yt, (yt + 1) % 10, k,
                                     lam=lam, epsilon=eps, num_classes=10)  # fmt: skip
        if control:  # the same pool rows, random signs of the same budget
            kp, kc = jax.random.split(jax.random.key(seed + 500 + i))
            bp, bc = jnp.asarray(pool.x[a.poison_index]), jnp.asarray(pool.x[a.camouflage_index])
            rnd = lambda b, kk: C.project_perturbation(b + a.radius * jnp.sign(jax.random.normal(kk, b.shape)), b, radius=a.radius)  # noqa: E731
            a = a._replace(poison_x=rnd(bp, kp), camouflage_x=rnd(bc, kc))
        r = C.run_camouflage(method, tr, a, ds.X_test[j], yt, key=jax.random.key(seed + 200 + i))
        return r.correct_before, r.success, a.surrogate_flipped, a.radius

    for eps in cfg["camo_clean_eps"]:
        res = np.array([trial(i, j, eps, False) for i, j in enumerate(targets)], float)
        out["by_eps"][f"{eps:.4g}"] = {"radius": float(res[0, 3]), "stealth": float(res[:, 0].mean()),
                                       "success": float(res[:, 1].mean()), "surrogate_flipped": float(res[:, 2].mean())}  # fmt: skip
        _common.log(f"  camouflage clean eps={eps:.4g} (l_inf {res[0, 3]:.3f}): stealth {res[:, 0].mean():.2f}, success {res[:, 1].mean():.2f}")
    eps = max(cfg["camo_clean_eps"])
    res = np.array([trial(i, j, eps, True) for i, j in enumerate(targets)], float)
    out["random_control"] = {"eps": eps, "stealth": float(res[:, 0].mean()), "success": float(res[:, 1].mean())}
    _common.log(f"  camouflage clean random control eps={eps:.4g}: success {res[:, 1].mean():.2f}")
    return out


def camouflage_dirty(cfg, seed):
    import jax
    import numpy as np

    from dpunlearn import data as D
    from dpunlearn import methods
    from dpunlearn import monitor as M
    from dpunlearn.threats import camouflage as C

    ds = D.load("digits", seed=seed, label_format="int")
    n = cfg["camo_n"]
    tr = methods.Data(ds.X_train[:n], ds.y_train[:n].astype(np.int32))
    method = methods.certified_removal(lam=1e-5, sigma=0.01, epsilon=1.0, delta=1e-4, num_shadows=0, num_classes=10)
    state, _ = method.train(jax.random.key(seed), tr, None)
    pred = np.asarray(method.predict(state.params, ds.X_test))
    targets = np.flatnonzero(pred == ds.y_test)[: cfg["camo_targets"]]
    out = {"n": n, "targets": len(targets), "clean_test_accuracy": float((pred == ds.y_test).mean()), "by_k": {}}
    for k in cfg["camo_ks"]:
        res = []
        for i, j in enumerate(targets):
            yt = int(ds.y_test[j])
            a = C.craft_camouflage(jax.random.key(seed + 100 + i), ds.X_test[j], yt, (yt + 1) % 10, k)
            r = C.run_camouflage(method, tr, a, ds.X_test[j], yt, key=jax.random.key(seed + 200 + i))
            res.append((r.correct_before, r.success))
        res = np.array(res)
        out["by_k"][str(k)] = {"stealth": float(res[:, 0].mean()), "success": float(res[:, 1].mean())}
        _common.log(f"  camouflage k={k}: stealth {res[:, 0].mean():.2f}, success {res[:, 1].mean():.2f}")
    k = max(cfg["camo_ks"])
    Xs, Ys, camo, m = [tr.x], [tr.y], [], n
    for i, j in enumerate(targets[:8]):
        yt = int(ds.y_test[j])
        a = C.craft_camouflage(jax.random.key(seed + 300 + i), ds.X_test[j], yt, (yt + 1) % 10, k)
        Xs += [np.asarray(a.poison_x), np.asarray(a.camouflage_x)]
        Ys += [np.asarray(a.poison_y, np.int32), np.asarray(a.camouflage_y, np.int32)]
        camo.append(np.arange(m + k, m + 2 * k))
        m += 2 * k
    d = methods.Data(np.concatenate(Xs), np.concatenate(Ys))
    st, _ = method.train(jax.random.key(seed + 1), d, None)
    feat = M.linear_features(1e-5, num_classes=10)
    ordinary = M.reference_features(feat, st, d, key=jax.random.key(seed + 1), num_requests=cfg["mon_ordinary"], request_size=k)
    mal = np.stack([feat(c, st, d) for c in camo])
    out["monitor"] = _auc(M, mal, ordinary, seed)
    return out


def selection(cfg, seed):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from dpunlearn import data as D
    from dpunlearn import methods
    from dpunlearn import monitor as M
    from dpunlearn.threats import selection as S

    ds = D.load("breast-cancer", seed=seed)
    tr = methods.Data(ds.X_train, ds.y_train)
    h = ds.X_test.shape[0] // 2
    ev = methods.Data(ds.X_test[:h], ds.y_test[:h])
    Xt, yt = ds.X_test[h:], ds.y_test[h:]
    lam, k = 1e-3, cfg["sel_k"]
    method = methods.certified_removal(lam=lam, sigma=0.01, epsilon=1.0, delta=1e-4, num_shadows=0)
    state, _ = method.train(jax.random.key(seed), tr, None)

    def metrics(st):
        z = Xt @ np.asarray(st.params)
        return {"loss": float(np.mean(np.logaddexp(0, -yt * z))), "error": float(np.mean(np.sign(z) != yt))}

    def after(rows):
        return metrics(method.unlearn(jax.random.key(seed + 1), state, jnp.asarray(rows), tr)[0])

    sel = S.select_accuracy_deletions(tr, k, lam=lam, eval_data=ev, rounds=4)
    rnd = [after(np.random.default_rng(seed + 10 + s).choice(tr.x.shape[0], k, replace=False)) for s in range(cfg["sel_random"])]
    out = {"deletions": k, "original": metrics(state), "targeted": after(sel.rows),
           "random_mean": {key: float(np.mean([r[key] for r in rnd])) for key in ("loss", "error")}}  # fmt: skip
    _common.log(f"  selection: loss {out['original']['loss']:.3f} -> targeted {out['targeted']['loss']:.3f}, random {out['random_mean']['loss']:.3f}")
    # The monitor, one row per request: the selected rows against random ones.
    feat = M.linear_features(lam, validation=ev)
    ordinary = M.reference_features(feat, state, tr, key=jax.random.key(seed + 2), num_requests=cfg["mon_ordinary"])
    mal = np.stack([feat(np.array([r]), state, tr) for r in sel.rows])
    out["monitor"] = _auc(M, mal, ordinary, seed)
    return out


def backdoor(cfg, seed):
    import jax
    import numpy as np

    import jax.numpy as jnp

    from dpunlearn import data as D
    from dpunlearn import methods
    from dpunlearn import monitor as M
    from dpunlearn.threats import backdoor as B

    ds = D.load("digits", seed=seed, label_format="int")
    n = cfg["bd_n"]
    tr = methods.Data(ds.X_train[:n], ds.y_train[:n].astype(np.int32))
    pool = methods.Data(ds.X_train[n:], ds.y_train[n:].astype(np.int32))
    test = methods.Data(ds.X_test, ds.y_test.astype(np.int32))
    trig = np.zeros(64, np.float32)
    trig[[0, 7, 56, 63]] = 0.3
    method = methods.certified_removal(lam=1e-5, sigma=0.01, epsilon=1.0, delta=1e-4, num_shadows=0, num_classes=10)
    attack = B.craft_backdoor(jax.random.key(seed), pool, trig, 0, cfg["bd_poison"], cfg["bd_mitigation"])
    r = B.run_backdoor(method, tr, attack, test, trig, 0, key=jax.random.key(seed + 1))
    rnd = np.random.default_rng(seed).choice(n, cfg["bd_mitigation"], replace=False)
    c = B.run_backdoor(method, tr, attack, test, trig, 0, key=jax.random.key(seed + 1), delete=rnd)
    out = {"n": n, "poison": cfg["bd_poison"], "mitigation": cfg["bd_mitigation"], "trigger": "+0.3 on the 4 corner pixels",
           "asr_before": r.asr_before, "asr_after": r.asr_after, "asr_after_random_deletion": c.asr_after,
           "clean_accuracy_before": r.clean_accuracy_before, "clean_accuracy_after": r.clean_accuracy_after}  # fmt: skip
    _common.log(f"  backdoor: ASR {r.asr_before:.2f} -> {r.asr_after:.2f} (random deletion {c.asr_after:.2f})")
    # The monitor on the model trained with the attack's rows (as run_backdoor
    # trains it), one row per request: each mitigation row against random rows.
    aug = methods.Data(
        jnp.asarray(np.concatenate([np.asarray(tr.x), attack.poison_x, attack.mitigation_x])),
        jnp.asarray(np.concatenate([np.asarray(tr.y), attack.poison_y, attack.mitigation_y])),
    )
    st, _ = method.train(jax.random.fold_in(jax.random.key(seed + 1), 0), aug, None)
    feat = M.linear_features(1e-5, num_classes=10, validation=test)
    ordinary = M.reference_features(feat, st, aug, key=jax.random.key(seed + 2), num_requests=cfg["mon_ordinary"])
    mitigation = np.arange(n + cfg["bd_poison"], n + cfg["bd_poison"] + cfg["bd_mitigation"])
    mal = np.stack([feat(np.array([i]), st, aug) for i in mitigation])
    out["monitor"] = _auc(M, mal, ordinary, seed)
    return out


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    r = results.get("slowdown")
    if r:
        names = ["clean", "poisoned", "random"]
        axes[0].bar(names, [r[k]["removals_per_retrain"] for k in names], color=["C0", "C3", "C7"])
        axes[0].set_title("slow-down: removals per retrain")
    r = results.get("fairness")
    if r:
        vals = [r["original"]["eo"], r["random_mean"]["eo"], r["targeted"]["eo"]]
        axes[1].bar(["original", "random", "targeted"], vals, color=["C0", "C7", "C3"])
        axes[1].set_title(f"fairness: EO gap ({r['deletions']} deletions)")
    r = results.get("camouflage")
    if r and "by_k" in r:
        ks = list(r["by_k"])
        axes[2].plot([int(k) for k in ks], [r["by_k"][k]["success"] for k in ks], "o-", color="C3", label="success after")
        axes[2].plot([int(k) for k in ks], [1 - r["by_k"][k]["stealth"] for k in ks], "s--", color="C0", label="flipped before")
        axes[2].set_xlabel("k (poison = camouflage rows)")
        axes[2].set_title("camouflage (dirty-label)")
        axes[2].legend()
    elif r and "clean" in r:
        c = r["clean"]["by_eps"]
        axes[2].plot([float(e) for e in c], [c[e]["success"] for e in c], "o-", color="C3", label="success after")
        axes[2].plot([float(e) for e in c], [1 - c[e]["stealth"] for e in c], "s--", color="C0", label="flipped before")
        axes[2].set_xlabel("l_inf budget / feature range (k = 20)")
        axes[2].set_title("camouflage (clean-label)")
        axes[2].legend()
    aucs = {s: results[s]["monitor"]["auc"] for s in results if "monitor" in results[s]}
    shuf = {s: results[s]["monitor"]["auc_shuffled"] for s in aucs}
    xs = range(len(aucs))
    axes[3].bar([x - 0.2 for x in xs], list(aucs.values()), 0.4, label="malicious vs ordinary", color="C3")
    axes[3].bar([x + 0.2 for x in xs], list(shuf.values()), 0.4, label="shuffled control", color="C7")
    axes[3].set_xticks(list(xs), list(aucs))
    axes[3].axhline(0.5, color="k", lw=0.5)
    axes[3].set_ylim(0, 1.05)
    axes[3].set_title("request monitor: ROC AUC")
    axes[3].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad:
        raise SystemExit(f"Expected --scenarios among {SCENARIOS}, got {bad}.")
    cfg = SIZES[args.size]
    os.makedirs(args.out, exist_ok=True)
    results, seconds = {}, {}
    runners = {"slowdown": slowdown, "fairness": fairness,
               "camouflage": lambda c, sd: camouflage(c, sd, args.camouflage),
               "selection": selection, "backdoor": backdoor}  # fmt: skip
    with _common.single_threaded_blas() as blas:
        for i, s in enumerate(scenarios):
            _common.log(f"[{i + 1}/{len(scenarios)}] {s} ...")
            t = time.perf_counter()
            results[s] = runners[s](cfg, args.seed)
            seconds[s] = time.perf_counter() - t
            _common.log(f"[{i + 1}/{len(scenarios)}] {s} done in {seconds[s]:.1f} s")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    doc = {"config": {"size": args.size, "seed": args.seed, "sizes": cfg, "blas": blas, "camouflage": args.camouflage,
                      "environment": _common.environment(), "load_average": load},
           "seconds": seconds, "results": results}  # fmt: skip
    _common.write_json(os.path.join(args.out, "results.json"), doc)
    plot(results, os.path.join(args.out, "threats.png"))
    rows = []
    for s, r in results.items():
        mon = r.get("monitor", {})
        if s == "slowdown":
            fig = f"removals/retrain {r['clean']['removals_per_retrain']:.1f} -> {r['poisoned']['removals_per_retrain']:.2f} (random {r['random']['removals_per_retrain']:.1f})"
        elif s == "fairness":
            fig = f"EO {r['original']['eo']:.3f} -> {r['targeted']['eo']:.3f} (random {r['random_mean']['eo']:.3f})"
        elif s == "camouflage":
            parts = []
            if "by_k" in r:
                kk = str(max(int(k) for k in r["by_k"]))
                parts.append(f"k={kk}: success {r['by_k'][kk]['success']:.2f}, stealth {r['by_k'][kk]['stealth']:.2f}")
            if "clean" in r:
                c = r["clean"]["by_eps"]
                parts.append("clean k=20, eps " + " / ".join(c) + ": success " + " / ".join(f"{c[e]['success']:.2f}" for e in c)
                             + f" (random {r['clean']['random_control']['success']:.2f})")
            fig = "; ".join(parts)
        elif s == "backdoor":
            fig = f"ASR {r['asr_before']:.2f} -> {r['asr_after']:.2f} (random deletion {r['asr_after_random_deletion']:.2f})"
        else:
            fig = f"loss {r['original']['loss']:.3f} -> {r['targeted']['loss']:.3f} (random {r['random_mean']['loss']:.3f})"
        rows.append([s, fig, f"{mon['auc']:.3f}" if mon else "-", f"{mon['auc_shuffled']:.3f}" if mon else "-", f"{seconds[s]:.0f}"])
    _common.log(_common.format_table(rows, ["scenario", "effect", "monitor AUC", "shuffled", "s"], left=(0, 1), title="threats"))
    return doc


if __name__ == "__main__":
    main()
