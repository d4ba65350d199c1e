"""The SQLite store on its own: transactions survive cancelled callers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lovewire.storage.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "lovewire.db")
    await store.open()
    yield store
    await store.close()


async def test_unit_cancelled_while_beginning_leaves_no_transaction(store: SqliteStore) -> None:
    """A caller cancelled during BEGIN does not leave the writer inside a transaction."""

    async def write() -> None:
        async with store.unit() as tx:
            await tx.users.create("13800000001", "a", 0, "1990-01-01", 0)

    task = asyncio.create_task(write())
    await asyncio.sleep(0)  # let it take the lock and send BEGIN
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with store.unit() as tx:
        user = await tx.users.create("13800000002", "b", 1, "1990-01-01", 0)
    assert user.tel == "13800000002"


async def test_read_cancelled_while_beginning_leaves_reader_usable(store: SqliteStore) -> None:
    """Readers given back after a cancelled BEGIN can start a snapshot again."""

    async def read() -> None:
        async with store.read() as tx:
            await tx.users.get(1)

    for _ in range(3):
        task = asyncio.create_task(read())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    for _ in range(3):
        async with store.read() as tx:
            assert await tx.users.get(1) is None


async def test_unit_exception_rolls_back(store: SqliteStore) -> None:
    """An exception inside a unit leaves nothing written."""
    with pytest.raises(RuntimeError):
        async with store.unit() as tx:
            await tx.users.create("13800000003", "c", 0, "1990-01-01", 0)
            raise RuntimeError("boom")
    async with store.read() as tx:
        assert await tx.users.by_tel("13800000003") is None


async def test_concurrent_units_share_commits_and_all_persist(tmp_path: Path) -> None:
    """Many units at once: each returns once durable; a failing one leaves the others whole."""
    store = SqliteStore(tmp_path / "group.db")
    await store.open()

    async def write(i: int) -> None:
        async with store.unit() as tx:
            await tx.users.create(f"1380000{i:04d}", f"u{i}", 0, "1990-01-01", 0)
            if i % 10 == 0:
                raise ValueError("refused")
        async with store.read() as tx:  # visible to readers once the unit returned
            assert await tx.users.by_tel(f"1380000{i:04d}") is not None

    results = await asyncio.gather(*(write(i) for i in range(200)), return_exceptions=True)
    assert sum(isinstance(r, ValueError) for r in results) == 20
    assert all(r is None or isinstance(r, ValueError) for r in results)
    await store.close()
    reopened = SqliteStore(tmp_path / "group.db")
    await reopened.open()
    try:
        async with reopened.read() as tx:
            kept = await tx.users.get_many(range(1, 400))
        assert sorted(u.tel for u in kept.values()) == [
            f"1380000{i:04d}" for i in range(200) if i % 10
        ]
    finally:
        await reopened.close()
