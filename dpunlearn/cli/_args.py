"""Argument helpers shared by the ``dpunlearn`` subcommands.

Building parsers: :func:`_common` (the ``--json`` flag every command takes),
:func:`_add_required` (required numeric options). Reading them: :func:`_need`
(options required together), :func:`_pick` (keyword forwarding),
:func:`_inputs` (the same inputs as readable rows and JSON keys),
:func:`_check_count` (an integer count in range) and :func:`_parse_floats`
(a comma/space separated list). Bad input raises :class:`CLIError` (exit 2).
"""

from __future__ import annotations

import argparse
from typing import Any

from dpunlearn.cli._output import CLIError


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


# Largest count the accountants take (exact in float64).
_MAX_COUNT = 2**53


def _check_count(value: int, what: str, *, maximum: int = _MAX_COUNT) -> int:
    """``value`` if 1 <= value <= maximum, else a one-line error naming ``what``."""
    if not 1 <= value <= maximum:
        cap = "2**53" if maximum == _MAX_COUNT else str(maximum)
        raise CLIError(f"expected {what} to be an integer in [1, {cap}], got {value}")
    return value


def _parse_floats(text: str, name: str) -> list[float]:
    try:
        return [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise CLIError(
            f"expected {name} to be numbers separated by commas or spaces, got {text!r}"
        ) from None
