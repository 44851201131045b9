"""The JSON API under ``/api/v1``: small routes over :mod:`ppacer_async.operations`.

Embedded, the writes on a DAG this process serves go through the running
``Scheduler`` (it admits the run at once); everything else goes to the operations
layer over the storage, which a serving scheduler picks up.

Errors are ``{"error": "..."}`` with 400 (a malformed request: not JSON, not an
object), 401 (a write without the right token), 403 (writes are turned off, or a
cross-site request), 404 (no such DAG, run, task or path), 409 (the state does not
allow it), 422 (a well-formed request with an invalid value) or 503 (the storage cannot
be reached).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import attrs
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .. import operations
from .._enums import DagRunStatus
from .._exceptions import (
    DagNotFound,
    InvalidOperation,
    RunNotFound,
    StorageError,
    TaskNotFound,
)
from .._structures import DagDetail, DagSummary, RunDetail
from ..abc import SharedStorage
from ..storage import MemoryStorage
from ._auth import WriteRefused, require_write
from ._context import WebContext, web_context
from ._events import EventStream
from ._json import attempt_json, iso, log_json, pool_json, run_json
from ._live import live_processes, now_utc
from ._openapi import openapi_document

Endpoint = Callable[[Request], Awaitable[Response]]

#: The most runs one page of ``GET /runs`` returns.
MAX_LIMIT = 1000


class ApiError(Exception):
    """Ends a request with ``{"error": message}`` and ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_api_request(request: Request) -> bool:
    """Whether the request's path is under ``/api/`` of this app (routed there or not)."""
    root = str(request.scope.get("ppacer.root_path", ""))
    path = str(request.scope.get("path", ""))
    return path[len(root) :].startswith("/api/") if path.startswith(root) else False


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _endpoint(*, write: bool = False) -> Callable[[Endpoint], Endpoint]:
    """Check a write's rights first; turn the errors of the layers below into JSON
    error responses."""

    def decorate(fn: Endpoint) -> Endpoint:
        @functools.wraps(fn)
        async def wrapper(request: Request) -> Response:
            try:
                if write:
                    await require_write(request)
                return await fn(request)
            except (ApiError, WriteRefused) as exc:
                return error(exc.status, exc.message)
            except (DagNotFound, RunNotFound, TaskNotFound) as exc:
                return error(404, str(exc))
            except InvalidOperation as exc:
                return error(409, str(exc))
            except StorageError as exc:
                return error(503, str(exc))
            except ValueError as exc:
                return error(422, str(exc))

        return wrapper

    return decorate


def package_version() -> str:
    try:
        return version("ppacer-async")
    except PackageNotFoundError:  # pragma: no cover (running from a source tree)
        return "unknown"


def storage_kind(context: WebContext) -> str:
    storage = context.storage
    if isinstance(storage, MemoryStorage):
        return "memory"
    if isinstance(storage, SharedStorage):
        return "postgresql"
    return "sqlite" if hasattr(storage, "path") else type(storage).__name__


# -- reading the request -----------------------------------------------------------------


async def _body(request: Request, *, required: bool = False) -> dict[str, Any]:
    """The JSON object a request sends (``{}`` when there is no body).

    :raises ApiError: 400 when the body is not a JSON object.
    """
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ApiError(400, "send a JSON object as the request body")
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"the request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(body).__name__}")
    return body


def parse_time(value: object, name: str) -> datetime:
    """An ISO 8601 time; one without an offset is taken as UTC.

    :raises ApiError: 422 when it is not one.
    """
    if not isinstance(value, str):
        raise ApiError(422, f"{name} must be an ISO 8601 time such as 2026-01-01T00:00:00Z")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(
            422, f"{name}={value!r} is not an ISO 8601 time such as 2026-01-01T00:00:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _int_query(
    request: Request, name: str, *, minimum: int, maximum: int | None = None
) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ApiError(422, f"{name} must be a whole number, got {text!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
        raise ApiError(422, f"{name} must be {bound}, got {value}")
    return value


#: Ids above this cannot be stored (64-bit integers): no run has one.
MAX_ID = 2**63 - 1


def _run_id(request: Request) -> int:
    value = request.path_params["run_id"]
    assert isinstance(value, int)
    if value > MAX_ID:
        raise ApiError(404, f"no run with id {value}")
    return value


def _text(value: str | None, name: str) -> str | None:
    """:raises ApiError: 422 for a NUL character, which no id or name may hold."""
    if value is not None and "\x00" in value:
        raise ApiError(422, f"{name} must not contain a NUL character")
    return value


def _dag_id(request: Request) -> str:
    dag_id = _text(request.path_params["dag_id"], "the DAG id")
    assert dag_id is not None
    return dag_id


# -- JSON forms of the operations' records -------------------------------------------------


def _served(summary: DagSummary, live: list[dict[str, Any]]) -> bool:
    """Whether a live process serves the DAG, by the storage's record of the processes
    serving it (``DagSummary.served_by``); ``live`` (see ``live_processes``) answers for
    a SQLite file served by a process that keeps no record, known only by its lock."""
    return summary.served or any(process["dag_ids"] is None for process in live)


def dag_summary_json(summary: DagSummary, served: bool) -> dict[str, Any]:
    return {
        "dag_id": summary.dag_id,
        "schedule": summary.schedule,
        "paused": summary.paused,
        "next_due": iso(summary.next_due),
        "last_run": None if summary.last_run is None else run_json(summary.last_run),
        "served": served,
        "task_count": summary.tasks,
        "version": summary.version,
        "description": summary.description,
        "tags": list(summary.tags),
    }


def dag_detail_json(detail: DagDetail, served: bool) -> dict[str, Any]:
    return {
        **dag_summary_json(detail.summary, served),
        "start": iso(detail.start),
        "catchup": detail.catchup,
        "max_active_runs": detail.max_active_runs,
        "params": detail.params,
        "tasks": [
            {"task_id": t.task_id, "upstream": list(t.upstream), "options": t.options}
            for t in detail.tasks
        ],
    }


def run_detail_json(detail: RunDetail) -> dict[str, Any]:
    return {
        **run_json(detail.run),
        "tasks": [
            {
                "task_id": task.task_id,
                "upstream": list(task.upstream),
                "status": None if task.status is None else str(task.status),
                "waiting": task.waiting,
                "branch": task.branch,
                "attempts": [attempt_json(a) for a in task.attempts],
            }
            for task in detail.tasks
        ],
    }


# -- routes ------------------------------------------------------------------------------


@_endpoint()
async def health(request: Request) -> Response:
    context = web_context(request)
    return JSONResponse(
        {
            "version": package_version(),
            "storage": storage_kind(context),
            "mode": "embedded" if context.embedded else "standalone",
            "read_only": context.read_only,
            "processes": await live_processes(context, now_utc(context)),
        }
    )


@_endpoint()
async def list_dags(request: Request) -> Response:
    context = web_context(request)
    now = now_utc(context)
    live = await live_processes(context, now)
    summaries = await operations.list_dags(context.storage, now)
    return JSONResponse({"dags": [dag_summary_json(s, _served(s, live)) for s in summaries]})


@_endpoint()
async def get_dag(request: Request) -> Response:
    context = web_context(request)
    now = now_utc(context)
    detail = await operations.get_dag(context.storage, _dag_id(request), now)
    live = await live_processes(context, now)
    return JSONResponse(dag_detail_json(detail, _served(detail.summary, live)))


def _serves(context: WebContext, dag_id: str) -> bool:
    """Whether the embedded scheduler serves ``dag_id``: its methods then admit the
    change at once."""
    return context.scheduler is not None and dag_id in context.scheduler.dags


@_endpoint(write=True)
async def trigger(request: Request) -> Response:
    context = web_context(request)
    dag_id = _dag_id(request)
    body = await _body(request)
    params = body.get("params")
    if params is not None and not isinstance(params, dict):
        raise ApiError(422, f"params must be a JSON object, got {type(params).__name__}")
    if context.scheduler is not None and _serves(context, dag_id):
        run = await context.scheduler.trigger(dag_id, params)
    else:
        run = await operations.trigger(context.storage, dag_id, params, now_utc(context))
    return JSONResponse(run_json(run), status_code=201)


async def _dag_state(request: Request, context: WebContext, dag_id: str) -> Response:
    now = now_utc(context)
    detail = await operations.get_dag(context.storage, dag_id, now)
    live = await live_processes(context, now)
    return JSONResponse(dag_summary_json(detail.summary, _served(detail.summary, live)))


@_endpoint(write=True)
async def pause(request: Request) -> Response:
    context = web_context(request)
    dag_id = _dag_id(request)
    await _body(request)
    if context.scheduler is not None and _serves(context, dag_id):
        await context.scheduler.pause(dag_id)
    else:
        await operations.pause(context.storage, dag_id)
    return await _dag_state(request, context, dag_id)


@_endpoint(write=True)
async def unpause(request: Request) -> Response:
    context = web_context(request)
    dag_id = _dag_id(request)
    start = (await _body(request)).get("from", "now")
    if start not in ("now", "last"):
        raise ApiError(422, f'"from" must be "now" or "last", got {start!r}')
    if context.scheduler is not None and _serves(context, dag_id):
        await context.scheduler.unpause(dag_id, start)
    else:
        await operations.unpause(context.storage, dag_id, start, now_utc(context))
    return await _dag_state(request, context, dag_id)


@_endpoint(write=True)
async def backfill(request: Request) -> Response:
    context = web_context(request)
    dag_id = _dag_id(request)
    body = await _body(request, required=True)
    start = parse_time(body.get("start"), "start")
    end = parse_time(body.get("end"), "end")
    if context.scheduler is not None and _serves(context, dag_id):
        runs = await context.scheduler.backfill(dag_id, start, end)
    else:
        runs = await operations.backfill(context.storage, dag_id, start, end, now_utc(context))
    return JSONResponse({"runs": [run_json(r) for r in runs]}, status_code=201)


@_endpoint()
async def list_runs(request: Request) -> Response:
    context = web_context(request)
    query = request.query_params
    status_text = query.get("status")
    status = None
    if status_text is not None:
        try:
            status = DagRunStatus(status_text)
        except ValueError:
            known = ", ".join(s.value for s in DagRunStatus)
            raise ApiError(422, f"status must be one of {known}, got {status_text!r}") from None
    since_text = query.get("since")
    since = None if since_text is None else parse_time(since_text, "since")
    limit = _int_query(request, "limit", minimum=1, maximum=MAX_LIMIT) or 50
    before = _int_query(request, "before", minimum=1, maximum=MAX_ID)
    runs = await operations.list_runs(
        context.storage,
        dag_id=_text(query.get("dag_id"), "dag_id"),
        status=status,
        since=since,
        before=before,
        limit=limit,
    )
    next_before = runs[-1].id if len(runs) == limit else None
    return JSONResponse({"runs": [run_json(r) for r in runs], "next_before": next_before})


@_endpoint()
async def get_run(request: Request) -> Response:
    context = web_context(request)
    detail = await operations.get_run_detail(context.storage, _run_id(request))
    return JSONResponse(run_detail_json(detail))


@_endpoint(write=True)
async def restart(request: Request) -> Response:
    context = web_context(request)
    run_id = _run_id(request)
    await _body(request)
    run = await operations.get_run(context.storage, run_id)
    if context.scheduler is not None and _serves(context, run.dag_id):
        run = await context.scheduler.restart_run(run_id)
    else:
        run = await operations.restart(context.storage, run_id)
    return JSONResponse(run_json(run))


@_endpoint(write=True)
async def cancel(request: Request) -> Response:
    context = web_context(request)
    run_id = _run_id(request)
    note = (await _body(request)).get("note")
    if note is not None and not isinstance(note, str):
        raise ApiError(422, f"note must be a string, got {type(note).__name__}")
    run = await operations.get_run(context.storage, run_id)
    if context.scheduler is not None and _serves(context, run.dag_id):
        run = await context.scheduler.cancel_run(run_id, note)
    else:
        run = await operations.cancel(context.storage, run_id, now_utc(context), note)
    return JSONResponse(run_json(run))


@_endpoint()
async def run_logs(request: Request) -> Response:
    context = web_context(request)
    page = await operations.logs(
        context.storage,
        _run_id(request),
        task_id=_text(request.query_params.get("task_id"), "task_id"),
        attempt=_int_query(request, "attempt", minimum=1, maximum=MAX_ID),
        after=_int_query(request, "after", minimum=0, maximum=MAX_ID) or 0,
        limit=_int_query(request, "limit", minimum=1, maximum=10_000),
    )
    return JSONResponse(
        {
            "run": run_json(page.run),
            "records": [log_json(r) for r in page.records],
            "next_after": page.next_after,
        }
    )


@_endpoint()
async def events(request: Request) -> Response:
    context = web_context(request)
    run_id = _int_query(request, "run_id", minimum=1, maximum=MAX_ID)
    if run_id is not None:
        await operations.get_run(context.storage, run_id)
    dag_id = _text(request.query_params.get("dag_id"), "dag_id")
    if dag_id is not None:
        await operations.recorded_dag(context.storage, dag_id)
    assert context.events is not None
    return EventStream(context.events, run_id, dag_id)


@_endpoint()
async def pools(request: Request) -> Response:
    context = web_context(request)
    found = await operations.pools(context.storage)
    return JSONResponse({"pools": [pool_json(pool) for pool in found]})


@_endpoint()
async def statistics(request: Request) -> Response:
    context = web_context(request)
    if context.scheduler is None:
        raise ApiError(
            409,
            "statistics are counted by the scheduler process, and this app serves a "
            "storage only; ask the app embedded in the scheduler (ppacer-async serve --web)",
        )
    stats = context.scheduler.statistics()
    return JSONResponse({**attrs.asdict(stats), "pools": [pool_json(pool) for pool in stats.pools]})


async def openapi(request: Request) -> Response:
    base = str(request.scope.get("ppacer.root_path", "")) + "/api/v1"
    return JSONResponse(openapi_document(package_version(), base))


routes: list[BaseRoute] = [
    Route("/health", health, name="health"),
    Route("/dags", list_dags, name="dags"),
    Route("/dags/{dag_id}", get_dag, name="dag"),
    Route("/dags/{dag_id}/runs", trigger, methods=["POST"], name="trigger"),
    Route("/dags/{dag_id}/pause", pause, methods=["POST"], name="pause"),
    Route("/dags/{dag_id}/unpause", unpause, methods=["POST"], name="unpause"),
    Route("/dags/{dag_id}/backfill", backfill, methods=["POST"], name="backfill"),
    Route("/runs", list_runs, name="runs"),
    Route("/runs/{run_id:int}", get_run, name="run"),
    Route("/runs/{run_id:int}/restart", restart, methods=["POST"], name="restart"),
    Route("/runs/{run_id:int}/cancel", cancel, methods=["POST"], name="cancel"),
    Route("/runs/{run_id:int}/logs", run_logs, name="logs"),
    Route("/events", events, name="events"),
    Route("/pools", pools, name="pools"),
    Route("/statistics", statistics, name="statistics"),
    Route("/openapi.json", openapi, name="openapi"),
]
