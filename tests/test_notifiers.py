"""EmailNotifier and WebhookNotifier against real servers on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import queue
import shutil
import socket
import ssl
import subprocess
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from ppacer_async import DAG, Alert, DagRunStatus, PpacerError, Scheduler, TaskContext, task
from ppacer_async.notify import EmailNotifier, NotifierError, WebhookNotifier

pytestmark = pytest.mark.anyio

FAST = timedelta(milliseconds=1)
SECRET = "XyZsecretTOKEN42"
PASSWORD = "hunter2-Secret"

ALERT = Alert(
    kind="failure",
    dag_id="etl",
    run_id=12,
    task_id="extract",
    attempt=3,
    logical_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    error='Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad <row> & co',
    text="ppacer-async failure: task 'extract' of DAG 'etl' (run 12): ValueError: bad row",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- SMTP server -------------------------------------------------------------------------


@attrs.frozen
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    authenticated: bool

    @property
    def body(self) -> str:
        content: str = self.message.get_content()
        return content.replace("\r\n", "\n")  # as received on the wire


class Mailbox:
    """An aiosmtpd handler that keeps what it accepts; it answers ``451`` to the first
    ``fail`` DATA commands (all of them when ``fail`` is negative)."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.attempts = 0
        self.mails: list[Mail] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        if self.fail != 0:
            self.fail -= 1
            return "451 4.3.0 try again later"
        content = envelope.original_content
        assert isinstance(content, bytes)
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.mails.append(
            Mail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                message=message,
                tls=session.ssl is not None,
                authenticated=bool(session.authenticated),
            )
        )
        return "250 2.0.0 OK"


class Accounts:
    """An aiosmtpd authenticator with one account; it records every login tried."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password
        self.tried: list[tuple[str, str]] = []

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        self.tried.append((login, password))
        ok = (login, password) == (self.user, self.password)
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


StartSMTP = Callable[..., int]


@pytest.fixture
def smtp_server() -> Iterator[StartSMTP]:
    """Start an aiosmtpd server on 127.0.0.1 with ``start(handler, **options)``; returns
    its port. Every server is stopped at teardown."""
    started: list[Controller] = []

    def start(handler: Mailbox, **options: Any) -> int:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
        controller.start()
        started.append(controller)
        return port

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("TLS tests need the openssl command to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def email_notifier(port: int, **options: Any) -> EmailNotifier:
    options = {
        "sender": "ppacer <ppacer@example.com>",
        "recipients": ["ops@example.com", "Oncall <oncall@example.org>"],
        "security": "none",
        "retry_delay": FAST,
        "timeout": timedelta(seconds=5),
        **options,
    }
    return EmailNotifier("127.0.0.1", port, **options)


# -- email -------------------------------------------------------------------------------


async def test_email_delivers_subject_body_and_recipients(smtp_server: StartSMTP) -> None:
    box = Mailbox()
    port = smtp_server(box)
    with anyio.fail_after(10):
        await email_notifier(port).send(ALERT)
    [mail] = box.mails
    assert mail.mail_from == "ppacer@example.com"
    assert mail.rcpt_tos == ["ops@example.com", "oncall@example.org"]
    msg = mail.message
    assert msg["Subject"] == "[ppacer-async] failure: etl.extract (run 12)"
    assert msg["From"] == "ppacer <ppacer@example.com>"
    assert msg["To"] == "ops@example.com, Oncall <oncall@example.org>"
    assert msg["Auto-Submitted"] == "auto-generated"
    body = mail.body
    assert body.startswith(ALERT.text + "\n\n")
    assert ALERT.error in body
    assert not mail.tls
    assert not mail.authenticated


async def test_email_renders_custom_templates(smtp_server: StartSMTP) -> None:
    box = Mailbox()
    port = smtp_server(box)
    notifier = email_notifier(
        port,
        recipients="ops@example.com",
        subject_template="{dag_id}/{task_id} #{attempt}: {error_line}",
        body_template="{kind} at {logical_time:%Y-%m-%d %H:%M}\n{{literal}}",
    )
    with anyio.fail_after(10):
        await notifier.send(ALERT)
    [mail] = box.mails
    assert mail.rcpt_tos == ["ops@example.com"]
    assert mail.message["Subject"] == "etl/extract #3: ValueError: bad <row> & co"
    assert mail.body == "failure at 2026-01-02 03:04\n{literal}\n"


async def test_email_logs_in_when_a_username_is_given(smtp_server: StartSMTP) -> None:
    box, accounts = Mailbox(), Accounts("alerts", PASSWORD)
    port = smtp_server(box, authenticator=accounts, auth_require_tls=False)
    notifier = email_notifier(port, username="alerts", password=PASSWORD)
    with anyio.fail_after(10):
        await notifier.send(ALERT)
    assert accounts.tried == [("alerts", PASSWORD)]
    [mail] = box.mails
    assert mail.authenticated


class EchoingAccounts(Accounts):
    """Refuses every login with a reply that quotes the password it was given."""

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        password = data.password.decode()
        self.tried.append((data.login.decode(), password))
        return AuthResult(success=False, handled=False, message=f"535 5.7.8 no: {password}")


async def test_email_reply_quoting_the_password_is_redacted(
    smtp_server: StartSMTP, caplog: pytest.LogCaptureFixture
) -> None:
    accounts = EchoingAccounts("alerts", PASSWORD)
    port = smtp_server(
        Mailbox(), authenticator=accounts, auth_require_tls=False, auth_exclude_mechanism=["LOGIN"]
    )
    notifier = email_notifier(port, username="alerts", password=PASSWORD, retries=0)
    with (
        anyio.fail_after(10),
        pytest.raises(NotifierError, match=r"535 5\.7\.8 no: \*\*\*") as info,
    ):
        await notifier.send(ALERT)
    assert accounts.tried == [("alerts", PASSWORD)]
    assert PASSWORD not in shown(info.value)
    assert PASSWORD not in caplog.text


async def test_email_rejected_login_is_not_retried(
    smtp_server: StartSMTP, caplog: pytest.LogCaptureFixture
) -> None:
    box, accounts = Mailbox(), Accounts("alerts", "another password")
    # Only PLAIN: smtplib would try LOGIN next within the same attempt.
    port = smtp_server(
        box, authenticator=accounts, auth_require_tls=False, auth_exclude_mechanism=["LOGIN"]
    )
    notifier = email_notifier(port, username="alerts", password=PASSWORD, retries=3)
    with anyio.fail_after(10), pytest.raises(NotifierError, match="535") as info:
        await notifier.send(ALERT)
    assert len(accounts.tried) == 1
    assert box.mails == []
    assert "not retried" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in caplog.text


async def test_email_starttls_with_a_self_signed_certificate(
    smtp_server: StartSMTP, certificate: tuple[Path, Path]
) -> None:
    box, accounts = Mailbox(), Accounts("alerts", PASSWORD)
    # auth_require_tls stays on: logging in before STARTTLS would be refused.
    port = smtp_server(
        box,
        tls_context=server_context(certificate),
        require_starttls=True,
        authenticator=accounts,
    )
    notifier = email_notifier(
        port,
        security="starttls",
        ssl_context=ssl.create_default_context(cafile=str(certificate[0])),
        username="alerts",
        password=PASSWORD,
    )
    with anyio.fail_after(10):
        await notifier.send(ALERT)
    [mail] = box.mails
    assert mail.tls
    assert mail.authenticated
    assert mail.message["Subject"] == "[ppacer-async] failure: etl.extract (run 12)"


async def test_email_starttls_refuses_an_untrusted_certificate(
    smtp_server: StartSMTP, certificate: tuple[Path, Path]
) -> None:
    box = Mailbox()
    port = smtp_server(box, tls_context=server_context(certificate), require_starttls=True)
    notifier = email_notifier(port, security="starttls", retries=2)
    with anyio.fail_after(10), pytest.raises(NotifierError, match="not retried") as info:
        await notifier.send(ALERT)
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    assert box.mails == []


async def test_email_over_implicit_tls(
    smtp_server: StartSMTP, certificate: tuple[Path, Path]
) -> None:
    box = Mailbox()
    port = smtp_server(box, ssl_context=server_context(certificate))
    notifier = email_notifier(
        port,
        security="ssl",
        ssl_context=ssl.create_default_context(cafile=str(certificate[0])),
    )
    with anyio.fail_after(10):
        await notifier.send(ALERT)
    [mail] = box.mails
    assert mail.message["Subject"] == "[ppacer-async] failure: etl.extract (run 12)"


async def test_email_temporary_rejection_is_retried_and_delivered_once(
    smtp_server: StartSMTP, caplog: pytest.LogCaptureFixture
) -> None:
    box = Mailbox(fail=1)
    port = smtp_server(box)
    with anyio.fail_after(10):
        await email_notifier(port, retries=3).send(ALERT)
    assert box.attempts == 2
    assert len(box.mails) == 1
    assert "attempt 1 of 4 failed (SMTPDataError: 451 4.3.0 try again later)" in caplog.text


async def test_email_gives_up_after_its_retries(smtp_server: StartSMTP) -> None:
    box = Mailbox(fail=-1)
    port = smtp_server(box)
    notifier = email_notifier(port, retries=2)
    with anyio.fail_after(10), pytest.raises(NotifierError, match="after 3 attempts") as info:
        await notifier.send(ALERT)
    assert box.attempts == 3
    assert box.mails == []
    assert isinstance(info.value, PpacerError)
    assert isinstance(info.value, RuntimeError)


async def test_email_unreachable_server_fails_after_retries() -> None:
    notifier = email_notifier(free_port(), retries=1)
    with anyio.fail_after(10), pytest.raises(NotifierError, match="after 2 attempts"):
        await notifier.send(ALERT)


def test_email_repr_hides_the_password() -> None:
    notifier = email_notifier(25, username="alerts", password=PASSWORD)
    assert PASSWORD not in repr(notifier)
    assert PASSWORD not in str(notifier)
    assert "username='alerts'" in repr(notifier)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"recipients": []}, ValueError, "recipients is empty"),
        ({"recipients": ["not an address"]}, ValueError, "not an email address"),
        ({"sender": "nobody"}, ValueError, "sender 'nobody' is not an email address"),
        ({"port": 0}, ValueError, "port must be a whole number from 1 to 65535"),
        ({"port": 70000}, ValueError, "port must be"),
        ({"port": "587"}, ValueError, "port must be"),
        ({"security": "tls"}, ValueError, "security must be 'starttls', 'ssl' or 'none'"),
        ({"password": PASSWORD}, ValueError, "pass both username= and password="),
        ({"username": "alerts"}, ValueError, "pass both username= and password="),
        ({"timeout": 10}, TypeError, "timeout must be a datetime.timedelta"),
        ({"timeout": timedelta(0)}, ValueError, "timeout must be positive"),
        ({"retries": -1}, ValueError, "retries must be a whole number >= 0"),
        ({"retry_backoff": 0.5}, ValueError, "retry_backoff must be a number >= 1"),
        ({"subject_template": "{task}"}, ValueError, "subject_template '{task}' cannot"),
        ({"ssl_context": ssl.create_default_context()}, ValueError, "ssl_context is used"),
    ],
)
def test_email_invalid_options_are_refused(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    settings: dict[str, Any] = {
        "sender": "ppacer@example.com",
        "recipients": ["ops@example.com"],
        "security": "none",
        **options,
    }
    port = settings.pop("port", 25)
    with pytest.raises(error, match=match) as info:
        EmailNotifier("127.0.0.1", port, **settings)
    assert PASSWORD not in str(info.value)


# -- HTTP server -------------------------------------------------------------------------


@attrs.frozen
class Reply:
    status: int = 200
    headers: dict[str, str] = attrs.field(factory=dict)
    body: bytes = b"ok"
    hang: bool = False


@attrs.frozen
class Request:
    path: str
    headers: dict[str, str]
    payload: Any
    at: float


class Hook:
    """What the test HTTP server received, and the replies it gives (then 200s)."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: queue.Queue[Request] = queue.Queue()
        self.replies: deque[Reply] = deque()
        self.release = threading.Event()

    def reply(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def next_request(self, timeout: float = 5) -> Request:
        return await anyio.to_thread.run_sync(self.requests.get, True, timeout)

    def received(self) -> list[Request]:
        found: list[Request] = []
        while not self.requests.empty():
            found.append(self.requests.get_nowait())
        return found


class HookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hook: Hook) -> None:
        super().__init__(("127.0.0.1", 0), HookHandler)
        self.hook = hook


class HookHandler(BaseHTTPRequestHandler):
    server: HookServer

    def do_POST(self) -> None:
        hook = self.server.hook
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        hook.requests.put(
            Request(
                path=self.path,
                headers=dict(self.headers.items()),
                payload=json.loads(body),
                at=time.monotonic(),
            )
        )
        reply = hook.replies.popleft() if hook.replies else Reply()
        if reply.hang:
            hook.release.wait(30)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            pass  # the client gave up (the timeout test)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A webhook endpoint on 127.0.0.1 whose URL carries a secret token in its path."""
    hook = Hook()
    server = HookServer(hook)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/{SECRET}?x=1"
    try:
        yield hook
    finally:
        hook.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def shown(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def webhook(hook: Hook, **options: Any) -> WebhookNotifier:
    options = {"retry_delay": FAST, "timeout": timedelta(seconds=5), **options}
    return WebhookNotifier(hook.url, **options)


# -- webhook -----------------------------------------------------------------------------


async def test_webhook_generic_payload_has_every_alert_field(hook: Hook) -> None:
    notifier = webhook(hook, headers={"Authorization": f"Bearer {SECRET}"})
    with anyio.fail_after(10):
        await notifier.send(ALERT)
    [request] = hook.received()
    assert request.path == f"/services/T0/B0/{SECRET}?x=1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert request.payload == {
        "kind": "failure",
        "dag_id": "etl",
        "run_id": 12,
        "task_id": "extract",
        "attempt": 3,
        "logical_time": "2026-01-02T03:04:05+00:00",
        "error": ALERT.error,
        "text": ALERT.text,
    }


async def test_webhook_slack_payload_is_text_with_slack_escapes(hook: Hook) -> None:
    notifier = webhook(hook, format="slack", template="*{dag_id}* {error_line}")
    with anyio.fail_after(10):
        await notifier.send(ALERT)
    [request] = hook.received()
    assert request.payload == {"text": "*etl* ValueError: bad &lt;row&gt; &amp; co"}


async def test_webhook_discord_payload_is_cut_to_2000_characters(hook: Hook) -> None:
    notifier = webhook(hook, format="discord")
    with anyio.fail_after(10):
        await notifier.send(ALERT)
        await notifier.send(attrs.evolve(ALERT, text="x" * 5000))
    short, long = hook.received()
    assert short.payload == {"content": ALERT.text, "allowed_mentions": {"parse": []}}
    content = long.payload["content"]
    assert len(content) == 2000
    assert content == "x" * 1999 + "…"


async def test_webhook_server_error_is_retried_then_delivered(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    hook.reply(Reply(500, body=b"oops"), Reply(200))
    with anyio.fail_after(10):
        await webhook(hook, retries=2).send(ALERT)
    first, second = hook.received()
    assert first.payload == second.payload
    assert "attempt 1 of 3 failed (HTTP 500: oops)" in caplog.text
    assert "http://127.0.0.1:" in caplog.text
    assert SECRET not in caplog.text


async def test_webhook_retry_after_is_honoured_up_to_the_cap(hook: Hook) -> None:
    hook.reply(Reply(429, headers={"Retry-After": "1"}), Reply(200))
    notifier = webhook(hook, retries=1, max_retry_delay=timedelta(milliseconds=300))
    with anyio.fail_after(10):
        await notifier.send(ALERT)
    first, second = hook.received()
    # Waited for Retry-After (not the 1 ms retry_delay), but no longer than the cap.
    assert 0.25 <= second.at - first.at < 0.95


async def test_webhook_client_error_is_not_retried(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    hook.reply(Reply(400, body=f"invalid_payload for /services/T0/B0/{SECRET}".encode()))
    notifier = webhook(hook, retries=3)
    with anyio.fail_after(10), pytest.raises(NotifierError, match="HTTP 400") as info:
        await notifier.send(ALERT)
    assert len(hook.received()) == 1
    assert "not retried" in str(info.value)
    assert "invalid_payload" in str(info.value)
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None


async def test_webhook_error_bodies_echoing_configured_secrets_are_redacted_in_logs(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    token = "opaque-bearer-7f3a9c"
    api_key = "k3y-Value-0099"
    hook.reply(
        Reply(503, body=f'{{"error": "overloaded", "auth": "Bearer {token}"}}'.encode()),
        Reply(401, body=f"bad credentials: token={token} key={api_key}".encode()),
    )
    notifier = webhook(
        hook, retries=1, headers={"Authorization": f"Bearer {token}", "X-Api-Key": api_key}
    )
    with anyio.fail_after(10), pytest.raises(NotifierError, match="HTTP 401") as info:
        await notifier.send(ALERT)
    assert len(hook.received()) == 2
    assert "attempt 1 of 2 failed (HTTP 503" in caplog.text
    assert "bad credentials" in str(info.value)  # the reason is still shown
    for text in (caplog.text, str(info.value)):
        assert token not in text
        assert api_key not in text


async def test_webhook_timeout_fails_after_its_retries(hook: Hook) -> None:
    hook.reply(Reply(hang=True), Reply(hang=True))
    notifier = webhook(hook, retries=1, timeout=timedelta(milliseconds=100))
    with anyio.fail_after(10), pytest.raises(NotifierError, match="after 2 attempts") as info:
        await notifier.send(ALERT)
    assert len(hook.received()) == 2
    assert "timed out" in str(info.value)
    assert SECRET not in str(info.value)


async def test_webhook_unreachable_server_fails_after_retries() -> None:
    notifier = WebhookNotifier(
        f"http://127.0.0.1:{free_port()}/hook/{SECRET}", retries=1, retry_delay=FAST
    )
    with anyio.fail_after(10), pytest.raises(NotifierError, match="after 2 attempts") as info:
        await notifier.send(ALERT)
    assert SECRET not in str(info.value)


def test_webhook_repr_shows_only_scheme_and_host() -> None:
    notifier = WebhookNotifier(
        f"https://hooks.slack.com/services/T0/B0/{SECRET}?token={SECRET}",
        format="slack",
        headers={"X-Token": SECRET},
    )
    text = repr(notifier)
    assert "url=https://hooks.slack.com/…" in text
    assert "X-Token" in text
    assert SECRET not in text
    assert "/services" not in text


@pytest.mark.parametrize(
    ("url", "options", "error", "match"),
    [
        ("ftp://example.com/hook", {}, ValueError, "must start with http:// or https://"),
        ("example.com/hook", {}, ValueError, "must start with http:// or https://"),
        ("https:///hook", {}, ValueError, "names no host"),
        (f"https://user:{SECRET}@example.com/", {}, ValueError, "contains credentials"),
        (f"https://example.com/a b/{SECRET}", {}, ValueError, "percent-encode"),
        ("https://example.com:port/", {}, ValueError, "invalid port"),
        ("https://example.com/", {"format": "teams"}, ValueError, "format must be"),
        ("https://example.com/", {"template": "{nope}"}, ValueError, "cannot be rendered"),
        ("https://example.com/", {"retries": 1.5}, ValueError, "retries must be"),
        ("https://example.com/", {"headers": {"X": "a\nb"}}, ValueError, "line break"),
        (42, {}, TypeError, "url must be a str"),
    ],
)
def test_webhook_invalid_options_are_refused(
    url: Any, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        WebhookNotifier(url, **options)
    assert SECRET not in str(info.value)


# -- end to end --------------------------------------------------------------------------


async def test_scheduler_posts_one_failure_alert_to_the_webhook(hook: Hook) -> None:
    @task
    async def extract(ctx: TaskContext) -> None:
        raise ValueError("the source is empty")

    notifier = webhook(hook)
    dag = DAG("etl").add(extract)
    async with Scheduler([dag], storage="memory://", notifier=notifier) as scheduler:
        run = await scheduler.trigger("etl")
        done = await scheduler.wait_for_run(run.id, timeout=10)
        assert done.status is DagRunStatus.failed
        request = await hook.next_request(timeout=5)
    # Leaving the scheduler sends whatever alerts are still queued.
    assert hook.received() == []
    payload = request.payload
    assert payload["kind"] == "failure"
    assert (payload["dag_id"], payload["task_id"], payload["run_id"]) == ("etl", "extract", run.id)
    assert payload["attempt"] == 1
    assert "ValueError: the source is empty" in payload["error"]
    assert payload["text"].endswith("ValueError: the source is empty")


def test_notifier_error_is_a_ppacer_error() -> None:
    assert issubclass(NotifierError, PpacerError)
    assert issubclass(NotifierError, RuntimeError)


@pytest.fixture(autouse=True)
def _capture_notifier_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ppacer_async.notify")
