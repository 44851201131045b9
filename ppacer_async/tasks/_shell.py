"""``ShellTask``: run a command in a subprocess, its output streamed into the task's log."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shlex
import signal
import subprocess
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.abc
import anyio.lowlevel

from .._exceptions import CommandError, DagDefinitionError
from .._task import Task, TaskContext, _check_duration, _code_identity

#: What a command may be: a shell line (``str``) or a program and its arguments.
Command = str | Sequence[str]

#: At most this many characters of one output line are kept in an error message.
_TAIL_LINE_CHARS = 500

#: How often the process group is checked while it is given time to exit.
_GROUP_POLL = 0.02


class ShellTask(Task):
    """Run a command in a subprocess; its output goes to the attempt's log as it comes.

    A ``str`` command runs through the shell (``/bin/sh -c``); a sequence runs the
    program directly with those arguments, with no shell quoting to worry about. Pass
    a callable to build the command from the ``TaskContext`` when the attempt starts
    (``lambda ctx: ["backup", ctx.logical_time.date().isoformat()]``).

    Each line the command prints is stored in the attempt's log as soon as it is read:
    stdout lines at INFO, stderr lines at WARNING. Output is read in chunks and never
    kept whole, so a command may print any amount; only the last ``tail_lines`` lines
    are kept, for the error message. A line longer than ``max_line_chars`` is split.

    The command gets the scheduler's environment (unless ``inherit_env=False``), plus
    ``PPACER_DAG_ID``, ``PPACER_RUN_ID``, ``PPACER_TASK_ID``, ``PPACER_ATTEMPT`` and
    ``PPACER_LOGICAL_TIME`` (ISO 8601, UTC), plus ``env``, which wins.

    An exit code outside ``ok_exit_codes`` fails the attempt with a ``CommandError``
    that gives the code and the last lines. The command runs in a process group of its
    own: when the attempt times out or is cancelled (the scheduler stops), the whole
    group gets SIGTERM, and SIGKILL after ``kill_grace``, so no child it started is
    left behind. The attempt ends when the command has exited and its output is
    closed: a child left running in the background with the same output keeps the
    attempt going, so redirect it (``server > server.log 2>&1 &``).

    :param id: the task's id, unique within its DAG.
    :param command: a shell line, a program with its arguments, or a callable taking
        the ``TaskContext`` and returning either.
    :param env: environment variables for the command, over the inherited ones.
    :param cwd: the directory to run in (default: the scheduler's).
    :param result: what the task returns: ``"last_line"`` (default), the last
        non-blank line printed on stdout, or ``None`` when there was none; or
        ``"exit_code"``.
    :param ok_exit_codes: exit codes that count as success (default: only 0).
    :param inherit_env: start from the scheduler's environment (default) or from an
        empty one.
    :param tail_lines: how many last lines the error message of a failure shows.
    :param max_line_chars: a longer line is stored as several records.
    :param kill_grace: how long the process group has to exit after SIGTERM.
    :param options: any ``Task`` option (``retries``, ``timeout``, ``priority``, ...).
    """

    def __init__(
        self,
        id: str,
        command: Command | Callable[[TaskContext], Command],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        result: Literal["last_line", "exit_code"] = "last_line",
        ok_exit_codes: Sequence[int] = (0,),
        inherit_env: bool = True,
        tail_lines: int = 20,
        max_line_chars: int = 65536,
        kill_grace: timedelta = timedelta(seconds=5),
        **options: Any,
    ) -> None:
        super().__init__(id, **options)
        where = f"ShellTask {self.id!r}"
        if not callable(command):
            command = _check_command(where, command)
        self.command = command
        if env is not None and (
            not isinstance(env, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        ):
            raise DagDefinitionError(
                f"{where}: env must map names to strings, got {env!r}; convert numbers with str()"
            )
        self.env: dict[str, str] = dict(env or {})
        if cwd is not None and not isinstance(cwd, str | os.PathLike):
            raise DagDefinitionError(f"{where}: cwd must be a path, got {cwd!r}")
        self.cwd = None if cwd is None else os.fspath(cwd)
        if result not in ("last_line", "exit_code"):
            raise DagDefinitionError(
                f"{where}: result must be 'last_line' or 'exit_code', got {result!r}"
            )
        self.result = result
        codes = tuple(ok_exit_codes)
        if not codes or not all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
            raise DagDefinitionError(
                f"{where}: ok_exit_codes must be a non-empty sequence of ints, "
                f"got {ok_exit_codes!r}"
            )
        self.ok_exit_codes = codes
        self.inherit_env = bool(inherit_env)
        for name, value in (("tail_lines", tail_lines), ("max_line_chars", max_line_chars)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DagDefinitionError(f"{where}: {name} must be an int >= 1, got {value!r}")
        self.tail_lines = tail_lines
        self.max_line_chars = max_line_chars
        self.kill_grace = _check_duration(f"{where}: kill_grace", kill_grace, allow_zero=True)

    async def execute(self, ctx: TaskContext) -> Any:
        command = self.command(ctx) if callable(self.command) else self.command
        if callable(self.command):
            command = _check_command(f"ShellTask {self.id!r}: the command built", command)
        tail: deque[str] = deque(maxlen=self.tail_lines)
        last_stdout: list[str] = []
        log = ctx.log

        def on_stdout(line: str) -> None:
            log.log(logging.INFO, line)
            tail.append(line[:_TAIL_LINE_CHARS])
            if line.strip():
                last_stdout[:] = [line]

        def on_stderr(line: str) -> None:
            log.log(logging.WARNING, line)
            tail.append(line[:_TAIL_LINE_CHARS])

        process = await anyio.open_process(
            command,
            stdin=subprocess.DEVNULL,
            cwd=self.cwd,
            env=self._environment(ctx),
            start_new_session=True,
        )
        limit = self.max_line_chars
        try:
            try:
                async with anyio.create_task_group() as tg:
                    assert process.stdout is not None and process.stderr is not None
                    tg.start_soon(_pump, process.stdout, on_stdout, ctx.drain_log, limit)
                    tg.start_soon(_pump, process.stderr, on_stderr, ctx.drain_log, limit)
                code = await process.wait()
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await _terminate(process, self.kill_grace.total_seconds())
                raise
        finally:
            with anyio.CancelScope(shield=True):
                await process.aclose()
        if code not in self.ok_exit_codes:
            raise CommandError(
                _failure_message(command, code, tail), exit_code=code, last_lines=tail
            )
        if self.result == "exit_code":
            return code
        return last_stdout[0] if last_stdout else None

    def _environment(self, ctx: TaskContext) -> dict[str, str]:
        env = dict(os.environ) if self.inherit_env else {}
        env.update(
            PPACER_DAG_ID=ctx.dag_id,
            PPACER_RUN_ID=str(ctx.run_id),
            PPACER_TASK_ID=ctx.task_id,
            PPACER_ATTEMPT=str(ctx.attempt),
            PPACER_LOGICAL_TIME=ctx.logical_time.astimezone(UTC).isoformat(),
        )
        env.update(self.env)
        return env

    def fingerprint(self) -> dict[str, Any]:
        found = super().fingerprint()
        found["command"] = (
            {"built_by": _code_identity(self.command)}
            if callable(self.command)
            else self.command
            if isinstance(self.command, str)
            else list(self.command)
        )
        # Values may be secrets: the definition keeps their digest, never the text.
        found["env"] = {name: _digest(value) for name, value in sorted(self.env.items())}
        found["cwd"] = self.cwd
        found["result"] = self.result
        found["ok_exit_codes"] = list(self.ok_exit_codes)
        found["inherit_env"] = self.inherit_env
        return found

    def __repr__(self) -> str:
        return f"<ShellTask {self.id!r} {_describe(self.command)}>"


def _check_command(where: str, command: object) -> Command:
    if isinstance(command, str):
        if not command.strip():
            raise DagDefinitionError(f"{where}: command is empty; give a shell line or a program")
        return command
    if (
        isinstance(command, Sequence)
        and command
        and all(isinstance(part, str | os.PathLike) for part in command)
    ):
        return [os.fspath(part) for part in command]
    raise DagDefinitionError(
        f"{where}: command must be a shell line (str) or a non-empty list of program "
        f"and arguments, got {command!r}"
    )


async def _pump(
    stream: anyio.abc.ByteReceiveStream,
    emit: Callable[[str], None],
    drain: Callable[[], Awaitable[None]],
    limit: int,
) -> None:
    """Call ``emit`` with each line of ``stream`` as it arrives, holding one chunk;
    ``drain`` makes it wait while storage is behind with the lines emitted."""
    pending = bytearray()
    while True:
        try:
            chunk = await stream.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            break
        pending += chunk
        start = 0
        while True:
            end = pending.find(b"\n", start, start + limit + 1)
            if end >= 0:
                emit(_decode(pending, start, end))
                start = end + 1
            elif len(pending) - start >= limit:  # too long: its first part is a line
                emit(_decode(pending, start, start + limit))
                start += limit
            else:
                break
            await drain()
        del pending[:start]
        # Lets the state machine store the lines read so far before the next chunk.
        await anyio.lowlevel.checkpoint()
    if pending:
        emit(_decode(pending, 0, len(pending)))


def _decode(data: bytearray, start: int, end: int) -> str:
    if end > start and data[end - 1] == 0x0D:  # "\r\n"
        end -= 1
    return data[start:end].decode(errors="replace")


async def _terminate(process: anyio.abc.Process, grace: float) -> None:
    """SIGTERM the command's process group, give it ``grace`` seconds, then SIGKILL it."""
    group = process.pid  # start_new_session: the command leads a group of its own
    _signal_group(group, signal.SIGTERM)
    with anyio.move_on_after(grace):
        await process.wait()
        # The children may still be finishing: no event tells when, so look.
        while _group_alive(group):  # noqa: ASYNC110
            await anyio.sleep(_GROUP_POLL)
    _signal_group(group, signal.SIGKILL)
    await process.wait()


def _signal_group(group: int, sig: signal.Signals) -> None:
    # Already gone (a PermissionError is a zombie group on some systems).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def _group_alive(group: int) -> bool:
    """Whether a process of ``group`` is still running (zombies do not count: they
    wait only for their parent to collect them, which may never happen in a container)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 2 and fields[2] == str(group) and fields[0] not in ("Z", "X"):
            return True
    return False


def _failure_message(command: Command, code: int, tail: deque[str]) -> str:
    if code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    text = f"command {_describe(command)} {how}"
    if tail:
        text += f"; its last {len(tail)} lines:\n" + "\n".join(f"  {line}" for line in tail)
    else:
        text += " and printed nothing"
    return text


def _describe(command: Command | Callable[[TaskContext], Command]) -> str:
    if callable(command):
        return f"built by {getattr(command, '__qualname__', command)!s}"
    text = command if isinstance(command, str) else shlex.join(command)
    return repr(text if len(text) <= 200 else text[:200] + "…")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]
