"""What every route of the web app reaches: the scheduler or storage it serves, its
settings, and URLs that stay right wherever the app is mounted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from starlette.routing import Router

    from .._scheduler.scheduler import Scheduler
    from ..abc import Storage
    from ._events import EventHub
    from ._metrics import Metrics

_CONTEXT_KEY = "ppacer.context"
_ROOT_KEY = "ppacer.root_path"


@attrs.define(eq=False, kw_only=True)
class WebContext:
    """One web app's view of ppacer-async.

    :ivar scheduler: the running scheduler in embedded mode, else ``None`` (standalone:
        another process schedules ``storage``).
    :ivar storage: what every read goes to.
    :ivar token: the secret every write needs, or ``None`` (writes are open).
    :ivar read_only: every write is refused.
    """

    scheduler: Scheduler | None
    storage: Storage
    token: str | None = None
    read_only: bool = False
    router: Router | None = None
    events: EventHub | None = None
    metrics: Metrics | None = None

    @property
    def embedded(self) -> bool:
        return self.scheduler is not None


class ContextMiddleware:
    """Puts the app's :class:`WebContext` and the path the app is mounted at into every
    request's scope (inner mounts such as ``/api/v1`` change ``root_path``)."""

    def __init__(self, app: ASGIApp, context: WebContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope[_CONTEXT_KEY] = self.context
            scope[_ROOT_KEY] = scope.get("root_path", "")
        await self.app(scope, receive, send)


def web_context(request: Request) -> WebContext:
    """The :class:`WebContext` of the app serving ``request``."""
    context: WebContext = request.scope[_CONTEXT_KEY]
    return context


def url_for(request: Request, name: str, /, **path_params: Any) -> str:
    """The path of the route ``name`` (``"index"``, ``"api:run"``, ``"static"`` with
    ``path=``), prefixed with the path the app is mounted at: links work under any
    prefix, unlike ``request.url_for`` inside a mounted app."""
    router = web_context(request).router
    assert router is not None
    path = router.url_path_for(name, **{k: str(v) for k, v in path_params.items()})
    return str(request.scope.get(_ROOT_KEY, "")) + str(path)
