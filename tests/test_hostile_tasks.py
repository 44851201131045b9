"""One task must never take the scheduler down: whatever it returns, raises or logs
ends in a stored outcome for that attempt, on every storage."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest

from ppacer_async import DAG, DagRunStatus, Scheduler, TaskContext, TaskStatus, _storable, task
from ppacer_async._structures import Changes
from ppacer_async.storage import MemoryStorage

from .conftest import StorageFactory

pytestmark = pytest.mark.anyio

BAD = "bad\ud800name"


def deep_list(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


def hostile_dag() -> DAG:
    @task
    async def raises_surrogate(ctx: TaskContext) -> None:
        raise FileNotFoundError(f"no such file: {BAD}")

    @task
    def raises_surrogate_in_thread(ctx: TaskContext) -> None:
        raise ValueError(BAD)

    @task
    async def logs_surrogate(ctx: TaskContext) -> str:
        ctx.log.info("listing %s", BAD)
        ctx.log.warning("nul \x00 here")
        return "ok"

    @task
    async def returns_surrogate(ctx: TaskContext) -> str:
        return BAD

    @task
    async def returns_surrogate_key(ctx: TaskContext) -> dict[str, object]:
        return {BAD: [BAD, "a\x00b"], "fine": 1}

    @task
    async def returns_deep_list(ctx: TaskContext) -> object:
        return deep_list(100_000)

    @task
    async def exits(ctx: TaskContext) -> None:
        raise SystemExit(3)

    @task
    def exits_in_thread(ctx: TaskContext) -> None:
        raise SystemExit(4)

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    @task
    async def raises_unprintable(ctx: TaskContext) -> None:
        raise Unprintable

    @task
    async def downstream(ctx: TaskContext) -> object:
        return ctx.upstream["returns_surrogate_key"]

    return DAG("hostile").add(
        raises_surrogate,
        raises_surrogate_in_thread,
        logs_surrogate,
        returns_surrogate,
        returns_surrogate_key >> downstream,
        returns_deep_list,
        exits,
        exits_in_thread,
        raises_unprintable,
    )


def healthy_dag() -> DAG:
    @task
    async def first(ctx: TaskContext) -> int:
        await anyio.lowlevel.checkpoint()
        return 1

    @task
    def second(ctx: TaskContext) -> int:
        return int(ctx.upstream["first"]) + 1

    return DAG("healthy").add(first >> second)


async def test_hostile_output_is_stored_as_failed_or_replaced_beside_a_healthy_dag(
    storage_factory: StorageFactory,
) -> None:
    storage = storage_factory()
    async with Scheduler([hostile_dag(), healthy_dag()], storage=storage) as scheduler:
        healthy = [await scheduler.trigger("healthy") for _ in range(5)]
        bad = await scheduler.trigger("hostile")
        more = [await scheduler.trigger("healthy") for _ in range(5)]
        for run in [*healthy, *more]:
            done = await scheduler.wait_for_run(run.id, timeout=10)
            assert done.status is DagRunStatus.success
        done = await scheduler.wait_for_run(bad.id, timeout=10)
        assert done.status is DagRunStatus.failed
        # Still serving: a run after the hostile one succeeds too.
        after = await scheduler.trigger("healthy")
        assert (await scheduler.wait_for_run(after.id, timeout=10)).status is (DagRunStatus.success)
    async with Scheduler([], storage=storage_factory()) as reader:
        rows = {tr.task_id: tr for tr in await reader.task_runs(bad.id)}
        logs = await reader.logs(bad.id)

    for task_id in ("raises_surrogate", "raises_surrogate_in_thread"):
        row = rows[task_id]
        assert row.status is TaskStatus.failed
        assert "bad\ufffdname" in (row.error or "")
        assert "replaced with U+FFFD" in (row.error or "")

    assert rows["logs_surrogate"].status is TaskStatus.success
    messages = [r.message for r in logs if r.task_id == "logs_surrogate"]
    assert messages[0].startswith("listing bad\ufffdname")
    assert "1 character that cannot be stored" in messages[0]
    assert messages[1].startswith("nul \ufffd here")

    assert rows["returns_surrogate"].status is TaskStatus.success
    assert rows["returns_surrogate"].result == "bad\ufffdname"
    noted = [r for r in logs if r.task_id == "returns_surrogate"]
    assert noted and noted[0].level == "WARNING"
    assert "1 character that cannot be stored" in noted[0].message

    expected = {"bad\ufffdname": ["bad\ufffdname", "a\ufffdb"], "fine": 1}
    assert rows["returns_surrogate_key"].result == expected
    assert rows["downstream"].status is TaskStatus.success
    assert rows["downstream"].result == expected

    for task_id, text in (
        ("exits", "SystemExit: 3"),
        ("exits_in_thread", "SystemExit: 4"),
        ("raises_unprintable", "Unprintable"),
    ):
        assert rows[task_id].status is TaskStatus.failed
        assert text in (rows[task_id].error or ""), rows[task_id].error

    deep = rows["returns_deep_list"]
    assert deep.status is TaskStatus.failed
    assert "nested too deeply" in (deep.error or "")
    assert deep.result is None


@attrs.define(eq=False)
class RefusingStorage(MemoryStorage):
    """A memory storage that, like a database with a limit of its own, refuses any
    commit holding a result equal to ``refused``."""

    refused: object = "refused by the database"
    refusals: int = 0

    async def commit(self, changes: Changes) -> None:
        if any(tr.result == self.refused for tr in changes.task_runs):
            self.refusals += 1
            raise ValueError("value too long for this column")
        await super().commit(changes)


async def test_a_row_the_database_refuses_fails_its_attempt_not_the_process() -> None:
    storage = RefusingStorage()

    @task
    async def refused(ctx: TaskContext) -> str:
        return "refused by the database"

    @task
    async def after(ctx: TaskContext) -> None:
        pass

    dag = DAG("refused").add(refused >> after)
    async with Scheduler([dag, healthy_dag()], storage=storage) as scheduler:
        healthy = [await scheduler.trigger("healthy") for _ in range(3)]
        bad = await scheduler.trigger("refused")
        for run in healthy:
            done = await scheduler.wait_for_run(run.id, timeout=10)
            assert done.status is DagRunStatus.success
        done = await scheduler.wait_for_run(bad.id, timeout=10)
        assert done.status is DagRunStatus.failed
        later = await scheduler.trigger("healthy")
        done = await scheduler.wait_for_run(later.id, timeout=10)
        assert done.status is DagRunStatus.success
        rows = {tr.task_id: tr for tr in await scheduler.task_runs(bad.id)}
    assert storage.refusals >= 2
    row = rows["refused"]
    assert row.status is TaskStatus.failed
    assert row.result is None
    assert "could not be stored: ValueError: value too long" in (row.error or "")


@pytest.mark.postgres
async def test_an_outcome_postgresql_refuses_fails_its_attempt_not_the_worker(
    schema: str,
) -> None:
    from ppacer_async.storage.postgres import PostgresStorage

    from .conftest import POSTGRES_DSN

    def refuse(rows: Any) -> None:
        if any(tr.result == "refused by the database" for tr in rows):
            raise ValueError("value too long for this column")

    class RefusingPostgres(PostgresStorage):
        """Refuses any write holding the result ``refused by the database``: a report,
        or a commit of the scheduling process applying its own workers' outcomes."""

        async def report(self, worker_id: str, outcomes: Any, logs: Any, **kw: Any) -> Any:
            refuse(outcomes)
            return await super().report(worker_id, outcomes, logs, **kw)

        async def commit(self, changes: Any) -> None:
            refuse(changes.task_runs)
            await super().commit(changes)

        async def commit_claiming(self, changes: Any, claim: Any) -> Any:
            refuse(changes.task_runs)
            return await super().commit_claiming(changes, claim)

    @task
    async def refused(ctx: TaskContext) -> str:
        return "refused by the database"

    storage = RefusingPostgres(dsn=POSTGRES_DSN, schema=schema)
    async with Scheduler([DAG("refused").add(refused), healthy_dag()], storage=storage) as s:
        bad = await s.trigger("refused")
        good = await s.trigger("healthy")
        assert (await s.wait_for_run(bad.id, timeout=10)).status is DagRunStatus.failed
        assert (await s.wait_for_run(good.id, timeout=10)).status is DagRunStatus.success
        (row,) = await s.task_runs(bad.id)
    assert row.status is TaskStatus.failed
    assert "could not be stored: ValueError: value too long" in (row.error or "")


def test_a_result_keeps_what_can_be_stored_and_replaces_only_what_cannot() -> None:
    ids = list(range(10_000))
    stored, replaced = _storable.result(ids)
    assert stored == ids and stored is not ids and replaced == 0  # a copy, as decoded
    assert _storable.result([1, True, None]) == ([1, True, None], 0)
    assert _storable.result(["a\x00b", 1]) == (["a\ufffdb", 1], 1)
    assert _storable.result(["\\u0000", "\\\\u0000"]) == (["\\u0000", "\\\\u0000"], 0)
    assert _storable.result({"k": ["\ud800é", "\x00"]}) == ({"k": ["\ufffdé", "\ufffd"]}, 2)
