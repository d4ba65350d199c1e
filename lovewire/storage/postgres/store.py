"""The PostgreSQL store: an asyncpg pool; each unit is one transaction on one connection.

Write units run READ COMMITTED; what must hold across processes is held by row locks and
named locks taken inside the unit (see `repo.PgRepo._lock` and each repository). Read
units are REPEATABLE READ, READ ONLY: one snapshot, and PostgreSQL refuses their writes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import resources

import asyncpg

from lovewire.security import SECRET_BYTES
from lovewire.storage.base import Store, Unit
from lovewire.storage.errors import StoreClosed, StoreError
from lovewire.storage.postgres.repo import DRIVER_ERRORS, Conn, Session, translate
from lovewire.storage.postgres.unit import PgUnit

__all__ = ["POOL_SIZE", "PgStore", "migrations", "unreachable"]

log = logging.getLogger(__name__)

#: Connections a process keeps at most, when the settings name no other number.
POOL_SIZE = 10
#: Seconds to reach the server before `open` gives up.
CONNECT_TIMEOUT = 10.0
#: Seconds `close` waits for units in flight before it drops their connections.
CLOSE_TIMEOUT = 10.0
#: The migration lock, named within the current schema: one process migrates at a time.
_MIGRATION_LOCK = "hashtextextended(current_schema() || ':lovewire-migrations', 0)"


def migrations() -> list[tuple[int, str, str]]:
    """The numbered migrations shipped with the package, in order: (number, name, sql)."""
    found = []
    for item in resources.files("lovewire.storage.postgres").joinpath("migrations").iterdir():
        if item.name.endswith(".sql"):
            number = int(item.name.split("_", 1)[0])
            found.append((number, item.name, item.read_text(encoding="utf-8")))
    found.sort()
    return found


def unreachable(exc: BaseException) -> ConnectionError:
    """The OSError `open` raises when the server cannot be used (never the URL itself:
    it may hold a password)."""
    if isinstance(exc, ValueError):  # a malformed URL: its text could show the password
        return ConnectionError(f"cannot use LOVEWIRE_DATABASE_URL ({type(exc).__name__})")
    return ConnectionError(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}")


class PgStore(Store):
    """A PostgreSQL database shared by any number of processes.

    `url` is a `postgresql://` URL; its query parameters other than libpq's are server
    settings (`?search_path=lovewire` puts the tables in that schema).
    """

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        try:
            pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                timeout=CONNECT_TIMEOUT,
                reset=_keep_session,
            )
        except (*DRIVER_ERRORS, ValueError) as exc:
            raise unreachable(exc) from exc
        try:
            async with pool.acquire() as conn:
                await self._migrate(conn)
        except BaseException:
            pool.terminate()
            raise
        self._pool = pool

    async def _migrate(self, conn: Conn) -> None:
        """Apply the migrations not yet applied, each in one transaction, under a lock
        that makes processes starting together apply each once."""
        try:
            if await conn.fetchval("SELECT current_schema()") is None:
                raise ConnectionError("PostgreSQL: the search_path names no existing schema")
            await conn.execute(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS lovewire_migrations ("
                    " number INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                    " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                done = {
                    r["number"] for r in await conn.fetch("SELECT number FROM lovewire_migrations")
                }
                for number, name, sql in migrations():
                    if number in done:
                        continue
                    log.info("applying migration %s", name)
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute(
                            "INSERT INTO lovewire_migrations (number, name) VALUES ($1, $2)",
                            number,
                            name,
                        )
            finally:
                await conn.execute(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("units still running at close: their connections are dropped")
            pool.terminate()

    def unit(self) -> AbstractAsyncContextManager[Unit]:
        """A write transaction, READ COMMITTED: committed on a clean exit, rolled back on
        an exception, or refused (`StoreError`) if one of its statements failed."""
        return self._transaction(writable=True)

    def read(self) -> AbstractAsyncContextManager[Unit]:
        """A REPEATABLE READ, READ ONLY snapshot: a write in it raises `ReadOnlyUnit`."""
        return self._transaction(writable=False)

    @asynccontextmanager
    async def _transaction(self, *, writable: bool) -> AsyncIterator[Unit]:
        pool = self._pool
        if pool is None:
            raise StoreClosed("store is closed")
        try:
            conn = await pool.acquire()
        except DRIVER_ERRORS as exc:
            if self._pool is None:
                raise StoreClosed("store is closed") from exc
            raise translate(exc) from exc
        try:
            session = Session(conn, writable)
            tx = conn.transaction(
                isolation="read_committed" if writable else "repeatable_read",
                readonly=not writable,
            )
            try:
                await tx.start()
            except DRIVER_ERRORS as exc:
                raise translate(exc) from exc
            try:
                yield PgUnit(session)
            except BaseException:
                await _rollback(tx)
                raise
            if not writable:
                await _rollback(tx)
            elif session.failed:
                await _rollback(tx)
                raise StoreError("a statement of the unit failed; nothing of it was kept")
            else:
                started = time.perf_counter()
                try:
                    await tx.commit()
                except DRIVER_ERRORS as exc:
                    raise StoreError(f"commit failed: {exc!r}") from exc
                if self.on_commit is not None:
                    self.on_commit(time.perf_counter() - started)
        finally:
            await pool.release(conn)

    async def secret(self) -> bytes:
        """The `lovewire_secret` row: the first process to ask stores a random key, and
        every process reads the one that was stored."""
        pool = self._pool
        if pool is None:
            raise StoreClosed("store is closed")
        try:
            async with pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO lovewire_secret (id, key) VALUES (1, $1)"
                    " ON CONFLICT (id) DO NOTHING",
                    secrets.token_bytes(SECRET_BYTES),
                )
                key: bytes = await conn.fetchval("SELECT key FROM lovewire_secret WHERE id = 1")
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return key

    async def healthy(self) -> bool:
        try:
            async with self.read() as tx:
                await tx.pushes.current_seq(0)
        except Exception:
            log.exception("database health check failed")
            return False
        return True


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Reset nothing more when a connection goes back to the pool.

    asyncpg has rolled back a transaction left open by then; its default reset query
    (UNLISTEN, RESET ALL, unlock every advisory lock, close cursors) is one more round
    trip for every unit, and undoes what no unit does: units use only transaction-level
    locks and no session settings, listeners or cursors (the migration lock is released
    by its own `finally`).
    """


async def _rollback(tx: asyncpg.transaction.Transaction) -> None:
    """Roll back; a connection that cannot is dropped by the pool when released."""
    try:
        await tx.rollback()
    except DRIVER_ERRORS as exc:
        log.warning("could not roll a unit back: %r", exc)
