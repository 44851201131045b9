"""The SQLite scheduler lock: an exclusive ``flock`` beside the database file."""

from __future__ import annotations

import fcntl
import os

from .._exceptions import StorageError, StorageLockedError


def lock_file(db_path: str) -> int:
    """Take an exclusive ``flock`` on ``<db_path>.lock`` and write our pid into it.

    The kernel drops the lock when the descriptor closes, so a killed scheduler never
    leaves a stale lock behind. A symlink to the database shares the real file's lock.
    """
    lock_path = os.path.realpath(db_path) + ".lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot create the scheduler lock file {lock_path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        pid = f"pid {holder}" if holder.isdigit() else "pid unknown"
        raise StorageLockedError(
            f"{db_path} is already served by another scheduler ({pid}); stop it first, "
            "or use PostgreSQL to run several schedulers on one database"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StorageError(f"cannot lock {lock_path}: {exc}") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def unlock_file(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
