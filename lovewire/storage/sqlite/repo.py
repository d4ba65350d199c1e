"""The base of the SQLite repositories: a connection and its query helpers."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite

from lovewire.storage.errors import ReadOnlyUnit

__all__ = ["SqliteRepo", "translate"]


def translate(exc: sqlite3.Error) -> Exception:
    """The interface's error for a SQLite error, or the error itself.

    Readers run with `PRAGMA query_only`: a write in a read unit fails there, loudly.
    """
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_READONLY:
        return ReadOnlyUnit(f"a read unit cannot write: {exc}")
    return exc


class SqliteRepo:
    """Base of the SQLite repositories: a connection and four query helpers.

    Each helper is one trip to the connection's thread (the statement and its rows
    together): those trips, not SQLite, are most of a unit's cost.
    """

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        try:
            rows = await self.db.execute_fetchall(sql, params)
        except sqlite3.OperationalError as exc:
            raise translate(exc) from exc
        return next(iter(rows), None)

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return list(await self.db.execute_fetchall(sql, params))
        except sqlite3.OperationalError as exc:
            raise translate(exc) from exc

    async def _exec(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Cursor:
        """Run a statement for its effect; the cursor tells rowcount and lastrowid."""
        try:
            return await self.db.execute(sql, params)
        except sqlite3.OperationalError as exc:
            raise translate(exc) from exc

    async def _many(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        """Run a statement once per row of parameters."""
        try:
            await self.db.executemany(sql, params)
        except sqlite3.OperationalError as exc:
            raise translate(exc) from exc
