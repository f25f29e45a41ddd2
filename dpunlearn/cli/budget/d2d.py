"""``dpunlearn budget d2d``: Descent-to-Delete (Neel et al. 2021) per-release
noise: sigma for I gradient steps, the fewest steps at a sigma, the strong
variant's schedule."""

from __future__ import annotations

import argparse

from dpunlearn.cli._args import _add_required, _common, _inputs, _pick
from dpunlearn.cli._output import CLIError, Output


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Adds ``d2d`` to the ``budget`` subparsers ``sub``."""
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
