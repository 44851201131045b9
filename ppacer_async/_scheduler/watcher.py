"""The schedule watcher: sleeps until the earliest due time (a schedule point or a
retry), or until woken; creates due runs following the catch-up rules.

Catch-up (as in ppacer): with no earlier run, the first point is the first at or after
``start`` when ``catchup=True``, else the first after now. Points that passed while
nothing ran are run oldest first with ``catchup=True``, else recorded as skipped. A
run is created only while the DAG has a free slot under ``max_active_runs``, so
catching up is paced, never a flood; and one start creates at most the DAG's
``max_catchup_runs`` runs for passed points, skipping the rest. Every decision is a
schedule event.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import anyio

from .._dag import DAG
from .._enums import RunTrigger, ScheduleEventKind
from .._structures import ScheduleEvent
from .._text import plural
from ..schedules import Interval

if TYPE_CHECKING:
    from ..abc import Clock, Schedule, Storage
    from .machine import StateMachine
    from .state import RunState

logger = logging.getLogger("ppacer_async.scheduler")

#: At most this many skipped points are recorded one by one after a long pause;
#: older ones are counted in a log line.
MAX_RECORDED_SKIPS = 1000

_TICK = timedelta(microseconds=1)
#: Why points are skipped after an unpause "from now".
_UNPAUSED = "unpaused from now"


class Watcher:
    """Owns the timers of one scheduler: schedule points, retry delays and run timeouts."""

    def __init__(
        self,
        *,
        storage: Storage,
        clock: Clock,
        dags: dict[str, DAG],
        versions: dict[str, int],
        machine: StateMachine,
        schedules: bool = True,
    ) -> None:
        #: False: create no scheduled runs (a single run in this process), only
        #: keep the retry timers.
        self.schedules = schedules
        self.storage = storage
        self.clock = clock
        self.dags = dags
        self.versions = versions
        self.machine = machine
        self.next_points: dict[str, datetime | None] = {}
        self.paused: set[str] = set()
        self._resumed: dict[str, datetime | None] = {}
        self._timers: list[tuple[datetime, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._scope: anyio.CancelScope | None = None
        self._woken = False
        self._caught_up: dict[str, int] = {}

    def wake(self) -> None:
        """Re-evaluate due times now (a run finished, a timer was added, ...)."""
        self._woken = True
        if self._scope is not None:
            self._scope.cancel()

    def slot_freed(self, dag_id: str) -> None:
        """A run of ``dag_id`` finished: a due point waiting for its slot may go now.
        A DAG without a point to come (no schedule) needs no wake-up: waking costs a
        cancel scope's cancellation, once per finished run."""
        if self.next_points.get(dag_id) is not None:
            self.wake()

    def set_paused(self, dag_id: str, paused: bool, resume_after: datetime | None) -> None:
        """Follow a pause or unpause (from this process or another one)."""
        if dag_id not in self.dags:
            return
        if paused:
            self.paused.add(dag_id)
            self._resumed.pop(dag_id, None)
        elif dag_id in self.paused:
            self.paused.discard(dag_id)
            self._resumed[dag_id] = resume_after
        else:
            return
        self.wake()

    def add_retry(self, due: datetime, state: RunState, i: int, attempt: int, k: int = -1) -> None:
        self.add_timer(due, functools.partial(self.machine.post_retry, state, i, attempt, k))

    def add_deadline(self, due: datetime, state: RunState) -> None:
        """Cancel a run still going at ``due`` (its ``run_timeout``)."""
        timeout = state.dag.run_timeout
        note = f"run timed out after {timeout} (run_timeout)"
        self.add_timer(due, functools.partial(self.machine.post_cancel, state.run.id, note, state))

    def add_timer(self, due: datetime, callback: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (due, next(self._seq), callback))
        self.wake()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        now = self.clock.now()
        for dag in self.dags.values() if self.schedules else ():
            info = await self.storage.get_dag(dag.dag_id)
            if info is not None and info.paused:
                self.paused.add(dag.dag_id)
            if dag.schedule is not None:
                point = await self._first_point(dag, now)
                if info is not None and info.resume_after is not None:
                    point = await self._skip(
                        dag, point, info.resume_after, keep_latest=False, why=_UNPAUSED
                    )
                self.next_points[dag.dag_id] = point
            self._log_next_due(dag)
        task_status.started()
        while True:
            self._woken = False
            now = self.clock.now()
            while self._resumed:
                dag_id, resume_after = self._resumed.popitem()
                dag = self.dags[dag_id]
                if dag.schedule is None:
                    continue
                if resume_after is None:  # from the last point, by the catch-up rule
                    self.next_points[dag_id] = await self._first_point(dag, now)
                else:  # from now: the points missed while paused are skipped
                    self.next_points[dag_id] = await self._skip(
                        dag,
                        self.next_points[dag_id],
                        resume_after,
                        keep_latest=False,
                        why=_UNPAUSED,
                    )
            timers = self._timers
            while timers and timers[0][0] <= now:
                heapq.heappop(timers)[2]()
            deadline: datetime | None = timers[0][0] if timers else None
            for dag_id, point in list(self.next_points.items()):
                if point is None or dag_id in self.paused:
                    continue
                dag = self.dags[dag_id]
                if point <= now:
                    point = await self._create_due(dag, point, now)
                    self.next_points[dag_id] = point
                if point is not None and self.machine.free_slots(dag) > 0:
                    deadline = point if deadline is None else min(deadline, point)
            if self._woken:
                continue
            with anyio.CancelScope() as scope:
                self._scope = scope
                await self.clock.sleep_until(deadline)
            self._scope = None

    def _log_next_due(self, dag: DAG) -> None:
        point = self.next_points.get(dag.dag_id)
        if dag.schedule is None:
            logger.info("DAG %r has no schedule: it runs when triggered", dag.dag_id)
        elif dag.dag_id in self.paused:
            logger.info("DAG %r is paused (ppacer-async unpause %s)", dag.dag_id, dag.dag_id)
        elif point is None:
            logger.info("DAG %r: its schedule has no point left", dag.dag_id)
        else:
            logger.info("DAG %r next due %s", dag.dag_id, _shown(point))

    async def _first_point(self, dag: DAG, now: datetime) -> datetime | None:
        schedule = dag.schedule
        assert schedule is not None
        last = await self.storage.last_schedule_point(dag.dag_id)
        if last is None:
            start = dag.start
            if dag.catchup and start is not None:
                return schedule.next(start - _TICK)
            after = now if start is None else max(now, start - _TICK)
            return schedule.next(after)
        point = schedule.next(last)
        if dag.catchup:
            return point
        return await self._skip(dag, point, now, keep_latest=False)

    async def _skip(
        self,
        dag: DAG,
        point: datetime | None,
        now: datetime,
        *,
        keep_latest: bool,
        why: str = "catchup=False",
    ) -> datetime | None:
        """Record points up to ``now`` as skipped (all, or all but the latest due one);
        return the first point not skipped."""
        schedule = dag.schedule
        assert schedule is not None
        first_skipped = point
        total, skipped, point = _passed_points(schedule, point, now, keep_latest=keep_latest)
        if total > len(skipped):
            logger.warning(
                "DAG %r: skipped %d schedule points that passed while nothing ran, from %s "
                "to %s (%s); the latest %d are recorded as skipped events",
                dag.dag_id,
                total,
                _shown(first_skipped or skipped[0]),
                _shown(skipped[-1]),
                why,
                len(skipped),
            )
        elif total:
            logger.info(
                "DAG %r: skipped %s that passed while nothing ran, %s (%s)",
                dag.dag_id,
                plural(total, "schedule point"),
                _span(skipped[0], skipped[-1]),
                why,
            )
        if skipped:  # (each due point comes here: no storage call when none passed)
            created = self.clock.now()
            await self.storage.record_schedule_events(
                [
                    ScheduleEvent(
                        dag_id=dag.dag_id,
                        logical_time=moment,
                        kind=ScheduleEventKind.skipped,
                        created_at=created,
                    )
                    for moment in skipped
                ]
            )
        return point

    async def _create_due(self, dag: DAG, point: datetime, now: datetime) -> datetime | None:
        """Create runs for due points while the DAG has free slots; return the next point."""
        schedule = dag.schedule
        assert schedule is not None
        if not dag.catchup:
            skipped = await self._skip(dag, point, now, keep_latest=True)
            if skipped is None or skipped > now:
                return skipped
            point = skipped
        current: datetime | None = point
        caught_up: list[datetime] = []
        cap = dag.max_catchup_runs
        while current is not None and current <= now and self.machine.free_slots(dag) > 0:
            following = schedule.next(current)
            late = following is not None and following <= now
            if late and cap is not None and self._caught_up.get(dag.dag_id, 0) >= cap:
                logger.warning(
                    "DAG %r: catch-up created max_catchup_runs=%d runs since this scheduler "
                    "started; the other points that passed are skipped and the latest one "
                    "runs now. Raise DAG(max_catchup_runs=...) or backfill the skipped points",
                    dag.dag_id,
                    cap,
                )
                current = await self._skip(
                    dag, current, now, keep_latest=True, why=f"max_catchup_runs={cap}"
                )
                continue
            if late:
                self._caught_up[dag.dag_id] = self._caught_up.get(dag.dag_id, 0) + 1
                caught_up.append(current)
            run = await self.storage.create_run(
                dag_id=dag.dag_id,
                logical_time=current,
                trigger=RunTrigger.catchup if late else RunTrigger.schedule,
                params=dict(dag.params),
                dag_version=self.versions[dag.dag_id],
                created_at=self.clock.now(),
                event=ScheduleEventKind.caught_up if late else ScheduleEventKind.regular,
            )
            if run is not None:
                self.machine.post_run(run)
            current = following
        if caught_up:
            waiting = current is not None and current <= now
            logger.info(
                "DAG %r: catching up %s, %s%s",
                dag.dag_id,
                plural(len(caught_up), "missed schedule point"),
                _span(caught_up[0], caught_up[-1]),
                "; more follow as runs finish (max_active_runs)" if waiting else "",
            )
        return current


def _shown(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


def _span(first: datetime, last: datetime) -> str:
    return f"at {_shown(first)}" if first == last else f"from {_shown(first)} to {_shown(last)}"


def _passed_points(
    schedule: Schedule, point: datetime | None, now: datetime, *, keep_latest: bool
) -> tuple[int, deque[datetime], datetime | None]:
    """Count the points from ``point`` up to ``now`` (all, or all but the latest), keep
    the last ``MAX_RECORDED_SKIPS`` of them and return the first point not counted.

    An :class:`Interval` is counted by arithmetic: stepping through years of one-second
    points one by one would hold the event loop for minutes."""
    skipped: deque[datetime] = deque(maxlen=MAX_RECORDED_SKIPS)
    if type(schedule) is Interval and point is not None and point <= now:
        every = schedule.every
        due = (now - point) // every + 1  # points in [point, now]: point is on the grid
        total = due - 1 if keep_latest else due
        first_kept = max(total - MAX_RECORDED_SKIPS, 0)
        skipped.extend(point + every * k for k in range(first_kept, total))
        try:
            return total, skipped, point + every * total
        except OverflowError:
            return total, skipped, None
    total = 0
    while point is not None and point <= now:
        following = schedule.next(point)
        if keep_latest and (following is None or following > now):
            break
        skipped.append(point)
        total += 1
        point = following
    return total, skipped, point
