"""Several processes as one, through Redis (contract section 8), in one test process.

Two servers share a PostgreSQL schema and a Redis key prefix of the test's own, as two
processes of a deployment do. What one process commits reaches the sockets of the
other live; session ends, announcements and the sockets-per-user limit cross too; and a
Redis that goes away and comes back costs no push.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from redis import asyncio as aioredis
from websockets.exceptions import ConnectionClosed

from lovewire.redishub import RedisHub
from tests.conftest import Client, Server
from tests.helpers_pictures import upload
from tests.helpers_postgres import TEST_URL
from tests.helpers_redis import TEST_REDIS_URL, PrivateRedis

pytestmark = pytest.mark.needs_services

SHARED = {
    "database_url": TEST_URL,
    "redis_url": TEST_REDIS_URL,
    "requests_per_second": 1_000_000,
    "sms_interval": 0,
    "sms_tel_hourly": 10_000,
    "sms_tel_daily": 10_000,
    "sms_addr_hourly": 10_000,
    "uploads_per_hour": 10_000,
}


async def two(start_server: Any, **extra: Any) -> tuple[Server, Server]:
    settings = {**SHARED, **extra}
    return await start_server(**settings), await start_server(**settings)


async def log_in(client: Client, token: str) -> dict[str, Any]:
    auth = await client.request({"type": "auth_request", "token": token, "last_seq": 0})
    assert auth["success"], auth
    return auth


async def like(client: Client, picture_id: str) -> None:
    liked = await client.request({"type": "picture_like_request", "picture_id": picture_id})
    assert liked["success"], liked


async def test_like_on_one_process_reaches_the_owner_on_both(start_server: Any) -> None:
    one, other = await two(start_server)
    async with one.connect() as here, other.connect() as there, one.connect() as fan:
        owner = await one.register(here, nickname="zhang")
        await one.register(fan, nickname="wang")
        await log_in(there, owner["token"])
        posted = await upload(here)
        await like(fan, posted["picture_id"])
        for socket in (here, there):
            push = await socket.push()
            assert push["type"] == "picture_like_notify" and push["seq"] == 1, push
            assert push["nickname"] == "wang"


async def test_likes_from_both_processes_arrive_in_seq_order_everywhere(
    start_server: Any,
) -> None:
    """20 likes, half through each process, at once: seq 1..20 in order on both sockets."""
    one, other = await two(start_server)
    async with one.connect() as here, other.connect() as there:
        owner = await one.register(here, nickname="zhang")
        await log_in(there, owner["token"])
        pictures = [(await upload(here))["picture_id"] for _ in range(10)]
        fans: list[Client] = []
        async with one.connect() as f1, other.connect() as f2:
            await one.register(f1, nickname="fan")
            async with one.connect() as elsewhere:  # registered here, used there
                await log_in(f2, (await one.register(elsewhere, nickname="fan"))["token"])
            fans += [f1, f2]
            # Each fan likes every picture, one at a time: both processes write at once.
            await asyncio.gather(*(_like_all(fan, pictures) for fan in fans))
        for socket in (here, there):
            seqs = [(await socket.push())["seq"] for _ in range(20)]
            assert seqs == list(range(1, 21))


async def _like_all(fan: Client, pictures: list[str]) -> None:
    for picture_id in pictures:
        await like(fan, picture_id)


async def test_logout_everywhere_ends_the_sessions_on_every_process(start_server: Any) -> None:
    one, other = await two(start_server)
    async with one.connect() as here, other.connect() as there:
        reg = await one.register(here)
        await log_in(there, reg["token"])
        out = await here.request({"type": "logout_request", "all": True})
        assert out["success"], out
        assert await there.push() == {"type": "session_end_notify", "reason": "logout"}
        assert (await there.request({"type": "crush_list_request"}))["error_no"] == 5


async def test_announcement_reaches_sockets_of_every_process(start_server: Any) -> None:
    one, other = await two(start_server)
    async with other.connect() as stranger:
        assert (await stranger.request({"type": "ping_request"}))["success"]  # it is served
        status, body = await one.post("/admin/broadcast", {"msg": "维护"})
        assert status == 200 and body["sent"] == 0  # this process has none
        assert await stranger.push() == {"type": "system_notify", "msg": "维护"}


async def test_oldest_socket_anywhere_is_closed_beyond_the_limit(start_server: Any) -> None:
    one, other = await two(start_server, sockets_per_user=2)
    async with one.connect() as first, other.connect() as second, one.connect() as third:
        reg = await one.register(first)
        await log_in(second, reg["token"])
        await log_in(third, reg["token"])
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(first.ws.recv(), 5)
        assert first.ws.close_code == 1008
        for socket in (second, third):
            assert (await socket.request({"type": "ping_request"}))["success"]


async def test_redis_going_away_loses_no_push(start_server: Any, tmp_path: Path) -> None:
    """Redis stops and starts again: sockets stay up, pushes are stored meanwhile, the bus
    reconnects by itself and the owner's socket on the other process gets what it missed."""
    redis = PrivateRedis(tmp_path)
    await redis.start()
    try:
        # A private server: no prefix of the test's own (nor its cleanup) needed.
        one, other = await two(start_server, redis_url=redis.url, redis_prefix="t:")
        async with one.connect() as fan, other.connect() as there, one.connect() as here:
            owner = await one.register(here, nickname="zhang")
            await one.register(fan, nickname="wang")
            await log_in(there, owner["token"])
            pictures = [(await upload(here))["picture_id"] for _ in range(3)]
            await like(fan, pictures[0])
            assert (await there.push())["seq"] == 1 and (await here.push())["seq"] == 1
            await redis.stop()
            await like(fan, pictures[1])  # stored; the bus is down
            assert (await here.push())["seq"] == 2  # same process: live as ever
            await redis.start()  # same port: the hubs reconnect by themselves
            assert (await asyncio.wait_for(there.push(), 10))["seq"] == 2  # caught up
            await like(fan, pictures[2])
            assert (await asyncio.wait_for(there.push(), 10))["seq"] == 3
            assert (await here.push())["seq"] == 3
    finally:
        await redis.stop()


async def test_sockets_per_address_count_every_process(start_server: Any) -> None:
    one, other = await two(start_server, sockets_per_addr=2)
    async with one.connect() as a, other.connect() as b, one.connect() as c:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(c.ws.recv(), 5)
        assert c.ws.close_code == 1013
        for socket in (a, b):
            assert (await socket.request({"type": "ping_request"}))["success"]
    async with other.connect() as again:  # closed sockets no longer count
        assert (await again.request({"type": "ping_request"}))["success"]


async def test_request_rate_per_address_counts_every_process(start_server: Any) -> None:
    """Each process alone stays within the address's rate; together they pass it, and
    once the counts are shared (every 0.1 s) the address's next request is error 6."""
    one, other = await two(start_server, requests_per_second=5)  # 100 per address
    async with AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(server.connect())
            for server in (one, other)
            for _ in range(15)
        ]
        for socket in sockets:  # 75 requests through each process, within its burst
            for _ in range(5):
                assert (await socket.request({"type": "ping_request"}))["success"]
        # What the periodic sharing does within two rounds: one sends its count, the
        # other sends its own and learns the total, then one learns it too.
        for server in (one, other, one):
            hub = server.app.services.hub if server.app.services else None
            assert isinstance(hub, RedisHub)
            await hub.share_addresses(server.clock.now())
        async with one.connect() as late:
            refused = await late.request({"type": "ping_request"})
            assert refused["error_no"] == 6 and refused["retry_after"] >= 1


async def test_pubsub_connection_killed_loses_no_push(start_server: Any, tmp_path: Path) -> None:
    """Redis drops the pub/sub connections (CLIENT KILL): the hubs notice, subscribe again
    and their sockets read what was published meanwhile; no reconnect by the client."""
    redis = PrivateRedis(tmp_path)
    await redis.start()
    try:
        one, other = await two(start_server, redis_url=redis.url, redis_prefix="t:")
        async with one.connect() as fan, other.connect() as there, one.connect() as here:
            owner = await one.register(here, nickname="zhang")
            await one.register(fan, nickname="wang")
            await log_in(there, owner["token"])
            pictures = [(await upload(here))["picture_id"] for _ in range(2)]
            client = aioredis.from_url(redis.url)
            try:
                killed = await client.client_kill_filter(_type="pubsub")
            finally:
                await client.aclose()
            assert killed == 2
            for picture in pictures:  # published while the listeners are away
                await like(fan, picture)
            seqs = [(await asyncio.wait_for(there.push(), 10))["seq"] for _ in range(2)]
            assert seqs == [1, 2]
            assert [(await here.push())["seq"] for _ in range(2)] == [1, 2]
    finally:
        await redis.stop()
