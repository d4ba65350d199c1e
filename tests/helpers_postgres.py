"""PostgreSQL for tests: a fresh schema per test, dropped afterwards.

The server is `LOVEWIRE_TEST_DATABASE_URL` (default: the local `test` database). When it
cannot be reached the test skips, or fails under `LOVEWIRE_REQUIRE_SERVICES`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

TEST_URL = os.environ.get("LOVEWIRE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def with_schema(url: str, schema: str) -> str:
    """The URL with `search_path` set to schema (a server setting asyncpg passes on)."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, f"search_path={schema}") if q)
    return urlunsplit(parts._replace(query=query))


@asynccontextmanager
async def pg_schema(url: str = TEST_URL) -> AsyncIterator[str]:
    """Create a schema of a random name; yield the URL whose tables live there; drop it."""
    name = f"lovewire_test_{secrets.token_hex(6)}"
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("LOVEWIRE_REQUIRE_SERVICES"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
        try:
            yield with_schema(url, name)
        finally:
            await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
    finally:
        await conn.close()
