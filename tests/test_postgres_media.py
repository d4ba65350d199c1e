"""Pictures and the code secret on PostgreSQL: two servers sharing one database, each with
a data dir of its own (as on two machines), serve each other's pictures and verify each
other's codes; nothing either needs is left in a data dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from lovewire.storage.postgres import PgStore
from tests.conftest import Client, Server
from tests.helpers_pictures import picture, uri
from tests.helpers_postgres import TEST_URL, pg_schema

pytestmark = pytest.mark.needs_services

ROOMY = {
    "database_url": TEST_URL,
    "requests_per_second": 1_000_000,
    "sms_interval": 0,
    "avatars_per_day": 100,
    "uploads_per_hour": 100,
}
SERVED_HEADERS = ("Content-Type", "Cache-Control", "X-Content-Type-Options")


async def two_machines(start_server: Any, tmp_path: Path) -> tuple[Server, Server]:
    one: Server = await start_server(data_dir=tmp_path / "one", **ROOMY)
    two: Server = await start_server(data_dir=tmp_path / "two", **ROOMY)
    return one, two


async def fetch(server: Server, path: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as http, http.get(server.http_url + path) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def stored_rows(server: Server) -> list[str]:
    """The paths of the `media` table of the server's database."""
    conn = await asyncpg.connect(server.app.settings.database_url)
    try:
        return [r["path"] for r in await conn.fetch("SELECT path FROM media ORDER BY path")]
    finally:
        await conn.close()


def data_dir_files(server: Server) -> list[str]:
    root = server.app.settings.data_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def set_avatar(client: Client, data_uri: str) -> dict[str, Any]:
    return await client.request({"type": "profile_update_request", "avatar": data_uri})


async def post(client: Client, data_uri: str) -> dict[str, Any]:
    frame = {"type": "picture_upload_request", "words": "hi", "picture": data_uri}
    posted = await client.request(frame)
    assert posted["success"], posted
    return posted


async def test_a_picture_stored_through_one_server_is_served_by_the_other(
    start_server: Any, tmp_path: Path
) -> None:
    """Byte for byte, with the same headers; an unknown path is 404 on both."""
    one, two = await two_machines(start_server, tmp_path)
    async with one.connect() as a:
        await one.register(a)
        url = (await post(a, uri(picture())))["picture_content"]
    status, headers, body = await fetch(one, url)
    assert status == 200 and body[:2] == b"\xff\xd8"
    status_two, headers_two, body_two = await fetch(two, url)
    assert (status_two, body_two) == (200, body)
    assert headers_two["Content-Type"] == "image/jpeg"
    assert headers_two["Cache-Control"] == "public, max-age=31536000, immutable"
    assert headers_two["X-Content-Type-Options"] == "nosniff"
    assert [headers[h] for h in SERVED_HEADERS] == [headers_two[h] for h in SERVED_HEADERS]
    assert await stored_rows(one) == [url.removeprefix("/uploads/")]
    missing = url[:-5] + ("0" if url[-5] != "0" else "1") + ".jpg"
    assert (await fetch(one, missing))[0] == (await fetch(two, missing))[0] == 404
    assert (await fetch(two, "/uploads/../secret.key"))[0] == 404
    assert not [f for s in (one, two) for f in data_dir_files(s)]


async def test_a_code_asked_on_one_server_verifies_on_the_other(
    start_server: Any, tmp_path: Path
) -> None:
    """Both servers hash codes with the one key the database keeps; no secret.key file."""
    one, two = await two_machines(start_server, tmp_path)
    assert one.app.services is not None and two.app.services is not None
    assert await one.app.services.store.secret() == await two.app.services.store.secret()
    tel = one.new_tel()
    async with one.connect() as a, two.connect() as b:
        sent = await a.request({"type": "sms_validation_request", "tel": tel})
        assert sent["success"], sent
        code = await one.sms.code_for(tel)
        other = f"{(int(code) + 1) % 1_000_000:06d}"
        refused = await b.request({"type": "sms_validation_code", "code": other, "tel": tel})
        assert not refused["success"], refused
        result = await b.request({"type": "sms_validation_code", "code": code, "tel": tel})
        assert result["success"] and result["registered"] is False, result
    assert not [f for s in (one, two) for f in data_dir_files(s)]


async def test_a_replaced_avatar_is_removed_once_nothing_uses_it(
    start_server: Any, tmp_path: Path
) -> None:
    """As with files: changing avatars leaves only the current one's row, but a picture a
    post or another user's avatar still shows is kept, and served by either server."""
    one, two = await two_machines(start_server, tmp_path)
    async with one.connect() as a, two.connect() as b:
        await one.register(a)
        await two.register(b, one.new_tel(), nickname="wang")
        for _ in range(3):
            assert (await set_avatar(a, uri(picture())))["success"]
        assert len(await stored_rows(one)) == 1
        shared = uri(picture())
        posted = await post(b, shared)
        avatar = (await set_avatar(a, shared))["profile"]["avatar"]
        assert avatar == posted["picture_content"] and len(await stored_rows(one)) == 1
        assert (await set_avatar(a, uri(picture())))["success"]
        assert len(await stored_rows(one)) == 2  # b's post still shows a's old avatar
        deleted = await b.request(
            {"type": "picture_delete_request", "picture_id": posted["picture_id"]}
        )
        assert deleted["success"], deleted
        assert len(await stored_rows(one)) == 1
        assert (await fetch(two, avatar))[0] == 404
        kept = uri(picture())
        mine = (await set_avatar(a, kept))["profile"]["avatar"]
        assert (await set_avatar(b, kept))["profile"]["avatar"] == mine
        assert (await set_avatar(a, ""))["success"]
        assert await stored_rows(one) == [mine.removeprefix("/uploads/")]  # b's avatar
        assert (await fetch(one, mine))[0] == (await fetch(two, mine))[0] == 200
        assert (await set_avatar(b, ""))["success"]
        assert await stored_rows(one) == []
    assert not [f for s in (one, two) for f in data_dir_files(s)]


async def test_lock_path_holds_the_path_against_every_other_process() -> None:
    """While a unit holds a path, another connection cannot take its lock; after, it can."""
    try_lock = (
        "SELECT pg_try_advisory_xact_lock(hashtextextended(current_schema() || ':media:' || $1, 0))"
    )
    path = "ab/" + "ab" * 32 + ".jpg"
    async with pg_schema() as url:
        store = PgStore(url, pool_size=2)
        await store.open()
        other = await asyncpg.connect(url)
        try:
            async with store.unit() as tx:
                await tx.pictures.lock_path(path)
                async with other.transaction():
                    assert await other.fetchval(try_lock, path) is False
                    assert await other.fetchval(try_lock, path[:-4] + ".png") is True
            async with other.transaction():
                assert await other.fetchval(try_lock, path) is True
        finally:
            await other.close()
            await store.close()
