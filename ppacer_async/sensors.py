"""Stock sensors: wait for a file, for another DAG's run, or for a time of day.

A sensor is a task that is poked until its condition holds; between pokes it holds no
worker and no pool slot (the wait is a timer of the scheduler, stored, so a restart
resumes it). Each takes the sensor options (``poke_interval``, ``timeout``,
``exponential_backoff``, ``max_wait``) and the usual task options::

    from datetime import time, timedelta
    from ppacer_async.sensors import FileSensor, RunSensor, TimeSensor

    arrived = FileSensor("/srv/in/{logical_date}.csv", poke_interval=timedelta(seconds=30))
    extracted = RunSensor("extract")          # its run of the same logical time
    evening = TimeSensor(at=time(18, 0))      # 18:00 UTC on the logical date
    dag.add([arrived, extracted, evening] >> load)

Each one's id, by which downstream tasks read its result, says what it waits for:
here ``wait_for_logical_date.csv`` (braces dropped, characters an id may not hold
replaced with ``_``), ``wait_for_extract`` and ``wait_until_18.00``; ``id=`` gives
another. A function becomes a sensor with ``@task.sensor(...)``. ``TimeSensor`` takes
"now" from the scheduler's clock, so a ``FakeClock`` drives it in tests.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

import anyio

from ._enums import DagRunStatus
from ._exceptions import DagDefinitionError
from ._scheduler.consumer import CURRENT_CLOCK, CURRENT_STORAGE
from ._task import DEFAULT_POKE_INTERVAL, DEFAULT_SENSOR_TIMEOUT, Poking, Task, TaskContext

__all__ = ["FileSensor", "RunSensor", "Sensor", "TimeSensor"]


class Sensor(Task):
    """A task poked until ``execute`` returns a truthy value (the task's result).

    Subclass it and define ``execute(self, ctx)`` (``async def``, or ``def`` to run in a
    thread), returning a falsy value while the condition does not hold.

    :param poke_interval: the wait between two pokes.
    :param timeout: past this after its first poke, the sensor fails (no retry).
    :param exponential_backoff: double the wait after each poke, up to ``max_wait``.
    :param max_wait: the longest wait between two pokes (default: ``timeout``).
    :param poke_timeout: how long one poke may run (the task's ``timeout``).
    """

    def __init__(
        self,
        id: str | None = None,
        *,
        poke_interval: timedelta = DEFAULT_POKE_INTERVAL,
        timeout: timedelta = DEFAULT_SENSOR_TIMEOUT,
        exponential_backoff: bool = False,
        max_wait: timedelta | None = None,
        **options: Any,
    ) -> None:
        if "poke_timeout" in options:
            options["timeout"] = options.pop("poke_timeout")
        super().__init__(
            id,
            sensor=Poking(
                interval=poke_interval,
                timeout=timeout,
                exponential_backoff=exponential_backoff,
                max_wait=max_wait,
            ),
            **options,
        )


#: Runs of characters a task id may not hold (see ``_task._ID_PATTERN``).
_NOT_IN_IDS = re.compile(r"[^A-Za-z0-9_.\-]+")


def _check_no_id_first(kind: str, first: object, rest: tuple[Any, ...], what: str) -> None:
    """Refuse the calling form of before, the task's id first (``FileSensor("wait",
    "/in/x.csv")``), naming the form of now.

    :raises DagDefinitionError: more than one positional argument was given.
    """
    if rest:
        shown = ", ".join(repr(a) for a in rest)
        raise DagDefinitionError(
            f"{kind}({first!r}, {shown}): {kind} takes {what} first and the id as a "
            f"keyword; write {kind}({rest[0]!r}, id={first!r})"
        )


def _derived_id(kind: str, prefix: str, name: str, argument: str) -> str:
    """``prefix`` + ``name`` made a valid task id: braces dropped, other characters a
    task id may not hold replaced with ``_``.

    :raises DagDefinitionError: nothing of ``name`` is left.
    """
    cleaned = _NOT_IN_IDS.sub("_", name.replace("{", "").replace("}", "")).strip("_")
    if not cleaned:
        raise DagDefinitionError(
            f"{kind}({argument}): cannot make a task id from {name!r}; give one with "
            f"{kind}({argument}, id='wait_for_it')"
        )
    return prefix + cleaned


def _compact(delta: timedelta) -> str:
    """``timedelta(hours=1, minutes=30)`` as ``1h30m``; ``0s`` for zero."""
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    parts = []
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000)):
        count, micros = divmod(micros, size)
        if count:
            parts.append(f"{count}{unit}")
    seconds, micros = divmod(micros, 1_000_000)
    if seconds:
        parts.append(f"{seconds}s")
    millis, micros = divmod(micros, 1000)
    if millis:
        parts.append(f"{millis}ms")
    if micros:
        parts.append(f"{micros}us")
    return "".join(parts) or "0s"


class FileSensor(Sensor):
    """Waits until ``path`` exists; its result is the path.

    :param path: a file or directory; ``{logical_date}`` in it is replaced by the
        run's logical date (``2026-03-01``).
    :param id: the task's id; default ``wait_for_`` and the file's name, made a valid
        id (``/in/{logical_date}.csv``: ``wait_for_logical_date.csv``).
    :param rest: nothing: the calling form of before, the id first
        (``FileSensor("arrived", "/in/x.csv")``), is refused with the form to write.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *rest: Any,
        id: str | None = None,
        **options: Any,
    ) -> None:
        _check_no_id_first("FileSensor", path, rest, "the path")
        if not isinstance(path, str | os.PathLike):
            raise DagDefinitionError(
                f"FileSensor: path must be a str or a path, got {type(path).__name__} {path!r}"
            )
        self.path = os.fspath(path)
        if not self.path:
            raise DagDefinitionError("FileSensor: path must not be empty")
        if id is None:
            name = os.path.basename(os.path.normpath(self.path))
            id = _derived_id("FileSensor", "wait_for_", name, repr(self.path))
        super().__init__(id, **options)

    async def execute(self, ctx: TaskContext) -> str | None:
        path = self.path.replace("{logical_date}", ctx.logical_time.date().isoformat())
        return path if await anyio.Path(path).exists() else None

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "path": self.path}


class RunSensor(Sensor):
    """Waits until DAG ``dag_id`` has a successful run for the same logical time as
    this run (shifted by ``delta``); its result is that run's id.

    :param dag_id: the DAG whose run it waits for (served by any process sharing the
        storage).
    :param delta: look for the run at ``logical_time + delta`` instead.
    :param id: the task's id; default ``wait_for_`` and ``dag_id``.
    :param rest: nothing (an id given first, as before, is refused).
    """

    def __init__(
        self,
        dag_id: str,
        *rest: Any,
        delta: timedelta = timedelta(0),
        id: str | None = None,
        **options: Any,
    ) -> None:
        _check_no_id_first("RunSensor", dag_id, rest, "the DAG's id")
        if not isinstance(dag_id, str) or not dag_id:
            raise DagDefinitionError(f"RunSensor: dag_id must be a DAG's id, got {dag_id!r}")
        if not isinstance(delta, timedelta):
            raise DagDefinitionError(
                f"RunSensor({dag_id!r}): delta must be a timedelta, got {delta!r}"
            )
        self.dag_id = dag_id
        self.delta = delta
        if id is None:
            id = _derived_id("RunSensor", "wait_for_", dag_id, repr(dag_id))
        super().__init__(id, **options)

    async def execute(self, ctx: TaskContext) -> int | None:
        storage = CURRENT_STORAGE.get()
        if storage is None:
            raise RuntimeError("RunSensor runs only under a Scheduler")
        target = ctx.logical_time + self.delta
        before: int | None = None
        while True:  # pages of the successful runs at or after the target, newest first
            runs = await storage.list_runs(
                dag_id=self.dag_id,
                status=DagRunStatus.success,
                since=target,
                before=before,
                limit=100,
            )
            for run in runs:
                if run.logical_time == target:
                    return run.id
            if len(runs) < 100:
                return None
            before = runs[-1].id

    def fingerprint(self) -> dict[str, Any]:
        return {
            **super().fingerprint(),
            "dag_id": self.dag_id,
            "delta": self.delta.total_seconds(),
        }


class TimeSensor(Sensor):
    """Waits until a moment: ``at`` a time of day on the run's logical date (UTC
    unless ``at`` has a time zone), or a ``timedelta`` after the logical time. Its
    result is that moment, in ISO 8601. "Now" is the scheduler's clock.

    :param id: the task's id; default ``wait_until_`` and the time (``18.00``,
        ``18.00.30``) or the delay (``2h_after``, ``90s_before``).
    :param rest: nothing (an id given first, as before, is refused).
    """

    def __init__(
        self, at: time | timedelta, *rest: Any, id: str | None = None, **options: Any
    ) -> None:
        _check_no_id_first("TimeSensor", at, rest, "the moment (at)")
        if not isinstance(at, time | timedelta):
            raise DagDefinitionError(
                "TimeSensor: at must be a datetime.time (a time of day) or a "
                f"timedelta (after the logical time), got {at!r}"
            )
        self.at = at
        if id is None:
            if isinstance(at, timedelta):
                when = f"{_compact(abs(at))}_{'before' if at < timedelta(0) else 'after'}"
            else:
                when = at.strftime("%H.%M.%S" if at.second else "%H.%M")
                if at.microsecond:
                    when += f".{at.microsecond:06d}"
            id = "wait_until_" + when
        super().__init__(id, **options)

    def target(self, logical_time: datetime) -> datetime:
        """The moment this sensor waits for in the run at ``logical_time``."""
        if isinstance(self.at, timedelta):
            return logical_time + self.at
        tz = self.at.tzinfo or UTC
        day = logical_time.astimezone(tz).date()
        return datetime.combine(day, self.at.replace(tzinfo=None), tzinfo=tz)

    async def execute(self, ctx: TaskContext) -> str | None:
        moment = self.target(ctx.logical_time)
        clock = CURRENT_CLOCK.get()
        now = datetime.now(UTC) if clock is None else clock.now()
        return moment.isoformat() if now >= moment else None

    def fingerprint(self) -> dict[str, Any]:
        at = self.at.total_seconds() if isinstance(self.at, timedelta) else self.at.isoformat()
        return {**super().fingerprint(), "at": at}
