"""Which scheduler processes serve the storage, for ``/health`` and metrics."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from datetime import UTC, datetime
from typing import Any

from ..abc import SharedStorage
from ._context import WebContext
from ._json import iso


def _sqlite_lock_holder(path: str) -> int | None:
    """The pid written in the scheduler lock of a SQLite file while a process holds
    it, else ``None`` (the kernel drops the lock when its process ends)."""
    lock_path = os.path.realpath(path) + ".lock"
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(holder) if holder.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


async def live_processes(context: WebContext, now: datetime) -> list[dict[str, Any]]:
    """The scheduler processes serving the storage, each with when it was last seen:
    every storage records them (``Storage.workers``), each renewing its record while it
    serves. A SQLite file served by a process that keeps no record (an older version)
    is recognised by its scheduler lock."""
    storage = context.storage
    workers = await storage.workers()
    if workers:
        return [
            {
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "role": w.role,
                "started_at": iso(w.started_at),
                "last_seen": iso(w.renewed_at),
                "dag_ids": list(w.dag_ids),
            }
            for w in workers
        ]
    path = getattr(storage, "path", None)
    if isinstance(path, str) and not isinstance(storage, SharedStorage):
        pid = _sqlite_lock_holder(path)
        if pid is not None:
            return [
                {
                    "id": f"pid {pid}",
                    "host": socket.gethostname(),
                    "pid": pid,
                    "role": "all",
                    "started_at": None,
                    "last_seen": iso(now),
                    "dag_ids": None,
                }
            ]
    return []


def now_utc(context: WebContext) -> datetime:
    """The scheduler's clock in embedded mode (a FakeClock in tests), else the system's."""
    if context.scheduler is not None:
        return context.scheduler.clock.now()
    return datetime.now(UTC)
