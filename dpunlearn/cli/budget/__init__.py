"""``dpunlearn budget ...``: privacy-budget calculators.

One module per subcommand family, each holding ``add_parser(subparsers)`` (its
argparse definition) beside its handler(s):

=============================  ==============================================
module                         subcommands
=============================  ==============================================
:mod:`.gaussian`               ``gaussian``
:mod:`.rdp`                    ``rdp``, ``subsampled-gaussian``
:mod:`.certified_removal`      ``certified-removal``
:mod:`.recursion`              ``langevin``, ``wsgd``
:mod:`.sekhari`                ``sekhari``
:mod:`.d2d`                    ``d2d``
:mod:`.dp_extractor`           ``dp-extractor``
:mod:`.ledger`                 ``ledger``
=============================  ==============================================

:func:`add_parser` builds the ``budget`` parser; :mod:`dpunlearn.cli`
registers it.
"""

from __future__ import annotations

import argparse

from dpunlearn.cli.budget import (
    certified_removal,
    d2d,
    dp_extractor,
    gaussian,
    ledger,
    rdp,
    recursion,
    sekhari,
)

#: The families in the order ``dpunlearn budget --help`` lists their commands.
FAMILIES = (
    gaussian,
    rdp,
    certified_removal,
    recursion,
    sekhari,
    d2d,
    dp_extractor,
    ledger,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``budget`` and every family's subcommands to ``subparsers``."""
    bp = subparsers.add_parser(
        "budget",
        help="privacy budgets: mechanisms, unlearning currencies, ledgers",
        description="Privacy-budget calculators for mechanisms, unlearning currencies "
        "and ledger files.",
    )
    sub = bp.add_subparsers(dest="budget_command", metavar="WHAT")
    sub.required = True
    for family in FAMILIES:
        family.add_parser(sub)
