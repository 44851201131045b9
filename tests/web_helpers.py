"""Drive the web app in process: an HTTP client, and an event-stream reader (httpx's
ASGI transport buffers a whole response, so a stream that never ends needs its own)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
from starlette.types import ASGIApp, Message


def client(app: ASGIApp, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", **kwargs
    )


class EventReader:
    """The events one client of ``GET /api/v1/events`` receives."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.connected = anyio.Event()
        self._buffer = ""
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = anyio.Event()

    def feed(self, text: str) -> None:
        self._buffer += text
        while "\n\n" in self._buffer:
            block, self._buffer = self._buffer.split("\n\n", 1)
            fields: dict[str, str] = {}
            for line in block.split("\n"):
                if line.startswith(": connected"):
                    self.connected.set()
                name, _, value = line.partition(": ")
                if name in ("event", "data"):
                    fields[name] = value
            if "event" in fields:
                self.events.append((fields["event"], json.loads(fields["data"])))
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, event: str, **match: Any) -> dict[str, Any]:
        """The first ``event`` whose data has every ``match`` item."""
        with anyio.fail_after(10):
            while True:
                for name, data in self.events:
                    if name == event and all(data.get(k) == v for k, v in match.items()):
                        return data
                await self._changed.wait()


@contextlib.asynccontextmanager
async def read_events(app: ASGIApp, query: str = "") -> AsyncIterator[EventReader]:
    """Connect to the event stream; leave when the block ends."""
    reader = EventReader()
    leave = anyio.Event()
    started = anyio.Event()

    async def receive() -> Message:
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            reader.status = message["status"]
            reader.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            started.set()
        elif message["type"] == "http.response.body":
            reader.feed(message.get("body", b"").decode())
            if not message.get("more_body", False):
                reader.connected.set()  # ended (an error response): stop waiting

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/events",
        "raw_path": b"/api/v1/events",
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }

    async def serve() -> None:
        await app(scope, receive, send)

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with anyio.fail_after(10):
            await reader.connected.wait()
        try:
            yield reader
        finally:
            leave.set()
