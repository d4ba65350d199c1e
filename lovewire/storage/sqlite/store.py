"""The SQLite store in WAL mode: one writer, a small pool of query-only readers.

The writer's statements run inline on the event loop (`inline.py`); the readers are
aiosqlite connections, each query a trip to its thread, so a long read never holds up
the loop.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite

from lovewire.security import load_secret
from lovewire.storage.base import Store, Unit
from lovewire.storage.errors import StoreClosed, StoreError
from lovewire.storage.sqlite.inline import InlineConnection
from lovewire.storage.sqlite.unit import SqliteUnit

__all__ = ["GROUP_MAX", "READERS", "SECRET_FILE", "SqliteStore", "migrations"]

log = logging.getLogger(__name__)

READERS = 2
#: The code-hashing key's file, beside the database.
SECRET_FILE = "secret.key"


def _pragmas(*, query_only: bool) -> list[str]:
    # temp_store: a unit's savepoint journal past 64 KiB, and a sort past the cache, stay
    # in memory. On disk each was a file made and deleted in the temp directory by the
    # thread running the statement (for the writer, the event loop's): at 1,000 chat
    # messages a second, about 170 files a second.
    return [
        "journal_mode = WAL",
        "synchronous = FULL",
        "foreign_keys = ON",
        "busy_timeout = 5000",
        "temp_store = MEMORY",
        f"query_only = {int(query_only)}",
    ]


async def _connect_reader(path: Path) -> aiosqlite.Connection:
    """A reader: `query_only`, so SQLite itself refuses its writes."""
    db = await aiosqlite.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    for pragma in _pragmas(query_only=True):
        await db.execute(f"PRAGMA {pragma}")
    return db


_Db = aiosqlite.Connection | InlineConnection


def _waiting(db: _Db, sql: str) -> Any:
    """Run a statement that may wait (BEGIN, COMMIT, ROLLBACK) off the event loop."""
    return db.in_thread(sql) if isinstance(db, InlineConnection) else db.execute(sql)


async def _begin(db: _Db, sql: str) -> None:
    """Start a transaction; if cancelled meanwhile, end it before giving the connection up.

    The statement runs in the connection's thread even when the awaiting task is
    cancelled, so without this the next unit on the connection would find a transaction
    open.
    """
    begin, cancelled = await _finish(_waiting(db, sql))
    if cancelled:
        if begin.exception() is None:
            await _finish(_waiting(db, "ROLLBACK"))
        raise asyncio.CancelledError
    begin.result()


async def _finish(statement: Any) -> tuple[asyncio.Future[Any], bool]:
    """Run a statement to its end even if cancelled meanwhile; return it and whether we were.

    The connection's state is known afterwards, whatever happened to the awaiting task.
    """
    done = asyncio.ensure_future(statement)
    cancelled = False
    while not done.done():
        try:
            await asyncio.wait([done])
        except asyncio.CancelledError:
            cancelled = True
    return done, cancelled


def migrations() -> list[tuple[int, str, str]]:
    """The numbered migrations shipped with the package, in order: (number, name, sql)."""
    found = []
    for item in resources.files("lovewire.storage.sqlite").joinpath("migrations").iterdir():
        if item.name.endswith(".sql"):
            number = int(item.name.split("_", 1)[0])
            found.append((number, item.name, item.read_text(encoding="utf-8")))
    found.sort()
    return found


#: Most units in one group transaction.
GROUP_MAX = 256


@dataclass(slots=True)
class _Group:
    """Units sharing one transaction, and the future their callers await."""

    committed: asyncio.Future[None]
    #: Units released into the group (their callers await `committed`).
    units: int = 0
    #: Units that ran in the group, failed ones included: the group's size.
    ran: int = 0
    broken: bool = False


class _WriteUnit:
    """`SqliteStore.unit()`: a class, not a generator, as it runs for every write."""

    __slots__ = ("_store",)

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def __aenter__(self) -> Unit:
        return await self._store._enter_unit()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._store._exit_unit(failed=exc_type is not None)


class SqliteStore(Store):
    """A SQLite database file; writes are serialised, reads run beside them."""

    def __init__(self, path: Path, *, secret_file: Path | None = None) -> None:
        self.path = path
        #: The code-hashing key's file: `secret.key` beside the database unless told.
        self.secret_file = secret_file or path.parent / SECRET_FILE
        self._writer: InlineConnection | None = None
        self._write_lock = asyncio.Lock()
        self._queued = 0
        self._group: _Group | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all: list[_Db] = []

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await InlineConnection.connect(self.path, _pragmas(query_only=False))
            self._all.append(self._writer)
            await self._migrate(self._writer)
            for _ in range(READERS):
                reader = await _connect_reader(self.path)
                self._all.append(reader)
                self._readers.put_nowait(reader)
        except BaseException:
            await self.close()
            raise

    async def _migrate(self, db: InlineConnection) -> None:
        rows = await db.execute_fetchall("PRAGMA user_version")
        version = int(rows[0][0]) if rows else 0
        for number, name, sql in migrations():
            if number <= version:
                continue
            log.info("applying migration %s", name)
            try:
                await db.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;"
                )
            except BaseException:
                if db.in_transaction:
                    await db.in_thread("ROLLBACK")
                raise

    async def close(self) -> None:
        if self._writer is not None:
            async with self._write_lock:
                if self._group is not None:
                    await self._commit_group()
        connections, self._all = self._all, []
        self._writer = None
        for db in connections:
            await db.close()

    def unit(self) -> AbstractAsyncContextManager[Unit]:
        """A write unit: a savepoint inside the current group transaction.

        Units run one at a time on the writer. Units that queue up behind each other share
        one transaction, committed (one fsync) when nobody else is waiting or the group is
        full; each unit returns only once its group has committed, so it is as durable as a
        transaction of its own.
        """
        return _WriteUnit(self)

    async def _enter_unit(self) -> SqliteUnit:
        """Take the writer, join (or begin) the group, open the unit's savepoint."""
        self._queued += 1
        try:
            await self._write_lock.acquire()
        finally:
            self._queued -= 1
        try:
            db = self._writer
            if db is None:
                raise StoreClosed("store is closed")
            if self._group is not None and (self._group.broken or not db.in_transaction):
                # SQLite dropped the group's transaction: end it (its units fail) before a
                # savepoint here would start a transaction of its own, committed unseen.
                await self._commit_group()
            if self._group is None:
                if not db.begin_now("BEGIN IMMEDIATE"):
                    await _begin(db, "BEGIN IMMEDIATE")
                self._group = _Group(asyncio.get_running_loop().create_future())
            self._group.ran += 1
            await db.execute("SAVEPOINT unit")
        except BaseException:
            await self._leave_writer()
            raise
        return SqliteUnit(db)

    async def _exit_unit(self, failed: bool) -> None:
        """Keep (or undo) the unit, give the writer up, and wait for the group's commit."""
        db = self._writer
        assert db is not None  # `close` waits for the writer
        group: _Group | None = None
        try:
            if failed:
                await self._undo_unit(db)
            else:
                await db.execute("RELEASE unit")
                group = self._group
                assert group is not None
                group.units += 1
        finally:
            await self._leave_writer()
        if group is not None:
            # Shielded: a caller cancelled here must not cancel the future its group shares.
            await asyncio.shield(group.committed)

    async def _leave_writer(self) -> None:
        """Commit the group if nobody waits to join it (or it is full), and give the writer up."""
        try:
            if self._group is not None and (
                self._queued == 0 or self._group.ran >= GROUP_MAX or self._writer is None
            ):
                await self._commit_group()
        finally:
            self._write_lock.release()

    async def _undo_unit(self, db: InlineConnection) -> None:
        """Roll one unit back; the group stays, unless SQLite already dropped it."""
        try:
            await db.execute("ROLLBACK TO unit")
            await db.execute("RELEASE unit")
        except Exception:
            log.exception("could not roll a unit back; its whole group fails")
            if self._group is not None:
                self._group.broken = True

    async def _commit_group(self) -> None:
        """Commit the current group and tell its units (all of them fail if it fails).

        The units are told in every case, even if the caller is cancelled meanwhile; the
        cancellation is raised once the connection is out of the transaction.
        """
        group, self._group = self._group, None
        db = self._writer
        assert group is not None and db is not None
        cancelled = False
        error: BaseException | None = None
        if group.broken or not db.in_transaction:
            error = StoreError("the group transaction was lost; nothing of it was kept")
        else:
            commit, cancelled = await _finish(db.commit())
            error = commit.exception()
        if error is None:
            group.committed.set_result(None)
            if self.on_commit is not None:
                self.on_commit(commit.result())
        else:
            if db.in_transaction:
                rollback, interrupted = await _finish(db.in_thread("ROLLBACK"))
                cancelled = cancelled or interrupted
                if rollback.exception() is not None:
                    log.error("could not roll a failed group back: %r", rollback.exception())
            if group.units:
                group.committed.set_exception(StoreError(f"commit failed: {error!r}"))
                group.committed.exception()  # its units are told; none of them may be waiting
            else:
                group.committed.set_result(None)
        if cancelled:
            raise asyncio.CancelledError

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Unit]:
        db = await self._readers.get()
        try:
            await _begin(db, "BEGIN")
            try:
                yield SqliteUnit(db, writable=False)
            finally:
                # To the end even if cancelled: the reader goes back out of its snapshot.
                rollback, cancelled = await _finish(db.execute("ROLLBACK"))
                if rollback.exception() is not None:
                    log.error("a reader could not end its snapshot: %r", rollback.exception())
                if cancelled:
                    raise asyncio.CancelledError
        finally:
            self._readers.put_nowait(db)

    async def secret(self) -> bytes:
        """The key in `secret_file`, made (mode 0600) on first use."""
        return await asyncio.to_thread(load_secret, self.secret_file)

    async def healthy(self) -> bool:
        try:
            async with self.read() as tx:
                await tx.pushes.current_seq(0)
        except Exception:
            log.exception("database health check failed")
            return False
        return True
