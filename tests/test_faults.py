"""Faults from outside: ``ppacer-async serve`` killed with SIGKILL at random moments of
a 2,000-task run, on SQLite and on one of three processes sharing PostgreSQL, and a
PostgreSQL server restart under them. Every run must end succeeded, no task may run
again once it succeeded, and the SQLite file must pass ``pragma integrity_check``.

The moments are random; the seed is printed (``-s``) with the counts, and
``FAULT_SEED`` replays it.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from .helpers import Subprocess, command_env
from .scripts import faulty
from .test_postgres_workers import poll_until

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

SCRIPT = Path(faulty.__file__).resolve()
COMMAND = [sys.executable, "-m", "ppacer_async"]
SERVING = r"serving 1 DAG\b"


@pytest.fixture
def rng() -> random.Random:
    seed = int(os.environ.get("FAULT_SEED", time.time_ns() % 1_000_000))
    print(f"\nFAULT_SEED={seed}")
    return random.Random(seed)


class Servers:
    """``ppacer-async serve faulty.py:chains`` processes, killed when the test ends."""

    def __init__(self, tmp_path: Path, side: Path) -> None:
        self.tmp_path = tmp_path
        self.side = side
        self.started: list[Subprocess] = []

    def start(self, url: str, *args: str, **env: str) -> Subprocess:
        argv = [*COMMAND, "serve", f"{SCRIPT}:chains", "--storage", url, *args]
        env = command_env(FAULTY_FILE=str(self.side), **env)
        self.started.append(Subprocess(argv, cwd=self.tmp_path, env=env))
        return self.started[-1]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    found = Servers(tmp_path, tmp_path / "executions.txt")
    yield found
    for proc in found.started:
        proc.close()


async def cli(*args: str) -> str:
    done = await anyio.run_process([*COMMAND, *args], env=command_env(), check=False)
    if done.returncode != 0:
        pytest.fail(f"ppacer-async {' '.join(args)}: {done.stdout.decode()}{done.stderr.decode()}")
    return done.stdout.decode()


def check_attempts(rows: list[tuple[str, int, str]], side: Path, run_id: int) -> Counter[str]:
    """Every task succeeded once, on its last attempt, after attempts cut short only;
    and no attempt after the successful one ever started. Returns the status counts."""
    by_task: dict[str, list[tuple[int, str]]] = {}
    for task_id, attempt, status in rows:
        by_task.setdefault(task_id, []).append((attempt, status))
    assert by_task.keys() == set(faulty.chains.tasks)
    succeeded: dict[str, int] = {}
    for task_id, attempts in by_task.items():
        attempts.sort()
        *before, (last, status) = attempts
        assert status == "success", (task_id, attempts)
        assert all(s == "interrupted" for _, s in before), (task_id, attempts)
        succeeded[task_id] = last
    started: dict[tuple[str, int], list[int]] = {}
    after_success = []
    for line in side.read_text().splitlines():
        run, name, number, pid, seen = line.split()
        if int(run) == run_id:
            started.setdefault((name, int(number)), []).append(int(pid))
            if seen == "1":
                after_success.append((name, int(number)))
    assert not after_success, f"attempts started once their task had succeeded: {after_success}"
    again = [key for key in started if key[1] > succeeded[key[0]]]
    assert not again, f"attempts started after their task succeeded: {again}"
    # An attempt cut short before its start was written runs again under the same
    # number (at-least-once), but only in another process, the first one being killed.
    twice = {key: pids for key, pids in started.items() if len(set(pids)) < len(pids)}
    assert not twice, f"attempts started twice by one process: {twice}"
    assert all((t, n) in started for t, n in succeeded.items())
    return Counter(status for _, _, status in rows)


async def test_ten_kills_of_serve_on_sqlite_lose_no_run_and_repeat_no_success(
    tmp_path: Path, servers: Servers, rng: random.Random
) -> None:
    db = tmp_path / "faults.db"
    url = f"sqlite:///{db}"
    check = {"FAULTY_SQLITE": str(db)}
    proc = servers.start(url, "--max-concurrent-tasks", "40", **check)
    proc.wait_for(SERVING, timeout=30)
    run_id = int(json.loads(await cli("trigger", "chains", "--storage", url, "--json"))["id"])
    kills = 0
    while kills < 10:
        await anyio.sleep(rng.uniform(0.3, 1.2))  # a random moment of the run
        assert proc.proc.poll() is None, proc.output()
        proc.kill()
        kills += 1
        proc = servers.start(url, "--max-concurrent-tasks", "40", **check)
        proc.wait_for(SERVING, timeout=30)

    async def finished() -> bool:
        with sqlite3.connect(db) as conn:
            query = "SELECT status FROM dag_runs WHERE id = ?"
            (found,) = conn.execute(query, (run_id,)).fetchone()
        return found in ("success", "failed")

    await poll_until(finished, f"the end of run {run_id}", timeout=120, procs=[proc])
    assert proc.stop() == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        statuses = conn.execute("SELECT id, status FROM dag_runs ORDER BY id").fetchall()
        rows = conn.execute(
            "SELECT task_id, attempt, status FROM task_runs WHERE run_id = ?", (run_id,)
        ).fetchall()
    assert all(status == "success" for _, status in statuses), statuses
    counts = check_attempts(rows, servers.side, run_id)
    print(f"SQLite: {kills} kills, {len(statuses)} runs succeeded, attempts {dict(counts)}")
    assert counts["interrupted"] >= 1


@pytest.mark.postgres
async def test_five_kills_of_one_of_three_processes_and_a_server_restart_on_postgresql(
    tmp_path: Path, servers: Servers, rng: random.Random
) -> None:
    from .test_postgres_workers import _connect, _fetchval_or_none, _throwaway_postgres

    server = _throwaway_postgres()
    await server.start()
    try:
        url = f"{server.dsn}?schema=ppacer&lease=2&poll_interval=0.5&max_pool_size=4"
        args = ("--max-concurrent-tasks", "20")
        check = {"FAULTY_DSN": server.dsn}
        procs = [servers.start(url, *args, **check) for _ in range(3)]
        for proc in procs:
            proc.wait_for(SERVING, timeout=30)
        run_id = int(json.loads(await cli("trigger", "chains", "--storage", url, "--json"))["id"])
        kills = 0
        while kills < 5:
            await anyio.sleep(rng.uniform(0.5, 1.5))
            victim = rng.randrange(3)
            assert procs[victim].proc.poll() is None, procs[victim].output()
            procs[victim].kill()
            kills += 1
            procs[victim] = servers.start(url, *args, **check)
            procs[victim].wait_for(SERVING, timeout=30)
        await server.restart()
        restarts = 1

        async def finished() -> Any:
            return await _fetchval_or_none(
                server.dsn,
                "SELECT status FROM ppacer.dag_runs WHERE id = $1 "
                "AND status IN ('success', 'failed')",
                run_id,
            )

        status = await poll_until(finished, f"the end of run {run_id}", timeout=120, procs=procs)
        conn = await _connect(server.dsn)
        try:
            rows = [
                (r["task_id"], r["attempt"], r["status"])
                for r in await conn.fetch(
                    "SELECT task_id, attempt, status FROM ppacer.task_runs WHERE run_id = $1",
                    run_id,
                )
            ]
        finally:
            await conn.close()
    finally:
        for proc in servers.started:
            proc.close()
        await server.stop()
    assert status == "success"
    counts = check_attempts(rows, servers.side, run_id)
    print(
        f"PostgreSQL: {kills} kills of one of 3 processes, {restarts} server restart, "
        f"run {status}, attempts {dict(counts)}"
    )
    assert counts["interrupted"] >= 1
