"""Test helpers: notifiers that record, and gates that tasks wait on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio

from ppacer_async import Alert
from ppacer_async.abc import Notifier

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class RecordingNotifier(Notifier):
    """Keeps every alert; ``wait_for(n)`` waits until ``n`` alerts arrived."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self._changed = anyio.Event()

    async def send(self, alert: Alert) -> None:
        self.alerts.append(alert)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, count: int) -> list[Alert]:
        with anyio.fail_after(5):
            while len(self.alerts) < count:
                await self._changed.wait()
        return self.alerts


class FailingNotifier(Notifier):
    async def send(self, alert: Alert) -> None:
        raise RuntimeError("the alert service is down")


class Gate:
    """Tasks ``await gate.enter()``; the test waits for ``n`` inside, then opens it."""

    def __init__(self) -> None:
        self.inside = 0
        self.peak = 0
        self.entered = 0
        self._open = anyio.Event()
        self._arrived = anyio.Event()

    async def enter(self) -> None:
        self.inside += 1
        self.entered += 1
        self.peak = max(self.peak, self.inside)
        self._arrived.set()
        self._arrived = anyio.Event()
        try:
            await self._open.wait()
        finally:
            self.inside -= 1

    async def wait_inside(self, count: int) -> None:
        with anyio.fail_after(5):
            while self.inside < count:
                await self._arrived.wait()

    def open(self) -> None:
        self._open.set()


class Recorder:
    """Collects values from tasks; ``wait_for(n)`` waits until ``n`` were recorded."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._changed = anyio.Event()

    def add(self, value: object) -> None:
        self.values.append(value)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, count: int, timeout: float = 5) -> list[Any]:
        with anyio.fail_after(timeout):
            while len(self.values) < count:
                await self._changed.wait()
        return self.values
