"""The operating commands (``dags``, ``trigger``, ``runs``, ``show``, ``logs``, ``restart``,
``pause``, ``unpause``, ``backfill``, ``db``), driven as a user would: the real command in
subprocesses, against a SQLite file that a scheduler in another process serves."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from .helpers import Subprocess, assert_usage_error, command_env

pytestmark = pytest.mark.slow

COMMAND = [sys.executable, "-m", "ppacer_async"]
HOUR = timedelta(hours=1)
#: A POSIX zone (needs no tz database): UTC+05:30, so local times differ from UTC.
LOCAL_TZ = "IST-5:30"
LOCAL_OFFSET = timedelta(hours=5, minutes=30)
LOCAL_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+05:30")

OPS_DAGS = """\
from datetime import datetime, timedelta
from pathlib import Path

import anyio

from ppacer_async import DAG, TaskContext, task
from ppacer_async.schedules import Interval

HERE = Path(__file__).resolve().parent


@task
async def extract(ctx: TaskContext) -> int:
    ctx.log.info("extract on attempt %d", ctx.attempt)
    return 3


@task
async def transform(ctx: TaskContext) -> int:
    ctx.log.info("transform got %s", ctx.upstream["extract"])
    return ctx.upstream["extract"] * 2


@task
async def load(ctx: TaskContext) -> None:
    ctx.log.info("load stored %s rows", ctx.upstream["transform"])


chain = DAG("chain", params={"size": 1}).add(extract >> transform >> load)


@task
async def flaky(ctx: TaskContext) -> None:
    ctx.log.info("flaky on attempt %d", ctx.attempt)
    marker = HERE / "flaky.marker"
    if not marker.exists():
        marker.write_text("failed once")
        raise RuntimeError("fails the first time only")


@task
async def after(ctx: TaskContext) -> None:
    ctx.log.info("after flaky")


flaky_dag = DAG("flaky").add(flaky >> after)


@task
async def tick(ctx: TaskContext) -> None:
    ctx.log.info("tick for %s", ctx.logical_time.isoformat())


hourly = DAG(
    "hourly",
    schedule=Interval(timedelta(hours=1)),
    start=datetime.fromisoformat("{start}"),
    catchup=True,
    max_active_runs=2,
).add(tick)


@task
async def wait_for_gate(ctx: TaskContext) -> None:
    gate = Path(ctx.params["gate"])
    ctx.log.info("waiting for %s", gate.name)
    while not gate.exists():
        await anyio.sleep(0.02)
    ctx.log.info("gate opened")


@task
async def finish(ctx: TaskContext) -> None:
    ctx.log.info("finished")


gated = DAG("gated").add(wait_for_gate >> finish)
"""


def _env(**extra: str) -> dict[str, str]:
    return command_env(TZ=LOCAL_TZ, **extra)


class Process(Subprocess):
    """A ``ppacer-async`` process whose output lines a thread collects."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        super().__init__([*COMMAND, *args], cwd=cwd, env=env)


@attrs.frozen
class Ops:
    """A scheduler serving ``url`` from ``home``, and the ``hourly`` DAG's start."""

    home: Path
    url: str
    served: Process
    start: datetime

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run ``ppacer-async ARGS`` on the served storage (given by $PPACER_STORAGE)."""
        return subprocess.run(
            [*COMMAND, *args],
            cwd=self.home,
            env=_env(PPACER_STORAGE=self.url),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.cli(*args)
        assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def scheduled_runs(self) -> dict[int, datetime]:
        """Runs of ``hourly`` that its schedule created: id -> logical time."""
        return {
            run["id"]: _utc(run["logical_time"])
            for run in self.json("runs", "--dag", "hourly", "--limit", "1000")
            if run["trigger"] in ("schedule", "catchup")
        }


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0), text
    return moment


def _search(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text, re.M)
    assert found is not None, f"no {pattern!r} in:\n{text}"
    return found


def _messages(output: str) -> list[str]:
    """Log lines without their time and level."""
    return [re.sub(r"^\S+ \S+ \S+\s+", "", line) for line in output.splitlines()]


def _fits(text: str) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert not too_wide, too_wide


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    home = tmp_path_factory.mktemp("ops")
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 3 * HOUR
    (home / "opsdags.py").write_text(OPS_DAGS.replace("{start}", start.isoformat()))
    url = f"sqlite:///{home / 'ops.db'}"
    served = Process(["serve", "opsdags.py", "--storage", url], home, _env())
    try:
        served.wait_for(r"serving 4 DAGs")
        # Catch-up of the hourly DAG is done once the current point has its run.
        served.wait_for(r"run \d+ of hourly started \(schedule")
        yield Ops(home=home, url=url, served=served, start=start)
        served.proc.send_signal(signal.SIGINT)
        assert served.wait() == 0, served.output()
        assert "Traceback" not in served.output()
    finally:
        served.close()


def _trigger(ops: Ops, *args: str) -> int:
    run: dict[str, Any] = ops.json("trigger", *args)
    return int(run["id"])


# -- listings --------------------------------------------------------------------------


def test_dags_lists_schedule_paused_next_due_and_last_run(ops: Ops) -> None:
    table = ops.ok("dags").stdout
    lines = table.splitlines()

    assert re.split(r"\s{2,}", lines[0]) == [
        "DAG",
        "SCHEDULE",
        "PAUSED",
        "SERVED",
        "NEXT DUE",
        "LAST RUN",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["chain", "flaky", "gated", "hourly"]
    hourly = lines[-1]
    assert "every 1:00:00" in hourly
    assert LOCAL_TIME.search(hourly), hourly
    _fits(table)

    listed = {dag["dag_id"]: dag for dag in ops.json("dags")}
    assert listed["hourly"]["schedule"] == "every 1:00:00"
    assert listed["hourly"]["paused"] is False
    next_due = _utc(listed["hourly"]["next_due"])
    assert datetime.now(UTC) < next_due <= datetime.now(UTC) + HOUR
    assert listed["hourly"]["last_run"]["status"] in ("queued", "running", "success")
    assert listed["chain"]["schedule"] is None
    assert listed["chain"]["next_due"] is None
    assert listed["chain"]["tasks"] == 3


def test_runs_lists_newest_first_in_local_time_within_80_columns(ops: Ops) -> None:
    runs = ops.json("runs", "--dag", "hourly", "--limit", "1000")
    scheduled = [r for r in runs if r["trigger"] in ("schedule", "catchup")]
    times = {_utc(r["logical_time"]) for r in scheduled}
    assert {ops.start + n * HOUR for n in range(4)} <= times
    assert [r["id"] for r in runs] == sorted((r["id"] for r in runs), reverse=True)

    table = ops.ok("runs", "--dag", "hourly", "--limit", "2").stdout
    lines = table.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == [
        "RUN",
        "DAG",
        "LOGICAL TIME",
        "TRIGGER",
        "STATUS",
        "DURATION",
    ]
    assert len(lines) == 3
    assert all(LOCAL_TIME.search(line) for line in lines[1:]), table
    first = next(r for r in runs if _utc(r["logical_time"]) == ops.start)
    local = (ops.start + LOCAL_OFFSET).strftime("%Y-%m-%d %H:%M:%S+05:30")
    full = ops.ok("runs", "--dag", "hourly", "--limit", "1000").stdout
    assert re.search(rf"^\s*{first['id']}\s+hourly\s+{re.escape(local)}\s+catchup", full, re.M)
    _fits(full)

    succeeded = ops.json("runs", "--status", "success", "--limit", "1000")
    assert succeeded
    assert {r["status"] for r in succeeded} == {"success"}


# -- trigger, show, logs ---------------------------------------------------------------


def test_trigger_wait_shows_progress_and_exits_0_on_success(ops: Ops) -> None:
    done = ops.ok("trigger", "chain", "--param", "size=5", "--param", "label=big", "--wait")

    lines = done.stdout.splitlines()
    run_id = int(_search(r"^queued run (\d+) of chain with params ", lines[0])[1])
    assert re.fullmatch(rf"run {run_id} of chain success in [\d.]+ m?s", lines[-1])
    progress = done.stderr.splitlines()
    assert progress, "no progress lines"
    assert all(re.fullmatch(r"[0-3]/3 tasks done \(run \d+ \w+\)", p) for p in progress)
    assert progress[-1] == f"3/3 tasks done (run {run_id} success)"

    (run,) = [r for r in ops.json("runs", "--dag", "chain") if r["id"] == run_id]
    assert run["status"] == "success"
    assert run["trigger"] == "manual"
    assert run["params"] == {"size": 5, "label": "big"}  # JSON when it parses, else text


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_trigger_wait_draws_a_progress_bar_on_a_terminal(ops: Ops) -> None:
    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [*COMMAND, "trigger", "chain", "--wait"],
            cwd=ops.home,
            env=_env(PPACER_STORAGE=ops.url),
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=30,
            check=False,
        )
        os.close(follower)
        follower = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: everything written has been read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)

    assert done.returncode == 0
    run_id = int(_search(r"queued run (\d+)", done.stdout)[1])
    frames = drawn.decode().replace("\r\n", "\n").split("\r")
    assert frames[0] == ""
    assert frames[-1].rstrip() == f"[{'#' * 20}] 3/3 tasks  run {run_id} success"
    assert all(re.fullmatch(r"\[[#-]{20}\] [0-3]/3 tasks  run \d+ \w+ *\n?", f) for f in frames[1:])


def test_trigger_json_prints_the_queued_run(ops: Ops) -> None:
    run = ops.json("trigger", "chain", "--param", 'tags=["a", "b"]', "--param", "on=true")

    assert run["dag_id"] == "chain"
    assert run["status"] == "queued"
    assert run["params"] == {"size": 1, "tags": ["a", "b"], "on": True}
    _utc(run["logical_time"])


def test_trigger_reads_nan_and_infinity_params_as_strings_not_numbers(ops: Ops) -> None:
    run = ops.json("trigger", "chain", "--param", "low=NaN", "--param", "high=Infinity")

    assert run["params"] == {"size": 1, "low": "NaN", "high": "Infinity"}


def test_show_and_logs_of_a_successful_run(ops: Ops) -> None:
    run_id = int(_search(r"queued run (\d+)", ops.ok("trigger", "chain", "--wait").stdout)[1])

    shown = ops.ok("show", str(run_id)).stdout
    assert shown.splitlines()[0] == f"run {run_id} of chain: success"
    tasks = shown[shown.index("TASK") :].splitlines()
    assert re.split(r"\s{2,}", tasks[0]) == ["TASK", "STATUS", "ATTEMPTS", "STARTED", "DURATION"]
    assert [row.split()[:3] for row in tasks[1:]] == [
        ["extract", "success", "1"],
        ["transform", "success", "1"],
        ["load", "success", "1"],
    ]
    assert all(LOCAL_TIME.search(row) for row in tasks[1:])
    _fits(shown)

    details = ops.json("show", str(run_id))
    assert details["run"]["id"] == run_id
    assert [(t["task_id"], t["status"], t["attempts"]) for t in details["tasks"]] == [
        ("extract", "success", 1),
        ("transform", "success", 1),
        ("load", "success", 1),
    ]
    assert {a["result"] for a in details["attempts"]} == {3, 6, None}

    logs = ops.ok("logs", str(run_id)).stdout
    assert _messages(logs) == [
        "extract#1 extract on attempt 1",
        "transform#1 transform got 3",
        "load#1 load stored 6 rows",
    ]
    assert all(re.match(rf"{LOCAL_TIME.pattern} INFO ", line) for line in logs.splitlines())

    only = ops.ok("logs", str(run_id), "transform").stdout.splitlines()
    assert len(only) == 1
    assert only[0].endswith("transform#1 transform got 3")

    records = [
        json.loads(line) for line in ops.ok("logs", str(run_id), "--json").stdout.splitlines()
    ]
    assert [r["message"] for r in records] == [
        "extract on attempt 1",
        "transform got 3",
        "load stored 6 rows",
    ]
    assert all(r["time"].endswith("+00:00") for r in records)


def test_failed_run_exits_1_and_restart_reruns_what_failed(ops: Ops) -> None:
    failed = ops.cli("trigger", "flaky", "--wait")

    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    run_id = int(_search(r"queued run (\d+) of flaky", failed.stdout)[1])
    assert f"run {run_id} of flaky failed in" in failed.stdout
    assert "flaky (attempt 1): RuntimeError: fails the first time only" in failed.stdout

    shown = ops.ok("show", str(run_id)).stdout
    assert re.search(r"^flaky\s+failed\s+1\s", shown, re.M)
    assert re.search(r"^after\s+upstream_failed\s+1\s", shown, re.M)
    assert "  error (attempt 1): RuntimeError: fails the first time only" in shown.splitlines()

    restarted = ops.ok("restart", str(run_id), "--wait")
    assert f"run {run_id} of flaky success in" in restarted.stdout
    assert restarted.stderr.splitlines()[-1] == f"2/2 tasks done (run {run_id} success)"

    (run,) = [r for r in ops.json("runs", "--dag", "flaky") if r["id"] == run_id]
    assert (run["status"], run["trigger"]) == ("success", "restart")
    attempts = ops.json("show", str(run_id))["attempts"]
    assert [(a["task_id"], a["attempt"], a["status"]) for a in attempts] == [
        ("after", 1, "upstream_failed"),
        ("after", 2, "success"),
        ("flaky", 1, "failed"),
        ("flaky", 2, "success"),
    ]

    first = ops.ok("logs", str(run_id), "flaky", "--attempt", "1").stdout
    assert _messages(first)[:2] == ["flaky#1 flaky on attempt 1", "flaky#1 attempt 1 failed:"]
    assert first.splitlines()[-1] == "    RuntimeError: fails the first time only"
    second = ops.ok("logs", str(run_id), "--attempt", "2").stdout
    assert _messages(second) == [
        "flaky#2 flaky on attempt 2",
        "after#2 after flaky",
    ]

    again = ops.cli("restart", str(run_id))
    assert again.returncode == 2
    assert again.stderr.splitlines() == [
        f"ppacer-async: error: run {run_id} is success; "
        "only failed or cancelled runs can be restarted"
    ]


def test_logs_follow_streams_new_records_until_the_run_ends(ops: Ops) -> None:
    gate = ops.home / "gate-follow"
    run_id = _trigger(ops, "gated", "--param", f"gate={gate}")
    follow = Process(["logs", str(run_id), "--follow"], ops.home, _env(PPACER_STORAGE=ops.url))
    try:
        follow.wait_for(r"wait_for_gate#1 waiting for gate-follow$")
        assert follow.proc.poll() is None  # still following while the run runs
        gate.touch()
        assert follow.wait() == 0
    finally:
        follow.close()
    assert _messages("\n".join(follow.lines)) == [
        "wait_for_gate#1 waiting for gate-follow",
        "wait_for_gate#1 gate opened",
        "finish#1 finished",
    ]


def test_wait_timeout_exits_1_and_the_run_goes_on(ops: Ops) -> None:
    gate = ops.home / "gate-timeout"
    waited = ops.cli("trigger", "gated", "--param", f"gate={gate}", "--wait", "--timeout", "0.5")

    assert waited.returncode == 1
    run_id = int(_search(r"queued run (\d+)", waited.stdout)[1])
    assert waited.stderr.splitlines()[-1] == (
        f"ppacer-async: error: run {run_id} did not finish within 0.5 s; it goes on in the "
        f"scheduler: follow it with ppacer-async show {run_id}"
    )
    gate.touch()
    followed = ops.cli("logs", str(run_id), "--follow", "--json")
    assert followed.returncode == 0
    assert json.loads(followed.stdout.splitlines()[-1])["message"] == "finished"


# -- pause, unpause, backfill ----------------------------------------------------------


def test_pause_then_unpause_from_now_creates_no_flood_of_missed_runs(ops: Ops) -> None:
    assert ops.ok("pause", "hourly").stdout.startswith("paused hourly")
    listed = {dag["dag_id"]: dag for dag in ops.json("dags")}
    assert listed["hourly"]["paused"] is True
    assert listed["hourly"]["next_due"] is None
    assert re.search(r"^hourly\s+every 1:00:00\s+yes\s+yes\s+-\s", ops.ok("dags").stdout, re.M)

    # Manual runs still run while paused; once one has, the scheduler has seen the pause.
    ops.ok("trigger", "hourly", "--wait")
    before = ops.scheduled_runs()

    unpaused_at = datetime.now(UTC)
    done = ops.ok("unpause", "hourly", "--from", "now")
    assert done.stdout.startswith("unpaused hourly: the points missed while paused are skipped")
    listed = {dag["dag_id"]: dag for dag in ops.json("dags")}
    assert listed["hourly"]["paused"] is False
    assert _utc(listed["hourly"]["next_due"]) > unpaused_at
    ops.ok("trigger", "hourly", "--wait")

    after = ops.scheduled_runs()
    assert before.items() <= after.items()
    assert all(after[i] >= unpaused_at for i in after.keys() - before.keys())

    ops.ok("pause", "hourly")
    assert ops.ok("unpause", "hourly", "--from", "last").stdout.startswith(
        "unpaused hourly: missed points follow its catchup rule"
    )
    assert {dag["dag_id"]: dag for dag in ops.json("dags")}["hourly"]["paused"] is False


def test_backfill_creates_missing_runs_oldest_first_and_never_twice(ops: Ops) -> None:
    first = ops.start - 10 * HOUR
    naive_local = (first + LOCAL_OFFSET).replace(tzinfo=None).isoformat()

    created = ops.json("backfill", "hourly", "--start", naive_local, "--end", f"{first + 2 * HOUR}")
    assert [_utc(r["logical_time"]) for r in created] == [first + n * HOUR for n in range(3)]
    assert [r["trigger"] for r in created] == ["backfill"] * 3
    ids = [r["id"] for r in created]
    assert ids == sorted(ids)

    more = ops.json("backfill", "hourly", "--start", f"{first}", "--end", f"{first + 3 * HOUR}")
    assert [_utc(r["logical_time"]) for r in more] == [first + 3 * HOUR]
    ids += [r["id"] for r in more]

    table = ops.ok(
        "backfill", "hourly", "--start", f"{first - HOUR}", "--end", f"{first + 3 * HOUR}"
    ).stdout
    assert table.splitlines()[0] == "queued 1 run of hourly, started oldest first:"
    local = (first - HOUR + LOCAL_OFFSET).strftime("%Y-%m-%d %H:%M:%S+05:30")
    (row,) = table.splitlines()[2:]
    assert re.fullmatch(rf"\s*(\d+)\s+hourly\s+{re.escape(local)}\s+backfill\s+\w+.*", row)
    ids.append(int(row.split()[0]))
    _fits(table)

    nothing = ops.ok(
        "backfill", "hourly", "--start", f"{first - HOUR}", "--end", f"{first + 3 * HOUR}"
    ).stdout
    assert nothing.startswith("nothing to backfill: every schedule point of hourly")

    for run_id in ids:
        ops.served.wait_for(rf"run {run_id} of hourly success")
    started = [int(m[1]) for m in ops.served.matches(r"run (\d+) of hourly started \(backfill")]
    assert started == sorted(started)
    statuses = {r["id"]: r["status"] for r in ops.json("runs", "--dag", "hourly", "--limit", "100")}
    assert [statuses[i] for i in ids] == ["success"] * 5


# -- db ----------------------------------------------------------------------------------


def test_db_info_shows_schema_version_and_counts(ops: Ops) -> None:
    info = ops.ok("db", "info", "--storage", ops.url).stdout
    assert re.search(r"^schema version\s+\d+$", info, re.M)
    assert re.search(r"^dags\s+4$", info, re.M)

    counts = ops.json("db", "info")
    assert counts["dags"] == 4
    assert counts["schema_version"] >= 1
    assert counts["dag_runs"] > 0
    assert counts["task_logs"] > 0


def test_db_upgrade_is_safe_to_repeat(ops: Ops, tmp_path: Path) -> None:
    version = ops.json("db", "info")["schema_version"]
    for _ in range(2):
        assert ops.ok("db", "upgrade").stdout == f"schema version {version} (up to date)\n"

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    created = ops.ok("db", "upgrade", "--storage", fresh).stdout
    assert created == f"created {fresh} at schema version {version}\n"
    assert ops.ok("db", "upgrade", "--storage", fresh).stdout == (
        f"schema version {version} (up to date)\n"
    )


# -- bad usage ---------------------------------------------------------------------------

UNKNOWN_DAG = "no DAG 'nope' in this storage (known: chain, flaky, gated, hourly)"
UNKNOWN_RUN = "no run with id 99999; list runs with `ppacer-async runs`"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["trigger", "nope"], UNKNOWN_DAG, id="trigger-unknown-dag"),
        pytest.param(["runs", "--dag", "nope"], UNKNOWN_DAG, id="runs-unknown-dag"),
        pytest.param(["pause", "nope"], UNKNOWN_DAG, id="pause-unknown-dag"),
        pytest.param(["unpause", "nope"], UNKNOWN_DAG, id="unpause-unknown-dag"),
        pytest.param(
            ["backfill", "nope", "--start", "2026-01-01", "--end", "2026-01-02"],
            UNKNOWN_DAG,
            id="backfill-unknown-dag",
        ),
        pytest.param(["show", "99999"], UNKNOWN_RUN, id="show-unknown-run"),
        pytest.param(["logs", "99999"], UNKNOWN_RUN, id="logs-unknown-run"),
        pytest.param(["restart", "99999"], UNKNOWN_RUN, id="restart-unknown-run"),
        pytest.param(["logs", "1", "nope"], "run 1 of hourly has no task 'nope'", id="logs-task"),
        pytest.param(
            ["restart", "1"],
            "only failed or cancelled runs can be restarted",
            id="restart-not-failed",
        ),
        pytest.param(
            ["trigger", "chain", "--param", "size"],
            "--param 'size' is not KEY=VALUE; write e.g. --param limit=10",
            id="param-without-equals",
        ),
        pytest.param(
            ["trigger", "chain", "--param", "=1"], "--param '=1' is not KEY=VALUE", id="param-key"
        ),
        pytest.param(
            ["backfill", "hourly", "--start", "yesterday", "--end", "2026-01-02"],
            "--start 'yesterday' is not an ISO-8601 time",
            id="backfill-bad-time",
        ),
        pytest.param(
            ["backfill", "hourly", "--start", "2026-01-02", "--end", "2026-01-01"],
            "is before its start",
            id="backfill-reversed",
        ),
        pytest.param(
            ["backfill", "chain", "--start", "2026-01-01", "--end", "2026-01-02"],
            "DAG 'chain' has no schedule",
            id="backfill-unscheduled",
        ),
    ],
)
def test_bad_usage_exits_2_with_one_line(ops: Ops, args: list[str], expected: str) -> None:
    done = ops.cli(*args)

    assert_usage_error(done, expected)


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        pytest.param("redis://localhost", "unknown storage URL scheme 'redis'", id="scheme"),
        pytest.param("sqlite:///{home}", "is a directory, not a database file", id="directory"),
        pytest.param("sqlite:///{home}/opsdags.py", "is not a SQLite database", id="not-a-db"),
        pytest.param("sqlite:///{home}/missing.db", "no database at", id="missing-file"),
        pytest.param("memory://", "memory:// keeps its data inside one process", id="memory"),
    ],
)
@pytest.mark.parametrize("command", [["dags"], ["trigger", "chain"]])
def test_unusable_storage_url_exits_2_with_one_line(
    ops: Ops, command: list[str], storage: str, expected: str
) -> None:
    url = storage.replace("{home}", str(ops.home))
    done = ops.cli(*command, "--storage", url)

    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ppacer-async: error: ")
    assert expected in lines[0]
    assert not (ops.home / "missing.db").exists()
