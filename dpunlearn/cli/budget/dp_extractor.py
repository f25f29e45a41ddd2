"""``dpunlearn budget dp-extractor``: a DP feature extractor with a certified
head (group privacy + composition): the total budget after k removals, or the
most removals within a target."""

from __future__ import annotations

import argparse
from typing import Any

from dpunlearn.cli._args import _add_required, _common, _need, _pick
from dpunlearn.cli._output import CLIError, Output


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Adds ``dp-extractor`` to the ``budget`` subparsers ``sub``."""
    p = sub.add_parser("dp-extractor", help="DP feature extractor + certified head")
    _add_required(
        p, "--extractor-epsilon", "--extractor-delta", "--head-epsilon", "--head-delta"
    )
    p.add_argument("--removals", type=int)
    p.add_argument("--target-epsilon", type=float)
    p.add_argument("--target-delta", type=float)
    _common(p)
    p.set_defaults(func=_cmd_extractor)


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
