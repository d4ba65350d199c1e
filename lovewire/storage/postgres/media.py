"""Stored pictures in PostgreSQL (the `media` table), for every process to serve.

A pool of its own, apart from the store's: a unit holding a connection may store or
forget a picture, and a picture served over HTTP never waits behind units.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from lovewire.media import MediaStore, is_media_path
from lovewire.storage.errors import StoreClosed
from lovewire.storage.postgres.repo import DRIVER_ERRORS, translate
from lovewire.storage.postgres.store import CLOSE_TIMEOUT, CONNECT_TIMEOUT, unreachable

__all__ = ["MEDIA_POOL", "PgMedia"]

#: Connections the picture store keeps at most, when not told otherwise.
MEDIA_POOL = 4


class PgMedia(MediaStore):
    """Pictures in the `media` table of the database `url` names (migrated by `PgStore`)."""

    def __init__(self, url: str, *, pool_size: int = MEDIA_POOL) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self.pool_size, timeout=CONNECT_TIMEOUT
            )
        except (*DRIVER_ERRORS, ValueError) as exc:
            raise unreachable(exc) from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT)
        except TimeoutError:
            pool.terminate()

    async def _run(self, method: str, sql: str, *args: Any) -> Any:
        pool = self._pool
        if pool is None:
            raise StoreClosed("picture store is closed")
        try:
            return await getattr(pool, method)(sql, *args)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def put(self, rel_path: str, data: bytes) -> None:
        if not is_media_path(rel_path):
            raise ValueError("not a stored picture's path")
        await self._run(
            "execute",
            "INSERT INTO media (path, content, created_ts)"
            " VALUES ($1, $2, extract(epoch FROM now())::bigint)"
            " ON CONFLICT (path) DO NOTHING",
            rel_path,
            data,
        )

    async def get(self, rel_path: str) -> bytes | None:
        if not is_media_path(rel_path):
            return None
        content: bytes | None = await self._run(
            "fetchval", "SELECT content FROM media WHERE path = $1", rel_path
        )
        return content

    async def exists(self, rel_path: str) -> bool:
        if not is_media_path(rel_path):
            return False
        return bool(
            await self._run(
                "fetchval", "SELECT EXISTS (SELECT 1 FROM media WHERE path = $1)", rel_path
            )
        )

    async def delete(self, rel_path: str) -> None:
        if is_media_path(rel_path):
            await self._run("execute", "DELETE FROM media WHERE path = $1", rel_path)
