"""``python -m benchmarks [--quick] [--storage memory,sqlite,postgres] [--repeat N]
[--only W1,W3] [--out DIR] [--postgres-dsn DSN]``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from ppacer_async.storage import redact_url

from ._common import POSTGRES_DSN_ENV, SCHEDULER_OPTIONS, STORAGE_KINDS, Settings, quiet_logging
from .chart import INSTALL_HINT, draw_chart
from .machine import describe_machine
from .report import render_table, write_json
from .runner import WORKLOADS, run_suite

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark ppacer-async against plain asyncio.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes, shorter waits (about a minute)"
    )
    parser.add_argument(
        "--storage",
        type=_csv,
        default=None,
        help="comma-separated storages (memory,sqlite,postgres); default memory,sqlite, "
        "plus postgres when a DSN is given",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="repetitions; the median is reported (default 3)"
    )
    parser.add_argument(
        "--only", type=_csv, default=None, help=f"workloads to run, of {','.join(WORKLOADS)}"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where JSON and the chart go")
    parser.add_argument(
        "--postgres-dsn",
        default=os.environ.get(POSTGRES_DSN_ENV) or None,
        help=f"PostgreSQL server to benchmark (default: ${POSTGRES_DSN_ENV}); each "
        "repetition uses a fresh schema, dropped afterwards",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.storage is None:
        args.storage = ["memory", "sqlite"] + (["postgres"] if args.postgres_dsn else [])
    unknown = [s for s in args.storage if s not in STORAGE_KINDS]
    if unknown:
        parser.error(f"unknown storage {', '.join(unknown)}; use {','.join(STORAGE_KINDS)}")
    if "postgres" in args.storage and not args.postgres_dsn:
        parser.error(f"postgres needs --postgres-dsn DSN or ${POSTGRES_DSN_ENV}")
    args.storage = [s for s in STORAGE_KINDS if s in args.storage]
    only = [key.upper() for key in args.only] if args.only else list(WORKLOADS)
    unknown = [key for key in only if key not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload {', '.join(unknown)}; use {','.join(WORKLOADS)}")
    args.only = [key for key in WORKLOADS if key in only]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logging()
    settings = Settings(quick=args.quick, repeat=args.repeat, postgres_dsn=args.postgres_dsn)
    started = datetime.now(UTC)
    machine = describe_machine()
    print(
        f"ppacer-async {machine['package_version']} on {machine['cpu_model']} "
        f"({machine['cores']} cores), Python {machine['python']}; "
        f"{'quick' if args.quick else 'full'} run, {args.repeat} repetitions, "
        f"storages {','.join(args.storage)}",
        file=sys.stderr,
    )
    rows, workloads = asyncio.run(run_suite(settings, args.only, args.storage))

    notes = [
        f"{key} {described['title']}: {described['skipped']}"
        for key, described in workloads.items()
        if "skipped" in described
    ]
    print()
    print(render_table(rows, notes))
    report = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "quick": args.quick,
        "repeat": args.repeat,
        "storages": args.storage,
        "postgres_dsn": redact_url(args.postgres_dsn) if "postgres" in args.storage else None,
        "machine": machine,
        "scheduler_options": SCHEDULER_OPTIONS,
        "workloads": workloads,
        "results": [row.to_json() for row in rows],
    }
    path = write_json(report, args.out, started)
    print(f"\nJSON: {path} (and {args.out / 'latest.json'})")
    title = (
        f"ppacer-async {machine['package_version']} vs plain asyncio, "
        f"{'quick' if args.quick else 'full'} run {started:%Y-%m-%d %H:%M} UTC\n"
        f"{machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}"
    )
    chart = args.out / "chart.png"
    drawn = draw_chart(rows, chart, title)
    if drawn == "drawn":
        print(f"chart: {chart}")
    elif drawn == "empty":
        print("chart: not drawn, no result here has a baseline to compare with")
    else:
        print(INSTALL_HINT)
    return 1 if any(row.error is not None for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
