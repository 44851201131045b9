"""``GET /metrics``: Prometheus text, from a registry of the app's own.

Two sources. What the engine commits (embedded mode: the app listens to the state
machine's commits) feeds counters and histograms as it happens: attempts and runs
finished by DAG and status, attempt durations, schedule lateness, commit latency and
batch size, expired leases. What can be read at any time (both modes) is read at
scrape: active runs by DAG and status, row counts, live scheduler processes, and in
embedded mode ``Scheduler.statistics()`` (queue depth, running tasks, ...).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from datetime import timedelta
from functools import partial
from itertools import groupby
from operator import attrgetter, sub
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from .._enums import DagRunStatus, RunTrigger, TaskStatus
from .._structures import Changes, StorageCounts, TaskRun
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
_FINISHED = frozenset(status for status in TaskStatus if status.finished)
_RUN_AND_STATUS = attrgetter("run_id", "status")
_RUN_ID = attrgetter("run_id")
_STARTED_AT = attrgetter("started_at")
_FINISHED_AT = attrgetter("finished_at")
#: Runs whose DAG id the metrics remember (task rows do not carry it).
_RUN_CACHE = 10_000


class _Histogram:
    """Bucket counts kept by hand: an observation is a bisect and two additions, a
    fraction of what a locked ``prometheus_client.Histogram`` costs on the hot path."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(running)))
        return out


class Metrics(Collector):
    """One app's metrics; :meth:`on_commit` is a commit listener of the scheduler.

    The engine-fed numbers are plain counts updated on each commit and turned into
    metric families at scrape (:meth:`collect`)."""

    def __init__(self, context: WebContext) -> None:
        self.context = context
        self.registry = CollectorRegistry()
        self.attempts: dict[tuple[str, str], int] = {}
        self.runs: dict[tuple[str, str], int] = {}
        self.durations: dict[str, _Histogram] = {}
        self.lateness: dict[str, _Histogram] = {}
        self.commit_seconds = _Histogram(_COMMIT_BUCKETS)
        self.commit_rows = _Histogram(_ROWS_BUCKETS)
        self.expired_leases = 0
        self._dag_of_run: dict[int, str] = {}
        self._scrape = _ScrapeCollector(context)
        self.registry.register(self)
        self.registry.register(self._scrape)
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
                late = max((started - run.logical_time).total_seconds(), 0.0)
                self._histogram(self.lateness, run.dag_id, _LATENESS_BUCKETS).observe(late)
        # Per attempt only what must be: C-level counting and one tight loop for the
        # durations, grouped by run (a commit mostly holds attempts of a few runs).
        finished = [tr for tr in changes.task_runs if tr.status in _FINISHED]
        if finished:
            attempts = self.attempts
            for (run_id, status), n in Counter(map(_RUN_AND_STATUS, finished)).items():
                key = (dag_of_run.get(run_id, ""), status.value)
                attempts[key] = attempts.get(key, 0) + n
                if status is TaskStatus.interrupted:
                    self._count_expired_leases(finished, run_id)
            bucket_of = partial(bisect_left, _DURATION_BUCKETS)
            for run_id, group in groupby(finished, key=_RUN_ID):
                timed = [tr for tr in group if tr.started_at and tr.finished_at]
                if not timed:
                    continue
                # map() keeps the per-attempt arithmetic in C.
                durations = list(
                    map(
                        timedelta.total_seconds,
                        map(sub, map(_FINISHED_AT, timed), map(_STARTED_AT, timed)),
                    )
                )
                histogram = self._histogram(
                    self.durations, dag_of_run.get(run_id, ""), _DURATION_BUCKETS
                )
                counts = histogram.counts
                for bucket, n in Counter(map(bucket_of, durations)).items():
                    counts[bucket] += n
                histogram.total += math.fsum(durations)
        for run in changes.dag_runs:
            if run.status.finished:
                key = (run.dag_id, run.status.value)
                self.runs[key] = self.runs.get(key, 0) + 1
                dag_of_run.pop(run.id, None)
        if len(dag_of_run) > _RUN_CACHE:  # runs that never finished here (a crash)
            for run_id in sorted(dag_of_run)[: len(dag_of_run) - _RUN_CACHE]:
                del dag_of_run[run_id]

    def _count_expired_leases(self, finished: list[TaskRun], run_id: int) -> None:
        for tr in finished:
            if (
                tr.run_id == run_id
                and tr.status is TaskStatus.interrupted
                and _EXPIRED_LEASE in (tr.error or "")
            ):
                self.expired_leases += 1

    @staticmethod
    def _histogram(
        histograms: dict[str, _Histogram], dag_id: str, bounds: tuple[float, ...]
    ) -> _Histogram:
        histogram = histograms.get(dag_id)
        if histogram is None:
            histogram = histograms[dag_id] = _Histogram(bounds)
        return histogram

    def collect(self) -> Iterable[Metric]:
        for name, help_text, counts in (
            (
                "ppacer_task_attempts_finished",
                "Task attempts that ended, by DAG and status (counted by this process's engine)",
                self.attempts,
            ),
            (
                "ppacer_runs_finished",
                "Runs that ended, by DAG and status (counted by this process's engine)",
                self.runs,
            ),
        ):
            family = CounterMetricFamily(name, help_text, labels=["dag_id", "status"])
            for (dag_id, status), n in sorted(counts.items()):
                family.add_metric([dag_id, status], n)
            yield family
        for name, help_text, by_dag in (
            (
                "ppacer_task_attempt_duration_seconds",
                "How long task attempts ran, by DAG",
                self.durations,
            ),
            (
                "ppacer_schedule_lateness_seconds",
                "From a scheduled run's schedule point to its start, by DAG",
                self.lateness,
            ),
        ):
            histograms = HistogramMetricFamily(name, help_text, labels=["dag_id"])
            for dag_id, histogram in sorted(by_dag.items()):
                histograms.add_metric([dag_id], histogram.buckets(), histogram.total)
            yield histograms
        for name, help_text, histogram in (
            (
                "ppacer_commit_duration_seconds",
                "How long one state-machine commit (one storage transaction) took",
                self.commit_seconds,
            ),
            (
                "ppacer_commit_rows",
                "Rows written by one state-machine commit (its batch size)",
                self.commit_rows,
            ),
        ):
            yield HistogramMetricFamily(
                name, help_text, buckets=histogram.buckets(), sum_value=histogram.total
            )
        yield CounterMetricFamily(
            "ppacer_expired_leases",
            "Attempts given up because their process stopped renewing its lease (PostgreSQL)",
            value=self.expired_leases,
        )

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
