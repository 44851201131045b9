"""``EmailNotifier``: alerts mailed over SMTP, with ``smtplib`` in a worker thread."""

from __future__ import annotations

import email.utils
import smtplib
import ssl
import traceback
from collections.abc import Iterable
from datetime import timedelta
from email.message import EmailMessage
from typing import Literal

import attrs

from .._redact import scrub
from .._structures import Alert
from ..abc import Notifier
from ._shared import Failure, RetryPolicy, check_duration, check_template, describe, logger, render

DEFAULT_EMAIL_SUBJECT = "[ppacer-async] {kind}: {dag_id}.{task_id} (run {run_id})"
#: The mail body carries the whole traceback: mail is where people read it in full.
DEFAULT_EMAIL_BODY = "{text}\n\n{error}"

_SUBJECT_LIMIT = 250

SMTPSecurity = Literal["starttls", "ssl", "none"]


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


def _classify_smtp(exc: Exception) -> Failure:
    """4xx replies and network trouble are transient; 5xx replies, refused TLS
    certificates and missing server features are not."""
    name = type(exc).__name__
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        refused = "; ".join(f"{a}: {_smtp_reply(c, m)}" for a, (c, m) in exc.recipients.items())
        transient = bool(codes) and all(400 <= code < 500 for code in codes)
        return Failure(f"every recipient was refused ({refused})", transient, cause=exc)
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = _smtp_reply(exc.smtp_code, exc.smtp_error)
        return Failure(f"{name}: {reply}", 400 <= exc.smtp_code < 500, cause=exc)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return Failure(f"{name}: {exc}", True, cause=exc)
    if isinstance(exc, smtplib.SMTPException | ssl.SSLCertVerificationError):
        return Failure(f"{name}: {exc}", False, cause=exc)
    if isinstance(exc, OSError):
        return Failure(f"{name}: {exc}" if str(exc) else name, True, cause=exc)
    return Failure(f"{name}: {exc}", False, cause=exc)


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
    _policy: RetryPolicy = attrs.field(init=False, repr=False)

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
        check_duration("timeout", self.timeout, allow_zero=False)
        check_template("subject_template", self.subject_template)
        check_template("body_template", self.body_template)
        # Frozen: set private state past attrs' guard.
        policy = RetryPolicy.checked(
            retries=self.retries,
            retry_delay=self.retry_delay,
            retry_backoff=self.retry_backoff,
            max_retry_delay=self.max_retry_delay,
        )
        object.__setattr__(self, "_policy", policy)

    def message(self, alert: Alert) -> EmailMessage:
        """Build the mail for ``alert`` (without sending it)."""
        subject = " ".join(render(self.subject_template, alert).split())
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
        msg.set_content(render(self.body_template, alert).rstrip() + "\n")
        return msg

    async def send(self, alert: Alert) -> None:
        msg = self.message(alert)
        what = f"email via {self.host}:{self.port} ({describe(alert)})"
        await self._policy.deliver(what, lambda: self._attempt(msg))

    def _attempt(self, msg: EmailMessage) -> Failure | None:
        try:
            refused = self._transmit(msg)
        except Exception as exc:
            return self._scrub(_classify_smtp(exc))
        if refused:
            # Retrying would mail the accepted recipients twice.
            logger.warning(
                "email via %s:%s was refused for %s",
                self.host,
                self.port,
                "; ".join(f"{a}: {_smtp_reply(c, m)}" for a, (c, m) in refused.items()),
            )
        return None

    def _scrub(self, failure: Failure) -> Failure:
        """Remove the configured password from a failure meant for logs, wherever the
        server quoted it; then the exception is not chained either, as it quotes it."""
        password = self.password
        if not password:
            return failure
        cause = failure.cause
        quoted = cause is not None and password in "".join(traceback.format_exception(cause))
        if password not in failure.reason and not quoted:
            return failure
        return attrs.evolve(failure, reason=scrub(failure.reason, [password]), cause=None)

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
