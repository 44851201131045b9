"""Commands on a DAG: ``dags``, ``trigger``, ``pause``, ``unpause``, ``backfill``.

Like every command but ``serve``, they work on the storage alone, so they work while a
scheduler serves the same storage from another process: it notices queued runs and
paused DAGs within about a second.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .. import operations
from .._text import plural
from ..abc import Storage
from . import output
from .common import (
    EXIT_OK,
    CliError,
    Subparsers,
    add_json_option,
    add_storage_option,
    on_storage,
    parse_time,
)
from .waiting import add_wait_options, check_timeout, wait_and_report, wait_for_runs

# -- dags ----------------------------------------------------------------------------------


def add_dags_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "dags",
        help="list DAGs: schedule, paused or not, next due time, last run",
        description=(
            "List the DAGs recorded in the storage (a DAG is recorded when a scheduler "
            "serving it starts): schedule, paused or not, when the schedule is next due, "
            "and the status of the newest run."
        ),
    )
    add_storage_option(parser)
    add_json_option(parser, "the DAGs")
    parser.set_defaults(handler=cmd_dags)
    commands = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    show = commands.add_parser(
        "show",
        help="print a DAG's graph of tasks: as text, or as Graphviz dot or Mermaid",
        description=(
            "Print the tasks of a recorded DAG and what each waits for: as text, or as a "
            "Graphviz dot or Mermaid graph to render elsewhere."
        ),
    )
    show.add_argument("dag_id", metavar="DAG_ID")
    show.add_argument(
        "--format",
        choices=("text", "dot", "mermaid"),
        default="text",
        help="text (default), dot (Graphviz) or mermaid",
    )
    add_storage_option(show)
    show.set_defaults(handler=cmd_dags_show)


def cmd_dags_show(args: argparse.Namespace) -> int:
    """Print one DAG's graph."""
    return on_storage(args, lambda storage: _dags_show(storage, args))


async def _dags_show(storage: Storage, args: argparse.Namespace) -> int:
    detail = await operations.get_dag(storage, args.dag_id, output.now())
    graph = {task.task_id: task.upstream for task in detail.tasks}
    render = {"text": graph_text, "dot": graph_dot, "mermaid": graph_mermaid}[args.format]
    output.print_lines(render(detail.summary.dag_id, graph))
    return EXIT_OK


def _downstream(graph: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {task_id: [] for task_id in graph}
    for task_id, upstream in graph.items():
        for parent in upstream:
            found.setdefault(parent, []).append(task_id)
    return found


def graph_text(dag_id: str, graph: dict[str, tuple[str, ...]]) -> list[str]:
    """Each task (in definition order) and the tasks that wait for it."""
    children = _downstream(graph)
    edges = sum(len(upstream) for upstream in graph.values())
    lines = [f"{dag_id}: {plural(len(graph), 'task')}, {plural(edges, 'edge')}"]
    for task_id in graph:
        lines.append(f"  {task_id}")
        after = children.get(task_id, [])
        for index, child in enumerate(after):
            lines.append(f"  {'└' if index == len(after) - 1 else '├'}─> {child}")
    return lines


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def graph_dot(dag_id: str, graph: dict[str, tuple[str, ...]]) -> list[str]:
    lines = [f"digraph {_quoted(dag_id)} {{", "  rankdir=LR;"]
    lines.extend(f"  {_quoted(task_id)};" for task_id in graph)
    for task_id, upstream in graph.items():
        lines.extend(f"  {_quoted(parent)} -> {_quoted(task_id)};" for parent in upstream)
    lines.append("}")
    return lines


def graph_mermaid(dag_id: str, graph: dict[str, tuple[str, ...]]) -> list[str]:
    # Mermaid node ids are plain words: number the tasks and show their ids as labels.
    number = {task_id: f"t{index}" for index, task_id in enumerate(graph)}
    lines = [f"%% {dag_id}", "flowchart LR"]
    lines.extend(f'  {number[task_id]}["{task_id}"]' for task_id in graph)
    for task_id, upstream in graph.items():
        lines.extend(f"  {number[parent]} --> {number[task_id]}" for parent in upstream)
    return lines


def cmd_dags(args: argparse.Namespace) -> int:
    """List the recorded DAGs."""
    return on_storage(args, lambda storage: _dags(storage, args))


async def _dags(storage: Storage, args: argparse.Namespace) -> int:
    listed = await operations.list_dags(storage, output.now())
    if args.json:
        output.print_json(
            [
                {
                    "dag_id": dag.dag_id,
                    "schedule": dag.schedule,
                    "paused": dag.paused,
                    "next_due": output.iso(dag.next_due),
                    "last_run": None
                    if dag.last_run is None
                    else {"id": dag.last_run.id, "status": str(dag.last_run.status)},
                    "tasks": dag.tasks,
                    "version": dag.version,
                    "served_by": [output.worker_json(w) for w in dag.served_by],
                }
                for dag in listed
            ]
        )
        return EXIT_OK
    if not listed:
        output.note(
            "no DAGs in this storage yet; a DAG is recorded when a scheduler serving it "
            "starts: ppacer-async serve FILE"
        )
        return EXIT_OK
    rows = [
        [
            dag.dag_id,
            dag.schedule or "-",
            "yes" if dag.paused else "no",
            "yes" if dag.served else "no",
            output.local(dag.next_due),
            "-" if dag.last_run is None else f"{dag.last_run.status} (run {dag.last_run.id})",
        ]
        for dag in listed
    ]
    output.print_lines(
        output.table(
            ["DAG", "SCHEDULE", "PAUSED", "SERVED", "NEXT DUE", "LAST RUN"],
            rows,
            shrink={0, 5, 1},
        )
    )
    unserved = [dag.dag_id for dag in listed if not dag.served]
    if unserved:
        whose = "its" if len(unserved) == 1 else "their"
        output.note(
            f"no live scheduler serves {', '.join(unserved)}: {whose} runs wait until one "
            "does (ppacer-async serve FILE)"
        )
    return EXIT_OK


# -- trigger --------------------------------------------------------------------------------


def add_trigger_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "trigger",
        help="queue a manual run of a DAG (--wait to follow it to the end)",
        description=(
            "Queue a manual run of a DAG now. A scheduler serving the storage starts it "
            "within about a second, paused or not."
        ),
    )
    parser.add_argument("dag_id", metavar="DAG_ID")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=(
            "a run param overriding the DAG's default; VALUE is read as JSON when it "
            "parses (10, true, [1,2], null), else kept as text; repeat for more"
        ),
    )
    add_wait_options(parser, "the run")
    add_storage_option(parser)
    add_json_option(parser, "the run")
    parser.set_defaults(handler=cmd_trigger)


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """``["limit=10", "day=2026-01-31"]`` -> ``{"limit": 10, "day": "2026-01-31"}``.

    :raises CliError: an item has no ``=`` or no key.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise CliError(
                f"--param {item!r} is not KEY=VALUE; write e.g. --param limit=10 "
                "or --param day=2026-01-31"
            )
        try:
            # NaN and Infinity are not JSON: like any other non-JSON text, a string.
            value: Any = json.loads(text, parse_constant=_not_json)
        except ValueError:
            value = text
        params[key.strip()] = value
    return params


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def cmd_trigger(args: argparse.Namespace) -> int:
    """Queue a manual run; with ``--wait``, follow it to the end."""
    params = parse_params(args.param)
    check_timeout(args, "--wait")
    return on_storage(args, lambda storage: _trigger(storage, args, params))


def not_served(dag_id: str) -> str:
    return (
        f"no live scheduler serves DAG {dag_id!r} on this storage, so its runs wait in the "
        "queue until one does; start one with: ppacer-async serve FILE --storage URL"
    )


async def check_served(storage: Storage, dag_id: str, waiting: bool) -> None:
    """Say when nothing serves a DAG: a warning, or with ``--wait`` an error (before
    anything is queued), since the wait would never end.

    :raises CliError: ``waiting`` and nothing serves it.
    """
    await operations.recorded_dag(storage, dag_id)
    if await operations.serving(storage, dag_id):
        return
    if waiting:
        raise CliError(f"{not_served(dag_id)}; or queue it without --wait")
    output.note(f"warning: {not_served(dag_id)}")


async def _trigger(storage: Storage, args: argparse.Namespace, params: dict[str, Any]) -> int:
    await check_served(storage, args.dag_id, args.wait)
    run = await operations.trigger(storage, args.dag_id, params, output.now())
    if args.json and not args.wait:
        output.print_json(output.run_json(run))
    elif not args.json:
        shown = f" with params {json.dumps(run.params)}" if run.params else ""
        print(output.fit(f"queued run {run.id} of {run.dag_id}{shown}", output.WIDTH), flush=True)
    return await wait_and_report(storage, run, args) if args.wait else EXIT_OK


# -- pause and unpause ----------------------------------------------------------------------


def add_pause_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "pause",
        help="stop a DAG's schedule from creating runs",
        description=(
            "Pause a DAG: its schedule creates no runs until it is unpaused. Runs already "
            "queued or running go on, and manual triggers still run."
        ),
    )
    parser.add_argument("dag_id", metavar="DAG_ID")
    add_storage_option(parser)
    parser.set_defaults(handler=cmd_pause)


def cmd_pause(args: argparse.Namespace) -> int:
    """Pause a DAG's schedule."""
    return on_storage(args, lambda storage: _pause(storage, args))


async def _pause(storage: Storage, args: argparse.Namespace) -> int:
    if (await operations.recorded_dag(storage, args.dag_id)).paused:
        print(
            f"{args.dag_id} is already paused; unpause it with ppacer-async unpause {args.dag_id}"
        )
        return EXIT_OK
    await operations.pause(storage, args.dag_id)
    print(f"paused {args.dag_id}: its schedule creates no runs until it is unpaused")
    return EXIT_OK


def add_unpause_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "unpause",
        help="resume a paused DAG's schedule",
        description="Resume the schedule of a paused DAG.",
    )
    parser.add_argument("dag_id", metavar="DAG_ID")
    parser.add_argument(
        "--from",
        dest="from_",
        choices=("now", "last"),
        default="now",
        help=(
            "now: skip the schedule points missed while paused (recorded as skipped); "
            "last: treat them by the DAG's catchup rule, from its last schedule point "
            "(default: %(default)s)"
        ),
    )
    add_storage_option(parser)
    parser.set_defaults(handler=cmd_unpause)


def cmd_unpause(args: argparse.Namespace) -> int:
    """Resume a DAG's schedule."""
    return on_storage(args, lambda storage: _unpause(storage, args))


async def _unpause(storage: Storage, args: argparse.Namespace) -> int:
    now = output.now()
    if not (await operations.recorded_dag(storage, args.dag_id)).paused:
        due = (await operations.get_dag(storage, args.dag_id, now)).summary.next_due
        print(f"{args.dag_id} is not paused; next due {output.local(due)}")
        return EXIT_OK
    await operations.unpause(storage, args.dag_id, args.from_, now)
    due = (await operations.get_dag(storage, args.dag_id, now)).summary.next_due
    if args.from_ == "now":
        print(f"unpaused {args.dag_id}: the points missed while paused are skipped")
    else:
        print(f"unpaused {args.dag_id}: missed points follow its catchup rule")
    print(f"next due {output.local(due)}")
    return EXIT_OK


# -- backfill -------------------------------------------------------------------------------


def add_backfill_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "backfill",
        help="create runs for the schedule points of a time range",
        description=(
            "Queue a run for every schedule point of a DAG from START to END (both "
            "included) that has no run yet. The runs start oldest first, as many at once "
            "as the DAG's max_active_runs allows. Repeating a backfill creates nothing twice."
        ),
    )
    parser.add_argument("dag_id", metavar="DAG_ID")
    for flag in ("--start", "--end"):
        parser.add_argument(
            flag,
            required=True,
            metavar="TIME",
            help=("ISO-8601, e.g. 2026-01-31T06:00+00:00; a time without an offset is local time"),
        )
    add_wait_options(parser, "every run it queues")
    add_storage_option(parser)
    add_json_option(parser, "the created runs")
    parser.set_defaults(handler=cmd_backfill)


def cmd_backfill(args: argparse.Namespace) -> int:
    """Queue runs for the schedule points of a range."""
    start = parse_time(args.start, "--start")
    end = parse_time(args.end, "--end")
    check_timeout(args, "--wait")
    return on_storage(args, lambda storage: _backfill(storage, args, start, end))


async def _backfill(
    storage: Storage, args: argparse.Namespace, start: datetime, end: datetime
) -> int:
    now = output.now()
    detail = await operations.get_dag(storage, args.dag_id, now)
    if args.wait:
        await check_served(storage, args.dag_id, waiting=True)
    runs = await operations.backfill(storage, args.dag_id, start, end, now)
    early = sum(1 for run in runs if detail.start is not None and run.logical_time < detail.start)
    if early:
        output.note(
            f"warning: {plural(early, 'run')} of the backfill {'is' if early == 1 else 'are'} "
            f"for points before the DAG's start, {output.local(detail.start)}"
        )
    if args.json and not args.wait:
        output.print_json([output.run_json(run) for run in runs])
        return EXIT_OK
    if not runs:
        if not args.json:
            print(f"nothing to backfill: every schedule point of {args.dag_id} in the range")
            print(f"{output.local(start)} to {output.local(end)} already has a run")
        else:
            output.print_json([])
        return EXIT_OK
    if not args.json:
        print(f"queued {plural(len(runs), 'run')} of {args.dag_id}, started oldest first:")
        output.print_lines(output.runs_table(runs, output.now()))
    if not args.wait:
        return EXIT_OK
    return await wait_for_runs(storage, runs, args)
