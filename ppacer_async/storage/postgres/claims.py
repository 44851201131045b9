"""Sharing the work: workers register, claim ready attempts under a lease, renew it,
report outcomes; the leader reaps the attempts whose lease ran out.

See sql/postgres/0003_shared_work.sql for the life of an attempt across processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

import anyio
import attrs

from ..._exceptions import StorageError
from ..._structures import DagRun, LogRecord, TaskRun, WorkerInfo
from ..._time import to_utc
from .._codec import OUTCOMES, check_member
from . import _queries as q
from ._connection import CONNECTION_ERRORS, Database, close_quietly
from ._values import dag_run, result_json, task_run, text
from .notices import Notices

#: Counting the ready rows left costs more than a claim: at most this often (seconds).
COUNT_EVERY = 0.1
#: Settings of the connection claims run on (see claim in sql/postgres/queries.sql).
CLAIM_SETTINGS = {"enable_bitmapscan": "off", "enable_sort": "off"}


@attrs.define(eq=False, kw_only=True)
class Claims:
    """Workers, leases and claims on one database."""

    db: Database
    notices: Notices
    lease: timedelta
    _next_count: float = attrs.field(init=False, default=0.0)
    #: The connection claims run on (see CLAIM_SETTINGS), opened at the first claim.
    _claiming: Any = attrs.field(init=False, default=None)
    _claim_lock: anyio.Lock = attrs.field(init=False, factory=anyio.Lock)
    _counted_left: int = attrs.field(init=False, default=0)

    async def close(self) -> None:
        """Close the claiming connection (the caller shields this)."""
        claiming, self._claiming = self._claiming, None
        if claiming is not None:
            await close_quietly(claiming)

    async def register_worker(
        self, worker_id: str, role: str, now: datetime, dag_ids: Collection[str] = ()
    ) -> None:
        host = os.uname().nodename
        with self.db.errors("write to"):
            await self.db.connections.execute(
                q.REGISTER_WORKER,
                worker_id,
                host,
                os.getpid(),
                role,
                to_utc(now),
                self.lease,
                list(dag_ids),
            )

    async def unregister_worker(self, worker_id: str) -> None:
        with self.db.errors("write to"):
            await self.db.connections.execute(q.UNREGISTER_WORKER, worker_id)

    async def renew_leases(self, worker_id: str, keys: Collection[tuple[int, str, int]]) -> None:
        with self.db.errors("write to"):
            await self.db.connections.execute(
                q.RENEW_LEASES, worker_id, self.lease, *lease_key_arrays(keys)
            )

    async def claim(
        self, worker_id: str, dag_ids: Collection[str], limit: int, now: datetime
    ) -> tuple[list[tuple[DagRun, TaskRun]], int | None]:
        if limit < 1 or not dag_ids:
            return [], None
        counting = time.monotonic() >= self._next_count or not self._counted_left
        query = q.CLAIM_COUNTING if counting else q.CLAIM
        args = (worker_id, list(dag_ids), limit, to_utc(now), self.lease)
        rows = await self._on_claiming(query, *args)
        left: int | None = None
        if not rows:
            left = 0
        elif counting:
            left = rows[0]["scheduled_before"] - len(rows)
            self._next_count = time.monotonic() + COUNT_EVERY
        if left is not None:
            self._counted_left = left
        runs: dict[int, DagRun] = {}
        claimed = []
        for row in rows:
            run = runs.get(row["id"])
            if run is None:
                run = runs[row["id"]] = dag_run(row, "run_")
            claimed.append((run, task_run(row)))
        return claimed, left

    async def claim_keys(
        self, worker_id: str, keys: Collection[tuple[int, str, int]], now: datetime
    ) -> set[tuple[int, str, int]]:
        if not keys:
            return set()
        rows = await self._on_claiming(
            q.CLAIM_KEYS, worker_id, *lease_key_arrays(keys), to_utc(now), self.lease
        )
        return {(row["run_id"], row["task_id"], row["attempt"]) for row in rows}

    async def held(
        self, worker_id: str, keys: Collection[tuple[int, str, int]]
    ) -> set[tuple[int, str, int]]:
        if not keys:
            return set()
        with self.db.errors("read from"):
            rows = await self.db.connections.fetch(q.HELD, worker_id, *lease_key_arrays(keys))
        return {(row["run_id"], row["task_id"], row["attempt"]) for row in rows}

    async def _on_claiming(self, query: str, *args: Any) -> list[Any]:
        """Run a claim on the claiming connection (opened at the first)."""
        with self.db.errors("claim work from"):
            async with self._claim_lock:
                if self.db.pool is None:
                    raise StorageError("PostgresStorage is not open; call await storage.open()")
                try:
                    if self._claiming is None:
                        self._claiming = await self.db.connect(**CLAIM_SETTINGS)
                    rows: list[Any] = await self._claiming.fetch(query, *args)
                except CONNECTION_ERRORS:
                    claiming, self._claiming = self._claiming, None
                    if claiming is not None:
                        await close_quietly(claiming)  # reconnect at the next claim
                    raise
        return rows

    async def upstream_results(
        self, keys: Collection[tuple[int, str]]
    ) -> dict[tuple[int, str], Any]:
        if not keys:
            return {}
        run_ids, task_ids = zip(*keys, strict=True)
        with self.db.errors("read from"):
            rows = await self.db.connections.fetch(q.UPSTREAM_RESULTS, run_ids, task_ids)
        return {(row["run_id"], row["task_id"]): row["result"] for row in rows}

    async def report(
        self,
        worker_id: str,
        outcomes: Collection[TaskRun],
        logs: Collection[LogRecord],
        *,
        notify: bool = True,
    ) -> set[tuple[int, str, int]]:
        if not outcomes and not logs:
            return set()
        for tr in outcomes:
            check_member(tr.status, OUTCOMES, f"outcome of task {tr.task_id!r}")
        columns: list[tuple[Any, ...]] = [()] * 7
        if outcomes:
            columns = list(
                zip(
                    *[
                        (
                            tr.run_id,
                            tr.task_id,
                            tr.attempt,
                            tr.status,
                            tr.finished_at,
                            None if tr.error is None else text(tr.error),
                            None if tr.result is None else result_json(tr),
                        )
                        for tr in outcomes
                    ],
                    strict=True,
                )
            )
        log_columns: list[tuple[Any, ...]] = [()] * 6
        if logs:
            log_columns = list(
                zip(
                    *[
                        (r.run_id, r.task_id, r.attempt, r.time, r.level, text(r.message))
                        for r in logs
                    ],
                    strict=True,
                )
            )
        with self.db.errors("report to"):
            rows = await self.db.connections.fetch(
                q.REPORT,
                worker_id,
                *columns,
                *log_columns,
                self.notices.channels["outcomes"] if notify else None,
                self.notices.sender,
            )
        return {(row["run_id"], row["task_id"], row["attempt"]) for row in rows}

    async def reported_outcomes(self, dag_ids: Collection[str], limit: int) -> list[TaskRun]:
        if not dag_ids:
            return []
        with self.db.errors("read from"):
            rows = await self.db.connections.fetch(q.REPORTED_OUTCOMES, list(dag_ids), limit)
        return [task_run(row) for row in rows]

    async def reap(self) -> list[TaskRun]:
        with self.db.errors("write to"):
            rows = await self.db.connections.fetch(
                q.REAP, self.notices.channels["outcomes"], self.notices.sender
            )
        return [task_run(row) for row in rows]

    async def lease_due(self) -> timedelta | None:
        with self.db.errors("read from"):
            due: timedelta | None = await self.db.connections.fetchval(q.LEASE_DUE)
        return due

    async def workers(self) -> list[WorkerInfo]:
        with self.db.errors("read from"):
            rows = await self.db.connections.fetch(q.WORKERS)
        return [WorkerInfo(**row) for row in rows]


def lease_key_arrays(
    keys: Collection[tuple[int, str, int]],
) -> tuple[list[int], list[str], list[int]]:
    """The run ids, task ids and attempts of ``keys`` as three arrays."""
    return [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]
