"""``--wait``: follow a run that another process executes until it ends, with progress
on stderr."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import TextIO

import anyio

from .. import operations
from .._enums import DagRunStatus, TaskStatus
from .._structures import DagRun, RunDetail
from ..abc import Storage
from . import output
from .common import EXIT_OK, EXIT_RUN_FAILED, CliError, positive_seconds, print_error

#: Seconds between two reads of a run that another process executes. There is no event
#: that crosses processes, so ``--wait`` and ``--follow`` poll.
POLL_SECONDS = 0.2
#: After this many seconds in the queue, ``--wait`` says why a run may not start.
QUEUED_HINT_SECONDS = 10.0
#: Cells of the progress bar that ``--wait`` draws on a terminal.
BAR_CELLS = 20
#: Statuses of a task's latest attempt that count as done in the progress of a run.
_DONE = frozenset({TaskStatus.success, TaskStatus.failed, TaskStatus.upstream_failed})


class Progress:
    """Shows how far a run is: a bar redrawn in place on a terminal, else one plain line
    per change (so a log file or a pipe gets readable lines)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._drawn = 0
        self._last: tuple[int, int, DagRunStatus] | None = None
        self._counted: tuple[int, int] | None = None

    def update(self, run: DagRun, done: int, total: int) -> None:
        key = (done, total, run.status)
        if key == self._last:
            return
        self._last = key
        if self._tty:
            filled = BAR_CELLS if total == 0 else BAR_CELLS * min(done, total) // total
            line = (
                f"[{'#' * filled}{'-' * (BAR_CELLS - filled)}] {done}/{total} tasks  "
                f"run {run.id} {run.status}"
            )
            padding = " " * max(self._drawn - len(line), 0)
            self._stream.write(f"\r{line}{padding}")
            self._drawn = len(line)
        else:
            self._stream.write(f"{done}/{total} tasks done (run {run.id} {run.status})\n")
        self._stream.flush()

    def count(self, done: int, total: int) -> None:
        """How many of several runs have finished."""
        if (done, total) == self._counted:
            return
        self._counted = (done, total)
        end = "\r" if self._tty else "\n"
        if self._tty:
            self._drawn = 1
        self._stream.write(f"{done}/{total} runs finished{end}")
        self._stream.flush()

    def say(self, message: str) -> None:
        """A line of its own, below the bar."""
        self.close()
        self._stream.write(f"{message}\n")
        self._stream.flush()

    def close(self) -> None:
        """Leave the bar as it is and move to a new line."""
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = 0
            self._last = None


def _done(detail: RunDetail, stale: Mapping[str, int]) -> int:
    """Tasks whose latest attempt is done and not one of ``stale``."""
    return sum(
        1
        for task in detail.tasks
        if (tr := task.latest) is not None
        and tr.status in _DONE
        and tr.attempt > stale.get(tr.task_id, 0)
    )


async def wait_for_run(
    storage: Storage,
    run: DagRun,
    total: int,
    stale: Mapping[str, int],
    timeout: float | None,
    progress: Progress,
) -> RunDetail | None:
    """Poll a run until it finishes; ``None`` when ``timeout`` seconds pass first.

    :param stale: tasks to run again (a restarted run), with their latest attempt then:
        those attempts do not count as done.
    """
    started = anyio.current_time()
    hinted = False
    try:
        while True:
            detail = await operations.get_run_detail(storage, run.id)
            current = detail.run
            progress.update(current, _done(detail, stale), total)
            if current.status.finished:
                return detail
            waited = anyio.current_time() - started
            if timeout is not None and waited >= timeout:
                return None
            if (
                not hinted
                and current.status is DagRunStatus.queued
                and waited >= QUEUED_HINT_SECONDS
            ):
                hinted = True
                if await operations.serving(storage, run.dag_id):
                    why = "a free slot (max_active_runs of its DAG)"
                else:
                    why = (
                        f"a scheduler: no live one serves DAG {run.dag_id!r} (it stopped); "
                        "start one with ppacer-async serve FILE"
                    )
                progress.say(
                    f"run {run.id} is still queued after {waited:.0f} s: it waits for {why}"
                )
            await anyio.sleep(POLL_SECONDS)
    finally:
        progress.close()


async def wait_and_report(
    storage: Storage,
    run: DagRun,
    args: argparse.Namespace,
    stale: Mapping[str, int] | None = None,
) -> int:
    """Wait for ``run`` with progress on stderr, then report how it ended.

    :param stale: see :func:`wait_for_run`.
    :return: 0 when the run succeeded, 1 when it failed or the wait timed out.
    """
    total = len((await operations.get_run_detail(storage, run.id)).tasks)
    stale = stale or {}
    detail = await wait_for_run(storage, run, total, stale, args.timeout, Progress(sys.stderr))
    if detail is None:
        print_error(
            f"run {run.id} did not finish within {args.timeout:g} s; it goes on in the "
            f"scheduler: follow it with ppacer-async show {run.id}"
        )
        return EXIT_RUN_FAILED
    finished = detail.run
    ok = finished.status is DagRunStatus.success
    if args.json:
        output.print_json(output.run_json(finished))
        return EXIT_OK if ok else EXIT_RUN_FAILED
    took = output.duration(output.took(finished.started_at, finished.finished_at, output.now()))
    print(f"run {finished.id} of {finished.dag_id} {output.paint(str(finished.status))} in {took}")
    if not ok:
        failed = []
        for task in sorted(detail.tasks, key=lambda task: task.task_id):
            tr = task.latest
            if tr is not None and tr.status is TaskStatus.failed:
                failed.append(tr.task_id)
                output.print_lines(
                    output.wrapped(
                        f"  {tr.task_id} (attempt {tr.attempt}): {output.headline(tr.error)}"
                    )
                )
        shown = f"ppacer-async show {run.id}" + (f" {failed[0]}" if len(failed) == 1 else "")
        output.print_lines(
            output.wrapped(
                f"see the traceback with {shown}, the logs with ppacer-async logs {run.id}; "
                f"re-run it with ppacer-async restart {run.id}",
                indent="",
            )
        )
    return EXIT_OK if ok else EXIT_RUN_FAILED


def check_timeout(args: argparse.Namespace, needs: str) -> None:
    """:raises CliError: ``--timeout`` is given without the option it bounds."""
    if args.timeout is not None and not getattr(args, needs.lstrip("-")):
        raise CliError(f"--timeout bounds {needs}; add {needs} or drop --timeout")


def add_wait_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--wait",
        action="store_true",
        help=f"wait until {what} ends, showing progress on stderr; exit 0 when it "
        "succeeds, 1 when it fails",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="with --wait, stop waiting after this long and exit 1 (default: no limit)",
    )


async def wait_for_runs(storage: Storage, runs: list[DagRun], args: argparse.Namespace) -> int:
    """Wait for several runs (a backfill) with a count of those finished on stderr, then
    list how they ended.

    :return: 0 when every run succeeded, 1 when one failed or the wait timed out.
    """
    started = anyio.current_time()
    progress = Progress(sys.stderr)
    pending = {run.id for run in runs}
    ended: dict[int, DagRun] = {}
    try:
        while pending:
            for run_id in sorted(pending):
                current = await operations.get_run(storage, run_id)
                if current.status.finished:
                    ended[run_id] = current
            pending -= set(ended)
            progress.count(len(ended), len(runs))
            if not pending:
                break
            if args.timeout is not None and anyio.current_time() - started >= args.timeout:
                progress.close()
                print_error(
                    f"{len(pending)} of {len(runs)} runs did not finish within "
                    f"{args.timeout:g} s; they go on in the scheduler"
                )
                return EXIT_RUN_FAILED
            await anyio.sleep(POLL_SECONDS)
    finally:
        progress.close()
    finished = [ended[run.id] for run in runs]
    failed = [run for run in finished if run.status is not DagRunStatus.success]
    if args.json:
        output.print_json([output.run_json(run) for run in finished])
    else:
        print(f"{len(finished) - len(failed)} of {len(finished)} runs succeeded")
        for run in failed:
            print(f"  run {run.id} ({output.local(run.logical_time)}): {run.status}")
        if failed:
            print("see why with ppacer-async show RUN_ID")
    return EXIT_RUN_FAILED if failed else EXIT_OK
