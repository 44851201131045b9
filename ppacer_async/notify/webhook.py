"""``WebhookNotifier``: alerts posted as JSON (generic, Slack or Discord), with
``urllib`` in a worker thread."""

from __future__ import annotations

import email.utils
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from http.client import HTTPException
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from .._redact import MIN_PART, header_secrets, scrub
from .._structures import Alert
from ..abc import Notifier
from ._shared import (
    DEFAULT_TEMPLATE,
    Failure,
    RetryPolicy,
    check_duration,
    check_template,
    describe,
    render,
)

#: Discord refuses a message whose ``content`` is longer than this.
DISCORD_CONTENT_LIMIT = 2000
_RESPONSE_SNIPPET = 200
_RESPONSE_LIMIT = 64 * 1024

WebhookFormat = Literal["generic", "slack", "discord"]


def _redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: a webhook's path and query often hold its secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}{'' if port is None else f':{port}'}/…"


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    # Messages below show only the redacted form: the rest may be a secret token.
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError(
            f"url {_redact_url(url)} contains spaces or control characters; percent-encode them"
        )
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(
            f"url must start with http:// or https://, got {parts.scheme or 'no'} scheme "
            f"in {_redact_url(url)}"
        )
    if not parts.hostname:
        raise ValueError(f"url {_redact_url(url)} names no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"url {_redact_url(url)} contains credentials; "
            "pass them as headers={'Authorization': ...} instead"
        )
    try:
        parts.port  # noqa: B018 (validates the port)
    except ValueError:
        raise ValueError(f"url {_redact_url(url)} has an invalid port") from None
    return url


def _to_headers(value: Mapping[str, str] | None) -> dict[str, str]:
    headers = dict(value or {})
    for name, val in headers.items():
        if not isinstance(name, str) or not isinstance(val, str):
            raise TypeError(f"headers must map str to str; header {name!r} is not")
        # Values are never echoed: they are often credentials.
        if not name or any(c in name for c in " :\r\n") or "\r" in val or "\n" in val:
            raise ValueError(f"header {name!r} has an invalid name or a line break in its value")
    return headers


def _header_names(headers: dict[str, str]) -> str:
    return repr(sorted(headers))


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions; these three are its only escapes.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected webhook is a misconfiguration; urllib would also turn the POST
    into a GET and drop the body."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@attrs.frozen(eq=False)
class WebhookNotifier(Notifier):
    """POSTs each alert as JSON, with ``urllib`` in a worker thread.

    Payloads by ``format``: ``"generic"`` has every alert field (times in ISO 8601)
    with ``text`` rendered from ``template``; ``"slack"`` is ``{"text": ...}``;
    ``"discord"`` is ``{"content": ...}`` cut to Discord's 2000 characters, with
    mentions disabled.

    :param url: the ``http``/``https`` endpoint; ``repr`` and logs show only its scheme
        and host, since Slack and Discord put the secret in the path.
    :param timeout: bound on each network operation of an attempt.
    :param retries: extra attempts after a connection error, a timeout, a 5xx or a 429
        reply; other 4xx replies are not retried.
    :param retry_delay: wait before the first retry, multiplied by ``retry_backoff``
        after each further failure; a longer ``Retry-After`` is honoured. Every wait is
        capped at ``max_retry_delay``.
    :param headers: extra request headers, e.g. ``{"Authorization": "Bearer ..."}``;
        ``repr`` shows only their names.
    :param template: the message text, in ``str.format`` style with the alert's fields;
        default the alert's own text.
    :param ssl_context: verifies an ``https`` server; default the system's trust store.
    :raises NotifierError: from :meth:`send`, when the alert could not be delivered.
    """

    url: str = attrs.field(repr=_redact_url)
    format: WebhookFormat = attrs.field(default="generic", kw_only=True)
    timeout: timedelta = attrs.field(default=timedelta(seconds=10), kw_only=True)
    retries: int = attrs.field(default=3, kw_only=True)
    retry_delay: timedelta = attrs.field(default=timedelta(seconds=1), kw_only=True)
    retry_backoff: float = attrs.field(default=2.0, kw_only=True)
    max_retry_delay: timedelta = attrs.field(default=timedelta(seconds=10), kw_only=True)
    headers: dict[str, str] = attrs.field(
        default=None, kw_only=True, converter=_to_headers, repr=_header_names
    )
    template: str | None = attrs.field(default=None, kw_only=True)
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, kw_only=True, repr=False)
    _policy: RetryPolicy = attrs.field(init=False, repr=False)
    _opener: urllib.request.OpenerDirector = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _check_url(self.url)
        if self.format not in ("generic", "slack", "discord"):
            raise ValueError(f"format must be 'generic', 'slack' or 'discord', got {self.format!r}")
        check_duration("timeout", self.timeout, allow_zero=False)
        if self.template is not None:
            check_template("template", self.template)
        # Frozen: set private state past attrs' guard.
        policy = RetryPolicy.checked(
            retries=self.retries,
            retry_delay=self.retry_delay,
            retry_backoff=self.retry_backoff,
            max_retry_delay=self.max_retry_delay,
        )
        object.__setattr__(self, "_policy", policy)
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if self.ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.ssl_context))
        object.__setattr__(self, "_opener", urllib.request.build_opener(*handlers))

    def payload(self, alert: Alert) -> dict[str, Any]:
        """The JSON object posted for ``alert``."""
        template = self.template or DEFAULT_TEMPLATE
        if self.format == "slack":
            return {"text": render(template, alert, escape=_slack_escape)}
        text = render(template, alert)
        if self.format == "discord":
            return {
                "content": _truncate(text, DISCORD_CONTENT_LIMIT),
                "allowed_mentions": {"parse": []},
            }
        return {
            "kind": alert.kind,
            "dag_id": alert.dag_id,
            "run_id": alert.run_id,
            "task_id": alert.task_id,
            "attempt": alert.attempt,
            "logical_time": alert.logical_time.isoformat(),
            "error": alert.error,
            "text": text,
        }

    async def send(self, alert: Alert) -> None:
        body = json.dumps(self.payload(alert), ensure_ascii=False).encode("utf-8")
        what = f"webhook {_redact_url(self.url)} ({describe(alert)})"
        await self._policy.deliver(what, lambda: self._attempt(body))

    def _attempt(self, body: bytes) -> Failure | None:
        request = urllib.request.Request(self.url, data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("User-Agent", "ppacer-async")
        for name, value in self.headers.items():
            request.add_header(name, value)
        try:
            with self._opener.open(request, timeout=self.timeout.total_seconds()) as response:
                response.read(_RESPONSE_LIMIT)  # the reply is not used; do not hoard it
        except urllib.error.HTTPError as exc:
            try:
                snippet = exc.read(_RESPONSE_SNIPPET).decode("utf-8", "replace")
            except (OSError, HTTPException):
                snippet = ""
            finally:
                exc.close()
            retry_after = _retry_after(exc.headers.get("Retry-After"))
            reason = f"HTTP {exc.code}"
            if snippet.strip():
                reason += f": {' '.join(snippet.split())}"
            transient = exc.code == 429 or exc.code >= 500
            return Failure(self._scrub(reason), transient, retry_after)
        except urllib.error.URLError as exc:
            cause = exc.reason
            name = type(cause).__name__
            transient = not isinstance(cause, ssl.SSLCertVerificationError | ValueError)
            return Failure(self._scrub(f"{name}: {cause}"), transient)
        except (OSError, HTTPException) as exc:
            # Timeouts while reading, resets, truncated responses.
            name = type(exc).__name__
            return Failure(self._scrub(f"{name}: {exc}" if str(exc) else name), True)
        except Exception as exc:
            # Unexpected: not chained, since a library message may quote the URL.
            return Failure(self._scrub(f"{type(exc).__name__}: {exc}"), False)
        return None

    def _scrub(self, text: str) -> str:
        """Remove what the user configured as secret from a message meant for logs: the
        URL's path and query (whole, then each segment and value) and every header value
        (whole, then each credential word), wherever a server echoed them."""
        parts = urlsplit(self.url)
        for secret in (self.url, parts.query, parts.path):
            if len(secret) > 1:
                text = text.replace(secret, "/…")
        secrets: set[str] = set()
        for segment in parts.path.split("/"):
            secrets.add(unquote(segment))
            secrets.add(segment)
        for _, value in parse_qsl(parts.query, keep_blank_values=True):
            secrets.add(value)
        for value in self.headers.values():
            secrets |= header_secrets(value)
        return scrub(text, (s for s in secrets if len(s) >= MIN_PART))
