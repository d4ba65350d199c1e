"""Redis for tests: a key prefix per test, its keys deleted afterwards; a private server.

The server is `LOVEWIRE_TEST_REDIS_URL` (default: the local one). When it cannot be
reached the test skips, or fails under `LOVEWIRE_REQUIRE_SERVICES`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from redis import asyncio as aioredis
from redis.exceptions import RedisError

TEST_REDIS_URL = os.environ.get("LOVEWIRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unreachable(reason: str) -> None:
    if os.environ.get("LOVEWIRE_REQUIRE_SERVICES"):
        raise RuntimeError(reason)
    pytest.skip(reason)


@asynccontextmanager
async def redis_prefix(url: str = TEST_REDIS_URL) -> AsyncIterator[str]:
    """A key prefix of a random name; every key under it is deleted at the end."""
    prefix = f"lovewire-test-{secrets.token_hex(6)}:"
    client = aioredis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        _unreachable(f"Redis not reachable: {exc}")
    try:
        yield prefix
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A `redis-server` of the test's own, on its own port, that the test may stop."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _unreachable("redis-server is not installed")
            return
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        client = aioredis.from_url(self.url)
        try:
            for _ in range(200):
                try:
                    await client.ping()
                    return
                except (RedisError, OSError):
                    await asyncio.sleep(0.02)  # the server process is starting
            raise RuntimeError("private redis-server did not start")
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None
