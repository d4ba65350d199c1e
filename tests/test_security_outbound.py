"""What leaves the server stays bounded: outbound bytes per socket, feed size, broadcasts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import Server

MIB = 1 << 20
#: 500 characters of three and of four UTF-8 bytes: the longest comments, in bytes.
CJK = "爱" * 500
EMOJI = "💘" * 500


async def _seed(server: Server, owner: int, msg: str, comments: int, replies: int) -> list[int]:
    """20 posts, each with `comments` comments of `replies` replies, all `msg`; the post ids.

    Written through the storage directly: thousands of comments in a fraction of a second.
    """
    services = server.app.services
    assert services is not None
    now = int(server.clock.now())
    posts = []
    async with services.store.unit() as tx:
        for p in range(20):
            picture = await tx.pictures.create(owner, f"ab/{p:064x}.jpg", msg, None, now)
            posts.append(picture.id)
            for _ in range(comments):
                top = await tx.pictures.add_comment(picture.id, owner, msg, None, None, None, now)
                for _ in range(replies):
                    await tx.pictures.add_comment(picture.id, owner, msg, top.id, top.id, None, now)
    return posts


def _reset_peak() -> None:
    """Start VmHWM afresh at the current RSS (Linux 4.0+)."""
    Path("/proc/self/clear_refs").write_text("5")


class _Seen(logging.Handler):
    """Set an event when a record with `text` in its message is logged."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.WARNING)
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


@contextlib.contextmanager
def _logged(logger: str, text: str) -> Iterator[asyncio.Event]:
    """An event set once `logger` logs a warning holding `text`."""
    seen = _Seen(text)
    logging.getLogger(logger).addHandler(seen)
    try:
        yield seen.event
    finally:
        logging.getLogger(logger).removeHandler(seen)


def _status(key: str) -> int:
    """A figure of this process's /proc status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise LookupError(key)


@pytest.mark.parametrize("msg", [CJK, EMOJI], ids=["cjk", "emoji"])
async def test_feed_at_caps_stays_under_1mib_and_paging_returns_the_rest(
    roomy: Server, msg: str
) -> None:
    """20 posts full of 500-character comments and replies: the feed frame stays < 1 MiB,
    carries true counts, and comment and reply paging return every comment and reply."""
    async with roomy.connect() as a:
        reg = await roomy.register(a)
        posts = await _seed(roomy, int(reg["user_id"]), msg, comments=12, replies=5)
        await a.send({"type": "picture_info_request"})
        raw = await asyncio.wait_for(a.ws.recv(decode=False), 5)
        assert len(raw) < MIB
        feed = json.loads(raw)
        assert feed["success"] and len(feed["information"]) == 20
        for post in feed["information"]:
            assert post["picture_comment_num"] == "12"
            assert 0 < len(post["picture_comment"]) <= 10
            for c in post["picture_comment"]:
                assert c["comment_response_num"] == "5"
                assert len(c["comment_response"]) <= 3
        # The oldest post: page its comments, then each comment's replies, to the end.
        post = feed["information"][-1]
        assert int(post["picture_id"]) == posts[0]
        pid = post["picture_id"]
        shown = post["picture_comment"]
        listing = {"type": "picture_comment_list_request", "picture_id": pid}
        older = await a.request({**listing, "before": shown[0]["comment_id"]})
        comments = older["picture_comment"] + shown
        assert len(comments) == 12
        ids = [int(c["comment_id"]) for c in comments]
        assert ids == sorted(ids)
        for c in comments:
            got = c["comment_response"]
            while got and len(got) < 5:
                page = await a.request(
                    {**listing, "comment_id": c["comment_id"], "before": got[0]["comment_id"]}
                )
                assert page["success"] and page["comment_response"], page
                got = page["comment_response"] + got
            assert len(got) == 5 and all(r["comment_response_msg"] == msg for r in got)
            replies = [int(r["comment_id"]) for r in got]
            assert replies == sorted(replies)


async def test_reply_paging_pages_20_older_oldest_first_and_checks_the_comment(
    roomy: Server,
) -> None:
    """{picture_id, comment_id, before?} pages 20 replies at a time, oldest first; a
    comment_id that is a reply, or of another picture, is error 8."""
    async with roomy.connect() as a:
        reg = await roomy.register(a)
        owner = int(reg["user_id"])
        posts = await _seed(roomy, owner, "hi", comments=1, replies=0)
        services = roomy.app.services
        assert services is not None
        async with services.store.unit() as tx:
            top = (await tx.pictures.comments_of([posts[0]], 1))[0]
            reply_ids = [
                (
                    await tx.pictures.add_comment(
                        posts[0], owner, f"r{i}", top.id, top.id, None, int(roomy.clock.now())
                    )
                ).id
                for i in range(45)
            ]
        listing = {
            "type": "picture_comment_list_request",
            "picture_id": posts[0],
            "comment_id": str(top.id),
        }
        page = await a.request(listing)
        assert "picture_comment" not in page
        assert [int(r["comment_id"]) for r in page["comment_response"]] == reply_ids[25:]
        page = await a.request({**listing, "before": reply_ids[25]})
        assert [r["comment_response_msg"] for r in page["comment_response"]] == [
            f"r{i}" for i in range(5, 25)
        ]
        page = await a.request({**listing, "before": reply_ids[5]})
        assert [int(r["comment_id"]) for r in page["comment_response"]] == reply_ids[:5]
        for bad in ({"comment_id": reply_ids[0]}, {"picture_id": posts[1]}):
            refused = await a.request({**listing, **bad})
            assert (refused["success"], refused["error_no"]) == (False, 8)


@pytest.mark.both_loops
async def test_socket_not_reading_feeds_closed_1013_memory_stays_bounded(roomy: Server) -> None:
    """A socket that asks for full feeds and never reads is closed with 1013 once 4 MiB
    wait for it; the server starts no more of its requests and the process stays small."""
    async with roomy.connect() as a:
        reg = await roomy.register(a)
    await _seed(roomy, int(reg["user_id"]), CJK, comments=12, replies=5)
    services = roomy.app.services
    assert services is not None
    metrics = services.metrics
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", roomy.app.ws_port))
    _reset_peak()
    rss_before = _status("VmRSS")
    sent = 100
    with _logged("lovewire.connection", "closing stalled socket") as gave_up:
        async with connect(roomy.ws_url, sock=sock, max_size=None, max_queue=1) as stalled:
            await stalled.send(json.dumps({"type": "auth_request", "token": reg["token"]}))
            for _ in range(sent):
                await stalled.send('{"type":"picture_info_request"}')
            # The client reads nothing, so the server's own warning says when it gave up.
            await asyncio.wait_for(gave_up.wait(), 10)
            peak = _status("VmHWM")
            started = metrics.value("lovewire_requests_total", type="picture_info_request")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # read it all, fast
            received = 0
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(stalled.recv(), 10)
                    received += 1
            assert stalled.close_code == 1013
    assert metrics.value("lovewire_sockets_closed_slow_total") == 1
    assert started < 16, f"{started} of {sent} feed requests were started"
    assert received <= started
    assert peak < 200 * 1024, f"VmHWM {peak // 1024} MiB (VmRSS before {rss_before // 1024})"
    assert peak - rss_before < 64 * 1024
    async with roomy.connect() as other:
        assert (await other.request({"type": "auth_request", "token": reg["token"]}))["success"]


@pytest.mark.both_loops
async def test_broadcast_reaches_every_open_socket_logged_in_or_not(server: Server) -> None:
    """system_notify reaches anonymous and logged-in sockets alike; `sent` counts sockets."""
    async with server.connect() as a, server.connect() as b, server.connect() as anonymous:
        reg = await server.register(a)
        assert (await b.request({"type": "auth_request", "token": reg["token"]}))["success"]
        status, body = await server.post("/admin/broadcast", {"msg": "维护"})
        assert status == 200 and body == {"sent": 3}
        expected: dict[str, Any] = {"type": "system_notify", "msg": "维护"}
        for client in (a, b, anonymous):
            assert await client.push() == expected
        assert (await anonymous.request({"type": "ping_request"}))["success"]
