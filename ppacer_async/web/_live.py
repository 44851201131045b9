"""Which scheduler processes serve the storage, for ``/health``, ``/dags`` and metrics."""

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
    """The scheduler processes serving the storage, each with when it was last seen.

    A shared storage (PostgreSQL) records them; a SQLite file is served by the one
    process holding its lock; otherwise only the scheduler embedded in this process
    is known.
    """
    storage, scheduler = context.storage, context.scheduler
    if isinstance(storage, SharedStorage):
        return [
            {
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "role": w.role,
                "started_at": iso(w.started_at),
                "last_seen": iso(w.renewed_at),
            }
            for w in await storage.workers()
        ]
    if scheduler is not None:
        if not scheduler.serving:
            return []
        return [
            {
                "id": scheduler.worker_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "role": scheduler.role,
                "started_at": None,
                "last_seen": iso(now),
            }
        ]
    path = getattr(storage, "path", None)
    if isinstance(path, str):
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
                }
            ]
    return []


def now_utc(context: WebContext) -> datetime:
    """The scheduler's clock in embedded mode (a FakeClock in tests), else the system's."""
    if context.scheduler is not None:
        return context.scheduler.clock.now()
    return datetime.now(UTC)
