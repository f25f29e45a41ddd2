"""A DP feature extractor with a certified-removal head (Guo et al., ICML 2020, §4.3).

On the embedded MNIST subset (all ten classes), one random half of the
training rows trains a small MLP by DP-SGD (``dpunlearn.dpsgd``: Poisson
sampling, per-example clipping, Gaussian noise; σ calibrated so that the
run is (ε, δ_DP)-DP by the RDP accountant, for ε in ``--epsilons``), and the
other half trains Guo et al.'s one-vs-rest certified head on its unit-norm
penultimate features (``dpunlearn.methods.dp_extractor``, ``split="disjoint"``).
A non-private extractor (no clipping, no noise) is the baseline. For each:

* test accuracy of the DP network alone (its own softmax layer: a fully DP
  model) and of DP features + certified head;
* ε of the DP-SGD run by our RDP accountant, dp_accounting's RDP and PLD, and
  the ledger's (D) after the training entry (asserted equal to ours);
* removals supported before a retrain, counted by the ledger (currency
  ``dp_extractor``, target ``(--target-epsilon, --target-delta)``):
  extractor rows, capped by group privacy at
  ``k·ε_DP + ε_CR <= ε, k e^{(k−1)ε_DP} δ_DP + δ_CR <= δ`` (asserted equal to
  ``dpunlearn budget dp-extractor``), and head rows, capped by the head's
  residual budget (at most ``--max-head-removals`` tried). The non-private
  extractor supports no extractor-row removal (each one means retraining it);
* seconds per removal against retraining (extractor and head).

The head's count is where the accumulated data-dependent bound β passes the
head's budget, a function of the head's secret noise ``b`` (Guo et al.'s
Algorithm 2; see the ``dpunlearn.methods.dp_extractor`` docstring): one draw,
reported as measured, not a b-independent schedule.

The (D) ledger: the training entry declares the DP-SGD run
(``DPSGDConfig.release()``), so (D) after it is the extractor's ε for the
rows it trained on. The head is not a DP mechanism (its guarantee is (U),
certified removal), so the request entries declare ``dp=null`` and (D)
reads non-private after the first one, as for certified removal alone.

Writes ``results.json``, ``config.json``, one ledger per ε and
``dp_extractor.png`` to ``--out``.

Usage::

    python experiments/dp_extractor.py                 # float64 head; a few minutes
    python experiments/dp_extractor.py --smoke --out results/smoke_dp_extractor
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("DP-SGD extractor")
    g.add_argument("--epsilons", default="1,3,8", help="extractor ε values")
    g.add_argument("--delta-dp", type=float, default=1e-5)
    g.add_argument("--sampling-rate", type=float, default=0.05)
    g.add_argument("--steps", type=int, default=400)
    g.add_argument("--clip-norm", type=float, default=1.0)
    g.add_argument("--learning-rate", type=float, default=3e-3)
    g.add_argument("--hidden", type=int, default=64, help="feature dimension")
    g = p.add_argument_group("certified head and target")
    g.add_argument("--lam", type=float, default=1e-3)
    g.add_argument("--head-sigma", type=float, default=10.0)
    g.add_argument("--head-epsilon", type=float, default=1.0)
    g.add_argument("--head-delta", type=float, default=1e-5)
    g.add_argument("--target-epsilon", type=float, default=10.0)
    g.add_argument("--target-delta", type=float, default=1e-3)
    g.add_argument("--max-head-removals", type=int, default=400)
    g.add_argument("--max-extractor-removals", type=int, default=20)
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default="results/dp_extractor")
    g.add_argument(
        "--float32", action="store_true", help="float32 head (default float64)"
    )
    g.add_argument(
        "--smoke",
        action="store_true",
        help="tiny and fast (CI); overrides: 600 rows, ε = 3 only, 30 steps, "
        "16 features, at most 5 removals of each kind",
    )
    g.add_argument("--no-plots", action="store_true")
    g.add_argument("--copy-plots-to", default=None)
    return p


def resolve(args):
    if args.smoke:
        args.epsilons, args.steps, args.hidden = "3", 30, 16
        args.max_head_removals, args.max_extractor_removals = 5, 5
        args.subset = 600
    else:
        args.subset = None
    args.epsilon_list = common.parse_floats(args.epsilons, "--epsilons")
    return args


def cli_max_removals(eps_dp: float, args) -> int:
    """``dpunlearn budget dp-extractor ... --json`` in process."""
    from dpunlearn import cli

    argv = [
        "budget",
        "dp-extractor",
        "--json",
        "--extractor-epsilon",
        repr(eps_dp),
        "--extractor-delta",
        repr(args.delta_dp),
        "--head-epsilon",
        repr(args.head_epsilon),
        "--head-delta",
        repr(args.head_delta),
        "--target-epsilon",
        repr(args.target_epsilon),
        "--target-delta",
        repr(args.target_delta),
    ]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(argv)
    if code != 0:
        raise RuntimeError(f"dpunlearn {' '.join(argv)} exited {code}")
    return int(json.loads(buf.getvalue())["max_removals"])


def run_setting(label, eps_target, args, ctx, log) -> dict:
    import dp_accounting as dpa
    import jax
    import jax.numpy as jnp

    from dpunlearn import dpsgd, models
    from dpunlearn.accounting import currencies as cur
    from dpunlearn.accounting import ledger as L
    from dpunlearn.methods import dp_extractor

    data, Xte, yte, model, feats, key = ctx
    if eps_target is None:
        cfg = dpsgd.DPSGDConfig(
            noise_multiplier=0.0,
            clip_norm=None,
            sampling_rate=args.sampling_rate,
            steps=args.steps,
            learning_rate=args.learning_rate,
        )
    else:
        cfg = dpsgd.calibrate(
            eps_target,
            args.delta_dp,
            sampling_rate=args.sampling_rate,
            steps=args.steps,
            clip_norm=args.clip_norm,
            learning_rate=args.learning_rate,
        )
    method = dp_extractor(
        extractor=model,
        features=feats,
        dpsgd_config=cfg,
        lam=args.lam,
        sigma=args.head_sigma,
        split="disjoint",
        extractor_fraction=0.5,
        head_dtype=None if args.float32 else jnp.float64,
        num_classes=10,
    )
    t0 = time.perf_counter()
    state, charge = method.train(key, data)
    jax.block_until_ready(state)
    train_compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()  # again, compiled: the cost of retraining everything
    state, charge = method.train(key, data)
    jax.block_until_ready(state)
    train_s = time.perf_counter() - t0
    acc = float(np.mean(np.asarray(method.predict(state.params, Xte)) == yte))
    acc_dp_net = float(models.accuracy(model, state.extractor, Xte, jnp.asarray(yte)))
    row = {
        "setting": label,
        "target_epsilon_dp": eps_target,
        "noise_multiplier": cfg.noise_multiplier,
        "sampling_rate": cfg.sampling_rate,
        "steps": cfg.steps,
        "clip_norm": cfg.clip_norm,
        "n_extractor": int(np.sum(state.in_extractor)),
        "n_head": int(np.sum(~state.in_extractor)),
        "train_seconds": train_s,
        "train_compile_seconds": train_compile_s,
        "test_accuracy": acc,
        "test_accuracy_dp_network_alone": acc_dp_net,
        "head_training_residual": float(charge.residual_bound),
    }
    budget = cur.cr_budget(
        sigma=args.head_sigma,
        epsilon=args.head_epsilon,
        delta=args.head_delta,
        method="analytic",
    )
    row["head_residual_budget"] = budget
    if cfg.private:
        eps_rdp = cfg.epsilon(args.delta_dp)
        eps_pld = cfg.epsilon(args.delta_dp, accountant="pld")
        event = dpa.SelfComposedDpEvent(
            dpa.PoissonSampledDpEvent(
                cfg.sampling_rate, dpa.GaussianDpEvent(cfg.noise_multiplier)
            ),
            cfg.steps,
        )
        from dpunlearn.accounting import rdp

        eps_theirs = (
            dpa.rdp.RdpAccountant(list(rdp.DEFAULT_ORDERS))
            .compose(event)
            .get_epsilon(args.delta_dp)
        )
        k_max = cur.extractor_max_removals(
            extractor_epsilon=eps_rdp,
            extractor_delta=args.delta_dp,
            head_epsilon=args.head_epsilon,
            head_delta=args.head_delta,
            target_epsilon=args.target_epsilon,
            target_delta=args.target_delta,
        )
        k_cli = cli_max_removals(eps_rdp, args)
        composed = {
            k: cur.extractor_head_epsilon(
                k,
                extractor_epsilon=eps_rdp,
                extractor_delta=args.delta_dp,
                head_epsilon=args.head_epsilon,
                head_delta=args.head_delta,
            )
            for k in (1, 2, 5, 10)
        }
        row.update(
            epsilon_dp_rdp=eps_rdp,
            epsilon_dp_pld=eps_pld,
            epsilon_dp_dp_accounting_rdp=eps_theirs,
            max_extractor_removals=k_max,
            max_extractor_removals_cli=k_cli,
            composed_at_k={str(k): list(v) for k, v in composed.items()},
        )
        led = L.Ledger.create(
            os.path.join(args.out, f"ledger_{label}.jsonl"),
            currency="dp_extractor",
            params={
                "extractor_epsilon": eps_rdp,
                "extractor_delta": args.delta_dp,
                "head": {
                    "sigma": args.head_sigma,
                    "epsilon": args.head_epsilon,
                    "delta": args.head_delta,
                    "method": "analytic",
                },
            },
            target_epsilon=args.target_epsilon,
            target_delta=args.target_delta,
            dp_delta=args.delta_dp,
            note="dp of the train entry: the DP-SGD extractor; the head is not DP (U only)",
        )
        from dpunlearn import serve

        s = serve.record_training(led, charge, dp=[cfg.release()])
        row["ledger_dp_epsilon_after_training"] = s.dp_epsilon
        row["ledger_dp_method"] = s.dp_method
    else:
        row.update(
            epsilon_dp_rdp=math.inf,
            max_extractor_removals=0,
            max_extractor_removals_cli=None,
        )
        led = None

    # Serve removals: extractor rows until refused, then head rows until refused.
    from dpunlearn.accounting import currencies as cur2
    from dpunlearn.accounting.ledger import BudgetExceededError

    rng = np.random.default_rng(args.seed)
    ext_rows = rng.permutation(np.flatnonzero(np.asarray(state.in_extractor)))
    head_rows = rng.permutation(np.flatnonzero(~np.asarray(state.in_extractor)))
    method.unlearn(key, state, head_rows[-1:], data)  # compile (result discarded)
    ext_served, ext_secs = 0, []
    if led is not None:
        for row_id in ext_rows[: args.max_extractor_removals + 1]:
            t0 = time.perf_counter()
            new, ch, _ = method.unlearn(key, state, np.array([row_id]), data)
            jax.block_until_ready(new)
            ext_secs.append(time.perf_counter() - t0)
            try:
                led.request(
                    dp=None, **cur2.get("dp_extractor").from_charge(jax.device_get(ch))
                )
            except BudgetExceededError as e:
                row["extractor_refusal"] = str(e)
                break
            state, ext_served = new, ext_served + 1
    beta, head_served, head_secs, ledger_head = float(charge.residual_bound), 0, [], 0
    for row_id in head_rows[: args.max_head_removals]:
        t0 = time.perf_counter()
        new, ch, _ = method.unlearn(key, state, np.array([row_id]), data)
        jax.block_until_ready(new)
        head_secs.append(time.perf_counter() - t0)
        beta += float(ch.residual_bound)
        if led is not None:
            try:
                led.request(
                    dp=None, **cur2.get("dp_extractor").from_charge(jax.device_get(ch))
                )
                ledger_head += 1
            except BudgetExceededError as e:
                row["head_refusal"] = str(e)
        if beta > budget:
            break
        state, head_served = new, head_served + 1
    row.update(
        extractor_removals_served=ext_served,
        head_removals_supported=head_served,
        head_removals_tried=len(head_secs),
        head_removals_capped=head_served == args.max_head_removals,
        head_removals_ledger=ledger_head if led is not None else None,
        head_beta_final=beta,
        seconds_per_head_removal=float(np.mean(head_secs)) if head_secs else None,
        seconds_per_extractor_removal=float(np.mean(ext_secs)) if ext_secs else None,
        # Without DP an extractor row can only be removed by retraining
        # extractor and head; with DP, up to max_extractor_removals cost a
        # request each (the head is untouched) and the next one a retrain.
        extractor_removal_cost_seconds=(float(np.mean(ext_secs)) if ext_secs else None)
        if cfg.private
        else train_s,
        accuracy_after_removals=float(
            np.mean(np.asarray(method.predict(state.params, Xte)) == yte)
        ),
    )
    if led is not None:
        row["ledger_summary"] = L.summary_to_dict(led.summary)
    log(
        f"  {label:>11s}: σ={cfg.noise_multiplier:.3f} ε_DP={row['epsilon_dp_rdp']:.3f} "
        f"acc net {acc_dp_net:.3f} / features+head {acc:.3f}; removals: extractor "
        f"{row['max_extractor_removals']} (served {ext_served}), head {head_served}"
        f"{'+' if head_served == args.max_head_removals else ''}; "
        f"{row['seconds_per_head_removal'] or 0:.4f} s/removal vs {train_s:.1f} s retrain"
    )
    return row


def check(rows, args) -> None:
    for r in rows:
        if r["epsilon_dp_rdp"] == math.inf:
            continue
        assert r["epsilon_dp_rdp"] <= r["target_epsilon_dp"] + 1e-9, (
            "calibration overshoot"
        )
        assert r["ledger_dp_epsilon_after_training"] == r["epsilon_dp_rdp"], (
            "ledger D != ours"
        )
        assert r["epsilon_dp_rdp"] <= r["epsilon_dp_dp_accounting_rdp"] * (1 + 1e-9)
        assert abs(r["epsilon_dp_rdp"] / r["epsilon_dp_dp_accounting_rdp"] - 1) < 1e-3
        assert r["epsilon_dp_pld"] <= r["epsilon_dp_rdp"]
        assert r["max_extractor_removals"] == r["max_extractor_removals_cli"], (
            "CLI disagrees"
        )
        if r["max_extractor_removals"] < args.max_extractor_removals:
            assert r["extractor_removals_served"] == r["max_extractor_removals"], (
                "the ledger's refusal is not where group privacy puts it"
            )
        assert r["head_removals_ledger"] == r["head_removals_supported"], (
            "the ledger and the head's own budget disagree"
        )
    print("[check] all outcome assertions passed")


def plot(rows, out) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["setting"] for r in rows]
    x = np.arange(len(rows))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.bar(
        x - 0.2,
        [r["test_accuracy_dp_network_alone"] for r in rows],
        0.4,
        label="DP network alone",
    )
    a1.bar(
        x + 0.2, [r["test_accuracy"] for r in rows], 0.4, label="DP features + CR head"
    )
    a1.set_xticks(x, labels)
    a1.set_ylabel("test accuracy")
    a1.legend(fontsize=8)
    a2.bar(
        x - 0.2,
        [r["max_extractor_removals"] for r in rows],
        0.4,
        label="extractor rows (group privacy)",
    )
    a2.bar(
        x + 0.2,
        [r["head_removals_supported"] for r in rows],
        0.4,
        label="head rows (residual budget)",
    )
    a2.set_xticks(x, labels)
    a2.set_ylabel("removals before a retrain")
    a2.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "dp_extractor.png")
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def run(args) -> dict:
    import jax
    import jax.numpy as jnp

    from dpunlearn import data as D
    from dpunlearn.methods import Data
    from dpunlearn.methods.dp_extractor import extractor_mlp

    clock = common.Stopwatch()
    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.out):
        if f.startswith("ledger_") and f.endswith(".jsonl"):
            os.remove(os.path.join(args.out, f))

    def log(msg):
        print(f"[{clock.elapsed():6.1f}s] {msg}", flush=True)

    config = {
        "options": {k: v for k, v in vars(args).items() if not k.endswith("_list")},
        "environment": common.environment(),
    }
    common.write_json(os.path.join(args.out, "config.json"), config)
    ds = D.load("mnist-subset", seed=args.seed, label_format="int")
    Xtr, ytr = ds.X_train, ds.y_train
    if args.subset:
        Xtr, ytr = Xtr[: args.subset], ytr[: args.subset]
    data = Data(jnp.asarray(Xtr), jnp.asarray(ytr))
    Xte, yte = jnp.asarray(ds.X_test), np.asarray(ds.y_test)
    d = Xtr.shape[1]
    model, feats = extractor_mlp(jax.random.key(args.seed), (d, args.hidden, 10))
    log(
        f"[data] mnist-subset, 10 classes: {len(ytr)} training rows (half extractor, "
        f"half head), {len(yte)} test; MLP {d}-{args.hidden}-10; head "
        f"{'float32' if args.float32 else 'float64'}"
    )
    ctx = (data, Xte, yte, model, feats, jax.random.key(args.seed + 1))
    rows = []
    for eps in args.epsilon_list:
        rows.append(run_setting(f"eps={eps:g}", eps, args, ctx, log))
    rows.append(run_setting("non-private", None, args, ctx, log))
    result = {"config": config, "rows": rows, "wall_seconds": clock.elapsed()}
    if not args.no_plots:
        result["plot"] = plot(rows, args.out)
        if args.copy_plots_to:
            os.makedirs(args.copy_plots_to, exist_ok=True)
            shutil.copy(result["plot"], args.copy_plots_to)
    common.write_json(os.path.join(args.out, "results.json"), result)
    table = [
        (
            r["setting"],
            f"{r['noise_multiplier']:.3f}",
            "inf" if r["epsilon_dp_rdp"] == math.inf else f"{r['epsilon_dp_rdp']:.3f}",
            "-" if r.get("epsilon_dp_pld") is None else f"{r['epsilon_dp_pld']:.3f}",
            f"{r['test_accuracy_dp_network_alone']:.3f}",
            f"{r['test_accuracy']:.3f}",
            r["max_extractor_removals"],
            f"{r['head_removals_supported']}{'+' if r['head_removals_capped'] else ''}",
            f"{(r['seconds_per_head_removal'] or 0) * 1e3:.1f}",
            "-"
            if r["extractor_removal_cost_seconds"] is None
            else f"{r['extractor_removal_cost_seconds'] * 1e3:.1f}",
            f"{r['train_seconds']:.1f}",
        )
        for r in rows
    ]
    print(
        "\n"
        + common.format_table(
            table,
            (
                "extractor",
                "sigma",
                "eps (RDP)",
                "eps (PLD)",
                "acc DP net",
                "acc feat+head",
                "extractor removals",
                "head removals",
                "ms/head removal",
                "ms/extractor removal",
                "retrain s",
            ),
        )
    )
    check(rows, args)
    print(f"\nwrote {os.path.join(args.out, 'results.json')} ({clock.elapsed():.1f} s)")
    return result


def main(argv: list[str] | None = None) -> dict:
    args = resolve(build_parser().parse_args(argv))
    with common.x64_mode(not args.float32):
        return run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
