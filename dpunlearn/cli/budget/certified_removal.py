"""``dpunlearn budget certified-removal``: Guo et al. (2020) certified removal.

The default ``--rule schedule`` sizes the shadow retrain schedule of
:mod:`dpunlearn.retrain_schedule` (certified); ``--rule paper`` gives
Algorithm 2's residual budget, labelled uncertified.
"""

from __future__ import annotations

import argparse

from dpunlearn.cli._args import _add_required, _common, _inputs, _parse_floats
from dpunlearn.cli._output import CLIError, Output


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Adds ``certified-removal`` to the ``budget`` subparsers ``sub``."""
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
