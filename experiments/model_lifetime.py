"""A certified model's life: deletion requests served, recorded, and retrained.

Every request goes through :func:`dpunlearn.serve.serve` with the certified-
removal method (Guo et al., ICML 2020) and its shadow retrain schedule
(:mod:`dpunlearn.retrain_schedule`): the method unlearns the request, the
charge (how many shadows are marked) is appended to a crash-safe ledger,
which recomputes the Clopper–Pearson bound and refuses a release past δ′;
on a refusal ``serve`` retrains on the remaining rows with a fresh key and
new shadows. Every released model is (ε, δ)-certified, and the decision to
retrain never looked at the secret perturbation.

For comparison the same request stream is replayed under Guo et al.'s
Algorithm 2 (retrain when the residual sum β(b) passes the budget; a ledger
with ``rule="paper"``, **uncertified**: that decision looks at the secret).

Outputs (``--out``): ``config.json``, ``results.json`` (one row per request:
retrained or not, marked shadows, the Clopper–Pearson bound, the live model's
pointwise ε̄ and β, test accuracy, seconds), the two ledgers
(``ledger_schedule.jsonl``, ``ledger_paper.jsonl``, both replayed from disk
and checked against the live summaries) and ``model_lifetime.png``.

Default: breast cancer (scikit-learn's copy, offline), λ = 1e-3, σ = 1,
(ε, δ) = (1, 1e-2) with twice the fewest shadows that certify that δ
(2 × 1,727), 30 requests of one row, float64: 60 requests took 627 s on a
heavily loaded 2-core CPU (5 retrains under the schedule, none under
Algorithm 2; every release certified). A target of
δ = 1e-4 needs about 3·10⁵ shadows (``--delta 1e-4``; minutes per request on
a CPU).

Usage::

    python experiments/model_lifetime.py
    python experiments/model_lifetime.py --delta 1e-3 --requests 100
    python experiments/model_lifetime.py --smoke --out results/smoke_lifetime   # CI
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common

SCHEDULE_LEDGER = "ledger_schedule.jsonl"
PAPER_LEDGER = "ledger_paper.jsonl"


def build_parser() -> argparse.ArgumentParser:
    from dpunlearn import data

    p = argparse.ArgumentParser(
        description="Serve deletion requests with certified removal and its retrain schedule.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", default="breast-cancer", choices=data.DATASETS[:3])
    p.add_argument("--classes", default=None, help='two classes, e.g. "3,8" (mnist-subset)')
    p.add_argument("--lam", type=float, default=1e-3)
    p.add_argument("--sigma", type=float, default=1.0)
    p.add_argument("--epsilon", type=float, default=1.0)
    p.add_argument("--delta", type=float, default=1e-2)
    p.add_argument(
        "--shadows",
        type=int,
        default=None,
        help="default: twice the fewest that certify --delta (the fewest tolerate no "
        "marked shadow at all)",
    )
    p.add_argument("--requests", type=int, default=30)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--float32", action="store_true", help="float32 (probabilistic rounding)")
    p.add_argument("--out", default="results/model_lifetime")
    p.add_argument("--smoke", action="store_true", help="tiny and fast (CI)")
    p.add_argument("--no-plots", action="store_true")
    return p


def _fresh(path: str) -> str:
    if os.path.exists(path):
        os.remove(path)
    return path


def run(args) -> dict:
    import jax
    import jax.numpy as jnp

    from dpunlearn import certified, data, methods, retrain_schedule, serve
    from dpunlearn.accounting import currencies
    from dpunlearn.accounting import ledger as L

    os.makedirs(args.out, exist_ok=True)
    env = common.environment()
    common.write_json(
        os.path.join(args.out, "config.json"), {"options": vars(args), "environment": env}
    )
    clock = common.Stopwatch()
    classes = None if args.classes is None else common.parse_ints(args.classes, "--classes")
    if args.dataset == "mnist-subset" and classes is None:
        classes = [3, 8]
    ds = data.load(args.dataset, classes=classes, seed=args.seed)
    dtype = jnp.float64 if env["x64"] else jnp.float32
    X, y = ds.X_train, ds.y_train
    if args.smoke:
        X, y = X[:120], y[:120]
    d = methods.Data(jnp.asarray(X, dtype), jnp.asarray(y, dtype))
    Xte, yte = jnp.asarray(ds.X_test, dtype), jnp.asarray(ds.y_test, dtype)
    n = d.num_rows
    num_requests = min(args.requests, n // 2)

    probe = retrain_schedule.make_target(args.epsilon, args.delta, 10**12)
    shadows = args.shadows or 2 * retrain_schedule.min_shadows(
        probe.delta_schedule, probe.confidence
    )
    target = retrain_schedule.make_target(args.epsilon, args.delta, shadows)
    method = methods.certified_removal(
        lam=args.lam, sigma=args.sigma, epsilon=args.epsilon, delta=args.delta,
        num_shadows=shadows,
    )  # fmt: skip
    cfg = currencies.RetrainScheduleConfig.from_target(target)
    led = L.Ledger.create(
        _fresh(os.path.join(args.out, SCHEDULE_LEDGER)),
        currency="certified_removal",
        params={
            "rule": "schedule",
            "num_shadows": cfg.num_shadows,
            "delta_noise": cfg.delta_noise,
            "delta_schedule": cfg.delta_schedule,
            "confidence": cfg.confidence,
        },
        target_epsilon=args.epsilon,
        target_delta=args.delta,
        note="experiments/model_lifetime.py: the sound retrain schedule",
    )
    paper = L.Ledger.create(
        _fresh(os.path.join(args.out, PAPER_LEDGER)),
        currency="certified_removal",
        params={"rule": "paper", "sigma": args.sigma, "method": "analytic"},
        target_epsilon=args.epsilon,
        target_delta=args.delta,
        note="experiments/model_lifetime.py: Algorithm 2 (uncertified comparison)",
    )
    print(
        f"[model_lifetime] {ds.name} n={n} d={d.x.shape[1]} "
        f"({'float64' if env['x64'] else 'float32'}); {num_requests} requests; "
        f"(eps, delta) = ({args.epsilon}, {args.delta}); {shadows} shadows "
        f"(delta_E {target.delta_noise:.2g}, delta' {target.delta_schedule:.2g}, "
        f"eta {target.confidence:.2g})"
    )

    key = jax.random.key(args.seed)
    state, charge = common.timed(method.train, jax.random.fold_in(key, 0), d, None)[0]
    t_train = common.timed(method.train, jax.random.fold_in(key, 0), d, None)[1]
    serve.record_training(led, charge)
    paper.train(dp=None, residual_bound=float(state.model.training_residual))
    budget = paper.setup.config.budget
    order = np.random.default_rng(args.seed + 1).permutation(n)[:num_requests]
    rows, retrain_rows = [], []
    # The paper's rule on the same stream: its own model (same b as ours until
    # either retrains), Algorithm 2's decision on β(b).
    paper_state = state.model
    paper_retrains = 0
    for i, idx in enumerate(order.tolist(), start=1):
        (res, seconds) = common.timed(
            serve.serve, method, state, np.array([idx]), d,
            key=jax.random.fold_in(key, i), ledger=led,
        )  # fmt: skip
        state = res.state
        u = res.summary.unlearning
        model = state.model
        row = {
            "request": i,
            "index": int(idx),
            "retrained": bool(res.retrained),
            "shadows_marked": int(res.charge.num_exceeded),
            "exceed_upper": float(u.used),
            "delta_schedule": float(u.budget),
            "certified": bool(u.certified),
            "epsilon_certified": float(u.epsilon),
            "epsilon_pointwise_live": float(res.charge.epsilon_pointwise),
            "beta_live": float(model.grad_residual_bound),
            "seconds": seconds,
            "test_accuracy": None,
        }
        if res.retrained:
            retrain_rows.append({"before_request": i, "reason": res.refusal})
        # Algorithm 2 on its own model (uncertified comparison).
        paper_state, info = certified.remove(paper_state, np.array([idx]), d.x, d.y)
        try:
            paper.request(dp=None, residual_bound=float(info.bound_increment))
        except L.BudgetExceededError:
            paper_retrains += 1
            paper_state = certified.retrain(
                jax.random.fold_in(key, 10**6 + i), paper_state, d.x, d.y
            )
            paper.retrain(dp=None, residual_bound=float(paper_state.training_residual))
        row["paper_rule_retrains"] = paper_retrains
        if i % args.eval_every == 0 or i == num_requests:
            row["test_accuracy"] = float(
                jnp.mean(method.predict(state.params, Xte) == yte)
            )
            print(
                f"  request {i:>4}/{num_requests}  retrains {res.summary.num_retrains} "
                f"(paper rule {paper_retrains})  marked {row['shadows_marked']}  "
                f"CP bound {row['exceed_upper']:.2e} <= {row['delta_schedule']:.1e}  "
                f"eps_pointwise {row['epsilon_pointwise_live']:.3g}  "
                f"acc {row['test_accuracy']:.4f}  elapsed {clock.elapsed():.1f}s"
            )
        rows.append(row)

    replay_schedule, _ = L.replay_file(led.path)
    replay_paper, _ = L.replay_file(paper.path)
    results = {
        "config": {**vars(args), "shadows": shadows, "x64": env["x64"]},
        "environment": env,
        "n_train": n,
        "budget_paper_rule": budget,
        "train_seconds": t_train,
        "retrains": retrain_rows,
        "num_retrains": replay_schedule.num_retrains,
        "num_retrains_paper_rule": replay_paper.num_retrains,
        "replay_equals_live": replay_schedule == led.summary and replay_paper == paper.summary,
        "every_release_certified": all(r["certified"] for r in rows),
        "requests": rows,
        "wall_seconds": clock.elapsed(),
    }
    common.write_json(os.path.join(args.out, "results.json"), results)
    if not args.no_plots:
        results["plot"] = _plot(results, args.out)
        common.write_json(os.path.join(args.out, "results.json"), results)
    print(
        f"[done] {num_requests} requests: {results['num_retrains']} retrains under the "
        f"schedule (every release certified: {results['every_release_certified']}), "
        f"{results['num_retrains_paper_rule']} under Algorithm 2 (uncertified); ledgers "
        f"replay to the live summaries: {results['replay_equals_live']}; "
        f"{results['wall_seconds']:.1f}s"
    )
    return results


def _plot(r: dict, out: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = r["requests"]
    t = [row["request"] for row in rows]
    fig, ax = plt.subplots(1, 3, figsize=(14, 3.8))
    ax[0].plot(t, [row["exceed_upper"] for row in rows], label="Clopper–Pearson bound on P[marked]")
    ax[0].axhline(rows[0]["delta_schedule"], color="k", ls="--", label="δ′")
    for rt in r["retrains"]:
        ax[0].axvline(rt["before_request"], color="r", alpha=0.4)
    ax[0].set(xlabel="request", title="schedule (retrains in red)")
    ax[0].legend(fontsize=7)
    ax[1].semilogy(t, [row["epsilon_pointwise_live"] for row in rows], label="live ε̄ (secret-dependent)")
    ax[1].axhline(r["config"]["epsilon"], color="k", ls="--", label="ε")
    ax[1].set(xlabel="request", title="pointwise ε̄ of the live model")
    ax[1].legend(fontsize=7)
    acc = [(row["request"], row["test_accuracy"]) for row in rows if row["test_accuracy"] is not None]
    ax[2].plot(*zip(*acc), marker="o")
    ax[2].set(xlabel="request", ylabel="test accuracy", title="released model")
    fig.tight_layout()
    path = os.path.join(out, "model_lifetime.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.requests = min(args.requests, 12)
        args.eval_every = min(args.eval_every, 6)
        if args.shadows is None and args.delta == build_parser().get_default("delta"):
            args.delta = 5e-2  # 2 × 263 shadows
    if args.requests < 1:
        raise SystemExit("error: --requests must be >= 1")
    with common.x64_mode(not args.float32):
        return run(args)


if __name__ == "__main__":
    main()
