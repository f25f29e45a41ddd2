"""``dpunlearn budget sekhari``: Sekhari et al. (2021) Newton step + Gaussian
output noise: sigma for a deletion capacity, the deletions a sigma allows, the
capacity at an excess risk."""

from __future__ import annotations

import argparse

from dpunlearn.cli._args import _add_required, _common, _inputs, _need, _pick
from dpunlearn.cli._output import CLIError, Output


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Adds ``sekhari`` to the ``budget`` subparsers ``sub``."""
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
