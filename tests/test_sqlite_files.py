"""The SQLite files a scheduler writes are the ones it means to: a symbolic link or a hard
link planted at the lock file or a side file is refused, and the one-scheduler rule holds
for every name of the database (symbolic or hard links)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import attrs
import pytest

from ppacer_async._exceptions import StorageError, StorageLockedError
from ppacer_async.storage.sqlite import SQLiteStorage

pytestmark = pytest.mark.anyio

VICTIM = b"root:x:0:0:root:/root:/bin/bash\n"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ppacer.db"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file that a planted link points at, which must never change."""
    path = tmp_path / "elsewhere" / "passwd"
    path.parent.mkdir()
    path.write_bytes(VICTIM)
    return path


LOCK_SCRIPT = """
import asyncio, sys
from ppacer_async._exceptions import StorageLockedError
from ppacer_async.storage.sqlite import SQLiteStorage

async def main() -> None:
    storage = SQLiteStorage(path=sys.argv[1])
    try:
        await storage.acquire_scheduler_lock()
    except StorageLockedError as exc:
        print("refused:", exc, flush=True)
        return
    print("acquired", flush=True)
    await storage.close()

asyncio.run(main())
"""


@attrs.frozen
class Done:
    returncode: int
    stdout: str
    stderr: str


async def try_lock_in_subprocess(db_path: Path) -> Done:
    with anyio.fail_after(30):
        result = await anyio.run_process(
            [sys.executable, "-c", LOCK_SCRIPT, str(db_path)], check=False
        )
    return Done(result.returncode, result.stdout.decode().strip(), result.stderr.decode())


# -- the lock file -------------------------------------------------------------------------


async def test_a_symlink_planted_at_the_lock_file_is_refused_and_its_target_untouched(
    db_path: Path, victim: Path
) -> None:
    Path(f"{db_path}.lock").symlink_to(victim)
    async with SQLiteStorage(path=str(db_path)) as storage:
        with pytest.raises(StorageError) as caught:
            await storage.acquire_scheduler_lock()
    assert not isinstance(caught.value, StorageLockedError)
    message = str(caught.value)
    assert f"{db_path}.lock" in message
    assert "symbolic link" in message
    assert "remove it" in message
    assert victim.read_bytes() == VICTIM


async def test_a_hard_link_planted_at_the_lock_file_is_refused_and_its_target_untouched(
    db_path: Path, victim: Path
) -> None:
    os.link(victim, f"{db_path}.lock")
    async with SQLiteStorage(path=str(db_path)) as storage:
        with pytest.raises(StorageError, match="has 2 names"):
            await storage.acquire_scheduler_lock()
    assert victim.read_bytes() == VICTIM


@pytest.mark.parametrize("kind", ["directory", "fifo"])
async def test_a_lock_path_that_is_not_a_regular_file_is_refused(db_path: Path, kind: str) -> None:
    lock = Path(f"{db_path}.lock")
    if kind == "directory":
        lock.mkdir()
    else:
        os.mkfifo(lock)
    async with SQLiteStorage(path=str(db_path)) as storage:
        with pytest.raises(StorageError, match="is not a regular file") as caught:
            await storage.acquire_scheduler_lock()
    assert str(lock) in str(caught.value)


# -- SQLite's side files -------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
async def test_a_symlink_planted_at_a_side_file_is_refused_before_sqlite_writes(
    db_path: Path, victim: Path, suffix: str
) -> None:
    async with SQLiteStorage(path=str(db_path)):
        pass  # an existing database: SQLite would reopen its side files
    Path(f"{db_path}{suffix}").symlink_to(victim)
    storage = SQLiteStorage(path=str(db_path))
    with pytest.raises(StorageError) as caught:
        await storage.open()
    message = str(caught.value)
    assert f"{db_path}{suffix}" in message
    assert "symbolic link" in message
    assert victim.read_bytes() == VICTIM


async def test_a_hard_link_planted_at_a_side_file_is_refused(db_path: Path, victim: Path) -> None:
    os.link(victim, f"{db_path}-wal")
    storage = SQLiteStorage(path=str(db_path))
    with pytest.raises(StorageError, match=r"-wal has 2 names"):
        await storage.open()
    assert victim.read_bytes() == VICTIM


# -- one name per database --------------------------------------------------------------


async def test_a_hard_link_to_a_served_database_refuses_a_second_scheduler_in_one_process(
    db_path: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other" / "alias.db"
    other.parent.mkdir()
    async with SQLiteStorage(path=str(db_path)) as first:
        await first.acquire_scheduler_lock()
        os.link(db_path, other)
        second = SQLiteStorage(path=str(other))
        with pytest.raises(StorageError) as caught:
            await second.acquire_scheduler_lock()
        message = str(caught.value)
        assert f"{other} has 2 names (hard links)" in message
        assert "two schedulers could serve it" in message
        assert "-samefile" in message
        with pytest.raises(StorageError, match="has 2 names"):
            await second.open()  # even to read: SQLite would use a WAL of its own
        assert await first.list_runs() == []  # the first one is not disturbed


@pytest.mark.slow
async def test_a_hard_link_to_a_served_database_refuses_a_scheduler_in_another_process(
    db_path: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other" / "alias.db"
    other.parent.mkdir()
    async with SQLiteStorage(path=str(db_path)) as storage:
        await storage.acquire_scheduler_lock()
        os.link(db_path, other)
        done = await try_lock_in_subprocess(other)
    assert done.returncode != 0
    assert f"{other} has 2 names (hard links)" in done.stderr
    os.unlink(other)
    done = await try_lock_in_subprocess(db_path)
    assert done.stdout == "acquired"


async def test_the_original_name_is_refused_too_while_a_hard_link_exists(
    db_path: Path, tmp_path: Path
) -> None:
    async with SQLiteStorage(path=str(db_path)):
        pass
    os.link(db_path, tmp_path / "alias.db")
    with pytest.raises(StorageError, match=f"{db_path} has 2 names"):
        await SQLiteStorage(path=str(db_path)).acquire_scheduler_lock()


async def test_a_symbolic_link_to_the_database_shares_its_lock(
    db_path: Path, tmp_path: Path
) -> None:
    link = tmp_path / "link.db"
    link.symlink_to(db_path)
    async with SQLiteStorage(path=str(db_path)) as first, SQLiteStorage(path=str(link)) as second:
        await first.acquire_scheduler_lock()
        with pytest.raises(StorageLockedError, match="already served by another scheduler"):
            await second.acquire_scheduler_lock()
