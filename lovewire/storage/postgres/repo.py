"""The base of the PostgreSQL repositories: a connection, its query helpers, named locks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from lovewire.storage.errors import ReadOnlyUnit, StoreError

__all__ = ["Conn", "PgRepo", "Session", "translate"]

#: A connection, or a pooled one.
Conn = asyncpg.Connection | PoolConnectionProxy


def translate(exc: Exception) -> StoreError:
    """The interface's error for a driver error.

    Read units run `READ ONLY`: a write in one fails there, loudly, as `ReadOnlyUnit`.
    """
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return ReadOnlyUnit(f"a read unit cannot write: {exc}")
    return StoreError(f"{type(exc).__name__}: {exc}")


#: The errors of the driver and of the network under it.
DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


@dataclass(slots=True)
class Session:
    """One unit's connection, shared by its repositories."""

    conn: Conn
    writable: bool
    #: A statement failed: PostgreSQL has aborted the transaction, so nothing of it may
    #: be committed, even if the caller went on.
    failed: bool = False


class PgRepo:
    """Base of the PostgreSQL repositories: four query helpers and `_lock`.

    Every helper translates the driver's errors into the interface's.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    async def _one(self, sql: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self.session.conn.fetchrow(sql, *args)
        except DRIVER_ERRORS as exc:
            raise self._failed(exc) from exc

    async def _all(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return await self.session.conn.fetch(sql, *args)
        except DRIVER_ERRORS as exc:
            raise self._failed(exc) from exc

    async def _exec(self, sql: str, *args: Any) -> int:
        """Run a statement for its effect; return the rows it changed."""
        try:
            status = await self.session.conn.execute(sql, *args)
        except DRIVER_ERRORS as exc:
            raise self._failed(exc) from exc
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def _many(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        """Run a statement once per row of parameters."""
        rows = list(args)
        if not rows:
            return
        try:
            await self.session.conn.executemany(sql, rows)
        except DRIVER_ERRORS as exc:
            raise self._failed(exc) from exc

    async def _lock(self, *name: object) -> None:
        """Hold the lock `name` until the unit ends (write units only; a read unit's
        snapshot cannot act on what it counts).

        A transaction-level advisory lock, named within the current schema: every process
        counting for one tel, user or pair waits here for the others to commit, so a
        count read after it is the true one under READ COMMITTED.
        """
        if not self.session.writable:
            return
        key = ":".join(str(part) for part in name)
        await self._exec(
            "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':' || $1, 0))",
            key,
        )

    def _failed(self, exc: Exception) -> StoreError:
        self.session.failed = True
        return translate(exc)
