"""The web app from the command line: ``serve --web [HOST:]PORT`` beside the scheduler,
on its event loop, and ``ppacer-async web`` over a storage another process schedules.

Both bind 127.0.0.1 unless told otherwise; another address needs a token
(``$PPACER_WEB_TOKEN`` or ``--web-token-file``) or ``--web-insecure``.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import attrs

from .common import CliError, Subparsers, add_storage_option, command_storage

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from .._scheduler.scheduler import Scheduler
    from ..abc import Storage

#: The environment variable holding the token writes need.
TOKEN_ENV = "PPACER_WEB_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: Seconds a stopping web server gives open requests to finish.
WEB_SHUTDOWN_BOUND = 3.0

logger = logging.getLogger("ppacer_async.cli")


@attrs.frozen(kw_only=True)
class WebSettings:
    host: str
    port: int
    token: str | None
    read_only: bool


def parse_bind(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPV6]:PORT``; the host defaults to 127.0.0.1.

    :raises argparse.ArgumentTypeError: it is not one of those.
    """
    host, port_text = DEFAULT_HOST, text.strip()
    if port_text.startswith("["):
        close = port_text.find("]:")
        if close < 0:
            raise argparse.ArgumentTypeError(f"write an IPv6 address as [::1]:8080, got {text!r}")
        host, port_text = port_text[1:close], port_text[close + 2 :]
    elif ":" in port_text:
        host, _, port_text = port_text.rpartition(":")
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected [HOST:]PORT such as 8080 or 0.0.0.0:8080, got {text!r}"
        ) from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is from 0 to 65535, got {port}")
    if not host:
        raise argparse.ArgumentTypeError(f"the host before ':' is empty in {text!r}")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_web_options(parser: argparse.ArgumentParser, *, prefix: str) -> None:
    """The token, insecure and read-only options; ``prefix`` is ``--web-`` for
    ``serve`` and ``--`` for ``web``."""
    parser.add_argument(
        f"{prefix}token-file",
        dest="web_token_file",
        metavar="FILE",
        help=f"read the token every write needs from FILE (default: ${TOKEN_ENV}, if set)",
    )
    parser.add_argument(
        f"{prefix}insecure",
        dest="web_insecure",
        action="store_true",
        help="allow binding an address other than loopback without a token",
    )
    parser.add_argument(
        f"{prefix}read-only",
        dest="web_read_only",
        action="store_true",
        help="turn every write off (trigger, pause, restart, ...)",
    )


def web_settings(args: argparse.Namespace, host: str, port: int) -> WebSettings:
    """The web settings the options and environment give.

    :raises CliError: the token file cannot be read or is empty, or a non-loopback
        address would be served without a token and without ``--web-insecure``.
    """
    token: str | None = None
    if args.web_token_file:
        path = Path(args.web_token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(f"cannot read the web token file {path}: {exc.strerror}") from None
        if not token:
            raise CliError(f"the web token file {path} is empty; put the token in it")
    elif os.environ.get(TOKEN_ENV, "").strip():
        token = os.environ[TOKEN_ENV].strip()
    if token is None and not is_loopback(host) and not args.web_insecure:
        raise CliError(
            f"refusing to serve the web app on {host} without a token: anyone who can "
            f"reach it could trigger runs. Set ${TOKEN_ENV} or pass a token file "
            "(--web-token-file / --token-file), or --web-insecure / --insecure if the "
            "network is trusted"
        )
    return WebSettings(host=host, port=port, token=token, read_only=args.web_read_only)


def build_app(
    scheduler: Scheduler | None, storage: Storage | None, settings: WebSettings
) -> Starlette:
    try:
        from ..web import create_app
    except ImportError as exc:
        raise CliError(
            f"the web app needs the web extra ({exc.name} is missing): "
            "pip install 'ppacer-async[web]'"
        ) from None
    if scheduler is not None:
        return create_app(scheduler, token=settings.token, read_only=settings.read_only)
    return create_app(storage=storage, token=settings.token, read_only=settings.read_only)


def bind(settings: WebSettings) -> socket.socket:
    """Listen on the address, so that a taken port is an error before anything starts.

    :raises CliError: the address cannot be bound.
    """
    try:
        infos = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CliError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        raise CliError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
        ) from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


@contextlib.contextmanager
def _no_signal_capture() -> Iterator[None]:
    yield


async def serve_app(
    app: Starlette,
    sock: socket.socket,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` with uvicorn on ``sock`` in the current event loop until cancelled;
    then stop gracefully (event streams end, open requests get a few seconds)."""
    import uvicorn

    class Server(uvicorn.Server):
        def capture_signals(self) -> Any:  # the command's own handler stops everything
            return _no_signal_capture()

    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(WEB_SHUTDOWN_BOUND),
    )
    server = Server(config)
    logger.info("web app at %s", url_of(sock))
    task_status.started()
    try:
        await server.serve(sockets=[sock])
    except SystemExit:
        raise CliError("the web app could not start; the log above says why") from None
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(WEB_SHUTDOWN_BOUND + 2):
            app.state.ppacer.events.close()
            if server.started and not server.should_exit:
                server.should_exit = True
                await server.shutdown(sockets=[sock])
        sock.close()


# -- ppacer-async web --------------------------------------------------------------------------


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "web",
        help="serve the web pages and JSON API over a storage another process schedules",
        description=(
            "Serve the web pages, the JSON API (/api/v1) and Prometheus metrics (/metrics) "
            "for a storage that `ppacer-async serve` schedules in another process. "
            f"Binds {DEFAULT_HOST} unless --bind names another address, which then needs "
            f"a token (${TOKEN_ENV} or --token-file) or --insecure."
        ),
    )
    add_storage_option(parser)
    parser.add_argument(
        "--bind",
        type=parse_bind,
        default=(DEFAULT_HOST, DEFAULT_PORT),
        metavar="[HOST:]PORT",
        help=f"where to listen (default: {DEFAULT_HOST}:{DEFAULT_PORT})",
    )
    add_web_options(parser, prefix="--")
    from .serve import add_log_level_option

    add_log_level_option(parser)
    parser.set_defaults(handler=cmd_web)


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the web app over ``args.storage`` until SIGINT or SIGTERM."""
    from .serve import configure_logging

    configure_logging(args.log_level)
    host, port = args.bind
    settings = web_settings(args, host, port)
    storage = command_storage(args.storage)
    app = build_app(None, storage, settings)
    sock = bind(settings)
    try:
        anyio.run(_serve_until_signal, app, sock)
    finally:
        sock.close()
    logger.info("stopped")
    return 0


async def _serve_until_signal(app: Starlette, sock: socket.socket) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(_cancel_on_signal, tg.cancel_scope)
        await serve_app(app, sock)
        tg.cancel_scope.cancel()


async def _cancel_on_signal(
    scope: anyio.CancelScope, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            logger.info("%s received: stopping", signal.Signals(signum).name)
            scope.cancel()
            return
