"""Pools: how many attempts may hold a shared resource at once.

A named pool (``Scheduler(pools={"warehouse": 4})``, ``@task(pool="warehouse")``) and a
DAG's ``max_active_tasks`` are both counters of slots. The process that schedules owns
them: an attempt takes its slots when the state machine makes it ready (before it is
queued, or, on a shared storage, before its ``scheduled`` row is written for any
process to claim) and gives them back when the machine applies its end, whichever it
is: an outcome (success, failure, skip, timeout, cancelled), an interruption (the
process running it stopped, or its lease expired and it was reaped), or its run's
cancel. An attempt with no room waits here, off the queue and out of storage, until a
slot is given back; the highest priority waiting goes first, FIFO within a priority.

One process schedules at a time (on PostgreSQL, the leadership's advisory lock), so
one counter in memory holds the limit across every process; a new leader counts the
attempts storage shows scheduled or running as holding their slots.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import anyio

from .._dag import DAG
from .._enums import AttemptReason
from .._exceptions import UnknownPool
from .._structures import PoolUsage, instance_id

if TYPE_CHECKING:
    from .state import Effects, RunState

#: ("pool", name) or ("dag", dag_id)
Key = tuple[str, str]
Gate = tuple[tuple[Key, int], ...]
#: (negated priority, arrival, run, task index, map index or -1, attempt, reason)
_Entry = tuple[int, int, "RunState", int, int, int, AttemptReason]


def check_pools(dags: Mapping[str, DAG], pools: Mapping[str, int]) -> None:
    """Refuse tasks that name a pool not given, or want more slots than it has.

    :raises UnknownPool: the first task naming an unknown pool.
    :raises ValueError: a task wants more slots than its pool has.
    """
    known = ", ".join(sorted(pools)) or "none"
    for dag in dags.values():
        for task in dag.graph.tasks:
            if task.pool is None:
                continue
            slots = pools.get(task.pool)
            if slots is None:
                raise UnknownPool(
                    f"task {task.id!r} of DAG {dag.dag_id!r} uses pool {task.pool!r}, which "
                    f"the scheduler was not given (known pools: {known}); add it, e.g. "
                    f"Scheduler(dags, pools={{{task.pool!r}: 4}})"
                )
            if task.pool_slots > slots:
                raise ValueError(
                    f"task {task.id!r} of DAG {dag.dag_id!r} wants {task.pool_slots} slots "
                    f"of pool {task.pool!r}, which has {slots}; lower pool_slots or give "
                    "the pool more slots"
                )


class Pools:
    """The slot counters of the pools and of the DAGs with ``max_active_tasks``."""

    def __init__(self, dags: Mapping[str, DAG], pools: Mapping[str, int]) -> None:
        self.limits: dict[Key, int] = {("pool", name): n for name, n in pools.items()}
        self.used: dict[Key, int] = dict.fromkeys(self.limits, 0)
        self._gates: dict[str, tuple[Gate, ...]] = {}
        for dag in dags.values():
            own: tuple[tuple[Key, int], ...] = ()
            if dag.max_active_tasks is not None:
                key = ("dag", dag.dag_id)
                self.limits[key] = dag.max_active_tasks
                self.used[key] = 0
                own = ((key, 1),)
            self._gates[dag.dag_id] = tuple(
                (*own, (("pool", t.pool), t.pool_slots)) if t.pool is not None else own
                for t in dag.graph.tasks
            )
        self._waiting: dict[Key, list[_Entry]] = {}
        self._held: dict[int, dict[tuple[str, int], Gate]] = {}
        self._arrivals = itertools.count()
        self._changed: anyio.Event | None = None

    async def wait_for_change(self) -> None:
        """Wait until a slot is taken or given back, or an attempt starts waiting."""
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    def _touch(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def usage(self) -> tuple[PoolUsage, ...]:
        """The named pools, by name."""
        return tuple(
            PoolUsage(
                name=key[1],
                slots=limit,
                used=self.used[key],
                waiting=len(self._waiting.get(key, ())),
            )
            for key, limit in sorted(self.limits.items())
            if key[0] == "pool"
        )

    def take(self, state: RunState, i: int, k: int, attempt: int, reason: AttemptReason) -> bool:
        """Take the slots of a ready attempt; ``False``: it waits here instead, and
        ``release`` makes it ready once it gets them."""
        gate = self._gates[state.run.dag_id][i]
        if not gate:
            return True
        entry = (-state.graph.tasks[i].priority, next(self._arrivals), state, i, k, attempt, reason)
        return self._try(entry, gate)

    def hold(self, state: RunState, i: int, task_id: str, attempt: int) -> None:
        """Count an attempt storage shows scheduled or running as holding its slots
        (a new leader, recovering), room or not."""
        gate = self._gates[state.run.dag_id][i]
        if gate:
            self._acquire(state.run.id, task_id, attempt, gate)

    def release(
        self, state: RunState, task_id: str, attempt: int, now: datetime, fx: Effects
    ) -> None:
        """An attempt ended: give its slots back, and make ready who gets them."""
        held = self._held.get(state.run.id)
        gate = held.pop((task_id, attempt), None) if held else None
        if gate is None:
            return
        if not held:
            del self._held[state.run.id]
        for key, slots in gate:
            self.used[key] -= slots
        self._touch()
        for key, _ in gate:
            self._admit_waiting(key, now, fx)

    def release_run(self, state: RunState, now: datetime, fx: Effects) -> None:
        """A run was cancelled: its attempts give their slots back, and those waiting
        for slots stop waiting."""
        run_id = state.run.id
        freed: set[Key] = set()
        for gate in self._held.pop(run_id, {}).values():
            for key, slots in gate:
                self.used[key] -= slots
                freed.add(key)
        for key, waiting in self._waiting.items():
            kept = [e for e in waiting if e[2] is not state]
            if len(kept) != len(waiting):
                heapq.heapify(kept)
                self._waiting[key] = kept
        self._touch()
        for key in sorted(freed):
            self._admit_waiting(key, now, fx)

    # -- internals -------------------------------------------------------------------

    def _try(self, entry: _Entry, gate: Gate) -> bool:
        if not self._fits(gate):
            self._park_on_full(entry, gate)
            return False
        state, i, k, attempt = entry[2], entry[3], entry[4], entry[5]
        task_id = state.graph.ids[i] if k < 0 else instance_id(state.graph.ids[i], k)
        self._acquire(state.run.id, task_id, attempt, gate)
        return True

    def _acquire(self, run_id: int, task_id: str, attempt: int, gate: Gate) -> None:
        for key, slots in gate:
            self.used[key] += slots
        self._touch()
        self._held.setdefault(run_id, {})[(task_id, attempt)] = gate

    def _admit_waiting(self, key: Key, now: datetime, fx: Effects) -> None:
        """Make ready the waiting attempts that fit, highest priority first; stop at
        the first that does not fit (it keeps its turn)."""
        from . import fanout
        from . import state as transitions

        waiting = self._waiting.get(key)
        limit = self.limits[key]
        while waiting:
            entry = waiting[0]
            state, i, k, attempt, reason = entry[2], entry[3], entry[4], entry[5], entry[6]
            if (
                state.cancelled
                or state.finished
                or not state.expects(i, attempt, None if k < 0 else k)
            ):
                heapq.heappop(waiting)
                continue
            gate = self._gates[state.run.dag_id][i]
            slots = dict(gate)[key]
            if self.used[key] + slots > limit:
                return
            heapq.heappop(waiting)
            # Past its turn here: it competes for the other counters as a newcomer
            # would, but keeps its place (its arrival) among their waiters.
            if not self._fits(gate):
                self._park_on_full(entry, gate)
                continue
            task_id = state.graph.ids[i] if k < 0 else instance_id(state.graph.ids[i], k)
            self._acquire(state.run.id, task_id, attempt, gate)
            if k < 0:
                transitions.make_ready(state, i, attempt, reason, now, fx)
            else:
                fanout.make_instance_ready(state, i, k, attempt, reason, now, fx)

    def _fits(self, gate: Gate) -> bool:
        return all(self.used[key] + slots <= self.limits[key] for key, slots in gate)

    def _park_on_full(self, entry: _Entry, gate: Gate) -> None:
        for key, slots in gate:
            if self.used[key] + slots > self.limits[key]:
                heapq.heappush(self._waiting.setdefault(key, []), entry)
                self._touch()
                return
