"""Pushes that are never lost (contract section 5): seq, storage, replay, slow sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from lovewire.context import Context
from lovewire.session import Session
from protocol.pushes import PictureLikeNotify
from tests.conftest import Client, Server


async def push(
    server: Server, user_id: str, count: int = 1, nickname: str = "li", order: str = "seq"
) -> None:
    """Store and publish `count` pushes for the user through the engine's own path.

    `order` "reversed" publishes them newest first; "last" publishes only the newest.
    """
    services = server.app.services
    assert services is not None
    session = Session("test")
    ctx = Context(services, session)
    async with ctx.unit() as tx:
        for i in range(count):
            notify = PictureLikeNotify(
                picture_id=1, user_id=2, nickname=nickname, picture_like_num=str(i + 1)
            )
            await ctx.push(tx, int(user_id), notify)
    published = {
        "seq": session.outbox,
        "reversed": session.outbox[::-1],
        "last": session.outbox[-1:],
    }[order]
    await services.hub.publish(published)


async def collect(client: Client, count: int) -> list[dict[str, Any]]:
    return [await client.push() for _ in range(count)]


@pytest.mark.both_loops
async def test_push_live_to_every_socket_with_seq_and_time(server: Server) -> None:
    """A push reaches every logged-in socket of the user, with seq, time and time_ts."""
    async with server.connect() as a, server.connect() as b, server.connect() as other:
        reg = await server.register(a)
        await server.register(other)
        assert (await b.request({"type": "auth_request", "token": reg["token"]}))["success"]
        await push(server, reg["user_id"])
        for c in (a, b):
            frame = await c.push()
            assert frame["type"] == "picture_like_notify" and frame["seq"] == 1
            assert frame["picture_id"] == "1" and frame["user_id"] == "2"
            assert isinstance(frame["time"], str) and frame["time_ts"] == int(server.clock.now())
            assert "id" not in frame
        pong = await other.request({"type": "ping_request"})
        assert pong["success"] and other.pushes == []


async def test_push_offline_survives_restart_and_replays(start_server: Any) -> None:
    """A push for an offline user is stored, survives a restart, and is replayed."""
    first: Server = await start_server()
    async with first.connect() as c:
        reg = await first.register(c)
    await push(first, reg["user_id"], 2)
    await first.app.stop()
    second: Server = await start_server()
    async with second.connect() as c:
        auth = await c.request({"type": "auth_request", "token": reg["token"], "last_seq": 0})
        assert auth["last_seq"] == 2 and auth["recovered"] is True
        assert [p["seq"] for p in await collect(c, 2)] == [1, 2]


@pytest.mark.both_loops
async def test_replay_from_last_seq_without_duplicates(server: Server) -> None:
    """auth_request {last_seq} replays exactly (last_seq, S], then live pushes follow."""
    async with server.connect() as c:
        reg = await server.register(c)
        await push(server, reg["user_id"], 3)
        assert [p["seq"] for p in await collect(c, 3)] == [1, 2, 3]
    async with server.connect() as c:
        auth = await c.request({"type": "auth_request", "token": reg["token"], "last_seq": 1})
        assert auth["last_seq"] == 3 and auth["recovered"] is True
        await push(server, reg["user_id"])
        assert [p["seq"] for p in await collect(c, 3)] == [2, 3, 4]
        pong = await c.request({"type": "ping_request"})
        assert pong["success"] and c.pushes == []


async def test_replay_last_seq_ahead_is_not_recovered(server: Server) -> None:
    """A last_seq greater than the user's seq gives recovered false and no replay."""
    async with server.connect() as c:
        reg = await server.register(c)
    async with server.connect() as c:
        auth = await c.request({"type": "auth_request", "token": reg["token"], "last_seq": 9})
        assert auth["last_seq"] == 0 and auth["recovered"] is False


async def test_pruned_pushes_not_recovered_and_seq_keeps_rising(server: Server) -> None:
    """After retention, pushes are pruned; replay says recovered false; seq never repeats."""
    async with server.connect() as c:
        reg = await server.register(c)
    await push(server, reg["user_id"], 2)
    server.clock.advance(8 * 86400)
    await server.app.prune()
    await push(server, reg["user_id"])
    async with server.connect() as c:
        auth = await c.request({"type": "auth_request", "token": reg["token"], "last_seq": 0})
        assert auth["last_seq"] == 3 and auth["recovered"] is False
        assert (await c.push())["seq"] == 3


async def test_replay_capped_at_1000_newest(server: Server) -> None:
    """A replay sends at most 1,000 pushes, the newest, with recovered false."""
    async with server.connect() as c:
        reg = await server.register(c)
    await push(server, reg["user_id"], 1005)
    async with server.connect() as c:
        auth = await c.request({"type": "auth_request", "token": reg["token"], "last_seq": 0})
        assert auth["recovered"] is False and auth["last_seq"] == 1005
        seqs = [p["seq"] for p in await collect(c, 1000)]
        assert seqs == list(range(6, 1006))


async def test_original_app_gets_undelivered_pushes_once(server: Server) -> None:
    """Without last_seq, the first authenticated request brings the never-sent pushes, once."""
    async with server.connect() as c:
        reg = await server.register(c)
    await push(server, reg["user_id"], 2)
    async with server.connect() as c:
        pong = await c.request({"type": "ping_request", "token": reg["token"]})
        assert pong["success"]
        assert [p["seq"] for p in await collect(c, 2)] == [1, 2]
        # The writer records a push as delivered before it writes the next frame.
        assert (await c.request({"type": "ping_request"}))["success"]
    assert server.app.recorder is not None
    await server.app.recorder.flush()
    async with server.connect() as c:
        assert (await c.request({"type": "ping_request", "token": reg["token"]}))["success"]
        await push(server, reg["user_id"])
        assert (await c.push())["seq"] == 3


async def test_notify_ack_keeps_pushes_for_other_devices(server: Server) -> None:
    """notify_ack never shortens retention: another device can still replay."""
    async with server.connect() as c:
        reg = await server.register(c)
        await push(server, reg["user_id"], 2)
        await collect(c, 2)
        await c.send({"type": "notify_ack", "seq": 2})
    async with server.connect() as c:
        await c.request({"type": "auth_request", "token": reg["token"], "last_seq": 0})
        assert [p["seq"] for p in await collect(c, 2)] == [1, 2]


@pytest.mark.both_loops
async def test_stalled_socket_closed_others_keep_receiving(start_server: Any) -> None:
    """A socket that stops reading is closed (1013); the user's other socket gets everything."""
    server: Server = await start_server(outbound_queue=8)
    async with server.connect() as reader:
        reg = await server.register(reader)
        async with connect(server.ws_url, max_queue=1, max_size=None) as stalled:
            await stalled.send(f'{{"type":"auth_request","token":"{reg["token"]}"}}')
            big = "x" * 60_000
            metrics = server.app.services.metrics  # type: ignore[union-attr]
            seen = 0
            for _ in range(100):
                await push(server, reg["user_id"], 5, nickname=big)
                seen += len(await collect(reader, 5))
                if metrics.value("lovewire_sockets_closed_slow_total"):
                    break
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(stalled.recv(), 10)
            assert stalled.close_code == 1013
        assert seen < 500, "the stalled socket was never closed"
        assert (await reader.request({"type": "ping_request"}))["success"]


async def test_push_to_caller_comes_after_its_response(server: Server) -> None:
    """A push caused by a request reaches the caller's socket after that request's response."""
    async with server.connect() as a, server.connect() as b:
        reg_a = await server.register(a)
        reg_b = await server.register(b)
        assert (await a.request({"type": "crush_add_request", "crush_tel": reg_b["tel"]}))[
            "success"
        ]
        assert (await b.push())["type"] == "crush_notify"
        await b.send({"type": "crush_add_request", "crush_tel": reg_a["tel"]})
        first, second = await b.recv(), await b.recv()
        assert first["type"] == "crush_add_response" and first["matched"] is True
        assert second["type"] == "crush_match_notify" and second["user_id"] == reg_a["user_id"]


async def test_expired_token_socket_gets_session_end_not_pushes(server: Server) -> None:
    """A socket whose token expired is logged out: session_end_notify, then no pushes."""
    async with server.connect() as c:
        reg = await server.register(c)
        server.clock.advance(31 * 86400)
        await push(server, reg["user_id"])
        assert await c.recv() == {"type": "session_end_notify", "reason": "expired"}
        refused = await c.request({"type": "crush_list_request"})
        assert refused["error_no"] == 5 and c.pushes == []


@pytest.mark.parametrize("order", ["reversed", "last"])
async def test_pushes_published_out_of_order_arrive_in_seq_order(
    server: Server, order: str
) -> None:
    """Pushes published out of order, or with a gap, reach the socket in seq order, all."""
    async with server.connect() as c:
        reg = await server.register(c)
        await push(server, reg["user_id"], 3, order=order)
        assert [p["seq"] for p in await collect(c, 3)] == [1, 2, 3]
        await push(server, reg["user_id"])
        assert (await c.push())["seq"] == 4


async def test_gap_wider_than_a_replay_is_filled_whole(start_server: Any) -> None:
    """A gap of more than MAX_REPLAY pushes is filled in full, not cut at the first read."""
    server: Server = await start_server(outbound_queue=4096)
    async with server.connect() as c:
        reg = await server.register(c)
        await push(server, reg["user_id"], 1005, order="last")
        assert [p["seq"] for p in await collect(c, 1005)] == list(range(1, 1006))
