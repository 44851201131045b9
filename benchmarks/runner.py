"""The repetition loop: each workload, its baseline and every storage, ``repeat`` times."""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Sequence

from ._common import POSTGRES_DSN_ENV, Metric, Settings, Workload, median
from .report import BASELINE, Row, format_number
from .targets import target_for
from .w1_fanout import FanOut
from .w2_chain import Chain
from .w3_many_runs import ManyRuns
from .w4_threads import Threads
from .w5_schedule import SchedulePrecision
from .w6_scale import Scale
from .w7_scale_out import ScaleOut
from .w8_map import MappedFanOut
from .w9_million import Million

#: Every workload, by the key ``--only`` takes.
WORKLOADS: dict[str, type[Workload]] = {
    cls.key: cls
    for cls in (
        FanOut,
        Chain,
        ManyRuns,
        Threads,
        SchedulePrecision,
        Scale,
        ScaleOut,
        MappedFanOut,
        Million,
    )
}

Progress = Callable[[str], None]


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def run_workload(
    workload: Workload, storages: Sequence[str], progress: Progress = print_progress
) -> list[Row]:
    """Measure one workload: per repetition, the baseline first, then each storage.

    A storage whose repetition raises is not measured again; its rows carry the error.
    """
    metrics = list(workload.metrics())
    base: dict[str, list[float]] = defaultdict(list)
    samples: dict[str, dict[str, list[float]]] = {s: defaultdict(list) for s in storages}
    errors: dict[str, str] = {}
    repeat = workload.repetitions()
    for rep in range(1, repeat + 1):
        found = await workload.baseline()
        if found is not None:
            for key, value in found.items():
                base[key].append(value)
            progress(f"{workload.key} {rep}/{repeat} {BASELINE:8} {_brief(metrics, found)}")
        for storage in storages:
            if storage in errors:
                continue
            try:
                found = await workload.repetition(storage)
            except Exception as exc:
                errors[storage] = f"{type(exc).__name__}: {exc}"
                progress(f"{workload.key} {rep}/{repeat} {storage:8} failed: {errors[storage]}")
                continue
            for key, value in found.items():
                samples[storage][key].append(value)
            progress(f"{workload.key} {rep}/{repeat} {storage:8} {_brief(metrics, found)}")

    rows = []
    if base:
        rows += [_row(workload, m, BASELINE, base[m.key], None) for m in metrics if m.baseline]
    for storage in storages:
        for metric in metrics:
            baseline = median(base[metric.key]) if metric.baseline and base[metric.key] else None
            rows.append(
                _row(
                    workload,
                    metric,
                    storage,
                    samples[storage].get(metric.key, []),
                    baseline,
                    errors.get(storage),
                )
            )
    return rows


def _brief(metrics: Sequence[Metric], found: dict[str, float]) -> str:
    shown = [m for m in metrics if m.key in found][:3]
    return ", ".join(f"{m.label} {format_number(found[m.key], m.unit)}" for m in shown)


def _row(
    workload: Workload,
    metric: Metric,
    storage: str,
    values: Sequence[float],
    baseline: float | None,
    error: str | None = None,
) -> Row:
    value = median(values) if values else None
    ratio = None
    if value is not None and baseline is not None and value > 0 and baseline > 0:
        ratio = value / baseline if metric.higher_is_better else baseline / value
    target = None if storage == BASELINE else target_for(workload.key, metric.key, storage)
    return Row(
        workload=workload.key,
        title=workload.title,
        storage=storage,
        metric=metric.key,
        label=metric.label,
        unit=metric.unit,
        higher_is_better=metric.higher_is_better,
        values=tuple(values),
        median=value,
        baseline=baseline,
        ratio=ratio,
        target=None if target is None else target.describe(),
        met=None if target is None or error is not None else target.met(value, ratio),
        error=error,
    )


async def run_suite(
    settings: Settings,
    keys: Sequence[str],
    storages: Sequence[str],
    progress: Progress = print_progress,
) -> tuple[list[Row], dict[str, dict[str, object]]]:
    """Run the chosen workloads; return the rows and what each workload was sized at
    (or, under ``"skipped"``, why it did not run)."""
    rows: list[Row] = []
    described: dict[str, dict[str, object]] = {}
    for key in keys:
        cls = WORKLOADS[key]
        chosen = [s for s in storages if s in cls.storages]
        if cls.full_only and settings.quick:
            described[key] = {"title": cls.title, "skipped": "skipped: full run only"}
            progress(f"{key} {cls.title}: {described[key]['skipped']}")
            continue
        if not chosen:
            described[key] = {"title": cls.title, "skipped": skip_reason(cls, settings)}
            progress(f"{key} {cls.title}: {described[key]['skipped']}")
            continue
        workload = cls(settings)  # builds the graphs, outside any timing
        described[key] = {"title": workload.title, **workload.describe()}
        progress(f"{key} {workload.title}: {described[key]}")
        rows += await run_workload(workload, chosen, progress)
    return rows, described


def skip_reason(cls: type[Workload], settings: Settings) -> str:
    """Why a workload did not run: none of the storages it runs on was chosen."""
    needs = " or ".join(cls.storages)
    if "postgres" in cls.storages and not settings.postgres_dsn:
        how = f"give --postgres-dsn DSN (or ${POSTGRES_DSN_ENV})"
    else:
        how = f"add {needs} to --storage"
    return f"skipped: it runs on {needs} only; {how}"
