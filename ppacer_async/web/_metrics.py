"""``GET /metrics``: Prometheus text, from a registry of the app's own.

Two sources. What the engine commits (embedded mode: the app listens to the state
machine's commits) feeds counters and histograms as it happens: attempts and runs
finished by DAG and status, attempt durations, schedule lateness, commit latency and
batch size, expired leases. What can be read at any time (both modes) is read at
scrape: active runs by DAG and status, row counts, live scheduler processes, and in
embedded mode ``Scheduler.statistics()`` (queue depth, running tasks, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from .._enums import DagRunStatus, RunTrigger, TaskStatus
from .._structures import Changes, StorageCounts
from ._context import WebContext, web_context
from ._live import live_processes, now_utc

if TYPE_CHECKING:
    from collections.abc import Iterable

#: How a reaped attempt's error begins (written by the PostgreSQL storage).
_EXPIRED_LEASE = "stopped renewing its lease"

_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600)
_LATENESS_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
_ROWS_BUCKETS = (1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000)
#: Runs whose DAG id the metrics remember (task rows do not carry it).
_RUN_CACHE = 10_000


class Metrics:
    """One app's metrics; :meth:`on_commit` is a commit listener of the scheduler."""

    def __init__(self, context: WebContext) -> None:
        self.context = context
        self.registry = CollectorRegistry()
        r = self.registry
        self.attempts = Counter(
            "ppacer_task_attempts_finished",
            "Task attempts that ended, by DAG and status (counted by this process's engine)",
            ["dag_id", "status"],
            registry=r,
        )
        self.runs = Counter(
            "ppacer_runs_finished",
            "Runs that ended, by DAG and status (counted by this process's engine)",
            ["dag_id", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "ppacer_task_attempt_duration_seconds",
            "How long task attempts ran, by DAG",
            ["dag_id"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.lateness = Histogram(
            "ppacer_schedule_lateness_seconds",
            "From a scheduled run's schedule point to its start, by DAG",
            ["dag_id"],
            buckets=_LATENESS_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "ppacer_commit_duration_seconds",
            "How long one state-machine commit (one storage transaction) took",
            buckets=_COMMIT_BUCKETS,
            registry=r,
        )
        self.commit_rows = Histogram(
            "ppacer_commit_rows",
            "Rows written by one state-machine commit (its batch size)",
            buckets=_ROWS_BUCKETS,
            registry=r,
        )
        self.expired_leases = Counter(
            "ppacer_expired_leases",
            "Attempts given up because their process stopped renewing its lease (PostgreSQL)",
            registry=r,
        )
        self._dag_of_run: dict[int, str] = {}
        self._scrape = _ScrapeCollector(context)
        r.register(self._scrape)
        if context.scheduler is not None:
            context.scheduler._add_commit_listener(self.on_commit)

    def on_commit(self, changes: Changes, seconds: float) -> None:
        """Count what one commit did; runs on the event loop, so cheap."""
        self.commit_seconds.observe(seconds)
        self.commit_rows.observe(len(changes.task_runs) + len(changes.dag_runs) + len(changes.logs))
        dag_of_run = self._dag_of_run
        for run in changes.dag_runs:
            dag_of_run[run.id] = run.dag_id
            started = run.started_at
            if (
                started is not None
                and run.status is DagRunStatus.running
                and run.trigger is RunTrigger.schedule
            ):
                late = (started - run.logical_time).total_seconds()
                self.lateness.labels(run.dag_id).observe(max(late, 0.0))
        for tr in changes.task_runs:
            if not tr.status.finished:
                continue
            dag_id = dag_of_run.get(tr.run_id, "")
            self.attempts.labels(dag_id, tr.status.value).inc()
            if tr.started_at is not None and tr.finished_at is not None:
                self.duration.labels(dag_id).observe(
                    (tr.finished_at - tr.started_at).total_seconds()
                )
            if tr.status is TaskStatus.interrupted and _EXPIRED_LEASE in (tr.error or ""):
                self.expired_leases.inc()
        for run in changes.dag_runs:
            if run.status.finished:
                self.runs.labels(run.dag_id, run.status.value).inc()
                dag_of_run.pop(run.id, None)
        if len(dag_of_run) > _RUN_CACHE:  # runs that never finished here (a crash)
            for run_id in sorted(dag_of_run)[: len(dag_of_run) - _RUN_CACHE]:
                del dag_of_run[run_id]

    async def render(self, request: Request) -> Response:
        await self._scrape.refresh()
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(self.registry), media_type=content_type)


class _ScrapeCollector(Collector):
    """What is read from storage and the scheduler at each scrape (prometheus-client
    collects synchronously, so the reads happen first, in :meth:`refresh`)."""

    def __init__(self, context: WebContext) -> None:
        self.context = context
        self.active: dict[tuple[str, str], int] = {}
        self.counts: StorageCounts | None = None
        self.processes = 0

    async def refresh(self) -> None:
        context = self.context
        active: dict[tuple[str, str], int] = {}
        for run in await context.storage.active_runs():
            key = (run.dag_id, run.status.value)
            active[key] = active.get(key, 0) + 1
        self.active = active
        self.counts = await context.storage.counts()
        self.processes = len(await live_processes(context, now_utc(context)))

    def collect(self) -> Iterable[Metric]:
        active = GaugeMetricFamily(
            "ppacer_runs_active",
            "Queued and running runs, by DAG and status",
            labels=["dag_id", "status"],
        )
        for (dag_id, status), n in sorted(self.active.items()):
            active.add_metric([dag_id, status], n)
        yield active
        if self.counts is not None:
            rows = GaugeMetricFamily(
                "ppacer_storage_rows", "Rows in the storage, by table", labels=["table"]
            )
            for table in ("dags", "dag_runs", "task_runs", "task_logs", "schedule_events"):
                rows.add_metric([table], getattr(self.counts, table))
            yield rows
        yield GaugeMetricFamily(
            "ppacer_live_processes",
            "Scheduler processes serving the storage",
            value=self.processes,
        )
        scheduler = self.context.scheduler
        if scheduler is None:
            return
        stats = scheduler.statistics()
        for name, help_text, value in (
            ("queue_depth", "Ready task attempts waiting for a worker", stats.queued_tasks),
            ("running_tasks", "Task attempts running in this process", stats.running_tasks),
            ("running_threads", "Blocking tasks running in threads", stats.running_threads),
            ("engine_active_runs", "Runs this process's engine is running", stats.active_runs),
        ):
            yield GaugeMetricFamily(f"ppacer_{name}", help_text, value=value)
        for name, help_text, value in (
            ("engine_tasks_finished", "Task attempts this engine finished", stats.tasks_finished),
            ("engine_runs_finished", "Runs this engine finished", stats.runs_finished),
            ("engine_commits", "Storage transactions this engine committed", stats.commits),
            ("engine_committed_rows", "Rows this engine committed", stats.committed_rows),
        ):
            yield CounterMetricFamily(f"ppacer_{name}", help_text, value=value)


async def metrics(request: Request) -> Response:
    context = web_context(request)
    assert context.metrics is not None
    return await context.metrics.render(request)
