"""Secret crush (4.3): matches, anonymous notices, waiting crushes, limits and races."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest

from protocol.times import DAY
from tests.conftest import Client, Server
from tests.helpers_people import user

NOTICE_KEYS = {"type", "count", "seq", "time", "time_ts"}


async def add(client: Client, crush_tel: str, words: str = "") -> dict[str, Any]:
    return await client.request(
        {"type": "crush_add_request", "crush_tel": crush_tel, "words": words}
    )


async def quiet(client: Client) -> list[dict[str, Any]]:
    """Pushes received up to now (a round trip flushes what was queued before it)."""
    assert (await client.request({"type": "ping_request"}))["success"]
    pushes, client.pushes = client.pushes, []
    return pushes


@pytest.mark.parametrize("first", [0, 1])
async def test_crush_mutual_either_order_both_told(server: Server, first: int) -> None:
    """Whoever adds second completes the match; both get each other's id, nickname, tel, words."""
    async with AsyncExitStack() as stack:
        people = [await user(server, stack, "wang"), await user(server, stack, "li")]
        a, b = people[first], people[1 - first]
        names = ["wang", "li"]
        one = await add(a, b.tel, "from a")
        assert one == {
            "type": "crush_add_response",
            "success": True,
            "error_no": 0,
            "err_msg": "",
            "matched": False,
        }
        notice = await b.push()
        assert notice["type"] == "crush_notify" and notice["count"] == 1
        two = await add(b, a.tel, "from b")
        assert two["success"] and two["matched"] is True
        to_a, to_b = await a.push(), await b.push()
        assert to_a["type"] == to_b["type"] == "crush_match_notify"
        assert (to_a["user_id"], to_a["tel"], to_a["words"]) == (b.user_id, b.tel, "from b")
        assert (to_b["user_id"], to_b["tel"], to_b["words"]) == (a.user_id, a.tel, "from a")
        assert (to_a["nickname"], to_b["nickname"]) == (names[1 - first], names[first])
        for c in (a, b):
            listed = await c.request({"type": "crush_list_request"})
            assert [x["matched"] for x in listed["crushes"]] == [True]
            assert await quiet(c) == []


async def test_crush_notice_registered_or_not_same_frames(server: Server) -> None:
    """Responses and errors are identical for registered and unregistered tels; notices are bare."""
    async with AsyncExitStack() as stack:
        admirer, target = await user(server, stack, "admirer"), await user(server, stack)
        nobody = server.new_tel()
        frames = []
        for crush_tel in (target.tel, nobody):
            frames.append(
                [
                    await add(admirer, crush_tel, "hi"),
                    await add(admirer, crush_tel, "again"),
                    await admirer.request({"type": "crush_remove_request", "crush_tel": crush_tel}),
                    await admirer.request({"type": "crush_remove_request", "crush_tel": crush_tel}),
                    await add(admirer, crush_tel, "x" * 101),
                ]
            )
        assert frames[0] == frames[1]
        assert [f["error_no"] for f in frames[0]] == [0, 0, 0, 8, 2]
        notice = await target.push()
        assert set(notice) == NOTICE_KEYS and notice["count"] == 1
        assert await quiet(admirer) == []
        assert await quiet(target) == []  # the remove and re-add told nothing more
        received = await target.request({"type": "crush_received_request"})
        assert received["count"] == 0  # removed again


async def test_crush_notice_once_a_day_even_after_readd(server: Server) -> None:
    """One notice per admirer per day, even across remove and re-add; later ones count all."""
    async with AsyncExitStack() as stack:
        a, b, target = (
            await user(server, stack),
            await user(server, stack),
            await user(server, stack),
        )
        await add(a, target.tel)
        assert (await target.push())["count"] == 1
        await a.request({"type": "crush_remove_request", "crush_tel": target.tel})
        await add(a, target.tel)
        assert await quiet(target) == []
        await add(b, target.tel)
        assert (await target.push())["count"] == 2
        server.clock.advance(DAY)
        await a.request({"type": "crush_remove_request", "crush_tel": target.tel})
        await add(a, target.tel)
        assert (await target.push())["count"] == 2


async def test_crush_setting_off_notices_stop_matches_come(server: Server) -> None:
    """With receive off no anonymous notice comes, but a mutual crush still matches."""
    async with AsyncExitStack() as stack:
        a, b = await user(server, stack), await user(server, stack)
        off = await b.request({"type": "crush_setting_request", "receive": False})
        assert off["success"] and off["receive"] is False
        assert (await add(a, b.tel))["matched"] is False
        assert await quiet(b) == []
        assert (await b.request({"type": "crush_received_request"}))["count"] == 1
        assert (await add(b, a.tel))["matched"] is True
        assert (await b.push())["type"] == "crush_match_notify"
        assert (await a.push())["type"] == "crush_match_notify"


async def test_crush_pending_fires_on_registration(server: Server) -> None:
    """A crush on an unregistered tel waits; its holder is told on registering."""
    async with AsyncExitStack() as stack:
        admirer = await user(server, stack)
        later = server.new_tel()
        assert (await add(admirer, later))["matched"] is False
        newcomer = await stack.enter_async_context(server.connect())
        await server.register(newcomer, tel=later)
        notice = await newcomer.push()
        assert set(notice) == NOTICE_KEYS and notice["count"] == 1 and notice["seq"] == 1
        assert await quiet(admirer) == []


async def test_crush_pending_matches_on_phone_change(server: Server) -> None:
    """Changing one's number to a tel with a waiting crush completes a mutual match at once."""
    async with AsyncExitStack() as stack:
        a, c = await user(server, stack, "a"), await user(server, stack, "c")
        new = server.new_tel()
        await add(a, new, "for the new number")
        await add(c, a.tel, "c likes a")
        assert (await a.push())["type"] == "crush_notify"
        server.clock.advance(61)
        assert (await c.request({"type": "tel_change_request", "new_tel": new}))["success"]
        code, old_code = await server.sms.code_for(new), await server.sms.code_for(c.tel)
        done = await c.request({"type": "tel_change_code", "code": code, "old_code": old_code})
        assert done["success"], done
        to_a, to_c = await a.push(), await c.push()
        assert (to_a["type"], to_a["user_id"], to_a["tel"], to_a["words"]) == (
            "crush_match_notify",
            c.user_id,
            new,
            "c likes a",
        )
        assert (to_c["user_id"], to_c["tel"], to_c["words"]) == (
            a.user_id,
            a.tel,
            "for the new number",
        )


async def test_crush_limit_nine_active_and_nine_new_tels(start_server: Any) -> None:
    """A 10th active crush and a 10th new tel in 30 days are error 10; re-adds are free."""
    server: Server = await start_server(token_days=365)
    async with AsyncExitStack() as stack:
        a = await user(server, stack)
        tels = [server.new_tel() for _ in range(10)]
        for t in tels[:9]:
            assert (await add(a, t))["success"]
        full = await add(a, tels[9])
        assert full["error_no"] == 10 and not full["success"]
        assert (await add(a, tels[0]))["success"]  # already on the list: nothing changes
        await a.request({"type": "crush_remove_request", "crush_tel": tels[0]})
        probe = await add(a, tels[9])
        assert probe["error_no"] == 10  # a 10th new tel within 30 days
        assert (await add(a, tels[0]))["success"]  # added before in the window: not new
        server.clock.advance(31 * DAY)
        await a.request({"type": "crush_remove_request", "crush_tel": tels[0]})
        assert (await add(a, tels[9]))["success"]
        listed = await a.request({"type": "crush_list_request"})
        assert len(listed["crushes"]) == 9 and listed["crushes"][0]["crush_tel"] == tels[9]


async def test_crush_unmatched_after_90_days_expires(start_server: Any) -> None:
    """An unmatched crush is gone after 90 days: not listed, not counted, not matched."""
    server: Server = await start_server(token_days=365)
    async with AsyncExitStack() as stack:
        a, b = await user(server, stack), await user(server, stack)
        await add(a, b.tel)
        assert (await b.push())["type"] == "crush_notify"
        server.clock.advance(91 * DAY)
        assert (await a.request({"type": "crush_list_request"}))["crushes"] == []
        assert (await b.request({"type": "crush_received_request"}))["count"] == 0
        assert (await add(b, a.tel))["matched"] is False
        gone = await a.request({"type": "crush_remove_request", "crush_tel": b.tel})
        assert gone["error_no"] == 8


async def test_crush_racing_mutual_adds_match_exactly_once(server: Server) -> None:
    """Two users adding each other at the same instant end matched once, each told once."""
    async with AsyncExitStack() as stack:
        a, b = await user(server, stack), await user(server, stack)
        one, two = await asyncio.gather(add(a, b.tel), add(b, a.tel))
        assert sorted([one["matched"], two["matched"]]) == [False, True]
        for c in (a, b):
            types = [p["type"] for p in await quiet(c)]
            assert types.count("crush_match_notify") == 1
            listed = await c.request({"type": "crush_list_request"})
            assert [x["matched"] for x in listed["crushes"]] == [True]


async def test_crush_remove_matched_ends_match_silently(server: Server) -> None:
    """Removing a matched crush unmatches both; the other learns only that the chat closed."""
    async with AsyncExitStack() as stack:
        a, b = await user(server, stack), await user(server, stack)
        await add(a, b.tel)
        await add(b, a.tel)
        await quiet(a), await quiet(b)
        gone = await a.request({"type": "crush_remove_request", "crush_tel": b.tel})
        assert gone == {
            "type": "crush_remove_response",
            "success": True,
            "error_no": 0,
            "err_msg": "",
        }
        told = await quiet(b)
        assert [(p["type"], p["reason"]) for p in told] == [("chat_closed_notify", "closed")]
        assert set(told[0]) == {"type", "conversation_id", "reason", "seq", "time", "time_ts"}
        listed = await b.request({"type": "crush_list_request"})
        assert [x["matched"] for x in listed["crushes"]] == [False]
        assert (await a.request({"type": "crush_list_request"}))["crushes"] == []
        assert (await a.request({"type": "crush_received_request"}))["count"] == 1


@pytest.mark.parametrize("bad", ["12345", "+1 202 555 0100", "", "1380000000a"])
async def test_crush_add_bad_tel_is_error_2(server: Server, bad: str) -> None:
    """A tel outside the accepted shapes is error 2."""
    async with AsyncExitStack() as stack:
        a = await user(server, stack)
        assert (await add(a, bad))["error_no"] == 2


async def test_crush_add_own_tel_is_error_2(server: Server) -> None:
    """Naming one's own tel, in any accepted shape, is error 2."""
    async with AsyncExitStack() as stack:
        a = await user(server, stack)
        t = a.tel
        assert (await add(a, f"+86 {t[:3]}-{t[3:7]}-{t[7:]}"))["error_no"] == 2


async def test_crush_list_shape_and_time_format(server: Server) -> None:
    """The list carries crush_tel, words, add_time in the app's format, add_time_ts, matched."""
    async with AsyncExitStack() as stack:
        a = await user(server, stack)
        other = server.new_tel()
        await add(a, f"86{other}", "悄悄的")
        item = (await a.request({"type": "crush_list_request"}))["crushes"][0]
        assert set(item) == {"crush_tel", "words", "add_time", "add_time_ts", "matched"}
        assert (item["crush_tel"], item["words"], item["matched"]) == (other, "悄悄的", False)
        assert item["add_time_ts"] == int(server.clock.now())
        assert ":" in item["add_time"] and not item["add_time"].split("-")[1].startswith("0")


async def test_crush_notice_reaches_every_socket_of_user(server: Server) -> None:
    """Two sockets of one user both receive the push."""
    async with AsyncExitStack() as stack:
        a, b = await user(server, stack), await user(server, stack)
        b2 = await stack.enter_async_context(server.connect())
        token = b.token
        assert (await b2.request({"type": "auth_request", "token": token}))["success"]
        await add(a, b.tel)
        first, second = await b.push(), await b2.push()
        assert first == second and first["type"] == "crush_notify"


async def test_crush_over_http_needs_token(server: Server) -> None:
    """Crush messages work over POST /api with a token, and without one are error 5."""
    async with AsyncExitStack() as stack:
        a = await user(server, stack)
        token = a.token
        other = server.new_tel()
        body = {"type": "crush_add_request", "crush_tel": other, "token": token}
        status, frame = await server.post("/api", body)
        assert status == 200 and frame["matched"] is False
        status, frame = await server.post("/api", {"type": "crush_list_request"})
        assert frame["error_no"] == 5
