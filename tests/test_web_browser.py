"""The web pages in a real headless Chromium (Debian's ``chromium`` package, driven by
Playwright's Python API; Playwright's own browser downloads are never used).

Each test serves the app with uvicorn on a free loopback port, in the test's event
loop, next to a real scheduler. Screenshots go to ``tests/screenshots/`` (ignored by
git). Without Chromium the tests skip with the reason; under CI they fail instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from ppacer_async import DAG, Scheduler, TaskContext, task

pytestmark = [pytest.mark.anyio, pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("PPACER_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
SCRIPT = "<script>alert(1)</script>"
#: How long a page may take to show what the test waits for, in milliseconds.
WAIT_MS = 10_000


def browser_unavailable_reason() -> str | None:
    """Why the browser tests cannot run here, or None; under CI (``CI`` set) a missing
    browser is a failure, never a skip."""
    reason = None
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[test]')"
    else:
        if not os.access(CHROMIUM, os.X_OK):
            reason = f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    if reason is not None and os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI: {reason}")
    return reason


# -- the DAGs the pages show --------------------------------------------------------------

#: Set by a test to let ``gate`` finish in the runs whose param ``x`` is the key, so the
#: test sees the run page while the run is still going.
gates: dict[object, anyio.Event] = {}


@task
async def extract(ctx: TaskContext) -> dict[str, Any]:
    ctx.log.info("extracting with x=%s", ctx.params.get("x"))
    return {"rows": 10}


@task
async def gate(ctx: TaskContext) -> None:
    event = gates.get(ctx.params.get("x"))
    if event is not None:
        await event.wait()


@task
async def load(ctx: TaskContext) -> int:
    rows: int = ctx.upstream["extract"]["rows"]
    return rows * 2


@task
async def flaky(ctx: TaskContext) -> None:
    ctx.log.warning("checking row 7 of %s", ctx.params.get("x"))
    if ctx.attempt == 1:
        raise RuntimeError("row 7 is malformed")


@task
async def report(ctx: TaskContext) -> None:
    ctx.log.info("report written")


def _dags() -> list[DAG]:
    etl = DAG("etl", params={"x": 1}, description="Extract, wait, load.")
    etl.add(extract >> gate >> load, extract >> load)
    checks = DAG("checks", schedule=None, tags=("nightly",))
    checks.add(extract >> flaky >> report)
    return [etl, checks]


# -- serving ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _serve(
    tmp_path: Path,
    dags: list[DAG] | None = None,
    *,
    standalone: bool = False,
    **app_options: Any,
) -> AsyncIterator[tuple[Scheduler, str]]:
    """A running scheduler on SQLite and the URL of its web app: embedded in the
    scheduler, or ``standalone`` over the storage (as ``ppacer-async web`` serves it)."""
    import uvicorn

    from ppacer_async.web import create_app

    storage = f"sqlite:///{tmp_path / 'web.db'}"
    scheduler = Scheduler(dags or _dags(), storage=storage)
    app = create_app(storage=storage, **app_options) if standalone else None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections wait in the backlog until uvicorn accepts them
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app or create_app(scheduler, **app_options),
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    with sock:
        async with scheduler, anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            try:
                yield scheduler, f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Scheduler, str]]:
    async with _serve(tmp_path) as found:
        yield found


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    reason = browser_unavailable_reason()
    if reason is not None:
        pytest.skip(f"browser tests skipped: {reason}")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    assert errors == [], f"scripts on the page failed: {errors}"


async def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def _expect(locator: Any) -> Any:
    from playwright.async_api import expect

    return expect(locator)


def _run_status(page: Any) -> Any:
    return page.locator(".page-head .status").first


def _task_status(page: Any, task_id: str) -> Any:
    """The status of a task's latest attempt, as the run page's task list shows it."""
    return page.locator(f"#task-{task_id} > details > summary .status")


# -- the tests ------------------------------------------------------------------------------


async def test_overview_shows_runs_tasks_and_the_scheduler(served, page):
    scheduler, url = served
    run = await scheduler.trigger("checks")
    await scheduler.wait_for_run(run.id, timeout=5)
    await page.goto(url + "/")
    await _expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await _expect(page.locator(".figure", has_text="live scheduler process")).to_be_visible()
    runs = page.locator(".panel", has=page.get_by_role("heading", name=re.compile("Runs by")))
    await _expect(runs.locator(".status")).to_have_text(["failed"])
    tasks = page.locator(".panel", has=page.get_by_role("heading", name=re.compile("Tasks by")))
    await _expect(tasks.locator(".status")).to_have_text(["success", "failed", "upstream failed"])
    await _expect(page.locator("table").first).to_contain_text(f"#{run.id}")
    await shot(page, "overview")


async def test_trigger_with_a_param_and_watch_the_run_succeed_without_reloading(served, page):
    scheduler, url = served
    gates[42] = opened = anyio.Event()
    await page.goto(url + "/dags/etl")
    await page.get_by_label("Params").fill('{"x": 42}')
    await page.get_by_role("button", name="Trigger run").click()
    await page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    await _expect(page.locator(".params")).to_contain_text('"x": 42')
    # The gate holds the run while the page is open; a reload would lose this mark.
    await page.evaluate("window.notReloaded = true")
    await _expect(page.locator("[data-live]")).to_have_text("Live", timeout=WAIT_MS)
    await _expect(_task_status(page, "gate")).to_have_text(re.compile("running|scheduled|pending"))
    # A task the reader opened stays open, with its logs, through the live refreshes
    # (which ask for it to be drawn open).
    refreshes: list[str] = []
    page.on("request", lambda request: refreshes.append(request.url))
    extract_logs = page.locator("#task-extract .logs")
    await page.locator("#task-extract > details > summary").click()
    await _expect(extract_logs).to_contain_text("extracting with x=42")
    await shot(page, "run-running")
    opened.set()
    await _expect(_run_status(page)).to_have_text("success", timeout=WAIT_MS)
    await _expect(_task_status(page, "load")).to_have_text("success")
    await _expect(extract_logs).to_be_visible()
    await _expect(extract_logs).to_contain_text("extracting with x=42")
    await _expect(page.locator("[data-announce]")).to_have_text(f"Run #{run_id} is success")
    assert any("/body?open=extract" in url for url in refreshes), refreshes
    assert await page.evaluate("window.notReloaded") is True
    run = await scheduler.get_run(run_id)
    assert run.params == {"x": 42}
    await shot(page, "run-success")


async def test_a_failed_task_shows_its_traceback_and_logs(served, page):
    scheduler, url = served
    run = await scheduler.trigger("checks", {"x": "file.csv"})
    await scheduler.wait_for_run(run.id, timeout=5)
    await page.goto(f"{url}/runs/{run.id}")
    await _expect(_run_status(page)).to_have_text("failed")
    flaky_task = page.locator("#task-flaky")
    await _expect(flaky_task.locator("> details > summary")).to_contain_text(
        "RuntimeError: row 7 is malformed"
    )
    error = flaky_task.locator("pre.error")
    await _expect(error).to_be_hidden()
    await flaky_task.locator("> details > summary").click()
    await _expect(error).to_be_visible()
    await _expect(error).to_contain_text("Traceback (most recent call last)")
    await _expect(error).to_contain_text('raise RuntimeError("row 7 is malformed")')
    logs = flaky_task.locator(".logs")
    await _expect(logs).to_contain_text("checking row 7 of file.csv", timeout=WAIT_MS)
    await _expect(logs.locator(".lvl")).to_have_text(
        ["WARNING", "ERROR"]
    )  # ctx.log, then the traceback
    await _expect(_task_status(page, "report")).to_have_text("upstream failed")
    await shot(page, "run-failed")
    # Only the failed tasks, at a URL of their own.
    await page.locator(".legend a.filter", has_text="failed").first.click()
    await page.wait_for_url(f"{url}/runs/{run.id}?only=failed")
    await _expect(page.locator(".task-item")).to_have_count(1)
    await _expect(page.locator(".task-item .task-id")).to_have_text("flaky")


async def test_restart_runs_the_failed_tasks_again(served, page):
    scheduler, url = served
    run = await scheduler.trigger("checks")
    await scheduler.wait_for_run(run.id, timeout=5)
    await page.goto(f"{url}/runs/{run.id}")
    await _expect(_run_status(page)).to_have_text("failed")
    await page.get_by_role("button", name="Restart").click()
    await _expect(_run_status(page)).to_have_text("success", timeout=WAIT_MS)
    assert page.url == f"{url}/runs/{run.id}"
    flaky_task = page.locator("#task-flaky")
    await _expect(flaky_task.locator(".task-meta")).to_contain_text("2 attempts")
    await flaky_task.locator("> details > summary").click()
    await _expect(flaky_task.locator(".attempt .status")).to_have_text(["success", "failed"])
    await _expect(page.get_by_role("button", name="Restart")).to_have_count(0)
    await shot(page, "run-restarted")


async def test_pause_a_dag_from_the_list(served, page):
    scheduler, url = served
    await page.goto(url + "/dags")
    row = page.locator("tr", has=page.get_by_role("link", name="etl", exact=True))
    await row.get_by_role("button", name="Active").click()
    await _expect(row.get_by_role("button", name="Paused")).to_be_visible()
    assert page.url == url + "/dags"
    info = await scheduler.storage.get_dag("etl")
    assert info is not None and info.paused
    await shot(page, "dags-paused")
    await row.get_by_role("button", name="Paused").click()
    await _expect(row.get_by_role("button", name="Active")).to_be_visible()


async def test_a_param_with_a_script_tag_is_shown_as_text(served, page):
    _, url = served
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto(url + "/dags/checks")
    await page.get_by_label("Params").fill('{"x": "' + SCRIPT.replace("/", "\\/") + '"}')
    await page.get_by_role("button", name="Trigger run").click()
    await page.wait_for_url(re.compile(r"/runs/\d+$"))
    await _expect(page.locator(".params")).to_contain_text(SCRIPT)
    await _expect(_run_status(page)).to_have_text("failed", timeout=WAIT_MS)
    await page.locator("#task-flaky > details > summary").click()
    await _expect(page.locator("#task-flaky .logs")).to_contain_text(
        f"checking row 7 of {SCRIPT}", timeout=WAIT_MS
    )
    assert await page.locator(".params script, .logs script").count() == 0
    assert dialogs == []


async def test_pages_fit_a_phone_screen(served, browser):
    scheduler, url = served
    run = await scheduler.trigger("checks", {"x": "phone"})
    await scheduler.wait_for_run(run.id, timeout=5)
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    page = await context.new_page()
    try:
        pages = {
            "overview": "/",
            "dags": "/dags",
            "dag": "/dags/checks",
            "runs": "/runs",
            "run": f"/runs/{run.id}",
        }
        for name, path in pages.items():
            await page.goto(url + path)
            await _expect(page.locator("h1")).to_be_visible()
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"the {name} page is wider than the phone screen"
            await shot(page, f"phone-{name}")
    finally:
        await context.close()


async def test_times_are_written_in_the_browsers_time_zone(served, browser):
    scheduler, url = served
    run = await scheduler.trigger("checks")
    await scheduler.wait_for_run(run.id, timeout=5)
    context = await browser.new_context(timezone_id="Asia/Tokyo", locale="en-GB")
    page = await context.new_page()
    try:
        await page.goto(f"{url}/runs/{run.id}")
        logical = page.locator("time[data-format='exact']").first
        await _expect(logical).to_contain_text("GMT+9")
        await _expect(logical).to_have_attribute("title", re.compile("GMT\\+9"))
        created = page.locator("dt:text-is('Created') + dd time")
        await _expect(created).to_have_text(re.compile("now|seconds? ago"))
    finally:
        await context.close()


async def test_with_a_token_the_trigger_form_asks_to_log_in_first(tmp_path, page):
    async with _serve(tmp_path, token="s3cret-token") as (scheduler, url):
        await page.goto(url + "/dags/etl")
        await page.get_by_label("Params").fill('{"x": 7}')
        await page.get_by_role("button", name="Trigger run").click()
        await _expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        await _expect(page.get_by_role("alert")).to_contain_text("needs the token")
        assert await scheduler.list_runs() == []
        await shot(page, "login")
        await page.get_by_label("Token").fill("s3cret-token")
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(url + "/dags/etl")
        await _expect(page.get_by_role("button", name="Log out")).to_be_visible()
        await page.get_by_label("Params").fill('{"x": 7}')
        await page.get_by_role("button", name="Trigger run").click()
        await page.wait_for_url(re.compile(r"/runs/\d+$"))
        await _expect(_run_status(page)).to_have_text("success", timeout=WAIT_MS)
        assert [run.params for run in await scheduler.list_runs()] == [{"x": 7}]


def _example_dags() -> list[DAG]:
    path = Path(__file__).parent.parent / "examples" / "etl.py"
    spec = importlib.util.spec_from_file_location("example_etl_for_web", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.dags)


async def test_the_example_run_page_shows_the_retried_attempt(tmp_path, page):
    """Also makes the README's picture: ``tests/screenshots/run-page.png`` is copied to
    ``docs/images/run-page.png``."""
    async with _serve(tmp_path, dags=_example_dags()) as (scheduler, url):
        run = await scheduler.trigger("etl", {"day": "2026-01-31", "source": "s3://sales"})
        await scheduler.wait_for_run(run.id, timeout=10)
        await page.set_viewport_size({"width": 1200, "height": 900})
        await page.goto(f"{url}/runs/{run.id}")
        await _expect(_run_status(page)).to_have_text("success")
        clean_b = page.locator("#task-clean_b")
        await _expect(clean_b.locator(".task-meta")).to_contain_text("2 attempts")
        await clean_b.locator("> details > summary").click()
        failed = clean_b.locator(".attempt[data-status='up_for_retry']")
        await _expect(failed.locator("pre.error")).to_contain_text(
            "ConnectionError: source temporarily unavailable"
        )
        await _expect(failed.locator(".logs")).to_contain_text("failing attempt 1 on purpose")
        await shot(page, "run-page")


async def test_cancel_a_running_run_from_its_page(served, page):
    scheduler, url = served
    gates["held"] = anyio.Event()  # never set: the run waits until it is cancelled
    run = await scheduler.trigger("etl", {"x": "held"})
    await page.goto(f"{url}/runs/{run.id}")
    await _expect(_task_status(page, "gate")).to_have_text("running", timeout=WAIT_MS)
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Cancel").click()
    await _expect(_run_status(page)).to_have_text("cancelled", timeout=WAIT_MS)
    await _expect(_task_status(page, "gate")).to_have_text("cancelled", timeout=WAIT_MS)
    await _expect(page.locator("dl.facts")).to_contain_text("cancelled from the web page")
    await _expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    await _expect(page.get_by_role("button", name="Restart")).to_be_visible()
    assert (await scheduler.get_run(run.id)).status == "cancelled"
    await shot(page, "run-cancelled")


async def test_the_dag_page_shows_new_runs_in_its_grid_without_reloading(served, page):
    scheduler, url = served
    first = await scheduler.trigger("checks")
    await scheduler.wait_for_run(first.id, timeout=5)
    await page.goto(url + "/dags/checks")
    await page.evaluate("window.notReloaded = true")
    await _expect(page.locator(".grid .runbar")).to_have_count(1)
    await _expect(page.locator(".graph .node[data-status='failed']")).to_have_count(1)
    second = await scheduler.trigger("checks")
    await scheduler.wait_for_run(second.id, timeout=5)
    await _expect(page.locator(".grid .runbar")).to_have_count(2, timeout=WAIT_MS)
    await _expect(page.locator(".grid .runbar").last).to_have_attribute(
        "href", f"/runs/{second.id}"
    )
    await _expect(page.locator("#dag-facts")).to_contain_text(f"#{second.id}")
    assert await page.evaluate("window.notReloaded") is True
    await shot(page, "dag")
    # A cell opens its run's page at that task, drawn open with its error.
    flaky_row = page.locator(".grid tr", has=page.locator("th", has_text="flaky"))
    await flaky_row.locator("a.cell").last.click()
    await page.wait_for_url(f"{url}/runs/{second.id}?task=flaky#task-flaky")
    await _expect(page.locator("#task-flaky pre.error")).to_contain_text("row 7 is malformed")


async def test_a_standalone_app_follows_a_run_another_scheduler_runs(tmp_path, page):
    """``ppacer-async web`` over a storage: the page follows changes it reads there."""
    gates["standalone"] = opened = anyio.Event()
    async with _serve(tmp_path, standalone=True) as (scheduler, url):
        run = await scheduler.trigger("etl", {"x": "standalone"})
        await page.goto(f"{url}/runs/{run.id}")
        await _expect(page.locator("[data-live]")).to_have_text("Live", timeout=WAIT_MS)
        await _expect(_task_status(page, "gate")).to_have_text("running")
        opened.set()
        await _expect(_run_status(page)).to_have_text("success", timeout=WAIT_MS)
        await _expect(_task_status(page, "load")).to_have_text("success")
