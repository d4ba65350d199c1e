"""三天 (4.6): conversations opened by matches, messages, receipts, keep, close, expiry."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import Any

import pytest

from protocol.times import DAY, MINUTE
from tests.conftest import Client, Server
from tests.helpers_people import Person, user
from tests.helpers_pictures import APP_TIME, get, picture, stored_files, uri

PICTURE = uri(picture())
MESSAGE_KEYS = {"message_id", "user_id", "msg", "picture", "send_time", "send_time_ts"}
STAMP = {"seq", "time", "time_ts"}


async def second_socket(server: Server, stack: AsyncExitStack, person: Person) -> Client:
    client = await stack.enter_async_context(server.connect())
    auth = await client.request({"type": "auth_request", "token": person.token})
    assert auth["success"], auth
    await quiet(client)  # what the login replays
    return client


async def quiet(client: Client) -> list[dict[str, Any]]:
    """Pushes received up to now (a round trip flushes what was queued before it)."""
    assert (await client.request({"type": "ping_request"}))["success"]
    pushes, client.pushes = client.pushes, []
    return pushes


async def match(a: Person, b: Person) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Make a and b match; the conversation id and the match pushes each got."""
    assert (await a.request({"type": "crush_add_request", "crush_tel": b.tel}))["success"]
    await quiet(b)  # the anonymous notice
    added = await b.request({"type": "crush_add_request", "crush_tel": a.tel})
    assert added["matched"], added
    to_a, to_b = await a.push(), await b.push()
    assert to_a["type"] == to_b["type"] == "crush_match_notify"
    assert to_a["conversation_id"] == to_b["conversation_id"]
    return str(to_a["conversation_id"]), to_a, to_b


async def pair(server: Server, stack: AsyncExitStack) -> tuple[Person, Person, str]:
    a, b = await user(server, stack, "wang"), await user(server, stack, "li")
    chat, _, _ = await match(a, b)
    return a, b, chat


async def send(client: Client, chat: str | int, msg: str = "hi", **extra: Any) -> dict[str, Any]:
    frame = {"type": "chat_send_request", "conversation_id": chat, "msg": msg, **extra}
    return await client.request(frame)


async def chat_list(client: Client) -> list[dict[str, Any]]:
    listed = await client.request({"type": "chat_list_request"})
    assert listed["success"], listed
    conversations: list[dict[str, Any]] = listed["conversations"]
    return conversations


async def test_chat_match_opens_conversation_listed_for_both(server: Server) -> None:
    """A match opens one conversation until match + 3 days; both list it, no tel shown."""
    async with AsyncExitStack() as stack:
        a, b = await user(server, stack, "wang"), await user(server, stack, "li")
        now = int(server.clock.now())
        chat, to_a, to_b = await match(a, b)
        for push in (to_a, to_b):
            assert push["expire_ts"] == now + 3 * DAY
            assert APP_TIME.match(push["expire_time"])
            assert isinstance(push["conversation_id"], str)
        for me, peer, nickname in ((a, b, "li"), (b, a, "wang")):
            listed = await chat_list(me)
            assert listed == [
                {
                    "conversation_id": chat,
                    "user_id": peer.user_id,
                    "nickname": nickname,
                    "avatar": "",
                    "open": True,
                    "kept": False,
                    "expire_time": to_a["expire_time"],
                    "expire_ts": now + 3 * DAY,
                    "unread": 0,
                }
            ]
            assert peer.tel not in json.dumps(listed)


async def test_chat_send_both_get_notify_sender_after_response(server: Server) -> None:
    """Every socket of both people gets chat_message_notify; the sender's after its answer."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        a2 = await second_socket(server, stack, a)
        await a.send({"type": "chat_send_request", "conversation_id": chat, "msg": "你好\nthere"})
        sent = await a.recv()
        assert sent["type"] == "chat_send_response" and sent["success"], sent
        assert set(sent) == {"type", "success", "error_no", "err_msg"} | {
            "message_id",
            "send_time",
            "send_time_ts",
        }
        mine = await a.recv()
        assert mine["type"] == "chat_message_notify"
        expected = {
            "type": "chat_message_notify",
            "conversation_id": chat,
            "message_id": sent["message_id"],
            "user_id": a.user_id,
            "msg": "你好\nthere",
            "picture": "",
            "send_time": sent["send_time"],
            "send_time_ts": sent["send_time_ts"],
        }
        assert {k: v for k, v in mine.items() if k not in STAMP} == expected
        for other in (b, a2):
            got = await other.push()
            assert {k: v for k, v in got.items() if k not in STAMP} == expected
            assert STAMP <= set(got)
        listed = await chat_list(b)
        assert listed[0]["unread"] == 1
        assert listed[0]["last_message"] == {k: expected[k] for k in MESSAGE_KEYS}
        assert (await chat_list(a))[0]["unread"] == 0  # my own messages are never unread


async def test_chat_send_client_msg_id_retry_returns_first(server: Server) -> None:
    """A retry with the same client_msg_id returns the first result, whatever it holds."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        first = await send(a, chat, "one", client_msg_id="k-1")
        again = await send(a, chat, "two", client_msg_id="k-1")
        assert first == again
        other = await send(b, chat, "three", client_msg_id="k-1")  # per user
        assert other["message_id"] != first["message_id"]
        history = await b.request({"type": "chat_history_request", "conversation_id": chat})
        assert [m["msg"] for m in history["messages"]] == ["one", "three"]
        assert [p["msg"] for p in await quiet(a)] == ["one", "three"]


async def test_chat_history_pages_oldest_first_with_more(server: Server) -> None:
    """History pages back from `before`, oldest first within a page, `more` while older remain."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        ids = [(await send(a if i % 2 else b, chat, f"m{i}"))["message_id"] for i in range(5)]
        page = await a.request(
            {"type": "chat_history_request", "conversation_id": int(chat), "limit": 2}
        )
        assert [m["msg"] for m in page["messages"]] == ["m3", "m4"] and page["more"] is True
        assert set(page["messages"][0]) == MESSAGE_KEYS
        page = await a.request(
            {"type": "chat_history_request", "conversation_id": chat, "before": ids[3], "limit": 3}
        )
        assert [m["msg"] for m in page["messages"]] == ["m0", "m1", "m2"]
        assert page["more"] is False
        whole = await b.request({"type": "chat_history_request", "conversation_id": chat})
        assert [m["message_id"] for m in whole["messages"]] == ids and not whole["more"]
        for limit in (0, 51):
            bad = await a.request(
                {"type": "chat_history_request", "conversation_id": chat, "limit": limit}
            )
            assert bad["error_no"] == 2


async def test_chat_read_marks_move_forward_only_and_tell_peer(server: Server) -> None:
    """Reading tells the peer and drops my unread count; an older mark changes nothing."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        ids = [(await send(a, chat, f"m{i}"))["message_id"] for i in range(3)]
        await quiet(a)
        assert (await chat_list(b))[0]["unread"] == 3
        read = {"type": "chat_read_request", "conversation_id": chat, "message_id": ids[1]}
        assert await b.request(read) == {
            "type": "chat_read_response",
            "success": True,
            "error_no": 0,
            "err_msg": "",
        }
        told = await a.push()
        assert {k: v for k, v in told.items() if k not in STAMP} == {
            "type": "chat_read_notify",
            "conversation_id": chat,
            "message_id": ids[1],
        }
        assert (await chat_list(b))[0]["unread"] == 1
        assert (await b.request({**read, "message_id": ids[0]}))["success"]
        assert (await b.request(read))["success"]
        assert await quiet(a) == []  # the mark never moves back, nobody is told
        assert (await chat_list(b))[0]["unread"] == 1
        missing = await b.request({**read, "message_id": 10**12})
        assert missing["error_no"] == 8


async def test_chat_keep_both_needed_then_never_expires(server: Server) -> None:
    """Keep needs both; the peer is told each time; kept ones show expire_ts 0 and stay open."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        keep = {"type": "chat_keep_request", "conversation_id": chat}
        assert (await a.request(keep))["kept"] is False
        told = await b.push()
        assert (told["type"], told["conversation_id"], told["kept"]) == (
            "chat_keep_notify",
            chat,
            False,
        )
        assert (await a.request(keep))["kept"] is False
        assert await quiet(b) == []  # asking again changes nothing
        assert (await b.request(keep))["kept"] is True
        told = await a.push()
        assert (told["type"], told["kept"]) == ("chat_keep_notify", True)
        listed = (await chat_list(a))[0]
        assert (listed["kept"], listed["expire_ts"], listed["expire_time"]) == (True, 0, "")
        server.clock.advance(4 * DAY)
        assert server.app.chats is not None
        assert await server.app.chats.expire() == 0
        assert (await send(a, chat, "still here"))["success"]
        assert (await chat_list(b))[0]["open"] is True


async def test_chat_close_tells_both_then_read_only(server: Server) -> None:
    """Close tells both "closed"; after it send, keep and typing are refused, reading works."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        sent = await send(b, chat, "bye?")
        await quiet(a)
        await quiet(b)
        close = {"type": "chat_close_request", "conversation_id": chat}
        assert (await a.request(close))["success"]
        for person in (a, b):
            got = await person.push()
            assert {k: v for k, v in got.items() if k not in STAMP} == {
                "type": "chat_closed_notify",
                "conversation_id": chat,
                "reason": "closed",
            }
        assert (await b.request(close))["success"]
        assert await quiet(a) == [] and await quiet(b) == []
        assert (await send(b, chat, "wait"))["error_no"] == 10
        keep = await a.request({"type": "chat_keep_request", "conversation_id": chat})
        assert keep["error_no"] == 10
        await b.send({"type": "chat_typing_request", "conversation_id": chat})
        assert await quiet(a) == []
        history = await a.request({"type": "chat_history_request", "conversation_id": chat})
        assert [m["msg"] for m in history["messages"]] == ["bye?"]
        read = {"type": "chat_read_request", "conversation_id": chat}
        assert (await a.request({**read, "message_id": sent["message_id"]}))["success"]
        assert (await b.push())["type"] == "chat_read_notify"
        listed = (await chat_list(a))[0]
        assert (listed["open"], listed["unread"]) == (False, 0)


async def test_chat_crush_removed_closes_conversation_only_closed(server: Server) -> None:
    """Removing a matched crush closes the conversation: both learn "closed", nothing more."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        removed = await b.request({"type": "crush_remove_request", "crush_tel": a.tel})
        assert removed["success"]
        for person in (a, b):
            got = await person.push()
            assert (got["type"], got["reason"]) == ("chat_closed_notify", "closed")
            assert set(got) == {"type", "conversation_id", "reason"} | STAMP
        assert await quiet(a) == []
        assert (await send(a, chat))["error_no"] == 10
        # Matched again later: a new conversation.
        again = await b.request({"type": "crush_add_request", "crush_tel": a.tel})
        assert again["matched"]
        fresh = (await a.push())["conversation_id"]
        assert fresh != chat
        assert [c["open"] for c in await chat_list(b)] == [True, False]


async def test_chat_not_mine_or_missing_is_8_alike(server: Server) -> None:
    """Another pair's conversation and one that never existed get the same error 8."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        c = await user(server, stack, "zhao")
        sent = await send(a, chat)
        for kind, extra in (
            ("chat_send_request", {"msg": "x"}),
            ("chat_history_request", {}),
            ("chat_read_request", {"message_id": sent["message_id"]}),
            ("chat_keep_request", {}),
            ("chat_close_request", {}),
        ):
            frames = [
                await c.request({"type": kind, "conversation_id": conv, **extra})
                for conv in (chat, 10**12)
            ]
            assert frames[0] == frames[1]
            assert frames[0]["error_no"] == 8 and frames[0]["success"] is False
        assert await chat_list(c) == []
        await quiet(a)
        await quiet(b)
        await c.send({"type": "chat_typing_request", "conversation_id": chat})
        assert await quiet(c) == [] and await quiet(a) == [] and await quiet(b) == []


async def test_chat_send_input_checked(server: Server) -> None:
    """Text 1..1000 characters or a picture, at least one; a bad id is error 2."""
    async with AsyncExitStack() as stack:
        a, _, chat = await pair(server, stack)
        for frame in (
            {"msg": "x" * 1001},
            {"msg": ""},
            {"msg": " \u200b "},
            {},
            {"msg": "a\u202eb"},
            {"msg": "ok", "conversation_id": "abc"},
        ):
            reply = await a.request({"type": "chat_send_request", "conversation_id": chat, **frame})
            assert reply["error_no"] == 2, frame
        assert (await send(a, chat, "x" * 1000))["success"]


async def test_chat_messages_per_minute_error_6(start_server: Any, backend: dict[str, Any]) -> None:
    """At most LOVEWIRE_MESSAGES_PER_MINUTE messages a minute per user (error 6, retry_after)."""
    server: Server = await start_server(**backend, messages_per_minute=2)
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        assert (await send(a, chat))["success"] and (await send(a, chat))["success"]
        refused = await send(a, chat)
        assert refused["error_no"] == 6 and 1 <= refused["retry_after"] <= MINUTE
        assert (await send(b, chat))["success"]  # per user
        server.clock.advance(MINUTE)
        assert (await send(a, chat))["success"]


async def test_chat_picture_stored_like_upload_and_counts(
    start_server: Any, backend: dict[str, Any]
) -> None:
    """A picture is checked and stored like an upload, counts towards uploads an hour."""
    server: Server = await start_server(**backend, uploads_per_hour=2)
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        sent = await send(a, chat, "", picture=PICTURE)
        assert sent["success"], sent
        got = await b.push()
        assert got["msg"] == "" and got["picture"].startswith("/uploads/")
        status, kind, body = await get(server, got["picture"])
        assert status == 200 and kind == "image/jpeg" and body[:2] == b"\xff\xd8"
        bad = await send(a, chat, "look", picture="data:image/png;base64,AAAA")
        assert bad["error_no"] == 11
        posted = await a.request({"type": "picture_upload_request", "picture": PICTURE})
        assert posted["error_no"] == 6  # the chat picture and the refused one used the hour
        assert (await send(a, chat, "text only"))["success"]


async def test_chat_typing_ephemeral_throttled(server: Server) -> None:
    """Typing reaches the peer unstored (no seq), one a second per sender; nothing answers."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        typing = {"type": "chat_typing_request", "conversation_id": chat}
        await a.send(typing)
        got = await b.push()
        assert got == {"type": "chat_typing_notify", "conversation_id": chat}
        await a.send(typing)
        await b.send(typing)  # the other direction has its own second
        assert (await a.push()) == got
        assert await quiet(b) == []
        server.clock.advance(1)
        await a.send(typing)
        assert (await b.push()) == got
        await a.send({"type": "chat_typing_request", "conversation_id": "x"})
        assert await quiet(a) == [] and await quiet(b) == []
        auth = await b.request({"type": "auth_request", "token": b.token, "last_seq": 0})
        assert all(p["type"] != "chat_typing_notify" for p in await quiet(b))
        assert auth["success"]


async def test_chat_typing_dropped_not_queued_on_a_busy_socket(server: Server) -> None:
    """A socket with frames waiting drops a typing notice; it stays open and gets the rest."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        assert server.app.ws is not None
        (conn,) = [
            c for c in server.app.ws.connections if c.login and c.login.user_id == int(b.user_id)
        ]
        # The peer stops reading; frames go to it until some wait in the server's own
        # buffers (the kernel's are full), as for a slow phone.
        b.ws.transport.pause_reading()
        filler = json.dumps({"type": "system_notify", "msg": "x" * (1 << 16)})
        sent = 0
        while conn.waiting_bytes <= 2**15 and sent < 1000:
            conn.send(filler)
            sent += 1
        assert conn.waiting_bytes > 2**15
        conn.send_ephemeral(json.dumps({"type": "chat_typing_notify", "conversation_id": chat}))
        b.ws.transport.resume_reading()
        for _ in range(sent):
            assert (await b.recv())["type"] == "system_notify"
        assert await quiet(b) == []
        await a.send({"type": "chat_typing_request", "conversation_id": chat})
        assert (await b.push())["type"] == "chat_typing_notify"


async def test_chat_expiry_tells_both_once_offline_too(server: Server) -> None:
    """At expire_ts both get chat_closed_notify "expired" once, even with nobody online."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
    async with AsyncExitStack() as stack:
        online = await second_socket(server, stack, a)
        server.clock.advance(3 * DAY)  # wakes the chores
        got = await online.push()
        assert (got["type"], got["conversation_id"], got["reason"]) == (
            "chat_closed_notify",
            chat,
            "expired",
        )
        assert server.app.chats is not None
        assert await server.app.chats.expire() == 0
        assert await quiet(online) == []
        offline = await stack.enter_async_context(server.connect())
        auth = await offline.request({"type": "auth_request", "token": b.token, "last_seq": 0})
        assert auth["success"]
        kinds = [p["type"] for p in await quiet(offline)]
        assert kinds.count("chat_closed_notify") == 1
        assert (await send(offline, chat))["error_no"] == 10


async def test_chat_retention_deletes_ended_with_pictures(server: Server) -> None:
    """Ended conversations stay readable for the retention, then go with their pictures."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        sent = await send(a, chat, "", picture=PICTURE)
        path = (await b.push())["picture"]
        assert (await a.request({"type": "chat_close_request", "conversation_id": chat}))["success"]
        assert server.app.chats is not None
        server.clock.advance(7 * DAY - 10)
        assert await server.app.chats.sweep() == 0
        history = {"type": "chat_history_request", "conversation_id": chat}
        assert (await b.request(history))["success"]
        server.clock.advance(20)
        await server.app.chats.sweep()
        assert (await b.request(history))["error_no"] == 8
        read = {"type": "chat_read_request", "conversation_id": chat}
        assert (await b.request({**read, "message_id": sent["message_id"]}))["error_no"] == 8
        assert await chat_list(a) == []
        assert (await get(server, path))[0] == 404
        if not server.app.settings.database_url:
            assert stored_files(server) == []


async def test_chat_over_http_api(server: Server) -> None:
    """Every chat request works over POST /api with the token; pushes go to the sockets."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        status, sent = await server.post(
            "/api",
            {"type": "chat_send_request", "token": a.token, "conversation_id": chat, "msg": "h"},
        )
        assert status == 200 and sent["success"], sent
        assert (await b.push())["message_id"] == sent["message_id"]
        for frame in (
            {"type": "chat_list_request"},
            {"type": "chat_history_request", "conversation_id": chat},
            {
                "type": "chat_read_request",
                "conversation_id": chat,
                "message_id": sent["message_id"],
            },
            {"type": "chat_keep_request", "conversation_id": chat},
            {"type": "chat_close_request", "conversation_id": chat},
        ):
            status, reply = await server.post("/api", {**frame, "token": b.token})
            assert status == 200 and reply["success"], reply
            assert reply["type"] == frame["type"].replace("_request", "_response")
        status, reply = await server.post("/api", {"type": "chat_list_request"})
        assert reply["error_no"] == 5


async def test_chat_offline_peer_catches_up_in_order(server: Server) -> None:
    """Messages to a peer who is offline replay after auth_request {last_seq}, in seq order."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        last_seq = (await quiet(b) or [{"seq": 0}])[-1]["seq"]
        seen = await b.request({"type": "ping_request"})
        assert seen["success"]
        seq = (await b.request({"type": "auth_request", "token": b.token}))["last_seq"]
        await b.ws.close()
        ids = [(await send(a, chat, f"m{i}"))["message_id"] for i in range(3)]
        async with server.connect() as back:
            auth = await back.request({"type": "auth_request", "token": b.token, "last_seq": seq})
            assert auth["recovered"] is True and auth["last_seq"] == seq + 3
            got = [await back.push() for _ in ids]
            assert [p["message_id"] for p in got] == ids
            assert [p["seq"] for p in got] == [seq + 1, seq + 2, seq + 3]
        assert last_seq <= seq


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_chat_errors_have_messages_in_both_languages(
    start_server: Any, backend: dict[str, Any], lang: str
) -> None:
    """Error 8 and 10 of the chat say what happened, in the configured language."""
    server: Server = await start_server(**backend, lang=lang)
    async with AsyncExitStack() as stack:
        a, _, chat = await pair(server, stack)
        missing = await send(a, 10**12)
        await a.request({"type": "chat_close_request", "conversation_id": chat})
        ended = await send(a, chat)
        texts = {"zh": ("会话不存在", "会话已结束"), "en": ("conversation not found", "ended")}
        assert texts[lang][0] in missing["err_msg"] and texts[lang][1] in ended["err_msg"]


async def change_tel(server: Server, person: Person, new_tel: str) -> None:
    """Move person to new_tel with both codes (the per-socket SMS interval waited out)."""
    server.clock.advance(61)
    sent = await person.request({"type": "tel_change_request", "new_tel": new_tel})
    assert sent["success"], sent
    code, old_code = await server.sms.code_for(new_tel), await server.sms.code_for(person.tel)
    done = await person.request({"type": "tel_change_code", "code": code, "old_code": old_code})
    assert done["success"], done
    person.tel, person.token = new_tel, done["token"]


async def test_chat_match_made_by_a_phone_change_opens_conversation(server: Server) -> None:
    """Moving to the number my crush named matches at once, and opens our conversation."""
    async with AsyncExitStack() as stack:
        a, b = await user(server, stack, "wang"), await user(server, stack, "li")
        new_tel = server.new_tel()
        assert (await a.request({"type": "crush_add_request", "crush_tel": new_tel}))["success"]
        assert (await b.request({"type": "crush_add_request", "crush_tel": a.tel}))["success"]
        await quiet(a)
        await change_tel(server, b, new_tel)
        to_a, to_b = await a.push(), await b.push()
        assert to_a["type"] == to_b["type"] == "crush_match_notify"
        chat = to_a["conversation_id"]
        assert to_b["conversation_id"] == chat and to_a["expire_ts"] > server.clock.now()
        assert (await send(b, chat, "found you"))["success"]
        assert (await a.push())["msg"] == "found you"


async def test_chat_phone_change_ending_a_match_closes_it(server: Server) -> None:
    """Moving to the number my matched crush named ends that match: both learn "closed"."""
    async with AsyncExitStack() as stack:
        a, b, chat = await pair(server, stack)
        old_b = b.tel
        await change_tel(server, b, server.new_tel())
        assert await quiet(a) == []  # the match stays with the person, not the number
        await quiet(b)
        await change_tel(server, a, old_b)  # my crush on the tel I now hold goes
        for person in (a, b):
            got = await person.push()
            assert (got["type"], got["conversation_id"], got["reason"]) == (
                "chat_closed_notify",
                chat,
                "closed",
            )
        assert (await send(b, chat))["error_no"] == 10


@pytest.mark.sqlite_only
async def test_chat_list_constant_queries_and_indexed(server: Server) -> None:
    """The list is the same statements for 1 conversation or 6 with messages; no scan of
    all messages (EXPLAIN QUERY PLAN)."""
    async with AsyncExitStack() as stack:
        me = await user(server, stack, "me")
        services = server.app.services
        assert services is not None
        store: Any = services.store
        statements: list[str] = []
        for db in store._all:
            await db.set_trace_callback(statements.append)
        counts = []
        for size in (1, 6):
            others = [await user(server, stack, f"p{i}") for i in range(size)]
            async with store.unit() as tx:
                for other in others:
                    chat = await tx.chats.open(int(me.user_id), int(other.user_id), 1, 10**10)
                    for k in range(3):
                        await tx.chats.add_message(
                            chat.id, int(other.user_id), "m", "", None, 2 + k
                        )
            statements.clear()
            listed = await chat_list(me)
            assert all(c["unread"] == 3 for c in listed)
            counts.append(len([s for s in statements if s.lstrip().upper().startswith("SELECT")]))
        assert counts[0] == counts[1] <= 2, counts
        for db in store._all:
            await db.set_trace_callback(None)
        async with store.read() as tx:
            plans = []
            for sql in {s for s in statements if "chat_messages" in s}:
                rows = await tx.db.execute_fetchall(f"EXPLAIN QUERY PLAN {sql}")
                plans += [str(row[-1]) for row in rows]
        scans = [p for p in plans if p.startswith("SCAN") and "chat_messages" in p]
        assert scans == [], plans
