"""``ppacer-async db``: the schema version and row counts of a storage, its
migrations, pruning old runs and compacting a SQLite file."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from .. import operations
from ..abc import Storage
from ..storage import redact_url
from . import output
from .common import (
    EXIT_OK,
    CliError,
    Subparsers,
    add_json_option,
    add_storage_option,
    command_storage,
    duration,
    on_storage,
    run_on_storage,
    storage_url,
)


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "db",
        help=(
            "the database: info (schema version, counts), upgrade (migrations), prune "
            "(delete old runs), vacuum (compact a SQLite file)"
        ),
        description="Inspect or upgrade the database of a storage.",
    )
    parser.set_defaults(handler=_db_without_command)
    commands = parser.add_subparsers(title="db commands", metavar="COMMAND")
    info = commands.add_parser(
        "info",
        help="schema version and row counts",
        description="Show the schema version of the database and how many rows it holds.",
    )
    add_storage_option(info)
    add_json_option(info, "the version and counts")
    info.set_defaults(handler=cmd_db_info)
    upgrade = commands.add_parser(
        "upgrade",
        help="apply pending schema migrations (safe to repeat)",
        description=(
            "Apply the schema migrations the database lacks, creating it if it does not "
            "exist. Safe to repeat, and to run while a scheduler serves the database."
        ),
    )
    add_storage_option(upgrade)
    add_json_option(upgrade, "the versions before and after")
    upgrade.set_defaults(handler=cmd_db_upgrade)
    prune = commands.add_parser(
        "prune",
        help="delete runs that finished long ago, with their attempts and logs",
        description=(
            "Delete runs that finished more than --older-than ago, with their task "
            "attempts, logs and schedule events, in small transactions (safe while a "
            "scheduler serves the database). Active runs and each DAG's last schedule "
            "point are kept. SQLite gives the space back to the file system (a file "
            "created by an earlier version needs `ppacer-async db vacuum` once)."
        ),
    )
    prune.add_argument(
        "--older-than",
        type=duration,
        required=True,
        metavar="AGE",
        help="how long ago a run must have finished: 30d, 12h, 90m, 2w",
    )
    prune.add_argument("--dag", metavar="DAG_ID", help="prune the runs of this DAG only")
    prune.add_argument("--keep-failed", action="store_true", help="keep failed runs")
    prune.add_argument(
        "--dry-run", action="store_true", help="delete nothing; count what would be deleted"
    )
    add_storage_option(prune)
    add_json_option(prune, "the counts")
    prune.set_defaults(handler=cmd_db_prune)
    vacuum = commands.add_parser(
        "vacuum",
        help="compact a SQLite file and have it give pruned space back from now on",
        description=(
            "Rewrite a SQLite database file without its free pages and switch it to "
            "incremental vacuum, so that later prunes shrink the file. Needed once for "
            "files created by an earlier version. Holds the database for as long as "
            "the copy takes: run it while no scheduler serves the file."
        ),
    )
    add_storage_option(vacuum)
    vacuum.set_defaults(handler=cmd_db_vacuum)


def _db_without_command(args: argparse.Namespace) -> int:
    raise CliError(
        "name a db command: ppacer-async db info, upgrade, prune or vacuum (ppacer-async db --help)"
    )


def cmd_db_info(args: argparse.Namespace) -> int:
    """Show the schema version and row counts."""
    return on_storage(args, lambda storage: _db_info(storage, args))


async def _db_info(storage: Storage, args: argparse.Namespace) -> int:
    info = await operations.db_info(storage)
    counts = info.counts
    values = {
        "schema_version": counts.schema_version,
        "dags": counts.dags,
        "dag_runs": counts.dag_runs,
        "task_runs": counts.task_runs,
        "task_logs": counts.task_logs,
        "schedule_events": counts.schedule_events,
    }
    workers = info.workers
    shown_url = redact_url(storage_url(args.storage))
    if args.json:
        shown: dict[str, Any] = {"storage": shown_url, **values}
        if workers is not None:
            shown["workers"] = [output.worker_json(w) for w in workers]
        output.print_json(shown)
        return EXIT_OK
    print(output.fit(f"storage          {shown_url}", output.WIDTH))
    for name, value in values.items():
        print(f"{name.replace('_', ' '):<16} {value}")
    if workers is not None:
        print(f"{'workers':<16} {len(workers)}")
        if workers:
            print()
            print(
                "\n".join(
                    output.table(
                        ("WORKER", "ROLE", "RENEWED", "DAGS"),
                        [
                            (w.id, w.role, output.local(w.renewed_at), ", ".join(w.dag_ids))
                            for w in workers
                        ],
                        shrink=(3, 0),
                    )
                )
            )
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply pending migrations, creating the database if needed."""
    before: list[int | None] = []

    async def read_version(storage: Storage) -> None:
        before.append(await operations.schema_version_on_disk(storage))

    return run_on_storage(
        command_storage(args.storage, create=True),
        lambda storage: _db_upgrade(storage, args, before[0]),
        before_open=read_version,
    )


async def _db_upgrade(storage: Storage, args: argparse.Namespace, before: int | None) -> int:
    after = (await operations.db_info(storage)).counts.schema_version
    shown_url = redact_url(storage_url(args.storage))
    if args.json:
        output.print_json(
            {
                "storage": shown_url,
                "created": before is None,
                "schema_version_before": None if before is None or before < 0 else before,
                "schema_version": after,
            }
        )
    elif before is None:
        print(f"created {shown_url} at schema version {after}")
    elif before < 0:
        print(f"schema version {after}; pending migrations, if any, were applied")
    elif before == after:
        print(f"schema version {after} (up to date)")
    else:
        print(f"upgraded from {before} to {after}")
    return EXIT_OK


def cmd_db_prune(args: argparse.Namespace) -> int:
    """Delete runs that finished before a cut-off, or count them (--dry-run)."""
    return on_storage(args, lambda storage: _db_prune(storage, args))


async def _db_prune(storage: Storage, args: argparse.Namespace) -> int:
    counts = await operations.prune(
        storage,
        older_than=args.older_than,
        now=datetime.now(UTC),
        dag_id=args.dag,
        keep_failed=args.keep_failed,
        dry_run=args.dry_run,
    )
    values = {
        "dag_runs": counts.dag_runs,
        "task_runs": counts.task_runs,
        "task_logs": counts.task_logs,
        "schedule_events": counts.schedule_events,
    }
    if args.json:
        output.print_json({"dry_run": args.dry_run, **values})
        return EXIT_OK
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"{verb} {counts.dag_runs} runs, {counts.task_runs} task attempts, "
        f"{counts.task_logs} log records and {counts.schedule_events} schedule events"
    )
    return EXIT_OK


def cmd_db_vacuum(args: argparse.Namespace) -> int:
    """Compact a SQLite file and switch it to incremental vacuum."""
    return on_storage(args, _db_vacuum)


async def _db_vacuum(storage: Storage) -> int:
    from ..storage.sqlite import SQLiteStorage

    if not isinstance(storage, SQLiteStorage):
        raise CliError(
            f"vacuum compacts SQLite files; {type(storage).__name__} gives space back by "
            "itself (PostgreSQL: autovacuum)"
        )
    await storage.vacuum()
    print(f"compacted {storage.path}; pruning now gives space back to the file system")
    return EXIT_OK
