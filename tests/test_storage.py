"""The SQLite store on its own: transactions survive cancelled callers."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from lovewire.storage.sqlite import SqliteRepo, SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "lovewire.db")
    await store.open()
    yield store
    await store.close()


def _raw(repo: object) -> Any:
    """The SQLite connection behind a repository, to break a transaction on purpose."""
    assert isinstance(repo, SqliteRepo)
    return repo.db


@contextmanager
def _locked_by_another_process(path: Path) -> Iterator[sqlite3.Connection]:
    """Hold the database's write lock from another connection, as another process would."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield other
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()


async def _writer_waits(store: SqliteStore) -> None:
    """Until the writer's BEGIN is waiting in its thread for the lock."""
    statements: list[str] = []
    loop = asyncio.get_running_loop()
    waiting: asyncio.Future[None] = loop.create_future()

    def waits() -> None:
        if not waiting.done():
            waiting.set_result(None)

    def trace(sql: str) -> None:
        if sql == "BEGIN IMMEDIATE" and threading.current_thread() is not threading.main_thread():
            loop.call_soon_threadsafe(waits)
        statements.append(sql)

    assert store._writer is not None
    await store._writer.set_trace_callback(trace)
    await waiting


async def test_unit_waits_for_a_lock_another_process_holds(store: SqliteStore) -> None:
    """BEGIN waits in the writer's thread while another process writes: reads go on."""
    with _locked_by_another_process(store.path) as other:

        async def write() -> None:
            async with store.unit() as tx:
                await tx.users.create("13800000001", "a", 0, "1990-01-01", 0)

        task = asyncio.create_task(write())
        await _writer_waits(store)
        async with store.read() as tx:
            assert await tx.users.get(1) is None
        other.execute("COMMIT")
        await task
    async with store.read() as tx:
        user = await tx.users.get(1)
    assert user is not None and user.tel == "13800000001"


async def test_unit_cancelled_while_beginning_leaves_no_transaction(store: SqliteStore) -> None:
    """A caller cancelled during a waiting BEGIN does not leave the writer in a transaction."""
    with _locked_by_another_process(store.path) as other:

        async def write() -> None:
            async with store.unit() as tx:
                await tx.users.create("13800000001", "a", 0, "1990-01-01", 0)

        task = asyncio.create_task(write())
        await _writer_waits(store)
        task.cancel()
        other.execute("COMMIT")
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


def _sqlite_temp_files() -> list[str]:
    """The temporary files SQLite holds open in this process (it names them etilqs_*)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "etilqs_" in target:
            found.append(target)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc/self/fd (Linux)")
async def test_a_unit_changing_many_pages_makes_no_temporary_file(store: SqliteStore) -> None:
    """A unit's savepoint journal stays in memory however many pages the unit changes: on
    disk it would be a file made and deleted by the event loop's thread, group after group."""
    async with store.unit() as tx:
        for i in range(2000):
            await tx.users.create(f"1380000{i:04d}", "n" * 100, 0, "1990-01-01", 0)
    async with store.unit() as tx:
        # Every page of the table, each journaled by the unit's savepoint (about 60 pages,
        # where SQLite moves a journal to a file past 64 KiB).
        await _raw(tx.users).execute("UPDATE users SET nickname = 'm' || nickname")
        assert _sqlite_temp_files() == []
    async with store.read() as tx:
        user = await tx.users.by_tel("13800001999")
        assert user is not None and user.nickname == "m" + "n" * 100


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


async def _cancel_at(store: SqliteStore, sql: str, task: asyncio.Task[None]) -> None:
    """Cancel `task` the moment the writer starts running `sql` (it is awaiting it then)."""
    loop = asyncio.get_running_loop()
    db = store._writer
    assert db is not None

    def trace(statement: str) -> None:
        if statement == sql:
            loop.call_soon_threadsafe(task.cancel)

    await db.set_trace_callback(trace)


async def test_caller_cancelled_awaiting_its_group_does_not_fail_the_others(
    store: SqliteStore,
) -> None:
    """A unit's caller cancelled while its group is still open leaves the group to the rest."""
    a_in, a_go, b_in, b_go = (asyncio.Event() for _ in range(4))

    async def first() -> None:
        async with store.unit() as tx:
            await tx.users.create("13800000011", "a", 0, "1990-01-01", 0)
            a_in.set()
            await a_go.wait()

    async def second() -> None:
        async with store.unit() as tx:
            await tx.users.create("13800000012", "b", 0, "1990-01-01", 0)
            b_in.set()
            await b_go.wait()

    a = asyncio.create_task(first())
    await a_in.wait()
    b = asyncio.create_task(second())
    await asyncio.sleep(0)  # b queues behind a, so a's group stays open
    a_go.set()
    await b_in.wait()  # a released its unit and awaits the group's commit
    a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await a
    b_go.set()
    await b
    async with store.read() as tx:
        assert await tx.users.by_tel("13800000012") is not None


async def test_unit_after_a_lost_group_transaction_is_kept_or_refused_whole(
    store: SqliteStore,
) -> None:
    """When SQLite drops the group's transaction, the next unit is not autocommitted unseen."""
    a_in, a_go = asyncio.Event(), asyncio.Event()

    async def lose_transaction() -> None:
        async with store.unit() as tx:
            await tx.users.create("13800000021", "a", 0, "1990-01-01", 0)
            a_in.set()
            await a_go.wait()
            # ON CONFLICT ROLLBACK ends the whole transaction, like a full disk or I/O error.
            await _raw(tx.users).execute(
                "INSERT OR ROLLBACK INTO users (tel, nickname, sex, birthday, created_ts)"
                " VALUES ('13800000021', 'a', 0, '1990-01-01', 0)"
            )

    async def write() -> None:
        async with store.unit() as tx:
            await tx.users.create("13800000022", "b", 0, "1990-01-01", 0)

    a = asyncio.create_task(lose_transaction())
    await a_in.wait()
    b = asyncio.create_task(write())
    await asyncio.sleep(0)  # b queues behind a: same group
    a_go.set()
    results = await asyncio.gather(a, b, return_exceptions=True)
    assert isinstance(results[0], Exception)
    async with store.read() as tx:
        kept = await tx.users.by_tel("13800000022") is not None
    assert kept == (results[1] is None), results[1]
    assert kept
    async with store.unit() as tx:  # the writer is usable afterwards
        await tx.users.create("13800000023", "c", 0, "1990-01-01", 0)


async def test_group_commits_under_continuous_failing_load(store: SqliteStore) -> None:
    """A successful unit is committed within GROUP_MAX units even if the queue never empties."""
    from lovewire.storage.sqlite import GROUP_MAX

    a_in, a_go = asyncio.Event(), asyncio.Event()
    ran = 0
    total = 3 * GROUP_MAX
    chain: list[asyncio.Task[None]] = []

    async def first() -> int:
        async with store.unit() as tx:
            await tx.users.create("13800000031", "a", 0, "1990-01-01", 0)
            a_in.set()
            await a_go.wait()
        return ran

    async def refused(i: int) -> None:
        nonlocal ran
        async with store.unit() as tx:
            ran += 1
            await tx.users.get(1)
            if i + 1 < total:
                chain.append(asyncio.create_task(refused(i + 1)))
                await asyncio.sleep(0)  # the next one queues before this one ends
            raise ValueError("refused")

    a = asyncio.create_task(first())
    await a_in.wait()
    chain.append(asyncio.create_task(refused(0)))
    await asyncio.sleep(0)
    a_go.set()
    ran_when_committed = await a
    await asyncio.gather(*chain, return_exceptions=True)
    while len(chain) < total or not all(t.done() for t in chain):
        await asyncio.gather(*chain, return_exceptions=True)
    assert ran_when_committed <= GROUP_MAX


async def test_commit_failure_then_cancel_still_answers_the_group(store: SqliteStore) -> None:
    """The committing caller cancelled while rolling a failed commit back: the others learn."""
    from lovewire.storage.errors import StoreError

    a_in, a_go = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with store.unit() as tx:
            await tx.users.create("13800000041", "a", 0, "1990-01-01", 0)
            a_in.set()
            await a_go.wait()

    async def bad_commit() -> None:
        async with store.unit() as tx:
            await _raw(tx.users).execute("PRAGMA defer_foreign_keys = ON")
            await tx.tokens.create(b"h", "session", 999, None, 1, 0)  # no user 999: COMMIT fails

    a = asyncio.create_task(first())
    await a_in.wait()
    b = asyncio.create_task(bad_commit())
    await asyncio.sleep(0)
    await _cancel_at(store, "ROLLBACK", b)
    a_go.set()
    with pytest.raises(asyncio.CancelledError):
        await b
    with pytest.raises(StoreError):
        await asyncio.wait_for(a, 10)
    async with store.unit() as tx:
        await tx.users.create("13800000042", "c", 0, "1990-01-01", 0)
    async with store.read() as tx:
        assert await tx.users.by_tel("13800000041") is None


async def test_upgrade_from_first_schema_keeps_data(tmp_path: Path) -> None:
    """A database made by the first release is migrated at start; its data stays."""
    import sqlite3

    from lovewire.storage.sqlite import migrations

    path = tmp_path / "old.db"
    number, _, sql = migrations()[0]
    old = sqlite3.connect(path)
    old.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
    old.execute(
        "INSERT INTO users (tel, nickname, sex, birthday, created_ts)"
        " VALUES ('13800000009', 'old', 1, '1990-01-01', 0)"
    )
    old.commit()
    old.close()
    store = SqliteStore(path)
    await store.open()
    try:
        async with store.unit() as tx:
            user = await tx.users.by_tel("13800000009")
            assert user is not None and user.nickname == "old"
            picture = await tx.pictures.create(user.id, "ab/" + "a" * 64 + ".jpg", "w", None, 0)
        async with store.read() as tx:
            assert (await tx.pictures.get(picture.id)) is not None
    finally:
        await store.close()
    latest = sqlite3.connect(path)
    try:
        assert latest.execute("PRAGMA user_version").fetchone()[0] == migrations()[-1][0]
    finally:
        latest.close()


async def test_upgrade_counts_what_was_there(tmp_path: Path) -> None:
    """Likes, comments and replies stored before the counts were kept are counted by the
    upgrade that adds them."""
    from lovewire.storage.sqlite import migrations

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    for number, _, sql in migrations():
        if number > 4:
            break
        old.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
    old.executescript(
        "INSERT INTO users (id, tel, nickname, sex, birthday, created_ts)"
        " VALUES (1, '13800000009', 'a', 1, '1990-01-01', 0),"
        " (2, '13800000010', 'b', 1, '1990-01-01', 0);"
        "INSERT INTO pictures (id, owner_id, path, created_ts) VALUES (7, 1, 'ab/x.jpg', 0);"
        "INSERT INTO picture_likes VALUES (7, 1, 0), (7, 2, 0);"
        "INSERT INTO picture_comments (id, picture_id, parent_id, author_id, msg, created_ts)"
        " VALUES (1, 7, NULL, 2, 'c', 0), (2, 7, 1, 1, 'r', 0), (3, 7, 1, 2, 'r', 0);"
    )
    old.close()
    store = SqliteStore(path)
    await store.open()
    try:
        async with store.read() as tx:
            [post] = await tx.pictures.feed(1, None, 20)
            [comment] = await tx.pictures.comments_of([7], 10)
        assert (post.like_count, post.comment_count, comment.reply_count) == (2, 1, 2)
    finally:
        await store.close()
