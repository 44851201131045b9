"""``ppacer-async test``: run a DAG once in this process, on an in-memory storage unless
told otherwise, printing each task as it ends and the failures in full."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

import anyio

from .._dag import DAG
from .._enums import DagRunStatus, TaskStatus
from .._exceptions import PpacerError
from .._scheduler.scheduler import Scheduler
from .._structures import Alert, DagRun, TaskRun
from ..abc import Notifier
from ..storage import redact_url
from . import output
from .common import EXIT_OK, EXIT_RUN_FAILED, CliError, Subparsers, load_storage, positive_seconds
from .dags import parse_params
from .loading import load_dags
from .serve import add_log_level_option, configure_logging

#: Seconds between two looks at the run's attempts while it runs.
POLL_SECONDS = 0.05

_ENDED = frozenset(
    {
        TaskStatus.success,
        TaskStatus.failed,
        TaskStatus.up_for_retry,
        TaskStatus.upstream_failed,
        TaskStatus.interrupted,
    }
)


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "test",
        help="run a DAG once, now, in this process (a dry run); exit 0 when it succeeds",
        description=(
            "Run one DAG once, now, in this process, on an in-memory storage that "
            "leaves nothing behind (or on --storage), without its schedule. Each task is "
            "printed as it ends, the failures in full with their tracebacks. Exit 0 when "
            "the run succeeds, 1 when it fails."
        ),
    )
    parser.add_argument(
        "target",
        metavar="PATH_OR_MODULE[:ATTR]",
        help="a .py file or a dotted module name holding the DAG (as for serve)",
    )
    parser.add_argument(
        "dag_id", metavar="DAG_ID", nargs="?", help="the DAG to run (needed when there are several)"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a run param overriding the DAG's default (VALUE read as JSON when it parses)",
    )
    parser.add_argument(
        "--storage",
        metavar="URL",
        default="memory://",
        help="where the run is recorded (default: %(default)s, which keeps nothing)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="give up after this long and exit 1 (default: no limit)",
    )
    add_log_level_option(parser, default="WARNING")
    parser.set_defaults(handler=cmd_test)


class _Quiet(Notifier):
    async def send(self, alert: Alert) -> None:
        pass


def _choose(dags: list[DAG], dag_id: str | None, target: str) -> DAG:
    ids = ", ".join(dag.dag_id for dag in dags)
    if dag_id is None:
        if len(dags) == 1:
            return dags[0]
        raise CliError(
            f"{target} has {len(dags)} DAGs ({ids}); name the one to run: "
            f"ppacer-async test {target} DAG_ID"
        )
    for dag in dags:
        if dag.dag_id == dag_id:
            return dag
    raise CliError(f"{target} has no DAG {dag_id!r} (DAGs: {ids})")


def cmd_test(args: argparse.Namespace) -> int:
    """Run one DAG once in this process."""
    configure_logging(args.log_level)
    params = parse_params(args.param)
    dag = _choose(load_dags(args.target), args.dag_id, args.target)
    storage = load_storage(args.storage)
    # Failures are printed in full below: no alert lines besides them.
    scheduler = Scheduler([dag], storage=storage, notifier=_Quiet())
    try:
        return anyio.run(_run, scheduler, dag.dag_id, params, args)
    except PpacerError as exc:
        raise CliError(str(exc)) from None


async def _run(
    scheduler: Scheduler, dag_id: str, params: dict[str, Any], args: argparse.Namespace
) -> int:
    async with scheduler._serving_one_run():
        run = await scheduler.trigger(dag_id, params)
        print(f"testing {dag_id}: run {run.id} on {redact_url(args.storage)}", flush=True)
        printed: set[tuple[str, int]] = set()
        finished: DagRun | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(_follow, scheduler, run.id, printed)
            with contextlib.suppress(TimeoutError):
                finished = await scheduler.wait_for_run(run.id, args.timeout)
            tg.cancel_scope.cancel()
        attempts = await scheduler.task_runs(run.id)
        _print_ended(attempts, printed)
    if finished is None:
        print(f"run {run.id} did not finish within {args.timeout:g} s; stopped it")
        return EXIT_RUN_FAILED
    took = output.duration(output.took(finished.started_at, finished.finished_at, output.now()))
    print(f"run {finished.id} of {dag_id}: {output.paint(str(finished.status))} in {took}")
    latest: dict[str, TaskRun] = {}
    for tr in attempts:
        latest[tr.task_id] = tr
    failed = [tr for tr in latest.values() if tr.status is TaskStatus.failed and tr.error]
    for tr in failed:
        print()
        print(f"{tr.task_id} failed (attempt {tr.attempt}):")
        for line in (tr.error or "").splitlines():
            print(f"    {line}")
    return EXIT_OK if finished.status is DagRunStatus.success else EXIT_RUN_FAILED


async def _follow(scheduler: Scheduler, run_id: int, printed: set[tuple[str, int]]) -> None:
    """Print attempts as they end, until cancelled."""
    while True:
        _print_ended(await scheduler.task_runs(run_id), printed)
        await anyio.sleep(POLL_SECONDS)


def _print_ended(attempts: list[TaskRun], printed: set[tuple[str, int]]) -> None:
    ended = [
        tr for tr in attempts if tr.status in _ENDED and (tr.task_id, tr.attempt) not in printed
    ]
    ended.sort(key=lambda tr: (tr.finished_at or tr.scheduled_at or output.now(), tr.task_id))
    for tr in ended:
        printed.add((tr.task_id, tr.attempt))
        took = output.duration(output.took(tr.started_at, tr.finished_at, output.now()))
        line = f"  {tr.task_id:<20} {output.paint(f'{tr.status:<16}')} {took:>9}"
        if tr.attempt > 1:
            line += f"  attempt {tr.attempt}"
        if tr.error and tr.status is not TaskStatus.failed:
            line += f"  {output.headline(tr.error)}"
        print(line, flush=True)
