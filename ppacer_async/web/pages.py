"""Server-rendered pages at ``/``: overview, DAGs, a DAG, runs and a run.

Every read and write goes through :mod:`ppacer_async.operations` (or the embedded
scheduler, whose writes also wake it at once); the shapes the templates draw come from
``_views``. Writes are plain HTML forms answered with a redirect (post, redirect, get),
so they work without scripts; htmx only refreshes parts of a page in place.
"""

from __future__ import annotations

import json
import time
import weakref
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs
from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from .. import operations as ops
from .._enums import DagRunStatus
from .._exceptions import DagNotFound, InvalidOperation, RunNotFound, TaskNotFound
from .._structures import DagDetail, DagSummary, LogRecord, RunDetail
from . import _views as views
from ._auth import (
    CSRF_FIELD,
    WriteRefused,
    _safe_next,
    csrf_token,
    is_authenticated,
    require_write,
)
from ._context import WebContext, url_for, web_context
from ._graph import layout_graph
from ._live import live_processes, now_utc
from .api import _served as served
from .api import _serves, storage_kind

TEMPLATES_DIR = Path(__file__).parent / "templates"

#: Runs drawn in a DAG's grid, and at most this many of its tasks.
GRID_RUNS = 25
GRID_TASKS = 100
#: The newest runs the overview counts by status.
OVERVIEW_RUNS = 500
#: The newest runs whose tasks the overview counts by status.
OVERVIEW_TASK_RUNS = 20
RUNS_PAGE = 50
STORAGE_NAMES = {"memory": "Memory", "sqlite": "SQLite", "postgresql": "PostgreSQL"}

templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.globals["url_for"] = url_for
templates.env.filters.update(views.FILTERS)


def csrf_input(request: Request) -> Markup:
    """The hidden CSRF field every write form carries (nothing without a token)."""
    token = csrf_token(request)
    if not token:
        return Markup("")
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)


templates.env.globals["csrf_input"] = csrf_input


def _render(
    request: Request, name: str, values: dict[str, Any], status_code: int = 200
) -> Response:
    context = web_context(request)
    values = {
        "storage_kind": STORAGE_NAMES.get(kind := storage_kind(context), kind),
        "read_only": context.read_only,
        "token_required": context.token is not None,
        "logged_in": context.token is not None and is_authenticated(request),
        "now": now_utc(context),
        **values,
    }
    return templates.TemplateResponse(request, name, values, status_code=status_code)


def _error_page(request: Request, status_code: int, title: str, message: str) -> Response:
    return _render(
        request, "error.html", {"title": title, "message": message}, status_code=status_code
    )


def http_error_page(
    request: Request, status_code: int, detail: str, headers: dict[str, str]
) -> Response:
    """The page a browser gets for a path the app does not have (or a wrong method)."""
    message = f"There is no page at {request.url.path}." if status_code == 404 else detail
    response = _error_page(request, status_code, detail, message)
    response.headers.update(headers)
    return response


# -- logging in ------------------------------------------------------------------------------


#: What the login form says when a change was refused for want of the token.
LOGIN_NEEDED = "This change needs the token: log in, then make it again."


def _login_page(request: Request, message: str | None, next_path: str) -> Response:
    return _render(
        request,
        "login.html",
        {"message": message, "next_path": next_path},
        status_code=200 if message is None else 401,
    )


async def login_form(request: Request) -> Response:
    """The form that sends the token to ``POST /login`` (which sets the login cookie)."""
    return _login_page(request, None, _safe_next(request, request.query_params.get("next")))


# -- overview ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Figures:
    active_runs: int
    running_tasks: int | None
    queue_depth: int | None
    tasks_per_second: float | None
    processes: int


@attrs.frozen(kw_only=True)
class Process:
    host: str
    pid: int
    role: str
    started_at: datetime | None
    renewed_at: datetime | None


#: Per app: recent (monotonic time, tasks finished) samples of the embedded scheduler,
#: from which the overview tells tasks per second.
_samples: weakref.WeakKeyDictionary[WebContext, deque[tuple[float, int]]] = (
    weakref.WeakKeyDictionary()
)
_RATE_WINDOW = 60.0


def _tasks_per_second(context: WebContext, finished: int) -> float | None:
    samples = _samples.setdefault(context, deque())
    now = time.monotonic()
    samples.append((now, finished))
    while len(samples) > 2 and now - samples[1][0] >= _RATE_WINDOW:
        samples.popleft()
    (t0, n0), (t1, n1) = samples[0], samples[-1]
    if t1 - t0 < 1.0:
        return None
    return max(n1 - n0, 0) / (t1 - t0)


async def _processes(context: WebContext) -> list[Process]:
    found = await live_processes(context, now_utc(context))
    return [
        Process(
            host=p["host"],
            pid=p["pid"],
            role=p["role"],
            started_at=_parse_iso(p["started_at"]),
            renewed_at=_parse_iso(p["last_seen"]),
        )
        for p in found
    ]


def _parse_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


async def _figures(context: WebContext, processes: int) -> Figures:
    if context.scheduler is not None:
        stats = context.scheduler.statistics()
        return Figures(
            active_runs=stats.active_runs,
            running_tasks=stats.running_tasks,
            queue_depth=stats.queued_tasks,
            tasks_per_second=_tasks_per_second(context, stats.tasks_finished),
            processes=processes,
        )
    active = 0
    for status in (DagRunStatus.queued, DagRunStatus.running):
        active += len(await ops.list_runs(context.storage, status=status, limit=1000))
    return Figures(
        active_runs=active,
        running_tasks=None,
        queue_depth=None,
        tasks_per_second=None,
        processes=processes,
    )


async def overview(request: Request) -> Response:
    context = web_context(request)
    now = now_utc(context)
    runs = await ops.list_runs(context.storage, limit=OVERVIEW_RUNS)
    task_statuses: list[str] = []
    for run in runs[:OVERVIEW_TASK_RUNS]:
        detail = await ops.get_run_detail(context.storage, run.id)
        task_statuses.extend(views.latest_statuses(detail).values())
    processes = await _processes(context)
    return _render(
        request,
        "overview.html",
        {
            "section": "overview",
            "dag_count": len(await ops.list_dags(context.storage, now)),
            "figures": await _figures(context, len(processes)),
            "runs_by_status": views.count_statuses(run.status for run in runs),
            "runs_total": len(runs),
            "runs_window": OVERVIEW_RUNS,
            "tasks_by_status": views.count_statuses(task_statuses),
            "tasks_total": len(task_statuses),
            "tasks_window": min(len(runs), OVERVIEW_TASK_RUNS),
            "runs": runs[:10],
            "processes": processes,
        },
    )


async def overview_figures(request: Request) -> Response:
    context = web_context(request)
    processes = await _processes(context)
    return _render(request, "_figures.html", {"figures": await _figures(context, len(processes))})


# -- DAGs ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DagRow:
    """A DAG as the pages show it: its summary and whether a live scheduler serves it."""

    summary: DagSummary
    served: bool
    detail: DagDetail | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.summary, name)


async def dags(request: Request) -> Response:
    context = web_context(request)
    now = now_utc(context)
    live = bool(await live_processes(context, now))
    summaries = await ops.list_dags(context.storage, now)
    rows = [DagRow(summary=s, served=served(context, s.dag_id, live)) for s in summaries]
    return _render(request, "dags.html", {"section": "dags", "dags": rows})


async def dag(request: Request) -> Response:
    return await _dag_page(request, request.path_params["dag_id"])


async def _dag_page(
    request: Request,
    dag_id: str,
    *,
    error: str | None = None,
    params_text: str | None = None,
    status_code: int = 200,
) -> Response:
    context = web_context(request)
    now = now_utc(context)
    try:
        detail = await ops.get_dag(context.storage, dag_id, now)
    except DagNotFound as exc:
        return _error_page(request, 404, "No such DAG", str(exc))
    if params_text is None:
        params_text = (
            json.dumps(detail.params, indent=2, ensure_ascii=False) if detail.params else "{}"
        )
    root = str(request.scope.get("ppacer.root_path", ""))
    values = {
        "section": "dags",
        "detail": detail,
        "error": error,
        "params_text": params_text,
        "events_url": f"{root}/api/v1/events?{urlencode({'dag_id': dag_id})}",
        **await _dag_live_values(context, detail, now),
    }
    return _render(request, "dag.html", values, status_code=status_code)


async def dag_live(request: Request) -> Response:
    """The part of a DAG's page that changes with its runs: graph, grid, runs."""
    context = web_context(request)
    now = now_utc(context)
    try:
        detail = await ops.get_dag(context.storage, request.path_params["dag_id"], now)
    except DagNotFound as exc:
        return _error_page(request, 404, "No such DAG", str(exc))
    values = {"oob": True, **await _dag_live_values(context, detail, now)}
    return _render(request, "_dag_live.html", values)


async def _dag_live_values(context: WebContext, detail: DagDetail, now: datetime) -> dict[str, Any]:
    dag_id = detail.summary.dag_id
    recent = await ops.list_runs(context.storage, dag_id=dag_id, limit=GRID_RUNS)
    details = [await ops.get_run_detail(context.storage, run.id) for run in recent]
    latest = details[0] if details else None
    statuses = views.latest_statuses(latest)
    mapped = {t.task_id: t.options["map_over"] for t in detail.tasks if "map_over" in t.options}
    graph, graph_error = None, ""
    try:
        graph = layout_graph({t.task_id: t.upstream for t in detail.tasks}, statuses, mapped)
    except ValueError as exc:
        graph_error = str(exc)
    live = bool(await live_processes(context, now))
    return {
        "d": DagRow(summary=detail.summary, served=served(context, dag_id, live), detail=detail),
        "graph": graph,
        "graph_error": graph_error,
        "mapped": mapped,
        "graph_run": latest.run if latest else None,
        "graph_statuses": [s for s, _ in views.count_statuses(statuses.values())],
        "grid": views.build_grid([t.task_id for t in detail.tasks], details, now, GRID_TASKS),
        "recent_runs": recent[:10],
    }


async def _read_form(request: Request) -> FormData:
    """The posted form, its body kept so that the write check can read it again."""
    await request.body()
    return await request.form()


def _parse_params(text: str) -> dict[str, Any]:
    """:raises ValueError: not a JSON object, with what to write instead."""
    text = text.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"params are not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            'write an object such as {"day": "2026-01-31"}'
        ) from None
    if not isinstance(value, dict):
        raise ValueError(
            f"params must be a JSON object of names to values, got {type(value).__name__}; "
            'write an object such as {"day": "2026-01-31"}'
        )
    return value


async def trigger(request: Request) -> Response:
    context = web_context(request)
    dag_id = request.path_params["dag_id"]
    form = await _read_form(request)
    text = form.get("params")
    text = text if isinstance(text, str) else ""
    try:
        await require_write(request)
        params = _parse_params(text)
        if context.scheduler is not None and _serves(context, dag_id):
            run = await context.scheduler.trigger(dag_id, params)
        else:
            run = await ops.trigger(context.storage, dag_id, params, now_utc(context))
    except WriteRefused as exc:
        if exc.status == 401:
            return _login_page(request, LOGIN_NEEDED, url_for(request, "page:dag", dag_id=dag_id))
        return await _dag_page(
            request, dag_id, error=exc.message, params_text=text, status_code=exc.status
        )
    except DagNotFound as exc:
        return _error_page(request, 404, "No such DAG", str(exc))
    except ValueError as exc:
        return await _dag_page(request, dag_id, error=str(exc), params_text=text, status_code=422)
    return RedirectResponse(url_for(request, "page:run", run_id=run.id), status_code=303)


async def _set_paused(request: Request, paused: bool) -> Response:
    context = web_context(request)
    dag_id = request.path_params["dag_id"]
    form = await _read_form(request)
    try:
        await require_write(request)
        scheduler = context.scheduler if _serves(context, dag_id) else None
        if paused:
            await (scheduler.pause(dag_id) if scheduler else ops.pause(context.storage, dag_id))
        elif scheduler is not None:
            await scheduler.unpause(dag_id, "now")
        else:
            await ops.unpause(context.storage, dag_id, "now", now_utc(context))
    except WriteRefused as exc:
        if exc.status == 401:
            return _login_page(request, LOGIN_NEEDED, url_for(request, "page:dag", dag_id=dag_id))
        return await _dag_page(request, dag_id, error=exc.message, status_code=exc.status)
    except DagNotFound as exc:
        return _error_page(request, 404, "No such DAG", str(exc))
    target = form.get("next")
    if isinstance(target, str) and target:
        return RedirectResponse(_safe_next(request, target), status_code=303)
    return RedirectResponse(url_for(request, "page:dag", dag_id=dag_id), status_code=303)


async def pause(request: Request) -> Response:
    return await _set_paused(request, True)


async def unpause(request: Request) -> Response:
    return await _set_paused(request, False)


# -- runs --------------------------------------------------------------------------------------


async def runs(request: Request) -> Response:
    """Runs, newest first, filtered by DAG and status, a page at a time."""
    context = web_context(request)
    query = request.query_params
    dag_id = query.get("dag") or None
    status_text = query.get("status") or None
    try:
        status = DagRunStatus(status_text) if status_text else None
        before = int(query["before"]) if query.get("before") else None
    except ValueError:
        return _error_page(
            request,
            400,
            "Bad filter",
            f"status must be one of {', '.join(DagRunStatus)}, and before a run id",
        )
    try:
        found = await ops.list_runs(
            context.storage, dag_id=dag_id, status=status, before=before, limit=RUNS_PAGE
        )
    except DagNotFound as exc:
        return _error_page(request, 404, "No such DAG", str(exc))
    filters = {k: v for k, v in (("dag", dag_id), ("status", status_text)) if v}
    here = url_for(request, "page:runs")
    older = None
    if len(found) == RUNS_PAGE:
        older = f"{here}?{urlencode({**filters, 'before': found[-1].id})}"
    return _render(
        request,
        "runs.html",
        {
            "section": "runs",
            "runs": found,
            "dag_ids": [d.dag_id for d in await ops.list_dags(context.storage, now_utc(context))],
            "dag_filter": dag_id,
            "run_statuses": list(DagRunStatus),
            "status_filter": status_text,
            "older": older,
            "newest": f"{here}?{urlencode(filters)}" if before is not None else None,
        },
    )


#: At most this many open tasks are drawn with their attempts and logs in a refresh.
MAX_OPEN_TASKS = 20


async def _run_values(request: Request, detail: RunDetail) -> dict[str, Any]:
    """What the live part of a run's page shows: its tasks, or those with the status
    ``only``. The tasks the reader has open (the ``open`` query values, or ``task``)
    come with their attempts and logs; the others load theirs when opened."""
    context = web_context(request)
    run = detail.run
    every = views.task_views(detail, now_utc(context))
    only = request.query_params.get("only") or None
    tasks = every if only is None else [t for t in every if t.status == only]
    wanted = {*request.query_params.getlist("open"), request.query_params.get("task")}
    opened = [t.task_id for t in tasks if t.task_id in wanted][:MAX_OPEN_TASKS]
    return {
        "section": "runs",
        "run": run,
        "tasks": tasks,
        "all_tasks": len(every),
        "only": only,
        "task_counts": views.count_statuses(t.status for t in every),
        "opened": set(opened),
        "task_logs": {
            task_id: await _logs_by_attempt(context, run.id, task_id) for task_id in opened
        },
        # Buttons for what the operations allow; they check again when asked.
        "can_restart": run.status in (DagRunStatus.failed, DagRunStatus.cancelled),
        "can_cancel": not run.status.finished,
    }


async def _logs_by_attempt(
    context: WebContext, run_id: int, task_id: str
) -> dict[int, list[LogRecord]]:
    by_attempt: dict[int, list[LogRecord]] = {}
    for record in (await ops.logs(context.storage, run_id, task_id=task_id)).records:
        by_attempt.setdefault(record.attempt, []).append(record)
    return by_attempt


def _live_trigger(run_id: int) -> str:
    """Refresh the run when the event stream says it or one of its tasks changed, that
    the page fell too far behind (``resync``), or has just (re)connected (what changed
    meanwhile was not sent)."""
    changes = [f"sse:{kind}[ppacer.forRun(detail, {run_id})]" for kind in ("run", "task")]
    return ", ".join([*changes, "sse:resync", "ppacer:refresh"])


async def run(request: Request) -> Response:
    return await _run_page(request, request.path_params["run_id"])


async def _run_page(
    request: Request, run_id: int, *, error: str | None = None, status_code: int = 200
) -> Response:
    context = web_context(request)
    try:
        detail = await ops.get_run_detail(context.storage, run_id)
    except RunNotFound as exc:
        return _error_page(request, 404, "No such run", str(exc))
    values = await _run_values(request, detail)
    root = str(request.scope.get("ppacer.root_path", ""))
    values.update(
        {
            "events_url": f"{root}/api/v1/events?run_id={run_id}",
            "live_trigger": _live_trigger(run_id),
            "error": error,
        }
    )
    return _render(request, "run.html", values, status_code=status_code)


async def run_body(request: Request) -> Response:
    """The live part of a run's page, refreshed in place as the run changes."""
    context = web_context(request)
    try:
        detail = await ops.get_run_detail(context.storage, request.path_params["run_id"])
    except RunNotFound as exc:
        return _error_page(request, 404, "No such run", str(exc))
    return _render(request, "_run_body.html", await _run_values(request, detail))


async def run_task(request: Request) -> Response:
    """One task of a run with every attempt and its logs, read when the task is opened."""
    context = web_context(request)
    task_id = request.query_params.get("task_id", "")
    try:
        detail = await ops.get_run_detail(context.storage, request.path_params["run_id"])
        found = [t for t in views.task_views(detail, now_utc(context)) if t.task_id == task_id]
        if not found:
            known = ", ".join(t.task_id for t in detail.tasks) or "none"
            raise TaskNotFound(f"run {detail.run.id} has no task {task_id!r} (tasks: {known})")
        logs = await _logs_by_attempt(context, detail.run.id, task_id)
    except (RunNotFound, TaskNotFound) as exc:
        return _error_page(request, 404, "Not found", str(exc))
    return _render(request, "_attempts.html", {"run": detail.run, "t": found[0], "logs": logs})


#: The note a run cancelled from its page keeps.
CANCEL_NOTE = "cancelled from the web page"


async def _run_action(request: Request, action: str) -> Response:
    """Restart or cancel a run, through the embedded scheduler when it serves the DAG
    (it acts at once), else through the operations layer; back to the run's page."""
    context = web_context(request)
    run_id = request.path_params["run_id"]
    try:
        await require_write(request)
        found = await ops.get_run(context.storage, run_id)
        scheduler = context.scheduler if _serves(context, found.dag_id) else None
        if action == "restart":
            if scheduler is not None:
                await scheduler.restart_run(run_id)
            else:
                await ops.restart(context.storage, run_id)
        elif scheduler is not None:
            await scheduler.cancel_run(run_id, CANCEL_NOTE)
        else:
            await ops.cancel(context.storage, run_id, now_utc(context), CANCEL_NOTE)
    except WriteRefused as exc:
        if exc.status == 401:
            return _login_page(request, LOGIN_NEEDED, url_for(request, "page:run", run_id=run_id))
        return await _run_page(request, run_id, error=exc.message, status_code=exc.status)
    except RunNotFound as exc:
        return _error_page(request, 404, "No such run", str(exc))
    except InvalidOperation as exc:
        return await _run_page(request, run_id, error=str(exc), status_code=409)
    return RedirectResponse(url_for(request, "page:run", run_id=run_id), status_code=303)


async def restart(request: Request) -> Response:
    return await _run_action(request, "restart")


async def cancel(request: Request) -> Response:
    return await _run_action(request, "cancel")


routes: list[BaseRoute] = [
    Route("/", overview, name="index"),
    Route("/login", login_form, methods=["GET"], name="page:login"),
    Route("/overview/figures", overview_figures, name="page:overview-figures"),
    Route("/dags", dags, name="page:dags"),
    Route("/dags/{dag_id:str}", dag, name="page:dag"),
    Route("/dags/{dag_id:str}/live", dag_live, name="page:dag-live"),
    Route("/dags/{dag_id:str}/trigger", trigger, methods=["POST"], name="page:trigger"),
    Route("/dags/{dag_id:str}/pause", pause, methods=["POST"], name="page:pause"),
    Route("/dags/{dag_id:str}/unpause", unpause, methods=["POST"], name="page:unpause"),
    Route("/runs", runs, name="page:runs"),
    Route("/runs/{run_id:int}", run, name="page:run"),
    Route("/runs/{run_id:int}/body", run_body, name="page:run-body"),
    Route("/runs/{run_id:int}/task", run_task, name="page:run-task"),
    Route("/runs/{run_id:int}/restart", restart, methods=["POST"], name="page:restart"),
    Route("/runs/{run_id:int}/cancel", cancel, methods=["POST"], name="page:cancel"),
]
