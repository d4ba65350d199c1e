"""Picture likes: counts under concurrency, unlike, and who gets the push."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from tests.conftest import Server
from tests.helpers_pictures import APP_TIME, feed, no_push_pending, upload


async def test_like_fifty_users_at_once_count_fifty(roomy: Server) -> None:
    """50 users liking at the same moment count exactly 50, each pushed to the owner once."""
    async with AsyncExitStack() as stack:
        owner = await stack.enter_async_context(roomy.connect())
        await roomy.register(owner)
        pid = (await upload(owner))["picture_id"]
        fans = [await stack.enter_async_context(roomy.connect()) for _ in range(50)]
        for i, fan in enumerate(fans):
            await roomy.register(fan, nickname=f"fan{i}")
        like = {"type": "picture_like_request", "picture_id": pid}
        answers = await asyncio.gather(*(fan.request(like) for fan in fans))
        assert all(a["success"] for a in answers)
        assert sorted(int(a["picture_like_num"]) for a in answers) == list(range(1, 51))
        pushes = [await owner.push() for _ in range(50)]
        assert {p["nickname"] for p in pushes} == {f"fan{i}" for i in range(50)}
        assert [p["seq"] for p in pushes] == list(range(1, 51))
        assert (await feed(owner))["information"][0]["picture_like_num"] == "50"


async def test_like_twice_counts_once_and_unlike_takes_it_back(server: Server) -> None:
    """Liking again changes nothing; unlike removes the like; unliking again changes nothing."""
    async with server.connect() as a, server.connect() as b:
        await server.register(a)
        await server.register(b)
        pid = (await upload(a))["picture_id"]
        like = {"type": "picture_like_request", "picture_id": pid}
        unlike = {"type": "picture_unlike_request", "picture_id": pid}
        assert (await b.request(like))["picture_like_num"] == "1"
        assert (await b.request(like))["picture_like_num"] == "1"
        assert (await a.request(like))["picture_like_num"] == "2"
        assert (await feed(b))["information"][0]["liked_by_me"] is True
        done = await b.request(unlike)
        assert done == {
            "type": "picture_unlike_response",
            "success": True,
            "error_no": 0,
            "err_msg": "",
            "picture_like_num": "1",
        }
        assert (await b.request(unlike))["picture_like_num"] == "1"
        assert (await feed(b))["information"][0]["liked_by_me"] is False
        for missing in (like, unlike):
            assert (await b.request({**missing, "picture_id": "404"}))["error_no"] == 8


async def test_like_push_owner_two_sockets_liker_none_once_ever(server: Server) -> None:
    """The owner's two sockets both get the like push; the liker gets none; a re-like none."""
    async with server.connect() as a1, server.connect() as a2, server.connect() as b:
        owner = await server.register(a1, nickname="zhang")
        auth = await a2.request({"type": "auth_request", "token": owner["token"]})
        assert auth["success"]
        fan = await server.register(b, nickname="wang")
        pid = (await upload(a1))["picture_id"]
        like = {"type": "picture_like_request", "picture_id": pid}
        assert (await a1.request(like))["success"]
        assert (await b.request(like))["picture_like_num"] == "2"
        for sock in (a1, a2):
            push = await sock.push()
            assert {k: push[k] for k in ("type", "picture_id", "user_id", "nickname")} == {
                "type": "picture_like_notify",
                "picture_id": pid,
                "user_id": fan["user_id"],
                "nickname": "wang",
            }
            assert push["picture_like_num"] == "2" and push["seq"] == 1
            assert APP_TIME.match(push["time"]) and isinstance(push["time_ts"], int)
        await b.request({"type": "picture_unlike_request", "picture_id": pid})
        assert (await b.request(like))["success"]
        for sock in (a1, a2, b):
            await no_push_pending(sock)
