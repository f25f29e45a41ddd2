"""What a ``dpunlearn`` command returns and how it is printed.

:class:`Output` is a command's result (title, key/value rows, tables, notes,
the ``--json`` payload, exit code); :func:`_render` turns it into the readable
table and :func:`_jsonable` into JSON-safe values (``inf`` as a string, NaN as
null); :func:`_fmt` formats one cell. :class:`CLIError` is an error printed as
one line ``dpunlearn: error: ...`` with its exit code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple


class CLIError(Exception):
    """An error reported as one line with the given exit code."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class Output(NamedTuple):
    """What a command returns: a title, key/value rows, optional tables, JSON.

    Attributes:
      title: First line of the readable output.
      rows: ``(label, value)`` pairs.
      tables: ``(caption, header, rows)`` triples printed after ``rows``.
      data: The ``--json`` payload.
      code: Exit code.
      notes: Lines printed at the end (warnings, explanations).
    """

    title: str
    rows: Sequence[tuple[str, Any]]
    data: dict
    tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]] = ()
    code: int = 0
    notes: Sequence[str] = ()


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == 0.0:
            return "0"
        if 1e-4 <= abs(v) < 1e7:
            return f"{v:.7g}"
        return f"{v:.6e}"
    if v is None:
        return "-"
    return str(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        return _jsonable(v.item())
    return v


def _render(out: Output) -> str:
    lines = [out.title]
    if out.rows:
        w = max(len(k) for k, _ in out.rows)
        lines += [f"  {k.ljust(w)}  {_fmt(v)}" for k, v in out.rows]
    for caption, header, rows in out.tables:
        lines.append("")
        if caption:
            lines.append(caption)
        cells = [list(header)] + [[_fmt(c) for c in r] for r in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        numeric = [
            all(isinstance(r[i], (int, float)) or r[i] is None for r in rows)
            for i in range(len(header))
        ]
        for j, r in enumerate(cells):
            lines.append(
                "  "
                + "  ".join(
                    c.rjust(widths[i]) if numeric[i] else c.ljust(widths[i])
                    for i, c in enumerate(r)
                ).rstrip()
            )
            if j == 0:
                lines.append("  " + "  ".join("-" * x for x in widths))
    for n in out.notes:
        lines.append(n)
    return "\n".join(lines)
