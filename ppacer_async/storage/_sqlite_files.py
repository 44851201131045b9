"""The files around a SQLite database: the database itself, SQLite's side files and the
scheduler lock file.

A scheduler often runs as root or as a service user in a directory others can write to,
so nothing here follows a link planted at a name it writes: the lock file is opened with
``O_NOFOLLOW`` and must be a regular file with one name, and SQLite's side files
(``-wal``, ``-shm``, ``-journal``), which SQLite opens itself, are checked likewise
before it does.

A database file with a second name (a hard link) is refused: the lock file is named
after the database's path, so each name would get a lock of its own and two schedulers
could serve one database; and SQLite names its WAL after the path too, so two processes
using two names would each write a WAL of their own, which corrupts the database
(https://www.sqlite.org/howtocorrupt.html, "multiple links to the same file"). A
symbolic link to the database is fine: both resolve to one real path.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from .._exceptions import StorageError, StorageLockedError

#: The files SQLite opens beside a database, by suffix.
SIDE_FILES = ("-wal", "-shm", "-journal")

_SEVERAL = "use PostgreSQL to run several schedulers on one database"


def _not_plain(st: os.stat_result) -> str | None:
    """What makes a file unsafe to write through, or ``None``."""
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_nlink > 1:
        return f"has {st.st_nlink} names (hard links), so writing it changes another file"
    return None


def check_files(db_path: str) -> None:
    """Refuse a database file with several names, and side files that are links or not
    regular files, before SQLite opens any of them.

    :raises StorageError: naming the file and how to fix it.
    """
    try:
        st = os.stat(db_path)
    except FileNotFoundError:
        pass  # a new database
    except OSError as exc:
        raise StorageError(f"cannot inspect {db_path}: {exc}") from exc
    else:
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(f"{db_path} is not a regular file; point --storage at a database")
        if st.st_nlink > 1:
            raise StorageError(
                f"{db_path} has {st.st_nlink} names (hard links): each name would get a "
                "scheduler lock and a SQLite WAL of its own, so two schedulers could serve "
                "it and SQLite could corrupt it. Keep one name (find the others with "
                f"`find / -xdev -samefile {db_path}`); a symbolic link is fine"
            )
    for base in dict.fromkeys((db_path, os.path.realpath(db_path))):
        for suffix in SIDE_FILES:
            path = base + suffix
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError(f"cannot inspect SQLite's side file {path}: {exc}") from exc
            problem = _not_plain(st)
            if problem is not None:
                raise StorageError(
                    f"SQLite's side file {path} {problem}; SQLite would write through it. "
                    "Remove it (SQLite creates its side files itself) and check who put it there"
                )


# -- the lock file: who holds the scheduler lock --------------------------------------------


def lock_file(db_path: str) -> int:
    """Take an exclusive ``flock`` on ``<db_path>.lock`` and write our pid into it.

    The kernel drops the lock when the descriptor closes, so a killed scheduler never
    leaves a stale lock behind. A symlink to the database shares the real file's lock.

    :raises StorageLockedError: another scheduler holds it.
    :raises StorageError: the lock file is a link or not a regular file, or cannot be made.
    """
    lock_path = os.path.realpath(db_path) + ".lock"
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fix = "remove it (ppacer-async creates it) and check who put it there"
    try:
        fd = os.open(lock_path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StorageError(
                f"the scheduler lock file {lock_path} is a symbolic link; {fix}"
            ) from None
        if exc.errno == errno.EISDIR:
            raise StorageError(
                f"the scheduler lock file {lock_path} is not a regular file; {fix}"
            ) from None
        raise StorageError(f"cannot create the scheduler lock file {lock_path}: {exc}") from exc
    problem = _not_plain(os.fstat(fd))
    if problem is not None:
        os.close(fd)
        raise StorageError(f"the scheduler lock file {lock_path} {problem}; {fix}")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        pid = f"pid {holder}" if holder.isdigit() else "pid unknown"
        raise StorageLockedError(
            f"{db_path} is already served by another scheduler ({pid}); stop it first, "
            f"or {_SEVERAL}"
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
