"""Who may write through the web app: the token, the login cookie, cross-site
requests, read-only mode."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ppacer_async import DAG, Scheduler, TaskContext, task
from ppacer_async.storage import MemoryStorage
from ppacer_async.web import create_app

from .web_helpers import client

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-token"
SAME_SITE = {"origin": "http://testserver"}


@task
async def hello(ctx: TaskContext) -> None:
    pass


@contextlib.asynccontextmanager
async def app_client(**options: Any) -> AsyncIterator[httpx.AsyncClient]:
    scheduler = Scheduler([DAG("hello").add(hello)], storage=MemoryStorage())
    async with scheduler, client(create_app(scheduler, **options)) as http:
        yield http


async def login(http: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    return await http.post("/login", data={"token": token, "next": "/"}, headers=SAME_SITE)


async def test_with_a_token_a_write_without_it_is_401_and_reads_stay_open() -> None:
    async with app_client(token=TOKEN) as http:
        refused = await http.post("/api/v1/dags/hello/runs")
        wrong = await http.post("/api/v1/dags/hello/runs", headers={"authorization": "Bearer nope"})
        read = await http.get("/api/v1/runs")
    assert refused.status_code == 401
    assert "Authorization: Bearer" in refused.json()["error"]
    assert wrong.status_code == 401
    assert read.status_code == 200
    assert read.json()["runs"] == []


async def test_bearer_token_allows_writes() -> None:
    async with app_client(token=TOKEN) as http:
        response = await http.post(
            "/api/v1/dags/hello/runs", headers={"authorization": f"Bearer {TOKEN}"}
        )
    assert response.status_code == 201


async def test_login_sets_an_httponly_samesite_strict_cookie_that_allows_writes() -> None:
    async with app_client(token=TOKEN) as http:
        response = await login(http)
        write = await http.post("/api/v1/dags/hello/runs", headers=SAME_SITE)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert TOKEN not in cookie
    assert write.status_code == 201


async def test_login_with_a_wrong_token_sets_no_cookie() -> None:
    async with app_client(token=TOKEN) as http:
        response = await login(http, "guess")
        write = await http.post("/api/v1/dags/hello/runs", headers=SAME_SITE)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert write.status_code == 401


async def test_login_never_redirects_to_another_site() -> None:
    async with app_client(token=TOKEN) as http:
        response = await http.post(
            "/login", data={"token": TOKEN, "next": "//evil.example/"}, headers=SAME_SITE
        )
    assert response.headers["location"] == "/"


async def test_cookie_write_from_another_site_is_refused() -> None:
    async with app_client(token=TOKEN) as http:
        await login(http)
        cross = await http.post(
            "/api/v1/dags/hello/runs", headers={"origin": "http://evil.example"}
        )
        cross_referer = await http.post(
            "/api/v1/dags/hello/runs", headers={"referer": "http://evil.example/page"}
        )
    assert cross.status_code == 403
    assert "cross-site" in cross.json()["error"]
    assert cross_referer.status_code == 403


async def test_cookie_write_without_origin_needs_the_csrf_token() -> None:
    scheduler = Scheduler([DAG("hello").add(hello)], storage=MemoryStorage())
    app = create_app(scheduler, token=TOKEN)
    from ppacer_async.web._auth import _derive

    csrf = _derive(TOKEN, "ppacer-async csrf")
    async with scheduler, client(app) as http:
        await login(http)
        bare = await http.post("/api/v1/dags/hello/runs")
        with_header = await http.post("/api/v1/dags/hello/runs", headers={"x-csrf-token": csrf})
        with_wrong = await http.post("/api/v1/dags/hello/runs", headers={"x-csrf-token": "x"})
        with_field = await http.post(
            "/api/v1/dags/hello/pause", data={"csrf_token": csrf, "other": "x"}
        )
    assert bare.status_code == 403
    assert with_header.status_code == 201
    assert with_wrong.status_code == 403
    assert with_field.status_code == 400  # past the checks; a form is not a JSON body
    assert "not JSON" in with_field.json()["error"]


async def test_logout_forgets_the_login() -> None:
    async with app_client(token=TOKEN) as http:
        await login(http)
        out = await http.post("/logout", headers=SAME_SITE)
        http.cookies.clear()
        http.cookies.update(out.cookies)
        write = await http.post("/api/v1/dags/hello/runs", headers=SAME_SITE)
    assert out.status_code == 303
    assert write.status_code == 401


async def test_without_a_token_a_cross_site_browser_write_is_still_refused() -> None:
    async with app_client() as http:
        cross = await http.post(
            "/api/v1/dags/hello/runs", headers={"origin": "http://evil.example"}
        )
        same = await http.post("/api/v1/dags/hello/runs", headers=SAME_SITE)
        script = await http.post("/api/v1/dags/hello/runs")
    assert cross.status_code == 403
    assert same.status_code == 201
    assert script.status_code == 201


WRITES = [
    "/api/v1/dags/hello/runs",
    "/api/v1/dags/hello/pause",
    "/api/v1/dags/hello/unpause",
    "/api/v1/dags/hello/backfill",
    "/api/v1/runs/1/restart",
    "/api/v1/runs/1/cancel",
]


async def test_read_only_refuses_every_write_even_with_the_token() -> None:
    async with app_client(token=TOKEN, read_only=True) as http:
        responses = [
            await http.post(path, json={}, headers={"authorization": f"Bearer {TOKEN}"})
            for path in WRITES
        ]
        read = await http.get("/api/v1/dags")
        health = (await http.get("/api/v1/health")).json()
    assert [r.status_code for r in responses] == [403] * len(WRITES)
    assert all("read-only" in r.json()["error"] for r in responses)
    assert read.status_code == 200
    assert health["read_only"] is True


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="token must not be empty"):
        create_app(storage="memory://", token="  ")
