"""Commands on runs: ``runs``, ``show``, ``restart``, ``cancel``."""

from __future__ import annotations

import argparse
import json

from .. import operations
from .._enums import DagRunStatus, TaskStatus
from .._structures import DagInfo, DagRun, TaskRun
from ..abc import Storage
from . import output
from .common import (
    EXIT_OK,
    Subparsers,
    add_json_option,
    add_storage_option,
    on_storage,
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
        "--limit",
        type=positive_int,
        default=20,
        metavar="N",
        help="show at most N runs (default: %(default)s)",
    )
    add_storage_option(parser)
    add_json_option(parser, "the runs")
    parser.set_defaults(handler=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    """List runs, newest first."""
    return on_storage(args, lambda storage: _runs(storage, args))


async def _runs(storage: Storage, args: argparse.Namespace) -> int:
    status = None if args.status is None else DagRunStatus(args.status)
    runs = await operations.list_runs(storage, dag_id=args.dag, status=status, limit=args.limit)
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
            "started, how long it took, and the first line of the task's last error."
        ),
    )
    parser.add_argument("run_id", metavar="RUN_ID", type=run_id)
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
    if args.json:
        tasks = []
        for task in detail.tasks:
            tr = task.latest
            failed = task.last_error
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
    output.print_lines(output.fit(line, output.WIDTH) for line in header)
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
            print(output.fit(notes[index], output.WIDTH))
    return EXIT_OK


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
