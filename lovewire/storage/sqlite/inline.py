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
import functools
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
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

    def __init__(self, conn: sqlite3.Connection, thread: _Thread) -> None:
        self._conn = conn
        self._thread = thread

    @classmethod
    async def connect(cls, path: Path, pragmas: Iterable[str]) -> InlineConnection:
        thread = _Thread()

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            for pragma in pragmas:
                conn.execute(f"PRAGMA {pragma}")
            # Inline statements never wait: a busy database fails them at once.
            conn.execute("PRAGMA busy_timeout = 0")
            return conn

        try:
            conn = await thread.call(connect)
        except BaseException:
            thread.stop()
            raise
        return cls(conn, thread)

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

    def commit(self) -> asyncio.Future[float]:
        """COMMIT in the thread, waiting like `in_thread`; the seconds it took there: the
        fsync that makes the transaction durable, and a WAL checkpoint when one is due."""
        return self.call(self._timed_commit)

    def _timed_commit(self) -> float:
        started = time.perf_counter()
        self._waiting("COMMIT")
        return time.perf_counter() - started

    def _waiting(self, sql: str) -> sqlite3.Cursor:
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            return self._conn.execute(sql)
        finally:
            self._conn.execute("PRAGMA busy_timeout = 0")

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `fn(*args)` in the connection's thread."""
        return self._thread.call(fn, *args)

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
            self._thread.stop()


class _Thread:
    """The connection's own thread: a queue of calls, each answered on the caller's loop.

    Lighter than a one-thread `ThreadPoolExecutor` (no semaphore, no concurrent future to
    chain): a group's COMMIT is one put and one `call_soon_threadsafe`.
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(
            target=self._run, name="lovewire-sqlite-writer", daemon=True
        )
        self._thread.start()

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls.put((functools.partial(fn, *args), future))
        return future

    def stop(self) -> None:
        self._calls.put(None)

    def _run(self) -> None:
        while (item := self._calls.get()) is not None:
            fn, future = item
            try:
                result = fn()
            except BaseException as exc:  # handed to the caller, whatever it is
                future.get_loop().call_soon_threadsafe(_fail, future, exc)
            else:
                future.get_loop().call_soon_threadsafe(_succeed, future, result)


def _succeed(future: asyncio.Future[T], result: T) -> None:
    if not future.done():  # its caller may have been cancelled meanwhile
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
