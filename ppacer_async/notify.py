"""Notifiers: where alerts about failed and retried tasks go.

``LogNotifier`` writes to a logger; ``EmailNotifier`` sends mail over SMTP and
``WebhookNotifier`` posts JSON (generic, Slack or Discord). Both network notifiers run
the blocking standard-library client in a worker thread, retry transient failures a
bounded number of times and then raise ``NotifierError``, which the scheduler logs.
"""

from __future__ import annotations

import email.utils
import json
import logging
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.client import HTTPException
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import attrs

from ._exceptions import PpacerError
from ._structures import Alert, render_alert_text
from .abc import Notifier

logger = logging.getLogger("ppacer_async.notify")

#: The fields a notifier template may use, in ``str.format`` style.
TEMPLATE_FIELDS = (
    "kind",
    "dag_id",
    "run_id",
    "task_id",
    "attempt",
    "logical_time",
    "error",
    "error_line",
    "text",
)

DEFAULT_TEMPLATE = "{text}"
DEFAULT_EMAIL_SUBJECT = "[ppacer-async] {kind}: {dag_id}.{task_id} (run {run_id})"
#: The mail body carries the whole traceback: mail is where people read it in full.
DEFAULT_EMAIL_BODY = "{text}\n\n{error}"

#: Discord refuses a message whose ``content`` is longer than this.
DISCORD_CONTENT_LIMIT = 2000
_SUBJECT_LIMIT = 250
_RESPONSE_SNIPPET = 200
_RESPONSE_LIMIT = 64 * 1024

SMTPSecurity = Literal["starttls", "ssl", "none"]
WebhookFormat = Literal["generic", "slack", "discord"]

_SAMPLE_ALERT = Alert(
    kind="failure",
    dag_id="dag",
    run_id=1,
    task_id="task",
    attempt=1,
    logical_time=datetime(2000, 1, 1, tzinfo=UTC),
    error="Traceback (most recent call last):\nValueError: sample",
    text="sample alert",
)


class NotifierError(PpacerError, RuntimeError):
    """A notifier could not deliver an alert, after its retries when the failure was
    transient. The scheduler logs it; it never fails a task or a run."""


class LogNotifier(Notifier):
    """Writes each alert to the ``ppacer_async.alerts`` logger at ERROR (the default).

    :param logger: the logger to write to.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("ppacer_async.alerts")

    async def send(self, alert: Alert) -> None:
        self.logger.error("%s", alert.text)

    def __repr__(self) -> str:
        return f"LogNotifier({self.logger.name!r})"


# -- shared helpers --------------------------------------------------------------------


def _render(template: str, alert: Alert, escape: Callable[[str], str] | None = None) -> str:
    """Render ``template`` with the fields of ``alert`` (see ``TEMPLATE_FIELDS``).

    :param escape: applied to every string field before formatting (e.g. for Slack).
    """
    fields: dict[str, Any] = attrs.asdict(alert, recurse=False)
    if escape is not None:
        fields = {k: escape(v) if isinstance(v, str) else v for k, v in fields.items()}
    return render_alert_text(template, **fields)


def _check_template(name: str, template: object) -> str:
    if not isinstance(template, str):
        raise TypeError(f"{name} must be a str, got {type(template).__name__} {template!r}")
    try:
        _render(template, _SAMPLE_ALERT)
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        raise ValueError(
            f"{name} {template!r} cannot be rendered ({type(exc).__name__}: {exc}); "
            f"use fields {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)} "
            "and double literal braces as {{ }}"
        ) from None
    return template


def _check_duration(name: str, value: object, *, allow_zero: bool) -> timedelta:
    if not isinstance(value, timedelta):
        raise TypeError(
            f"{name} must be a datetime.timedelta, e.g. timedelta(seconds=10), "
            f"got {type(value).__name__} {value!r}"
        )
    if value < timedelta(0) or (value == timedelta(0) and not allow_zero):
        bound = "zero or positive" if allow_zero else "positive"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _check_retries(retries: object) -> int:
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries must be a whole number >= 0, got {retries!r}")
    return retries


def _check_backoff(backoff: object) -> float:
    if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 1:
        raise ValueError(f"retry_backoff must be a number >= 1, got {backoff!r}")
    return float(backoff)


def _describe(alert: Alert) -> str:
    return f"{alert.kind} alert of {alert.dag_id}.{alert.task_id}, run {alert.run_id}"


@attrs.frozen
class _Failure:
    """Why one delivery attempt failed; ``reason`` is safe to log (no secrets)."""

    reason: str
    transient: bool
    retry_after: float | None = None
    cause: BaseException | None = None


@attrs.frozen(kw_only=True)
class _RetryPolicy:
    retries: int
    delay: float
    backoff: float
    max_delay: float

    async def deliver(self, what: str, attempt: Callable[[], _Failure | None]) -> None:
        """Run ``attempt`` in a worker thread until it succeeds, a failure is permanent,
        or the retries are used up (then raise ``NotifierError``)."""
        attempts = self.retries + 1
        delay = self.delay
        for number in range(1, attempts + 1):
            # A cancelled send (the scheduler's time bound) must not wait for the socket
            # timeout: the thread holds no shared state, so it is left to finish alone.
            failure = await anyio.to_thread.run_sync(attempt, abandon_on_cancel=True)
            if failure is None:
                return
            if not failure.transient:
                raise NotifierError(f"{what}: {failure.reason} (not retried)") from failure.cause
            if number == attempts:
                raise NotifierError(
                    f"{what}: {failure.reason} (gave up after {attempts} attempts)"
                ) from failure.cause
            wait = delay if failure.retry_after is None else max(delay, failure.retry_after)
            wait = min(wait, self.max_delay)
            logger.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.3gs",
                what,
                number,
                attempts,
                failure.reason,
                wait,
            )
            await anyio.sleep(wait)
            delay *= self.backoff


def _retry_policy(notifier: EmailNotifier | WebhookNotifier) -> _RetryPolicy:
    return _RetryPolicy(
        retries=_check_retries(notifier.retries),
        delay=_check_duration("retry_delay", notifier.retry_delay, allow_zero=True).total_seconds(),
        backoff=_check_backoff(notifier.retry_backoff),
        max_delay=_check_duration(
            "max_retry_delay", notifier.max_retry_delay, allow_zero=True
        ).total_seconds(),
    )


# -- email -----------------------------------------------------------------------------


def _check_address(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__} {value!r}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} {value!r} must not contain line breaks")
    _, address = email.utils.parseaddr(value)
    if "@" not in address:
        raise ValueError(
            f"{name} {value!r} is not an email address; "
            "write 'ops@example.com' or 'Ops <ops@example.com>'"
        )
    return value


def _to_recipients(value: str | Iterable[str]) -> tuple[str, ...]:
    recipients = (value,) if isinstance(value, str) else tuple(value)
    if not recipients:
        raise ValueError(
            "recipients is empty; pass at least one address, e.g. recipients=['ops@example.com']"
        )
    return tuple(_check_address("recipient", r) for r in recipients)


def _smtp_reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}"


def _classify_smtp(exc: Exception) -> _Failure:
    """4xx replies and network trouble are transient; 5xx replies, refused TLS
    certificates and missing server features are not."""
    name = type(exc).__name__
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        refused = "; ".join(f"{a}: {_smtp_reply(c, m)}" for a, (c, m) in exc.recipients.items())
        transient = bool(codes) and all(400 <= code < 500 for code in codes)
        return _Failure(f"every recipient was refused ({refused})", transient, cause=exc)
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = _smtp_reply(exc.smtp_code, exc.smtp_error)
        return _Failure(f"{name}: {reply}", 400 <= exc.smtp_code < 500, cause=exc)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return _Failure(f"{name}: {exc}", True, cause=exc)
    if isinstance(exc, smtplib.SMTPException | ssl.SSLCertVerificationError):
        return _Failure(f"{name}: {exc}", False, cause=exc)
    if isinstance(exc, OSError):
        return _Failure(f"{name}: {exc}" if str(exc) else name, True, cause=exc)
    return _Failure(f"{name}: {exc}", False, cause=exc)


@attrs.frozen(eq=False)
class EmailNotifier(Notifier):
    """Mails each alert over SMTP, with ``smtplib`` in a worker thread.

    :param host: the SMTP server.
    :param port: 587 for STARTTLS (the default), 465 for implicit TLS, 25 for none.
    :param sender: the ``From`` address, e.g. ``"ppacer <ppacer@example.com>"``.
    :param recipients: one address or several.
    :param username: log in with this user (``AUTH``) after securing the connection.
    :param password: the password for ``username``; never shown by ``repr`` or logs.
    :param security: ``"starttls"`` (upgrade a plain connection), ``"ssl"`` (TLS from
        the first byte) or ``"none"`` (plain text; only for trusted local relays).
    :param ssl_context: verifies the server; default ``ssl.create_default_context()``.
        Pass one trusting a private CA for a server with a self-signed certificate.
    :param timeout: bound on each network operation of an attempt.
    :param subject_template: the subject, in ``str.format`` style with the alert's fields.
    :param body_template: the plain-text body, likewise.
    :param retries: extra attempts after a transient failure (4xx reply, network error).
    :param retry_delay: wait before the first retry, multiplied by ``retry_backoff`` after
        each further failure and capped at ``max_retry_delay``.
    :raises NotifierError: from :meth:`send`, when the alert could not be delivered.
    """

    host: str = attrs.field()
    port: int = 587
    sender: str = attrs.field(kw_only=True)
    recipients: tuple[str, ...] = attrs.field(kw_only=True, converter=_to_recipients)
    username: str | None = attrs.field(default=None, kw_only=True)
    password: str | None = attrs.field(default=None, kw_only=True, repr=False)
    security: SMTPSecurity = attrs.field(default="starttls", kw_only=True)
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, kw_only=True, repr=False)
    timeout: timedelta = attrs.field(default=timedelta(seconds=10), kw_only=True)
    subject_template: str = attrs.field(default=DEFAULT_EMAIL_SUBJECT, kw_only=True)
    body_template: str = attrs.field(default=DEFAULT_EMAIL_BODY, kw_only=True)
    retries: int = attrs.field(default=3, kw_only=True)
    retry_delay: timedelta = attrs.field(default=timedelta(seconds=1), kw_only=True)
    retry_backoff: float = attrs.field(default=2.0, kw_only=True)
    max_retry_delay: timedelta = attrs.field(default=timedelta(seconds=10), kw_only=True)
    _policy: _RetryPolicy = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError(f"host must name the SMTP server, got {self.host!r}")
        if (
            not isinstance(self.port, int)
            or isinstance(self.port, bool)
            or not 0 < self.port < 65536
        ):
            raise ValueError(
                f"port must be a whole number from 1 to 65535 "
                f"(587 for STARTTLS, 465 for SSL), got {self.port!r}"
            )
        _check_address("sender", self.sender)
        if self.security not in ("starttls", "ssl", "none"):
            raise ValueError(f"security must be 'starttls', 'ssl' or 'none', got {self.security!r}")
        if self.ssl_context is not None and self.security == "none":
            raise ValueError("ssl_context is used only with security='starttls' or 'ssl'")
        if self.username is not None and (not isinstance(self.username, str) or not self.username):
            raise ValueError("username must be a non-empty str or None")
        if (self.username is None) != (self.password is None):
            raise ValueError("pass both username= and password= to log in, or neither")
        if self.username is not None and self.security == "none":
            logger.warning(
                "EmailNotifier for %s:%s logs in without TLS: the password crosses the "
                "network in clear text; use security='starttls' or 'ssl'",
                self.host,
                self.port,
            )
        _check_duration("timeout", self.timeout, allow_zero=False)
        _check_template("subject_template", self.subject_template)
        _check_template("body_template", self.body_template)
        # Frozen: set private state past attrs' guard.
        object.__setattr__(self, "_policy", _retry_policy(self))

    def message(self, alert: Alert) -> EmailMessage:
        """Build the mail for ``alert`` (without sending it)."""
        subject = " ".join(_render(self.subject_template, alert).split())
        if len(subject) > _SUBJECT_LIMIT:
            subject = subject[: _SUBJECT_LIMIT - 1] + "…"
        _, sender_address = email.utils.parseaddr(self.sender)
        msg = EmailMessage()
        msg["Subject"] = subject
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = email.utils.formatdate(usegmt=True)
        # An explicit domain: the default looks up this host's FQDN, a blocking DNS call.
        msg["Message-ID"] = email.utils.make_msgid(domain=sender_address.rpartition("@")[2])
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
        msg.set_content(_render(self.body_template, alert).rstrip() + "\n")
        return msg

    async def send(self, alert: Alert) -> None:
        msg = self.message(alert)
        what = f"email via {self.host}:{self.port} ({_describe(alert)})"
        await self._policy.deliver(what, lambda: self._attempt(msg))

    def _attempt(self, msg: EmailMessage) -> _Failure | None:
        try:
            refused = self._transmit(msg)
        except Exception as exc:
            return _classify_smtp(exc)
        if refused:
            # Retrying would mail the accepted recipients twice.
            logger.warning(
                "email via %s:%s was refused for %s",
                self.host,
                self.port,
                "; ".join(f"{a}: {_smtp_reply(c, m)}" for a, (c, m) in refused.items()),
            )
        return None

    def _transmit(self, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
        timeout = self.timeout.total_seconds()
        context = None
        if self.security != "none":
            context = self.ssl_context or ssl.create_default_context()
        if self.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=timeout, context=context
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=timeout)
        try:
            if self.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if self.username is not None and self.password is not None:
                client.login(self.username, self.password)
            _, from_address = email.utils.parseaddr(self.sender)
            to_addresses = [email.utils.parseaddr(r)[1] for r in self.recipients]
            refused = client.send_message(msg, from_addr=from_address, to_addrs=to_addresses)
        except BaseException:
            client.close()
            raise
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            # The message was accepted: a failed goodbye must not cause a duplicate.
            client.close()
        return refused


# -- webhook ---------------------------------------------------------------------------


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
    _policy: _RetryPolicy = attrs.field(init=False, repr=False)
    _opener: urllib.request.OpenerDirector = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _check_url(self.url)
        if self.format not in ("generic", "slack", "discord"):
            raise ValueError(f"format must be 'generic', 'slack' or 'discord', got {self.format!r}")
        _check_duration("timeout", self.timeout, allow_zero=False)
        if self.template is not None:
            _check_template("template", self.template)
        # Frozen: set private state past attrs' guard.
        object.__setattr__(self, "_policy", _retry_policy(self))
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if self.ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.ssl_context))
        object.__setattr__(self, "_opener", urllib.request.build_opener(*handlers))

    def payload(self, alert: Alert) -> dict[str, Any]:
        """The JSON object posted for ``alert``."""
        template = self.template or DEFAULT_TEMPLATE
        if self.format == "slack":
            return {"text": _render(template, alert, escape=_slack_escape)}
        text = _render(template, alert)
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
        what = f"webhook {_redact_url(self.url)} ({_describe(alert)})"
        await self._policy.deliver(what, lambda: self._attempt(body))

    def _attempt(self, body: bytes) -> _Failure | None:
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
            return _Failure(self._scrub(reason), transient, retry_after)
        except urllib.error.URLError as exc:
            cause = exc.reason
            name = type(cause).__name__
            transient = not isinstance(cause, ssl.SSLCertVerificationError | ValueError)
            return _Failure(self._scrub(f"{name}: {cause}"), transient)
        except (OSError, HTTPException) as exc:
            # Timeouts while reading, resets, truncated responses.
            name = type(exc).__name__
            return _Failure(self._scrub(f"{name}: {exc}" if str(exc) else name), True)
        except Exception as exc:
            # Unexpected: not chained, since a library message may quote the URL.
            return _Failure(self._scrub(f"{type(exc).__name__}: {exc}"), False)
        return None

    def _scrub(self, text: str) -> str:
        """Remove the URL's secret parts from a message meant for logs."""
        parts = urlsplit(self.url)
        for secret in (self.url, parts.query, parts.path):
            if len(secret) > 1:
                text = text.replace(secret, "/…")
        return text
