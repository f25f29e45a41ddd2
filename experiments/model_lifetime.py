"""A certified model's life: deletion requests, a ledger, retrains when it refuses.

What it does (MNIST 3 vs 8, the 1,000-image subset embedded in
``dpunlearn.data``; float64 with ``--x64``):

1. Trains a removal-enabled logistic regression (``dpunlearn.certified.train``,
   Guo et al. 2020, loss perturbation ``b ~ N(0, sigma^2 I)``) and creates a
   ledger file (``ledger.jsonl``, currency ``certified_removal``, the paper's
   residual budget ``sigma*eps/c`` or, with ``--budget-method analytic``, the
   analytic-Gaussian one). The first entry is the ``train`` release; its
   ``residual_bound`` is the model's ``training_residual`` (the solver's
   leftover gradient plus rounding), so beta starts where the library says.
2. Serves ``--requests`` deletion requests of one random training point each:
   ``certified.remove`` (one Newton step), then a ``request`` entry with the
   step's bound: ``bound_increment`` with ``residual_mode="add"`` (the paper's
   Algorithm 2: beta += bound), or, with ``--correct-residual``, the
   residual-correcting step's ``cumulative_bound`` with ``residual_mode="set"``
   (beta = bound on the current residual).
3. When the ledger refuses a request (``BudgetExceededError``, the file is
   unchanged and the refused model is never released), retrains on the
   remaining data with a fresh key (``jax.random.fold_in(key, retrain
   number)``), appends a ``retrain`` entry with the new training residual, and
   retries the request on the new model.
4. Writes ``config.json``, ``results.json`` (per request: beta, U remaining,
   retrains so far, test accuracy every ``--eval-every`` requests, seconds) and
   ``model_lifetime.png``; replays both ledger files from disk and asserts
   they equal the live summaries, that beta never exceeded the budget (the U
   certificate never exceeded the target), that the ledger's beta equals the
   library's, and that the true gradient residual stayed below beta.

The (D) ledger: no DP claim for the released models
----------------------------------------------------
The ledger keeps, beside the unlearning certificate (U), the DP cost (D) of all
releases for the records that *remain*. Every model release here is recorded
with ``"dp": null`` (no mechanism declared), so the model ledger reports
D = inf ("non-private"), and it has no D budget (one would refuse the first
release). That is deliberate; there is no sound per-release noise multiplier
to declare for a certified-removal model:

* Certified removal (Guo et al., Definition 1) is a statement about the
  *deleted* records (indistinguishability from retraining without them). It
  says nothing about the remaining ones.
* The training is objective perturbation (Chaudhuri et al. 2011; Kifer, Smith,
  Thakurta 2012), which is DP only for the *exact* minimiser and only under
  conditions linking lambda, the loss smoothness and epsilon; the model here is
  an approximate minimiser (its training residual is charged to beta) and
  nothing checks those conditions (approximate minimisers need extra output
  noise, Iyengar et al. 2019).
* Every release after a deletion reuses the *same* b: the releases are not a
  composition of independent Gaussian mechanisms, so declaring each as a
  Gaussian with some noise multiplier would be wrong. Worse, b cancels
  between releases: two exact minimisers w0 on D and w1 on D' both satisfy
  grad L(w; data) = -b, so grad L(w1; D') = grad L(w0; D), a noise-free
  equation in the remaining records (an observer who knows all records but
  one learns the direction of the last one's feature vector). The released
  Newton-updated models satisfy it up to their residual bounds.

So the D ledger is shown on a separate, simple Gaussian example
(``dp_example_ledger.jsonl``): alongside every model release the service
publishes the number of remaining training points per class, each count plus
fresh ``N(0, z^2)`` noise, ``z = --dp-noise``. Adding or removing one record
changes one count by 1 (L2 sensitivity 1), so each publication is a Gaussian
mechanism with noise multiplier ``z`` (``gaussian_release(z)``), and the
publications, with independent noise, compose exactly (the ledger's
exact-Gaussian accountant). The example ledger mirrors the model's events
(``train``, one ``request`` per deletion, a ``retrain`` when the model is
retrained); the published counts are recomputed from scratch on the remaining
data, which is exactly what recomputing after the deletion gives, so their
unlearning residual is 0 (``residual_bound=0``, ``residual_mode="set"``).
It has a D budget (``--dp-epsilon`` at ``--dp-delta``): once the next
publication would exceed it the ledger refuses and publication stops for
good (a retrain does not restore D). The model releases are unaffected.

Usage::

    python experiments/model_lifetime.py --x64 \\
        --copy-plot-to docs/img/model_lifetime.png        # default run
    python experiments/model_lifetime.py --x64 --correct-residual \\
        --out results/model_lifetime_corrected           # residual-correcting
    python experiments/model_lifetime.py --x64 --smoke --out results/smoke_lifetime   # CI
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common

LEDGER = "ledger.jsonl"
DP_LEDGER = "dp_example_ledger.jsonl"
FIGURE = "model_lifetime.png"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="A certified-removal model's lifetime under a privacy ledger.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("model and certificate")
    g.add_argument("--lam", type=float, default=1e-2, help="L2 strength (mean form)")
    g.add_argument(
        "--sigma", type=float, default=1.0, help="std of the loss perturbation b"
    )
    g.add_argument("--epsilon", type=float, default=1.0, help="target (U) epsilon")
    g.add_argument("--delta", type=float, default=1e-4, help="target (U) delta")
    g.add_argument(
        "--budget-method",
        default="paper",
        choices=("paper", "analytic"),
        help="residual budget: the paper's sigma*eps/c or the analytic Gaussian one",
    )
    g.add_argument(
        "--bound-form",
        default="integral",
        choices=("corollary1", "integral"),
        help="data-dependent bound: the library's integral form (default of "
        "certified.remove) or the paper's Corollary 1 (at least twice as large)",
    )
    g.add_argument("--gamma", default="paper", choices=("paper", "tight"))
    g.add_argument(
        "--tol",
        type=float,
        default=None,
        help="training tolerance (mean-form gradient norm); default 1e-10 with "
        "--x64, 1e-6 in float32; what is left is charged to beta",
    )
    g.add_argument(
        "--correct-residual",
        action="store_true",
        help="residual-correcting Newton step; the ledger records each step's "
        "bound on the current residual with residual_mode='set'",
    )
    g = p.add_argument_group("requests")
    g.add_argument(
        "--requests", type=int, default=400, help="deletion requests of 1 point"
    )
    g.add_argument(
        "--max-train",
        type=int,
        default=None,
        help="use only the first N training rows (after the seeded shuffle)",
    )
    g.add_argument(
        "--eval-every", type=int, default=10, help="test accuracy every N requests"
    )
    g.add_argument("--log-every", type=int, default=25, help="progress every N")
    g = p.add_argument_group("(D) example: Gaussian-noised class counts")
    g.add_argument(
        "--dp-noise",
        type=float,
        default=20.0,
        help="noise multiplier z of each published count vector (sensitivity 1)",
    )
    g.add_argument(
        "--dp-epsilon", type=float, default=3.5, help="D budget of the example"
    )
    g.add_argument(
        "--dp-delta", type=float, default=None, help="delta of D (default: --delta)"
    )
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default="results/model_lifetime")
    g.add_argument("--x64", action="store_true", help="float64 (jax_enable_x64)")
    g.add_argument("--smoke", action="store_true", help="tiny and fast (CI)")
    g.add_argument("--no-plots", action="store_true")
    g.add_argument(
        "--copy-plot-to", default=None, help="also copy the PNG to this path"
    )
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fills dependent defaults, applies --smoke, validates."""
    if args.tol is None:
        args.tol = 1e-10 if args.x64 else 1e-6
    if args.dp_delta is None:
        args.dp_delta = args.delta
    if args.smoke:  # small data, a small budget so that retrains happen
        args.max_train = min(args.max_train or 200, 200)
        args.requests = min(args.requests, 24)
        args.eval_every = min(args.eval_every, 5)
        args.log_every = min(args.log_every, 10)
        args.sigma = min(args.sigma, 0.2)
        args.dp_noise = min(args.dp_noise, 5.0)
    for name in ("requests", "eval_every", "log_every"):
        if getattr(args, name) < 1:
            raise ValueError(
                f"Expected --{name.replace('_', '-')} >= 1, got {getattr(args, name)}."
            )
    for name in ("lam", "sigma", "epsilon", "tol", "dp_noise", "dp_epsilon"):
        if not getattr(args, name) > 0:
            raise ValueError(
                f"Expected --{name.replace('_', '-')} > 0, got {getattr(args, name)}."
            )
    for name in ("delta", "dp_delta"):
        if not 0 < getattr(args, name) < 1:
            raise ValueError(
                f"Expected --{name.replace('_', '-')} in (0, 1), "
                f"got {getattr(args, name)}."
            )
    return args


def _fresh(path: str) -> str:
    """An experiment's ledger is an output: a rerun into the same folder starts
    a new one (the library itself never overwrites a ledger)."""
    if os.path.exists(path):
        os.remove(path)
    return path


class _CountPublisher:
    """The (D) example: noisy per-class counts of the remaining training rows,
    recorded in their own ledger until its D budget refuses."""

    def __init__(self, args, y: np.ndarray, out: str):
        from dpunlearn.accounting import ledger as L

        self.L = L
        self.z = float(args.dp_noise)
        self.y = y
        self.classes = np.unique(y)
        self.rng = np.random.default_rng(args.seed + 7)
        self.ledger = L.Ledger.create(
            _fresh(os.path.join(out, DP_LEDGER)),
            currency="certified_removal",
            params={"rule": "paper", "sigma": args.sigma, "method": args.budget_method},
            target_epsilon=args.epsilon,
            target_delta=args.delta,
            dp_epsilon=args.dp_epsilon,
            dp_delta=args.dp_delta,
            note="D example: class counts of the remaining rows + N(0, z^2) per "
            "release (L2 sensitivity 1); recomputed from scratch, so residual 0",
        )
        self.stopped_at = None  # release number of the first refused publication
        self.published = []

    def publish(self, kind: str, mask: np.ndarray, release: int) -> float | None:
        """Publishes with the model release ``release`` (1-based); returns D's
        epsilon after it, or None once the D budget has refused."""
        if self.stopped_at is not None:
            return None
        entry = {"kind": kind, "dp": [self.L.gaussian_release(self.z)]}
        if kind == "request":
            entry.update(removed=1, residual_bound=0.0, residual_mode="set")
        else:
            entry["residual_bound"] = 0.0
        try:
            s = self.ledger.append(entry)
        except self.L.BudgetExceededError as e:
            self.stopped_at = release
            print(f"  [D example] publication refused at release {release}: {e}")
            return None
        counts = np.array([np.sum(mask & (self.y == c)) for c in self.classes])
        noisy = counts + self.rng.normal(0.0, self.z, counts.shape)
        self.published.append({"release": release, "noisy_counts": noisy.tolist()})
        return float(s.dp_epsilon)


def run(args: argparse.Namespace) -> dict:
    import jax
    import jax.numpy as jnp

    from dpunlearn import certified, data
    from dpunlearn.accounting import ledger as L

    out = args.out
    os.makedirs(out, exist_ok=True)
    env = common.environment()
    common.write_json(
        os.path.join(out, "config.json"), {"options": vars(args), "environment": env}
    )
    clock = common.Stopwatch()
    mode = "set" if args.correct_residual else "add"
    print(
        f"[model_lifetime] jax {env['jax']} on {env['backend']} "
        f"({'float64' if env['x64'] else 'float32'}); residual_mode {mode!r}; "
        f"writing to {out}"
    )

    # ------------------------------------------------------------------ data
    ds = data.load("mnist-subset", classes=(3, 8), seed=args.seed)
    dtype = jnp.float64 if env["x64"] else jnp.float32
    Xtr, ytr = ds.X_train, ds.y_train
    if args.max_train is not None:
        Xtr, ytr = Xtr[: args.max_train], ytr[: args.max_train]
    X, y = jnp.asarray(Xtr, dtype), jnp.asarray(ytr, dtype)
    Xte, yte = jnp.asarray(ds.X_test, dtype), jnp.asarray(ds.y_test, dtype)
    n, d = X.shape
    notes = []
    cap = n // 2
    num_requests = min(args.requests, cap)
    if num_requests < args.requests:
        notes.append(
            f"--requests={args.requests} capped at {cap} (half of the n={n} rows)."
        )
        print(f"[note] {notes[-1]}")
    order = np.random.default_rng(args.seed + 1).permutation(n)[:num_requests]
    print(f"[data] mnist-subset 3 vs 8: n_train={n} n_test={Xte.shape[0]} d={d}")

    train_kw = {
        "tol": args.tol,
        "gamma": args.gamma,
        "bound_form": args.bound_form,
        "correct_residual": args.correct_residual,
    }
    remove_kw = {}
    key = jax.random.key(args.seed)

    # ------------------------------------------- compile (not part of timings)
    _, t_compile_train = common.timed(
        certified.train,
        jax.random.fold_in(key, 10**6),
        X,
        y,
        lam=args.lam,
        sigma=args.sigma,
        **train_kw,
    )

    # ----------------------------------------------------------------- train
    state, t_train = common.timed(
        certified.train,
        jax.random.fold_in(key, 0),
        X,
        y,
        lam=args.lam,
        sigma=args.sigma,
        **train_kw,
    )
    _, t_compile_remove = common.timed(
        certified.remove, state, int(order[0]), X, y, **remove_kw
    )
    _, t_compile_retrain = common.timed(
        certified.retrain, jax.random.fold_in(key, 10**6 + 1), state, X, y
    )
    budget = float(
        certified.residual_budget(
            sigma=args.sigma,
            epsilon=args.epsilon,
            delta=args.delta,
            method=args.budget_method,
        )
    )
    led = L.Ledger.create(
        _fresh(os.path.join(out, LEDGER)),
        currency="certified_removal",
        params={"rule": "paper", "sigma": args.sigma, "method": args.budget_method},
        target_epsilon=args.epsilon,
        target_delta=args.delta,
        note="experiments/model_lifetime.py; model releases declare no DP "
        "mechanism (see the script docstring)",
    )
    assert led.setup.config.budget == budget
    s = led.train(dp=None, residual_bound=float(state.training_residual))
    dp_pub = _CountPublisher(args, np.asarray(ytr), out)
    releases = 1
    dp_eps = dp_pub.publish("train", np.asarray(state.mask), releases)
    acc0 = certified.accuracy(state, Xte, yte)
    print(
        f"[train] {t_train:.3f}s; test acc {acc0:.4f}; training residual "
        f"{float(state.training_residual):.3e}; budget ({args.budget_method}) "
        f"{budget:.4f} for (eps={args.epsilon}, delta={args.delta}, "
        f"sigma={args.sigma})"
    )

    retrains = [
        {
            "before_request": 0,
            "kind": "train",
            "seconds": t_train,
            "training_residual": float(state.training_residual),
            "test_accuracy": acc0,
        }
    ]
    rows = []
    u_eps_max = s.unlearning.epsilon
    worst_true_gap = -np.inf  # max over evaluations of true residual - beta
    trainings = 1  # keys: fold_in(key, 0) trained the first model
    served_by_retrain = 0
    for i, idx in enumerate(order.tolist(), start=1):
        retrained_before = False
        served = "newton"
        while True:
            (new_state, info), t_rm = common.timed(
                certified.remove, state, idx, X, y, **remove_kw
            )
            bound = float(
                info.cumulative_bound if mode == "set" else info.bound_increment
            )
            row_mode = mode
            watch = common.Stopwatch()
            try:
                s = led.request(
                    dp=None, removed=1, residual_bound=bound, residual_mode=mode
                )
            except L.BudgetExceededError as e:
                if retrained_before:
                    # Even a fresh model's Newton step for this point is over
                    # the budget. Serve the request as Algorithm 2 would:
                    # train from scratch without the point. That model is the
                    # retrained one; its whole residual is its training
                    # residual, recorded with residual_mode="set".
                    print(
                        f"  [request {i}] refused right after a retrain too (Newton "
                        f"bound {bound:.3e} > budget): served by training without "
                        "the point"
                    )
                    without = state._replace(mask=state.mask.at[idx].set(False))
                    new_state, t_rm = common.timed(
                        certified.retrain,
                        jax.random.fold_in(key, trainings),
                        without,
                        X,
                        y,
                    )
                    trainings += 1
                    bound, row_mode, served = (
                        float(new_state.training_residual),
                        "set",
                        "retrain_without_point",
                    )
                    served_by_retrain += 1
                    watch = common.Stopwatch()
                    s = led.request(
                        dp=None, removed=1, residual_bound=bound, residual_mode="set"
                    )
                    t_led = watch.elapsed()
                    break
                # Retrain on the remaining rows (the requested one included:
                # the request is then retried on the new model).
                state, t_rt = common.timed(
                    certified.retrain,
                    jax.random.fold_in(key, trainings),
                    state,
                    X,
                    y,
                )
                trainings += 1
                watch_rt = common.Stopwatch()
                s = led.retrain(dp=None, residual_bound=float(state.training_residual))
                t_led_rt = watch_rt.elapsed()
                releases += 1
                dp_eps = dp_pub.publish("retrain", np.asarray(state.mask), releases)
                acc = certified.accuracy(state, Xte, yte)
                retrains.append(
                    {
                        "before_request": i,
                        "kind": "retrain",
                        "seconds": t_rt,
                        "ledger_seconds": t_led_rt,
                        "training_residual": float(state.training_residual),
                        "test_accuracy": acc,
                        "refusal": str(e),
                    }
                )
                print(
                    f"  [retrain {s.num_retrains}] before request {i}: ledger refused "
                    f"(U left {e.remaining:.3e} < bound {bound:.3e}); retrained in "
                    f"{t_rt:.3f}s, training residual "
                    f"{float(state.training_residual):.3e}, test acc {acc:.4f}"
                )
                retrained_before = True
                continue
            t_led = watch.elapsed()
            break
        state = new_state
        releases += 1
        dp_eps = dp_pub.publish("request", np.asarray(state.mask), releases)
        u = s.unlearning
        u_eps_max = max(u_eps_max, u.epsilon)
        row = {
            "request": i,
            "index": int(idx),
            "residual_bound": bound,
            "beta": u.used,
            "beta_library": float(state.grad_residual_bound),
            "u_remaining": u.remaining,
            "u_epsilon": u.epsilon,
            "retrains": s.num_retrains,
            "retrained_before": retrained_before,
            "served_by": served,
            "residual_mode": row_mode,
            "within_budget_library": served != "newton"
            or bool(state.grad_residual_bound <= budget * (1 + 1e-12)),
            "seconds": t_rm + t_led,
            "remove_seconds": t_rm,
            "ledger_seconds": t_led,
            "dp_example_epsilon": dp_eps,
            "test_accuracy": None,
            "true_residual": None,
        }
        if i % args.eval_every == 0 or i == num_requests:
            row["test_accuracy"] = certified.accuracy(state, Xte, yte)
            row["true_residual"] = float(certified.true_residual(state, X, y))
            worst_true_gap = max(worst_true_gap, row["true_residual"] - u.used)
        rows.append(row)
        if i % args.log_every == 0 or i == num_requests:
            acc = row["test_accuracy"]
            print(
                f"  request {i:>4}/{num_requests}  beta {u.used:.4e}  U left "
                f"{u.remaining:.4e}  retrains {s.num_retrains}  "
                f"test acc {'-' if acc is None else f'{acc:.4f}'}  "
                f"{1e3 * row['seconds']:.2f} ms/request  "
                f"D example eps {'stopped' if dp_eps is None else f'{dp_eps:.3f}'}  "
                f"elapsed {clock.elapsed():.1f}s"
            )

    # --------------------------------------------------------------- replay
    replayed, torn = L.replay_file(led.path)
    replay_equal = torn is None and replayed == led.summary
    dp_replayed, dp_torn = L.replay_file(dp_pub.ledger.path)
    dp_replay_equal = dp_torn is None and dp_replayed == dp_pub.ledger.summary
    print(
        f"[replay] {LEDGER} from disk == live summary: {replay_equal}; "
        f"{DP_LEDGER}: {dp_replay_equal}"
    )

    req_s = np.array([r["seconds"] for r in rows])
    rt_s = np.array([r["seconds"] for r in retrains if r["kind"] == "retrain"])
    dps = dp_pub.ledger.summary
    results = {
        "config": {**vars(args), "x64": env["x64"]},
        "environment": env,
        "notes": notes,
        "n_train": n,
        "n_test": int(Xte.shape[0]),
        "dim": d,
        "residual_mode": mode,
        "budget": budget,
        "budget_method": args.budget_method,
        "num_requests": num_requests,
        "num_retrains": led.summary.num_retrains,
        "requests_served_by_retrain": served_by_retrain,
        "requests": rows,
        "retrains": retrains,
        "seconds_per_request_mean": float(req_s.mean()),
        "seconds_per_request_median": float(np.median(req_s)),
        "remove_seconds_median": float(np.median([r["remove_seconds"] for r in rows])),
        "ledger_seconds_median": float(np.median([r["ledger_seconds"] for r in rows])),
        "seconds_per_retrain_mean": float(rt_s.mean()) if rt_s.size else None,
        "train_seconds": t_train,
        "compile_seconds": {
            "train": max(t_compile_train - t_train, 0.0),
            "remove": t_compile_remove,
            "retrain": t_compile_retrain,
        },
        "test_accuracy_initial": acc0,
        "test_accuracy_final": rows[-1]["test_accuracy"],
        "beta_max": max(r["beta"] for r in rows),
        "u_epsilon_max": u_eps_max,
        "true_residual_minus_beta_max": worst_true_gap,
        "ledger": {
            "path": led.path,
            "summary": L.summary_to_dict(led.summary),
            "replay_equals_live": replay_equal,
        },
        "dp_example": {
            "path": dp_pub.ledger.path,
            "noise_multiplier": dp_pub.z,
            "dp_epsilon_budget": args.dp_epsilon,
            "dp_delta": args.dp_delta,
            "publications": len(dp_pub.published),
            "stopped_at_release": dp_pub.stopped_at,
            "releases": releases,
            "summary": L.summary_to_dict(dps),
            "replay_equals_live": dp_replay_equal,
            "published": dp_pub.published,
        },
        "wall_seconds": clock.elapsed(),
    }
    common.write_json(os.path.join(out, "results.json"), results)
    if not args.no_plots:
        path = plot(results, os.path.join(out, FIGURE))
        results["plot"] = path
        if args.copy_plot_to:
            os.makedirs(
                os.path.dirname(os.path.abspath(args.copy_plot_to)), exist_ok=True
            )
            shutil.copyfile(path, args.copy_plot_to)
            results["plot_copy"] = args.copy_plot_to
        common.write_json(os.path.join(out, "results.json"), results)
    print_summary(results)
    check(results)
    return results


# ------------------------------------------------------------------- figure


def plot(r: dict, path: str) -> str:
    """beta against requests (budget line, retrain markers), test accuracy, and
    the D example's epsilon, in three panels sharing the request axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = r["requests"]
    x = np.array([row["request"] for row in rows])
    beta = np.array([row["beta"] for row in rows])
    retrain_at = [t["before_request"] for t in r["retrains"] if t["kind"] == "retrain"]
    cfg = r["config"]
    fig, axes = plt.subplots(
        3, 1, figsize=(9, 8.5), sharex=True, height_ratios=(3, 1.6, 1.6)
    )
    ax = axes[0]
    # Each retrain restarts beta at the new training residual: show the drop.
    xs = np.concatenate([[0], x])
    bs = np.concatenate([[r["retrains"][0]["training_residual"]], beta])
    ax.plot(
        xs, bs, color="tab:blue", lw=1.6, label=r"$\beta$ (ledger, after each request)"
    )
    ax.axhline(
        r["budget"],
        color="tab:red",
        ls="--",
        lw=1.4,
        label=f"residual budget ({r['budget_method']}) = {r['budget']:.4f}",
    )
    for j, at in enumerate(retrain_at):
        for a in axes:
            a.axvline(at - 0.5, color="0.45", ls=":", lw=1.1)
        ax.plot(
            [at - 0.5],
            [r["budget"]],
            "v",
            color="tab:red",
            ms=8,
            label="ledger refused: retrain" if j == 0 else None,
        )
    ax.set_ylim(0, 1.12 * r["budget"])
    ax.set_ylabel(r"residual bound $\beta$ (sum form)")
    mode = (
        "residual-correcting step, residual_mode='set'"
        if r["residual_mode"] == "set"
        else "Algorithm 2, residual_mode='add'"
    )
    ax.set_title(
        f"Model lifetime: MNIST 3 vs 8 (n={r['n_train']}, "
        f"{'float64' if cfg['x64'] else 'float32'}), {r['num_requests']} requests, "
        f"{r['num_retrains']} retrains\n"
        rf"$\lambda$={cfg['lam']:g}, $\sigma$={cfg['sigma']:g}, "
        rf"($\epsilon$, $\delta$)=({cfg['epsilon']:g}, {cfg['delta']:g}); {mode}",
        fontsize=11,
    )
    ax.legend(loc="upper left", fontsize=9, framealpha=0.9)
    ax.grid(alpha=0.3)

    ax = axes[1]
    ev = [
        (row["request"], row["test_accuracy"])
        for row in rows
        if row["test_accuracy"] is not None
    ]
    ex = [0] + [e[0] for e in ev]
    ey = [r["test_accuracy_initial"]] + [e[1] for e in ev]
    ax.plot(ex, ey, "o-", color="tab:green", ms=3, lw=1.2, label="released model")
    rt = [t for t in r["retrains"] if t["kind"] == "retrain"]
    if rt:
        ax.plot(
            [t["before_request"] - 0.5 for t in rt],
            [t["test_accuracy"] for t in rt],
            "s",
            color="0.3",
            ms=5,
            label="right after a retrain",
        )
    ax.set_ylabel("test accuracy")
    lo = min(ey + [t["test_accuracy"] for t in rt])
    ax.set_ylim(max(0.0, lo - 0.03), min(1.0, max(ey) + 0.03))
    ax.legend(loc="lower left", fontsize=9)
    ax.grid(alpha=0.3)

    ax = axes[2]
    dp = r["dp_example"]
    dx = [row["request"] for row in rows if row["dp_example_epsilon"] is not None]
    dy = [
        row["dp_example_epsilon"]
        for row in rows
        if row["dp_example_epsilon"] is not None
    ]
    ax.plot(
        dx,
        dy,
        color="tab:purple",
        lw=1.6,
        label=f"D: noisy class counts, z={dp['noise_multiplier']:g} per release",
    )
    ax.axhline(
        dp["dp_epsilon_budget"],
        color="tab:red",
        ls="--",
        lw=1.2,
        label=f"D budget {dp['dp_epsilon_budget']:g} (never reset)",
    )
    if dp["stopped_at_release"] is not None and dx:
        ax.plot(
            [dx[-1] + 1],
            [dy[-1]],
            "X",
            color="tab:red",
            ms=9,
            label="D ledger refused: publication stops (retrains do not restore it)",
        )
    ax.set_ylabel(rf"D example $\epsilon$ ($\delta$={dp['dp_delta']:g})")
    ax.set_ylim(0, 1.9 * dp["dp_epsilon_budget"])
    ax.set_xlabel("deletion requests served (dotted: retrain before that request)")
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)
    ax.text(
        0.99,
        0.05,
        "model releases declare no DP mechanism: their D is infinite",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=8.5,
        color="0.3",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


# ------------------------------------------------------------------- report


def print_summary(r: dict) -> None:
    rt = r["seconds_per_retrain_mean"]
    dp = r["dp_example"]
    rows = [
        ("requests served", r["num_requests"]),
        ("retrains (ledger refusals)", r["num_retrains"]),
        (
            "requests served by training without the point",
            r["requests_served_by_retrain"],
        ),
        ("residual_mode", r["residual_mode"]),
        (f"budget ({r['budget_method']})", f"{r['budget']:.4f}"),
        ("max beta", f"{r['beta_max']:.4f}"),
        ("max U epsilon", f"{r['u_epsilon_max']:.4f}"),
        (
            "s/request (median: remove + ledger)",
            f"{r['seconds_per_request_median']:.4f}",
        ),
        (
            "  remove / ledger (median)",
            f"{r['remove_seconds_median']:.4f} / {r['ledger_seconds_median']:.4f}",
        ),
        ("s/retrain (mean)", "-" if rt is None else f"{rt:.4f}"),
        (
            "test acc initial / final",
            f"{r['test_accuracy_initial']:.4f} / {r['test_accuracy_final']:.4f}",
        ),
        ("ledger replay == live", r["ledger"]["replay_equals_live"]),
        ("model ledger D", r["ledger"]["summary"]["dp"]["epsilon"]),
        ("D example eps (final)", f"{dp['summary']['dp']['epsilon']:.4f}"),
        (
            "D example stopped at release",
            "-" if dp["stopped_at_release"] is None else dp["stopped_at_release"],
        ),
        ("wall seconds", f"{r['wall_seconds']:.1f}"),
    ]
    print("\n" + common.format_table(rows, ("quantity", "value")))
    if r.get("plot"):
        print(f"plot: {r['plot']}")


def check(r: dict) -> None:
    """Assertions on the outcome (the script fails loudly when they break)."""
    rows = r["requests"]
    budget = r["budget"]
    assert r["ledger"]["replay_equals_live"], "ledger replay != live summary"
    assert r["dp_example"]["replay_equals_live"], "D example replay != live summary"
    beta = np.array([row["beta"] for row in rows])
    assert np.all(beta <= budget), "beta exceeded the budget: U over the target"
    assert r["u_epsilon_max"] <= r["config"]["epsilon"], "U epsilon over the target"
    assert all(row["within_budget_library"] for row in rows)
    lib = np.array([row["beta_library"] for row in rows])
    rtol = 1e-9 if r["config"]["x64"] else 1e-4
    assert np.allclose(lib, beta, rtol=rtol, atol=rtol * budget), (
        "the ledger's beta and the library's grad_residual_bound disagree"
    )
    eps = np.finfo(np.float64 if r["config"]["x64"] else np.float32).eps
    assert r["true_residual_minus_beta_max"] <= 50 * eps * r["n_train"], (
        "a true gradient residual is above its certified bound"
    )
    s = r["ledger"]["summary"]
    assert s["num_requests"] == s["total_removed"] == r["num_requests"]
    assert s["num_retrains"] == len(r["retrains"]) - 1
    assert s["dp"]["epsilon"] == "inf", "model releases declare no DP mechanism"
    d = r["dp_example"]["summary"]["dp"]
    assert d["epsilon"] <= r["dp_example"]["dp_epsilon_budget"]
    print("[check] all outcome assertions passed")


def main(argv: list[str] | None = None) -> dict:
    args = resolve(build_parser().parse_args(argv))
    with common.x64_mode(args.x64):
        return run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
