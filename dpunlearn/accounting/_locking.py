"""Advisory whole-file locks for the ledger: ``flock(2)`` where it exists.

``fcntl`` is imported lazily, inside the functions, so that ``import
dpunlearn`` works on platforms without it (Windows). There, :func:`try_shared`
reports that no lock can be taken (readers then re-check a torn tail before
reporting it) and :func:`exclusive` refuses with ``OSError(ENOLCK)``:
appending without a lock could let two writers double-spend a budget, so it
is not done silently.

A lock belongs to the open file description and is released when the
descriptor is closed (POSIX ``flock`` semantics), so callers simply close.
"""

from __future__ import annotations

import errno

__all__ = ["available", "exclusive", "try_shared", "unlock"]

# flock() failures meaning "this file system cannot lock", not "someone holds it".
_NO_LOCKING = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


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


def try_shared(fd: int) -> bool | None:
    """Tries, without waiting, to take a shared lock on ``fd``'s file.

    Returns:
      True if the lock is now held; False if another descriptor holds an
      exclusive lock (an append in progress); None if locking is unavailable
      here (no ``fcntl``, or a file system that does not support ``flock``).
    """
    fcntl = _fcntl()
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in _NO_LOCKING:
            return None
        raise
    return True


def unlock(fd: int) -> None:
    """Releases ``fd``'s lock before the descriptor is closed."""
    fcntl = _fcntl()
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
