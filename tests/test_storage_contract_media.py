"""The contract of where pictures and the code secret live, run on every backend.

Each test runs once per backend of `STORES` (tests/test_storage_contract.py): the store
and the picture store `media_from_settings` picks beside it, on the same settings.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from lovewire.config import Settings
from lovewire.images import picture_path
from lovewire.media import FileMedia, MediaStore
from lovewire.storage.backends import media_from_settings, store_from_settings
from lovewire.storage.base import Store
from tests.helpers_postgres import pg_schema
from tests.test_storage_contract import SERVICES, STORES

BYTES = b"\xff\xd8 not decoded here \xff\xd9"
PATH = picture_path(BYTES, "jpg")


@dataclass
class Backend:
    settings: Settings
    store: Store
    media: MediaStore


@pytest.fixture(
    params=[
        pytest.param(name, marks=[pytest.mark.needs_services] if name in SERVICES else [])
        for name in sorted(STORES)
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with AsyncExitStack() as stack:
        url = STORES[request.param]
        if url:
            url = await stack.enter_async_context(pg_schema(url))
        settings = Settings(data_dir=tmp_path, database_url=url)
        store = store_from_settings(settings)
        try:
            await store.open()
        except OSError as exc:
            if os.environ.get("LOVEWIRE_REQUIRE_SERVICES"):
                raise
            pytest.skip(f"{request.param} not reachable: {exc}")
        stack.push_async_callback(store.close)
        media = media_from_settings(settings)
        await media.open()
        stack.push_async_callback(media.close)
        yield Backend(settings, store, media)


async def test_media_put_get_exists_delete(backend: Backend) -> None:
    media = backend.media
    assert not await media.exists(PATH) and await media.get(PATH) is None
    await media.put(PATH, BYTES)
    await media.put(PATH, BYTES)  # the same bytes again: kept once, no error
    assert await media.exists(PATH) and await media.get(PATH) == BYTES
    await media.delete(PATH)
    await media.delete(PATH)  # gone already: nothing to do
    assert not await media.exists(PATH) and await media.get(PATH) is None


async def test_media_stores_the_same_bytes_once_under_racing_puts(backend: Backend) -> None:
    await asyncio.gather(*(backend.media.put(PATH, BYTES) for _ in range(8)))
    assert await backend.media.get(PATH) == BYTES


@pytest.mark.parametrize("bad", ["../secret.key", "ab/cd.jpg", "lovewire.db", PATH + ".txt"])
async def test_media_knows_no_other_path(backend: Backend, bad: str) -> None:
    """Only a stored picture's path is read or deleted; storing under another is refused."""
    (backend.settings.data_dir / "secret.key").touch()
    assert await backend.media.get(bad) is None and not await backend.media.exists(bad)
    await backend.media.delete(bad)
    assert (backend.settings.data_dir / "secret.key").exists()
    with pytest.raises(ValueError):
        await backend.media.put(bad, BYTES)


async def test_media_lives_beside_the_store(backend: Backend) -> None:
    """Files in the data dir with SQLite; with PostgreSQL, nothing in the data dir."""
    await backend.media.put(PATH, BYTES)
    files = sorted(p.name for p in backend.settings.data_dir.rglob("*") if p.is_file())
    if backend.settings.database_url:
        assert files == [] and backend.media.local_file(PATH) is None
    else:
        assert isinstance(backend.media, FileMedia)
        local = backend.media.local_file(PATH)
        assert local is not None and local.read_bytes() == BYTES
        assert hashlib.sha256(BYTES).hexdigest() + ".jpg" in files


async def test_secret_is_made_once_and_kept(backend: Backend) -> None:
    """Racing first calls agree; a second store on the same settings reads the same key."""
    keys = await asyncio.gather(*(backend.store.secret() for _ in range(8)))
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    files = [p for p in backend.settings.data_dir.iterdir() if p.name != "lovewire.db"]
    if backend.settings.database_url:
        assert files == []
    else:  # SQLite: beside the database, readable by its owner only, no temporary left
        key = backend.settings.data_dir / "secret.key"
        assert key.read_bytes() == keys[0] and key.stat().st_mode & 0o777 == 0o600
        assert not [p for p in files if p.name.startswith(".tmp-")]
    again = store_from_settings(backend.settings)
    await again.open()
    try:
        assert await again.secret() == keys[0]
    finally:
        await again.close()


async def test_lock_path_in_units(backend: Backend) -> None:
    """Units locking one path all complete, in turn; a read unit may lock too (no-op)."""
    store = backend.store
    done: list[int] = []

    async def hold(n: int) -> None:
        async with store.unit() as tx:
            await tx.pictures.lock_path(PATH)
            done.append(n)
            assert not await tx.pictures.path_in_use(PATH)

    await asyncio.gather(*(hold(n) for n in range(6)))
    assert sorted(done) == list(range(6))
    async with store.read() as tx:
        await tx.pictures.lock_path(PATH)
