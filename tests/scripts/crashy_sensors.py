"""A scheduler process for sensor crash tests: ``python crashy_sensors.py DB_PATH DIR``.

Triggers a run when the database has none: ``SENSORS`` file sensors, each waiting for
``DIR/ready``, poked every 0.2 s. Waits for the latest run to finish and prints the
engine's event lines to stdout as they happen.
"""

from __future__ import annotations

import logging
import sys
from datetime import timedelta

import anyio

from ppacer_async import DAG, Scheduler
from ppacer_async.sensors import FileSensor

SENSORS = 50


def sensing(directory: str) -> DAG:
    return DAG("sensing").add(
        *[
            FileSensor(
                f"{directory}/ready",
                id=f"sensor_{k:02d}",
                poke_interval=timedelta(milliseconds=200),
                timeout=timedelta(hours=1),
            )
            for k in range(SENSORS)
        ]
    )


async def main(db: str, directory: str) -> None:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    dag = sensing(directory)
    async with Scheduler([dag], storage=f"sqlite:///{db}") as scheduler:
        runs = await scheduler.list_runs("sensing")
        run = runs[0] if runs else await scheduler.trigger("sensing")
        done = await scheduler.wait_for_run(run.id)
        print(f"FINISHED {done.status}", flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
