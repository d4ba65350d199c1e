"""The picture community (秀爱社区) through real sockets and real HTTP."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
import re
import struct
import zlib
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.conftest import Client, Server

APP_TIME = re.compile(r"^\d{4}-[1-9]\d?-[1-9]\d? (?:1?\d|2[0-3]):[0-5]\d$")

REPLY_SHAPE = {
    "comment_id": "str",
    "comment_response_own": "str",
    "comment_response_msg": "str",
    "user_id": "str",
    "reply_to": "str",
    "comment_response_time": "str",
    "comment_response_time_ts": "int",
}
COMMENT_SHAPE = {
    "comment_id": "str",
    "comment_own": "str",
    "comment_msg": "str",
    "comment_response": [REPLY_SHAPE],
    "user_id": "str",
    "comment_time": "str",
    "comment_time_ts": "int",
    "comment_response_num": "str",
}
POST_SHAPE = {
    "picture_id": "str",
    "picture_publish_time": "str",
    "picture_content": "str",
    "picture_words": "str",
    "picture_like_num": "str",
    "picture_owner": "str",
    "picture_comment": [COMMENT_SHAPE],
    "picture_comment_num": "str",
    "user_id": "str",
    "liked_by_me": "bool",
    "picture_publish_time_ts": "int",
}
FEED_SHAPE = {
    "type": "str",
    "information": [POST_SHAPE],
    "success": "bool",
    "error_no": "int",
    "err_msg": "str",
}

_colour = 0


def picture(fmt: str = "JPEG", size: tuple[int, int] = (8, 6)) -> bytes:
    """A small real picture, different from every earlier one."""
    global _colour
    _colour += 1
    out = io.BytesIO()
    colour = (_colour % 256, _colour // 256 % 256, 77)
    Image.new("RGB", size, colour).save(out, format=fmt)
    return out.getvalue()


def uri(raw: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def shape(value: Any) -> Any:
    """Field names and JSON types of a frame, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def stored_files(server: Server) -> list[Path]:
    media = server.app.settings.data_dir / "uploads"
    return sorted(p for p in media.rglob("*") if p.is_file()) if media.exists() else []


async def upload(client: Client, words: str = "hello!", **extra: Any) -> dict[str, Any]:
    frame = {"type": "picture_upload_request", "words": words, "picture": uri(picture())}
    frame.update(extra)
    return await client.request(frame)


async def feed(client: Client, **extra: Any) -> dict[str, Any]:
    return await client.request({"type": "picture_info_request", **extra})


async def comment(client: Client, picture_id: str | int, msg: str, **extra: Any) -> dict[str, Any]:
    frame = {"type": "picture_comment_request", "picture_id": picture_id, "msg": msg, **extra}
    return await client.request(frame)


async def get(server: Server, path: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as http, http.get(server.http_url + path) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def post_bytes(server: Server, path: str, body: bytes) -> tuple[int, Any]:
    """POST a large body as a stream."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.http_url + path, data=io.BytesIO(body)) as resp,
    ):
        return resp.status, json.loads(await resp.text())


async def no_push_pending(client: Client) -> None:
    """Assert nothing was pushed to client: a push would arrive before this ping's answer."""
    pong = await client.request({"type": "ping_request"})
    assert pong["success"]
    assert client.pushes == []


async def test_feed_full_post_matches_golden_shape(server: Server) -> None:
    """Every field of a post, comment and reply has its contract name and JSON type."""
    async with server.connect() as a, server.connect() as b:
        me = await server.register(a, nickname="zhang")
        other = await server.register(b, nickname="wang")
        posted = await upload(a, "it's a picture")
        pid = posted["picture_id"]
        assert (await b.request({"type": "picture_like_request", "picture_id": pid}))["success"]
        top = await comment(b, pid, "hello")
        reply = await comment(a, pid, "hi", reply_to=top["comment_id"])
        answer = await comment(b, int(pid), "hi again", reply_to=int(reply["comment_id"]))
        shown = await feed(b)
    assert shape(shown) == FEED_SHAPE
    post = shown["information"][0]
    assert post["picture_id"] == pid and post["user_id"] == me["user_id"]
    assert post["picture_owner"] == "zhang" and post["picture_words"] == "it's a picture"
    assert post["picture_like_num"] == "1" and post["liked_by_me"] is True
    assert post["picture_comment_num"] == "1"
    assert post["picture_content"] == posted["picture_content"]
    assert APP_TIME.match(post["picture_publish_time"])
    [c] = post["picture_comment"]
    assert (c["comment_own"], c["comment_msg"], c["user_id"]) == ("wang", "hello", other["user_id"])
    assert c["comment_id"] == top["comment_id"] and c["comment_response_num"] == "2"
    assert [
        (r["comment_response_own"], r["comment_response_msg"]) for r in c["comment_response"]
    ] == [
        ("zhang", "hi"),
        ("wang", "hi again"),
    ]
    assert [r["comment_id"] for r in c["comment_response"]] == [
        reply["comment_id"],
        answer["comment_id"],
    ]
    assert [r["reply_to"] for r in c["comment_response"]] == [
        top["comment_id"],
        reply["comment_id"],
    ]


async def test_feed_empty_community_returns_empty_information(server: Server) -> None:
    """With no posts the feed is an empty list, not an absent field."""
    async with server.connect() as a:
        await server.register(a)
        shown = await feed(a)
    assert shown == {
        "type": "picture_info_response",
        "information": [],
        "success": True,
        "error_no": 0,
        "err_msg": "",
    }


async def test_feed_paging_before_and_limit_walk_older_posts(roomy: Server) -> None:
    """20 newest first; `before` gives older ones (even a deleted id); `limit` 1..20."""
    async with roomy.connect() as a:
        await roomy.register(a)
        ids = [int((await upload(a, f"post {i}"))["picture_id"]) for i in range(25)]
        first = await feed(a)
        assert [int(p["picture_id"]) for p in first["information"]] == ids[::-1][:20]
        rest = await feed(a, before=first["information"][-1]["picture_id"])
        assert [int(p["picture_id"]) for p in rest["information"]] == ids[::-1][20:]
        three = await feed(a, limit=3, before=ids[10])
        assert [int(p["picture_id"]) for p in three["information"]] == [ids[9], ids[8], ids[7]]
        gone = await a.request({"type": "picture_delete_request", "picture_id": ids[10]})
        assert gone["success"]
        after_gone = await feed(a, limit=2, before=str(ids[10]))
        assert [int(p["picture_id"]) for p in after_gone["information"]] == [ids[9], ids[8]]
        for bad in (0, 21, "x"):
            refused = await feed(a, limit=bad)
            assert (refused["success"], refused["error_no"]) == (False, 2)


async def test_feed_popular_post_shows_10_newest_and_list_pages_rest(roomy: Server) -> None:
    """A post carries its 10 newest comments with 3 replies each; the list pages the rest."""
    async with roomy.connect() as a:
        await roomy.register(a)
        pid = (await upload(a))["picture_id"]
        cids = [(await comment(a, pid, f"c{i}"))["comment_id"] for i in range(45)]
        for i in range(25):
            await comment(a, pid, f"r{i}", reply_to=cids[-1])
        post = (await feed(a))["information"][0]
        assert post["picture_comment_num"] == "45"
        shown = [c["comment_id"] for c in post["picture_comment"]]
        assert shown == cids[35:]
        newest = post["picture_comment"][-1]
        assert newest["comment_response_num"] == "25"
        assert [r["comment_response_msg"] for r in newest["comment_response"]] == [
            f"r{i}" for i in range(22, 25)
        ]
        listing = {"type": "picture_comment_list_request", "picture_id": pid}
        page0 = await a.request(listing)
        assert [c["comment_id"] for c in page0["picture_comment"]] == cids[25:]
        assert page0["picture_comment"][10:] == post["picture_comment"]
        assert "comment_response" not in page0
        page1 = await a.request({**listing, "before": cids[25]})
        assert [c["comment_id"] for c in page1["picture_comment"]] == cids[5:25]
        page2 = await a.request({**listing, "before": cids[5]})
        assert [c["comment_id"] for c in page2["picture_comment"]] == cids[:5]
        page3 = await a.request({**listing, "before": cids[0]})
        assert page3["picture_comment"] == [] and page3["success"]
        missing = await a.request({**listing, "picture_id": "999"})
        assert missing["error_no"] == 8


async def test_feed_query_count_bounded_by_posts_and_comments(roomy: Server) -> None:
    """A feed costs the same few queries with 1 post or 20 posts full of comments."""
    statements: list[str] = []
    assert roomy.app.services is not None
    for db in roomy.app.services.store._all:  # type: ignore[attr-defined]
        await db.set_trace_callback(statements.append)

    async def count_feed(client: Client) -> int:
        statements.clear()
        assert (await feed(client))["success"]
        return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT"))

    async with roomy.connect() as a:
        await roomy.register(a)
        pid = (await upload(a))["picture_id"]
        await comment(a, pid, "c")
        small = await count_feed(a)
        for _ in range(19):
            pid = (await upload(a))["picture_id"]
            top = await comment(a, pid, "c")
            for i in range(3):
                await comment(a, pid, f"c{i}")
                await comment(a, pid, f"r{i}", reply_to=top["comment_id"])
        large = await count_feed(a)
    assert small == large == 3


async def test_upload_websocket_file_served_with_content_type(server: Server) -> None:
    """An uploaded PNG is served at its picture_content path as image/png."""
    async with server.connect() as a:
        await server.register(a)
        raw = picture("PNG")
        done = await a.request(
            {"type": "picture_upload_request", "words": "", "picture": uri(raw, "image/png")}
        )
    assert done["success"] and done["picture_id"] == "1"
    assert re.match(r"^/uploads/[0-9a-f]{2}/[0-9a-f]{64}\.png$", done["picture_content"])
    status, content_type, body = await get(server, done["picture_content"])
    assert status == 200 and content_type == "image/png"
    with Image.open(io.BytesIO(body)) as image:
        assert image.format == "PNG" and image.size == (8, 6)


async def test_upload_legacy_route_accepts_app_body(server: Server) -> None:
    """The app's HTTP body (line-broken base64, escaped slashes, tel, token) posts a picture."""
    async with server.connect() as a:
        reg = await server.register(a, nickname="zhang")
        encoded = base64.encodebytes(picture()).decode()
        body = json.dumps(
            {
                "type": "picture_upload_request",
                "token": reg["token"],
                "tel": reg["tel"],
                "words": "hello!",
                "picture": "data:image/jpeg;base64," + encoded,
            }
        ).replace("/", "\\/")
        status, done = await server.post("/index.php?r=picture/upload", body)
        assert status == 200 and done["type"] == "picture_upload_response", done
        assert done["success"] and done["picture_id"] == "1"
        post = (await feed(a))["information"][0]
    assert post["picture_words"] == "hello!" and post["picture_owner"] == "zhang"
    assert (await get(server, done["picture_content"]))[1] == "image/jpeg"


async def test_upload_legacy_route_raw_line_breaks_in_json_accepted(server: Server) -> None:
    """A hand-built body with raw (unescaped) line breaks inside the base64 still posts."""
    async with server.connect() as a:
        reg = await server.register(a)
        encoded = base64.encodebytes(picture()).decode()
        assert "\n" in encoded
        body = (
            '{"type":"picture_upload_request","token":"' + reg["token"] + '","words":"hi",'
            '"picture":"data:image/jpeg;base64,' + encoded + '"}'
        )
        status, done = await server.post("/index.php?r=picture/upload", body)
        assert status == 200 and done["success"], done


async def test_upload_public_url_makes_absolute_content(start_server: Callable[..., Any]) -> None:
    """With LOVEWIRE_PUBLIC_URL set, picture_content is an absolute URL."""
    server: Server = await start_server(public_url="https://pics.example/")
    async with server.connect() as a:
        await server.register(a)
        done = await upload(a)
    assert done["picture_content"].startswith("https://pics.example/uploads/")


def _bomb() -> str:
    raw = bytearray(picture("PNG", (1, 1)))
    ihdr = bytearray(raw[16:29])
    ihdr[0:8] = struct.pack(">II", 60_000, 60_000)
    raw[16:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return uri(bytes(raw), "image/png")


def _noise_png(side: int) -> bytes:
    out = io.BytesIO()
    noise = random.Random(side).randbytes(side * side * 3)
    Image.frombytes("RGB", (side, side), noise).save(out, format="PNG")
    assert len(out.getvalue()) > 4096
    return out.getvalue()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda: "data:image/jpeg;base64,%%%not-base64%%%", id="bad-base64"),
        pytest.param(lambda: uri(b"<html>not a picture</html>"), id="not-an-image"),
        pytest.param(lambda: uri(picture("PNG"), "image/jpeg"), id="png-declared-jpeg"),
        pytest.param(lambda: uri(_noise_png(64), "image/png"), id="too-large"),
        pytest.param(_bomb, id="decompression-bomb"),
        pytest.param(lambda: uri(picture("BMP"), "image/bmp"), id="bmp"),
    ],
)
async def test_upload_refused_payload_error_11_nothing_stored(
    start_server: Callable[..., Any], payload: Callable[[], str]
) -> None:
    """Each refused picture gets error 11 over both routes and leaves no row and no file."""
    server: Server = await start_server(max_upload=4096)
    async with server.connect() as a:
        reg = await server.register(a)
        frame = {"type": "picture_upload_request", "words": "x", "picture": payload()}
        over_ws = await a.request(frame)
        status, over_http = await server.post(
            "/index.php?r=picture/upload", {**frame, "token": reg["token"]}
        )
        assert (await feed(a))["information"] == []
    assert (over_ws["success"], over_ws["error_no"]) == (False, 11)
    assert status == 200 and over_http["error_no"] == 11
    assert over_http["type"] == "picture_upload_response"
    assert stored_files(server) == []


@pytest.mark.parametrize("token", [None, "", "not-a-token-at-all"])
async def test_upload_http_without_valid_token_error_5(server: Server, token: str | None) -> None:
    """The legacy route without a token, or with a bad one, is error 5 and stores nothing."""
    frame: dict[str, Any] = {"tel": "18782946332", "words": "x", "picture": uri(picture())}
    if token is not None:
        frame["token"] = token
    status, done = await server.post("/index.php?r=picture/upload", frame)
    assert status == 200 and (done["success"], done["error_no"]) == (False, 5)
    assert done["type"] == "picture_upload_response"
    assert stored_files(server) == []


async def test_upload_socket_not_logged_in_error_5(server: Server) -> None:
    """A socket that is not logged in cannot post, like or read the feed."""
    async with server.connect() as a:
        for frame in (
            {"type": "picture_upload_request", "picture": uri(picture())},
            {"type": "picture_info_request"},
            {"type": "picture_like_request", "picture_id": "1"},
        ):
            assert (await a.request(frame))["error_no"] == 5


async def test_upload_words_over_500_error_2(server: Server) -> None:
    """words of 501 characters are error 2; 500 are fine."""
    async with server.connect() as a:
        await server.register(a)
        assert (await upload(a, "字" * 501))["error_no"] == 2
        assert (await upload(a, "字" * 500))["success"]
        assert (await a.request({"type": "picture_upload_request"}))["error_no"] == 2


async def test_upload_over_hourly_limit_error_6_until_hour_passes(
    start_server: Callable[..., Any],
) -> None:
    """uploads_per_hour caps posts; retry_after says when. A picture refused after decoding
    counts (contract section 2), one refused before (bad base64) does not."""
    server: Server = await start_server(uploads_per_hour=3)
    async with server.connect() as a:
        await server.register(a)
        assert (await upload(a, picture="data:image/jpeg;base64,%%%"))["error_no"] == 11
        assert (await upload(a, picture=uri(b"nope")))["error_no"] == 11
        assert (await upload(a))["success"]
        server.clock.advance(600)
        assert (await upload(a))["success"]
        refused = await upload(a)
        assert (refused["error_no"], refused["retry_after"]) == (6, 3000)
        assert (await upload(a, picture=uri(b"nope")))["error_no"] == 6
        server.clock.advance(3000)
        assert (await upload(a))["success"]


async def test_upload_same_client_msg_id_returns_first_result(server: Server) -> None:
    """A retried upload with the same client_msg_id posts once; another user's is separate."""
    async with server.connect() as a, server.connect() as b:
        await server.register(a)
        await server.register(b)
        first = await upload(a, client_msg_id="m-1")
        again = await upload(a, client_msg_id="m-1")
        other = await upload(b, client_msg_id="m-1")
        assert again == first and other["picture_id"] != first["picture_id"]
        assert len((await feed(a))["information"]) == 2
    assert len(stored_files(server)) == 2


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


async def test_picture_delete_stranger_9_owner_removes_post_and_file(server: Server) -> None:
    """Only the owner deletes (9, 8 otherwise); the post, likes, comments and file go."""
    async with server.connect() as a, server.connect() as b:
        await server.register(a)
        await server.register(b)
        done = await upload(a)
        pid = done["picture_id"]
        await b.request({"type": "picture_like_request", "picture_id": pid})
        await comment(b, pid, "nice")
        delete = {"type": "picture_delete_request", "picture_id": pid}
        assert (await b.request(delete))["error_no"] == 9
        assert (await get(server, done["picture_content"]))[0] == 200
        assert (await a.request(delete))["success"]
        assert (await a.request(delete))["error_no"] == 8
        assert (await feed(a))["information"] == []
        assert (await comment(b, pid, "late"))["error_no"] == 8
    assert (await get(server, done["picture_content"]))[0] == 404
    assert stored_files(server) == []


async def test_picture_delete_shared_file_kept_while_used(server: Server) -> None:
    """Two posts of the same picture share one file, removed with the last of them."""
    async with server.connect() as a, server.connect() as b:
        await server.register(a)
        await server.register(b)
        same = uri(picture())
        first = await upload(a, picture=same)
        second = await upload(b, picture=same)
        assert first["picture_content"] == second["picture_content"]
        path = first["picture_content"]
        await a.request({"type": "picture_delete_request", "picture_id": first["picture_id"]})
        assert (await get(server, path))[0] == 200
        await b.request({"type": "picture_delete_request", "picture_id": second["picture_id"]})
        assert (await get(server, path))[0] == 404


async def test_upload_legacy_route_max_size_app_encoding_accepted(
    start_server: Callable[..., Any],
) -> None:
    """A picture of exactly max_upload bytes fits in the app's line-broken, escaped JSON body."""
    raw = _noise_png(900)
    server: Server = await start_server(max_upload=len(raw))
    async with server.connect() as a:
        reg = await server.register(a)
    body = json.dumps(
        {
            "token": reg["token"],
            "words": "big",
            "picture": "data:image/png;base64," + base64.encodebytes(raw).decode(),
        }
    ).replace("/", "\\/")
    assert len(body) > len(raw) * 4 // 3 + 65536
    status, done = await post_bytes(server, "/index.php?r=picture/upload", body.encode())
    assert status == 200 and done["success"], done


async def test_upload_legacy_route_body_over_limit_413_error_11(
    start_server: Callable[..., Any],
) -> None:
    """A body far over the size limit gets HTTP 413 with the error-11 frame."""
    server: Server = await start_server(max_upload=4096)
    status, done = await post_bytes(server, "/index.php?r=picture/upload", b"x" * 200_000)
    assert status == 413
    assert (done["type"], done["error_no"]) == ("picture_upload_response", 11)


@pytest.mark.parametrize("tel", [18615794931, None, ["x"], "anything"])
async def test_upload_tel_informational_any_value_accepted(server: Server, tel: Any) -> None:
    """`tel` in an upload is informational: whatever it holds, the token decides."""
    async with server.connect() as a:
        await server.register(a)
        done = await upload(a, tel=tel)
        assert done["success"], done
