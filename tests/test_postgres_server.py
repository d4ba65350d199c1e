"""End to end on PostgreSQL: real servers, real sockets, the database in a schema of the
test's own. Two servers given one URL share it, as two processes of a deployment do
(without a bus between them: a push reaches the other process's sockets by replay).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.conftest import Client, Server
from tests.helpers_pictures import comment, feed, upload
from tests.helpers_postgres import TEST_URL

pytestmark = pytest.mark.needs_services

#: Limits roomy enough for one test's many requests.
ROOMY = {
    "database_url": TEST_URL,
    "requests_per_second": 1_000_000,
    "sms_interval": 0,
    "sms_tel_hourly": 10_000,
    "sms_tel_daily": 10_000,
    "sms_addr_hourly": 10_000,
}


async def replay(server: Server, token: str, last_seq: int) -> tuple[dict[str, Any], list[int]]:
    """Log a new socket in with last_seq; its auth answer and the seqs replayed."""
    auth, pushes = await replay_frames(server, token, last_seq)
    return auth, [p["seq"] for p in pushes]


async def replay_frames(
    server: Server, token: str, last_seq: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Log a new socket in with last_seq; its auth answer and the pushes replayed."""
    async with server.connect() as c:
        auth = await c.request({"type": "auth_request", "token": token, "last_seq": last_seq})
        assert auth["success"], auth
        pushes = [await c.push() for _ in range(auth["last_seq"] - last_seq)]
        pong = await c.request({"type": "ping_request"})
        assert pong["success"] and c.pushes == []
    return auth, pushes


async def test_register_upload_like_comment_crush_and_replay(start_server: Any) -> None:
    server: Server = await start_server(**ROOMY)
    async with server.connect() as a, server.connect() as b:
        owner = await server.register(a, nickname="zhang")
        fan = await server.register(b, nickname="wang")
        posted = await upload(a, words="on postgres")
        assert posted["success"], posted
        pid = posted["picture_id"]
        liked = await b.request({"type": "picture_like_request", "picture_id": pid})
        assert liked["success"] and liked["picture_like_num"] == "1"
        again = await b.request({"type": "picture_like_request", "picture_id": pid})
        assert again["picture_like_num"] == "1"
        said = await comment(b, pid, "nice")
        assert said["success"], said
        pushed = [await a.push(), await a.push()]
        assert [p["type"] for p in pushed] == ["picture_like_notify", "picture_comment_notify"]
        assert [p["seq"] for p in pushed] == [1, 2]
        post = (await feed(b))["information"][0]
        assert (post["picture_words"], post["picture_like_num"]) == ("on postgres", "1")
        assert post["picture_comment_num"] == "1" and post["liked_by_me"] is True
        assert [c["comment_msg"] for c in post["picture_comment"]] == ["nice"]

        first = await a.request({"type": "crush_add_request", "crush_tel": fan["tel"]})
        assert first["success"] and first["matched"] is False
        assert (await b.push())["type"] == "crush_notify"
        second = await b.request({"type": "crush_add_request", "crush_tel": owner["tel"]})
        assert second["success"] and second["matched"] is True
        to_a, to_b = await a.push(), await b.push()
        assert to_a["type"] == to_b["type"] == "crush_match_notify"
        assert (to_a["user_id"], to_b["user_id"]) == (fan["user_id"], owner["user_id"])
    auth, seqs = await replay(server, owner["token"], 0)
    assert (auth["last_seq"], auth["recovered"], seqs) == (3, True, [1, 2, 3])
    auth, seqs = await replay(server, fan["token"], 1)
    assert (auth["last_seq"], auth["recovered"], seqs) == (2, True, [2])


async def test_two_servers_on_one_database_act_as_one(start_server: Any) -> None:
    """A session, a picture and pushes made through one server are the other's too; a
    like counts once and a mutual crush matches once when both go at once."""
    one: Server = await start_server(**ROOMY)
    two: Server = await start_server(**ROOMY)
    async with AsyncExitStack() as stack:
        a: Client = await stack.enter_async_context(one.connect())
        b: Client = await stack.enter_async_context(two.connect())
        owner = await one.register(a, nickname="zhang")
        fan = await two.register(b, one.new_tel(), nickname="wang")  # one numbering
        pid = (await upload(a))["picture_id"]
        sockets = [await stack.enter_async_context(s.connect()) for s in (one, two) * 3]
        for c in sockets:
            auth = await c.request({"type": "auth_request", "token": fan["token"]})
            assert auth["success"], auth
        like = {"type": "picture_like_request", "picture_id": pid}
        likes = await asyncio.gather(*(c.request(like) for c in sockets))
        assert {r["picture_like_num"] for r in likes} == {"1"}
        matched = await asyncio.gather(
            a.request({"type": "crush_add_request", "crush_tel": fan["tel"]}),
            b.request({"type": "crush_add_request", "crush_tel": owner["tel"]}),
        )
        assert sorted(m["matched"] for m in matched) == [False, True]
    # The owner's pushes (the like, a crush notice if the fan's add went first, the match)
    # were published on whichever server stored them: a socket on either server replays
    # them all, in seq order, without a gap.
    replays = [await replay_frames(server, owner["token"], 0) for server in (one, two)]
    for auth, pushes in replays:
        assert auth["recovered"] is True
        assert [p["seq"] for p in pushes] == list(range(1, auth["last_seq"] + 1))
        kinds = [p["type"] for p in pushes]
        assert kinds[0] == "picture_like_notify" and kinds[-1] == "crush_match_notify"
        assert kinds.count("picture_like_notify") == kinds.count("crush_match_notify") == 1
    assert replays[0] == replays[1]
