"""Limits and checks shared by the accounting modules (private).

The accountants take counts (releases, requests, removed points, iterations)
that users may set to anything an ``int`` holds. Every count is checked here
against :data:`MAX_COUNT` = 2**53, the largest integer up to which float64
holds every integer: above it ``k * x`` and ``k + 1`` silently round, and
closed forms in k stop being exact. Results that must be positive numbers
(noise scales, sensitivities) are checked by :func:`positive_result`, so an
overflow or underflow raises a ``ValueError`` that names the argument to
change instead of returning ``inf``, ``0`` or NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Largest count accepted anywhere in :mod:`dpunlearn.accounting` (2**53).
MAX_COUNT = 2**53

#: Smallest positive normal float64; below it a result has lost precision.
TINY = float(np.finfo(np.float64).tiny)


def count(name: str, value: Any, *, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    """Returns ``int(value)`` if it is an integer in ``[minimum, maximum]``.

    Python and NumPy integers are accepted; bools, floats and anything else
    are refused, as are values outside the range (the message names the
    argument, the value and the range).
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"Expected {name} to be an integer in [{minimum}, {maximum}], got {value!r}."
        )
    v = int(value)
    if not minimum <= v <= maximum:
        raise ValueError(
            f"Expected {name} to be an integer in [{minimum}, {maximum}] "
            f"(2**53 is the largest count float64 holds exactly), got {v}."
        )
    return v


def positive_result(value: float, what: str, hint: str) -> float:
    """Returns ``value`` if it is a finite positive normal float, else raises.

    ``what`` names the quantity (``"sigma"``), ``hint`` says which argument
    drove it out of float64's range and what to do. Subnormal results are
    refused too: they carry only a few significant bits, so a closed form
    rounded there could undershoot.
    """
    if math.isnan(value):
        raise ValueError(f"The {what} is NaN: {hint}")
    if not (math.isfinite(value) and value >= TINY):
        where = "overflows" if value > 1.0 else "underflows"
        raise ValueError(f"The {what} {where} float64 ({value!r}): {hint}")
    return float(value)
