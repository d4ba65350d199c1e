"""The writer's connection: statements run on the event loop, only waits go to a thread.

Inside the writer's transaction (begun IMMEDIATE, so it holds the database's write lock)
a statement never waits for a lock, and in WAL mode it touches pages in memory: a few
microseconds, far less than a trip to a thread and back, which is what aiosqlite pays
for every statement. So the writer runs its statements inline, and sends to its own
thread only what can wait: COMMIT (the fsync that makes a group durable), ROLLBACK, and
BEGIN when another process holds the lock (inline, a busy database fails at once).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["BUSY_TIMEOUT_MS", "InlineConnection"]

T = TypeVar("T")

#: How long a statement in the thread waits for a lock another process holds.
BUSY_TIMEOUT_MS = 5000


class InlineConnection:
    """A sqlite3 connection whose statements run inline; `in_thread` for the slow ones.

    Its methods are coroutines, like aiosqlite's, so the repositories use either
    connection alike. Callers never use it from two places at once (the store's write
    lock), so the loop's thread and the connection's own never overlap.
    """

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._executor = executor

    @classmethod
    async def connect(cls, path: Path, pragmas: Iterable[str]) -> InlineConnection:
        executor = ThreadPoolExecutor(1, thread_name_prefix="lovewire-sqlite-writer")

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            for pragma in pragmas:
                conn.execute(f"PRAGMA {pragma}")
            # Inline statements never wait: a busy database fails them at once.
            conn.execute("PRAGMA busy_timeout = 0")
            return conn

        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(conn, executor)

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, params).fetchall()

    async def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        return self._conn.executemany(sql, params)

    async def set_trace_callback(self, callback: Callable[[str], object] | None) -> None:
        self._conn.set_trace_callback(callback)

    def begin_now(self, sql: str) -> bool:
        """Begin a transaction inline if the database's lock is free (the usual case).

        False when another connection holds it: then begin `in_thread`, which waits.
        """
        try:
            self._conn.execute(sql)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                return False
            raise
        return True

    def in_thread(self, sql: str) -> asyncio.Future[sqlite3.Cursor]:
        """Run one statement that may wait (BEGIN, COMMIT, ROLLBACK) in the thread.

        There it waits up to `BUSY_TIMEOUT_MS` for a lock another process holds.
        """
        return self.call(self._waiting, sql)

    def _waiting(self, sql: str) -> sqlite3.Cursor:
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            return self._conn.execute(sql)
        finally:
            self._conn.execute("PRAGMA busy_timeout = 0")

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `fn(*args)` in the connection's thread."""
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def executescript(self, script: str) -> None:
        """Run a script in the thread, waiting for locks like `in_thread`."""

        def run() -> None:
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            try:
                self._conn.executescript(script)
            finally:
                self._conn.execute("PRAGMA busy_timeout = 0")

        await self.call(run)

    async def close(self) -> None:
        try:
            await self.call(self._conn.close)
        finally:
            self._executor.shutdown(wait=False)
