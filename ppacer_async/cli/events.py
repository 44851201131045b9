"""``ppacer-async events``: the schedule's decisions, newest point first."""

from __future__ import annotations

import argparse
from typing import Any

from .. import operations
from .._structures import ScheduleEvent
from ..abc import Storage
from . import output
from .common import (
    EXIT_OK,
    Subparsers,
    add_json_option,
    add_storage_option,
    on_storage,
    positive_int,
)

#: What each decision means, for the table.
_MEANING = {
    "regular": "run on time",
    "caught_up": "missed, run late (catchup)",
    "skipped": "missed, skipped",
    "manual": "triggered",
    "backfill": "backfilled",
}


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "events",
        help="list the schedule's decisions: runs on time, caught up, skipped, manual",
        description=(
            "List what the schedule decided for each point, newest point first: a run on "
            "time (regular), a missed point run late (caught_up) or skipped (skipped, "
            "when catchup=False or after an unpause --from now), a manual run, a backfill."
        ),
    )
    parser.add_argument("dag_id", metavar="DAG_ID", nargs="?", help="only this DAG's events")
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=30,
        metavar="N",
        help="show at most N events (default: %(default)s)",
    )
    add_storage_option(parser)
    add_json_option(parser, "the events")
    parser.set_defaults(handler=cmd_events)


def cmd_events(args: argparse.Namespace) -> int:
    """List schedule events."""
    return on_storage(args, lambda storage: _events(storage, args))


def event_json(event: ScheduleEvent) -> dict[str, Any]:
    return {
        "dag_id": event.dag_id,
        "logical_time": output.iso(event.logical_time),
        "kind": str(event.kind),
        "created_at": output.iso(event.created_at),
        "run_id": event.run_id,
    }


async def _events(storage: Storage, args: argparse.Namespace) -> int:
    events = await operations.schedule_events(storage, args.dag_id, args.limit)
    if args.json:
        output.print_json([event_json(event) for event in events])
        return EXIT_OK
    if not events:
        output.note("no schedule events yet")
        return EXIT_OK
    rows = [
        [
            output.local(event.logical_time),
            event.dag_id,
            str(event.kind),
            "-" if event.run_id is None else str(event.run_id),
            _MEANING.get(str(event.kind), ""),
        ]
        for event in events
    ]
    output.print_lines(
        output.table(["POINT", "DAG", "DECISION", "RUN", "MEANING"], rows, right={3}, shrink={1})
    )
    return EXIT_OK
