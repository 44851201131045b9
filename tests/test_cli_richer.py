"""The command line on richer DAGs: ``show`` names mapped instances (``process[3]``),
the branch taken and why tasks were skipped; ``cancel`` reaches the scheduler serving
the run from another process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ppacer_async import DAG, DagRunStatus, Scheduler, TaskContext, task

from .helpers import Subprocess, assert_usage_error, command_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

COMMAND = [sys.executable, "-m", "ppacer_async"]


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args, "--storage", url],
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_show_lists_instances_in_order_the_branch_taken_and_why_tasks_skipped(
    tmp_path: Path,
) -> None:
    @task.branch
    async def pick(ctx: TaskContext) -> str:
        return "split"

    @task
    async def split(ctx: TaskContext) -> list[int]:
        return list(range(12))

    @task
    async def process(ctx: TaskContext) -> int:
        return ctx.item * 2

    @task
    async def other(ctx: TaskContext) -> None: ...

    dag = DAG("richer").add(pick >> [split >> process.map("split"), other])
    url = f"sqlite:///{tmp_path / 'r.db'}"
    async with Scheduler([dag], storage=url) as scheduler:
        run = await scheduler.trigger("richer")
        assert (await scheduler.wait_for_run(run.id, timeout=10)).status is DagRunStatus.success

    done = cli(url, "show", str(run.id))
    assert done.returncode == 0, done.stderr
    tasks = [line.split()[0] for line in done.stdout.splitlines()[7:] if line[:1].isalnum()]
    assert tasks == ["pick", "split", "process", *[f"process[{k}]" for k in range(12)], "other"]
    assert "  branch taken: split" in done.stdout
    assert "  why: skipped: branch 'pick' did not choose it" in done.stdout
    shown = json.loads(cli(url, "show", str(run.id), "--json").stdout)
    statuses = {t["task_id"]: t["status"] for t in shown["tasks"]}
    assert statuses["other"] == "skipped" and statuses["process[11]"] == "success"


DAGS = """\
import anyio

from ppacer_async import DAG, TaskContext, task


@task
async def forever(ctx: TaskContext) -> None:
    ctx.log.info("waiting")
    await anyio.sleep_forever()


@task
async def never(ctx: TaskContext) -> None: ...


dags = [DAG("stuck").add(forever >> never)]
"""


def test_cancel_from_the_command_line_reaches_the_serving_process(tmp_path: Path) -> None:
    (tmp_path / "stuck.py").write_text(DAGS)
    url = f"sqlite:///{tmp_path / 's.db'}"
    served = Subprocess(
        [*COMMAND, "serve", "stuck.py", "--storage", url], cwd=tmp_path, env=command_env()
    )
    try:
        served.wait_for(r"serving 1 DAG")
        triggered = cli(url, "trigger", "stuck", "--json")
        run_id = json.loads(triggered.stdout)["id"]
        served.wait_for(r"task forever attempt 1 started")
        done = cli(url, "cancel", str(run_id), "--note", "wrong input")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"cancelled run {run_id} of stuck"
        served.wait_for(rf"run {run_id} of stuck cancelled")
        shown = json.loads(cli(url, "show", str(run_id), "--json").stdout)
        assert shown["run"]["status"] == "cancelled"
        assert shown["run"]["note"] == "wrong input"
        assert {t["task_id"]: t["status"] for t in shown["tasks"]} == {
            "forever": "cancelled",
            "never": None,
        }
        listed = json.loads(cli(url, "runs", "--status", "cancelled", "--json").stdout)
        assert [(r["id"], r["status"], r["note"]) for r in listed] == [
            (run_id, "cancelled", "wrong input")
        ]
        assert_usage_error(
            cli(url, "cancel", str(run_id)), "only queued or running runs can be cancelled"
        )
        served.proc.send_signal(signal.SIGINT)
        assert served.wait() == 0, served.output()
    finally:
        served.close()
