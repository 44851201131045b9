"""The web app's cost: W1 while the app serves and one event-stream client follows
the run, against W1 alone; and how fast ``GET /api/v1/runs`` answers with 100,000
runs stored in SQLite.

    .venv/bin/python -m benchmarks.web                 # both parts
    .venv/bin/python -m benchmarks.web --only w1 --storage memory,sqlite --repeat 5
    .venv/bin/python -m benchmarks.web --only runs --runs 100000 --requests 400

W1 with the web app: the scheduler and uvicorn share one event loop (as in
``ppacer-async serve --web``); the client is another process reading
``/api/v1/events?dag_id=w1_fanout`` over TCP, connected before the clock starts.
Repetitions alternate without and with the app (which goes first alternates too);
the medians are compared (target: within 10%).

The runs listing: a SQLite file filled through the storage API with runs of 10 DAGs,
most finished; ``ppacer-async web`` serves it in a process of its own; requests over
TCP, one at a time, for several query shapes; p50 and p99 per shape (target: p99 <=
50 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import attrs
import httpx

from ppacer_async import DAG, DagRunStatus, RunTrigger
from ppacer_async._structures import Changes
from ppacer_async.cli.web import WebSettings, bind, serve_app
from ppacer_async.storage.sqlite import SQLiteStorage
from ppacer_async.web import create_app

from ._common import (
    fresh_storage,
    median,
    open_scheduler,
    percentile,
    quiet_logging,
    settle,
    timed_run,
)
from .w1_fanout import DAG_ID, LEAVES, build_fan_out

LOOPBACK = WebSettings(host="127.0.0.1", port=0, token=None, read_only=False)

#: The event-stream client where curl is missing: copies the stream to stdout.
CLIENT = """
import sys, httpx
with httpx.stream("GET", sys.argv[1], timeout=None) as response:
    for chunk in response.iter_raw():
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
"""


@asynccontextmanager
async def web_app(scheduler: Any) -> AsyncIterator[str]:
    """Serve the app for ``scheduler`` on its loop; yield its base URL."""
    sock = bind(LOOPBACK)
    app = create_app(scheduler)
    port = sock.getsockname()[1]
    async with anyio.create_task_group() as tg:
        await tg.start(serve_app, app, sock)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            tg.cancel_scope.cancel()


class EventClient:
    """The follower process (curl, or Python where curl is missing), started and
    connected outside the timing; what it received is counted afterwards."""

    def __init__(self, url: str) -> None:
        self.output = tempfile.NamedTemporaryFile(prefix="ppacer-sse-", delete=False)  # noqa: SIM115
        curl = shutil.which("curl")
        argv = [curl, "-sN", url] if curl else [sys.executable, "-c", CLIENT, url]
        self.proc = subprocess.Popen(argv, stdout=self.output)

    def wait_connected(self) -> None:
        deadline = time.monotonic() + 10
        while b": connected" not in self._read():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the event-stream client did not connect")
            time.sleep(0.01)

    def _read(self) -> bytes:
        with open(self.output.name, "rb") as received:
            return received.read()

    def stop(self) -> int:
        """Stop the client; return how many events it received."""
        self.proc.terminate()
        self.proc.wait(timeout=10)
        count = self._read().count(b"\nevent: ") + self._read().startswith(b"event: ")
        self.output.close()
        os.unlink(self.output.name)
        return count


async def w1_once(dag: DAG, kind: str, with_web: bool) -> tuple[float, int | None]:
    """One W1 run; with the web app: the seconds and the events the client got."""
    async with fresh_storage(kind, None) as storage, open_scheduler(dag, storage) as scheduler:
        if not with_web:
            return await timed_run(scheduler, DAG_ID), None
        async with web_app(scheduler) as url:
            client = EventClient(f"{url}/api/v1/events?dag_id={DAG_ID}")
            try:
                await anyio.to_thread.run_sync(client.wait_connected)
                seconds = await timed_run(scheduler, DAG_ID)
                # Not timed: give the client a moment to read the last events.
                await anyio.sleep(1.0)
            finally:
                count = await anyio.to_thread.run_sync(client.stop)
        return seconds, count


async def bench_w1(kinds: Sequence[str], repeat: int) -> dict[str, Any]:
    dag = build_fan_out(LEAVES)
    tasks = LEAVES + 2
    results: dict[str, Any] = {}
    for kind in kinds:
        plain: list[float] = []
        web: list[float] = []
        events: list[int] = []
        await w1_once(dag, kind, False)  # warm-up: imports, first-run allocations
        for n in range(repeat):
            # Alternate which goes first, so that neither always follows the other.
            for with_web in (False, True) if n % 2 == 0 else (True, False):
                seconds, count = await w1_once(dag, kind, with_web)
                (web if with_web else plain).append(seconds)
                if with_web:
                    events.append(count or 0)
        plain_rate, web_rate = tasks / median(plain), tasks / median(web)
        results[kind] = {
            "tasks_per_s_without_web": round(plain_rate),
            "tasks_per_s_with_web_and_sse_client": round(web_rate),
            "slowdown_percent": round(100 * (1 - web_rate / plain_rate), 1),
            "events_received": events,
            "seconds_without_web": [round(x, 4) for x in plain],
            "seconds_with_web": [round(x, 4) for x in web],
        }
        print(f"W1 {kind}: {json.dumps(results[kind])}", flush=True)
    return results


# -- GET /api/v1/runs with many runs -------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAGS = 10


async def fill(storage: SQLiteStorage, runs: int) -> None:
    """``runs`` runs of ``DAGS`` DAGs, one a minute; all but the newest 1% finished."""
    for n in range(DAGS):
        await storage.sync_dag(f"dag_{n}", f"hash{n}", {"tasks": {}, "params": {}}, T0)
    batch: list[Any] = []
    active_from = runs - runs // 100
    for i in range(runs):
        moment = T0 + timedelta(minutes=i)
        run = await storage.create_run(
            dag_id=f"dag_{i % DAGS}",
            logical_time=moment,
            trigger=RunTrigger.schedule,
            params={},
            dag_version=1,
            created_at=moment,
        )
        assert run is not None
        if i < active_from:
            status = DagRunStatus.failed if i % 7 == 0 else DagRunStatus.success
            batch.append(attrs.evolve(run, status=status, started_at=moment, finished_at=moment))
        if len(batch) >= 2000:
            await storage.commit(Changes(dag_runs=batch))
            batch = []
    if batch:
        await storage.commit(Changes(dag_runs=batch))


async def bench_runs(runs: int, requests: int) -> dict[str, Any]:
    directory = tempfile.mkdtemp(prefix="ppacer-bench-web-")
    path = os.path.join(directory, "runs.db")
    async with SQLiteStorage(path=path) as storage:
        started = time.perf_counter()
        await fill(storage, runs)
        print(f"filled {runs} runs in {time.perf_counter() - started:.1f} s", flush=True)
    middle = runs // 2
    shapes = {
        "newest 50": {},
        "dag_id": {"dag_id": "dag_3"},
        "status=failed": {"status": "failed"},
        "status=queued": {"status": "queued"},
        "since": {"since": (T0 + timedelta(minutes=runs - 500)).isoformat()},
        "before (page in the middle)": {"before": str(middle)},
        "dag_id + before": {"dag_id": "dag_3", "before": str(middle)},
    }
    results: dict[str, Any] = {"runs": runs, "requests_per_shape": requests}
    server = _start_web_command(path)
    try:
        url = await anyio.to_thread.run_sync(_wait_for_url, server)
        for name, params in shapes.items():
            results[name] = await anyio.to_thread.run_sync(_time_requests, url, params, requests)
            print(f"GET /api/v1/runs {name}: {json.dumps(results[name])}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
    os.remove(path)
    os.rmdir(directory)
    return results


def _start_web_command(path: str) -> subprocess.Popen[str]:
    """``ppacer-async web`` over the file, in a process of its own, as users run it."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ppacer_async",
            "web",
            "--storage",
            f"sqlite:///{path}",
            "--bind",
            "127.0.0.1:0",
            "--log-level",
            "INFO",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_url(server: subprocess.Popen[str]) -> str:
    assert server.stderr is not None
    for line in server.stderr:
        found = re.search(r"web app at (http://\S+?)/?$", line.strip())
        if found:
            return found.group(1)
    raise RuntimeError("ppacer-async web ended before it listened")


def _time_requests(url: str, params: dict[str, str], requests: int) -> dict[str, Any]:
    """Send ``requests`` requests one at a time (after a few to warm up); p50 and p99."""
    with httpx.Client(base_url=url) as http:
        for _ in range(5):
            http.get("/api/v1/runs", params=params).raise_for_status()
        settle()
        times = []
        for _ in range(requests):
            began = time.perf_counter()
            response = http.get("/api/v1/runs", params=params)
            times.append((time.perf_counter() - began) * 1000)
            response.raise_for_status()
    return {
        "p50_ms": round(percentile(times, 50), 2),
        "p99_ms": round(percentile(times, 99), 2),
        "returned": len(response.json()["runs"]),
    }


async def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.web", description=__doc__)
    parser.add_argument("--only", default="w1,runs", help="w1, runs or both (default)")
    parser.add_argument("--storage", default="memory,sqlite", help="W1's storages")
    parser.add_argument("--repeat", type=int, default=5, help="W1 repetitions of each kind")
    parser.add_argument("--runs", type=int, default=100_000, help="runs stored for the listing")
    parser.add_argument("--requests", type=int, default=300, help="requests per query shape")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    quiet_logging()
    import logging

    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    parts = set(args.only.split(","))
    results: dict[str, Any] = {}
    if "w1" in parts:
        results["w1_web"] = await bench_w1(args.storage.split(","), args.repeat)
    if "runs" in parts:
        results["runs_listing"] = await bench_runs(args.runs, args.requests)
    if args.out:
        await anyio.Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1:]))
