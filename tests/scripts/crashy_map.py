"""A scheduler process for the mapped fan-out crash test:
``python crashy_map.py DB_PATH SIDE_FILE``.

``split`` makes 20 elements; the instances of ``process`` with an odd index hang on
their first attempt; ``combine`` checks it gets every result in order. Triggers a run
when the database has none, waits for it, and prints the engine's event lines.
"""

from __future__ import annotations

import logging
import sys

import anyio

from ppacer_async import DAG, Scheduler, TaskContext, task

DB, SIDE = sys.argv[1], sys.argv[2]
N = 20


def note(line: str) -> None:
    with open(SIDE, "a") as f:
        f.write(line + "\n")


@task
async def split(ctx: TaskContext) -> list[int]:
    note(f"split#{ctx.attempt}")
    return [k * 10 for k in range(N)]


@task
async def process(ctx: TaskContext) -> int:
    note(f"process[{ctx.map_index}]#{ctx.attempt}")
    if ctx.item % 20 == 10 and ctx.attempt == 1:
        await anyio.sleep_forever()
    return int(ctx.item) + 1


@task
async def combine(ctx: TaskContext) -> list[int]:
    note(f"combine#{ctx.attempt}")
    return list(ctx.upstream["process"])


dag = DAG("crashy_map").add(split >> process.map("split") >> combine)


async def main() -> None:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    async with Scheduler([dag], storage=f"sqlite:///{DB}") as scheduler:
        runs = await scheduler.list_runs("crashy_map")
        run = runs[0] if runs else await scheduler.trigger("crashy_map")
        done = await scheduler.wait_for_run(run.id)
        print(f"FINISHED {done.status}", flush=True)


if __name__ == "__main__":
    anyio.run(main)
