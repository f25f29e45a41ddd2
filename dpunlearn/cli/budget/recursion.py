"""``dpunlearn budget langevin`` and ``budget wsgd``: the recursive currencies
of Chien et al. (2024), Langevin unlearning (Renyi recursion) and noisy-SGD
unlearning (W-infinity recursion).

Both take the same constants and print one table row per identical request
(:func:`_request_table`); their parsers differ only in the unit of work
(``--steps`` / ``--epochs``) and wsgd's batch and bound options.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import Any

from dpunlearn.cli._args import _check_count, _common, _inputs, _need, _pick
from dpunlearn.cli._output import CLIError, Output

# The most rows a per-request table prints.
_MAX_REQUESTS = 10_000


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Adds ``langevin`` and ``wsgd`` to the ``budget`` subparsers ``sub``."""
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
