"""``GET /metrics``: Prometheus text of what the engine did and what storage holds."""

from __future__ import annotations

import re
from datetime import timedelta

import anyio
import pytest

from ppacer_async import DAG, FakeClock, Scheduler, TaskContext, task
from ppacer_async.schedules import Interval
from ppacer_async.web import create_app

from .conftest import StorageFactory
from .helpers import T0
from .web_helpers import client

pytestmark = pytest.mark.anyio

HOUR = timedelta(hours=1)


@task
async def step(ctx: TaskContext) -> None:
    pass


@task(retries=0)
async def fail(ctx: TaskContext) -> None:
    raise RuntimeError("no")


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(inner) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    assert found is not None, f"no sample {name}{labels} in:\n{text}"
    return float(found.group(1))


async def test_metrics_count_attempts_runs_durations_lateness_and_commits(
    storage_factory: StorageFactory,
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=59))
    ran = anyio.Event()

    @task
    async def tick(ctx: TaskContext) -> None:
        ran.set()

    dags = [
        DAG("hourly", schedule=Interval(HOUR), start=T0).add(tick),
        DAG("failing").add(fail),
    ]
    scheduler = Scheduler(dags, storage=storage_factory(), clock=clock)
    app = create_app(scheduler)
    async with scheduler, client(app) as http:
        clock.set(T0 + HOUR + timedelta(seconds=2))
        with anyio.fail_after(10):
            await ran.wait()
        [scheduled] = await scheduler.list_runs("hourly")
        await scheduler.wait_for_run(scheduled.id, timeout=10)
        await scheduler.wait_for_run((await scheduler.trigger("failing")).id, timeout=10)
        response = await http.get("/metrics")
    text = response.text
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert (
        sample(text, "ppacer_task_attempts_finished_total", dag_id="hourly", status="success") == 1
    )
    assert (
        sample(text, "ppacer_task_attempts_finished_total", dag_id="failing", status="failed") == 1
    )
    assert sample(text, "ppacer_runs_finished_total", dag_id="hourly", status="success") == 1
    assert sample(text, "ppacer_runs_finished_total", dag_id="failing", status="failed") == 1
    assert sample(text, "ppacer_task_attempt_duration_seconds_count", dag_id="hourly") == 1
    assert sample(text, "ppacer_schedule_lateness_seconds_sum", dag_id="hourly") == 2.0
    assert sample(text, "ppacer_commit_duration_seconds_count") >= 2
    assert sample(text, "ppacer_commit_rows_sum") >= 4
    assert sample(text, "ppacer_queue_depth") == 0
    assert sample(text, "ppacer_live_processes") == 1
    assert sample(text, "ppacer_storage_rows", table="dag_runs") >= 2
    assert sample(text, "ppacer_engine_runs_finished_total") >= 2


async def test_metrics_show_active_runs_by_dag_and_status() -> None:
    from ppacer_async.storage import MemoryStorage

    gate, started = anyio.Event(), anyio.Event()

    @task
    async def wait(ctx: TaskContext) -> None:
        started.set()
        await gate.wait()

    scheduler = Scheduler([DAG("slow").add(wait)], storage=MemoryStorage())
    app = create_app(scheduler)
    async with scheduler, client(app) as http:
        run = await scheduler.trigger("slow")
        with anyio.fail_after(10):
            await started.wait()
        during = (await http.get("/metrics")).text
        gate.set()
        await scheduler.wait_for_run(run.id, timeout=10)
        after = (await http.get("/metrics")).text
    assert sample(during, "ppacer_runs_active", dag_id="slow", status="running") == 1
    assert sample(during, "ppacer_running_tasks") == 1
    assert 'ppacer_runs_active{dag_id="slow"' not in after


async def test_each_app_has_its_own_registry() -> None:
    from ppacer_async.storage import MemoryStorage

    scheduler = Scheduler([DAG("hourly").add(step)], storage=MemoryStorage())
    first, second = create_app(scheduler), create_app(scheduler)
    async with scheduler, client(first) as a, client(second) as b:
        run = await scheduler.trigger("hourly")
        await scheduler.wait_for_run(run.id, timeout=10)
        text_a, text_b = (await a.get("/metrics")).text, (await b.get("/metrics")).text
    # Both listen to the same engine, neither registers into the global registry.
    assert sample(text_a, "ppacer_runs_finished_total", dag_id="hourly", status="success") == 1
    assert sample(text_b, "ppacer_runs_finished_total", dag_id="hourly", status="success") == 1


async def test_standalone_metrics_read_storage_and_processes(tmp_path) -> None:
    from ppacer_async.storage.sqlite import SQLiteStorage

    path = str(tmp_path / "ppacer.db")
    scheduler = Scheduler([DAG("hourly").add(step)], storage=SQLiteStorage(path=path))
    app = create_app(storage=f"sqlite:///{path}")
    async with scheduler, app.router.lifespan_context(app), client(app) as http:
        run = await scheduler.trigger("hourly")
        await scheduler.wait_for_run(run.id, timeout=10)
        text = (await http.get("/metrics")).text
    assert sample(text, "ppacer_live_processes") == 1
    assert sample(text, "ppacer_storage_rows", table="dag_runs") == 1
    assert "ppacer_queue_depth" not in text


def test_an_attempt_reaped_for_an_expired_lease_is_counted() -> None:
    from ppacer_async import DagRun, DagRunStatus, RunTrigger, TaskRun, TaskStatus
    from ppacer_async._structures import Changes
    from ppacer_async.storage import MemoryStorage
    from ppacer_async.web._context import WebContext
    from ppacer_async.web._metrics import Metrics

    metrics = Metrics(WebContext(scheduler=None, storage=MemoryStorage()))
    run = DagRun(
        id=1,
        dag_id="etl",
        logical_time=T0,
        status=DagRunStatus.running,
        trigger=RunTrigger.manual,
        created_at=T0,
        started_at=T0,
    )

    def attempt(n: int, error: str | None) -> TaskRun:
        return TaskRun(
            run_id=1,
            task_id="load",
            attempt=n,
            status=TaskStatus.interrupted,
            started_at=T0,
            finished_at=T0 + timedelta(seconds=n),
            error=error,
        )

    metrics.on_commit(Changes(dag_runs=[run]), 0.001)
    metrics.on_commit(
        Changes(
            task_runs=[
                attempt(1, "the process running this attempt (w1) stopped renewing its lease"),
                attempt(2, "interrupted by a stop"),
            ]
        ),
        0.002,
    )
    assert metrics.expired_leases == 1
    assert metrics.attempts == {("etl", "interrupted"): 2}
    assert metrics.durations["etl"].total == 3.0
