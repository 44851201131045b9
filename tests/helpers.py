"""Test helpers: notifiers that record, gates that tasks wait on, watched subprocesses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

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


class Subprocess:
    """A child process whose output lines (stdout and stderr) a thread collects, so a
    test can wait for a line with a deadline instead of sleeping."""

    def __init__(
        self, argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._next = 0  # lines before this one were passed by wait_for_next
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first line (printed so far or later) matching ``pattern``; fail after
        ``timeout`` seconds or when the process ends without printing one."""
        return self._search(pattern, timeout, 0)

    def wait_for_next(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Like :meth:`wait_for`, but only among the lines after the one the previous
        call returned, so successive calls follow the output in order."""
        return self._search(pattern, timeout, self._next)

    def _search(self, pattern: str, timeout: float, start: int) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = start
        with self._changed:
            while True:
                for n in range(seen, len(self.lines)):
                    found = regex.search(self.lines[n])
                    if found is not None:
                        self._next = max(self._next, n + 1)
                        return found
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    why = "the process ended" if self._ended else f"{timeout} s passed"
                    pytest.fail(
                        f"{why} without a line matching {pattern!r}:\n" + "\n".join(self.lines)
                    )
                self._changed.wait(remaining)

    def matches(self, pattern: str) -> list[re.Match[str]]:
        regex = re.compile(pattern)
        with self._changed:
            return [m for line in self.lines if (m := regex.search(line)) is not None]

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the process to exit; return its exit code."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the command did not exit within {timeout} s:\n{self.output()}")
        self._reader.join(timeout)
        return code

    def stop(self, signum: int = signal.SIGINT, timeout: float = 10.0) -> int:
        """Send ``signum``; return the exit code, failing if it takes over ``timeout`` s."""
        self.proc.send_signal(signum)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, like a crash, then reap."""
        self.proc.send_signal(signal.SIGKILL)
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def command_env(**extra: str) -> dict[str, str]:
    """The environment for a ``ppacer-async`` child process: this one's, without a
    storage URL of its own, unbuffered, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "PPACER_STORAGE"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def assert_usage_error(done: subprocess.CompletedProcess[str], expected: str) -> None:
    """The command exited 2 with nothing on stdout and one error line containing
    ``expected``."""
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ppacer-async: error: ")
    assert expected in lines[0]
