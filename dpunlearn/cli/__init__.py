"""The ``dpunlearn`` command line.

``dpunlearn budget ...`` answers privacy-budget questions: single mechanisms
(Gaussian ε/δ/σ, RDP composition, subsampled Gaussian), the unlearning
currencies of :mod:`dpunlearn.accounting.currencies`, and ledger files of
:mod:`dpunlearn.accounting.ledger`. Every command prints a readable table, or
JSON with ``--json``. Impossible input prints one line
``dpunlearn: error: ...`` on stderr and exits non-zero (2 for bad arguments,
1 for a missing/corrupt/torn ledger), never a traceback.

Layout: this module holds the command registry, :func:`build_parser` and
:func:`main`; :mod:`dpunlearn.cli._output` what a command returns
(:class:`Output`, :class:`CLIError`) and how it is printed;
:mod:`dpunlearn.cli._args` the argument helpers every subcommand shares;
:mod:`dpunlearn.cli.budget` one module per ``budget`` subcommand family, each
with its parser beside its handlers.

Other top-level commands register themselves with :func:`register_command`::

    from dpunlearn import cli

    def add_mycmd(subparsers):
        p = subparsers.add_parser("mycmd", help="...")
        p.set_defaults(func=lambda args: ...)   # returns an Output

    cli.register_command("mycmd", add_mycmd)

A command's ``func(args)`` returns an :class:`Output` (or an int exit code if
it prints by itself).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from dpunlearn.cli import bench, budget
from dpunlearn.cli._output import CLIError, Output, _jsonable, _render

__all__ = [
    "COMMANDS",
    "CLIError",
    "Output",
    "build_parser",
    "main",
    "register_command",
]

PROG = "dpunlearn"


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


# A command package (``dpunlearn/cli/<name>/`` with ``add_parser(subparsers)``,
# like ``budget``, or a module, like ``bench``) registers here.
register_command("budget", budget.add_parser)
register_command("bench", bench.add_parser)


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
