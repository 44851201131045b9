"""Stock tasks: shell commands, HTTP requests and join points without writing a function.

``shell`` runs every minute: two commands look at this directory, and a third, built
from their results, reports them; each line a command prints is in the task's log
(``ppacer-async logs RUN``). ``http_check`` (only when httpx is installed:
``pip install 'ppacer-async[http]'``) has no schedule; trigger it with a URL::

    ppacer-async trigger http_check --param url=https://example.com/ --wait

Serve them with ``ppacer-async serve examples/stock_tasks.py --storage memory://``.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ppacer_async import DAG, TaskContext
from ppacer_async.schedules import Interval
from ppacer_async.tasks import EmptyTask, HttpTask, ShellTask

HERE = Path(__file__).parent

start = EmptyTask("start")
# A list runs the program directly; its last line printed is the result.
disk_usage = ShellTask("disk_usage", ["du", "-sk", "."], cwd=HERE)
# A string runs through the shell, pipes and all.
count_files = ShellTask("count_files", "find . -type f | wc -l", cwd=HERE)


def report_command(ctx: TaskContext) -> list[str]:
    kilobytes = ctx.upstream["disk_usage"].split()[0]
    files = ctx.upstream["count_files"].strip()
    return ["echo", f"{files} files, {kilobytes} KiB at {ctx.logical_time:%H:%M:%S}"]


report = ShellTask("report", report_command, timeout=timedelta(seconds=30))

shell = DAG(
    "shell",
    schedule=Interval(timedelta(minutes=1)),
    start=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    description="Runs shell commands and reports what they printed.",
)
shell.add(start >> [disk_usage, count_files] >> report)

dags = [shell]

if importlib.util.find_spec("httpx") is not None:
    http_check = DAG(
        "http_check",
        description="Fetches a URL; the result is its JSON or text body.",
        params={"url": "https://example.com/"},
    )
    http_check.add(
        HttpTask("fetch", "GET", lambda ctx: str(ctx.params["url"]), retries=2)
        >> EmptyTask("fetched")
    )
    dags.append(http_check)
