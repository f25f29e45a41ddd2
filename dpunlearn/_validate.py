"""Input validation shared by every module.

Policy (see README, "Errors"): structure (shapes, dtypes) is always checked;
values are checked when they are concrete (Python numbers, NumPy arrays, or
JAX arrays outside a trace). Every error is a ``ValueError`` whose message
names the argument and the value that was expected, e.g.
``Expected lam=-1.0 > 0.``. Nothing here runs inside ``jit``.

A JAX array is checked where it lives: the reduction runs on its devices and
only a few scalars come back (:func:`first_violation`), so a large array is
never copied to the host, and an array sharded over several hosts (not fully
addressable from one process) can be checked at all.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dpunlearn import _sharding


def is_concrete(x: Any) -> bool:
    """True when ``x`` has a value now (it is not a tracer inside ``jit``/``vmap``)."""
    leaves = jax.tree.leaves(x)
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def _as_float(name: str, value: Any) -> float | None:
    if not is_concrete(value):
        return None
    arr = np.asarray(value)
    if arr.ndim != 0:
        raise ValueError(f"Expected {name} to be a scalar, got shape {arr.shape}.")
    v = float(arr)
    if math.isnan(v):
        raise ValueError(f"Expected {name} to be a number, got NaN.")
    return v


def positive(**kwargs: Any) -> None:
    """Raises unless every concrete keyword value is a finite number > 0."""
    for name, value in kwargs.items():
        v = _as_float(name, value)
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ValueError(f"Expected {name}={v} > 0 (finite).")


def non_negative(**kwargs: Any) -> None:
    """Raises unless every concrete keyword value is a finite number >= 0."""
    for name, value in kwargs.items():
        v = _as_float(name, value)
        if v is not None and not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"Expected {name}={v} >= 0 (finite).")


def open_interval(lo: float, hi: float, **kwargs: Any) -> None:
    """Raises unless every concrete keyword value lies in the open interval (lo, hi)."""
    for name, value in kwargs.items():
        v = _as_float(name, value)
        if v is not None and not (lo < v < hi):
            raise ValueError(f"Expected {name}={v} in the open interval ({lo}, {hi}).")


def positive_int(**kwargs: Any) -> None:
    """Raises unless every keyword value is a Python/NumPy integer >= 1."""
    for name, value in kwargs.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"Expected {name} to be an integer >= 1, got {value!r}.")
        if value < 1:
            raise ValueError(f"Expected {name}={value} >= 1.")


def on_device(x: Any) -> bool:
    """True when a concrete ``x`` should be checked where it lives.

    ``x`` is a JAX array and no trace is active: inside ``jit`` even operations
    on concrete arrays are staged (their results are tracers), so there the
    host path (NumPy on the concrete value) is used instead.
    """
    if not isinstance(x, jax.Array) or isinstance(x, jax.core.Tracer):
        return False
    return not isinstance(jnp.zeros((), jnp.int32) + 0, jax.core.Tracer)


@jax.jit
def _first_bad(bad: jax.Array, x: jax.Array):
    flat = jnp.reshape(bad, (-1,))
    i = jnp.argmax(flat)
    return _sharding.index(flat, i), i, _sharding.index(jnp.reshape(x, (-1,)), i)


def first_violation(bad: jax.Array, x: jax.Array) -> tuple[tuple[int, ...], Any] | None:
    """``(index, value)`` of the first true entry of ``bad`` (same shape as ``x``).

    Computed on the arrays' devices: three scalars come back to the host.
    Returns ``None`` when no entry is bad.
    """
    any_bad, i, value = _first_bad(bad, x)
    if not bool(any_bad):
        return None
    where = tuple(int(j) for j in np.unravel_index(int(i), np.shape(x)))
    return where, np.asarray(value).item()


def finite_array(name: str, x: Any) -> None:
    """Raises if a concrete array holds NaN or inf, naming the first bad entry."""
    if not is_concrete(x):
        return
    if on_device(x):
        if jnp.issubdtype(x.dtype, jnp.inexact):
            found = first_violation(~jnp.isfinite(x), x)
            if found is not None:
                where, value = found
                raise ValueError(
                    f"Expected {name} to be finite; found {value} at index {where}."
                )
        return
    arr = np.asarray(x)
    if arr.dtype.kind in "fc":
        bad = ~np.isfinite(arr)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"Expected {name} to be finite; found {arr[where]} at index {where}."
            )


def ndim(name: str, x: Any, expected: int | tuple[int, ...]) -> None:
    """Raises unless ``x.ndim`` is ``expected`` (or one of them)."""
    allowed = (expected,) if isinstance(expected, int) else expected
    if np.ndim(x) not in allowed:
        raise ValueError(
            f"Expected {name} to have ndim in {allowed}, got shape {np.shape(x)}."
        )


def array_in_range(
    name: str,
    x: Any,
    lo: float,
    hi: float,
    *,
    lo_closed: bool = False,
    hi_closed: bool = False,
) -> None:
    """Raises unless every entry of a concrete array (or scalar) lies in the range.

    The range is ``(lo, hi)`` with ends included per ``lo_closed``/``hi_closed``
    (``hi=math.inf`` with ``hi_closed=True`` admits ``inf``). NaN always fails.
    The message names the argument, the first bad entry and its index.
    """
    if not is_concrete(x):
        return
    arr = np.asarray(x, dtype=np.float64)
    ok = (arr >= lo if lo_closed else arr > lo) & (arr <= hi if hi_closed else arr < hi)
    if not ok.all():
        where = tuple(int(i) for i in np.argwhere(~ok)[0])
        left, right = ("[" if lo_closed else "("), ("]" if hi_closed else ")")
        at = f" at index {where}" if where else ""
        raise ValueError(
            f"Expected {name} in the interval {left}{lo}, {hi}{right}; "
            f"found {arr[where]}{at}."
        )


def array_non_negative_int(name: str, x: Any) -> None:
    """Raises unless a concrete array (or scalar) holds only integers >= 0."""
    if not is_concrete(x):
        return
    arr = np.asarray(x)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise ValueError(f"Expected {name} to hold integers >= 0, got dtype {arr.dtype}.")
    bad = ~(np.isfinite(arr) & (arr >= 0) & (arr == np.floor(arr)))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        at = f" at index {where}" if where else ""
        raise ValueError(f"Expected {name} to hold integers >= 0; found {arr[where]}{at}.")


def prng_key(name: str, key: Any) -> None:
    """Raises unless ``key`` is a ``jax.random`` key (typed, or legacy ``uint32[2]``).

    Traced keys pass (their dtype is checked, not their value).
    """
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return
    if dtype is not None and np.dtype(dtype) == np.uint32 and np.shape(key)[-1:] == (2,):
        return
    raise ValueError(
        f"Expected {name} to be a jax.random key (e.g. jax.random.key(0)), got "
        f"{type(key).__name__}"
        + (f" of dtype {dtype} and shape {np.shape(key)}" if dtype is not None else "")
        + "."
    )
