"""Helpers shared by the experiment scripts (not part of the library).

Only experiment scripts import this module. It may change JAX's global
configuration (``--x64``); the library never does.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

# Make ``import dpunlearn`` work when a script is run from a checkout without
# ``pip install -e .`` (python experiments/<script>.py).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def parse_floats(text: str | Sequence[float], name: str) -> list[float]:
    """Parses ``"1e-3,1e-2"`` into floats; raises ``ValueError`` naming ``name``."""
    if not isinstance(text, str):
        return [float(v) for v in text]
    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(
            f"Expected {name} to be comma-separated numbers, got {text!r}."
        ) from None
    if not vals:
        raise ValueError(f"Expected {name} to list at least one number, got {text!r}.")
    return vals


def parse_ints(text: str, name: str) -> list[int]:
    """Parses ``"3,8"`` into ints; raises ``ValueError`` naming ``name``."""
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(
            f"Expected {name} to be comma-separated integers, got {text!r}."
        ) from None


@contextlib.contextmanager
def x64_mode(enabled: bool) -> Iterator[None]:
    """Turns on float64 in JAX for the duration (``jax.config``), then restores it.

    Scripts call this first thing in ``main``, before any JAX array exists.
    Restoring the old value keeps in-process callers (tests) unaffected.
    """
    import jax

    old = bool(jax.config.jax_enable_x64)
    if enabled and not old:
        jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        if enabled and not old:
            jax.config.update("jax_enable_x64", False)


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[dict[str, Any]]:
    """Limits OpenBLAS to one thread for the duration, then restores it.

    jaxlib's CPU Cholesky, triangular solves and symmetric eigensolver call
    LAPACK through SciPy, i.e. OpenBLAS, whose worker threads busy-wait. On a
    2-core machine where other processes hold a core, that busy-waiting turned
    a 0.2 s float64 training (n = 800, d = 784) into 5-13 s of CPU time, varying
    from call to call (measured with this repository's experiments). One BLAS
    thread loses nothing measurable here: the LAPACK calls are ``d = 784``
    factorisations, and XLA's own matrix products keep their thread pool.

    Uses ``threadpoolctl`` (a scikit-learn dependency) when installed; else
    sets ``OPENBLAS_NUM_THREADS=1``, which only helps if OpenBLAS is not loaded
    yet. Yields what was done, for ``config.json``.
    """
    try:
        import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS first)
        from threadpoolctl import threadpool_limits
    except ImportError:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        yield {"blas_threads": os.environ["OPENBLAS_NUM_THREADS"], "via": "environment"}
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield {"blas_threads": 1, "via": "threadpoolctl"}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), for the figures a benchmark prints."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    """Versions and the JAX backend, for ``config.json``."""
    import jax
    import jaxlib

    import dpunlearn

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "dpunlearn": getattr(dpunlearn, "__version__", "unknown"),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_model(),
    }


def jsonable(obj: Any) -> Any:
    """Converts NumPy/JAX scalars and arrays to JSON types; non-finite -> None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):  # np / jax arrays
        return jsonable(np.asarray(obj).tolist())
    return obj


def write_json(path: str, obj: Any) -> str:
    """Writes ``obj`` as indented, strict JSON (NaN/inf become ``null``)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(jsonable(obj), f, indent=1, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)
    return path


class Stopwatch:
    """Wall-clock timer; ``lap()`` returns seconds since the last lap/start."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        dt, self.last = now - self.last, now
        return dt

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def timed(fn, *args, **kwargs):
    """Runs ``fn`` and blocks on its JAX outputs; returns ``(out, seconds)``."""
    import jax

    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - t0


def format_table(
    rows: Sequence[Sequence[Any]],
    header: Sequence[str],
    *,
    left: Sequence[int] = (),
    title: str | None = None,
) -> str:
    """A plain-text table: a title line, the header, a rule, then the rows.

    Columns are right-aligned except those listed in ``left`` (labels). The
    rule under the header separates it from the rows; with ``title`` the table
    is a block of its own, so two tables printed one after the other (or a
    table after progress lines) never read as one.
    """
    cells = [[str(h) for h in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def fmt(r):
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths))
        ).rstrip()

    lines = [] if title is None else [title, "=" * max(len(title), 1)]
    for j, r in enumerate(cells):
        lines.append(fmt(r))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def log(*parts: Any) -> None:
    """``print`` that flushes, so progress lines appear while a run is going
    (also when stdout is a pipe, e.g. ``| tee``)."""
    print(*parts, flush=True)
