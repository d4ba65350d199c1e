"""Picture comments: pushes, replies, validation, limits and deletes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import Server
from tests.helpers_pictures import comment, feed, no_push_pending, upload


async def test_comment_push_owner_and_replied_author_not_actor(server: Server) -> None:
    """A comment tells the owner; a reply also tells the author answered; nobody hears self."""
    async with (
        server.connect() as a1,
        server.connect() as a2,
        server.connect() as b,
        server.connect() as c,
    ):
        owner = await server.register(a1, nickname="zhang")
        await a2.request({"type": "auth_request", "token": owner["token"]})
        wang = await server.register(b, nickname="wang")
        await server.register(c, nickname="li")
        pid = (await upload(a1))["picture_id"]
        top = await comment(b, pid, "hello")
        for sock in (a1, a2):
            push = await sock.push()
            assert {k: v for k, v in push.items() if k not in ("seq", "time", "time_ts")} == {
                "type": "picture_comment_notify",
                "picture_id": pid,
                "comment_id": top["comment_id"],
                "user_id": wang["user_id"],
                "nickname": "wang",
                "msg": "hello",
                "reply_to": None,
            }
        await no_push_pending(b)
        reply = await comment(c, pid, "hi wang", reply_to=top["comment_id"])
        for sock in (a1, a2, b):
            push = await sock.push()
            assert push["comment_id"] == reply["comment_id"]
            assert push["reply_to"] == top["comment_id"] and push["nickname"] == "li"
        await no_push_pending(c)
        own = await comment(a1, pid, "thanks both", reply_to=reply["comment_id"])
        push = await c.push()
        assert push["comment_id"] == own["comment_id"] and push["reply_to"] == reply["comment_id"]
        for sock in (a1, a2, b, c):
            await no_push_pending(sock)


async def test_comment_reply_to_reply_filed_under_top_level(server: Server) -> None:
    """Replies to replies sit flat under their top-level comment, in order."""
    async with server.connect() as a:
        await server.register(a)
        pid = (await upload(a))["picture_id"]
        top = await comment(a, pid, "top")
        first = await comment(a, pid, "first", reply_to=top["comment_id"])
        deep = await comment(a, pid, "deep", reply_to=first["comment_id"])
        deeper = await comment(a, pid, "deeper", reply_to=deep["comment_id"])
        second = await comment(a, pid, "second top")
        post = (await feed(a))["information"][0]
    assert post["picture_comment_num"] == "2"
    assert [c["comment_id"] for c in post["picture_comment"]] == [
        top["comment_id"],
        second["comment_id"],
    ]
    replies = post["picture_comment"][0]["comment_response"]
    assert [(r["comment_response_msg"], r["reply_to"]) for r in replies] == [
        ("first", top["comment_id"]),
        ("deep", first["comment_id"]),
        ("deeper", deep["comment_id"]),
    ]
    assert deeper["success"] and post["picture_comment"][1]["comment_response"] == []


async def test_comment_reply_to_other_picture_or_missing_error_8(server: Server) -> None:
    """reply_to must be a comment of the same picture; unknown pictures are error 8."""
    async with server.connect() as a:
        await server.register(a)
        p1 = (await upload(a))["picture_id"]
        p2 = (await upload(a))["picture_id"]
        elsewhere = await comment(a, p1, "on p1")
        assert (await comment(a, p2, "x", reply_to=elsewhere["comment_id"]))["error_no"] == 8
        assert (await comment(a, p2, "x", reply_to="777"))["error_no"] == 8
        assert (await comment(a, "777", "x"))["error_no"] == 8
        assert (await comment(a, p2, "x", reply_to="abc"))["error_no"] == 2


async def test_comment_msg_length_1_to_500_else_error_2(server: Server) -> None:
    """An empty, blank or 501-character msg is error 2; 1 and 500 characters are fine."""
    async with server.connect() as a:
        await server.register(a)
        pid = (await upload(a))["picture_id"]
        for msg in ("", "   ", "长" * 501):
            assert (await comment(a, pid, msg))["error_no"] == 2
        assert (await a.request({"type": "picture_comment_request", "picture_id": pid}))[
            "error_no"
        ] == 2
        assert (await comment(a, pid, "x"))["success"]
        assert (await comment(a, pid, "长" * 500))["success"]


async def test_comment_over_minute_limit_error_6(start_server: Callable[..., Any]) -> None:
    """comments_per_minute caps comments; error 6 comes before not-found; a minute later ok."""
    server: Server = await start_server(comments_per_minute=2)
    async with server.connect() as a:
        await server.register(a)
        pid = (await upload(a))["picture_id"]
        assert (await comment(a, "404", "refused"))["error_no"] == 8
        assert (await comment(a, pid, "one"))["success"]
        assert (await comment(a, pid, "two"))["success"]
        refused = await comment(a, pid, "three")
        assert (refused["error_no"], refused["retry_after"]) == (6, 60)
        assert (await comment(a, "404", "three"))["error_no"] == 6
        server.clock.advance(60)
        assert (await comment(a, pid, "three"))["success"]


async def test_comment_same_client_msg_id_returns_first_comment(server: Server) -> None:
    """A retried comment with the same client_msg_id is stored and pushed once."""
    async with server.connect() as a, server.connect() as b:
        await server.register(a)
        await server.register(b)
        pid = (await upload(a))["picture_id"]
        first = await comment(b, pid, "hello", client_msg_id=42)
        again = await comment(b, pid, "hello", client_msg_id="42")
        assert again == first
        assert (await a.push())["comment_id"] == first["comment_id"]
        assert (await feed(a))["information"][0]["picture_comment_num"] == "1"
        await no_push_pending(a)


async def test_comment_delete_author_or_owner_only_replies_go(server: Server) -> None:
    """A stranger may not delete a comment (9); the owner may, and its replies go with it."""
    async with server.connect() as a, server.connect() as b, server.connect() as c:
        await server.register(a)
        await server.register(b)
        await server.register(c)
        pid = (await upload(a))["picture_id"]
        top = await comment(b, pid, "by b")
        await comment(c, pid, "reply by c", reply_to=top["comment_id"])
        other = await comment(c, pid, "by c")
        delete = {"type": "picture_comment_delete_request", "comment_id": top["comment_id"]}
        assert (await c.request(delete))["error_no"] == 9
        assert (await a.request(delete)) == {
            "type": "picture_comment_delete_response",
            "success": True,
            "error_no": 0,
            "err_msg": "",
        }
        assert (await a.request(delete))["error_no"] == 8
        own = {"type": "picture_comment_delete_request", "comment_id": other["comment_id"]}
        assert (await c.request(own))["success"]
        post = (await feed(a))["information"][0]
    assert post["picture_comment"] == [] and post["picture_comment_num"] == "0"
