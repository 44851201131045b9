"""Server-rendered pages at ``/``: overview, DAGs, a DAG, runs and a run.

Every read and write goes through :mod:`ppacer_async.operations` (or the embedded
scheduler, whose writes also wake it at once); the shapes the templates draw come from
``_views``. Writes are plain HTML forms answered with a redirect (post, redirect, get),
so they work without scripts; htmx only refreshes parts of a page in place. The run
pages are in ``_run_pages``, rendering in ``_render``.
"""

from __future__ import annotations

import json
import time
import weakref
from collections import deque
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import attrs
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from .. import operations as ops
from .._enums import DagRunStatus
from .._exceptions import DagNotFound
from .._structures import DagDetail, DagSummary
from . import _run_pages as run_pages
from . import _views as views
from ._auth import WriteRefused, _safe_next, require_write
from ._context import WebContext, url_for, web_context
from ._graph import layout_graph
from ._live import live_processes, now_utc
from ._render import LOGIN_NEEDED, error_page, login_page, render
from ._render import http_error_page as http_error_page
from .api import _served as served
from .api import _serves

#: Runs drawn in a DAG's grid, and at most this many of its tasks.
GRID_RUNS = 25
GRID_TASKS = 100
#: The newest runs the overview counts by status.
OVERVIEW_RUNS = 500
#: The newest runs whose tasks the overview counts by status.
OVERVIEW_TASK_RUNS = 20


async def login_form(request: Request) -> Response:
    """The form that sends the token to ``POST /login`` (which sets the login cookie)."""
    return login_page(request, None, _safe_next(request, request.query_params.get("next")))


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
    return render(
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
    return render(request, "_figures.html", {"figures": await _figures(context, len(processes))})


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
    live = await live_processes(context, now)
    summaries = await ops.list_dags(context.storage, now)
    rows = [DagRow(summary=s, served=served(s, live)) for s in summaries]
    return render(request, "dags.html", {"section": "dags", "dags": rows})


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
        return error_page(request, 404, "No such DAG", str(exc))
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
    return render(request, "dag.html", values, status_code=status_code)


async def dag_live(request: Request) -> Response:
    """The part of a DAG's page that changes with its runs: graph, grid, runs."""
    context = web_context(request)
    now = now_utc(context)
    try:
        detail = await ops.get_dag(context.storage, request.path_params["dag_id"], now)
    except DagNotFound as exc:
        return error_page(request, 404, "No such DAG", str(exc))
    values = {"oob": True, **await _dag_live_values(context, detail, now)}
    return render(request, "_dag_live.html", values)


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
    live = await live_processes(context, now)
    return {
        "d": DagRow(summary=detail.summary, served=served(detail.summary, live), detail=detail),
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
            return login_page(request, LOGIN_NEEDED, url_for(request, "page:dag", dag_id=dag_id))
        return await _dag_page(
            request, dag_id, error=exc.message, params_text=text, status_code=exc.status
        )
    except DagNotFound as exc:
        return error_page(request, 404, "No such DAG", str(exc))
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
            return login_page(request, LOGIN_NEEDED, url_for(request, "page:dag", dag_id=dag_id))
        return await _dag_page(request, dag_id, error=exc.message, status_code=exc.status)
    except DagNotFound as exc:
        return error_page(request, 404, "No such DAG", str(exc))
    target = form.get("next")
    if isinstance(target, str) and target:
        return RedirectResponse(_safe_next(request, target), status_code=303)
    return RedirectResponse(url_for(request, "page:dag", dag_id=dag_id), status_code=303)


async def pause(request: Request) -> Response:
    return await _set_paused(request, True)


async def unpause(request: Request) -> Response:
    return await _set_paused(request, False)


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
    Route("/runs", run_pages.runs, name="page:runs"),
    Route("/runs/{run_id:int}", run_pages.run, name="page:run"),
    Route("/runs/{run_id:int}/body", run_pages.run_body, name="page:run-body"),
    Route("/runs/{run_id:int}/task", run_pages.run_task, name="page:run-task"),
    Route("/runs/{run_id:int}/restart", run_pages.restart, methods=["POST"], name="page:restart"),
    Route("/runs/{run_id:int}/cancel", run_pages.cancel, methods=["POST"], name="page:cancel"),
]
