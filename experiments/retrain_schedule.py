"""When to retrain: the shadow-model schedule against the paper's rule.

Guo, Goldstein, Hannun and van der Maaten, "Certified Data Removal from
Machine Learning Models" (ICML 2020), Algorithm 2, retrain once the
accumulated residual bound beta(b) exceeds the budget of Theorem 3. beta
depends on the secret perturbation b, so that decision leaks b, and Theorem 3
itself treats the residual as a fixed shift of b (``docs/certified_removal.md``
sections 2 and 6). ``dpunlearn.retrain_schedule`` decides from the data alone:
M shadow models with fresh, independent keys follow the live model's
requests; a shadow is marked once its pointwise eps_bar (eq. 2 of the note)
exceeds eps, and the live model keeps serving while the one-sided
Clopper-Pearson bound (Clopper & Pearson, Biometrika 1934) on the probability
of being marked stays at most delta'. Every release is then (eps, delta)
against retraining with delta = delta_E + delta' + eta, for requests fixed in
advance (section 6 of the note, which also names the one gap left: the
reverse inequality on the marked region).

For each setting, on a fixed random removal order (one point per request),
this script reports:

(a) ``schedule.supported``: requests the schedule certifies before it must
    retrain (``retrain_schedule.plan``'s count), at the stated (eps, delta);
(b) ``live.paper_rule_uncertified``: requests the paper's rule would serve on
    the live model (beta <= the analytic budget, also the paper's sigma*eps/c),
    at the paper's delta and at the schedule's delta: uncertified;
(c) how beta and eps_bar vary across keys: per-request quantiles over the
    shadows, and the distribution over keys of the counts each rule would give;
(d) seconds (training, shadows, shadows per second).

Settings (eps = 1, library defaults: integral bound form, PCG, float64):

* ``breast-cancer``: scikit-learn's Wisconsin data (``data.load("breast-cancer",
  seed=0)``, n = 456, d = 30), lambda = 1e-3, sigma = 1, delta = 1e-4. delta'
  cannot be certified below 1 - eta^(1/M), so delta = 1e-4 (delta' = 4e-5,
  eta = 1e-5) needs M >= ``retrain_schedule.min_shadows(4e-5, 1e-5)`` =
  287,818 shadows: ``--full`` runs M = 300,000. The default M = 16,384
  certifies delta = 1.4e-3, the smallest it can (reported).
* ``mnist-paper``: the embedded MNIST 3-vs-8 subset (n = 800, d = 784), the
  paper's lambda = 1e-3, sigma = 10; ``mnist-lam1e-2``: lambda = 1e-2,
  sigma = 1. Each shadow keeps a 784 x 784 float64 preconditioner (4.9 MB),
  and costs about 0.2 s to train and 5 ms per request on a CPU core, so M is
  in the hundreds (default 128 and 48, ``--full`` 1024 and 256) and the
  certified delta is 0.09-0.2 (0.014 and 0.052 with ``--full``): the delta M
  can certify is reported (``target.delta``, ``delta_min_for_M``).

The shadows run in chunks (one compiled ``jax.vmap`` over keys of
``certified.train`` and ``certified.remove_sequence``); the keys are
``jax.random.split(shadow_key, M)``, exactly the ones
``retrain_schedule.plan(shadow_key, ...)`` draws, and ``--smoke`` checks the
chunked counts against ``plan``. The shadows follow the first ``horizon``
requests; a subset of ``dist_shadows`` keys follows all of them (the
distribution of the per-key counts).

Outputs in ``--out``: ``config.json`` (first), ``results.json``,
``retrain_schedule.png`` (per setting: the Clopper-Pearson bound against
requests with delta' and its floor; beta quantiles with the paper's budget;
eps_bar quantiles with eps).

Run time, measured on 2 CPU cores shared with other users (load average 7-8):
the default 7.8 minutes wall clock (4.3 minutes of CPU time; about 40% of it
compiling); ``--full --settings breast-cancer`` 20 minutes (300,000 shadows
at ~260 per second); ``--smoke`` 1-2 minutes.

Results of the default (and ``--full`` for breast cancer), eps = 1:

  setting                         M      delta   schedule  paper rule  paper rule
                                                 certifies (Cor 1,     (integral beta,
                                                           sigma eps/c) analytic)
  breast-cancer   lambda=1e-3  300,000   1e-4        5         23         100
  breast-cancer   lambda=1e-3   16,384   1.4e-3      5         23         100
  mnist-paper     lambda=1e-3      128   0.091       1          0          82
  mnist-lam1e-2   lambda=1e-2       48   0.2       309         19         341

(the paper's rule at delta = 1e-4 on the live model, uncertified).

Usage::

    python experiments/retrain_schedule.py                        # defaults
    python experiments/retrain_schedule.py --full                 # M = 300,000 for breast cancer
    python experiments/retrain_schedule.py --settings breast-cancer --shadows 65536
    python experiments/retrain_schedule.py --smoke --out results/smoke_schedule   # CI
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as common

log = common.log
FIGURE = "retrain_schedule.png"
QUANTILES = (0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One experiment: data, hyper-parameters, and how many shadows."""

    name: str
    dataset: str
    classes: tuple[int, ...] | None
    lam: float
    sigma: float
    delta: float  # the delta asked for (the paper's 1e-4)
    shadows: int  # default M
    full_shadows: int  # M with --full
    horizon: int  # requests the M shadows follow
    chunk: int  # shadows per compiled call
    dist_shadows: int  # keys that follow every request


SETTINGS = {
    s.name: s
    for s in (
        Setting("breast-cancer", "breast-cancer", None, 1e-3, 1.0, 1e-4, 16_384,
                300_000, 12, 4096, 256),
        Setting("mnist-paper", "mnist-subset", (3, 8), 1e-3, 10.0, 1e-4, 128,
                1024, 16, 32, 8),
        Setting("mnist-lam1e-2", "mnist-subset", (3, 8), 1e-2, 1.0, 1e-4, 48,
                256, 340, 24, 8),
    )
}  # fmt: skip
# --smoke: breast cancer (d = 30, quick to compile), 40 shadows in chunks of
# 16 (the last one padded); other settings can be added with --settings.
SMOKE = {"breast-cancer": (40, 16)}  # M, chunk


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="The retrain schedule (shadow models) against Guo et al.'s rule.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--settings",
        default=None,
        help=f"comma-separated, from {sorted(SETTINGS)} (default: all; --smoke: "
        f"{', '.join(SMOKE)})",
    )
    p.add_argument("--epsilon", type=float, default=1.0)
    p.add_argument(
        "--shadows",
        type=int,
        default=None,
        help="M for every setting (default: each setting's; --full: the large ones)",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="the large M: 300,000 for breast cancer (certifies delta = 1e-4), "
        "1024 / 512 for MNIST; tens of minutes",
    )
    p.add_argument(
        "--requests",
        type=int,
        default=400,
        help="requests on the live model (capped at --max-removed of the rows)",
    )
    p.add_argument(
        "--max-removed",
        type=float,
        default=0.5,
        help="fraction of the training rows the requests may remove",
    )
    p.add_argument(
        "--horizon",
        type=int,
        default=None,
        help="requests every shadow follows (default: each setting's)",
    )
    p.add_argument(
        "--bound-form",
        default="integral",
        choices=("integral", "corollary1"),
        help="data-dependent bound of live model and shadows (library default)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/retrain_schedule")
    p.add_argument("--smoke", action="store_true", help="tiny and fast (CI)")
    p.add_argument("--no-plots", action="store_true")
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    if args.settings is None:
        args.settings = ",".join(SMOKE if args.smoke else SETTINGS)
    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    bad = [s for s in names if s not in SETTINGS]
    if bad or not names:
        raise ValueError(
            f"Expected --settings from {sorted(SETTINGS)}, got {args.settings!r}."
        )
    if not args.epsilon > 0:
        raise ValueError(f"Expected --epsilon > 0, got {args.epsilon}.")
    if not 0 < args.max_removed < 1:
        raise ValueError(f"Expected --max-removed in (0, 1), got {args.max_removed}.")
    for name in ("shadows", "requests", "horizon"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ValueError(f"Expected --{name} >= 1, got {v}.")
    settings = []
    for n in names:
        s = SETTINGS[n]
        if args.full:
            s = dataclasses.replace(s, shadows=s.full_shadows)
        if args.smoke:  # small enough for CI, still several chunks
            m, c = SMOKE.get(n, (12, 8))
            s = dataclasses.replace(
                s, shadows=m, horizon=min(s.horizon, 5), chunk=c, dist_shadows=4
            )
        if args.shadows is not None:
            s = dataclasses.replace(s, shadows=args.shadows)
        if args.horizon is not None:
            s = dataclasses.replace(s, horizon=args.horizon)
        settings.append(
            dataclasses.replace(
                s,
                chunk=min(s.chunk, s.shadows),
                dist_shadows=min(s.dist_shadows, s.shadows),
            )
        )
    args.settings_list = settings
    if args.smoke:
        args.requests = min(args.requests, 12)
    return args


# ---------------------------------------------------------------------- pieces


def delta_min_for(num_shadows: int, *, noise_share=0.5, confidence_share=0.1) -> float:
    """Smallest delta whose split ``retrain_schedule.make_target`` can certify
    with ``num_shadows`` shadows: delta' = (1 - noise - confidence)·delta must be
    at least the zero-exceedance Clopper-Pearson bound 1 - eta^(1/M),
    eta = confidence·delta (bisection; the condition is monotone in delta)."""
    from dpunlearn import retrain_schedule

    share = 1 - noise_share - confidence_share

    def ok(delta):
        need = retrain_schedule.min_shadows(share * delta, confidence_share * delta)
        return need <= num_shadows

    lo, hi = 1e-12, 0.999
    if not ok(hi):
        raise ValueError(f"{num_shadows} shadows cannot certify any delta < 1.")
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def round_up(x: float, digits: int = 2) -> float:
    """``x`` rounded up to ``digits`` significant digits."""
    e = math.floor(math.log10(x)) - digits + 1
    return round(math.ceil(x / 10**e - 1e-9) * 10**e, max(-e, 0))


def leading(ok: np.ndarray) -> tuple[int, bool]:
    """Leading True entries; ``capped`` when all are True (a lower bound)."""
    bad = np.flatnonzero(~np.asarray(ok, bool))
    return (int(bad[0]), False) if bad.size else (len(ok), True)


def first_failure(fail: np.ndarray) -> np.ndarray:
    """Per row of ``fail [M, T]``: the number of leading non-failing steps (T if none)."""
    fail = np.asarray(fail, bool)
    any_ = fail.any(axis=1)
    return np.where(any_, fail.argmax(axis=1), fail.shape[1])


def make_chunk_fn(certified, removal_certificate, config, lam, sigma, event, dim):
    """One compiled program: train a chunk of shadows (fresh keys), follow the
    requests, return eps_bar after training and after every request, beta and
    validity (the quantities ``retrain_schedule.plan`` marks on)."""
    import jax
    import jax.numpy as jnp

    def eps_bar(s, beta, mass, unstructured, logdet):
        return removal_certificate.pointwise_epsilon(
            sigma=s.sigma,
            beta=beta,
            remainder_mass=mass,
            unstructured=unstructured,
            logdet=logdet,
            row_norm=s.row_norm_bound,
            dim=dim,
            event=event,
        )

    @jax.jit
    def run(keys, X, y, requests):
        def one(key):
            s = certified.train(key, X, y, lam=lam, sigma=sigma, config=config)
            eps0 = eps_bar(
                s,
                s.grad_residual_bound,
                s.remainder_mass,
                jnp.sqrt(jnp.sum(s.unstructured_bounds**2)),
                s.logdet_bound,
            )
            _, infos = certified.remove_sequence(s, requests, X, y)
            eps = eps_bar(
                s,
                infos.cumulative_bound,
                infos.remainder_mass,
                infos.unstructured_bound,
                infos.logdet_bound,
            )
            return eps0, eps, infos.cumulative_bound, infos.valid, s.rounding_failure

        return jax.vmap(one)(keys)

    return run


def run_shadows(fn, keys, X, y, requests, *, epsilon, chunk, label, clock):
    """Runs ``fn`` over ``keys`` in chunks (the last one padded, its padding
    dropped). Returns the marks' counts per request, the count after training,
    and eps_bar / beta of every shadow (float32, for quantiles)."""
    import jax
    import jax.numpy as jnp

    M = keys.shape[0]
    T = requests.shape[0]
    reqs = jnp.asarray(requests)
    counts = np.zeros(T, np.int64)
    init_count = 0
    eps_all = np.empty((M, T), np.float32)
    beta_all = np.empty((M, T), np.float32)
    rounding = 0.0
    t0 = clock.elapsed()
    for start in range(0, M, chunk):
        stop = min(start + chunk, M)
        kc = keys[start:stop]
        if stop - start < chunk:  # same shapes: reuse the compiled program
            pad = jnp.concatenate([kc, jnp.repeat(kc[-1:], chunk - (stop - start), 0)])
            kc = pad
        eps0, eps, beta, valid, rf = jax.device_get(fn(kc, X, y, reqs))
        m = stop - start
        eps0, eps, beta, valid = eps0[:m], eps[:m], beta[:m], valid[:m]
        init = eps0 > epsilon
        marked = np.logical_or.accumulate(
            np.concatenate([init[:, None], (eps > epsilon) | ~valid], axis=1), axis=1
        )[:, 1:]
        counts += marked.sum(axis=0)
        init_count += int(init.sum())
        # +inf (an uncertifiable step) stays +inf in float32.
        eps_all[start:stop] = eps
        beta_all[start:stop] = beta
        rounding = max(rounding, float(np.max(rf[:m])))
        done = clock.elapsed() - t0
        eta = done / stop * (M - stop)
        log(
            f"    {label}: {stop:>7}/{M} shadows, marked by request "
            f"{T}: {int(counts[-1])}, {stop / max(done, 1e-9):.0f} shadows/s, "
            f"ETA {eta:.0f}s, elapsed {clock.elapsed():.1f}s"
        )
    return {
        "counts": counts,
        "init_count": init_count,
        "eps": eps_all,
        "beta": beta_all,
        "rounding_failure": rounding,
        "seconds": clock.elapsed() - t0,
    }


def quantiles(a: np.ndarray) -> dict[str, list]:
    """Per-column quantiles of ``a [M, T]`` (+inf kept)."""
    a = np.asarray(a, np.float64)
    # Sample values (no interpolation): well defined with +inf entries.
    return {
        f"q{q:g}": np.quantile(a, q, axis=0, method="inverted_cdf").tolist()
        for q in QUANTILES
    }


def run_setting(s: Setting, index: int, args, clock) -> dict:
    import jax
    import jax.numpy as jnp

    from dpunlearn import certified, data, removal_certificate, retrain_schedule, stats

    t_start = clock.elapsed()
    log(
        f"\n[{s.name}] {s.dataset} lambda={s.lam:g} sigma={s.sigma:g} "
        f"eps={args.epsilon:g}; M={s.shadows} shadows"
    )
    ds = data.load(s.dataset, classes=s.classes, seed=0)
    X = jnp.asarray(ds.X_train, jnp.float64)
    y = jnp.asarray(ds.y_train, jnp.float64)
    n, d = X.shape
    # Keys: one per setting, split once into the live model's and the
    # shadows' (independent of each other, never reused).
    key = jax.random.fold_in(jax.random.key(args.seed), index)
    key_live, key_shadows = jax.random.split(key)
    config = certified.make_config(bound_form=args.bound_form)
    lam = jnp.asarray(s.lam, jnp.float64)
    sigma = jnp.asarray(s.sigma, jnp.float64)

    # --------------------------------------------------------------- target
    delta_min = delta_min_for(s.shadows)
    delta = max(s.delta, round_up(delta_min))
    target = retrain_schedule.make_target(args.epsilon, delta, s.shadows)
    floor = 1 - target.confidence ** (1 / s.shadows)
    need = retrain_schedule.min_shadows(0.4 * s.delta, 0.1 * s.delta)
    log(
        f"  [target] delta={target.delta:g} (delta_E={target.delta_noise:g}, "
        f"delta'={target.delta_schedule:g}, eta={target.confidence:g}); M={s.shadows} "
        f"certifies delta >= {delta_min:.3g} (delta' >= 1 - eta^(1/M) = {floor:.3g}); "
        f"delta={s.delta:g} needs M >= {need}"
    )

    # ------------------------------------------------------------ live model
    T_live = min(args.requests, int(args.max_removed * n))
    T_sh = min(s.horizon, T_live)
    order = np.random.default_rng(args.seed + 1).permutation(n)[:T_live]
    requests = order.reshape(T_live, 1).astype(np.int32)
    (live, t_train) = common.timed(
        certified.train, key_live, X, y, lam=lam, sigma=sigma, config=config
    )
    # Eager: validates the requests (range, distinct, classes, data).
    (_, infos), t_live = common.timed(certified.remove_sequence, live, requests, X, y)
    event = removal_certificate.noise_event(target.delta_noise, num_rows=n)
    live_eps = np.asarray(
        removal_certificate.pointwise_epsilon(
            sigma=live.sigma,
            beta=infos.cumulative_bound,
            remainder_mass=infos.remainder_mass,
            unstructured=infos.unstructured_bound,
            logdet=infos.logdet_bound,
            row_norm=live.row_norm_bound,
            dim=d,
            event=event,
        )
    )
    live_beta = np.asarray(infos.cumulative_bound)
    eps0_live = certified.removal_epsilon(live, delta=target.delta_noise)
    # The paper's rule as published bounds beta with Corollary 1: the same
    # model (same key, so the same b and weights; the bound form only changes
    # the certificate), its Corollary-1 beta.
    betas = {args.bound_form: live_beta}
    if args.bound_form != "corollary1":
        live_c1 = certified.train(
            key_live, X, y, lam=lam, sigma=sigma,
            config=dataclasses.replace(config, bound_form="corollary1"),
        )  # fmt: skip
        assert np.array_equal(np.asarray(live_c1.params), np.asarray(live.params))
        _, infos_c1 = certified.remove_sequence(live_c1, requests, X, y)
        betas["corollary1"] = np.asarray(infos_c1.cumulative_bound)
    paper = {}
    for form, beta in betas.items():
        for label, dlt in (("paper_delta", s.delta), ("schedule_delta", target.delta)):
            for method in ("analytic", "paper"):
                if method == "paper" and args.epsilon > 1:
                    continue
                bud = float(
                    certified.residual_budget(
                        sigma=s.sigma, epsilon=args.epsilon, delta=dlt, method=method
                    )
                )
                count, capped = leading(beta <= bud)
                if float(live.grad_residual_bound) > bud:
                    count, capped = 0, False
                paper[f"{form}/{method}@{label}"] = {
                    "bound_form": form,
                    "budget_method": method,
                    "delta": dlt,
                    "budget": bud,
                    "supported": count,
                    "capped": capped,
                }
    eps_count, eps_capped = leading(live_eps <= args.epsilon)
    if eps0_live > args.epsilon:
        eps_count, eps_capped = 0, False
    pa = paper[f"{args.bound_form}/analytic@paper_delta"]
    pc = paper.get("corollary1/paper@paper_delta")
    log(
        f"  [live] trained in {t_train:.2f}s; {T_live} requests in {t_live:.2f}s; "
        f"paper rule (beta <= {pa['budget']:.4f}, analytic, delta={s.delta:g}; "
        f"{args.bound_form} beta; uncertified): "
        f"{pa['supported']}{'+' if pa['capped'] else ''}"
        + (
            f", as published (Cor. 1, sigma*eps/c = {pc['budget']:.4f}): "
            f"{pc['supported']}{'+' if pc['capped'] else ''}"
            if pc
            else ""
        )
        + f"; eps_bar <= {args.epsilon:g} at this b (b-dependent): "
        f"{eps_count}{'+' if eps_capped else ''}"
    )

    # --------------------------------------------------------------- shadows
    keys = jax.random.split(key_shadows, s.shadows)  # == plan's / init's keys
    fn = make_chunk_fn(
        certified, removal_certificate, live.config, lam, sigma, event, d
    )
    log(
        f"  [shadows] {s.shadows} shadows x {T_sh} requests in chunks of {s.chunk} "
        f"(first call compiles)"
    )
    sh = run_shadows(
        fn,
        keys,
        X,
        y,
        requests[:T_sh],
        epsilon=args.epsilon,
        chunk=s.chunk,
        label="schedule",
        clock=clock,
    )
    M = s.shadows
    upper0 = stats.clopper_pearson_upper(sh["init_count"], M, target.confidence)
    upper = np.array(
        [
            stats.clopper_pearson_upper(int(c), M, target.confidence)
            for c in sh["counts"]
        ]
    )
    ok = upper <= target.delta_schedule
    if upper0 > target.delta_schedule:
        supported, sup_capped = 0, False
    else:
        supported, sup_capped = leading(ok)
    log(
        f"  [schedule] certifies {supported}{'+' if sup_capped else ''} requests at "
        f"(eps, delta)=({args.epsilon:g}, {target.delta:g}); marked counts "
        f"{sh['counts'][: min(T_sh, 12)].tolist()}{'...' if T_sh > 12 else ''}; "
        f"{sh['seconds']:.1f}s"
    )

    # ---------------------------------------- keys that follow every request
    if T_live > T_sh:
        dfn = make_chunk_fn(
            certified, removal_certificate, live.config, lam, sigma, event, d
        )
        dist = run_shadows(
            dfn,
            keys[: s.dist_shadows],
            X,
            y,
            requests,
            epsilon=args.epsilon,
            chunk=min(s.chunk, s.dist_shadows),
            label="all requests",
            clock=clock,
        )
        # The same keys, another batch and horizon: the same numbers.
        a = sh["eps"][: s.dist_shadows]
        b = dist["eps"][:, :T_sh]
        fin = np.isfinite(a)
        assert np.array_equal(fin, np.isfinite(b)) and np.allclose(
            a[fin], b[fin], rtol=1e-5, atol=0
        ), "shadows disagree between the two runs"
        dist_eps, dist_beta = dist["eps"], dist["beta"]
    else:
        dist_eps, dist_beta = sh["eps"][: s.dist_shadows], sh["beta"][: s.dist_shadows]
    budget = paper[f"{args.bound_form}/analytic@paper_delta"]["budget"]
    per_key_paper = first_failure(dist_beta > budget)
    per_key_eps = first_failure(dist_eps > args.epsilon)

    return {
        "setting": dataclasses.asdict(s),
        "dataset": ds.name,
        "classes": list(ds.classes),
        "n_train": n,
        "dim": d,
        "epsilon": args.epsilon,
        "target": dataclasses.asdict(target),
        "delta_requested": s.delta,
        "delta_min_for_M": delta_min,
        "delta_schedule_floor": floor,
        "shadows_needed_for_delta_requested": need,
        "num_requests_live": T_live,
        "horizon_shadows": T_sh,
        "requests": order.tolist(),
        "live": {
            "train_seconds": t_train,
            "requests_seconds": t_live,
            "beta": live_beta.tolist(),
            "bound_form": args.bound_form,
            "beta_corollary1": betas["corollary1"].tolist(),
            "pointwise_epsilon": live_eps.tolist(),
            "pointwise_epsilon_after_training": eps0_live,
            "paper_rule_uncertified": paper,
            "pointwise_epsilon_rule_b_dependent": {
                "supported": eps_count,
                "capped": eps_capped,
            },
        },
        "schedule": {
            "supported": supported,
            "capped": sup_capped,
            "certified_delta": target.delta + sh["rounding_failure"],
            "exceed_count_after_training": sh["init_count"],
            "exceed_upper_after_training": upper0,
            "exceed_counts": sh["counts"].tolist(),
            "exceed_upper": upper.tolist(),
            "seconds": sh["seconds"],
            "shadows_per_second": M / max(sh["seconds"], 1e-9),
        },
        "across_keys": {
            "num_shadows_per_request": [M] * T_sh + [s.dist_shadows] * (T_live - T_sh),
            "beta": quantiles(sh["beta"])
            if T_live == T_sh
            else {
                "first": quantiles(sh["beta"]),
                "rest": quantiles(dist_beta[:, T_sh:]),
            },
            "pointwise_epsilon": quantiles(sh["eps"])
            if T_live == T_sh
            else {
                "first": quantiles(sh["eps"]),
                "rest": quantiles(dist_eps[:, T_sh:]),
            },
            "dist_shadows": s.dist_shadows,
            "paper_rule_count_per_key": quantiles(per_key_paper[:, None])
            | {"capped_fraction": float(np.mean(per_key_paper == T_live))},
            "pointwise_epsilon_count_per_key": quantiles(per_key_eps[:, None])
            | {"capped_fraction": float(np.mean(per_key_eps == T_live))},
        },
        "seconds": clock.elapsed() - t_start,
    }


def check_against_plan(result: dict, args) -> dict:
    """``--smoke``: the chunked counts equal ``retrain_schedule.plan``'s."""
    import jax
    import jax.numpy as jnp

    from dpunlearn import certified, data, retrain_schedule

    s = Setting(**result["setting"])
    ds = data.load(s.dataset, classes=s.classes, seed=0)
    X = jnp.asarray(ds.X_train, jnp.float64)
    y = jnp.asarray(ds.y_train, jnp.float64)
    index = [x.name for x in args.settings_list].index(s.name)
    key_live, key_shadows = jax.random.split(
        jax.random.fold_in(jax.random.key(args.seed), index)
    )
    config = certified.make_config(bound_form=args.bound_form)
    live = certified.train(key_live, X, y, lam=s.lam, sigma=s.sigma, config=config)
    t = result["target"]
    target = retrain_schedule.make_target(result["epsilon"], t["delta"], s.shadows)
    T = result["horizon_shadows"]
    reqs = np.asarray(result["requests"][:T], np.int32).reshape(T, 1)
    plan = retrain_schedule.plan(key_shadows, live, X, y, reqs, target)
    same = {
        "supported": plan.supported == result["schedule"]["supported"],
        "exceed_counts": plan.exceed_counts.tolist()
        == result["schedule"]["exceed_counts"],
    }
    log(f"  [check] {s.name}: chunked shadows == retrain_schedule.plan: {same}")
    assert all(same.values()), (plan.supported, plan.exceed_counts, result["schedule"])
    return {"plan_supported": plan.supported, **same}


# ---------------------------------------------------------------------- figure


def plot(results: dict, path: str) -> str:
    """Per setting: the Clopper-Pearson bound against requests (with delta' and
    the floor 1 - eta^(1/M)); beta quantiles over keys with the paper's budget;
    eps_bar quantiles with eps. Requests past the shadows' horizon show the
    smaller subset of keys (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["settings"]
    fig, axes = plt.subplots(len(rows), 3, figsize=(15, 4.3 * len(rows)), dpi=110)
    axes = np.atleast_2d(axes)
    for r, (ax1, ax2, ax3) in zip(rows, axes):
        t = r["target"]
        sch = r["schedule"]
        T_sh, T_live = r["horizon_shadows"], r["num_requests_live"]
        # Request 0 is the freshly trained model (init's verdict).
        xs = np.arange(0, T_sh + 1)
        up = np.array([sch["exceed_upper_after_training"], *sch["exceed_upper"]])
        counts = [sch["exceed_count_after_training"], *sch["exceed_counts"]]
        ax1.step(xs, up, where="post", color="tab:purple", lw=2,
                 label="Clopper–Pearson bound on P(marked by t)")  # fmt: skip
        ax1.axhline(t["delta_schedule"], color="black", lw=1.2,
                    label=f"δ′ = {t['delta_schedule']:.3g}")  # fmt: skip
        ax1.axhline(r["delta_schedule_floor"], color="gray", ls=":", lw=1.2,
                    label=f"floor 1 − η^(1/M) = {r['delta_schedule_floor']:.3g}")  # fmt: skip
        sup = sch["supported"]
        ax1.axvline(sup + 0.5, color="tab:purple", ls="--", lw=1,
                    label=f"schedule certifies {sup}{'+' if sch['capped'] else ''}")  # fmt: skip
        ax1.set_yscale("log")
        lo = min(r["delta_schedule_floor"], float(up.min()))
        ax1.set_ylim(lo / 3, 1.5)
        axc = ax1.twinx()
        axc.step(xs, counts, where="post", color="tab:green", lw=1, alpha=0.8)
        axc.set_ylabel("shadows marked (green)", fontsize=8, color="tab:green")
        axc.set_ylim(0, max(max(counts), 1) * 1.6)
        ax1.set_xlabel("request")
        ax1.set_title(
            f"{r['setting']['name']}: n={r['n_train']}, d={r['dim']}, "
            f"λ={r['setting']['lam']:g}, σ={r['setting']['sigma']:g}\n"
            f"M={r['setting']['shadows']}, (ε, δ)=({r['epsilon']:g}, {t['delta']:.3g})",
            fontsize=9,
        )
        ax1.legend(fontsize=7, loc="lower right")
        ax1.grid(alpha=0.3)

        for ax, key, live_key, line, what in (
            (ax2, "beta", "beta", r["live"]["paper_rule_uncertified"][f"{r['live']['bound_form']}/analytic@paper_delta"]["budget"], "β"),
            (ax3, "pointwise_epsilon", "pointwise_epsilon", r["epsilon"], "ε̄"),
        ):  # fmt: skip
            q = r["across_keys"][key]
            parts = (
                [(q["first"], np.arange(1, T_sh + 1), "-", r["setting"]["shadows"]),
                 (q["rest"], np.arange(T_sh + 1, T_live + 1), "--", r["across_keys"]["dist_shadows"])]
                if "first" in q
                else [(q, np.arange(1, T_live + 1), "-", r["setting"]["shadows"])]
            )  # fmt: skip
            for j, (qq, x, ls, m) in enumerate(parts):
                if x.size == 0:
                    continue
                # results.json writes +inf as null: back to floats (nan, not drawn).
                qf = {k: np.array(v, dtype=float) for k, v in qq.items()}
                ax.fill_between(x, qf["q0"], qf["q1"], color="tab:blue", alpha=0.15, lw=0,
                                label="min–max over keys" if j == 0 else None)  # fmt: skip
                ax.fill_between(x, qf["q0.01"], qf["q0.99"], color="tab:blue", alpha=0.3,
                                lw=0, label="1–99% over keys" if j == 0 else None)  # fmt: skip
                ax.plot(x, qf["q0.5"], ls, color="tab:blue", lw=1.5,
                        label=f"median over keys ({m} keys{'' if j == 0 else ' past the horizon'})")  # fmt: skip
            live = np.array(r["live"][live_key], dtype=float)
            ax.plot(np.arange(1, live.size + 1), live, color="tab:red", lw=1.2,
                    label=f"live model's {what}")  # fmt: skip
            ax.axhline(line, color="black", lw=1.2,
                       label=(f"paper's budget (analytic, δ={r['delta_requested']:g}; "
                              f"uncertified) = {line:.3g}") if key == "beta"
                       else f"ε = {line:g}")  # fmt: skip
            if key == "beta" and r["live"]["bound_form"] != "corollary1":
                c1 = np.array(r["live"]["beta_corollary1"], dtype=float)
                pc = r["live"]["paper_rule_uncertified"]["corollary1/paper@paper_delta"]
                ax.plot(np.arange(1, c1.size + 1), c1, color="tab:orange", lw=1.2,
                        label="live model's Corollary-1 β (the paper's bound)")  # fmt: skip
                ax.axhline(pc["budget"], color="tab:orange", ls=":", lw=1.2,
                           label=f"paper's σε/c = {pc['budget']:.3g}: rule as published "
                           f"serves {pc['supported']}{'+' if pc['capped'] else ''} "
                           "(uncertified)")  # fmt: skip
            ax.axvline(sup + 0.5, color="tab:purple", ls="--", lw=1)
            pr = r["live"]["paper_rule_uncertified"][
                f"{r['live']['bound_form']}/analytic@paper_delta"
            ]
            ax.axvline(pr["supported"] + 0.5, color="tab:red", ls=":", lw=1,
                       label=f"paper rule on the live model: {pr['supported']}"
                       f"{'+' if pr['capped'] else ''} (uncertified)")  # fmt: skip
            ax.set_yscale("log")
            ax.set_xlabel("request")
            ax.set_title(
                f"{what} across shadow keys" + (
                    ": the paper's rule compares it with the budget" if key == "beta"
                    else f" (δ_E={t['delta_noise']:.3g}): a key is marked once ε̄ > ε"),
                fontsize=9,
            )  # fmt: skip
            ax.legend(fontsize=6.5, loc="lower right")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- main


def print_summary(results: dict) -> None:
    plus = lambda d: f"{d['supported']}{'+' if d['capped'] else ''}"
    rows = []
    for r in results["settings"]:
        sch, live = r["schedule"], r["live"]
        pr = live["paper_rule_uncertified"]
        form = live["bound_form"]
        keys = r["across_keys"]["paper_rule_count_per_key"]
        rows.append(
            (
                r["setting"]["name"],
                f"{r['setting']['shadows']}",
                f"{r['target']['delta']:.3g}",
                plus(sch),
                plus(pr["corollary1/paper@paper_delta"]),
                plus(pr[f"{form}/analytic@paper_delta"]),
                plus(pr[f"{form}/analytic@schedule_delta"]),
                f"{int(keys['q0'][0])}-{int(keys['q1'][0])}",
                plus(live["pointwise_epsilon_rule_b_dependent"]),
                f"{sch['seconds']:.0f}",
            )
        )
    log(
        "\n"
        + common.format_table(
            rows,
            (
                "setting",
                "M",
                "delta",
                "schedule (certified)",
                "paper: Cor1, s*eps/c",
                f"paper: {results['config']['bound_form']}, analytic",
                "same at delta",
                "same, range over keys",
                "eps_bar<=eps (live)",
                "shadow s",
            ),
            left=(0,),
            title=f"Requests served before a retrain (eps={results['epsilon']:g}). "
            "Paper's rule (Algorithm 2, beta <= budget on the live model, delta=1e-4 "
            "unless said): uncertified; eps_bar <= eps on the live model: "
            "b-dependent; '+': not stopped within the requests run",
        )
    )


def check(results: dict) -> None:
    for r in results["settings"]:
        sch = r["schedule"]
        T = r["horizon_shadows"]
        counts = np.array(sch["exceed_counts"])
        assert np.all(np.diff(counts) >= 0), "marked counts must not decrease"
        assert counts[0] >= sch["exceed_count_after_training"]
        assert 0 <= sch["supported"] <= T
        up = np.array(sch["exceed_upper"])
        s = sch["supported"]
        if s < T:  # the schedule stopped at request s + 1: its bound is above delta'
            assert up[s] > r["target"]["delta_schedule"]
        assert np.all(up[:s] <= r["target"]["delta_schedule"])
        assert r["target"]["delta"] >= r["delta_min_for_M"] * (1 - 1e-9)
        assert sch["certified_delta"] == r["target"]["delta"]  # float64: no rounding
    log("[check] all outcome assertions passed")


def run(args: argparse.Namespace) -> dict:
    clock = common.Stopwatch()
    os.makedirs(args.out, exist_ok=True)
    env = common.environment()
    options = {k: v for k, v in vars(args).items() if k != "settings_list"}
    options["settings_resolved"] = [dataclasses.asdict(s) for s in args.settings_list]
    common.write_json(
        os.path.join(args.out, "config.json"), {"options": options, "environment": env}
    )
    log(
        f"[retrain_schedule] jax {env['jax']} on {env['backend']} (float64); "
        f"settings {[s.name for s in args.settings_list]}; writing to {args.out}"
    )
    out = {
        "config": options,
        "environment": env,
        "epsilon": args.epsilon,
        "settings": [],
    }
    for i, s in enumerate(args.settings_list):
        r = run_setting(s, i, args, clock)
        if args.smoke and s.dataset == "breast-cancer":  # d = 30: cheap to compile
            r["plan_check"] = check_against_plan(r, args)
        out["settings"].append(r)
        common.write_json(os.path.join(args.out, "results.json"), out)
    if not args.no_plots:
        out["plot"] = plot(out, os.path.join(args.out, FIGURE))
    out["wall_seconds"] = clock.elapsed()
    common.write_json(os.path.join(args.out, "results.json"), out)
    print_summary(out)
    check(out)
    log(f"[done] elapsed {clock.elapsed():.1f}s; results in {args.out}")
    return out


def main(argv: list[str] | None = None) -> dict:
    args = resolve(build_parser().parse_args(argv))
    with common.single_threaded_blas(), common.x64_mode(True):
        return run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
