"""The run pages: the list of runs, a run (its live part, a task's attempts) and the
restart and cancel buttons."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .. import operations as ops
from .._enums import DagRunStatus
from .._exceptions import DagNotFound, InvalidOperation, RunNotFound, TaskNotFound
from .._structures import LogRecord, RunDetail
from . import _views as views
from ._auth import WriteRefused, require_write
from ._context import WebContext, url_for, web_context
from ._live import now_utc
from ._render import LOGIN_NEEDED, error_page, login_page, render
from .api import _serves

#: Runs on one page of the list.
RUNS_PAGE = 50


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
        return error_page(
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
        return error_page(request, 404, "No such DAG", str(exc))
    filters = {k: v for k, v in (("dag", dag_id), ("status", status_text)) if v}
    here = url_for(request, "page:runs")
    older = None
    if len(found) == RUNS_PAGE:
        older = f"{here}?{urlencode({**filters, 'before': found[-1].id})}"
    return render(
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
        return error_page(request, 404, "No such run", str(exc))
    values = await _run_values(request, detail)
    root = str(request.scope.get("ppacer.root_path", ""))
    values.update(
        {
            "events_url": f"{root}/api/v1/events?run_id={run_id}",
            "live_trigger": _live_trigger(run_id),
            "error": error,
        }
    )
    return render(request, "run.html", values, status_code=status_code)


async def run_body(request: Request) -> Response:
    """The live part of a run's page, refreshed in place as the run changes."""
    context = web_context(request)
    try:
        detail = await ops.get_run_detail(context.storage, request.path_params["run_id"])
    except RunNotFound as exc:
        return error_page(request, 404, "No such run", str(exc))
    return render(request, "_run_body.html", await _run_values(request, detail))


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
        return error_page(request, 404, "Not found", str(exc))
    return render(request, "_attempts.html", {"run": detail.run, "t": found[0], "logs": logs})


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
            return login_page(request, LOGIN_NEEDED, url_for(request, "page:run", run_id=run_id))
        return await _run_page(request, run_id, error=exc.message, status_code=exc.status)
    except RunNotFound as exc:
        return error_page(request, 404, "No such run", str(exc))
    except InvalidOperation as exc:
        return await _run_page(request, run_id, error=str(exc), status_code=409)
    return RedirectResponse(url_for(request, "page:run", run_id=run_id), status_code=303)


async def restart(request: Request) -> Response:
    return await _run_action(request, "restart")


async def cancel(request: Request) -> Response:
    return await _run_action(request, "cancel")
