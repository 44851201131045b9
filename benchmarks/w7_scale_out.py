"""W7 scale-out: the same run served by 1 and by 3 ``ppacer-async serve`` processes
sharing one PostgreSQL schema (PostgreSQL only).

The DAG (``w7_dag.py``) is one root, 2,000 leaves that each sleep 10 ms, one join.
Every process serves it with ``--role all --max-concurrent-tasks 10``: one leads
(schedules), every one claims and runs attempts. Ten workers make one process
sleep-bound (10 ms per task, 10 at a time: 1,000 tasks per second at most), which is
the work that more processes spread; with 100 workers each, one process is already
bound by this machine's two cores, which 3 processes and the database share.

Per measurement a fresh schema; the processes are started, have all logged ``serving``
and have run an untimed warm-up run before the clock starts. What is timed runs from
triggering the run from this process (through the storage, as ``ppacer-async trigger``
does) until it has succeeded, which this process learns from the ``finished`` notice.
The speed-up is the 1-process time over the 3-process time, per repetition.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import anyio
import anyio.abc
from anyio.streams.text import TextReceiveStream

from ppacer_async import operations
from ppacer_async.abc import Storage
from ppacer_async.cli import STORAGE_ENV

from ._common import Metric, Workload, check_success, fresh_storage, settle
from .w7_dag import DAG_ID, LEAF_SECONDS, LEAVES, WARM_UP_ID

if TYPE_CHECKING:
    from ppacer_async.storage.postgres import PostgresStorage

#: Serving processes per measurement: the reference, and the scaled-out one.
PROCESSES = (1, 3)

#: ``--max-concurrent-tasks`` of every serving process: few enough that one process is
#: bound by its workers' sleeping, not by the CPU (see the module docstring). The target
#: is on this setting.
MAX_CONCURRENT_TASKS = 10
#: Also measured, without a target: the library default, with which one process is
#: bound by the CPU on a machine of few cores.
DEFAULT_CONCURRENT_TASKS = 100

#: Storage options of the serving processes, added to the DSN's query: four connections
#: each (other users share the server), all opened when serving starts, so the first
#: claims do not pay for connecting.
SERVE_OPTIONS = {"min_pool_size": "4", "max_pool_size": "4"}

#: Where ``python -m ppacer_async serve`` is started and the DAG file it loads.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DAG_FILE = Path(__file__).resolve().with_name("w7_dag.py")

#: The line each process logs once it serves.
SERVING = re.compile(r"\bserving \d+ DAGs? as ")

STARTUP_TIMEOUT = 60.0
RUN_TIMEOUT = 300.0
#: How long a process gets to stop after SIGINT before it is killed.
STOP_TIMEOUT = 15.0
#: How often the run is read when no ``finished`` notice arrives (a lost notice).
POLL_SECONDS = 0.05
#: Lines of each process's log quoted when a measurement fails.
TAIL_LINES = 5


def wall_key(processes: int, workers: int = MAX_CONCURRENT_TASKS) -> str:
    suffix = "" if workers == MAX_CONCURRENT_TASKS else f"/{workers}"
    return f"wall_s@{processes}{suffix}"


#: 1-process wall time over 3-process wall time, per repetition.
SPEEDUP_KEY = "speedup"
#: The same with ``DEFAULT_CONCURRENT_TASKS`` workers per process.
DEFAULT_SPEEDUP_KEY = f"speedup/{DEFAULT_CONCURRENT_TASKS}"


def serve_url(dsn: str, schema: str) -> str:
    """The storage URL of the serving processes: ``dsn`` on ``schema``, with
    ``SERVE_OPTIONS``."""
    parts = urlsplit(dsn)
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("schema", schema)]
    query += SERVE_OPTIONS.items()
    return parts._replace(query=urlencode(query)).geturl()


class ServingProcess:
    """One ``ppacer-async serve`` child; its log (stderr) is kept, line by line."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        #: Set on the ``serving`` line, or when the log ends without one.
        self.started = anyio.Event()

    @property
    def serving(self) -> bool:
        return any(SERVING.search(line) for line in self.lines)

    async def read(self) -> None:
        """Collect the log until the process closes it (keeps the pipe from filling)."""
        assert self.process.stderr is not None
        pending = ""
        async for chunk in TextReceiveStream(self.process.stderr):
            pending += chunk
            *complete, pending = pending.split("\n")
            for line in complete:
                self.lines.append(line)
                if SERVING.search(line):
                    self.started.set()
        if pending:
            self.lines.append(pending)
        self.started.set()

    async def stop(self) -> None:
        """SIGINT (a graceful stop), then SIGKILL after ``STOP_TIMEOUT``."""
        process = self.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
        with anyio.move_on_after(STOP_TIMEOUT):
            await process.wait()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def tail(self) -> str:
        return " | ".join(self.lines[-TAIL_LINES:]) or "no output"


class _Notices:
    """A notice callback that a waiter consumes: set by notices, cleared by waiting."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = anyio.Event()


async def trigger_and_wait(storage: PostgresStorage) -> float:
    """Trigger a run through ``storage`` and wait for it to finish; return the seconds.

    The wait is woken by the ``finished`` notice, with a slow poll in case one is lost.

    :raises RuntimeError: the run did not succeed. :raises TimeoutError: it took longer
        than ``RUN_TIMEOUT``.
    """
    notices = _Notices()
    storage.add_notice_callback("finished", notices.set)
    failure: Exception | None = None
    elapsed = 0.0
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(storage.listen)
            # Raised inside the task group, an error would come out wrapped in a group.
            try:
                elapsed = await _timed_run(storage, notices)
            except Exception as exc:
                failure = exc
            tg.cancel_scope.cancel()
    finally:
        storage.remove_notice_callback("finished", notices.set)
    if failure is not None:
        raise failure
    return elapsed


async def _timed_run(storage: PostgresStorage, notices: _Notices) -> float:
    """Wait until ``notices`` can hear the run finish, then trigger it and time it."""
    # Once connected, listen() wakes every callback (notices sent before are lost):
    # from then on the finished run's notice reaches this process.
    with anyio.fail_after(STARTUP_TIMEOUT):
        await notices.wait()
    await _run_to_end(storage, notices, WARM_UP_ID)  # untimed: see w7_dag.py
    settle()
    start = time.perf_counter()
    await _run_to_end(storage, notices, DAG_ID)
    return time.perf_counter() - start


async def _run_to_end(storage: PostgresStorage, notices: _Notices, dag_id: str) -> None:
    """Trigger a run of ``dag_id`` and wait until it has succeeded."""
    run = await operations.trigger(storage, dag_id, None, datetime.now(UTC))
    with anyio.fail_after(RUN_TIMEOUT):
        current = await storage.get_run(run.id)
        while current is None or not current.status.finished:
            with anyio.move_on_after(POLL_SECONDS):
                await notices.wait()
            current = await storage.get_run(run.id)
    check_success(current.status, f"run {run.id} of {dag_id}")


class ScaleOut(Workload):
    key = "W7"
    title = "scale-out"
    storages = ("postgres",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.leaves = LEAVES

    @property
    def tasks(self) -> int:
        return self.leaves + 2

    def metrics(self) -> Sequence[Metric]:
        found: list[Metric] = []
        for workers, speedup in (
            (MAX_CONCURRENT_TASKS, SPEEDUP_KEY),
            (DEFAULT_CONCURRENT_TASKS, DEFAULT_SPEEDUP_KEY),
        ):
            found += [
                Metric(
                    key=wall_key(n, workers),
                    label=f"wall time, {n} process{'es' if n > 1 else ''} x {workers}",
                    unit="s",
                    higher_is_better=False,
                )
                for n in PROCESSES
            ]
            found.append(
                Metric(
                    key=speedup,
                    label=f"speed-up, {PROCESSES[-1]} vs {PROCESSES[0]} x {workers}",
                    unit="x",
                    higher_is_better=True,
                )
            )
        return found

    async def repetition(self, kind: str) -> dict[str, float]:
        if kind != "postgres":
            raise ValueError(f"W7 runs on PostgreSQL only, not {kind}")
        found: dict[str, float] = {}
        for workers, speedup in (
            (MAX_CONCURRENT_TASKS, SPEEDUP_KEY),
            (DEFAULT_CONCURRENT_TASKS, DEFAULT_SPEEDUP_KEY),
        ):
            for n in PROCESSES:
                async with (
                    fresh_storage(kind, self.settings.postgres_dsn) as storage,
                    storage,  # opened here first: it creates the schema the processes share
                ):
                    found[wall_key(n, workers)] = await self._serve_and_run(storage, n, workers)
            one, many = wall_key(PROCESSES[0], workers), wall_key(PROCESSES[-1], workers)
            found[speedup] = found[one] / found[many]
        return found

    async def measure(self, storage: Storage) -> dict[str, float]:
        raise NotImplementedError("W7 measures with serving processes; see repetition()")

    async def _serve_and_run(self, storage: Storage, processes: int, workers: int) -> float:
        """Start ``processes`` serving processes on ``storage``'s schema, wait until
        they serve, then time one run; stop them whatever happens."""
        from ppacer_async.storage.postgres import PostgresStorage

        assert isinstance(storage, PostgresStorage)
        assert self.settings.postgres_dsn is not None
        env = dict(os.environ)
        env[STORAGE_ENV] = serve_url(self.settings.postgres_dsn, storage.schema)
        argv = [
            sys.executable,
            "-m",
            "ppacer_async",
            "serve",
            str(DAG_FILE),
            "--role",
            "all",
            "--max-concurrent-tasks",
            str(workers),
        ]
        servers: list[ServingProcess] = []
        failure: Exception | None = None
        elapsed = 0.0
        async with anyio.create_task_group() as tg:  # the log readers
            try:
                for _ in range(processes):
                    process = await anyio.open_process(
                        argv,
                        cwd=PROJECT_ROOT,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                    )
                    server = ServingProcess(process)
                    servers.append(server)
                    tg.start_soon(server.read)
                elapsed = await self._when_serving(storage, servers)
            except Exception as exc:  # raised below, not wrapped in the task group's group
                failure = exc
            finally:
                with anyio.CancelScope(shield=True):
                    async with anyio.create_task_group() as stopping:
                        for server in servers:
                            stopping.start_soon(server.stop)
        if failure is not None:
            said = "; ".join(s.tail() for s in servers)
            raise RuntimeError(
                f"{type(failure).__name__}: {failure}; the serving processes said: {said}"
            ) from failure
        return elapsed

    async def _when_serving(self, storage: PostgresStorage, servers: list[ServingProcess]) -> float:
        """Wait until every process serves, then time one run (after a warm-up)."""
        with anyio.move_on_after(STARTUP_TIMEOUT):
            for server in servers:
                await server.started.wait()
        failed = sum(1 for s in servers if not s.serving)
        if failed:
            raise RuntimeError(f"{failed} of {len(servers)} serving processes did not start")
        return await trigger_and_wait(storage)

    def describe(self) -> dict[str, Any]:
        return {
            "leaves": self.leaves,
            "tasks": self.tasks,
            "leaf_sleep_ms": LEAF_SECONDS * 1e3,
            "processes": list(PROCESSES),
            "max_concurrent_tasks": [MAX_CONCURRENT_TASKS, DEFAULT_CONCURRENT_TASKS],
            "storage_options": dict(SERVE_OPTIONS),
        }
