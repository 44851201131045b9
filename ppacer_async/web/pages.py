"""Server-rendered pages at ``/``."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from ._context import url_for, web_context

TEMPLATES_DIR = Path(__file__).parent / "templates"

templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.globals["url_for"] = url_for


async def index(request: Request) -> Response:
    context = web_context(request)
    return templates.TemplateResponse(
        request, "index.html", {"embedded": context.embedded, "read_only": context.read_only}
    )


routes: list[BaseRoute] = [Route("/", index, name="index")]
