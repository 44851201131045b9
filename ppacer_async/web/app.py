"""``create_app``: the one ASGI app that serves the API, the pages and the metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..abc import Storage
from ..storage import from_url
from . import api, pages
from ._auth import routes as auth_routes
from ._context import ContextMiddleware, WebContext
from ._events import EventHub
from ._metrics import Metrics, metrics

if TYPE_CHECKING:
    from .._scheduler.scheduler import Scheduler

STATIC_DIR = Path(__file__).parent / "static"


def create_app(
    scheduler: Scheduler | None = None,
    *,
    storage: Storage | str | None = None,
    token: str | None = None,
    read_only: bool = False,
) -> Starlette:
    """Build the web app.

    Embedded: ``create_app(scheduler)`` serves a scheduler that your application runs
    (``async with scheduler:`` or ``await scheduler.serve()`` in its lifespan); the app
    never starts or stops it. Standalone: ``create_app(storage="sqlite:///ppacer.db")``
    serves a storage that another process schedules; the app's lifespan opens and closes
    it (mounted in another app, whose lifespan does not run a mounted app's, enter
    ``app.router.lifespan_context(app)`` in the outer app's lifespan).

    :param token: when given, every write needs it (``Authorization: Bearer <token>``
        or the cookie ``POST /login`` sets).
    :param read_only: refuse every write.
    :raises ValueError: neither or both of ``scheduler`` and ``storage`` are given.
    """
    if (scheduler is None) == (storage is None):
        raise ValueError(
            "create_app needs a scheduler (create_app(scheduler)) or a storage "
            "(create_app(storage='sqlite:///ppacer.db')), not both and not neither"
        )
    if token is not None and not token.strip():
        raise ValueError("token must not be empty; pass None to leave writes open")
    store: Storage
    if scheduler is not None:
        store = scheduler.storage
    elif isinstance(storage, str):
        store = from_url(storage)
    else:
        assert storage is not None
        store = storage
    context = WebContext(scheduler=scheduler, storage=store, token=token, read_only=read_only)
    context.events = EventHub(storage=store, scheduler=scheduler)
    context.metrics = Metrics(context)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Embedded: the scheduler's own serve() opens and closes the storage.
        if scheduler is not None:
            yield
            return
        async with store:
            yield

    routes: list[BaseRoute] = [
        Mount("/api/v1", routes=api.routes, name="api"),
        *auth_routes,
        Route("/metrics", metrics, name="metrics"),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        *pages.routes,
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(ContextMiddleware, context=context)],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    context.router = app.router
    app.state.ppacer = context
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """Errors Starlette raises itself (no such path, method not allowed): JSON under
    ``/api/``, a page for a browser, plain text elsewhere."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if api.is_api_request(request):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=headers)
    if "text/html" in request.headers.get("accept", ""):
        return pages.http_error_page(request, exc.status_code, exc.detail, headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=headers)
