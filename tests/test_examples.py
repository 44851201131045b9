"""The example DAGs do what their docstrings say."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from ppacer_async import DagRunStatus, FakeClock, Scheduler, TaskRun, TaskStatus

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def example() -> Iterator[Any]:
    sys.path.insert(0, str(EXAMPLES))
    try:

        def load(name: str) -> ModuleType:
            return importlib.import_module(name)

        yield load
    finally:
        sys.path.remove(str(EXAMPLES))


def latest(rows: list[TaskRun]) -> dict[str, TaskStatus]:
    found: dict[str, TaskRun] = {}
    for tr in sorted(rows, key=lambda t: t.attempt):
        found[tr.task_id] = tr
    return {task_id: tr.status for task_id, tr in found.items()}


async def run(module: ModuleType, params: dict[str, Any], **options: Any) -> tuple[Any, Any]:
    (dag,) = module.dags
    async with Scheduler([dag], storage="memory://", **options) as scheduler:
        triggered = await scheduler.trigger(dag.dag_id, params)
        done = await scheduler.wait_for_run(triggered.id, timeout=20)
        rows = await scheduler.task_runs(triggered.id)
    return done, rows


async def test_rules_example_cleans_up_and_alerts_after_bad_data(example: Any) -> None:
    done, rows = await run(example("rules"), {"rows": -1})
    assert done.status is DagRunStatus.failed
    assert latest(rows) == {
        "check": TaskStatus.success,
        "load": TaskStatus.failed,
        "cleanup": TaskStatus.success,
        "alert": TaskStatus.success,
        "publish": TaskStatus.upstream_failed,
    }
    assert [tr.attempt for tr in rows if tr.task_id == "load"] == [1]  # not retried


async def test_rules_example_publishes_nothing_new_when_the_check_skips(example: Any) -> None:
    done, rows = await run(example("rules"), {"rows": 0})
    assert done.status is DagRunStatus.success
    assert latest(rows)["load"] is TaskStatus.skipped
    assert latest(rows)["alert"] is TaskStatus.skipped
    assert next(tr.result for tr in rows if tr.task_id == "publish") == "nothing new to publish"


@pytest.mark.parametrize(("rows", "taken"), [(5, "small_batch"), (50_000, "big_batch")])
async def test_branching_example_takes_one_branch(example: Any, rows: int, taken: str) -> None:
    done, found = await run(example("branching"), {"rows": rows})
    assert done.status is DagRunStatus.success
    other = {"small_batch", "big_batch"} - {taken}
    assert latest(found)[taken] is TaskStatus.success
    assert latest(found)[other.pop()] is TaskStatus.skipped
    assert latest(found)["report"] is TaskStatus.success


async def test_fanout_example_resizes_every_image(example: Any) -> None:
    done, rows = await run(example("fanout"), {"count": 5})
    assert done.status is DagRunStatus.success
    assert sorted(tr.task_id for tr in rows if tr.map_index is not None) == [
        f"resize[{k}]" for k in range(5)
    ]
    assert next(tr.result for tr in rows if tr.task_id == "summarise") == 5 * (
        1000 + 10 * len("photo_000.jpg")
    )


async def test_timeouts_example_ends_cancelled_with_a_note(example: Any) -> None:
    module = example("timeouts")
    (dag,) = module.dags
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    async with Scheduler([dag], storage="memory://", clock=clock) as scheduler:
        triggered = await scheduler.trigger(dag.dag_id)
        with anyio.fail_after(5):  # until crawl's start is stored
            while not await scheduler.task_runs(triggered.id):
                await anyio.lowlevel.checkpoint()
        clock.advance(timedelta(seconds=11))
        done = await scheduler.wait_for_run(triggered.id, timeout=10)
        rows = await scheduler.task_runs(triggered.id)
    assert done.status is DagRunStatus.cancelled
    assert "timed out" in (done.note or "")
    assert latest(rows) == {"crawl": TaskStatus.cancelled}


async def test_pools_example_keeps_two_loads_in_the_warehouse_at_once(example: Any) -> None:
    module = example("pools")
    done, rows = await run(module, {}, pools=module.pools)
    assert done.status is DagRunStatus.success
    edges = sorted(
        [(tr.started_at, 1) for tr in rows] + [(tr.finished_at, -1) for tr in rows],
        key=lambda edge: (edge[0], edge[1]),
    )
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    assert most == 2
    started = {tr.task_id: tr.started_at for tr in rows}
    waited = [t for task_id, t in started.items() if task_id not in {"start", "load_00", "load_01"}]
    assert started["load_urgent"] == min(waited)  # the first of those that waited for a slot


async def test_sensors_example_reports_once_its_file_and_the_other_run_are_there(
    example: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PPACER_EXAMPLE_DIR", str(tmp_path))
    sys.modules.pop("sensors", None)
    module = example("sensors")
    clock = FakeClock(datetime(2026, 3, 1, 6, 0, tzinfo=UTC))
    (tmp_path / "2026-03-01.csv").write_text("")
    async with Scheduler(module.dags, storage="memory://", clock=clock) as scheduler:
        first = await scheduler.trigger("extract")
        assert (await scheduler.wait_for_run(first.id, timeout=10)).status is DagRunStatus.success
        report = await scheduler.trigger("report")  # the same logical time: the clock stood
        clock.advance(timedelta(seconds=1))  # what its TimeSensor waits for
        done = await scheduler.wait_for_run(report.id, timeout=20)
        rows = {tr.task_id: tr for tr in await scheduler.task_runs(report.id)}
    sys.modules.pop("sensors", None)
    assert done.status is DagRunStatus.success
    assert rows["wait_for_extract"].result == first.id
    assert rows["wait_until_1s_after"].result == "2026-03-01T06:00:01+00:00"
    assert rows["report"].result.startswith(f"report on {tmp_path}")
