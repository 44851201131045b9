"""Commands on runs: ``runs``, ``show``, ``restart``, ``cancel``."""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime, timedelta

from .. import operations
from .._enums import AttemptReason, DagRunStatus, TaskStatus
from .._exceptions import TaskNotFound
from .._structures import DagInfo, DagRun, RunDetail, TaskDetail, TaskRun
from ..abc import Storage
from . import output
from .common import (
    EXIT_OK,
    Subparsers,
    add_json_option,
    add_storage_option,
    on_storage,
    parse_time,
    positive_int,
    run_id,
)
from .waiting import add_wait_options, check_timeout, wait_and_report

# -- runs -----------------------------------------------------------------------------------


def add_runs_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "runs",
        help="list runs, newest first",
        description="List DAG runs, newest first.",
    )
    parser.add_argument("--dag", metavar="DAG_ID", help="only the runs of this DAG")
    parser.add_argument(
        "--status",
        choices=[str(status) for status in DagRunStatus],
        help="only runs with this status",
    )
    parser.add_argument(
        "--since",
        metavar="TIME",
        help=(
            "only runs whose logical time is at or after TIME: ISO-8601 (a time without "
            "an offset is local time), or a duration back from now: 30m, 6h, 2d"
        ),
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=20,
        metavar="N",
        help="show at most N runs (default: %(default)s)",
    )
    add_storage_option(parser)
    add_json_option(parser, "the runs")
    parser.set_defaults(handler=cmd_runs)


_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: an ISO-8601 time, or a duration back from ``now`` (``6h``)."""
    found = _AGO.fullmatch(text.strip())
    if found is not None:
        return now - timedelta(seconds=float(found[1]) * _UNITS[found[2]])
    return parse_time(text, "--since")


def cmd_runs(args: argparse.Namespace) -> int:
    """List runs, newest first."""
    since = None if args.since is None else parse_since(args.since, output.now())
    return on_storage(args, lambda storage: _runs(storage, args, since))


async def _runs(storage: Storage, args: argparse.Namespace, since: datetime | None) -> int:
    status = None if args.status is None else DagRunStatus(args.status)
    runs = await operations.list_runs(
        storage, dag_id=args.dag, status=status, since=since, limit=args.limit
    )
    if args.json:
        output.print_json([output.run_json(run) for run in runs])
    elif runs:
        output.print_lines(output.runs_table(runs, output.now()))
    else:
        output.note("no runs match")
    return EXIT_OK


# -- show -----------------------------------------------------------------------------------


def add_show_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "show",
        help="show a run: each task's status, attempts, start, duration, last error",
        description=(
            "Show one run and each of its tasks: status, attempts, when the latest attempt "
            "started, how long it took, and the exception of the task's last error. With "
            "TASK_ID, show that task's attempts, each with its whole error and traceback."
        ),
    )
    parser.add_argument("run_id", metavar="RUN_ID", type=run_id)
    parser.add_argument(
        "task_id",
        metavar="TASK_ID",
        nargs="?",
        help="show only this task: every attempt, with its full error and traceback",
    )
    add_storage_option(parser)
    add_json_option(parser, "the run, its tasks and every attempt (with full errors)")
    parser.set_defaults(handler=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    """Show one run and its tasks."""
    return on_storage(args, lambda storage: _show(storage, args))


def _not_started(
    task_id: str, info: DagInfo | None, latest: dict[str, TaskRun], run: DagRun
) -> str:
    """How ``show`` names the state of a task without an attempt: ``scheduled``,
    ``pending``, or ``-`` once the run has finished."""
    return operations.waiting_state(task_id, info, latest, run) or "-"


async def _show(storage: Storage, args: argparse.Namespace) -> int:
    now = output.now()
    detail = await operations.get_run_detail(storage, args.run_id)
    run = detail.run
    if args.task_id is not None:
        return _show_task(detail, args.task_id, args.json, now)
    if args.json:
        tasks = []
        for task in detail.tasks:
            tr = task.latest
            # A task that succeeded in the end has no error; its failed attempts keep theirs.
            failed = None if tr is None or tr.status is TaskStatus.success else task.last_error
            tasks.append(
                {
                    "task_id": task.task_id,
                    "status": None if tr is None else str(tr.status),
                    "attempts": 0 if tr is None else tr.attempt,
                    "started_at": None if tr is None else output.iso(tr.started_at),
                    "finished_at": None if tr is None else output.iso(tr.finished_at),
                    "duration_seconds": None
                    if tr is None
                    else output.seconds(tr.started_at, tr.finished_at),
                    "error": None if failed is None else failed.error,
                }
            )
        output.print_json(
            {
                "run": output.run_json(run),
                "tasks": tasks,
                "attempts": [output.attempt_json(attempt) for attempt in detail.attempts],
            }
        )
        return EXIT_OK
    took = output.duration(output.took(run.started_at, run.finished_at, now))
    finished = "-" if run.finished_at is None else f"{output.local(run.finished_at)} (took {took})"
    header = [
        f"run {run.id} of {run.dag_id}: {run.status}",
        f"trigger       {run.trigger}",
        f"logical time  {output.local(run.logical_time)}",
        f"started       {output.local(run.started_at)}",
        f"finished      {finished}",
    ]
    if run.params:
        header.append(f"params        {json.dumps(run.params, ensure_ascii=False)}")
    if run.note:
        header.append(f"note          {run.note}")
    lines = [output.fit(line, output.WIDTH) for line in header]
    if lines[0] == header[0]:  # not cut: colour the status at its end
        lines[0] = f"run {run.id} of {run.dag_id}: {output.paint(str(run.status))}"
    output.print_lines(lines)
    print()
    rows: list[list[str]] = []
    notes: dict[int, str] = {}
    for task in detail.tasks:
        tr = task.latest
        if tr is None:
            rows.append([task.task_id, task.waiting or "-", "0", "-", "-"])
            continue
        rows.append(
            [
                task.task_id,
                str(tr.status),
                str(tr.attempt),
                output.local(tr.started_at),
                output.duration(output.took(tr.started_at, tr.finished_at, now)),
            ]
        )
        failed = task.last_error
        if failed is not None and tr.status is not TaskStatus.success:
            what = "why" if tr.status is TaskStatus.skipped else f"error (attempt {failed.attempt})"
            notes[len(rows)] = f"  {what}: {output.headline(failed.error)}"
        elif task.branch and tr.status is TaskStatus.success:
            chosen = tr.result if isinstance(tr.result, list) else [tr.result]
            taken = ", ".join(str(c) for c in chosen if c is not None) or "none"
            notes[len(rows)] = f"  branch taken: {taken}"
    lines = output.table(
        ["TASK", "STATUS", "ATTEMPTS", "STARTED", "DURATION"], rows, right={2}, shrink={0}
    )
    for index, line in enumerate(lines):
        print(line)
        if index in notes:
            output.print_lines(output.wrapped(notes[index]))
    if any(" error (attempt " in note for note in notes.values()):
        print()
        print(f"the whole error of a task: ppacer-async show {run.id} TASK_ID")
    return EXIT_OK


def _show_task(detail: RunDetail, task_id: str, as_json: bool, now: datetime) -> int:
    """Every attempt of one task, each with its whole error."""
    run = detail.run
    found = [task for task in detail.tasks if task.task_id == task_id]
    if not found:  # a mapped task: each of its instances
        found = [task for task in detail.tasks if task.task_id.startswith(f"{task_id}[")]
    if not found:
        known = ", ".join(task.task_id for task in detail.tasks) or "none"
        raise TaskNotFound(f"run {run.id} of {run.dag_id} has no task {task_id!r} (tasks: {known})")
    if len(found) > 1:
        if as_json:
            output.print_json(
                {
                    "run": output.run_json(run),
                    "task_id": task_id,
                    "instances": [
                        {
                            "task_id": task.task_id,
                            "attempts": [output.attempt_json(a) for a in task.attempts],
                        }
                        for task in found
                    ],
                }
            )
            return EXIT_OK
        for task in found:
            _print_task(detail, task, now)
            print()
        return EXIT_OK
    (task,) = found
    if as_json:
        output.print_json(
            {
                "run": output.run_json(run),
                "task_id": task.task_id,
                "upstream": list(task.upstream),
                "attempts": [output.attempt_json(attempt) for attempt in task.attempts],
            }
        )
        return EXIT_OK
    _print_task(detail, task, now)
    print()
    print(f"its logs: ppacer-async logs {run.id} {task.task_id}")
    return EXIT_OK


def _print_task(detail: RunDetail, task: TaskDetail, now: datetime) -> None:
    run = detail.run
    status = task.status or task.waiting or "-"
    print(f"task {task.task_id} of run {run.id} ({run.dag_id}): {output.paint(str(status))}")
    if task.upstream:
        print(f"upstream      {', '.join(task.upstream)}")
    if not task.attempts:
        print("no attempt yet")
    for tr in task.attempts:
        took = output.duration(output.took(tr.started_at, tr.finished_at, now))
        print()
        why = "" if tr.reason is AttemptReason.initial else f" ({tr.reason})"
        print(f"attempt {tr.attempt}: {output.paint(str(tr.status))}{why}")
        print(f"  started     {output.local(tr.started_at)}")
        print(f"  finished    {output.local(tr.finished_at)} (took {took})")
        if tr.error:
            print("  error:")
            for line in tr.error.splitlines():
                print(f"    {line}")


# -- restart --------------------------------------------------------------------------------


def add_restart_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "restart",
        help="re-run what did not succeed in a failed run",
        description=(
            "Queue a failed run again: its failed and upstream_failed tasks run again with "
            "new attempt numbers and a fresh retry budget; tasks that succeeded do not."
        ),
    )
    parser.add_argument("run_id", metavar="RUN_ID", type=run_id)
    add_wait_options(parser, "the run")
    add_storage_option(parser)
    add_json_option(parser, "the run")
    parser.set_defaults(handler=cmd_restart)


def cmd_restart(args: argparse.Namespace) -> int:
    """Queue a failed run again."""
    check_timeout(args, "--wait")
    return on_storage(args, lambda storage: _restart(storage, args))


async def _restart(storage: Storage, args: argparse.Namespace) -> int:
    # Read before the restart: the scheduler may add new attempts right after it.
    before = await operations.get_run_detail(storage, args.run_id)
    stale = {
        task.task_id: tr.attempt
        for task in before.tasks
        if (tr := task.latest) is not None and tr.status is not TaskStatus.success
    }
    run = await operations.restart(storage, args.run_id)
    if args.json and not args.wait:
        output.print_json(output.run_json(run))
    elif not args.json:
        print(f"queued run {run.id} of {run.dag_id} again: what did not succeed runs again")
    return await wait_and_report(storage, run, args, stale) if args.wait else EXIT_OK


# -- cancel ---------------------------------------------------------------------------------


def add_cancel_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "cancel",
        help="cancel a queued or running run",
        description=(
            "Cancel a queued or running run: the scheduler serving it cancels its running "
            "attempts (thread tasks see ctx.cancelled), tasks not started never start, "
            "and the run ends cancelled. Restart it with `ppacer-async restart RUN_ID`."
        ),
    )
    parser.add_argument("run_id", metavar="RUN_ID", type=run_id)
    parser.add_argument(
        "--note", metavar="TEXT", help="why, kept with the run (default: cancelled)"
    )
    add_storage_option(parser)
    add_json_option(parser, "the run")
    parser.set_defaults(handler=cmd_cancel)


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel a queued or running run."""
    return on_storage(args, lambda storage: _cancel(storage, args))


async def _cancel(storage: Storage, args: argparse.Namespace) -> int:
    run = await operations.cancel(storage, args.run_id, output.now(), args.note)
    if args.json:
        output.print_json(output.run_json(run))
    else:
        print(f"cancelled run {run.id} of {run.dag_id}")
    return EXIT_OK
