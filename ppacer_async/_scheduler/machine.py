"""The DAG-run state machine: one inbox, one storage transaction per drain.

Workers, the watcher and the public API post events; each loop turn drains every
event available, applies the pure transitions of ``state.py``, commits everything in
ONE transaction (group commit), and only then acts: queues ready attempts, arms retry
timers, sends alerts and wakes whoever waits for a finished run.

Ready attempts the queue has no room for wait in a backlog, fed to the queue as it
drains; meanwhile the loop goes on committing outcomes, so a run that makes 100,000
tasks ready at once does not hold every result in memory until the last is queued.

What the machine decides goes to its ``Followers`` (the engine, which passes retries to
the watcher and alerts to the alerter) once committed; whoever waits for a run to
finish registers with ``watch``.

On a shared storage (``shared=True``) the machine runs only in the process holding the
leadership. Ready attempts are written as ``scheduled`` rows for every process to claim
instead of being queued here, and outcomes come from storage (``reported_outcomes``),
read at the start of a step when ``post_outcomes_due`` says there may be some.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, assert_never, cast

import anyio
import anyio.lowlevel
import attrs

from .._dag import DAG
from .._enums import DagRunStatus, RunTrigger, TaskStatus
from .._exceptions import InvalidOperation, LeaseLost, StorageError
from .._structures import Changes, DagRun, LocalClaim, NewRun, TaskRun
from .._text import plural
from . import fanout, recovery
from . import state as transitions
from .events import (
    AttemptEnded,
    AttemptInterrupted,
    AttemptStarted,
    Event,
    InstancesEnded,
    RetryDue,
    RunCancelled,
    RunQueued,
    RunRequested,
)
from .logbuffer import LogBuffer
from .pools import Pools
from .queue import ReadyQueue
from .salvage import Salvage
from .state import AlertKind, Effects, RunState
from .upstream import Instances, claimed

if TYPE_CHECKING:
    from ..abc import Clock, SharedStorage, Storage
    from .consumer import Item
    from .upstream import RunView

    #: A queue item of one attempt by its row. On a shared storage every ready item is
    #: one (each attempt has its row, claimed by its key): no ``Instances`` ranges.
    RowItem = tuple[RunView, int, TaskRun]

logger = logging.getLogger("ppacer_async.scheduler")
#: One readable line per run start, task outcome and run end, at INFO.
events_logger = logging.getLogger("ppacer_async.events")

COMMIT_ATTEMPTS = 5

#: The most reported outcomes one step reads from a shared storage.
OUTCOME_BATCH = 5000

#: Shared storage, while this process's workers are all busy: the most steps whose
#: ready attempts are kept to claim for them later (the rest are left to claims).
LOCAL_BACKLOG = 1000


class Followers(Protocol):
    """Who acts on what a step decided, told only once the step is committed."""

    def retry_at(
        self, due: datetime, state: RunState, i: int, attempt: int, map_index: int
    ) -> None:
        """Post ``RetryDue`` for ``attempt`` of task ``i`` (of its instance
        ``map_index``, or -1) at ``due``."""

    def cancel_at(self, due: datetime, state: RunState) -> None:
        """Post ``RunCancelled`` for a run still going at ``due`` (its run timeout)."""

    def run_cancelled(self, state: RunState) -> None:
        """``state``'s run was cancelled: stop its attempts executing here."""

    def alert(self, state: RunState, i: int, tr: TaskRun, kind: AlertKind) -> None:
        """Send the alert about attempt ``tr`` of task ``i``."""

    def run_finished(self, run: DagRun) -> None:
        """``run`` succeeded, failed or was cancelled (its slot is free)."""

    def attempts_written(self) -> None:
        """Shared storage: ready attempts were written for any process to claim."""


class LocalWorkers(Protocol):
    """Shared storage: the workers of the process that schedules, when it has some.

    The machine claims ready attempts for them in the commit that makes them ready (or
    a later one), up to ``free()``, and hands them over in memory: they start without a
    claim, an upstream read or a notice of their own."""

    worker_id: str

    def free(self) -> int:
        """How many more attempts the workers can start now."""

    def take(self, items: list[RowItem]) -> None:
        """Run these attempts, claimed for this process (their leases taken)."""

    def claim_short(self) -> None:
        """Some attempts the machine meant to claim had been taken (or cancelled)
        since: look in storage for the rest."""


class RunWatch:
    """What a waiter for one run is told: ``event`` is set once the step that finishes
    the run is committed, with ``run`` the finished run as stored; or once the machine
    lets the run go without running it (``run`` stays ``None``: ask storage)."""

    __slots__ = ("event", "run")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.run: DagRun | None = None


class StateMachine:
    """Owns the state of every active run of one scheduler.

    :param queue: where ready attempts go (one process); ``None`` on a shared storage.
    :param local: shared storage: this process's workers, handed the attempts the
        machine claims for them.
    """

    def __init__(
        self,
        *,
        storage: Storage,
        clock: Clock,
        dags: dict[str, DAG],
        queue: ReadyQueue[Item] | None,
        followers: Followers,
        shared: bool = False,
        pools: Pools | None = None,
        local: LocalWorkers | None = None,
    ) -> None:
        self.storage = storage
        self.local = local if shared else None
        #: outcomes of this process's workers posted with ``post_local``, not drained
        self._local_outcomes: list[TaskRun] = []
        #: those drained by the step being committed
        self._applying: list[TaskRun] = []
        #: the ready attempts of the step being committed, not handed over
        self._fresh: list[Iterator[Item]] = []  # RunState items
        self._fresh_left = 0
        self.pools = pools
        self.shared = shared
        self._outcomes_due = shared
        self.clock = clock
        self.dags = dags
        self.queue = queue
        self.followers = followers
        self.inbox: deque[Event] = deque()
        self.logs = LogBuffer()
        self.runs: dict[int, RunState] = {}
        self.active: dict[str, int] = {}
        self.pending: dict[str, deque[RunState]] = {}
        self.incoming: dict[str, int] = {}  # posted runs not admitted yet
        self._posted: dict[int, int] = {}  # their ids (a run may be posted twice)
        self._waiters: dict[int, list[RunWatch]] = {}
        self._cancelled_ids: set[int] = set()  # cancelled before they were admitted
        self._requests: list[RunRequested] = []  # runs to write in the next commit
        #: Whether ``post_new_run`` may be called: from the start until the flush.
        self.accepting = False
        self._yield = False  # triggers were just answered: let them ask again first
        self._backlog: deque[Iterator[Item]] = deque()
        self._held: Item | None = None  # taken from the backlog, refused by the queue
        #: ready attempts not in the queue yet (shared storage: not handed over to this
        #: process's workers yet, kept for them)
        self.backlogged = 0
        self._wake: anyio.Event | None = None
        self.commits = 0
        self.committed_rows = 0
        #: Told of every commit (the changes and the seconds it took), after it is made.
        self.on_commit: Callable[[Changes, float], None] | None = None
        self.tasks_finished = 0
        self.runs_finished = 0

    # -- posting (called from workers, watcher and the public API) ---------------------

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    def post_outcome(self, state: RunState, i: int, tr: TaskRun) -> None:
        self.inbox.append(AttemptEnded(state, i, tr))
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    def post_instances(self, state: RunState, i: int, first: int, trs: list[TaskRun]) -> None:
        """Outcomes of instances ``first``, ``first + 1``, ... of mapped task ``i``."""
        self.inbox.append(InstancesEnded(state, i, first, trs))
        self.wake()

    def post_started(self, state: RunState, i: int, tr: TaskRun) -> None:
        self.inbox.append(AttemptStarted(state, i, tr))
        self.wake()

    def post_interrupted(self, state: RunState, i: int, tr: TaskRun) -> None:
        self.inbox.append(AttemptInterrupted(state, i, tr))
        self.wake()

    def post_run(self, run: DagRun) -> None:
        """A run was queued in storage (created, or restarted): admit it."""
        self.incoming[run.dag_id] = self.incoming.get(run.dag_id, 0) + 1
        self._posted[run.id] = self._posted.get(run.id, 0) + 1
        self.inbox.append(RunQueued(run))
        self.wake()

    def post_new_run(self, new: NewRun) -> RunRequested:
        """Write run ``new`` (queued) in the next commit, then admit it; wait for the
        request's ``done`` (only while ``accepting``)."""
        request = RunRequested(new)
        self.inbox.append(request)
        self.wake()
        return request

    def post_retry(self, state: RunState, i: int, attempt: int, map_index: int = -1) -> None:
        self.inbox.append(RetryDue(state, i, attempt, map_index))
        self.wake()

    def post_cancel(self, run_id: int, note: str, only: RunState | None = None) -> None:
        """Cancel a run this machine holds (running, or queued behind others), or will
        be handed (queued, not admitted yet); ``only``: unless it was restarted since
        this state of it."""
        self.inbox.append(RunCancelled(run_id, note, only))
        self.wake()

    def post_outcomes_due(self) -> None:
        """Outcomes may wait in the shared storage: read them at the next step."""
        self._outcomes_due = True
        self.wake()

    def post_reported(self, outcomes: list[TaskRun]) -> None:
        """Outcomes this process's workers just stored: apply them without reading
        them back."""
        runs = self.runs
        for tr in outcomes:
            state = runs.get(tr.run_id)
            if state is None:
                continue
            found = state.locate(tr.task_id)
            if found is None or not state.expects(found[0], tr.attempt, found[1]):
                continue
            i = found[0]
            if tr.status is TaskStatus.interrupted:
                self.inbox.append(AttemptInterrupted(state, i, tr))
            else:
                self.inbox.append(AttemptEnded(state, i, tr))
        self.wake()

    def post_local(self, tr: TaskRun) -> bool:
        """Shared storage: a successful outcome of an attempt this process's workers
        hold, not stored: apply it, the commit writing it only if the attempt is still
        this process's (``LocalClaim.applied``). Return False (the caller reports it as
        usual) for an outcome this machine does not expect, or that takes a less
        common path (sensors)."""
        if self.local is None or tr.status is not TaskStatus.success:
            return False
        state = self.runs.get(tr.run_id)
        if state is None or state.cancelled:
            return False
        found = state.locate(tr.task_id)
        if found is None or not state.expects(found[0], tr.attempt, found[1]):
            return False
        i = found[0]
        if state.graph.tasks[i].sensor is not None:
            return False
        self._local_outcomes.append(tr)
        self.inbox.append(AttemptEnded(state, i, tr))
        self.wake()
        return True

    # -- what the engine asks ----------------------------------------------------------

    def write_logs_soon(self) -> None:
        """Task logs wait for the next commit: have it happen now."""
        if self.logs:
            self.wake()

    def state_of(self, run_id: int) -> RunState | None:
        """The state of a run this machine holds (admitted and not finished)."""
        return self.runs.get(run_id)

    def holds(self, run_id: int) -> bool:
        """Whether the machine will tell watchers of this run what became of it: it
        holds the run, or the run was handed to it and waits in the inbox."""
        return run_id in self.runs or run_id in self._posted

    def watch(self, run_id: int) -> RunWatch:
        """Be told once a step that finishes the run is committed (or the machine lets
        it go unfinished); give it back with ``unwatch``."""
        watch = RunWatch()
        waiters = self._waiters.get(run_id)
        if waiters is None:
            self._waiters[run_id] = [watch]
        else:
            waiters.append(watch)
        return watch

    def unwatch(self, run_id: int, watch: RunWatch) -> None:
        waiters = self._waiters.get(run_id)
        if waiters and watch in waiters:
            waiters.remove(watch)
            if not waiters:
                del self._waiters[run_id]

    def _let_go(self, run_id: int) -> None:
        """A posted run will not be run here: its watchers ask storage."""
        for watch in self._waiters.pop(run_id, ()):
            watch.event.set()

    def free_slots(self, dag: DAG) -> int:
        """Runs of ``dag`` that may still start without waiting."""
        dag_id = dag.dag_id
        busy = (
            self.active.get(dag_id, 0)
            + len(self.pending.get(dag_id, ()))
            + self.incoming.get(dag_id, 0)
        )
        return dag.max_active_runs - busy

    # -- the loop ----------------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        await self.recover()
        self.accepting = True
        task_status.started()
        while True:
            if not (self.inbox or self.logs or self._outcomes_due or self._feedable()):
                self._wake = anyio.Event()
                await self._wake.wait()
            await self.step()

    async def recover(self) -> None:
        """Rebuild the state of the runs left active by the previous process."""
        now = self.clock.now()
        fx = Effects(record_scheduled=self.shared, pools=self.pools)
        for run in await self.storage.active_runs():
            dag = self.dags.get(run.dag_id)
            if dag is None:
                logger.warning(
                    "run %s of DAG %r is %s but the DAG is not served here; left as is",
                    run.id,
                    run.dag_id,
                    run.status,
                )
                continue
            if run.status is DagRunStatus.running:
                rows = await self.storage.task_runs(run.id)
                state = recovery.restore(run, dag, rows, now, fx, restart=False, shared=self.shared)
                if dag.run_timeout is not None and not state.finished:
                    fx.deadlines.append(((run.started_at or now) + dag.run_timeout, state))
                self.runs[run.id] = state
                self.active[dag.dag_id] = self.active.get(dag.dag_id, 0) + 1
            else:
                await self._admit_stored(run, dag, now, fx)
        self._release_finished(now, fx)
        self.runs_finished += len(fx.finished)
        if self.runs:
            logger.info("recovered %s", plural(len(self.runs), "active run"))
        await self._commit_and_act(fx)

    async def step(self) -> None:
        """Drain the inbox, commit the transitions, then act on them."""
        if self._outcomes_due:
            await self._read_outcomes()
        fx = Effects(record_scheduled=self.shared, pools=self.pools)
        await self._apply(fx, stopping=False)
        await self._commit_and_act(fx)

    async def flush(self) -> None:
        """Commit what is left in the inbox without starting anything (on shutdown);
        runs asked for are written, to start at the next start."""
        self.accepting = False
        try:
            if self.shared:
                await self._read_outcomes()
            fx = Effects(record_scheduled=self.shared, pools=self.pools)
            await self._apply(fx, stopping=True)
            claim = None
            if self._applying:
                assert self.local is not None
                claim = LocalClaim(
                    worker_id=self.local.worker_id,
                    dag_ids=tuple(self.dags),
                    now=self.clock.now(),
                    applied=tuple(tr.key for tr in self._applying),
                )
            await self._commit(fx, claim)
            if events_logger.isEnabledFor(logging.INFO):
                _log_events(fx)
        finally:
            left = self._requests + [e for e in self.inbox if isinstance(e, RunRequested)]
            self._requests = []
            for request in left:
                request.resolve(
                    None,
                    InvalidOperation(
                        "the scheduler stopped before the run was written; nothing was "
                        "queued: trigger it again once the scheduler serves"
                    ),
                )

    async def _read_outcomes(self) -> None:
        """Post the outcomes other processes (and this one's workers) reported.

        Read at the start of a step, so an outcome read here is committed (its row
        leaves ``running``) before the next read: none is applied twice.
        """
        self._outcomes_due = False
        storage: SharedStorage = self.storage  # type: ignore[assignment]
        found = await storage.reported_outcomes(self.dags.keys(), OUTCOME_BATCH)
        if len(found) == OUTCOME_BATCH:
            self._outcomes_due = True  # more to read at the next step
        # Some may also have been handed over directly (post_reported) and wait in the
        # inbox, which is drained right after this without awaiting.
        posted = {
            event.tr.key
            for event in self.inbox
            if isinstance(event, AttemptEnded | AttemptInterrupted)
        }
        self.post_reported([tr for tr in found if tr.key not in posted])

    async def _apply(self, fx: Effects, *, stopping: bool) -> None:
        events, self.inbox = self.inbox, deque()
        self._applying, self._local_outcomes = self._local_outcomes, []
        now = self.clock.now()
        runs = self.runs
        done = 0
        # Looked up once, not per event (an enum member costs about 0.1 µs to read).
        success = TaskStatus.success
        succeeded = transitions.plain_task_succeeded
        for event in events:
            if isinstance(event, AttemptEnded):  # the most frequent first
                done += 1
                tr = event.tr
                if tr.status is success and event.state.plain:
                    succeeded(event.state, event.i, tr, now, fx)
                else:
                    if event.state.gated and self.pools is not None:
                        self.pools.release(event.state, tr.task_id, tr.attempt, now, fx)
                    _attempt_ended(event.state, event.i, tr, now, fx)
            elif isinstance(event, InstancesEnded):
                done += len(event.trs)
                _instances_ended(event.state, event.i, event.first, event.trs, now, fx)
            elif isinstance(event, AttemptStarted):
                if not event.state.cancelled:
                    tr = event.tr
                    if event.state.sensing:
                        tr = transitions.sensor_ended(event.state, event.i, tr, keep=True)
                    fx.task_runs.append(tr)
            elif isinstance(event, AttemptInterrupted):
                # Shared: another process stopped or died; the attempt runs again at
                # once. Here: this process is stopping; it runs on the next start.
                tr, state, i = event.tr, event.state, event.i
                if state.sensing:  # its row keeps the first poke (recovery reads it)
                    tr = transitions.sensor_ended(state, i, tr, keep=True)
                if state.gated and self.pools is not None:
                    self.pools.release(state, tr.task_id, tr.attempt, now, fx)
                if state.cancelled:
                    continue
                resume = self.shared and not stopping
                graph = state.graph
                if not graph.plain and graph.map_source[i] >= 0 and tr.task_id != graph.ids[i]:
                    k = int(tr.task_id[len(graph.ids[i]) + 1 : -1])
                    fanout.instance_interrupted(state, i, k, tr, now, fx, resume=resume)
                else:
                    transitions.task_interrupted(state, i, tr, now, fx, resume=resume)
            elif isinstance(event, RunRequested):
                self._requests.append(event)  # written in this step's commit
            elif stopping:
                if isinstance(event, RunQueued):
                    self._unpost(event.run)
                    self._let_go(event.run.id)
                continue  # runs and retries wait in storage for the next start
            elif isinstance(event, RunQueued):
                run = event.run
                self._unpost(run)
                dag = self.dags.get(run.dag_id)
                if run.id in self._cancelled_ids:
                    self._cancelled_ids.discard(run.id)  # cancelled before it started
                    self._let_go(run.id)
                elif dag is None:
                    logger.warning("run %s: DAG %r is not served here", run.id, run.dag_id)
                    self._let_go(run.id)
                elif run.id not in runs:
                    await self._admit_stored(run, dag, now, fx)
            elif isinstance(event, RetryDue):
                current = runs.get(event.state.run.id)
                if current is not None and current is event.state:  # not restarted since
                    if event.map_index < 0:
                        transitions.retry_due(current, event.i, event.attempt, now, fx)
                    else:
                        fanout.instance_retry_due(
                            current, event.i, event.map_index, event.attempt, now, fx
                        )
            elif isinstance(event, RunCancelled):
                if event.only is None or runs.get(event.run_id) is event.only:
                    self._cancel(event.run_id, event.note, now, fx)
            else:  # mypy checks that every kind of event has its branch
                assert_never(event)
        self.tasks_finished += done
        if not stopping:
            self._release_finished(now, fx)
        # Counted before the commit, like the tasks: on a shared storage, a waiter in
        # this process may learn of the commit (a notice) before this loop resumes.
        self.runs_finished += len(fx.finished)

    def _unpost(self, run: DagRun) -> None:
        self.incoming[run.dag_id] -= 1
        left = self._posted[run.id] - 1
        if left:
            self._posted[run.id] = left
        else:
            del self._posted[run.id]

    def _release_finished(self, now: Any, fx: Effects) -> None:
        """Free the slots of finished runs for queued runs of the same DAG, in the same
        transaction; a run may finish at once (a DAG without tasks)."""
        k = 0
        while k < len(fx.finished):
            self._release(fx.finished[k], now, fx)
            k += 1

    # -- internals -------------------------------------------------------------------

    def _admit(self, state: RunState, now: Any, fx: Effects) -> None:
        dag_id = state.dag.dag_id
        self.runs[state.run.id] = state
        if self.active.get(dag_id, 0) < state.dag.max_active_runs:
            self.active[dag_id] = self.active.get(dag_id, 0) + 1
            transitions.start_run(state, now, fx)
        else:
            self.pending.setdefault(dag_id, deque()).append(state)

    async def _admit_stored(self, run: DagRun, dag: DAG, now: Any, fx: Effects) -> None:
        """Admit a queued run; a restarted one is rebuilt from its stored attempts."""
        if run.trigger is RunTrigger.restart:
            rows = await self.storage.task_runs(run.id)
            state = recovery.restore(run, dag, rows, now, fx, restart=True, shared=self.shared)
        else:
            state = RunState.new(run, dag)
        self._admit(state, now, fx)

    async def _commit(
        self, fx: Effects, claim: LocalClaim | None = None
    ) -> tuple[list[DagRun], set[tuple[int, str, int]]]:
        """Commit the step, with the runs asked for; return those written and, with
        ``claim`` (shared storage), the keys of the attempts claimed in it for this
        process's workers."""
        logs = list(self.logs)
        self.logs.clear()
        changes = Changes(task_runs=fx.task_runs, dag_runs=fx.dag_runs, logs=logs)
        created: list[DagRun] = []
        taken: set[tuple[int, str, int]] = set()
        if self._requests:
            requests, self._requests = self._requests, []
            began = time.perf_counter()
            if claim is None:
                created, written = await self._create_runs(requests, changes)
                if written:
                    if changes:
                        self._committed(changes, began)
                    return created, taken
            else:  # the runs on their own first: the claiming commit checks its leases
                created, _ = await self._create_runs(requests, Changes())
        if not changes:
            return created, taken
        salvage: Salvage | None = None
        began = time.perf_counter()
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                # Shielded: a stop never leaves a step half-committed and half-acted on.
                with anyio.CancelScope(shield=True):
                    if salvage is not None:
                        await salvage.commit(self.storage.commit)
                    elif claim is not None:
                        shared: SharedStorage = self.storage  # type: ignore[assignment]
                        taken = await shared.commit_claiming(changes, claim)
                    else:
                        await self.storage.commit(changes)
                break
            except Exception as exc:
                if attempt == COMMIT_ATTEMPTS or isinstance(exc, LeaseLost):
                    raise
                logger.warning(
                    "commit of %d rows failed (attempt %d of %d); retrying",
                    len(changes.task_runs) + len(changes.dag_runs) + len(logs),
                    attempt,
                    COMMIT_ATTEMPTS,
                    exc_info=True,
                )
                if claim is not None and claim.applied:
                    await self._check_applied(claim)
                claim = None  # retried plainly: the attempts stay scheduled for claims
                # Not the database (that raises StorageError), or not only: look for
                # the rows that cannot be stored.
                if salvage is None and (not isinstance(exc, StorageError) or attempt >= 2):
                    salvage = Salvage.of(changes)
                await anyio.sleep(0.05 * 2**attempt)
        if salvage is not None and salvage.replaced:
            await self._replaced(salvage, fx)
        self._applying = []
        self._committed(changes, began)
        return created, taken

    def _committed(self, changes: Changes, began: float) -> None:
        self.commits += 1
        self.committed_rows += len(changes.task_runs) + len(changes.dag_runs) + len(changes.logs)
        if self.on_commit is not None:
            self.on_commit(changes, time.perf_counter() - began)

    async def _check_applied(self, claim: LocalClaim) -> None:
        """Before a failed commit is retried without its claim (plainly, or row group
        by row group around a row the database refuses): check that this process still
        holds the attempts whose outcomes it applies, as the claim would have. Raises
        ``LeaseLost`` (scheduling starts again from storage) if one is not."""
        assert self.local is not None
        shared: SharedStorage = self.storage  # type: ignore[assignment]
        keys = claim.applied
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                with anyio.CancelScope(shield=True):
                    held = await shared.held(self.local.worker_id, keys)
                break
            except StorageError:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                await anyio.sleep(0.05 * 2**attempt)
        if len(held) < len(set(keys)):
            raise LeaseLost(
                "the lease of an attempt this process ran was given up before its outcome "
                "was committed; scheduling starts again from storage"
            )

    async def _create_runs(
        self, requests: list[RunRequested], changes: Changes
    ) -> tuple[list[DagRun], bool]:
        """Write the runs asked for together with ``changes`` (one transaction where the
        storage can), and answer each request; return the runs written and whether
        ``changes`` were written with them.

        When that fails, each run is written on its own (its request is answered with
        the error, if any) and ``changes`` are left to the caller, which retries them.
        """
        storage = self.storage
        try:
            with anyio.CancelScope(shield=True):
                runs = await storage.create_runs_and_commit([r.new for r in requests], changes)
        except Exception as exc:
            logger.warning(
                "writing %s with a commit failed; writing them one by one: %s",
                plural(len(requests), "triggered run"),
                exc,
            )
        else:
            for request, run in zip(requests, runs, strict=True):
                request.resolve(run)
            self._yield = True
            return runs, True
        created: list[DagRun] = []
        for request in requests:
            try:
                with anyio.CancelScope(shield=True):
                    run = await create_run(storage, request.new)
            except Exception as exc:
                request.resolve(None, exc)
                continue
            request.resolve(run)
            created.append(run)
        self._yield = True
        return created, False

    async def _replaced(self, salvage: Salvage, fx: Effects) -> None:
        """Follow attempts stored failed in place of an outcome that could not be: the
        run fails; one already written finished is written again, failed."""
        rewrite: dict[int, DagRun] = {}
        finished = {state.run.id: state for state in fx.finished}
        for row, _ in salvage.replaced:
            if not isinstance(row, TaskRun) or row.status is not TaskStatus.success:
                continue
            state = self.runs.get(row.run_id) or finished.get(row.run_id)
            i = None if state is None else state.graph.index.get(row.task_id)
            if state is None or i is None:
                continue
            state.phase[i] = transitions.FAILED
            state.failed += 1
            state.results.pop(i, None)
            if state.run.status is DagRunStatus.success:
                state.run = attrs.evolve(state.run, status=DagRunStatus.failed)
                rewrite[state.run.id] = state.run
        if rewrite:
            with anyio.CancelScope(shield=True):
                await self.storage.commit(Changes(dag_runs=list(rewrite.values())))

    async def _commit_and_act(self, fx: Effects) -> None:
        claim: LocalClaim | None = None
        picked: list[RowItem] = []
        if self.local is not None:
            claim, picked = self._pick_local(fx)
        created, taken = await self._commit(fx, claim)
        for run in created:
            self.post_run(run)  # admitted at the next step
        if self._yield:
            # Runs were just written for triggers waiting on them: let a caller that
            # triggers run after run post its next one now, before the workers woken
            # below take the loop, so that the next step's commit (with that run) is
            # under way while they run. Shielded: what follows must not be skipped.
            self._yield = False
            with anyio.CancelScope(shield=True):
                await anyio.lowlevel.checkpoint()
        if events_logger.isEnabledFor(logging.INFO):
            _log_events(fx)
        followers = self.followers
        for due, state, i, attempt, k in fx.retries:
            followers.retry_at(due, state, i, attempt, k)
        for due, state in fx.deadlines:
            followers.cancel_at(due, state)
        for state in fx.cancelled:
            followers.run_cancelled(state)
        for state, i, tr, kind in fx.alerts:
            followers.alert(state, i, tr, kind)
        waiters = self._waiters
        for state in fx.finished:
            run = state.run
            if waiters:
                for watch in waiters.pop(run.id, ()):
                    watch.run = run
                    watch.event.set()
            followers.run_finished(run)
        if self.shared:  # the ready attempts are in storage for any process to claim
            left = sum(len(ready) for ready in fx.ready.values()) if fx.ready else 0
            if claim is not None:
                left -= len(claim.fresh & taken)  # handed over to this process's workers
                self._hand_over(claim, picked, taken)
            if self.local is not None:
                self._keep_local()
            if left > 0 and not self.has_local_backlog():
                # Some wait in storage, for claims (those left in the backlog go to
                # this process's workers at the next steps).
                followers.attempts_written()
            return
        for ready in fx.ready.values():
            self._backlog.append(ready.items())
            self.backlogged += len(ready)
        self._feed()

    # -- this process's own workers, on a shared storage ------------------------------

    def _pick_local(self, fx: Effects) -> tuple[LocalClaim | None, list[RowItem]]:
        """The ready attempts to claim for this process's free workers in this step's
        commit: first those made ready before (in order, stored ``scheduled``), then
        this step's. This step's not picked join the backlog once committed
        (``_keep_local``), for the next steps and ``take_stored``; all are in storage
        for any process to claim."""
        local = self.local
        assert local is not None
        fresh_ready: list[Iterator[Item]] = [ready.items() for ready in fx.ready.values()]
        self._fresh = fresh_ready
        applied = tuple(tr.key for tr in self._applying)
        n = max(0, local.free())
        fresh: set[tuple[int, str, int]] = set()
        self._fresh_left = sum(len(ready) for ready in fx.ready.values())
        picked = self.take_stored(n) if n else []
        stored = [attempt[2].key for attempt in picked]
        if n:
            for ready_items in fresh_ready:
                while len(picked) < n:
                    item = next(ready_items, None)
                    if item is None:
                        break
                    self._fresh_left -= 1
                    state, i, tr = cast("tuple[RunState, int, TaskRun]", item)
                    if state.sensing and i in state.sensing:
                        continue  # poked again: keeps its first poke; left to claims
                    picked.append((state, i, tr))
                    fresh.add(tr.key)
        if not picked and not applied:
            return None, []
        claim = LocalClaim(
            worker_id=local.worker_id,
            dag_ids=tuple(self.dags),
            now=self.clock.now(),
            fresh=frozenset(fresh),
            stored=tuple(stored),
            applied=applied,
        )
        return claim, picked

    def _claimable(self, item: Item) -> bool:
        """Whether a backlogged attempt, stored ``scheduled``, may still be claimed by
        key: a plain task's current attempt in a run still held, not cancelled (a
        step cannot have written its row again)."""
        state, i, tr = cast("tuple[RunState, int, TaskRun]", item)
        return (
            self.runs.get(state.run.id) is state
            and not state.cancelled
            and not (state.sensing and i in state.sensing)
            and tr.task_id == state.graph.ids[i]
            and state.attempt[i] == tr.attempt
            and state.phase[i] == transitions.LIVE
        )

    def _keep_local(self) -> None:
        """After a commit: this step's ready attempts not handed over join the
        backlog; beyond ``LOCAL_BACKLOG`` steps the oldest are left to claims."""
        backlog = self._backlog
        backlog.extend(self._fresh)
        self.backlogged += self._fresh_left
        self._fresh, self._fresh_left = [], 0
        if not self.backlogged:
            backlog.clear()  # what is left are exhausted iterators
        elif len(backlog) > LOCAL_BACKLOG:
            self._drop_local()

    def _drop_local(self) -> None:
        """Leave every backlogged attempt to claims from storage."""
        self._backlog.clear()
        self.backlogged = 0
        assert self.local is not None
        self.local.claim_short()

    def take_stored(self, n: int) -> list[RowItem]:
        """Up to ``n`` backlogged attempts (stored ``scheduled``) for this process's
        workers to claim by key; they leave the backlog."""
        backlog = self._backlog
        taken: list[RowItem] = []
        while backlog and len(taken) < n:
            item = next(backlog[0], None)
            if item is None:
                backlog.popleft()
                continue
            self.backlogged -= 1
            if self._claimable(item):
                taken.append(cast("RowItem", item))
        return taken

    def _hand_over(self, claim: LocalClaim, picked: list[RowItem], taken: set[Any]) -> None:
        """Give this process's workers the attempts the commit claimed for them."""
        local = self.local
        assert local is not None
        now = claim.now
        items: list[RowItem] = []
        for state, i, tr in picked:
            if (tr.run_id, tr.task_id, tr.attempt) in taken:
                items.append((state, i, claimed(tr, now)))
        if items:
            local.take(items)
        elif picked:
            # None left to take: other processes run these DAGs too (or took these
            # attempts), or the commit was retried without claiming. The rest, this
            # step's too, is left to claims.
            self._fresh, self._fresh_left = [], 0
            self._drop_local()

    def has_local_backlog(self) -> bool:
        """Shared storage: whether ready attempts wait to be claimed for this
        process's workers at the next step."""
        return self.local is not None and self.backlogged > 0

    def _feedable(self) -> bool:
        queue = self.queue
        return bool(self._backlog) and queue is not None and len(queue) < queue.capacity

    def _feed(self) -> None:
        """Move backlogged ready attempts into the queue while it has room; when it is
        full, again once it has drained to half."""
        queue, backlog = self.queue, self._backlog
        assert queue is not None
        put = queue.put_nowait
        while backlog:
            items = backlog[0]
            item = self._held
            self._held = None
            fed = 0
            if item is None:
                item = next(items, None)
            if item is not None:
                tasks = item[0].graph.tasks  # one run's items: one graph
                while item is not None:
                    if not put(tasks[item[1]].priority, item):
                        self._held = item
                        self.backlogged -= fed
                        # Fed by the worker that drains it to half, not by a step of
                        # this loop, which may be waiting for a commit meanwhile: the
                        # backlog is committed already.
                        queue.on_space(self._feed)
                        return
                    work = item[2]
                    fed += len(work) if work.__class__ is Instances else 1
                    item = next(items, None)
                self.backlogged -= fed
            backlog.popleft()

    def _cancel(self, run_id: int, note: str, now: Any, fx: Effects) -> None:
        state = self.runs.get(run_id)
        if state is None:
            # Queued but not admitted yet (its event may come next): never start it.
            self._cancelled_ids.add(run_id)
            return
        if state.finished:
            return
        pending = self.pending.get(state.run.dag_id)
        if pending and state in pending:
            # Never started: it takes no slot, but _release gives one back.
            pending.remove(state)
            self.active[state.run.dag_id] += 1
        transitions.cancel_run(state, note, now, fx)
        if state.gated and self.pools is not None:
            self.pools.release_run(state, now, fx)

    def _release(self, state: RunState, now: Any, fx: Effects) -> None:
        dag_id = state.run.dag_id
        self.runs.pop(state.run.id, None)
        self.active[dag_id] -= 1
        pending = self.pending.get(dag_id)
        if pending:
            nxt = pending.popleft()
            self.active[dag_id] += 1
            transitions.start_run(nxt, now, fx)


async def create_run(storage: Storage, new: NewRun) -> DagRun:
    """Write a new manual run in a transaction of its own."""
    run = await storage.create_run(**attrs.asdict(new, recurse=False))
    assert run is not None  # manual runs are never refused
    return run


def _attempt_ended(state: RunState, i: int, tr: TaskRun, now: Any, fx: Effects) -> None:
    """Apply any outcome but a success in a plain run (those take the fast path)."""
    if state.cancelled:
        return  # its row says cancelled already
    graph = state.graph
    status = tr.status
    if state.sensing or status is TaskStatus.up_for_reschedule:
        if status is TaskStatus.up_for_reschedule:
            transitions.sensor_waits(state, i, tr, now, fx)
            return
        tr = transitions.sensor_ended(state, i, tr)
    if graph.mapped and graph.map_source[i] >= 0 and tr.task_id != graph.ids[i]:
        _instance_outcome(state, i, tr, now, fx)
    elif status is TaskStatus.success:
        transitions.task_succeeded(state, i, tr, now, fx)
    elif status is TaskStatus.skipped:
        transitions.task_skipped(state, i, tr, now, fx)
    elif status is not TaskStatus.cancelled:
        transitions.task_failed(state, i, tr, now, fx)


def _instance_outcome(state: RunState, i: int, tr: TaskRun, now: Any, fx: Effects) -> None:
    """Apply the outcome of one instance of a mapped task (``process[3]``)."""
    k = int(tr.task_id[len(state.graph.ids[i]) + 1 : -1])
    mapped = state.maps.get(i)
    if mapped is None or k >= len(mapped.phase):
        return
    phase = mapped.phase
    if phase[k] != transitions.LIVE or mapped.attempt[k] != tr.attempt:
        return
    status = tr.status
    if status is TaskStatus.success:  # fanout.instance_succeeded, inlined: per instance
        fx.task_runs.append(tr)
        mapped.streak[k] = 0
        phase[k] = transitions.SUCCESS
        mapped.results[k] = tr.result
        mapped.settled += 1
        if mapped.settled == len(phase):
            fanout.all_ended(state, i, now, fx)
    elif status is TaskStatus.skipped:
        fanout.instance_skipped(state, i, k, tr, now, fx)
    elif status is not TaskStatus.cancelled:
        fanout.instance_failed(state, i, k, tr, now, fx)


def _instances_ended(
    state: RunState, i: int, first: int, trs: list[TaskRun], now: Any, fx: Effects
) -> None:
    """Apply the outcomes of instances ``first``, ``first + 1``, ... of mapped task
    ``i``, in order (``_instance_outcome`` for a range, its id not parsed per instance)."""
    if state.cancelled:
        return  # their rows say cancelled already
    mapped = state.maps.get(i)
    if mapped is None:
        return
    phase, attempts, streak, results = mapped.phase, mapped.attempt, mapped.streak, mapped.results
    n = len(phase)
    live, succeeded = transitions.LIVE, transitions.SUCCESS
    success, skipped, cancelled = TaskStatus.success, TaskStatus.skipped, TaskStatus.cancelled
    append = fx.task_runs.append
    k = first
    for tr in trs:
        if k < n and phase[k] == live and attempts[k] == tr.attempt:
            status = tr.status
            if status is success:
                append(tr)
                streak[k] = 0
                phase[k] = succeeded
                results[k] = tr.result
                mapped.settled += 1
                if mapped.settled == n:
                    fanout.all_ended(state, i, now, fx)
            elif status is skipped:
                fanout.instance_skipped(state, i, k, tr, now, fx)
            elif status is not cancelled:
                fanout.instance_failed(state, i, k, tr, now, fx)
        k += 1


def _log_events(fx: Effects) -> None:
    """Tell what just happened, in readable lines (after it is committed)."""
    log = events_logger.info
    for run in fx.dag_runs:
        if run.status is DagRunStatus.running and run.finished_at is None:
            log(
                "run %s of %s started (%s, logical time %s)",
                run.id,
                run.dag_id,
                run.trigger,
                run.logical_time.isoformat(),
            )
    for tr in fx.task_runs:
        status = tr.status
        if (
            status is TaskStatus.success
            or status is TaskStatus.failed
            or (status is TaskStatus.up_for_retry)
        ):
            took = (
                (tr.finished_at - tr.started_at).total_seconds() * 1000
                if tr.finished_at and tr.started_at
                else 0.0
            )
            extra = ""
            if tr.error and status is not TaskStatus.success:
                lines = tr.error.strip().splitlines()
                extra = f": {lines[-1]}" if lines else ""
            log(
                "run %s task %s attempt %d %s in %.1f ms%s",
                tr.run_id,
                tr.task_id,
                tr.attempt,
                status,
                took,
                extra,
            )
        elif status is TaskStatus.running:
            log("run %s task %s attempt %d started", tr.run_id, tr.task_id, tr.attempt)
        elif status is TaskStatus.interrupted:
            log("run %s task %s attempt %d interrupted", tr.run_id, tr.task_id, tr.attempt)
        elif status is TaskStatus.up_for_reschedule:
            log(
                "run %s task %s attempt %d waits for its next poke",
                tr.run_id,
                tr.task_id,
                tr.attempt,
            )
    for state in fx.finished:
        run = state.run
        took = (
            (run.finished_at - run.started_at).total_seconds()
            if run.finished_at and run.started_at
            else 0.0
        )
        log("run %s of %s %s in %.3f s", run.id, run.dag_id, run.status, took)
