"""The ``dpunlearn`` command line.

``dpunlearn budget ...`` answers privacy-budget questions: single mechanisms
(Gaussian ε/δ/σ, RDP composition, subsampled Gaussian), the unlearning
currencies of :mod:`dpunlearn.accounting.currencies`, and ledger files of
:mod:`dpunlearn.accounting.ledger`. Every command prints a readable table, or
JSON with ``--json``. Impossible input prints one line
``dpunlearn: error: ...`` on stderr and exits non-zero (2 for bad arguments,
1 for a missing/corrupt/torn ledger), never a traceback.

Other top-level commands register themselves with :func:`register_command`::

    from dpunlearn import cli

    def add_mycmd(subparsers):
        p = subparsers.add_parser("mycmd", help="...")
        p.set_defaults(func=lambda args: ...)   # returns (rows_or_dict, exit_code)

    cli.register_command("mycmd", add_mycmd)

A command's ``func(args)`` returns an :class:`Output` (or an int exit code if
it prints by itself).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

__all__ = ["main", "register_command", "COMMANDS", "Output", "CLIError"]

PROG = "dpunlearn"


class CLIError(Exception):
    """An error reported as one line with the given exit code."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class Output(NamedTuple):
    """What a command returns: a title, key/value rows, optional tables, JSON.

    Attributes:
      title: First line of the readable output.
      rows: ``(label, value)`` pairs.
      tables: ``(caption, header, rows)`` triples printed after ``rows``.
      data: The ``--json`` payload.
      code: Exit code.
      notes: Lines printed at the end (warnings, explanations).
    """

    title: str
    rows: Sequence[tuple[str, Any]]
    data: dict
    tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]] = ()
    code: int = 0
    notes: Sequence[str] = ()


#: Top-level command registry: name -> function adding its parser to the
#: top-level subparsers. ``budget`` is registered below.
COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {}


def register_command(
    name: str, add_parser: Callable[[argparse._SubParsersAction], None]
) -> None:
    """Registers a top-level subcommand (``dpunlearn NAME ...``)."""
    if name in COMMANDS and COMMANDS[name] is not add_parser:
        raise ValueError(
            f"Expected a new command name, {name!r} is already registered."
        )
    COMMANDS[name] = add_parser


# ---------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == 0.0:
            return "0"
        if 1e-4 <= abs(v) < 1e7:
            return f"{v:.7g}"
        return f"{v:.6e}"
    if v is None:
        return "-"
    return str(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        return _jsonable(v.item())
    return v


def _render(out: Output) -> str:
    lines = [out.title]
    if out.rows:
        w = max(len(k) for k, _ in out.rows)
        lines += [f"  {k.ljust(w)}  {_fmt(v)}" for k, v in out.rows]
    for caption, header, rows in out.tables:
        lines.append("")
        if caption:
            lines.append(caption)
        cells = [list(header)] + [[_fmt(c) for c in r] for r in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        numeric = [
            all(isinstance(r[i], (int, float)) or r[i] is None for r in rows)
            for i in range(len(header))
        ]
        for j, r in enumerate(cells):
            lines.append(
                "  "
                + "  ".join(
                    c.rjust(widths[i]) if numeric[i] else c.ljust(widths[i])
                    for i, c in enumerate(r)
                ).rstrip()
            )
            if j == 0:
                lines.append("  " + "  ".join("-" * x for x in widths))
    for n in out.notes:
        lines.append(n)
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# argument helpers
# ---------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_required(p: argparse.ArgumentParser, *flags: str, **helps: str) -> None:
    """Adds required options: ``--n`` an int, every other one a float.

    ``helps`` maps an option's dest (``strong_convexity``) to its help text.
    """
    for flag in flags:
        dest = flag[2:].replace("-", "_")
        kind = int if flag == "--n" else float
        p.add_argument(flag, type=kind, required=True, help=helps.get(dest))


def _need(args, *names):
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise CLIError(f"missing required argument(s): {', '.join(missing)}")


def _pick(args, *names: str) -> dict[str, Any]:
    """``{name: args.name}`` for the given names, in order (keyword forwarding)."""
    return {n: getattr(args, n) for n in names}


def _inputs(
    *items: tuple[str, str, Any],
) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """The readable rows ``(label, value)`` and the JSON ``{key: value}`` of the
    same inputs, each given once as ``(label, key, value)``."""
    return [(label, v) for label, _, v in items], {key: v for _, key, v in items}


# ---------------------------------------------------------------------------
# budget: mechanisms
# ---------------------------------------------------------------------------


def _cmd_gaussian(args) -> Output:
    from dpunlearn.accounting import mechanisms as mech

    given = _pick(args, "sigma", "epsilon", "delta")
    if sum(v is not None for v in given.values()) != 2:
        raise CLIError(
            "give exactly two of --sigma, --epsilon, --delta (the third is computed)"
        )
    s, e, d, sens = args.sigma, args.epsilon, args.delta, args.sensitivity
    rows: list[tuple[str, Any]] = [("sensitivity", sens)]
    if e is None:
        eps = mech.gaussian_epsilon(d, sigma=s, sensitivity=sens)
        rows += [("sigma", s), ("delta", d), ("epsilon (exact)", eps)]
        data = {"sigma": s, "delta": d, "epsilon": eps, "sensitivity": sens}
    elif d is None:
        dl = mech.gaussian_delta(e, sigma=s, sensitivity=sens)
        rows += [("sigma", s), ("epsilon", e), ("delta (exact)", dl)]
        data = {"sigma": s, "epsilon": e, "delta": dl, "sensitivity": sens}
    else:
        sig = mech.gaussian_sigma_analytic(e, d, sens)
        rows += [("epsilon", e), ("delta", d), ("sigma (analytic)", sig)]
        data = {"epsilon": e, "delta": d, "sigma_analytic": sig, "sensitivity": sens}
        if e < 1.0:
            sc = mech.gaussian_sigma_classic(e, d, sens)
            rows.append(("sigma (classic, eps<1)", sc))
            data["sigma_classic"] = sc
    return Output("Gaussian mechanism (Balle & Wang 2018, exact)", rows, data)


# Largest count the accountants take (exact in float64), and the most rows a
# per-request table prints.
_MAX_COUNT = 2**53
_MAX_REQUESTS = 10_000


def _check_count(value: int, what: str, *, maximum: int = _MAX_COUNT) -> int:
    """``value`` if 1 <= value <= maximum, else a one-line error naming ``what``."""
    if not 1 <= value <= maximum:
        cap = "2**53" if maximum == _MAX_COUNT else str(maximum)
        raise CLIError(f"expected {what} to be an integer in [1, {cap}], got {value}")
    return value


def _parse_gaussian_spec(spec: str) -> tuple[float, int]:
    parts = spec.split(":")
    try:
        if len(parts) == 1:
            return float(parts[0]), 1
        if len(parts) == 2:
            return float(parts[0]), _check_count(int(parts[1]), f"COUNT in --gaussian {spec}")
    except ValueError:
        pass
    raise CLIError(f"expected --gaussian SIGMA[:COUNT], got {spec!r}")


def _parse_subsampled_spec(spec: str) -> tuple[float, float, int]:
    parts = spec.split(":")
    try:
        if len(parts) == 3:
            count = _check_count(int(parts[2]), f"COUNT in --subsampled {spec}")
            return float(parts[0]), float(parts[1]), count
    except ValueError:
        pass
    raise CLIError(f"expected --subsampled Q:SIGMA:COUNT, got {spec!r}")


def _cmd_rdp(args) -> Output:
    import numpy as np

    from dpunlearn.accounting import rdp

    if not args.gaussian and not args.subsampled:
        raise CLIError(
            "give at least one --gaussian SIGMA[:COUNT] or --subsampled Q:SIGMA:COUNT"
        )
    orders = rdp.DEFAULT_ORDERS
    curves, counts, table = [], [], []
    for spec in args.gaussian or ():
        s, c = _parse_gaussian_spec(spec)
        curves.append(rdp.gaussian_rdp(orders, s))
        counts.append(c)
        table.append(("gaussian", "-", s, c))
    for spec in args.subsampled or ():
        q, s, c = _parse_subsampled_spec(spec)
        curves.append(rdp.subsampled_gaussian_rdp(orders, q, s))
        counts.append(c)
        table.append(("subsampled gaussian", q, s, c))
    total = rdp.compose_rdp(np.stack(curves), counts)
    eps, order = rdp.rdp_to_dp(orders, total, args.delta, method=args.method)
    rows = [
        ("delta", args.delta),
        ("conversion", args.method),
        ("epsilon (RDP)", float(eps)),
        ("best order", float(order)),
    ]
    data = {
        "delta": args.delta,
        "method": args.method,
        "epsilon": float(eps),
        "order": float(order),
        "mechanisms": [
            {
                "mechanism": t[0],
                "q": None if t[1] == "-" else t[1],
                "noise_multiplier": t[2],
                "count": t[3],
            }
            for t in table
        ],
    }
    notes = []
    if args.pld:
        try:
            pld = _pld_epsilon(table, args.delta)
        except ValueError as err:
            if "grid points" not in str(err):
                raise
            # dp_accounting's grid would not fit: say so, and give the exact
            # value where a closed form exists (Gaussians compose into one).
            pld = None
            notes.append("note: PLD not computed: " + str(err).split(": use")[0] + ".")
            exact = _exact_gaussian_composition(table, args.delta)
            if exact is not None:
                rows.append(("epsilon (exact Gaussian composition)", exact))
                data["epsilon_exact"] = exact
                notes.append(
                    "note: the Gaussians compose into one Gaussian with noise "
                    "(sum of count/sigma^2)^(-1/2); its exact epsilon (Balle & Wang "
                    "2018) is shown instead of the PLD."
                )
        else:
            rows.append(("epsilon (PLD)", pld))
        data["epsilon_pld"] = pld
    return Output(
        "RDP composition (Mironov 2017; conversion: "
        f"{'Canonne-Kamath-Steinke 2020' if args.method == 'improved' else 'Mironov'})",
        rows,
        data,
        tables=[("mechanisms", ("mechanism", "q", "sigma", "count"), table)],
        notes=notes,
    )


def _pld_epsilon(table, delta: float) -> float:
    """PLD ε through dp_accounting (reporting only), via our event types."""
    from dpunlearn.accounting import events as ev

    evs = [
        ev.GaussianEvent(sigma=s, count=c)
        if kind == "gaussian"
        else ev.SubsampledGaussianEvent(q=q, sigma=s, count=c)
        for kind, q, s, c in table
    ]
    return ev.epsilon_pld(evs, delta)


def _exact_gaussian_composition(table, delta: float) -> float | None:
    """Exact ε of a composition of plain Gaussians (None if any is subsampled).

    k Gaussian releases with noise σ_i (sensitivity 1) are exactly one with
    precision Σ k_i/σ_i² (the privacy loss is Gaussian), summed in logs.
    """
    from scipy import special

    from dpunlearn.accounting import mechanisms as mech

    if any(kind != "gaussian" for kind, *_ in table):
        return None
    log_prec = float(
        special.logsumexp([math.log(c) - 2.0 * math.log(s) for _, _, s, c in table])
    )
    if 0.5 * log_prec > 700.0:  # Δ/σ_eff beyond 1e304: ε ≈ r²/2 exceeds float64
        return math.inf
    return mech.gaussian_epsilon(delta, sigma=1.0, sensitivity=math.exp(0.5 * log_prec))


def _cmd_subsampled(args) -> Output:
    _check_count(args.steps, "--steps")
    args.gaussian = None
    args.subsampled = [f"{args.q}:{args.sigma}:{args.steps}"]
    out = _cmd_rdp(args)
    return out._replace(title="Poisson-subsampled Gaussian (DP-SGD), RDP accountant")


# ---------------------------------------------------------------------------
# budget: currencies
# ---------------------------------------------------------------------------


def _parse_floats(text: str, name: str) -> list[float]:
    try:
        return [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise CLIError(
            f"expected {name} to be numbers separated by commas or spaces, got {text!r}"
        ) from None


def _cmd_cr(args) -> Output:
    if args.rule == "paper":
        return _cmd_cr_paper(args)
    given = [f for f in ("sigma", "bounds", "bounds_file") if getattr(args, f) is not None]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise CLIError(f"{flag} belongs to Algorithm 2's residual budget: add --rule paper", 2)
    return _cmd_cr_schedule(args)


def _cmd_cr_schedule(args) -> Output:
    """The sound rule: shadows decide when to retrain (dpunlearn.retrain_schedule)."""
    from dpunlearn import retrain_schedule as rs
    from dpunlearn import stats

    probe = rs.make_target(args.epsilon, args.delta, 10**15)
    need = rs.min_shadows(probe.delta_schedule, probe.confidence)
    shadows = need if args.shadows is None else args.shadows
    try:
        target = rs.make_target(args.epsilon, args.delta, shadows)
    except ValueError as e:
        raise CLIError(str(e).replace("num_shadows", "--shadows"), 2) from None
    rows, data = _inputs(
        ("epsilon", "epsilon", args.epsilon),
        ("delta", "delta", args.delta),
        ("shadows M", "shadows", shadows),
    )
    rows += [
        ("delta_E (noise event)", target.delta_noise),
        ("delta' (P[marked])", target.delta_schedule),
        ("eta (estimate's failure)", target.confidence),
        ("fewest shadows for delta'", need),
    ]
    data.update(
        delta_noise=target.delta_noise,
        delta_schedule=target.delta_schedule,
        confidence=target.confidence,
        min_shadows=need,
    )
    if args.marked is not None:
        counts = [int(c) for c in _parse_floats(args.marked, "--marked")]
        if any(c < 0 or c > shadows for c in counts) or counts != sorted(counts):
            raise CLIError(
                f"--marked: expected non-decreasing counts in [0, {shadows}] "
                "(marks never disappear before a retrain)",
                2,
            )
        upper = [stats.clopper_pearson_upper(c, shadows, target.confidence) for c in counts]
        ok = [u <= target.delta_schedule for u in upper]
        served = ok.index(False) if False in ok else len(ok)
        rows.append(("requests certified before a retrain", served))
        rows.append(("Clopper-Pearson bound after the last", upper[-1]))
        data.update(marked=counts, exceed_upper=upper, certified_requests=served)
    notes = [
        "note: every released model is (epsilon, delta)-indistinguishable from "
        "retraining while the bound on the marked fraction stays <= delta'; the "
        "retrain decision never looks at the secret perturbation "
        "(docs/certified_removal.md)."
    ]
    return Output(
        "Certified removal (Guo et al. 2020) with the shadow retrain schedule",
        rows,
        data,
        notes=notes,
    )


def _cmd_cr_paper(args) -> Output:
    from dpunlearn.accounting import currencies as cur

    if args.sigma is None:
        raise CLIError("--rule paper needs --sigma", 2)
    c = cur.cr_constant(args.delta)
    rows, data = _inputs(
        ("sigma", "sigma", args.sigma),
        ("epsilon", "epsilon", args.epsilon),
        ("delta", "delta", args.delta),
        ("c = sqrt(2 ln(1.5/delta))", "c", c),
    )
    budgets = {}
    if args.epsilon <= 1.0:
        budgets["paper"] = cur.cr_budget(
            sigma=args.sigma, epsilon=args.epsilon, delta=args.delta, method="paper"
        )
        rows.append(("budget (paper, sigma*eps/c)", budgets["paper"]))
    budgets["analytic"] = cur.cr_budget(
        sigma=args.sigma, epsilon=args.epsilon, delta=args.delta, method="analytic"
    )
    rows.append(("budget (analytic Gaussian)", budgets["analytic"]))
    data["budget"] = budgets
    notes = [
        "note: Algorithm 2's rule (retrain once beta passes the budget) decides on "
        "the secret perturbation; it is not a certificate (the default --rule "
        "schedule is)."
    ]
    if args.epsilon > 1.0:
        notes.append("note: the paper's budget sigma*eps/c is only valid for eps <= 1.")
    bounds = None
    if args.bounds is not None:
        bounds = _parse_floats(args.bounds, "--bounds")
    if args.bounds_file is not None:
        try:
            with open(args.bounds_file) as f:
                bounds = _parse_floats(f.read(), "--bounds-file")
        except OSError as e:
            raise CLIError(
                f"cannot read --bounds-file: {e.strerror}: {args.bounds_file}", 2
            ) from None
        except UnicodeDecodeError:
            raise CLIError(
                f"--bounds-file: expected a text file of numbers: {args.bounds_file}", 2
            ) from None
    if bounds is not None:
        sup = {k: cur.supported_removals(bounds, b) for k, b in budgets.items()}
        for k, v in sup.items():
            rows.append((f"supported removals ({k}, uncertified)", v))
        rows.append(("cumulative bound", float(sum(bounds))))
        data["supported_removals"] = sup
        data["cumulative_bound"] = float(sum(bounds))
    return Output(
        "Certified removal (Guo et al. 2020): Algorithm 2's residual budget "
        "(uncertified)",
        rows,
        data,
        notes=notes,
    )


def _langevin_constants(args):
    from dpunlearn.accounting import currencies as cur

    if args.strong_convexity is not None or args.step_size is not None:
        _need(args, "strong_convexity", "step_size")
        return args.strong_convexity, args.step_size
    _need(args, "lam")
    m, _, eta = cur.langevin_constants(
        n=args.n, lam=args.lam, loss_smoothness=args.loss_smoothness
    )
    return m, eta


def _recursion_inputs(args) -> tuple[float, float, float, dict[str, Any]]:
    """(m, η, δ, config keywords) of ``langevin`` / ``wsgd``; δ defaults to 1/n.

    The keywords are those :class:`~dpunlearn.accounting.currencies.LangevinConfig`
    and ``WassersteinConfig`` share.
    """
    _need(args, "n", "sigma")
    _check_count(args.n, "--n")
    m, eta = _langevin_constants(args)
    delta = args.delta if args.delta is not None else 1.0 / args.n
    kw = dict(
        strong_convexity=m,
        step_size=eta,
        **_pick(args, "sigma", "gradient_clip", "n", "conversion", "max_order"),
    )
    return m, eta, delta, kw


def _need_k(args, unit: str) -> None:
    """``langevin`` / ``wsgd`` need ``--<unit>``, a target ε, or both; checks
    ``--requests`` (one table row each) and the target."""
    from dpunlearn import _validate

    if getattr(args, unit) is None and args.target_epsilon is None:
        raise CLIError(f"give --{unit} K, --target-epsilon E, or both")
    _check_count(args.requests, "--requests", maximum=_MAX_REQUESTS)
    if args.target_epsilon is not None:
        _validate.positive(target_epsilon=args.target_epsilon)


def _request_table(
    args,
    cfg,
    delta: float,
    *,
    unit: str,
    init: Callable[[], Any],
    min_k: Callable[..., int],
    update: Callable[[Any, int], Any],
    epsilon: Callable[..., tuple[float, float]],
    columns: Sequence[str],
    cells: Callable[[int, int, Any], list[Any]],
) -> tuple[list[str], list[list[Any]]]:
    """``args.requests`` identical requests of a recursive currency.

    Each request runs ``args.<unit>`` steps/epochs or, when that is not given,
    the fewest that certify ``args.target_epsilon`` (``min_k``). A row is
    ``cells(request, k, state)``, then ε and its order, then whether ε meets
    the target when one is given. Returns ``(header, rows)``.
    """
    fixed = getattr(args, unit)
    targeted = args.target_epsilon is not None
    state = init()
    table = []
    saturated = False
    for s in range(1, args.requests + 1):
        if saturated:  # identical requests: ε is non-decreasing, inf stays inf
            state = update(state, fixed)
            row = [*cells(s, fixed, state), math.inf, math.nan]
            table.append(row + ([False] if targeted else []))
            continue
        if fixed is None:
            k = min_k(
                state,
                cfg,
                removed=args.removed,
                target_epsilon=args.target_epsilon,
                delta=delta,
            )
        else:
            k = fixed
        state = update(state, k)
        eps, alpha = epsilon(state, cfg, delta)
        saturated = fixed is not None and eps == math.inf
        row = [*cells(s, k, state), eps, alpha]
        if targeted:
            row.append(eps <= args.target_epsilon)
        table.append(row)
    header = [*columns, "epsilon", "order"] + (["certified"] if targeted else [])
    return header, table


def _cmd_langevin(args) -> Output:
    from dpunlearn.accounting import currencies as cur

    m, eta, delta, kw = _recursion_inputs(args)
    cfg = cur.LangevinConfig(**kw)
    _need_k(args, "steps")
    header, table = _request_table(
        args,
        cfg,
        delta,
        unit="steps",
        init=cur.langevin_init,
        min_k=cur.langevin_min_steps,
        update=lambda state, k: cur.langevin_update(
            state, removed=args.removed, steps=k
        ),
        epsilon=cur.langevin_epsilon,
        columns=("request", "removed", "steps"),
        cells=lambda s, k, state: [s, args.removed, k],
    )
    rows, data = _inputs(
        ("n", "n", args.n),
        ("strong convexity m", "strong_convexity", m),
        ("step size eta", "step_size", eta),
        ("sigma", "sigma", args.sigma),
        ("gradient clip M", "gradient_clip", args.gradient_clip),
        ("delta", "delta", delta),
        ("conversion", "conversion", args.conversion),
    )
    if args.target_epsilon is not None:
        rows.append(("target epsilon", args.target_epsilon))
    data["target_epsilon"] = args.target_epsilon
    data["requests"] = [dict(zip(header, r)) for r in table]
    return Output(
        "Langevin unlearning (Chien et al. 2024): Renyi recursion",
        rows,
        data,
        tables=[
            ("per request (weak triangle inequality across requests)", header, table)
        ],
    )


def _cmd_wsgd(args) -> Output:
    from dpunlearn.accounting import currencies as cur

    m, eta, delta, kw = _recursion_inputs(args)
    b = args.batch_size if args.batch_size is not None else args.n
    cfg = cur.WassersteinConfig(
        batch_size=b, projection_radius=args.projection_radius, bound=args.bound, **kw
    )
    _need_k(args, "epochs")
    zb = cfg.step_radius(args.removed)
    header, table = _request_table(
        args,
        cfg,
        delta,
        unit="epochs",
        init=cur.wsgd_init,
        min_k=cur.wsgd_min_epochs,
        update=lambda state, k: cur.wsgd_update(
            state, cfg, removed=args.removed, epochs=k
        ),
        epsilon=cur.wsgd_epsilon,
        columns=("request", "epochs", "Z before", "Z after"),
        cells=lambda s, k, state: [
            s,
            k,
            state.pre_radius,
            cur.wsgd_radius(state, cfg),
        ],
    )
    rows, data = _inputs(
        ("n", "n", args.n),
        ("batch size b", "batch_size", b),
        ("strong convexity m", "strong_convexity", m),
        ("step size eta", "step_size", eta),
        ("contraction c", "contraction", cfg.contraction),
        ("Z_B (per request)", "z_b", zb),
        ("sigma", "sigma", args.sigma),
        ("delta", "delta", delta),
        ("bound", "bound", args.bound),
    )
    data["target_epsilon"] = args.target_epsilon
    data["requests"] = [dict(zip(header, r)) for r in table]
    if args.target_epsilon is not None and args.epochs is not None:
        mx = cur.wsgd_max_requests(
            cfg,
            removed=args.removed,
            epochs=args.epochs,
            target_epsilon=args.target_epsilon,
            delta=delta,
        )
        rows.append(("max requests at these epochs", mx))
        data["max_requests"] = mx
    return Output(
        "Noisy-SGD unlearning (Chien et al. 2024): W-infinity recursion",
        rows,
        data,
        tables=[("per request: Z <- c^(Kn/b) Z + Z_B", header, table)],
    )


def _cmd_sekhari(args) -> Output:
    from dpunlearn.accounting import currencies as cur

    kw = _pick(args, "hessian_lipschitz", "lipschitz", "strong_convexity", "n")
    rows, data = _inputs(
        ("n", "n", args.n),
        ("epsilon", "epsilon", args.epsilon),
        ("delta", "delta", args.delta),
    )
    if args.capacity is not None:
        g = cur.sekhari_gamma(capacity=args.capacity, tight=args.tight, **kw)
        rows += [("capacity m", args.capacity), ("gamma", g)]
        data.update(capacity=args.capacity, gamma=g)
        methods = (
            ["classic", "zcdp", "analytic"]
            if args.epsilon <= 1
            else ["zcdp", "analytic"]
        )
        for meth in methods:
            s = cur.sekhari_sigma(
                args.epsilon,
                args.delta,
                capacity=args.capacity,
                method=meth,
                tight=args.tight,
                **kw,
            )
            rows.append((f"sigma ({meth})", s))
            data[f"sigma_{meth}"] = s
    if args.sigma is not None:
        mx = cur.sekhari_max_deletions(
            args.sigma, args.epsilon, args.delta, method=args.method, **kw
        )
        rows.append((f"max deletions at sigma={args.sigma:g} ({args.method})", mx))
        data["max_deletions"] = mx
    if args.dim is not None or args.excess_risk is not None:
        _need(args, "dim", "excess_risk")
        cap = cur.sekhari_capacity(
            dim=args.dim,
            epsilon=args.epsilon,
            delta=args.delta,
            excess_risk=args.excess_risk,
            **kw,
        )
        rows.append((f"deletion capacity (excess risk {args.excess_risk:g})", cap))
        data["deletion_capacity"] = cap
    if len(rows) == 3:
        raise CLIError("give --capacity M, --sigma S, or --dim D --excess-risk A")
    return Output(
        "Sekhari et al. 2021: Newton step + Gaussian output noise", rows, data
    )


def _cmd_d2d(args) -> Output:
    from dpunlearn.accounting import currencies as cur

    kw = _pick(args, "lipschitz", "strong_convexity", "smoothness", "n")
    gamma = cur.d2d_contraction(args.strong_convexity, args.smoothness)
    rows, data = _inputs(
        ("n", "n", args.n),
        ("contraction gamma", "contraction", gamma),
        ("epsilon", "epsilon", args.epsilon),
        ("delta", "delta", args.delta),
    )
    if args.iterations is not None:
        sens = cur.d2d_sensitivity(iterations=args.iterations, **kw)
        rows += [("iterations I", args.iterations), ("sensitivity Delta", sens)]
        data.update(iterations=args.iterations, sensitivity=sens)
        for v in ("paper", "tight", "analytic"):
            s = cur.d2d_sigma(
                args.epsilon, args.delta, iterations=args.iterations, variant=v, **kw
            )
            rows.append((f"sigma ({v})", s))
            data[f"sigma_{v}"] = s
        if args.diameter is not None:
            t = cur.d2d_initial_iterations(
                iterations=args.iterations, diameter=args.diameter, **kw
            )
            rows.append(("initial training iterations T", t))
            data["initial_iterations"] = t
    if args.sigma is not None:
        i = cur.d2d_min_iterations(
            args.sigma, args.epsilon, args.delta, variant=args.variant, **kw
        )
        rows.append((f"min iterations at sigma={args.sigma:g} ({args.variant})", i))
        data["min_iterations"] = i
    if args.dim is not None:
        geometry = _pick(args, "dim", "strong_convexity", "smoothness")
        imin = cur.d2d_strong_min_iterations(args.epsilon, args.delta, **geometry)
        i1 = cur.d2d_strong_iterations(1, iterations=imin, delta=args.delta, **geometry)
        s1 = cur.d2d_strong_sigma(args.epsilon, args.delta, iterations=i1, **kw)
        rows += [
            ("strong: min iterations I", imin),
            ("strong: I_1", i1),
            ("strong: sigma_1", s1),
        ]
        data["strong"] = {"min_iterations": imin, "iterations_1": i1, "sigma_1": s1}
    if len(rows) == 4:
        raise CLIError("give --iterations I, --sigma S, or --dim D")
    return Output(
        "Descent-to-Delete (Neel et al. 2021): per-release noise (nothing accumulates)",
        rows,
        data,
    )


def _cmd_extractor(args) -> Output:
    from dpunlearn.accounting import currencies as cur

    kw = _pick(
        args, "extractor_epsilon", "extractor_delta", "head_epsilon", "head_delta"
    )
    rows: list[tuple[str, Any]] = [(k.replace("_", " "), v) for k, v in kw.items()]
    data: dict[str, Any] = dict(kw)
    if args.removals is not None:
        e, d = cur.extractor_head_epsilon(args.removals, **kw)
        rows += [
            ("removals k", args.removals),
            ("total epsilon", e),
            ("total delta", d),
        ]
        data.update(removals=args.removals, epsilon=e, delta=d)
    if args.target_epsilon is not None or args.target_delta is not None:
        _need(args, "target_epsilon", "target_delta")
        mx = cur.extractor_max_removals(
            target_epsilon=args.target_epsilon, target_delta=args.target_delta, **kw
        )
        rows.append(("max removals within target", mx))
        data["max_removals"] = mx
    if len(rows) == 4:
        raise CLIError("give --removals K or --target-epsilon E --target-delta D")
    return Output(
        "DP feature extractor + certified head (group privacy + composition)",
        rows,
        data,
    )


def _cmd_ledger(args) -> Output:
    from dpunlearn.accounting import ledger as L

    key = _ledger_key(args)
    notes = []
    try:
        if args.repair:
            t = L.repair_torn_tail(args.path)
            if t is not None:
                notes.append(
                    f"repaired: {t.length} torn bytes at offset {t.offset} moved "
                    f"to {args.path}.torn-{t.offset}"
                )
        loaded = L.load_ledger(
            args.path,
            allow_torn=args.allow_torn,
            key=key,
            expect_head=args.expect_head,
        )
    except FileNotFoundError:
        raise CLIError(f"ledger not found: {args.path}", 1) from None
    except IsADirectoryError:
        raise CLIError(f"ledger path is a directory: {args.path}", 1) from None
    except (L.LedgerError, TimeoutError) as e:
        raise CLIError(str(e), 1) from None
    setup, summary, got = loaded
    torn, integrity = got.torn_tail, got.integrity
    d = L.summary_to_dict(summary)
    d["path"] = args.path
    d["target"] = {"epsilon": setup.target_epsilon, "delta": setup.target_delta}
    d["dp_budget"] = setup.dp_epsilon
    d["torn_tail"] = (
        None if torn is None else {"offset": torn.offset, "length": torn.length}
    )
    d["integrity"] = {
        **integrity._asdict(),
        "pin": integrity.pin,
        "pinned_head_found": args.expect_head is not None,
    }
    u = summary.unlearning
    rows = [
        ("currency", summary.currency),
        ("entries", summary.num_entries),
        ("releases", summary.num_releases),
        ("retrains", summary.num_retrains),
        ("requests (total)", summary.num_requests),
        ("requests since retrain", summary.requests_since_retrain),
        ("points removed (total)", summary.total_removed),
        ("integrity", _integrity(integrity, args.expect_head is not None)),
        ("head (for --expect-head)", integrity.pin),
    ]
    if summary.dp_method == "exact-gaussian":
        sigma_eff = summary.dp_gaussian_precision**-0.5
        rows.append(
            (
                "D accountant",
                f"exact-gaussian (all releases Gaussian, sigma_eff={_fmt(sigma_eff)})",
            )
        )
    elif summary.dp_method == "rdp" and summary.dp_non_gaussian_releases:
        rows.append(
            (
                "D accountant",
                (
                    f"rdp ({summary.dp_non_gaussian_releases} release(s) with a "
                    "non-Gaussian mechanism)"
                ),
            )
        )
    else:
        rows.append(("D accountant", summary.dp_method))
    table = [
        (
            "U: unlearning certificate (resets on retrain)",
            u.certified,
            u.epsilon,
            u.delta,
            f"{_fmt(u.used)} / {_fmt(u.budget)} {u.unit}",
            u.remaining,
        ),
        (
            "D: DP of all releases (never resets)",
            setup.dp_epsilon is None or summary.dp_epsilon <= setup.dp_epsilon,
            summary.dp_epsilon,
            summary.dp_delta,
            f"{_fmt(summary.dp_epsilon)} / {_fmt(setup.dp_epsilon)} epsilon",
            (setup.dp_epsilon - summary.dp_epsilon)
            if setup.dp_epsilon is not None
            else None,
        ),
    ]
    if summary.dp_method == "exact-gaussian":
        table.append(
            (
                "D via RDP (looser bound, not used)",
                setup.dp_epsilon is None or summary.dp_epsilon_rdp <= setup.dp_epsilon,
                summary.dp_epsilon_rdp,
                summary.dp_delta,
                "-",
                None,
            )
        )
    if args.pld:
        n = 1 + summary.num_entries
        pld = L.dp_epsilon_pld(got.entries[:n], summary.dp_delta)
        table.append(
            (
                "D via PLD (dp_accounting, reporting only)",
                setup.dp_epsilon is None or pld <= setup.dp_epsilon,
                pld,
                summary.dp_delta,
                "-",
                None,
            )
        )
        d["dp"]["epsilon_pld"] = pld if math.isfinite(pld) else "inf"
    if summary.non_private_entries:
        notes.append(
            "D is infinite: entries "
            + ", ".join(map(str, summary.non_private_entries))
            + " declare no DP mechanism."
        )
    code = 0
    if torn is not None:
        notes.append(
            f"warning: torn last line at byte offset {torn.offset} "
            f"({torn.length} bytes) not replayed; --repair sets it aside."
        )
    return Output(
        f"Ledger {args.path}",
        rows,
        d,
        tables=[
            (
                "",
                ("ledger", "ok", "epsilon", "delta", "used / budget", "remaining"),
                table,
            )
        ],
        code=code,
        notes=notes,
    )


_MAX_KEY_FILE = 1 << 16


def _ledger_key(args) -> bytes | None:
    """The MAC key of ``--key-file`` (one trailing newline dropped) or
    ``--key-env``; bad input here exits 2, before the ledger is read."""
    if args.key_env is not None:
        value = os.environ.get(args.key_env)
        if not value:
            raise CLIError(f"environment variable {args.key_env} is not set")
        return value.encode("utf-8")
    if args.key_file is None:
        return None
    try:
        with open(args.key_file, "rb") as f:
            key = f.read(_MAX_KEY_FILE + 1)  # bounded: /dev/zero is not a key
    except OSError as e:
        raise CLIError(f"cannot read key file {args.key_file}: {e.strerror}") from None
    if len(key) > _MAX_KEY_FILE:
        raise CLIError(f"key file {args.key_file} is over {_MAX_KEY_FILE} bytes")
    return key.removesuffix(b"\n").removesuffix(b"\r")


def _integrity(i, pinned: bool) -> str:
    if i.chain == "none":
        text = "unchained (written before hash chaining: edits are not detected)"
    elif i.unchained_entries:
        text = (
            f"sha256 chain from entry {i.unchained_entries + 1} (it covers the "
            f"{i.unchained_entries} earlier entries)"
        )
    else:
        text = "sha256 chain"
    text += {
        "verified": ", HMAC-SHA256 verified",
        "unverified": ", HMAC-SHA256 not verified (no key given)",
        "none": "",
    }[i.mac]
    return text + (", pinned head found" if pinned else "")


# ---------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------


def _add_budget(subparsers: argparse._SubParsersAction) -> None:
    bp = subparsers.add_parser(
        "budget",
        help="privacy budgets: mechanisms, unlearning currencies, ledgers",
        description="Privacy-budget calculators for mechanisms, unlearning currencies "
        "and ledger files.",
    )
    sub = bp.add_subparsers(dest="budget_command", metavar="WHAT")
    sub.required = True

    p = sub.add_parser(
        "gaussian",
        help="exact Gaussian mechanism: give two of sigma/epsilon/delta, get the third",
    )
    p.add_argument("--sigma", type=float)
    p.add_argument("--epsilon", type=float)
    p.add_argument("--delta", type=float)
    p.add_argument("--sensitivity", type=float, default=1.0)
    _common(p)
    p.set_defaults(func=_cmd_gaussian)

    p = sub.add_parser(
        "rdp", help="compose Gaussian / subsampled-Gaussian releases in RDP"
    )
    p.add_argument("--gaussian", action="append", metavar="SIGMA[:COUNT]")
    p.add_argument("--subsampled", action="append", metavar="Q:SIGMA:COUNT")
    p.add_argument("--delta", type=float, required=True)
    p.add_argument("--method", choices=("improved", "classic"), default="improved")
    p.add_argument("--pld", action="store_true", help="also report PLD (dp_accounting)")
    _common(p)
    p.set_defaults(func=_cmd_rdp)

    p = sub.add_parser(
        "subsampled-gaussian", help="DP-SGD: Poisson-subsampled Gaussian"
    )
    p.add_argument("--q", type=float, required=True, help="sampling rate")
    p.add_argument("--sigma", type=float, required=True, help="noise multiplier")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--delta", type=float, required=True)
    p.add_argument("--method", choices=("improved", "classic"), default="improved")
    p.add_argument("--pld", action="store_true")
    _common(p)
    p.set_defaults(func=_cmd_subsampled)

    p = sub.add_parser(
        "certified-removal",
        help="Guo et al. certified removal: the shadow retrain schedule (default) "
        "or Algorithm 2's residual budget (--rule paper, uncertified)",
    )
    _add_required(p, "--epsilon", "--delta")
    p.add_argument(
        "--rule",
        choices=("schedule", "paper"),
        default="schedule",
        help="schedule: shadow models decide when to retrain (certified); paper: "
        "retrain when the residual sum passes the budget (decides on the secret)",
    )
    p.add_argument("--shadows", type=int, help="shadow models M (default: the fewest for delta)")
    p.add_argument("--marked", help="marked shadows after each request, comma-separated")
    p.add_argument("--sigma", type=float, help="std of the loss perturbation (--rule paper)")
    p.add_argument("--bounds", help="per-removal residual bounds, comma-separated (--rule paper)")
    p.add_argument("--bounds-file", help="file of per-removal residual bounds (--rule paper)")
    _common(p)
    p.set_defaults(func=_cmd_cr)

    for name, fn, unit, hlp in (
        ("langevin", _cmd_langevin, "steps", "Langevin unlearning (Renyi recursion)"),
        ("wsgd", _cmd_wsgd, "epochs", "noisy-SGD unlearning (W-infinity recursion)"),
    ):
        p = sub.add_parser(name, help=hlp)
        p.add_argument("--n", type=int, required=True, help="dataset size")
        p.add_argument(
            "--lam",
            type=float,
            help="L2 strength; m = lam*n, "
            "eta = 1/(loss_smoothness + lam*n) as in the authors' code",
        )
        p.add_argument(
            "--loss-smoothness",
            type=float,
            default=0.25,
            help="smoothness of the loss (1/4: logistic, |x|<=1)",
        )
        p.add_argument("--strong-convexity", type=float, help="m (with --step-size)")
        p.add_argument("--step-size", type=float, help="eta (with --strong-convexity)")
        p.add_argument("--sigma", type=float, required=True)
        p.add_argument("--gradient-clip", type=float, default=1.0, help="M")
        p.add_argument("--delta", type=float, help="default 1/n")
        p.add_argument("--removed", type=int, default=1, help="points per request")
        p.add_argument(f"--{unit}", type=int, help=f"{unit} per request")
        p.add_argument(
            "--requests",
            type=int,
            default=1,
            help=f"identical requests, one table row each (1..{_MAX_REQUESTS})",
        )
        p.add_argument("--target-epsilon", type=float)
        p.add_argument(
            "--conversion", choices=("classic", "improved"), default="classic"
        )
        p.add_argument("--max-order", type=float, default=1e4)
        if name == "wsgd":
            p.add_argument("--batch-size", type=int, help="default n (full batch)")
            p.add_argument("--projection-radius", type=float)
            p.add_argument("--bound", choices=("loose", "tight"), default="loose")
        _common(p)
        p.set_defaults(func=fn)

    p = sub.add_parser("sekhari", help="Sekhari et al. noise / deletion capacity")
    helps = {"strong_convexity": "lambda", "lipschitz": "L", "hessian_lipschitz": "M"}
    flags = ("--n", "--strong-convexity", "--lipschitz", "--hessian-lipschitz")
    _add_required(p, *flags, "--epsilon", "--delta", **helps)
    p.add_argument("--capacity", type=int, help="m: deletions to certify")
    p.add_argument("--tight", action="store_true", help="gamma_tight")
    p.add_argument("--sigma", type=float, help="report the max deletions at this sigma")
    p.add_argument(
        "--method", choices=("classic", "zcdp", "analytic"), default="classic"
    )
    p.add_argument("--dim", type=int)
    p.add_argument("--excess-risk", type=float)
    _common(p)
    p.set_defaults(func=_cmd_sekhari)

    p = sub.add_parser("d2d", help="Descent-to-Delete per-release noise")
    helps = {"strong_convexity": "m", "smoothness": "beta", "lipschitz": "L"}
    flags = ("--n", "--strong-convexity", "--smoothness", "--lipschitz")
    _add_required(p, *flags, "--epsilon", "--delta", **helps)
    p.add_argument("--iterations", type=int, help="I: GD steps per update")
    p.add_argument("--diameter", type=float, help="D: for the initial iterations T")
    p.add_argument("--sigma", type=float, help="report the min I at this sigma")
    p.add_argument("--variant", choices=("paper", "tight", "analytic"), default="paper")
    p.add_argument("--dim", type=int, help="d: also report the strong variant")
    _common(p)
    p.set_defaults(func=_cmd_d2d)

    p = sub.add_parser("dp-extractor", help="DP feature extractor + certified head")
    _add_required(
        p, "--extractor-epsilon", "--extractor-delta", "--head-epsilon", "--head-delta"
    )
    p.add_argument("--removals", type=int)
    p.add_argument("--target-epsilon", type=float)
    p.add_argument("--target-delta", type=float)
    _common(p)
    p.set_defaults(func=_cmd_extractor)

    p = sub.add_parser("ledger", help="summarise / replay a ledger file")
    p.add_argument("path")
    p.add_argument(
        "--allow-torn",
        action="store_true",
        help="summarise the complete entries of a file with a torn last line",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="move a torn last line to PATH.torn-OFFSET, then summarise",
    )
    p.add_argument(
        "--pld",
        action="store_true",
        help="also report the D ledger through dp_accounting's PLD",
    )
    p.add_argument(
        "--expect-head",
        metavar="N:HEX",
        help="fail (exit 1) unless the ledger still holds this head after entry "
        "N, as printed earlier: detects deleted last entries and rewrites",
    )
    keys = p.add_mutually_exclusive_group()
    keys.add_argument(
        "--key-file",
        metavar="PATH",
        help="verify every line's HMAC-SHA256 with the key in PATH (one "
        "trailing newline ignored)",
    )
    keys.add_argument(
        "--key-env",
        metavar="NAME",
        help="as --key-file, with the key in environment variable NAME",
    )
    _common(p)
    p.set_defaults(func=_cmd_ledger)


register_command("budget", _add_budget)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, prog-prefixed, exit 2 (argparse style)
        self.exit(2, f"{PROG}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered command."""
    parser = _Parser(prog=PROG, description="Certified and DP machine unlearning.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dpunlearn`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        out = args.func(args)
    except CLIError as e:
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return e.code
    except (ValueError, OverflowError, ZeroDivisionError) as e:
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:
        print(
            f"{PROG}: error: {e.strerror or e}: {getattr(e, 'filename', '')}",
            file=sys.stderr,
        )
        return 1
    if isinstance(out, int):
        return out
    text = (
        json.dumps(_jsonable(out.data), indent=2, sort_keys=True)
        if getattr(args, "json", False)
        else _render(out)
    )
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`: not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:  # pragma: no cover
            pass
    return out.code


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
