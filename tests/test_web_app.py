from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from ppacer_async import DAG, Scheduler, task
from ppacer_async.storage import MemoryStorage
from ppacer_async.web import create_app

pytestmark = pytest.mark.anyio


@task
async def hello(ctx):
    return 1


def _scheduler() -> Scheduler:
    dag = DAG("hello")
    dag.add(hello)
    return Scheduler([dag], storage=MemoryStorage())


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_app_serves_a_running_scheduler():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        response = await http.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["mode"] == "embedded"


async def test_links_and_static_files_work_under_a_mount_prefix():
    scheduler = _scheduler()
    outer = Starlette(routes=[Mount("/ppacer", app=create_app(scheduler))])
    async with scheduler, client(outer) as http:
        page = await http.get("/ppacer/")
        assert page.status_code == 200
        assert 'href="/ppacer/static/style.css"' in page.text
        assert 'href="/ppacer/api/v1/health"' in page.text
        assert (await http.get("/ppacer/static/style.css")).status_code == 200
        assert (await http.get("/ppacer/api/v1/health")).status_code == 200


async def test_unknown_api_path_is_a_json_404():
    scheduler = _scheduler()
    async with scheduler, client(create_app(scheduler)) as http:
        response = await http.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert "error" in response.json()


def test_app_needs_a_scheduler_or_a_storage():
    with pytest.raises(ValueError, match="needs a scheduler"):
        create_app()
    with pytest.raises(ValueError, match="not both"):
        create_app(_scheduler(), storage="memory://")


async def test_login_and_metrics_work_under_a_mount_prefix():
    scheduler = _scheduler()
    outer = Starlette(routes=[Mount("/ppacer", app=create_app(scheduler, token="t0k"))])
    same_site = {"origin": "http://test"}
    async with scheduler, client(outer) as http:
        login = await http.post(
            "/ppacer/login", data={"token": "t0k", "next": "/ppacer/"}, headers=same_site
        )
        write = await http.post("/ppacer/api/v1/dags/hello/runs", headers=same_site)
        metrics = await http.get("/ppacer/metrics")
    assert login.status_code == 303
    assert "path=/ppacer" in login.headers["set-cookie"].lower()
    assert write.status_code == 201
    assert "ppacer_live_processes 1.0" in metrics.text
