"""Storage back ends: memory, SQLite (the default) and PostgreSQL (the ``postgres`` extra)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from .._definition import decode_definition as decode_definition
from .._definition import encode_definition as encode_definition
from .._exceptions import StorageError
from .memory import MemoryStorage as MemoryStorage

if TYPE_CHECKING:
    from ..abc import Storage

__all__ = [
    "MemoryStorage",
    "check_postgres_url",
    "decode_definition",
    "encode_definition",
    "from_url",
    "redact_url",
]

DEFAULT_URL = "sqlite:///ppacer.db"


def from_url(url: str) -> Storage:
    """Build a storage from a URL.

    ``memory://``, ``sqlite:///relative.db``, ``sqlite:////absolute.db``,
    ``postgresql://user:password@host:port/database``. A PostgreSQL URL may set the
    storage's options as query parameters (times in seconds), e.g.
    ``postgresql://ppacer@db/prod?schema=ppacer&max_pool_size=20&lease=60``; the
    others (``sslmode``, ...) go to the driver.

    :raises StorageError: the URL scheme is unknown or its driver is not installed.
    """
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:  # a malformed host, said in one line below
        scheme = url.partition(":")[0].lower()
    if scheme == "memory":
        return MemoryStorage()
    if scheme == "sqlite":
        from .sqlite import SQLiteStorage

        path = url[len("sqlite://") :]
        if path.startswith("/"):
            path = path[1:]
        if not path:
            raise StorageError(
                f"SQLite URL {url!r} names no file; write sqlite:///ppacer.db "
                "(relative) or sqlite:////var/lib/ppacer.db (absolute)"
            )
        return SQLiteStorage(path=unquote(path))
    if scheme in ("postgresql", "postgres"):
        try:
            from .postgres import PostgresStorage
        except ImportError as exc:
            raise StorageError(
                "PostgreSQL storage needs asyncpg: pip install 'ppacer-async[postgres]'"
            ) from exc
        check_postgres_url(url)
        dsn, options = _postgres_options(url)
        try:
            return PostgresStorage(dsn=dsn, **options)
        except ValueError as exc:
            raise StorageError(f"{exc} (in the PostgreSQL URL {redact_url(url)!r})") from None
    raise StorageError(
        f"unknown storage URL scheme {scheme!r} in {redact_url(url)!r}; "
        "use memory://, sqlite:///path.db or postgresql://user@host/db"
    )


_POSTGRES_INTS = ("min_pool_size", "max_pool_size")
_POSTGRES_SECONDS = ("statement_timeout", "connect_timeout", "lease", "poll_interval")
_POSTGRES_TEXTS = ("schema", "application_name")


def _postgres_options(url: str) -> tuple[str, dict[str, Any]]:
    """Split the storage's own query parameters off a PostgreSQL URL.

    :raises StorageError: a value is not a number where one is needed.
    """
    parts = urlsplit(url)
    options: dict[str, Any] = {}
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        try:
            if key in _POSTGRES_INTS:
                options[key] = int(value)
            elif key in _POSTGRES_SECONDS:
                if key == "statement_timeout" and value.lower() == "none":
                    options[key] = None
                else:
                    options[key] = timedelta(seconds=float(value))
            elif key in _POSTGRES_TEXTS:
                options[key] = value
            else:
                rest.append((key, value))
        except (ValueError, OverflowError):
            kind = "a whole number" if key in _POSTGRES_INTS else "a number of seconds"
            raise StorageError(
                f"{key}={value!r} in the PostgreSQL URL {redact_url(url)!r} must be {kind}"
            ) from None
    return parts._replace(query=urlencode(rest)).geturl(), options


_PASSWORD_PARAM = re.compile(r"(?i)(password=)[^&\s]*")

_ENCODE = (
    "percent-encode the password (@ as %40, : as %3A, / as %2F, ? as %3F, # as %23), e.g. "
    'python3 -c "import getpass, urllib.parse; print(urllib.parse.quote(getpass.getpass(), '
    "safe=''))\""
)


def check_postgres_url(url: str) -> None:
    """Refuse a PostgreSQL URL that parsers would read differently (a password with an
    unencoded ``@``, ``/``, ``?`` or ``#``, a port that is not a number, a malformed
    IPv6 host): the driver would take part of the password for a host, a port or a
    database, and quote it in its errors.

    :raises StorageError: in one line that shows no part of the password.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise StorageError(
            f"the host in the PostgreSQL URL {redact_url(url)} is not valid ({exc}); write "
            "an IPv6 address in brackets, e.g. postgresql://user@[::1]:5432/db"
        ) from None
    netloc = parts.netloc
    rest = url.partition("://")[2]
    after_host = rest[len(netloc) :].split("?", 1)[0] + "#" + parts.fragment
    if netloc.count("@") > 1 or (netloc.count("@") == 0 and "@" in after_host):
        raise StorageError(
            f"the user part of the PostgreSQL URL {redact_url(url)} holds an unencoded "
            f"'@', '/', '?' or '#'; {_ENCODE}"
        )
    hostspec = netloc.rpartition("@")[2]
    if "," not in hostspec:  # several hosts are the driver's to read
        try:
            parts.port  # noqa: B018 (validates the port)
        except ValueError:
            raise StorageError(
                f"the port in the PostgreSQL URL {redact_url(url)} is not a number from 0 "
                "to 65535; if it is part of a password holding '/', '?' or '#', " + _ENCODE
            ) from None


def redact_url(url: str) -> str:
    """Hide the password of a URL, for messages and reprs: in the user part, and in a
    ``password=`` query parameter.

    A password holding an unencoded ``@``, ``/``, ``?`` or ``#`` moves the end of the
    user part; then everything up to the last ``@`` is hidden, whatever a parser would
    make of it.
    """
    url = _PASSWORD_PARAM.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    try:
        parts = urlsplit(url)
        if "," not in parts.netloc:
            parts.port  # noqa: B018 (a password part taken for a port fails here)
    except ValueError:
        parts = None
    if parts is not None and parts.netloc.count("@") == 1:
        after_host = rest[len(parts.netloc) :]
        if "@" not in after_host.split("?", 1)[0]:
            userinfo, _, hostspec = parts.netloc.partition("@")
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}:***@{hostspec}" if colon else parts.netloc
            return parts._replace(netloc=netloc).geturl()
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
