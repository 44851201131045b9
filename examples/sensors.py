"""Sensors: wait for a file, another DAG's run and a delay, holding no worker meanwhile.

``arrived`` pokes every 2 s for ``{logical_date}.csv`` in ``$PPACER_EXAMPLE_DIR``
(default ``/tmp/ppacer-example``; create it to let the run go on: ``mkdir -p
/tmp/ppacer-example && touch /tmp/ppacer-example/$(date -u +%F).csv``);
``wait_for_extract`` waits for the ``extract`` DAG's run of the same logical time;
``wait_until_1s_after`` waits until a second after the logical time; ``quiet`` is a
function sensor with exponential backoff. Between pokes each is a timer of the
scheduler, stored, so a restart resumes the wait where it was.

Serve it with ``ppacer-async serve examples/sensors.py``.
"""

from __future__ import annotations

import os
from datetime import timedelta

from ppacer_async import DAG, TaskContext, task
from ppacer_async.sensors import FileSensor, RunSensor, TimeSensor

SECOND = timedelta(seconds=1)


@task
async def extract_rows(ctx: TaskContext) -> int:
    return 10


extract = DAG("extract", description="The run the report's sensor waits for.")
extract.add(extract_rows)


@task.sensor(poke_interval=SECOND, timeout=timedelta(minutes=5), exponential_backoff=True)
async def quiet(ctx: TaskContext) -> bool:
    """True once the run's params say the system is quiet (here: at once)."""
    return bool(ctx.params.get("quiet", True))


arrived = FileSensor(
    os.path.join(os.environ.get("PPACER_EXAMPLE_DIR", "/tmp/ppacer-example"), "{logical_date}.csv"),
    id="arrived",  # else wait_for_logical_date.csv, from the file's name
    poke_interval=2 * SECOND,
    timeout=timedelta(hours=1),
)
extracted = RunSensor("extract", poke_interval=SECOND, timeout=timedelta(minutes=5))
settled = TimeSensor(at=SECOND, poke_interval=SECOND)  # its id: wait_until_1s_after


@task
async def report(ctx: TaskContext) -> str:
    return f"report on {ctx.upstream['arrived']} after run {ctx.upstream['wait_for_extract']}"


report_dag = DAG("report", description="A report that waits for its inputs with sensors.")
report_dag.add([arrived, extracted, settled, quiet] >> report)

dags = [extract, report_dag]
