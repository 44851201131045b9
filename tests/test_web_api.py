"""The JSON API under /api/v1, embedded in a serving scheduler and standalone over a
storage another scheduler serves, on every storage."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import anyio
import httpx
import pytest

from ppacer_async import DAG, DagRunStatus, Scheduler, TaskContext, task
from ppacer_async.schedules import Interval
from ppacer_async.web import create_app

from .conftest import StorageFactory
from .helpers import T0
from .web_helpers import client, read_events

pytestmark = pytest.mark.anyio

#: Events tasks wait on, set by the test that owns them.
GATES: dict[str, anyio.Event] = {}


@task
async def echo(ctx: TaskContext) -> Any:
    ctx.log.info("echo got %s", ctx.params)
    return ctx.params.get("value")


@task
async def after(ctx: TaskContext) -> int:
    return 1


@task(retries=0)
async def broken(ctx: TaskContext) -> None:
    ctx.log.warning("about to break")
    raise RuntimeError("broken on purpose")


@task
async def tick(ctx: TaskContext) -> None:
    pass


def dags() -> list[DAG]:
    return [
        DAG("echo", params={"value": 1}).add(echo >> after),
        DAG("broken").add(broken),
        DAG("hourly", schedule=Interval(timedelta(hours=1)), start=T0).add(tick),
    ]


@contextlib.asynccontextmanager
async def embedded(
    factory: StorageFactory, **options: Any
) -> AsyncIterator[tuple[Scheduler, httpx.AsyncClient]]:
    scheduler = Scheduler(dags(), storage=factory())
    async with scheduler, client(create_app(scheduler, **options)) as http:
        yield scheduler, http


async def finished(scheduler: Scheduler, run_id: int) -> None:
    await scheduler.wait_for_run(run_id, timeout=10)


# -- reading -------------------------------------------------------------------------------


async def test_health_names_version_storage_and_this_serving_process(
    storage_factory: StorageFactory,
) -> None:
    async with embedded(storage_factory) as (scheduler, http):
        body = (await http.get("/api/v1/health")).json()
    assert body["mode"] == "embedded"
    assert body["storage"] in ("memory", "sqlite", "postgresql")
    assert body["version"]
    assert [p["id"] for p in body["processes"]] == [scheduler.worker_id]
    assert body["processes"][0]["last_seen"] is not None


async def test_dags_lists_schedule_pause_state_next_due_and_served(
    storage_factory: StorageFactory,
) -> None:
    async with embedded(storage_factory) as (_, http):
        body = (await http.get("/api/v1/dags")).json()
    dags_by_id = {d["dag_id"]: d for d in body["dags"]}
    assert sorted(dags_by_id) == ["broken", "echo", "hourly"]
    hourly = dags_by_id["hourly"]
    assert hourly["paused"] is False
    assert hourly["served"] is True
    assert hourly["next_due"] is not None
    assert hourly["schedule"]
    assert dags_by_id["echo"]["next_due"] is None
    assert dags_by_id["echo"]["last_run"] is None


async def test_dag_detail_lists_tasks_with_upstream_ids_and_options(
    storage_factory: StorageFactory,
) -> None:
    async with embedded(storage_factory) as (_, http):
        body = (await http.get("/api/v1/dags/echo")).json()
        missing = await http.get("/api/v1/dags/nope")
    tasks = {t["task_id"]: t for t in body["tasks"]}
    assert tasks["after"]["upstream"] == ["echo"]
    assert tasks["echo"]["upstream"] == []
    assert "retries" in tasks["echo"]["options"]
    assert body["params"] == {"value": 1}
    assert missing.status_code == 404
    assert "nope" in missing.json()["error"]


async def test_trigger_queues_a_run_with_params_and_the_scheduler_runs_it(
    storage_factory: StorageFactory,
) -> None:
    async with embedded(storage_factory) as (scheduler, http):
        response = await http.post("/api/v1/dags/echo/runs", json={"params": {"value": 7}})
        assert response.status_code == 201
        run = response.json()
        assert run["dag_id"] == "echo"
        assert run["params"] == {"value": 7}
        assert run["trigger"] == "manual"
        await finished(scheduler, run["id"])
        detail = (await http.get(f"/api/v1/runs/{run['id']}")).json()
    assert detail["status"] == "success"
    tasks = {t["task_id"]: t for t in detail["tasks"]}
    assert tasks["echo"]["attempts"][0]["result"] == 7
    assert tasks["after"]["upstream"] == ["echo"]
    assert tasks["after"]["status"] == "success"


async def test_trigger_without_a_body_uses_the_default_params(
    storage_factory: StorageFactory,
) -> None:
    async with embedded(storage_factory) as (scheduler, http):
        run = (await http.post("/api/v1/dags/echo/runs")).json()
        await finished(scheduler, run["id"])
    assert run["params"] == {"value": 1}


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"params": [1]}', 422, "params must be a JSON object"),
    ],
)
async def test_trigger_refuses_a_bad_body(body: bytes, status: int, words: str) -> None:
    from ppacer_async.storage import MemoryStorage

    async with embedded(MemoryStorage) as (_, http):
        response = await http.post("/api/v1/dags/echo/runs", content=body)
    assert response.status_code == status
    assert words in response.json()["error"]


async def test_trigger_of_an_unknown_dag_is_404(storage_factory: StorageFactory) -> None:
    async with embedded(storage_factory) as (_, http):
        response = await http.post("/api/v1/dags/nope/runs", json={})
    assert response.status_code == 404
    assert "nope" in response.json()["error"]


async def test_runs_are_listed_newest_first_and_paged_by_cursor(
    storage_factory: StorageFactory,
) -> None:
    async with embedded(storage_factory) as (scheduler, http):
        ids = []
        for _ in range(5):
            ids.append((await http.post("/api/v1/dags/echo/runs")).json()["id"])
        for run_id in ids:
            await finished(scheduler, run_id)
        first = (await http.get("/api/v1/runs", params={"dag_id": "echo", "limit": 2})).json()
        second = (
            await http.get(
                "/api/v1/runs",
                params={"dag_id": "echo", "limit": 2, "before": first["next_before"]},
            )
        ).json()
        last = (
            await http.get(
                "/api/v1/runs",
                params={"dag_id": "echo", "limit": 2, "before": second["next_before"]},
            )
        ).json()
        succeeded = (await http.get("/api/v1/runs", params={"status": "success"})).json()
        failed = (await http.get("/api/v1/runs", params={"status": "failed"})).json()
        later = (await http.get("/api/v1/runs", params={"since": "2999-01-01T00:00:00Z"})).json()
    listed = [r["id"] for page in (first, second, last) for r in page["runs"]]
    assert listed == sorted(ids, reverse=True)
    assert last["next_before"] is None
    assert len(succeeded["runs"]) == 5
    assert failed["runs"] == []
    assert later["runs"] == []


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ({"status": "bogus"}, 422, "status must be one of"),
        ({"limit": "0"}, 422, "limit must be from 1 to 1000"),
        ({"limit": "ten"}, 422, "limit must be a whole number"),
        ({"since": "yesterday"}, 422, "not an ISO 8601 time"),
        ({"before": "0"}, 422, "before must be"),
        ({"dag_id": "nope"}, 404, "no DAG 'nope'"),
    ],
)
async def test_runs_refuses_bad_filters(query: dict[str, str], status: int, words: str) -> None:
    from ppacer_async.storage import MemoryStorage

    async with embedded(MemoryStorage) as (_, http):
        response = await http.get("/api/v1/runs", params=query)
    assert response.status_code == status
    assert words in response.json()["error"]


async def test_unknown_run_is_404_on_every_run_route(storage_factory: StorageFactory) -> None:
    async with embedded(storage_factory) as (_, http):
        responses = [
            await http.get("/api/v1/runs/999"),
            await http.get("/api/v1/runs/99999999999999999999999"),
            await http.get("/api/v1/runs/999/logs"),
            await http.post("/api/v1/runs/999/restart"),
            await http.get("/api/v1/runs/abc"),
        ]
    assert [r.status_code for r in responses] == [404] * 5
    assert all("error" in r.json() for r in responses)


async def test_restart_reruns_a_failed_run_and_refuses_a_successful_one(
    storage_factory: StorageFactory,
) -> None:
    async with embedded(storage_factory) as (scheduler, http):
        ok = (await http.post("/api/v1/dags/echo/runs")).json()
        bad = (await http.post("/api/v1/dags/broken/runs")).json()
        await finished(scheduler, ok["id"])
        await finished(scheduler, bad["id"])
        refused = await http.post(f"/api/v1/runs/{ok['id']}/restart")
        restarted = await http.post(f"/api/v1/runs/{bad['id']}/restart")
        assert restarted.status_code == 200
        assert restarted.json()["status"] == "queued"
        assert restarted.json()["trigger"] == "restart"
        await finished(scheduler, bad["id"])
        detail = (await http.get(f"/api/v1/runs/{bad['id']}")).json()
    assert refused.status_code == 409
    assert "only failed or cancelled runs" in refused.json()["error"]
    attempts = detail["tasks"][0]["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert "broken on purpose" in attempts[0]["error"]
    assert detail["status"] == "failed"


async def test_cancel_ends_a_running_run_and_refuses_a_finished_one(
    storage_factory: StorageFactory,
) -> None:
    GATES["c"] = anyio.Event()
    started = anyio.Event()

    @task
    async def hold(ctx: TaskContext) -> None:
        started.set()
        await GATES["c"].wait()

    scheduler = Scheduler([*dags(), DAG("held").add(hold)], storage=storage_factory())
    app = create_app(scheduler)
    async with scheduler, client(app) as http:
        run = (await http.post("/api/v1/dags/held/runs")).json()
        with anyio.fail_after(10):
            await started.wait()
        cancelled = await http.post(
            f"/api/v1/runs/{run['id']}/cancel", json={"note": "not needed after all"}
        )
        detail = (await http.get(f"/api/v1/runs/{run['id']}")).json()
        again = await http.post(f"/api/v1/runs/{run['id']}/cancel")
        bad_note = await http.post(f"/api/v1/runs/{run['id']}/cancel", json={"note": 5})
        missing = await http.post("/api/v1/runs/999/cancel")
        restarted = await http.post(f"/api/v1/runs/{run['id']}/restart")
        GATES["c"].set()
        await finished(scheduler, run["id"])
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["note"] == "not needed after all"
    assert detail["status"] == "cancelled"
    assert detail["tasks"][0]["attempts"][-1]["status"] == "cancelled"
    assert again.status_code == 409
    assert "only queued or running runs" in again.json()["error"]
    assert bad_note.status_code == 422
    assert missing.status_code == 404
    assert restarted.status_code == 200


async def test_standalone_cancel_is_picked_up_by_the_other_scheduler(
    shared_factory: StorageFactory,
) -> None:
    GATES["s"] = anyio.Event()

    @task
    async def hold(ctx: TaskContext) -> None:
        await GATES["s"].wait()

    scheduler = Scheduler([DAG("held").add(hold)], storage=shared_factory())
    app = create_app(storage=shared_factory())
    async with scheduler, app.router.lifespan_context(app), client(app) as http:
        run = (await http.post("/api/v1/dags/held/runs")).json()
        response = await http.post(f"/api/v1/runs/{run['id']}/cancel")
        done = await scheduler.wait_for_run(run["id"], timeout=10)
    assert response.status_code == 200
    assert done.status is DagRunStatus.cancelled


async def test_logs_filter_by_task_and_attempt_and_page_by_cursor(
    storage_factory: StorageFactory,
) -> None:
    async with embedded(storage_factory) as (scheduler, http):
        run = (await http.post("/api/v1/dags/broken/runs")).json()
        await finished(scheduler, run["id"])
        url = f"/api/v1/runs/{run['id']}/logs"
        everything = (await http.get(url)).json()
        by_task = (await http.get(url, params={"task_id": "broken", "attempt": 1})).json()
        rest = (await http.get(url, params={"after": everything["next_after"]})).json()
        other_attempt = (await http.get(url, params={"attempt": 2})).json()
        unknown_task = await http.get(url, params={"task_id": "nope"})
        bad_attempt = await http.get(url, params={"attempt": 0})
    # the ctx.log record, then the failed attempt's traceback
    assert [r["message"].splitlines()[0] for r in everything["records"]] == [
        "about to break",
        "attempt 1 failed:",
    ]
    assert [r["level"] for r in everything["records"]] == ["WARNING", "ERROR"]
    assert everything["records"][1]["message"].endswith("RuntimeError: broken on purpose")
    assert by_task["records"] == everything["records"]
    assert rest["records"] == []
    assert rest["next_after"] == everything["next_after"]
    assert other_attempt["records"] == []
    assert everything["run"]["status"] == "failed"
    assert unknown_task.status_code == 404
    assert "nope" in unknown_task.json()["error"]
    assert bad_attempt.status_code == 422


async def test_pause_and_unpause_change_the_dag_and_refuse_bad_input(
    storage_factory: StorageFactory,
) -> None:
    async with embedded(storage_factory) as (_, http):
        paused = await http.post("/api/v1/dags/hourly/pause")
        listed = (await http.get("/api/v1/dags/hourly")).json()
        bad_from = await http.post("/api/v1/dags/hourly/unpause", json={"from": "tomorrow"})
        unpaused = await http.post("/api/v1/dags/hourly/unpause", json={"from": "last"})
        missing = await http.post("/api/v1/dags/nope/pause")
    assert paused.status_code == 200
    assert paused.json()["paused"] is True
    assert listed["paused"] is True
    assert listed["next_due"] is None
    assert bad_from.status_code == 422
    assert "now" in bad_from.json()["error"]
    assert unpaused.json()["paused"] is False
    assert missing.status_code == 404


async def test_backfill_creates_a_run_per_schedule_point(storage_factory: StorageFactory) -> None:
    async with embedded(storage_factory) as (scheduler, http):
        response = await http.post(
            "/api/v1/dags/hourly/backfill",
            json={"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T02:00:00+00:00"},
        )
        again = await http.post(
            "/api/v1/dags/hourly/backfill",
            json={"start": "2026-01-01T00:00:00", "end": "2026-01-01T02:00:00"},
        )
        for run in response.json()["runs"]:
            await finished(scheduler, run["id"])
        reversed_range = await http.post(
            "/api/v1/dags/hourly/backfill",
            json={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
        )
        no_schedule = await http.post(
            "/api/v1/dags/echo/backfill",
            json={"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
        )
        no_start = await http.post("/api/v1/dags/hourly/backfill", json={"end": "2026-01-01"})
        no_body = await http.post("/api/v1/dags/hourly/backfill")
    assert response.status_code == 201
    times = [r["logical_time"] for r in response.json()["runs"]]
    assert times == [
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T01:00:00+00:00",
        "2026-01-01T02:00:00+00:00",
    ]
    assert again.json()["runs"] == []  # naive times are UTC: the same points
    assert reversed_range.status_code == 409
    assert no_schedule.status_code == 409
    assert no_start.status_code == 422
    assert "start" in no_start.json()["error"]
    assert no_body.status_code == 400


async def test_statistics_are_the_schedulers_counters(storage_factory: StorageFactory) -> None:
    async with embedded(storage_factory) as (scheduler, http):
        run = (await http.post("/api/v1/dags/echo/runs")).json()
        await finished(scheduler, run["id"])
        body = (await http.get("/api/v1/statistics")).json()
    assert body["runs_finished"] >= 1
    assert body["tasks_finished"] >= 2
    assert set(body) >= {"active_runs", "queued_tasks", "commits", "committed_rows"}


async def test_unknown_path_and_wrong_method_are_json_errors() -> None:
    from ppacer_async.storage import MemoryStorage

    async with embedded(MemoryStorage) as (_, http):
        missing = await http.get("/api/v1/nothing")
        wrong_method = await http.delete("/api/v1/runs")
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    assert "error" in missing.json()
    assert "error" in wrong_method.json()


# -- standalone: another scheduler serves the storage --------------------------------------


@contextlib.asynccontextmanager
async def standalone(
    factory: StorageFactory, **options: Any
) -> AsyncIterator[tuple[Scheduler, httpx.AsyncClient, Any]]:
    """A scheduler on one handle of the storage, the app on another (as two processes)."""
    scheduler = Scheduler(dags(), storage=factory())
    app = create_app(storage=factory(), **options)
    async with scheduler, app.router.lifespan_context(app), client(app) as http:
        yield scheduler, http, app


@pytest.fixture
def shared_factory(storage_factory: StorageFactory) -> StorageFactory:
    store = storage_factory()
    if storage_factory() is store:
        pytest.skip("a memory storage cannot be opened by two handles")
    return storage_factory


async def test_standalone_app_triggers_runs_that_the_other_scheduler_runs(
    shared_factory: StorageFactory,
) -> None:
    async with standalone(shared_factory) as (scheduler, http, _):
        health = (await http.get("/api/v1/health")).json()
        response = await http.post("/api/v1/dags/echo/runs", json={"params": {"value": 3}})
        assert response.status_code == 201
        run = await scheduler.wait_for_run(response.json()["id"], timeout=10)
        dags_listed = (await http.get("/api/v1/dags")).json()["dags"]
        statistics = await http.get("/api/v1/statistics")
    assert run.status is DagRunStatus.success
    assert health["mode"] == "standalone"
    assert len(health["processes"]) == 1
    assert all(d["served"] for d in dags_listed)
    assert statistics.status_code == 409
    assert "storage only" in statistics.json()["error"]


async def test_pools_show_slots_used_and_waiting_in_both_modes(
    shared_factory: StorageFactory,
) -> None:
    scheduler = Scheduler(dags(), storage=shared_factory(), pools={"warehouse": 3})
    app = create_app(storage=shared_factory())
    embedded_app = create_app(scheduler)
    async with scheduler, app.router.lifespan_context(app), client(app) as http:
        with anyio.fail_after(10):  # the scheduler records its pools as it starts
            while True:
                listed = (await http.get("/api/v1/pools")).json()["pools"]
                if listed:
                    break
                await anyio.sleep(0.05)  # written by the scheduler's own coroutine
        async with (
            embedded_app.router.lifespan_context(embedded_app),
            client(embedded_app) as embedded_http,
        ):
            stats = (await embedded_http.get("/api/v1/statistics")).json()
    (pool,) = listed
    assert (pool["name"], pool["slots"], pool["used"], pool["waiting"]) == ("warehouse", 3, 0, 0)
    assert pool["updated_at"] is not None
    assert stats["pools"] == [
        {"name": "warehouse", "slots": 3, "used": 0, "waiting": 0, "updated_at": None}
    ]


async def test_standalone_app_sees_no_live_process_when_none_serves(
    shared_factory: StorageFactory,
) -> None:
    async with Scheduler(dags(), storage=shared_factory()):
        pass  # records the DAGs, then stops
    app = create_app(storage=shared_factory())
    async with app.router.lifespan_context(app), client(app) as http:
        health = (await http.get("/api/v1/health")).json()
        dags_listed = (await http.get("/api/v1/dags")).json()["dags"]
    assert health["processes"] == []
    assert dags_listed and not any(d["served"] for d in dags_listed)


# -- live updates ----------------------------------------------------------------------------


async def test_event_stream_tells_task_and_run_status_changes_as_a_run_progresses(
    storage_factory: StorageFactory,
) -> None:
    scheduler = Scheduler(dags(), storage=storage_factory())
    app = create_app(scheduler)
    async with scheduler, client(app) as http, read_events(app) as events:
        run = (await http.post("/api/v1/dags/echo/runs")).json()
        task_done = await events.wait_for(
            "task", run_id=run["id"], task_id="after", status="success"
        )
        run_done = await events.wait_for("run", run_id=run["id"], status="success")
    assert task_done["dag_id"] == "echo"
    assert task_done["attempt"] == 1
    assert run_done["dag_id"] == "echo"
    assert events.headers["content-type"].startswith("text/event-stream")


async def test_standalone_event_stream_follows_the_storage(
    shared_factory: StorageFactory,
) -> None:
    async with standalone(shared_factory) as (_, http, app):
        async with read_events(app, "dag_id=echo") as first, read_events(app) as second:
            run = (await http.post("/api/v1/dags/echo/runs")).json()
            other = (await http.post("/api/v1/dags/broken/runs")).json()
            await first.wait_for("task", run_id=run["id"], task_id="echo", status="success")
            await first.wait_for("run", run_id=run["id"], status="success")
            await second.wait_for("run", run_id=other["id"], status="failed")
            await first.wait_for("run", run_id=run["id"], status="success")
        assert all(data["dag_id"] == "echo" for _, data in first.events)


@task
async def gated(ctx: TaskContext) -> None:
    await GATES[ctx.params["gate"]].wait()


async def test_standalone_follower_passes_to_another_client_when_its_host_leaves(
    shared_factory: StorageFactory,
) -> None:
    async with standalone(shared_factory) as (_, http, app), anyio.create_task_group() as tg:
        hub = app.state.ppacer.events
        host_leaves, host_left, second_done = anyio.Event(), anyio.Event(), anyio.Event()

        async def host(*, task_status: Any) -> None:
            async with read_events(app):
                task_status.started()
                await host_leaves.wait()
            host_left.set()

        async def second_client(*, task_status: Any) -> None:
            async with read_events(app) as events:
                task_status.started(events)
                await second_done.wait()

        await tg.start(host)  # the first client starts the follower
        second = await tg.start(second_client)
        host_leaves.set()
        with anyio.fail_after(10):
            await host_left.wait()
            await hub.follower_ready.wait()  # the second client's request follows now
        run = (await http.post("/api/v1/dags/echo/runs")).json()
        await second.wait_for("run", run_id=run["id"], status="success")
        second_done.set()
    assert hub.subscribers == 0


async def test_standalone_follower_rides_out_a_storage_error(
    shared_factory: StorageFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from ppacer_async import StorageError

    async with standalone(shared_factory) as (_, http, app):
        storage = app.state.ppacer.storage
        real = storage.active_runs
        failures = 0

        async def failing_once() -> Any:
            nonlocal failures
            if failures == 0:
                failures += 1
                raise StorageError("the database went away for a moment")
            return await real()

        async with read_events(app) as events:
            storage.active_runs = failing_once
            run = (await http.post("/api/v1/dags/echo/runs")).json()
            await events.wait_for("run", run_id=run["id"], status="success")
    assert failures == 1
    assert "live updates cannot read the storage" in caplog.text


async def test_standalone_event_stream_tells_of_every_run_created_in_a_burst(
    shared_factory: StorageFactory,
) -> None:
    async with (
        standalone(shared_factory) as (_, http, app),
        read_events(app, "dag_id=broken") as events,
    ):
        ids = [(await http.post("/api/v1/dags/broken/runs")).json()["id"] for _ in range(60)]
        for run_id in ids:
            await events.wait_for("run", run_id=run_id, status="failed")
    assert len(ids) == 60
    assert len(ids) == 60


async def test_event_stream_filtered_to_one_run_skips_the_others() -> None:
    from ppacer_async.storage import MemoryStorage

    GATES.update(a=anyio.Event(), b=anyio.Event())
    scheduler = Scheduler([DAG("gated").add(gated)], storage=MemoryStorage())
    app = create_app(scheduler)
    async with scheduler, client(app) as http:
        a = (await http.post("/api/v1/dags/gated/runs", json={"params": {"gate": "a"}})).json()
        b = (await http.post("/api/v1/dags/gated/runs", json={"params": {"gate": "b"}})).json()
        async with read_events(app, f"run_id={a['id']}") as events:
            GATES["b"].set()
            await finished(scheduler, b["id"])
            GATES["a"].set()
            await events.wait_for("run", run_id=a["id"], status="success")
        missing = await http.get("/api/v1/events", params={"run_id": 999})
        unknown_dag = await http.get("/api/v1/events", params={"dag_id": "nope"})
        not_a_number = await http.get("/api/v1/events", params={"run_id": "x"})
    assert {data["run_id"] for _, data in events.events} == {a["id"]}
    assert missing.status_code == 404
    assert unknown_dag.status_code == 404
    assert not_a_number.status_code == 422
    assert "run_id must be a whole number" in not_a_number.json()["error"]


async def test_event_stream_forgets_a_client_that_leaves() -> None:
    from ppacer_async.storage import MemoryStorage

    scheduler = Scheduler(dags(), storage=MemoryStorage())
    app = create_app(scheduler)
    hub = app.state.ppacer.events
    async with scheduler:
        async with read_events(app), read_events(app, "dag_id=echo"):
            assert hub.subscribers == 2
        assert hub.subscribers == 0


@pytest.mark.parametrize(
    "task_id", ["plain", 'quote " and \\ and \n', "zażółć <script>", "{braces} {0}"]
)
def test_task_event_text_is_the_json_of_the_task_event(task_id: str) -> None:
    import json

    from ppacer_async import TaskRun, TaskStatus
    from ppacer_async.web._events import task_event_text
    from ppacer_async.web._json import task_event

    tr = TaskRun(
        run_id=3,
        task_id=task_id,
        attempt=2,
        status=TaskStatus.up_for_retry,
        started_at=T0,
        finished_at=None,
    )
    finished = TaskRun(
        run_id=3,
        task_id=task_id,
        attempt=1,
        status=TaskStatus.success,
        started_at=T0 + timedelta(microseconds=5),
        finished_at=T0 + timedelta(days=400, seconds=7, microseconds=120_000),
    )
    for attempt, dag_id in ((tr, "etl"), (tr, None), (finished, 'we{ir}d "dag" {}')):
        text = task_event_text(attempt, dag_id)
        head, data = text.split("\n", 1)
        assert head == "event: task"
        assert data.startswith("data: ")
        assert data.endswith("\n\n")
        assert "\n" not in data[:-2]
        assert json.loads(data[len("data: ") :]) == task_event(attempt, dag_id)


async def test_a_storage_that_cannot_be_used_is_a_503(tmp_path) -> None:
    from ppacer_async.storage.sqlite import SQLiteStorage

    # Not opened: the app's lifespan did not run, as when a standalone app is mounted.
    app = create_app(storage=SQLiteStorage(path=str(tmp_path / "ppacer.db")))
    async with client(app) as http:
        response = await http.get("/api/v1/runs")
    assert response.status_code == 503
    assert "not open" in response.json()["error"]
