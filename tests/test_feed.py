"""The picture feed: golden shape, paging, popular posts, query count."""

from __future__ import annotations

import pytest

from tests.conftest import Client, Server
from tests.helpers_pictures import APP_TIME, FEED_SHAPE, comment, feed, shape, upload


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


@pytest.mark.sqlite_only
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
