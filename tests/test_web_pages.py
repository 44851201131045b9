from __future__ import annotations

import re

import anyio
import httpx
import pytest
from markupsafe import escape
from starlette.applications import Starlette
from starlette.routing import Mount

from ppacer_async import DAG, DagRunStatus, Scheduler, TaskContext, task
from ppacer_async.storage import MemoryStorage
from ppacer_async.web import create_app

pytestmark = pytest.mark.anyio

SCRIPT = "<script>alert(1)</script>"


@task
async def first(ctx: TaskContext) -> int:
    ctx.log.info("param x is %s", ctx.params.get("x"))
    return 1


@task
async def second(ctx: TaskContext) -> None:
    if ctx.params.get("fail"):
        raise RuntimeError(f"failed on {ctx.params.get('x')}")


@task
async def hold(ctx: TaskContext) -> None:
    """Keeps its run running until the run is cancelled."""
    await anyio.sleep_forever()


def _scheduler() -> Scheduler:
    dag = DAG("pipeline", params={"fail": False})
    dag.add(first >> second)
    slow = DAG("slow")
    slow.add(first >> hold >> second)
    return Scheduler([dag, slow], storage=MemoryStorage())


async def _paused(scheduler: Scheduler) -> bool:
    info = await scheduler.storage.get_dag("pipeline")
    assert info is not None
    return info.paused


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_every_page_renders():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        run = await scheduler.trigger("pipeline")
        await scheduler.wait_for_run(run.id, timeout=5)
        for path in ("/", "/dags", "/dags/pipeline", "/runs", f"/runs/{run.id}"):
            page = await http.get(path)
            assert page.status_code == 200, path
            assert "<title>" in page.text


async def test_user_controlled_text_is_escaped_everywhere():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        run = await scheduler.trigger("pipeline", {"x": SCRIPT, "fail": True})
        await scheduler.wait_for_run(run.id, timeout=5)
        pages = [
            await http.get(f"/runs/{run.id}"),
            await http.get(f"/runs/{run.id}/task", params={"task_id": "first"}),
        ]
    for page in pages:
        assert SCRIPT not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0].text  # param and error
    assert "param x is &lt;script&gt;alert(1)&lt;/script&gt;" in pages[1].text  # log line


async def test_trigger_form_starts_a_run_and_redirects_to_its_page():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        response = await http.post("/dags/pipeline/trigger", data={"params": '{"x": 7}'})
        assert response.status_code == 303
        found = re.fullmatch(r"/runs/(\d+)", response.headers["location"])
        assert found is not None
        run_id = int(found[1])
        run = await scheduler.wait_for_run(run_id, timeout=5)
    assert run.params == {"fail": False, "x": 7}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ('{"x": ', "params are not valid JSON"),
        ("[1, 2]", "params must be a JSON object"),
    ],
)
async def test_trigger_form_with_bad_params_says_what_is_wrong_and_keeps_the_text(params, message):
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        response = await http.post("/dags/pipeline/trigger", data={"params": params})
        assert await scheduler.list_runs() == []
    assert response.status_code == 422
    assert message in response.text
    assert f">{escape(params)}</textarea>" in response.text


async def test_pause_toggle_pauses_and_unpauses_the_dag():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        response = await http.post("/dags/pipeline/pause", data={"next": "/dags"})
        assert (response.status_code, response.headers["location"]) == (303, "/dags")
        assert await _paused(scheduler)
        await http.post("/dags/pipeline/unpause")
        assert not await _paused(scheduler)


async def test_pause_never_redirects_to_another_site():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        response = await http.post("/dags/pipeline/pause", data={"next": "//evil.example/"})
    assert response.headers["location"] == "/"


async def test_restart_queues_a_failed_run_and_refuses_a_successful_one():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        failed = await scheduler.trigger("pipeline", {"fail": True})
        ok = await scheduler.trigger("pipeline")
        await scheduler.wait_for_run(failed.id, timeout=5)
        await scheduler.wait_for_run(ok.id, timeout=5)
        response = await http.post(f"/runs/{failed.id}/restart")
        assert response.status_code == 303
        attempts = await scheduler.task_runs((await scheduler.wait_for_run(failed.id, 5)).id)
        refused = await http.post(f"/runs/{ok.id}/restart")
    assert max(a.attempt for a in attempts if a.task_id == "second") == 2
    assert refused.status_code == 409
    assert "can be restarted" in refused.text


async def test_unknown_dag_and_run_are_404_pages():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        dag = await http.get("/dags/nope")
        run = await http.get("/runs/999")
    assert dag.status_code == 404 and "no DAG &#39;nope&#39;" in dag.text
    assert run.status_code == 404 and "no run with id 999" in run.text


async def test_page_links_stay_under_the_mount_prefix():
    scheduler = _scheduler()
    outer = Starlette(routes=[Mount("/ppacer", app=create_app(scheduler))])
    async with scheduler, client(outer) as http:
        run = await scheduler.trigger("pipeline")
        await scheduler.wait_for_run(run.id, timeout=5)
        page = await http.get(f"/ppacer/runs/{run.id}")
        trigger = await http.post("/ppacer/dags/pipeline/trigger", data={"params": "{}"})
    links = re.findall(r'(?:href|src|action|hx-get|sse-connect)="([^"#]+)', page.text)
    assert links
    assert all(link.startswith("/ppacer/") for link in links), links
    assert trigger.headers["location"].startswith("/ppacer/runs/")


async def test_read_only_app_refuses_writes_from_pages():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler, read_only=True)) as http:
        response = await http.post("/dags/pipeline/trigger", data={"params": "{}"})
        with anyio.fail_after(1):
            assert await scheduler.list_runs() == []
    assert response.status_code == 403
    assert "read-only" in response.text


async def test_with_a_token_a_write_asks_to_log_in_and_works_after_logging_in():
    scheduler = _scheduler()
    app = create_app(scheduler, token="s3cret-token")
    async with scheduler, client(app) as http:
        page = await http.get("/dags/pipeline")
        field = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert field is not None
        refused = await http.post("/dags/pipeline/trigger", data={"params": "{}"})
        assert refused.status_code == 401
        assert 'type="password"' in refused.text
        assert await scheduler.list_runs() == []

        wrong = await http.post("/login", data={"token": "guess", "next": "/dags/pipeline"})
        assert wrong.status_code == 401
        login = await http.post("/login", data={"token": "s3cret-token", "next": "/dags/pipeline"})
        assert (login.status_code, login.headers["location"]) == (303, "/dags/pipeline")
        # Logged in (the cookie), from this site's own form (the CSRF field).
        done = await http.post(
            "/dags/pipeline/trigger", data={"params": "{}", "csrf_token": field[1]}
        )
        assert done.status_code == 303
        assert len(await scheduler.list_runs()) == 1
        # The cookie alone, without the form's CSRF field, is not enough.
        forged = await http.post("/dags/pipeline/trigger", data={"params": "{}"})
        assert forged.status_code == 403
        assert len(await scheduler.list_runs()) == 1


async def test_cancel_stops_a_running_run_and_refuses_a_finished_one():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        run = await scheduler.trigger("slow")
        page = await http.get(f"/runs/{run.id}")
        assert f'action="/runs/{run.id}/cancel"' in page.text
        response = await http.post(f"/runs/{run.id}/cancel")
        assert (response.status_code, response.headers["location"]) == (303, f"/runs/{run.id}")
        ended = await scheduler.wait_for_run(run.id, timeout=5)
        page = await http.get(f"/runs/{run.id}")
        again = await http.post(f"/runs/{run.id}/cancel")
    assert ended.status is DagRunStatus.cancelled
    assert ended.note == "cancelled from the web page"
    assert "cancelled from the web page" in page.text
    assert f'action="/runs/{run.id}/cancel"' not in page.text
    assert f'action="/runs/{run.id}/restart"' in page.text
    assert again.status_code == 409
    assert "can be cancelled" in again.text


async def test_pages_serve_a_storage_another_process_schedules(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    scheduler = Scheduler(_scheduler().dags.values(), storage=url)
    async with scheduler:
        run = await scheduler.trigger("pipeline", {"fail": True})
        await scheduler.wait_for_run(run.id, timeout=5)
    app = create_app(storage=url)
    async with app.router.lifespan_context(app), client(app) as http:
        pages = {
            path: await http.get(path)
            for path in ("/", "/dags", "/dags/pipeline", "/runs", f"/runs/{run.id}")
        }
        restart = await http.post(f"/runs/{run.id}/restart")
        queued = await http.get(f"/runs/{run.id}")
    assert all(page.status_code == 200 for page in pages.values())
    assert "RuntimeError: failed on None" in pages[f"/runs/{run.id}"].text
    assert "No live scheduler process serves this storage." in pages["/"].text
    assert restart.status_code == 303
    assert 'data-status="queued"' in queued.text


async def test_runs_page_filters_by_dag_and_status_and_pages_back():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        ok = [await scheduler.trigger("pipeline") for _ in range(3)]
        failed = await scheduler.trigger("pipeline", {"fail": True})
        for run in [*ok, failed]:
            await scheduler.wait_for_run(run.id, timeout=5)
        by_status = await http.get("/runs", params={"dag": "pipeline", "status": "failed"})
        by_dag = await http.get("/runs", params={"dag": "pipeline"})
        older = await http.get("/runs", params={"dag": "pipeline", "before": ok[2].id})
        unknown = await http.get("/runs", params={"dag": "nope"})
        bad = await http.get("/runs", params={"status": "sleeping"})

    def shown(page: httpx.Response) -> list[int]:
        return [int(i) for i in re.findall(r'class="mono">#(\d+)<', page.text)]

    assert shown(by_status) == [failed.id]
    assert shown(by_dag) == [failed.id, ok[2].id, ok[1].id, ok[0].id]
    assert shown(older) == [ok[1].id, ok[0].id]
    assert "Newest runs" in older.text
    assert unknown.status_code == 404
    assert bad.status_code == 400 and "status must be one of" in bad.text


async def test_a_run_page_draws_the_open_tasks_with_their_attempts_and_logs():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        run = await scheduler.trigger("pipeline", {"x": "row 7", "fail": True})
        await scheduler.wait_for_run(run.id, timeout=5)
        closed = await http.get(f"/runs/{run.id}/body")
        opened = await http.get(f"/runs/{run.id}/body", params={"open": ["first", "second"]})
        one = await http.get(f"/runs/{run.id}/task", params={"task_id": "second"})
        unknown = await http.get(f"/runs/{run.id}/task", params={"task_id": "nope"})
    assert "param x is row 7" not in closed.text
    assert "RuntimeError: failed on row 7" in closed.text  # the headline
    assert closed.text.count('data-src="/runs/') == 2
    assert "param x is row 7" in opened.text
    assert "Traceback (most recent call last)" in opened.text
    assert 'data-src="' not in opened.text
    assert "Traceback (most recent call last)" in one.text
    assert unknown.status_code == 404 and "has no task &#39;nope&#39;" in unknown.text


async def test_a_browser_gets_a_page_for_a_path_the_app_does_not_have():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        page = await http.get("/runs/not-a-number", headers={"accept": "text/html"})
        plain = await http.get("/nothing-here")
    assert page.status_code == 404
    assert "There is no page at /runs/not-a-number." in page.text
    assert 'href="/dags"' in page.text  # the navigation is there
    assert (plain.status_code, plain.text) == (404, "Not Found")


async def test_a_run_page_can_show_only_the_tasks_with_one_status():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        run = await scheduler.trigger("pipeline", {"fail": True})
        await scheduler.wait_for_run(run.id, timeout=5)
        everything = await http.get(f"/runs/{run.id}")
        failed = await http.get(f"/runs/{run.id}", params={"only": "failed"})
        refreshed = await http.get(f"/runs/{run.id}/body", params={"only": "success"})
        none = await http.get(f"/runs/{run.id}", params={"only": "skipped"})

    def listed(page: httpx.Response) -> list[str]:
        return re.findall(r'<li class="task-item" id="task-([^"]+)"', page.text)

    assert listed(everything) == ["first", "second"]
    assert listed(failed) == ["second"]
    assert "show all 2" in failed.text
    assert listed(refreshed) == ["first"]
    assert listed(none) == [] and "No task is skipped." in none.text
