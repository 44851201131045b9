"""``async with Scheduler(...)`` and ``serve()`` raise errors as themselves, never wrapped
in an ``ExceptionGroup``: the library's own and the ones raised in the body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from ppacer_async import (
    DAG,
    PpacerError,
    Scheduler,
    StorageError,
    StorageLockedError,
    TaskContext,
    task,
)
from ppacer_async._structures import Changes
from ppacer_async.storage import MemoryStorage

from .conftest import POSTGRES_DSN


@task
async def slow(ctx: TaskContext) -> None:
    await anyio.sleep(30)


@pytest.mark.anyio
async def test_a_second_scheduler_on_one_sqlite_file_raises_storage_locked_from_async_with(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    async with Scheduler([], storage=url):
        with pytest.raises(StorageLockedError, match="another scheduler") as caught:
            async with Scheduler([], storage=url):
                pass  # pragma: no cover - refused before the body
        assert isinstance(caught.value, PpacerError)


@pytest.mark.anyio
async def test_a_file_that_is_not_a_database_raises_storage_error_from_async_with(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(StorageError):
        async with Scheduler([], storage=f"sqlite:///{path}"):
            pass  # pragma: no cover


@pytest.mark.anyio
async def test_a_foreign_postgres_schema_raises_storage_error_from_async_with(
    admin: Any, schema: str
) -> None:
    await admin.execute(f'CREATE TABLE "{schema}".users (id int)')
    with pytest.raises(StorageError, match="not ppacer-async's"):
        async with Scheduler([], storage=f"{POSTGRES_DSN}?schema={schema}"):
            pass  # pragma: no cover


@pytest.mark.anyio
async def test_the_body_s_own_exception_comes_out_of_async_with_as_itself() -> None:
    class Mine(Exception):
        pass

    with pytest.raises(Mine, match="from the body"):
        async with Scheduler([], storage="memory://"):
            raise Mine("from the body")


@pytest.mark.anyio
async def test_timeout_of_wait_for_run_in_the_body_comes_out_as_timeout_error() -> None:
    dag = DAG("slow")
    dag.add(slow)

    async def wait_too_short() -> None:
        async with Scheduler([dag], storage="memory://") as scheduler:
            run = await scheduler.trigger("slow")
            await scheduler.wait_for_run(run.id, timeout=0.05)

    with pytest.raises(TimeoutError):
        await wait_too_short()


@pytest.mark.anyio
async def test_serve_raises_storage_locked_as_itself(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    async with Scheduler([], storage=url):
        with pytest.raises(StorageLockedError):
            await Scheduler([], storage=url).serve()


class _BrokenCommits(MemoryStorage):
    async def commit(self, changes: Changes) -> None:
        raise StorageError("the disk went away")


@task
async def quick(ctx: TaskContext) -> None:
    pass


@pytest.mark.anyio
async def test_a_storage_failing_while_serving_comes_out_of_serve_as_itself() -> None:
    scheduler = Scheduler([DAG("quick").add(quick)], storage=_BrokenCommits())

    async def serve_and_trigger() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(scheduler.serve)
            await scheduler.trigger("quick")
            await anyio.sleep_forever()  # until the failing serve cancels the group

    with pytest.raises(BaseExceptionGroup) as caught:
        with anyio.fail_after(10):
            await serve_and_trigger()
    # the group is the caller's own task group's; inside it, serve raised the plain error
    (inner,) = caught.value.exceptions
    assert isinstance(inner, StorageError) and str(inner) == "the disk went away"


@pytest.mark.anyio
async def test_a_storage_failing_while_serving_comes_out_of_async_with_as_itself() -> None:
    async def use() -> None:
        async with Scheduler([DAG("quick").add(quick)], storage=_BrokenCommits()) as s:
            await s.trigger("quick")
            await anyio.sleep_forever()

    with pytest.raises(StorageError, match="the disk went away"), anyio.fail_after(10):
        await use()
