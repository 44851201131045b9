"""Storage URLs: what the user configured as secret never shows, whatever the URL's
shape, and a URL that parsers would read differently is refused in one line."""

from __future__ import annotations

import subprocess
import sys
import traceback
from typing import Any

import pytest

from ppacer_async._exceptions import StorageError
from ppacer_async.storage import from_url, redact_url
from ppacer_async.storage.postgres import PostgresStorage

from .conftest import POSTGRES_DSN
from .helpers import assert_usage_error, command_env

pytestmark = pytest.mark.anyio

# Passwords as people type them into a URL, without percent-encoding.
UNENCODED = [
    pytest.param("Pa@ss:w0rdXY", id="at-and-colon"),
    pytest.param("tw0@@signs9", id="two-ats"),
    pytest.param("sec/ret77xy", id="slash"),
    pytest.param("ab#cdef9xyz", id="hash"),
    pytest.param("ab?cdef9xyz", id="question-mark"),
]


def fragments(password: str) -> list[str]:
    """Every piece of the password a parser might cut it into, long enough to matter."""
    pieces = [password]
    for sep in "@:/#?":
        pieces += [p for p in password.split(sep) if len(p) >= 3]
    return pieces


def shown(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


@pytest.mark.parametrize("password", UNENCODED)
def test_redact_url_hides_every_part_of_an_unencoded_password(password: str) -> None:
    url = f"postgresql://ppacer:{password}@db.example:5432/prod?sslmode=require"
    redacted = redact_url(url)
    for piece in fragments(password):
        assert piece not in redacted, redacted
    assert redacted.endswith("db.example:5432/prod?sslmode=require")


@pytest.mark.parametrize("password", UNENCODED)
def test_a_postgres_url_with_an_unencoded_password_is_refused_without_showing_it(
    password: str,
) -> None:
    url = f"postgresql://ppacer:{password}@db.example:5432/prod"
    for build in (from_url, lambda dsn: PostgresStorage(dsn=dsn)):
        with pytest.raises(StorageError) as caught:
            build(url)
        message = str(caught.value)
        assert "\n" not in message
        assert "percent-encode the password" in message
        assert "db.example" in message
        for piece in fragments(password):
            assert piece not in shown(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ppacer:Pa%40ss%3Aw0rd@db.example:5432/prod",  # encoded: fine
        "postgresql://ppacer:pa:ss@db.example/prod",  # ':' is unambiguous after the user
        "postgresql://ppacer@[::1]:5432/prod",
        "postgresql://ppacer@h1:5432,h2:5433/prod",  # several hosts
        "postgresql://ppacer@db.example/prod?application_name=me@home",
        "postgresql:///prod?host=/var/run/postgresql",
    ],
)
def test_well_formed_postgres_urls_are_accepted(url: str) -> None:
    assert isinstance(from_url(url), PostgresStorage)


def test_redact_url_keeps_what_is_not_secret() -> None:
    assert redact_url("postgresql://u:pw@[::1]:5432/db") == "postgresql://u:***@[::1]:5432/db"
    assert redact_url("postgresql://u:pw@h1,h2:5433/db") == "postgresql://u:***@h1,h2:5433/db"
    assert redact_url("postgresql://u@h/db?application_name=me@x") == (
        "postgresql://u@h/db?application_name=me@x"
    )
    assert redact_url("postgresql://u@h/db?password=pw&x=1") == (
        "postgresql://u@h/db?password=***&x=1"
    )


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ppacer:hunter2-secret@[::1/prod",
        "postgresql://ppacer:hunter2-secret@[::1x]:5432/prod",
        "postgresql://ppacer:hunter2-secret@db.example:99999/prod",
    ],
    ids=["unclosed-bracket", "not-an-address", "port-out-of-range"],
)
def test_a_malformed_host_or_port_is_refused_in_one_line(url: str) -> None:
    with pytest.raises(StorageError) as caught:
        from_url(url)
    message = str(caught.value)
    assert "\n" not in message
    assert "PostgreSQL URL postgresql://***@" in message
    assert "hunter2" not in shown(caught.value)


@pytest.mark.slow
def test_the_command_line_reports_a_malformed_storage_url_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ppacer_async", "runs"],
        env=command_env(PPACER_STORAGE="postgresql://ppacer:Pa@ss:w0rdXY@[::1/prod"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_usage_error(done, "is not valid")
    assert "w0rdXY" not in done.stderr


@pytest.mark.postgres
async def test_an_unknown_url_parameter_is_refused_in_one_line_naming_it(admin: Any) -> None:
    storage = from_url(f"{POSTGRES_DSN}?no_such_option=1")
    with pytest.raises(StorageError) as caught:
        await storage.open()
    message = str(caught.value)
    assert "\n" not in message
    assert '"no_such_option"' in message
    assert "remove it or fix its name" in message
    await storage.close()
