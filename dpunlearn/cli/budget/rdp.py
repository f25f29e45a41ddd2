"""``dpunlearn budget rdp`` and ``budget subsampled-gaussian``: RDP composition
of Gaussian and Poisson-subsampled Gaussian releases (Mironov 2017), converted
to (epsilon, delta), with the PLD of dp_accounting on request.

``subsampled-gaussian`` (DP-SGD) is ``rdp`` with one ``--subsampled`` release.
"""

from __future__ import annotations

import argparse
import math

from dpunlearn.cli._args import _check_count, _common
from dpunlearn.cli._output import CLIError, Output


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Adds ``rdp`` and ``subsampled-gaussian`` to the ``budget`` subparsers."""
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
