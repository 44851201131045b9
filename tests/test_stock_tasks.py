"""The stock tasks of ``ppacer_async.tasks``: shell commands, HTTP requests, no-ops."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from ppacer_async import DAG, DagDefinitionError, DagRunStatus, Scheduler, TaskStatus
from ppacer_async.abc import Storage
from ppacer_async.storage import MemoryStorage
from ppacer_async.tasks import EmptyTask, HttpTask, ShellTask

from .conftest import StorageFactory

pytestmark = pytest.mark.anyio


async def run_dag(dag: DAG, storage: Storage, params: dict | None = None, **options: Any):
    """Trigger one run of ``dag``; return its final state, task runs and logs."""
    async with Scheduler([dag], storage=storage, **options) as scheduler:
        run = await scheduler.trigger(dag.dag_id, params)
        done = await scheduler.wait_for_run(run.id, timeout=60)
        rows = {tr.task_id: tr for tr in await scheduler.task_runs(run.id)}
        logs = await scheduler.logs(run.id)
    return done, rows, logs


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be collected."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


# -- ShellTask ---------------------------------------------------------------------------


async def test_shell_task_streams_100000_lines_to_the_log_in_flat_memory(
    storage_factory: StorageFactory,
) -> None:
    lines = 100_000
    shell = ShellTask("count", ["seq", "1", str(lines)])
    dag = DAG("shell_lines").add(shell)
    storage = storage_factory()
    async with Scheduler([dag], storage=storage) as scheduler:
        tracemalloc.start()
        try:
            run = await scheduler.trigger("shell_lines")
            done = await scheduler.wait_for_run(run.id, timeout=100)
            retained, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        rows = await scheduler.task_runs(run.id)
        logs = await scheduler.logs(run.id, "count")
    assert done.status is DagRunStatus.success, rows
    assert rows[0].result == str(lines)
    # The log is complete and in order.
    assert [r.message for r in logs] == [str(n) for n in range(1, lines + 1)]
    assert {r.level for r in logs} == {"INFO"}
    # Holding every line at once would take well over 100 bytes a line (a stored
    # record is several objects); streaming holds a chunk and a commit's batch.
    bound = lines * 40
    assert peak - retained < bound, f"{(peak - retained) / lines:.0f} bytes a line in flight"
    if not isinstance(storage, MemoryStorage):  # memory storage keeps the log in memory
        assert peak < bound, f"peak {peak / lines:.0f} bytes a line"


@pytest.mark.parametrize("ignores_sigterm", [False, True])
async def test_shell_task_timeout_kills_its_grandchildren(
    storage_factory: StorageFactory, ignores_sigterm: bool
) -> None:
    # The shell starts a grandchild `sleep` and prints both pids, then waits.
    trap = "trap '' TERM; " if ignores_sigterm else ""
    shell = ShellTask(
        "hang",
        f"{trap}sleep 60 & echo $$ $!; wait",
        # Long enough for the shell to start and print even on a busy machine.
        timeout=timedelta(seconds=2),
        kill_grace=timedelta(seconds=0.3),
    )
    dag = DAG("shell_timeout").add(shell)
    done, rows, logs = await run_dag(dag, storage_factory())
    assert done.status is DagRunStatus.failed
    assert rows["hang"].status is TaskStatus.failed
    assert "timed out" in (rows["hang"].error or "")
    shell_pid, sleep_pid = (int(p) for p in logs[0].message.split())
    assert not running(shell_pid)
    assert not running(sleep_pid)


async def test_shell_task_stopping_the_scheduler_kills_its_grandchildren() -> None:
    started = anyio.Event()
    pids: list[int] = []

    class Seen(logging.Handler):
        # Called on the event loop: the task's log call comes from its coroutine.
        def emit(self, record: logging.LogRecord) -> None:
            pids.extend(int(p) for p in record.getMessage().split())
            started.set()

    logger = logging.getLogger("ppacer_async.task.shell_stop.hang")
    handler = Seen(logging.INFO)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        dag = DAG("shell_stop").add(ShellTask("hang", "sleep 60 & echo $$ $!; wait"))
        async with Scheduler([dag], storage="memory://") as scheduler:
            await scheduler.trigger("shell_stop")
            with anyio.fail_after(10):
                await started.wait()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert len(pids) == 2
    assert not any(running(pid) for pid in pids)


async def test_shell_task_ends_when_a_background_child_has_its_own_output() -> None:
    shell = ShellTask("start_server", "sleep 30 > /dev/null 2>&1 & echo $!")
    dag = DAG("shell_background").add(shell)
    with anyio.fail_after(20):  # well before the child's 30 s
        done, rows, _ = await run_dag(dag, MemoryStorage())
    child = int(rows["start_server"].result)
    try:
        assert done.status is DagRunStatus.success
        assert running(child)  # a finished command's children are left alone
    finally:
        os.kill(child, signal.SIGKILL)


async def test_shell_task_nonzero_exit_fails_with_code_and_last_lines(
    storage_factory: StorageFactory,
) -> None:
    shell = ShellTask(
        "broken",
        "for i in $(seq 1 30); do echo line $i; done; echo 'disk full' >&2; exit 3",
        tail_lines=5,
    )
    dag = DAG("shell_fail").add(shell)
    done, rows, logs = await run_dag(dag, storage_factory())
    assert done.status is DagRunStatus.failed
    error = rows["broken"].error or ""
    assert "CommandError: command" in error
    assert "exited with code 3; its last 5 lines:" in error
    assert "line 27\n  line 28\n  line 29\n  line 30\n  disk full" in error
    assert "line 26\n" not in error
    # Every output line, then the record of the failure with its traceback.
    output, failure = logs[:-1], logs[-1]
    assert len(output) == 31
    assert (output[-1].level, output[-1].message) == ("WARNING", "disk full")
    assert failure.level == "ERROR"
    assert "attempt 1 failed:" in failure.message
    assert "exited with code 3" in failure.message


async def test_shell_task_killed_by_a_signal_says_which(storage_factory: StorageFactory) -> None:
    dag = DAG("shell_signal").add(ShellTask("doomed", "kill -9 $$"))
    done, rows, _ = await run_dag(dag, storage_factory())
    assert done.status is DagRunStatus.failed
    assert "was killed by SIGKILL and printed nothing" in (rows["doomed"].error or "")


async def test_shell_task_gets_env_cwd_and_the_run_context(
    storage_factory: StorageFactory, tmp_path: Path
) -> None:
    shell = ShellTask(
        "greet",
        ["sh", "-c", 'echo "$GREETING from $(pwd) in $PPACER_DAG_ID/$PPACER_TASK_ID"; echo'],
        env={"GREETING": "hello"},
        cwd=tmp_path,
    )
    dag = DAG("shell_env").add(shell)
    done, rows, logs = await run_dag(dag, storage_factory())
    assert done.status is DagRunStatus.success
    # The result is the last line that is not blank.
    assert rows["greet"].result == f"hello from {tmp_path} in shell_env/greet"
    assert [r.message for r in logs] == [rows["greet"].result, ""]


async def test_shell_task_without_inherited_env_sees_only_its_own() -> None:
    os.environ["PPACER_TEST_LEAK"] = "leaked"
    try:
        shell = ShellTask(
            "env",
            ["/usr/bin/env"],
            env={"ONLY": "this"},
            inherit_env=False,
        )
        dag = DAG("shell_clean_env").add(shell)
        _, _, logs = await run_dag(dag, MemoryStorage())
    finally:
        del os.environ["PPACER_TEST_LEAK"]
    names = {r.message.split("=", 1)[0] for r in logs}
    assert "ONLY" in names and "PPACER_RUN_ID" in names
    assert "PPACER_TEST_LEAK" not in names and "PATH" not in names


async def test_shell_task_builds_its_command_from_the_context() -> None:
    shell = ShellTask(
        "report", lambda ctx: ["echo", f"report for {ctx.params['day']}"], result="last_line"
    )
    dag = DAG("shell_built").add(shell)
    done, rows, _ = await run_dag(dag, MemoryStorage(), params={"day": "2026-01-31"})
    assert done.status is DagRunStatus.success
    assert rows["report"].result == "report for 2026-01-31"


async def test_shell_task_exit_code_result_with_accepted_codes() -> None:
    # grep exits 1 when nothing matches: accepted here, and returned.
    shell = ShellTask(
        "search", "grep -q needle /dev/null", result="exit_code", ok_exit_codes=(0, 1)
    )
    dag = DAG("shell_codes").add(shell)
    done, rows, _ = await run_dag(dag, MemoryStorage())
    assert done.status is DagRunStatus.success
    assert rows["search"].result == 1


async def test_shell_task_splits_a_line_longer_than_the_limit() -> None:
    shell = ShellTask("long", "printf '%05000d\\n' 7", max_line_chars=2000)
    dag = DAG("shell_long").add(shell)
    _, rows, logs = await run_dag(dag, MemoryStorage())
    assert [len(r.message) for r in logs] == [2000, 2000, 1000]
    assert "".join(r.message for r in logs) == "0" * 4999 + "7"
    assert rows["long"].result == logs[-1].message


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"command": ""}, "command is empty"),
        ({"command": []}, "command must be a shell line"),
        ({"command": "true", "env": {"N": 1}}, "env must map names to strings"),
        ({"command": "true", "result": "stdout"}, "result must be 'last_line' or 'exit_code'"),
        ({"command": "true", "ok_exit_codes": ()}, "ok_exit_codes must be a non-empty"),
        ({"command": "true", "tail_lines": 0}, "tail_lines must be an int >= 1"),
        ({"command": "true", "timeout": timedelta(0)}, "timeout must be positive"),
    ],
)
def test_shell_task_invalid_options_are_refused(options: dict, expected: str) -> None:
    with pytest.raises(DagDefinitionError, match=expected):
        ShellTask("bad", **options)


def test_shell_task_definition_keeps_the_command_but_not_env_values() -> None:
    def definition(task: ShellTask) -> dict:
        return DAG("d").add(task).definition()["tasks"][task.id]

    first = definition(ShellTask("t", "backup --all", env={"TOKEN": "s3cret"}))
    assert first["command"] == "backup --all"
    assert "s3cret" not in json.dumps(first)
    assert definition(ShellTask("t", "backup --all", env={"TOKEN": "other"})) != first
    assert definition(ShellTask("t", "backup --some", env={"TOKEN": "s3cret"})) != first


# -- HttpTask ----------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/data.json":
            self.reply(200, "application/json; charset=utf-8", b'{"rows": [1, 2, 3]}')
        elif self.path == "/hello.txt":
            self.reply(200, "text/plain", b"hello, world")
        elif self.path.startswith("/query?"):
            self.reply(200, "text/plain", self.path.encode())
        else:
            self.reply(404, "text/plain", b"no such thing: " + self.path.encode() + b"x" * 2000)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        echo = {"got": json.loads(body), "token": self.headers.get("Authorization")}
        self.reply(201, "application/problem+json", json.dumps(echo).encode())

    def reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_http_task_results_and_failures(
    storage_factory: StorageFactory, web_server: str
) -> None:
    dag = DAG("http").add(
        HttpTask("json", "GET", f"{web_server}/data.json"),
        HttpTask("text", "get", f"{web_server}/hello.txt"),
        HttpTask(
            "post",
            "POST",
            lambda ctx: f"{web_server}/items",
            json=lambda ctx: {"day": ctx.params["day"]},
            headers={"Authorization": "Bearer t0ken"},
        ),
        HttpTask("query", "GET", f"{web_server}/query", params={"q": "a b"}),
        HttpTask("missing", "GET", f"{web_server}/nowhere"),
    )
    done, rows, logs = await run_dag(dag, storage_factory(), params={"day": "2026-01-31"})
    assert done.status is DagRunStatus.failed
    assert rows["json"].result == {"rows": [1, 2, 3]}
    assert rows["text"].result == "hello, world"
    assert rows["post"].result == {"got": {"day": "2026-01-31"}, "token": "Bearer t0ken"}
    assert rows["query"].result == "/query?q=a+b"
    missing = rows["missing"]
    assert missing.status is TaskStatus.failed and missing.result is None
    error = missing.error or ""
    assert "HttpStatusError" in error
    assert f"GET {web_server}/nowhere returned 404 Not Found: no such thing: /nowhere" in error
    # The start of the body: 500 characters of it.
    assert "/nowhere" + "x" * 477 + "…" in error and "x" * 478 not in error
    assert "HttpStatusError: GET" in error
    assert any(
        r.task_id == "json" and r.message.startswith(f"GET {web_server}/data.json: 200 OK")
        for r in logs
    )


async def test_http_task_empty_body_gives_none() -> None:
    import httpx

    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    dag = DAG("http_empty").add(
        HttpTask("ping", "DELETE", "https://api.example.com/things/1", transport=transport)
    )
    done, rows, _ = await run_dag(dag, MemoryStorage())
    assert done.status is DagRunStatus.success
    assert rows["ping"].status is TaskStatus.success and rows["ping"].result is None


async def test_http_task_failure_and_log_hide_the_url_password() -> None:
    import httpx

    transport = httpx.MockTransport(lambda request: httpx.Response(500, text="boom"))
    url = "https://robot:hunter2@api.example.com/export"
    dag = DAG("http_secret").add(HttpTask("export", "POST", url, transport=transport))
    done, rows, logs = await run_dag(dag, MemoryStorage())
    assert done.status is DagRunStatus.failed
    error = rows["export"].error or ""
    assert "POST https://robot:***@api.example.com/export returned 500" in error
    assert "hunter2" not in error
    assert logs and all("hunter2" not in r.message for r in logs)


@pytest.mark.parametrize(
    ("args", "options", "expected"),
    [
        (("FETCH", "https://a.example"), {}, "method must be one of"),
        (("GET", "ftp://a.example"), {}, "url must start with http:// or https://"),
        (("POST", "https://a.example"), {"json": {}, "content": "x"}, "json or content"),
    ],
)
def test_http_task_invalid_options_are_refused(args: tuple, options: dict, expected: str) -> None:
    with pytest.raises(DagDefinitionError, match=expected):
        HttpTask("bad", *args, **options)


def test_http_task_definition_keeps_no_header_values() -> None:
    task = HttpTask("t", "GET", "https://u:pw@a.example/x", headers={"Authorization": "secret"})
    text = json.dumps(DAG("d").add(task).definition())
    assert "secret" not in text and "pw" not in text


# -- EmptyTask ---------------------------------------------------------------------------


async def test_empty_task_joins_branches() -> None:
    a, b, c = (ShellTask(name, f"echo {name}") for name in "abc")
    dag = DAG("join").add([a, b] >> EmptyTask("joined") >> c)
    done, rows, _ = await run_dag(dag, MemoryStorage())
    assert done.status is DagRunStatus.success
    assert rows["joined"].status is TaskStatus.success and rows["joined"].result is None
    assert rows["c"].started_at is not None and rows["joined"].finished_at is not None
    assert rows["c"].started_at >= rows["joined"].finished_at


# -- the module --------------------------------------------------------------------------


def test_tasks_module_exports_its_public_names_without_importing_httpx() -> None:
    import subprocess
    import sys

    import ppacer_async
    import ppacer_async.tasks

    public = {
        name
        for name, value in vars(ppacer_async.tasks).items()
        if not name.startswith("_") and isinstance(value, type)
    }
    assert ppacer_async.tasks.__all__ == sorted(public)
    # The errors are also where every other error is.
    assert ppacer_async.tasks.CommandError is ppacer_async.CommandError
    assert ppacer_async.tasks.HttpStatusError is ppacer_async.HttpStatusError
    code = "import sys, ppacer_async.tasks; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
