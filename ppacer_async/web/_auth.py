"""Who may write: the token, the login cookie, cross-site request checks, read-only.

With a token, a write carries it as ``Authorization: Bearer <token>`` or as the
HttpOnly, SameSite=Strict cookie that ``POST /login`` sets. A write authenticated by
the cookie must also come from a page of this site: its ``Origin`` (or ``Referer``)
names this host, or it carries the CSRF token (:func:`csrf_token`) in the
``X-CSRF-Token`` header or a ``csrf_token`` form field. Without a token, writes are
open, but a browser request from another site is still refused (a page elsewhere must
not drive a scheduler on the user's loopback address).
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ._context import WebContext, url_for, web_context

#: The login cookie: a value derived from the token, never the token itself.
SESSION_COOKIE = "ppacer_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
#: How long the login cookie lasts, in seconds.
SESSION_SECONDS = 7 * 24 * 3600

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class WriteRefused(Exception):
    """A write is not allowed: ``status`` 401 (no or wrong token), 403 (read-only, or a
    cross-site request)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _derive(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def session_value(token: str) -> str:
    return _derive(token, "ppacer-async session")


def csrf_token(request: Request) -> str:
    """The value a page puts in its forms (``csrf_token`` field) or htmx headers
    (``X-CSRF-Token``); empty when the app has no token."""
    token = web_context(request).token
    return "" if token is None else _derive(token, "ppacer-async csrf")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _same_origin(request: Request) -> bool | None:
    """Whether the browser says the request comes from this host; ``None`` when it
    says nothing (no ``Origin`` and no ``Referer``: not a browser form or script)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return None
    if source == "null":
        return False
    host = request.headers.get("host", "")
    return urlsplit(source).netloc.lower() == host.lower()


async def _csrf_matches(request: Request, expected: str) -> bool:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(_FORM_TYPES):
        await request.body()  # kept, so that the endpoint can read the body after
        field = (await request.form()).get(CSRF_FIELD)
        given = field if isinstance(field, str) else None
    return given is not None and hmac.compare_digest(given, expected)


def is_authenticated(request: Request) -> bool:
    """Whether the request carries the token (header or login cookie); always true
    when the app has no token."""
    token = web_context(request).token
    if token is None:
        return True
    bearer = _bearer(request)
    if bearer is not None:
        return hmac.compare_digest(bearer, token)
    cookie = request.cookies.get(SESSION_COOKIE)
    return cookie is not None and hmac.compare_digest(cookie, session_value(token))


async def require_write(request: Request) -> None:
    """Refuse a write that this request may not make.

    :raises WriteRefused: 403 when the app is read-only or the request comes from
        another site; 401 when a token is needed and missing or wrong.
    """
    context: WebContext = web_context(request)
    if context.read_only:
        raise WriteRefused(
            403, "this server is read-only (started with --web-read-only): writes are off"
        )
    if _bearer(request) is not None:
        if not is_authenticated(request):
            raise WriteRefused(401, "wrong token in the Authorization header")
        return  # a browser never adds this header cross-site
    if context.token is not None and not is_authenticated(request):
        raise WriteRefused(
            401,
            "this write needs the token: send 'Authorization: Bearer <token>' or log in at /login",
        )
    same = _same_origin(request)
    if same is True:
        return
    if same is None and (
        context.token is None or await _csrf_matches(request, csrf_token(request))
    ):
        return  # not sent by a browser page, or sent by one of ours with the CSRF token
    raise WriteRefused(403, "cross-site request refused: send it from this site's pages")


def _safe_next(request: Request, target: str | None) -> str:
    """Only a path on this site, never another host (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for(request, "index")


async def login(request: Request) -> Response:
    """Check the token sent by the login form (field ``token``) and set the session
    cookie; then go to ``next`` (a path on this site)."""
    context = web_context(request)
    form = await request.form()
    given, target = form.get("token"), form.get("next")
    next_path = _safe_next(request, target if isinstance(target, str) else None)
    if context.token is None:
        return RedirectResponse(next_path, status_code=303)
    if _same_origin(request) is False:
        return PlainTextResponse("cross-site login refused", status_code=403)
    if not isinstance(given, str) or not hmac.compare_digest(given, context.token):
        return PlainTextResponse("wrong token", status_code=401)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_value(context.token),
        max_age=SESSION_SECONDS,
        path=str(request.scope.get("ppacer.root_path", "")) or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse(url_for(request, "index"), status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path=str(request.scope.get("ppacer.root_path", "")) or "/",
        httponly=True,
        samesite="strict",
    )
    return response


routes: list[BaseRoute] = [
    Route("/login", login, methods=["POST"], name="login"),
    Route("/logout", logout, methods=["POST"], name="logout"),
]
