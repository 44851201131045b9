"""``ppacer-async pools``: each pool's slots, how many are used and how many attempts
wait, as the scheduling process last recorded them."""

from __future__ import annotations

import argparse

from .. import operations
from ..abc import Storage
from . import output
from .common import EXIT_OK, Subparsers, add_json_option, add_storage_option, on_storage


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "pools",
        help="pools: slots, slots used, attempts waiting",
        description=(
            "Show each pool's slots, how many attempts hold them and how many wait for "
            "one, as the scheduling process last recorded them (it records each change, "
            "at most twice a second)."
        ),
    )
    add_storage_option(parser)
    add_json_option(parser, "the pools")
    parser.set_defaults(handler=cmd_pools)


def cmd_pools(args: argparse.Namespace) -> int:
    return on_storage(args, lambda storage: _pools(storage, args))


async def _pools(storage: Storage, args: argparse.Namespace) -> int:
    pools = await operations.pools(storage)
    if args.json:
        output.print_json(
            [
                {
                    "name": p.name,
                    "slots": p.slots,
                    "used": p.used,
                    "waiting": p.waiting,
                    "updated_at": output.iso(p.updated_at),
                }
                for p in pools
            ]
        )
        return EXIT_OK
    if not pools:
        output.note("no pools recorded: serve DAGs with Scheduler(pools=...) or --pool")
        return EXIT_OK
    rows = [
        (p.name, str(p.slots), str(p.used), str(p.waiting), output.local(p.updated_at))
        for p in pools
    ]
    output.print_lines(
        output.table(("POOL", "SLOTS", "USED", "WAITING", "UPDATED"), rows, right=(1, 2, 3))
    )
    return EXIT_OK
