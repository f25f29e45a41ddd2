"""Golden ``--help`` text of every ``dpunlearn`` command and subcommand.

Each ``tests/data/cli_help/<words>.txt`` is the ``--help`` output of
``dpunlearn <words>`` at 80 columns, byte for byte (``dpunlearn.txt`` is the
top level, ``dpunlearn_budget_rdp.txt`` is ``dpunlearn budget rdp``). A change
to a parser shows up here as a diff; when it is meant, regenerate the files and
review the diff::

    DPUNLEARN_REGEN_CLI_HELP=1 python -m pytest tests/test_cli_help.py

argparse's wrapping differs between Python versions, so the comparison runs
only under the version recorded in ``python.txt`` beside the files.
"""

import argparse
import os
import sys
from pathlib import Path

import pytest

from dpunlearn import cli

GOLDEN = Path(__file__).parent / "data" / "cli_help"
REGEN = os.environ.get("DPUNLEARN_REGEN_CLI_HELP") == "1"
PYTHON = "{}.{}".format(*sys.version_info[:2])


def commands(parser: argparse.ArgumentParser, words=()) -> list[tuple[str, ...]]:
    """Every command path below ``parser``, in ``--help`` order, itself first."""
    found = [tuple(words)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += commands(child, (*words, name))
    return found


def golden_name(words: tuple[str, ...]) -> str:
    return "_".join(("dpunlearn", *words)) + ".txt"


def help_text(words, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    with pytest.raises(SystemExit) as ei:
        cli.main([*words, "--help"])
    out, err = capsys.readouterr()
    assert ei.value.code == 0 and err == ""
    return out


PATHS = commands(cli.build_parser())


@pytest.fixture(scope="module", autouse=True)
def regenerate():
    if REGEN:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for f in GOLDEN.glob("*.txt"):
            f.unlink()
        (GOLDEN / "python.txt").write_text(PYTHON + "\n")
    yield


def test_every_command_has_golden_help():
    if REGEN:
        pytest.skip("regenerating")
    names = {golden_name(w) for w in PATHS} | {"python.txt"}
    assert names == {f.name for f in GOLDEN.glob("*.txt")}


@pytest.mark.parametrize("words", PATHS, ids=lambda w: " ".join(w) or "top")
def test_help_is_byte_identical(words, capsys, monkeypatch):
    path = GOLDEN / golden_name(words)
    text = help_text(words, capsys, monkeypatch)
    if REGEN:
        path.write_bytes(text.encode("utf-8"))
        return
    recorded = (GOLDEN / "python.txt").read_text().strip()
    if recorded != PYTHON:
        pytest.skip(f"golden help recorded under Python {recorded}, not {PYTHON}")
    assert text.encode("utf-8") == path.read_bytes()
