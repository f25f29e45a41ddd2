"""Advisory whole-file locks for the ledger: ``flock(2)`` where it exists.

``fcntl`` is imported lazily, inside the functions, so that ``import
dpunlearn`` works on platforms without it (Windows). There,
:func:`exclusive` refuses with ``OSError(ENOLCK)``: appending without a lock
could let two writers double-spend a budget, so it is not done silently.

A lock belongs to the open file description and is released when the
descriptor is closed (POSIX ``flock`` semantics), so callers simply close.
"""

from __future__ import annotations

import errno

__all__ = ["available", "exclusive"]


def _fcntl():
    try:
        import fcntl
    except ImportError:
        return None
    return fcntl


def available() -> bool:
    """True where ``fcntl.flock`` can be imported."""
    return _fcntl() is not None


def exclusive(fd: int) -> None:
    """Blocks until ``fd`` holds an exclusive lock on its file.

    Raises:
      OSError: ``ENOLCK`` where the platform has no ``flock``, or whatever
        ``flock`` itself raises (e.g. a file system without locks).
    """
    fcntl = _fcntl()
    if fcntl is None:
        raise OSError(
            errno.ENOLCK,
            "no advisory file locking on this platform (fcntl.flock is "
            "unavailable); appending to a ledger needs it so that concurrent "
            "writers cannot double-spend a budget",
        )
    fcntl.flock(fd, fcntl.LOCK_EX)
