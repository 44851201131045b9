"""The events the state machine's inbox holds, one small class per kind.

Workers, the watcher and the public API post them; the machine drains them all at
once per step and applies each with the matching transition of ``state.py``. A new
kind of event is a class here, a ``post_*`` method and a branch in
``StateMachine._apply``.

Slotted, not frozen: an event is built once per attempt outcome on the hot path, and a
frozen attrs class costs three times as much to build. Nothing changes an event after
it is posted.
"""

from __future__ import annotations

import anyio
import attrs

from .._structures import DagRun, NewRun, TaskRun
from .state import RunState


@attrs.define(eq=False, weakref_slot=False)
class AttemptEnded:
    """Attempt ``tr`` of task ``i`` ended: ``tr.status`` is success, skipped,
    up_for_retry (failed, may be retried), failed (not to be retried) or cancelled; for
    an instance of a mapped task, ``tr.task_id`` is ``process[3]``."""

    state: RunState
    i: int
    tr: TaskRun


@attrs.define(eq=False, weakref_slot=False)
class InstancesEnded:
    """Attempts of the instances ``first``, ``first + 1``, ... of mapped task ``i``
    ended, one outcome each in ``trs`` (as ``AttemptEnded``), in index order: what a
    worker ran of one ``Instances`` item."""

    state: RunState
    i: int
    first: int
    trs: list[TaskRun]


@attrs.define(eq=False, weakref_slot=False)
class AttemptStarted:
    """Attempt ``tr`` of task ``i`` started and suspended: record it running."""

    state: RunState
    i: int
    tr: TaskRun


@attrs.define(eq=False, weakref_slot=False)
class AttemptInterrupted:
    """Attempt ``tr`` of task ``i`` was cut short: this process is stopping, or (on a
    shared storage) the process running it stopped."""

    state: RunState
    i: int
    tr: TaskRun


@attrs.define(eq=False, weakref_slot=False)
class RunQueued:
    """A run was queued in storage (created, triggered or restarted): admit it."""

    run: DagRun


class RunRequested:
    """Write run ``new`` in the next commit, then admit it. Whoever asked waits for
    ``done``: then ``run`` is the run as stored, or ``error`` says why it is not."""

    __slots__ = ("done", "error", "new", "run")

    def __init__(self, new: NewRun) -> None:
        self.new = new
        self.done = anyio.Event()
        self.run: DagRun | None = None
        self.error: BaseException | None = None

    def resolve(self, run: DagRun | None, error: BaseException | None = None) -> None:
        self.run, self.error = run, error
        self.done.set()


@attrs.define(eq=False, weakref_slot=False)
class RetryDue:
    """The retry delay of ``attempt`` of task ``i`` (of its instance ``map_index``, or
    -1) has passed: make the next attempt."""

    state: RunState
    i: int
    attempt: int
    map_index: int = -1


@attrs.define(eq=False, weakref_slot=False)
class RunCancelled:
    """Cancel run ``run_id`` (``note`` says why); ``only``: unless it was restarted
    since this state of it (a run timeout armed for an earlier start)."""

    run_id: int
    note: str
    only: RunState | None = None


#: Everything the inbox may hold.
Event = (
    AttemptEnded
    | InstancesEnded
    | AttemptStarted
    | AttemptInterrupted
    | RunQueued
    | RunRequested
    | RetryDue
    | RunCancelled
)
