"""``dpunlearn budget gaussian``: the exact Gaussian mechanism (Balle & Wang
2018); given two of sigma, epsilon, delta it computes the third."""

from __future__ import annotations

import argparse
from typing import Any

from dpunlearn.cli._args import _common, _pick
from dpunlearn.cli._output import CLIError, Output


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Adds ``gaussian`` to the ``budget`` subparsers ``sub``."""
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
