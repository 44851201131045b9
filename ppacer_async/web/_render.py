"""Rendering for the pages: the templates, what every page gets, error and login pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from . import _views as views
from ._auth import CSRF_FIELD, csrf_token, is_authenticated
from ._context import url_for, web_context
from ._live import now_utc
from .api import storage_kind

TEMPLATES_DIR = Path(__file__).parent / "templates"

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


def render(request: Request, name: str, values: dict[str, Any], status_code: int = 200) -> Response:
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


def error_page(request: Request, status_code: int, title: str, message: str) -> Response:
    return render(
        request, "error.html", {"title": title, "message": message}, status_code=status_code
    )


def http_error_page(
    request: Request, status_code: int, detail: str, headers: dict[str, str]
) -> Response:
    """The page a browser gets for a path the app does not have (or a wrong method)."""
    message = f"There is no page at {request.url.path}." if status_code == 404 else detail
    response = error_page(request, status_code, detail, message)
    response.headers.update(headers)
    return response


# -- logging in ------------------------------------------------------------------------------


#: What the login form says when a change was refused for want of the token.
LOGIN_NEEDED = "This change needs the token: log in, then make it again."


def login_page(request: Request, message: str | None, next_path: str) -> Response:
    return render(
        request,
        "login.html",
        {"message": message, "next_path": next_path},
        status_code=200 if message is None else 401,
    )
