"""Several ``ppacer-async serve`` processes sharing one PostgreSQL database.

Driven as users run them: the real command in subprocesses, against a real server. The
DAGs are in scripts/shared_work.py; their tasks record each execution outside
ppacer-async's tables (a table with a primary key, or a file), so a test sees how often
every attempt really ran and in which process. Tests wait for what they can observe (a
log line, a row) with a deadline, never for a guessed time.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

import anyio
import pytest

from .conftest import POSTGRES_DSN
from .helpers import Subprocess, assert_usage_error, command_env
from .scripts import shared_work

pytestmark = pytest.mark.slow

SCRIPT = Path(shared_work.__file__).resolve()
COMMAND = [sys.executable, "-m", "ppacer_async"]
SERVING = r"serving 1 DAG as (\S+) \(role (\w+)\)"
LEADS = r"(\S+) now schedules"
#: Between two looks at the database while waiting for something to happen there.
POLL = 0.05

T = TypeVar("T")


class Serve(Protocol):
    def __call__(self, dag: str, url: str, *args: str, **env: str) -> Subprocess: ...


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start ``ppacer-async serve scripts/shared_work.py:DAG --storage URL ARGS``
    processes (``env`` added to their environment); killed when the test ends."""
    started: list[Subprocess] = []

    def start(dag: str, url: str, *args: str, **env: str) -> Subprocess:
        argv = [*COMMAND, "serve", f"{SCRIPT}:{dag}", "--storage", url, *args]
        started.append(Subprocess(argv, cwd=tmp_path, env=command_env(**env)))
        return started[-1]

    yield start
    for proc in started:
        proc.close()


def worker_id(proc: Subprocess) -> str:
    """Wait for a process to serve; return the worker id it serves as."""
    return proc.wait_for(SERVING, timeout=30).group(1)


async def cli(*args: str) -> str:
    """Run ``ppacer-async ARGS`` and return its stdout; fail unless it exits with 0."""
    done = await anyio.run_process([*COMMAND, *args], env=command_env(), check=False)
    out, err = done.stdout.decode(), done.stderr.decode()
    if done.returncode != 0:
        pytest.fail(f"ppacer-async {' '.join(args)} exited {done.returncode}:\n{out}{err}")
    return out


async def trigger(dag: str, url: str) -> int:
    """Queue a manual run from the command line; return its id."""
    run: dict[str, Any] = json.loads(await cli("trigger", dag, "--storage", url, "--json"))
    return int(run["id"])


def tails(procs: Sequence[Subprocess], lines: int = 40) -> str:
    return "\n".join(
        f"--- pid {p.proc.pid}, last {lines} lines:\n" + "\n".join(p.lines[-lines:]) for p in procs
    )


async def poll_until(
    check: Callable[[], Awaitable[T]],
    what: str,
    *,
    timeout: float,
    procs: Sequence[Subprocess] = (),
) -> T:
    """Look every ``POLL`` seconds until ``check`` returns something true; return it.

    :param procs: processes whose latest output a failure shows.
    """
    deadline = time.monotonic() + timeout
    while not (found := await check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s\n{tails(procs)}")
        await anyio.sleep(POLL)
    return found


# -- a fresh schema on the test server ------------------------------------------------------


class Database:
    """A fresh schema, migrated, with the ``executions`` table tasks record into, and an
    admin connection whose search path is that schema."""

    def __init__(self, schema: str, admin: Any) -> None:
        self.schema = schema
        self.admin = admin

    def url(self, **options: float) -> str:
        """A storage URL for this schema, with storage options (times in seconds)."""
        query = urlencode({"schema": self.schema, "max_pool_size": 4, **options})
        return f"{POSTGRES_DSN}{'&' if '?' in POSTGRES_DSN else '?'}{query}"

    @property
    def task_env(self) -> dict[str, str]:
        """Where the tasks of scripts/shared_work.py record their executions."""
        return {"SHARED_WORK_DSN": POSTGRES_DSN, "SHARED_WORK_SCHEMA": self.schema}

    async def wait_for_run(
        self, run_id: int, procs: Sequence[Subprocess], timeout: float = 60
    ) -> str:
        """Wait until a run ends; return its status."""
        status: str = await poll_until(
            lambda: self.admin.fetchval(
                "SELECT status FROM dag_runs WHERE id = $1 AND status IN ('success', 'failed')",
                run_id,
            ),
            f"the end of run {run_id}",
            timeout=timeout,
            procs=procs,
        )
        return status

    async def executions(self, run_id: int) -> dict[tuple[str, int], int]:
        """(task, attempt) -> the pid that executed it."""
        rows = await self.admin.fetch(
            "SELECT task_id, attempt, pid FROM executions WHERE run_id = $1", run_id
        )
        return {(row["task_id"], row["attempt"]): row["pid"] for row in rows}

    async def attempts(self, run_id: int) -> dict[str, list[tuple[int, str, str, str | None]]]:
        """task -> its attempts as (attempt, status, reason, error), in order."""
        rows = await self.admin.fetch(
            "SELECT task_id, attempt, status, reason, error FROM task_runs "
            "WHERE run_id = $1 ORDER BY task_id, attempt",
            run_id,
        )
        found: dict[str, list[tuple[int, str, str, str | None]]] = {}
        for row in rows:
            found.setdefault(row["task_id"], []).append(
                (row["attempt"], row["status"], row["reason"], row["error"])
            )
        return found


@pytest.fixture
async def database(admin: Any, schema: str) -> Database:
    from ppacer_async.storage.postgres import PostgresStorage

    # Migrated first: ppacer-async refuses a schema holding tables it did not make.
    async with PostgresStorage(dsn=POSTGRES_DSN, schema=schema, min_pool_size=0):
        pass
    await admin.execute(f'SET search_path TO "{schema}"')
    await admin.execute(shared_work.CREATE_EXECUTIONS)
    return Database(schema, admin)


# -- sharing the work -------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.anyio
async def test_three_processes_share_a_run_of_2000_tasks_running_each_attempt_once(
    database: Database, serve: Serve
) -> None:
    url = database.url(lease=10, poll_interval=0.5)
    procs = [serve("fanout", url, **database.task_env) for _ in range(3)]
    for proc in procs:
        worker_id(proc)

    run_id = await trigger("fanout", url)

    assert await database.wait_for_run(run_id, procs) == "success"
    tasks = set(shared_work.fanout.tasks)
    executions = await database.executions(run_id)
    assert sorted(executions) == sorted((task_id, 1) for task_id in tasks)
    pids = Counter(executions.values())
    assert set(pids) <= {proc.proc.pid for proc in procs}
    assert len(pids) >= 2, f"one process ran every task: {pids}"
    attempts = await database.attempts(run_id)
    assert attempts.keys() == tasks
    wrong = {t: a for t, a in attempts.items() if [(n, s) for n, s, _, _ in a] != [(1, "success")]}
    assert not wrong, f"tasks that did not succeed once, on attempt 1: {wrong}"


@pytest.mark.postgres
@pytest.mark.anyio
@pytest.mark.parametrize("victim", ["worker", "leader"])
async def test_kill_9_of_a_process_reruns_its_attempts_elsewhere_without_spending_retries(
    database: Database, serve: Serve, victim: str
) -> None:
    url = database.url(lease=1.5, poll_interval=0.3)
    # 4 attempts at a time each: 12 leaves of 1.5 s need all three processes.
    procs = [
        serve("slow", url, "--max-concurrent-tasks", "4", **database.task_env),
        serve("slow", url, "--max-concurrent-tasks", "4", **database.task_env),
        serve("slow", url, "--max-concurrent-tasks", "4", "--role", "worker", **database.task_env),
    ]
    assert {t.retries for t in shared_work.slow.tasks.values()} == {0}
    ids = {proc: worker_id(proc) for proc in procs}
    leaders = [proc for proc in procs if proc.matches(LEADS)]
    assert len(leaders) == 1, tails(procs)
    doomed = leaders[0] if victim == "leader" else procs[2]
    survivors = [proc for proc in procs if proc is not doomed]

    run_id = await trigger("slow", url)
    await poll_until(
        lambda: database.admin.fetchval(
            "SELECT count(*) FROM executions WHERE run_id = $1 AND pid = $2",
            run_id,
            doomed.proc.pid,
        ),
        f"an attempt started by the {victim}",
        timeout=30,
        procs=procs,
    )
    doomed.kill()

    assert await database.wait_for_run(run_id, survivors) == "success", tails(survivors)
    if victim == "leader":
        assert any(proc.matches(LEADS) for proc in survivors), "no process took over"
    executions = await database.executions(run_id)
    attempts = await database.attempts(run_id)
    assert attempts.keys() == set(shared_work.slow.tasks)
    interrupted = []
    for task_id, rows in attempts.items():
        statuses = [status for _, status, _, _ in rows]
        assert statuses.count("success") == 1, (task_id, rows)
        assert statuses[-1] == "success", (task_id, rows)  # with retries=0
        for n, status, _, error in rows:
            pid = executions.get((task_id, n))
            if status == "interrupted":
                interrupted.append((task_id, n))
                assert pid in (None, doomed.proc.pid), (task_id, n, pid)
                assert "stopped renewing its lease" in (error or ""), error
                assert ids[doomed] in (error or ""), error
                assert len(rows) > n, (task_id, rows)
                again = rows[n]  # attempt n + 1
                assert again[0] == n + 1 and again[2] == "interrupted", (task_id, rows)
                rerun_by = executions.get((task_id, n + 1))
                assert rerun_by in {p.proc.pid for p in survivors}, (task_id, n + 1, rerun_by)
            else:
                assert status == "success", (task_id, rows)
    assert interrupted, f"no attempt of the killed {victim} was interrupted"
    unfinished = {
        key
        for key, pid in executions.items()
        if pid == doomed.proc.pid and attempts[key[0]][key[1] - 1][1] != "success"
    }
    assert unfinished <= set(interrupted)


# -- a database server restart ---------------------------------------------------------------


def _postgres_program(name: str) -> str | None:
    found = shutil.which(name)
    if found is not None:
        return found
    folders = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in folders:
        if (folder / name).is_file():
            return str(folder / name)
    return None


class ThrowawayPostgres:
    """A PostgreSQL cluster of its own (``initdb`` in a temporary directory), listening
    on 127.0.0.1 with trust authentication, that a test may restart.

    As root it runs as the ``postgres`` user (initdb refuses root).
    """

    def __init__(self, initdb: str, pg_ctl: str, as_user: list[str]) -> None:
        self.initdb, self.pg_ctl, self.as_user = initdb, pg_ctl, as_user
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port: int = s.getsockname()[1]
        # Not under pytest's tmp_path: the postgres user cannot enter root's directories.
        self.base = Path(tempfile.mkdtemp(prefix="ppacer-pg-"))
        self.data = self.base / "data"
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    async def _run(self, *argv: str) -> None:
        # Output goes to a file, not a pipe: the server that pg_ctl starts inherits it,
        # and would keep a pipe open, so reading it to the end would never finish.
        output = self.base / "commands.log"
        with output.open("ab") as sink:
            done = await anyio.run_process(
                [*self.as_user, *argv], stdout=sink, stderr=subprocess.STDOUT, check=False
            )
        if done.returncode != 0:
            log = self.base / "server.log"
            pytest.fail(
                f"{' '.join(argv)} exited {done.returncode}:\n{output.read_text()}\n"
                f"{log.read_text() if log.exists() else ''}"
            )

    async def _pg_ctl(self, *args: str) -> None:
        log = str(self.base / "server.log")
        await self._run(self.pg_ctl, "-D", str(self.data), "-l", log, "-w", "-t", "60", *args)

    async def start(self) -> None:
        if self.as_user:
            shutil.chown(self.base, "postgres", "postgres")
        await self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-N")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.base}'\nfsync = off\n"
            )
        await self._pg_ctl("start")

    async def restart(self) -> None:
        await self._pg_ctl("-m", "fast", "restart")

    async def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            await self._pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def _throwaway_postgres() -> ThrowawayPostgres:
    """A cluster to make, or a skip (a failure under CI) saying why there cannot be one."""
    initdb, pg_ctl = _postgres_program("initdb"), _postgres_program("pg_ctl")
    runuser = shutil.which("runuser")
    as_root = os.geteuid() == 0
    reason = _throwaway_unavailable(initdb, pg_ctl, runuser, as_root)
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the database restart test must run in CI: {reason}")
        pytest.skip(f"cannot make a throwaway PostgreSQL cluster: {reason}")
    assert initdb is not None and pg_ctl is not None
    as_user = [str(runuser), "-u", "postgres", "--"] if as_root else []
    return ThrowawayPostgres(initdb, pg_ctl, as_user)


def _throwaway_unavailable(
    initdb: str | None, pg_ctl: str | None, runuser: str | None, as_root: bool
) -> str | None:
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return "asyncpg is not installed (pip install -e '.[test]')"
    if initdb is None or pg_ctl is None:
        return "initdb and pg_ctl are neither on PATH nor under /usr/lib/postgresql/*/bin"
    if as_root:
        if runuser is None:
            return "running as root, and there is no runuser to run initdb as postgres"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no postgres user to run initdb as"
    return None


async def _connect(dsn: str) -> Any:
    import asyncpg

    return await asyncpg.connect(dsn, server_settings={"search_path": "ppacer"})


async def _fetchval_or_none(dsn: str, query: str, *args: object) -> Any:
    """A value from a server that may be restarting: None while it cannot answer."""
    import asyncpg

    try:
        conn = await _connect(dsn)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return None
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


@pytest.mark.postgres
@pytest.mark.anyio
async def test_attempts_a_lone_process_committed_as_its_own_run_again_elsewhere_once_it_is_killed(
    database: Database, serve: Serve
) -> None:
    # Alone, the leader claims the attempts it makes ready in the commit that makes
    # them ready (running under its lease) and runs them without a claim of its own.
    url = database.url(lease=1.5, poll_interval=0.3)
    doomed = serve("slow", url, "--max-concurrent-tasks", "4", **database.task_env)
    doomed_id = worker_id(doomed)
    assert doomed.matches(LEADS), tails([doomed])
    run_id = await trigger("slow", url)

    async def held_by_doomed() -> list[Any]:
        rows: list[Any] = await database.admin.fetch(
            "SELECT t.task_id, t.attempt FROM task_runs AS t JOIN executions AS e "
            "ON e.run_id = t.run_id AND e.task_id = t.task_id AND e.attempt = t.attempt "
            "WHERE t.run_id = $1 AND t.task_id LIKE 'leaf%' AND t.status = 'running' "
            "AND t.lease_owner = $2 AND t.lease_expires_at > now()",
            run_id,
            doomed_id,
        )
        return rows

    running = await poll_until(held_by_doomed, "leaves running in the lone process", timeout=30)
    survivor = serve("slow", url, "--max-concurrent-tasks", "4", **database.task_env)
    worker_id(survivor)
    doomed.kill()

    assert await database.wait_for_run(run_id, [survivor]) == "success", tails([survivor])
    assert survivor.matches(LEADS), "the survivor did not take over"
    attempts = await database.attempts(run_id)
    executions = await database.executions(run_id)
    for row in running:
        task_id, n = row["task_id"], row["attempt"]
        first, *rest = attempts[task_id][n - 1 :]
        assert first[:2] == (n, "interrupted"), attempts[task_id]
        assert doomed_id in (first[3] or ""), first
        assert "stopped renewing its lease" in (first[3] or ""), first
        assert [(a, status, reason) for a, status, reason, _ in rest] == [
            (n + 1, "success", "interrupted")
        ], attempts[task_id]
        assert executions[(task_id, n + 1)] == survivor.proc.pid
    statuses = Counter(rows[-1][1] for rows in attempts.values())
    assert statuses == {"success": len(shared_work.slow.tasks)}, attempts


@pytest.mark.postgres
@pytest.mark.anyio
async def test_run_survives_a_database_server_restart_without_running_an_attempt_twice(
    serve: Serve, tmp_path: Path
) -> None:
    server = _throwaway_postgres()
    procs: list[Subprocess] = []
    try:
        await server.start()
        url = f"{server.dsn}?schema=ppacer&lease=10&poll_interval=0.5&max_pool_size=4"
        side = tmp_path / "executions.txt"
        procs += [
            serve("filed", url, "--max-concurrent-tasks", "4", SHARED_WORK_FILE=str(side))
            for _ in range(2)
        ]
        for proc in procs:
            worker_id(proc)
        total = len(shared_work.filed.tasks)

        run_id = await trigger("filed", url)
        done = await poll_until(
            lambda: _fetchval_or_none(
                server.dsn,
                "SELECT count(*) FROM task_runs WHERE run_id = $1 AND status = 'success' "
                "HAVING count(*) >= 10",
                run_id,
            ),
            "ten successes",
            timeout=30,
            procs=procs,
        )
        assert done < total, "the run ended before the restart; make its tasks slower"
        await server.restart()

        status = await poll_until(
            lambda: _fetchval_or_none(
                server.dsn,
                "SELECT status FROM dag_runs WHERE id = $1 AND status IN ('success', 'failed')",
                run_id,
            ),
            f"the end of run {run_id} after the restart",
            timeout=60,
            procs=procs,
        )
        conn = await _connect(server.dsn)
        try:
            rows = await conn.fetch(
                "SELECT task_id, status FROM task_runs WHERE run_id = $1", run_id
            )
        finally:
            await conn.close()
    finally:
        for proc in procs:
            proc.close()
        await server.stop()

    assert status == "success", tails(procs)
    successes = Counter(row["task_id"] for row in rows if row["status"] == "success")
    assert successes == Counter(dict.fromkeys(shared_work.filed.tasks, 1))
    lines = [tuple(line.split()[:2]) for line in side.read_text().splitlines()]
    twice = [key for key, n in Counter(lines).items() if n > 1]
    assert not twice, f"attempts that ran twice: {twice}"
    assert {task_id for task_id, _ in lines} == set(shared_work.filed.tasks)
    # The leader's connection died with the server: scheduling resumed on a new one.
    assert sum(len(proc.matches(LEADS)) for proc in procs) >= 2, tails(procs)


# -- notifications --------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.anyio
@pytest.mark.parametrize("roles", [["all"], ["scheduler", "worker"]], ids="+".join)
async def test_idle_processes_wake_on_notifications_not_polling(
    database: Database, serve: Serve, roles: list[str]
) -> None:
    """With polling every hour, a run triggered from the command line still starts, and
    each of its steps (ready work, reported outcomes) is picked up at once: only a
    notification can have woken the processes. Split in a scheduler and a worker, every
    wake-up crosses processes."""
    url = database.url(poll_interval=3600)
    procs = [serve("chain", url, "--role", role) for role in roles]
    for proc in procs:
        worker_id(proc)

    out = await cli("trigger", "chain", "--storage", url, "--wait", "--timeout", "20", "--json")

    assert json.loads(out)["status"] == "success", tails(procs)
    run_id = json.loads(out)["id"]
    attempts = await database.attempts(run_id)
    assert {t: [(n, s) for n, s, _, _ in a] for t, a in attempts.items()} == {
        "one": [(1, "success")],
        "two": [(1, "success")],
        "three": [(1, "success")],
    }


@pytest.mark.postgres
@pytest.mark.anyio
async def test_pause_from_the_command_line_stops_the_schedule_of_a_serving_process(
    database: Database, serve: Serve
) -> None:
    url = database.url(poll_interval=3600)
    proc = serve("ticking", url)
    worker_id(proc)
    scheduled = "SELECT count(*) FROM dag_runs WHERE trigger = 'schedule' AND status = 'success'"
    await poll_until(
        lambda: database.admin.fetchval(scheduled + " HAVING count(*) >= 2"),
        "two scheduled runs",
        timeout=30,
        procs=[proc],
    )

    await cli("pause", "ticking", "--storage", url)
    # The serving process learns of the pause before it starts the next run from the
    # command line (one storage read follows both), and that run's task holds it for
    # 1.5 s, many ticks of the schedule: the window in which to look for scheduled runs.
    out = await cli(
        "trigger", "ticking", "--param", "hold=1.5", "--storage", url,
        "--wait", "--timeout", "20", "--json",
    )  # fmt: skip
    manual = json.loads(out)

    assert manual["status"] == "success"
    started = datetime.fromisoformat(manual["started_at"])
    finished = datetime.fromisoformat(manual["finished_at"])
    assert finished - started >= timedelta(seconds=1.5)
    # A watcher step already past its pause check when the pause arrived may still
    # create one run: allow it one tick.
    late = await database.admin.fetch(
        "SELECT id, logical_time, created_at FROM dag_runs "
        "WHERE trigger <> 'manual' AND created_at > $1",
        started + shared_work.TICK,
    )
    assert late == [], f"scheduled runs created after the pause was followed: {late}"
    assert "Traceback" not in proc.output()


# -- roles need a shared storage -------------------------------------------------------------


def test_serve_as_a_worker_on_sqlite_exits_2_naming_postgresql(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    argv = [*COMMAND, "serve", f"{SCRIPT}:chain", "--storage", f"sqlite:///{db}"]

    done = subprocess.run(
        [*argv, "--role", "worker"],
        cwd=tmp_path,
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert_usage_error(done, "(PostgreSQL)")
    assert done.stderr.startswith("ppacer-async: error: role='worker' needs a storage")
    assert not db.exists()


# -- richer DAGs across processes ---------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.anyio
async def test_instances_of_a_mapped_task_are_claimed_by_every_process(
    database: Database, serve: Serve
) -> None:
    url = database.url(lease=10, poll_interval=0.5)
    procs = [serve("mapped", url, **database.task_env) for _ in range(2)]
    for proc in procs:
        worker_id(proc)

    run_id = await trigger("mapped", url)

    assert await database.wait_for_run(run_id, procs) == "success"
    executions = await database.executions(run_id)
    n = shared_work.MAPPED_ELEMENTS
    assert sorted(executions) == sorted((f"double[{k}]", 1) for k in range(n))
    assert len(set(executions.values())) == 2, "one process ran every instance"
    total = await database.admin.fetchval(
        "SELECT result FROM task_runs WHERE run_id = $1 AND task_id = 'total'", run_id
    )
    assert json.loads(total) == sum(k * 2 for k in range(n))


@pytest.mark.postgres
@pytest.mark.anyio
async def test_cancel_reaches_an_attempt_running_in_another_process_within_a_second(
    database: Database, serve: Serve
) -> None:
    from ppacer_async import operations
    from ppacer_async.storage.postgres import PostgresStorage

    url = database.url(lease=10, poll_interval=5)  # the slow poll would be too late
    leader = serve("hanging", url, "--role", "scheduler", **database.task_env)
    worker = serve("hanging", url, "--role", "worker", **database.task_env)
    procs = [leader, worker]
    for proc in procs:
        worker_id(proc)
    run_id = await trigger("hanging", url)

    async def started() -> bool:
        return ("hang", 1) in await database.executions(run_id)

    await poll_until(started, "the start of the attempt", timeout=30, procs=procs)
    assert (await database.executions(run_id))[("hang", 1)] == worker.proc.pid

    async def cancelled() -> bool:
        return ("cancelled", 1) in await database.executions(run_id)

    async with PostgresStorage(dsn=POSTGRES_DSN, schema=database.schema) as storage:
        begun = time.monotonic()
        await operations.cancel(storage, run_id, datetime.now().astimezone(), "stop it")
        await poll_until(cancelled, "the cancellation of the attempt", timeout=10, procs=procs)
        took = time.monotonic() - begun
    assert took < 1.0, f"the attempt was cancelled {took:.2f} s after the run"
    status = await database.admin.fetchval("SELECT status FROM dag_runs WHERE id = $1", run_id)
    assert status == "cancelled"

    async def recorded() -> dict[str, list[tuple[int, str, str, str | None]]] | None:
        found = await database.attempts(run_id)
        return found if found.get("hang", [(0, "")])[-1][1] == "cancelled" else None

    attempts = await poll_until(recorded, "the cancelled attempt's row", timeout=10, procs=procs)
    assert attempts is not None
    assert [(n, s) for n, s, _, _ in attempts["hang"]] == [(1, "cancelled")]
    assert "never" not in attempts


# -- pools across processes -------------------------------------------------------------------


def serving(proc: Subprocess) -> None:
    """Wait for a process serving the two pooled DAGs to serve."""
    proc.wait_for(r"serving 2 DAGs as (\S+)", timeout=30)


async def most_running_at_once(database: Database, run_ids: list[int]) -> int:
    """The most attempts of these runs whose stored [started_at, finished_at)
    intervals overlap (an interrupted attempt counts until it was reaped)."""
    rows = await database.admin.fetch(
        "SELECT started_at, finished_at FROM task_runs WHERE run_id = ANY($1::bigint[]) "
        "AND started_at IS NOT NULL",
        run_ids,
    )
    edges = sorted(
        [(row["started_at"], 1) for row in rows] + [(row["finished_at"], -1) for row in rows]
    )
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


@pytest.mark.postgres
@pytest.mark.anyio
async def test_a_pool_of_four_holds_across_three_processes(
    database: Database, serve: Serve
) -> None:
    url = database.url(lease=10, poll_interval=0.5)
    slots = f"warehouse={shared_work.POOL_SLOTS}"
    procs = [serve("pooled", url, "--pool", slots, **database.task_env) for _ in range(3)]
    for proc in procs:
        serving(proc)

    run_ids = [await trigger("pooled_north", url), await trigger("pooled_south", url)]

    for run_id in run_ids:
        assert await database.wait_for_run(run_id, procs) == "success", tails(procs)
    done = await database.admin.fetchval(
        "SELECT count(*) FROM task_runs WHERE run_id = ANY($1::bigint[]) AND status = 'success'",
        run_ids,
    )
    assert done == 2 * shared_work.POOLED_TASKS
    assert await most_running_at_once(database, run_ids) == shared_work.POOL_SLOTS
    pids = await database.admin.fetch(
        "SELECT DISTINCT pid FROM executions WHERE run_id = ANY($1::bigint[])", run_ids
    )
    assert len(pids) >= 2, "one process ran every task"


@pytest.mark.postgres
@pytest.mark.anyio
async def test_a_process_killed_while_holding_slots_gives_them_back_within_a_lease(
    database: Database, serve: Serve
) -> None:
    lease = 3.0
    url = database.url(lease=lease, poll_interval=0.3)
    slots = f"warehouse={shared_work.POOL_SLOTS}"
    leader = serve("pooled", url, "--pool", slots, **database.task_env)
    serving(leader)
    assert leader.matches(LEADS), tails([leader])
    doomed = serve("pooled", url, "--pool", slots, "--role", "worker", **database.task_env)
    serving(doomed)
    survivor = serve("pooled", url, "--pool", slots, "--role", "worker", **database.task_env)
    serving(survivor)
    procs = [leader, doomed, survivor]

    out = await cli("trigger", "pooled_north", "--param", "hold=1", "--storage", url, "--json")
    run_id = int(json.loads(out)["id"])
    await poll_until(
        lambda: database.admin.fetchval(
            "SELECT count(*) FROM executions WHERE run_id = $1 AND pid = $2",
            run_id,
            doomed.proc.pid,
        ),
        "an attempt started by the doomed worker",
        timeout=30,
        procs=procs,
    )
    doomed.kill()
    killed_at = await database.admin.fetchval("SELECT now()")
    held = await database.admin.fetch(
        "SELECT t.task_id, t.attempt, t.lease_expires_at FROM task_runs AS t "
        "JOIN workers AS w ON w.id = t.lease_owner "
        "WHERE t.run_id = $1 AND w.pid = $2 AND t.status = 'running' AND t.outcome IS NULL",
        run_id,
        doomed.proc.pid,
    )
    assert held, "the killed worker held no attempt"

    assert await database.wait_for_run(run_id, [leader, survivor], timeout=90) == "success"
    rows = await database.admin.fetch(
        "SELECT task_id, attempt, finished_at FROM task_runs "
        "WHERE run_id = $1 AND status = 'interrupted'",
        run_id,
    )
    reaped = {(row["task_id"], row["attempt"]): row["finished_at"] for row in rows}
    assert reaped.keys() == {(row["task_id"], row["attempt"]) for row in held}
    for row in held:
        expired = row["lease_expires_at"]
        # Renewed last before the kill, the lease ran out at most a lease after it...
        assert (expired - killed_at).total_seconds() <= lease
        # ...and was given up when it ran out: the reaper sleeps until the earliest
        # lease runs out. 0.5 s allows for its wake-up and queries on a loaded machine.
        late = (reaped[row["task_id"], row["attempt"]] - expired).total_seconds()
        assert 0 <= late <= 0.5, f"reaped {late:.2f} s after its lease ran out"
    assert await most_running_at_once(database, [run_id]) == shared_work.POOL_SLOTS
