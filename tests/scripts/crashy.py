"""A scheduler process for crash tests: ``python crashy.py DB_PATH SIDE_FILE``.

Triggers a run when the database has none, waits for the latest run to finish, and
prints the engine's event lines to stdout as they happen.
"""

from __future__ import annotations

import logging
import sys

import anyio

from ppacer_async import DAG, Scheduler, TaskContext, task

DB, SIDE = sys.argv[1], sys.argv[2]


def note(line: str) -> None:
    with open(SIDE, "a") as f:
        f.write(line + "\n")


@task
async def first(ctx: TaskContext) -> int:
    note(f"first#{ctx.attempt}")
    return 1


@task
async def slow(ctx: TaskContext) -> int:
    note(f"slow#{ctx.attempt}")
    if ctx.params.get("hang_until_attempt", 2) > ctx.attempt:
        await anyio.sleep_forever()
    return ctx.upstream["first"] + 1


@task
def after(ctx: TaskContext) -> int:
    note(f"after#{ctx.attempt}")
    return ctx.upstream["slow"] + 1


dag = DAG("crashy").add(first >> slow >> after)


async def main() -> None:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    async with Scheduler([dag], storage=f"sqlite:///{DB}") as scheduler:
        runs = await scheduler.list_runs("crashy")
        if runs:
            run = runs[0]
        else:
            hang = int(sys.argv[3]) if len(sys.argv) > 3 else 2
            run = await scheduler.trigger("crashy", {"hang_until_attempt": hang})
        done = await scheduler.wait_for_run(run.id)
        print(f"FINISHED {done.status}", flush=True)


if __name__ == "__main__":
    anyio.run(main)
