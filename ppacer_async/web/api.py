"""The JSON API under ``/api/v1``: small routes over the operations layer.

Errors are ``{"error": "..."}`` with 400 (malformed request), 401 (a write without the
token), 403 (writes are turned off), 404 (no such DAG, run or path), 409 (the state
does not allow it), 422 (a well-formed request with invalid values) or 503 (the storage
cannot be reached).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .._exceptions import DagNotFound, InvalidOperation, RunNotFound, StorageError
from ._context import web_context

Endpoint = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """Ends a request with ``{"error": message}`` and ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_api_request(request: Request) -> bool:
    return str(request.scope.get("root_path", "")).endswith("/api/v1")


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _endpoint(fn: Endpoint) -> Endpoint:
    """Turn the errors of the layers below into JSON error responses."""

    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiError as exc:
            return error(exc.status, exc.message)
        except (DagNotFound, RunNotFound) as exc:
            return error(404, str(exc))
        except InvalidOperation as exc:
            return error(409, str(exc))
        except StorageError as exc:
            return error(503, str(exc))
        except ValueError as exc:
            return error(422, str(exc))

    return wrapper


def package_version() -> str:
    try:
        return version("ppacer-async")
    except PackageNotFoundError:  # pragma: no cover (running from a source tree)
        return "unknown"


@_endpoint
async def health(request: Request) -> Response:
    context = web_context(request)
    body: dict[str, Any] = {
        "version": package_version(),
        "storage": type(context.storage).__name__,
        "mode": "embedded" if context.embedded else "standalone",
    }
    return JSONResponse(body)


@_endpoint
async def runs(request: Request) -> Response:
    context = web_context(request)
    found = await context.storage.list_runs(limit=50)
    return JSONResponse({"runs": [{"id": r.id, "dag_id": r.dag_id} for r in found]})


routes: list[BaseRoute] = [
    Route("/health", health, name="health"),
    Route("/runs", runs, name="runs"),
]
