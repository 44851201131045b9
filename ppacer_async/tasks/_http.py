"""``HttpTask``: one HTTP request with httpx; its JSON or text body is the result."""

from __future__ import annotations

import hashlib
import json as jsonlib
import ssl
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._exceptions import DagDefinitionError, HttpStatusError
from .._task import Task, TaskContext, _code_identity
from ..storage import redact_url

if TYPE_CHECKING:
    import httpx

#: How much of an error response's body its error message shows.
_BODY_START_CHARS = 500

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpTask(Task):
    """Send one HTTP request; a response with status 400 or more fails the attempt.

    Needs ``httpx``: ``pip install 'ppacer-async[http]'``. The result is the body
    parsed as JSON when the response says it is JSON (``application/json`` or a
    ``+json`` type), else the body as text, or ``None`` when the body is empty. A
    status of 400 or more raises ``HttpStatusError`` with the status and the start of
    the body, so the attempt fails (and is retried if the task has ``retries``).
    Redirects are followed.

    ``url``, ``params``, ``json`` and ``content`` may each be a callable taking the
    ``TaskContext``, to build them when the attempt starts
    (``url=lambda ctx: f"https://api.example.com/day/{ctx.logical_time:%Y-%m-%d}"``).
    The request has no timeout of its own: the task's ``timeout`` bounds it.

    :param id: the task's id, unique within its DAG.
    :param method: ``GET``, ``POST``, ``PUT``, ``PATCH``, ``DELETE``, ``HEAD`` or
        ``OPTIONS``.
    :param url: an ``http://`` or ``https://`` URL.
    :param params: query parameters.
    :param headers: request headers; they are not stored in the DAG definition
        (only a digest), so they may carry tokens.
    :param json: a body to send as JSON.
    :param content: a body to send as is (``str`` or ``bytes``).
    :param verify: verify the server's certificate (``True``), not (``False``), or
        with an ``ssl.SSLContext``.
    :param transport: an httpx transport, e.g. ``httpx.AsyncHTTPTransport(retries=3)``
        or ``httpx.MockTransport`` in tests.
    :param options: any ``Task`` option (``retries``, ``timeout``, ``priority``, ...).
    """

    def __init__(
        self,
        id: str,
        method: str,
        url: str | Callable[[TaskContext], str],
        *,
        params: Mapping[str, Any] | Callable[[TaskContext], Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: str | bytes | Callable[[TaskContext], str | bytes] | None = None,
        verify: bool | ssl.SSLContext = True,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Any,
    ) -> None:
        super().__init__(id, **options)
        where = f"HttpTask {self.id!r}"
        try:
            import httpx  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                f"{where} needs httpx: install it with pip install 'ppacer-async[http]'"
            ) from exc
        if not isinstance(method, str) or method.upper() not in _METHODS:
            raise DagDefinitionError(
                f"{where}: method must be one of {', '.join(sorted(_METHODS))}, got {method!r}"
            )
        self.method = method.upper()
        if not callable(url):
            _check_url(where, url)
        self.url = url
        self.params = params
        if headers is not None and (
            not isinstance(headers, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            raise DagDefinitionError(f"{where}: headers must map names to strings")
        self.headers: dict[str, str] = dict(headers or {})
        if json is not None and content is not None:
            raise DagDefinitionError(f"{where}: give json or content, not both")
        self.json = json
        self.content = content
        self.verify = verify
        self.transport = transport

    async def execute(self, ctx: TaskContext) -> Any:
        import httpx

        url = self.url(ctx) if callable(self.url) else self.url
        if callable(self.url):
            _check_url(f"HttpTask {self.id!r}: the URL built", url)
        params = self.params(ctx) if callable(self.params) else self.params
        body = self.json(ctx) if callable(self.json) else self.json
        content = self.content(ctx) if callable(self.content) else self.content
        shown = redact_url(url)
        begun = time.monotonic()
        async with httpx.AsyncClient(
            timeout=None, follow_redirects=True, verify=self.verify, transport=self.transport
        ) as client:
            response = await client.request(
                self.method,
                url,
                params=None if params is None else dict(params),
                headers=self.headers,
                json=body,
                content=content,
            )
        took = (time.monotonic() - begun) * 1000
        ctx.log.info(
            "%s %s: %d %s in %.0f ms, %d bytes",
            self.method,
            shown,
            response.status_code,
            response.reason_phrase,
            took,
            len(response.content),
        )
        if response.status_code >= 400:
            start = response.text[:_BODY_START_CHARS]
            more = "…" if len(response.text) > _BODY_START_CHARS else ""
            raise HttpStatusError(
                f"{self.method} {shown} returned {response.status_code} "
                f"{response.reason_phrase}: {start}{more}"
                if start
                else f"{self.method} {shown} returned {response.status_code} "
                f"{response.reason_phrase} with an empty body",
                status_code=response.status_code,
                body_start=start,
            )
        if not response.content:
            return None
        if _is_json(response.headers.get("content-type", "")):
            return response.json()
        return response.text

    def fingerprint(self) -> dict[str, Any]:
        found = super().fingerprint()
        found["method"] = self.method
        found["url"] = (
            {"built_by": _code_identity(self.url)} if callable(self.url) else redact_url(self.url)
        )
        # Headers and bodies may hold secrets: the definition keeps a digest of them.
        found["request"] = _digest(
            {
                "url": None if callable(self.url) else self.url,
                "params": _identity(self.params),
                "headers": self.headers,
                "json": _identity(self.json),
                "content": _identity(self.content),
            }
        )
        return found

    def __repr__(self) -> str:
        url = "(built)" if callable(self.url) else redact_url(self.url)
        return f"<HttpTask {self.id!r} {self.method} {url}>"


def _check_url(where: str, url: object) -> None:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise DagDefinitionError(f"{where}: url must start with http:// or https://, got {url!r}")


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _identity(value: Any) -> Any:
    if callable(value):
        return {"built_by": _code_identity(value)}
    if isinstance(value, bytes):
        return value.hex()
    return value


def _digest(value: Any) -> str:
    text = jsonlib.dumps(value, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
