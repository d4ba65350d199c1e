"""Two real `lovewire serve` processes on one PostgreSQL schema and one Redis prefix.

What section 8 promises, checked from outside with real sockets: a like through one
process reaches the owner on the other; a mutual crush added at the same instant on both
matches once; likes through both arrive gapless and in order; and a process killed with
SIGKILL loses nothing: its users reconnect to the other and replay what they missed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers_pictures import picture, uri
from tests.helpers_postgres import TEST_URL, pg_schema
from tests.helpers_redis import TEST_REDIS_URL, redis_prefix
from tests.test_cli import Process, _serve_argv, _start

pytestmark = pytest.mark.needs_services

PICTURE = uri(picture())

ROOMY = [
    "--requests-per-second", "100000",
    "--sms-interval", "0",
    "--sms-tel-hourly", "1000",
    "--sms-tel-daily", "1000",
    "--sms-addr-hourly", "100000",
    "--uploads-per-hour", "1000",
]  # fmt: skip


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[list[Process]]:
    """Two processes of one deployment, each with its own ports and data dir."""
    async with two_processes(tmp_path, {}) as processes:
        yield processes


@pytest.fixture
async def brief_chats(tmp_path: Path) -> AsyncIterator[list[Process]]:
    """Two processes whose conversations last 3 seconds, looked at 10 times a second."""
    env = {"LOVEWIRE_CHAT_DAYS": str(3 / 86400), "LOVEWIRE_CHAT_SWEEP_INTERVAL": "0.1"}
    async with two_processes(tmp_path, env) as processes:
        yield processes


@asynccontextmanager
async def two_processes(tmp_path: Path, extra: dict[str, str]) -> AsyncIterator[list[Process]]:
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(pg_schema(TEST_URL))
        prefix = await stack.enter_async_context(redis_prefix(TEST_REDIS_URL))
        env = {
            "LOVEWIRE_DATABASE_URL": url,
            "LOVEWIRE_REDIS_URL": TEST_REDIS_URL,
            "LOVEWIRE_REDIS_PREFIX": prefix,
            **extra,
        }
        processes: list[Process] = []
        try:
            for name in ("a", "b"):
                home = tmp_path / name
                home.mkdir()
                processes.append(await _start([*_serve_argv(home), *ROOMY], home, env))
            yield processes
        finally:
            for process in processes:
                if process.proc.returncode is None:
                    process.proc.terminate()
                    assert await asyncio.wait_for(process.proc.wait(), 15) == 0


def url(process: Process) -> str:
    return f"ws://127.0.0.1:{process.ws_port}"


async def call(ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    """Send a request; its answer (pushes meanwhile are not expected here)."""
    await ws.send(json.dumps(frame))
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return reply


async def register(process: Process, tel: str, nickname: str) -> dict[str, Any]:
    """Register through the console SMS provider of that process."""
    async with connect(url(process)) as ws:
        assert (await call(ws, {"type": "sms_validation_request", "tel": tel}))["success"]
        code = (await process.line()).rsplit(b" ", 1)[1].decode()
        ticket = await call(ws, {"type": "sms_validation_code", "code": code})
        reg = await call(
            ws,
            {
                "type": "user_register_info",
                "token": ticket["token"],
                "nickname": nickname,
                "sex": 1,
                "birthday": "1990-1-1",
            },
        )
        assert reg["success"], reg
        reg["tel"] = tel
        return reg


async def logged_in(stack: AsyncExitStack, process: Process, token: str) -> ClientConnection:
    ws = await stack.enter_async_context(connect(url(process)))
    auth = await call(ws, {"type": "auth_request", "token": token, "last_seq": 0})
    assert auth["success"], auth
    return ws


async def pushes(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(count)]


async def post_pictures(ws: ClientConnection, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        posted = await call(ws, {"type": "picture_upload_request", "picture": PICTURE})
        assert posted["success"], posted
        ids.append(posted["picture_id"])
    return ids


async def test_like_through_one_process_reaches_the_owner_on_the_other(
    pair: list[Process],
) -> None:
    a, b = pair
    owner = await register(a, "13800000001", "zhang")
    fan = await register(b, "13800000002", "wang")
    async with AsyncExitStack() as stack:
        on_b = await logged_in(stack, b, owner["token"])
        on_a = await logged_in(stack, a, owner["token"])
        (picture,) = await post_pictures(on_a, 1)
        fan_ws = await logged_in(stack, a, fan["token"])
        liked = await call(fan_ws, {"type": "picture_like_request", "picture_id": picture})
        assert liked["success"], liked
        for ws in (on_a, on_b):
            (push,) = await pushes(ws, 1)
            assert push["type"] == "picture_like_notify" and push["seq"] == 1
            assert push["nickname"] == "wang" and push["picture_id"] == picture


async def frames_until(ws: ClientConnection, answer_type: str) -> list[dict[str, Any]]:
    """Every frame up to and with the first of `answer_type`."""
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] != answer_type:
        frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    return frames


async def test_mutual_crush_at_the_same_instant_on_two_processes_matches_once(
    pair: list[Process],
) -> None:
    """Each side's answer, then one match for each; nothing else but a crush notice
    (for the side whose crush was seen first) by the time a ping is answered."""
    a, b = pair
    li = await register(a, "13800000001", "li")
    wang = await register(b, "13800000002", "wang")
    async with AsyncExitStack() as stack:
        li_ws = await logged_in(stack, a, li["token"])
        wang_ws = await logged_in(stack, b, wang["token"])
        await asyncio.gather(
            li_ws.send(json.dumps({"type": "crush_add_request", "crush_tel": wang["tel"]})),
            wang_ws.send(json.dumps({"type": "crush_add_request", "crush_tel": li["tel"]})),
        )
        seen = []
        for ws in (li_ws, wang_ws):
            frames = await frames_until(ws, "crush_add_response")
            if not any(f["type"] == "crush_match_notify" for f in frames):
                frames += await frames_until(ws, "crush_match_notify")
            await ws.send(json.dumps({"type": "ping_request"}))
            frames += await frames_until(ws, "ping_response")
            seen.append(frames)
        answers = [f for frames in seen for f in frames if f["type"] == "crush_add_response"]
        assert sorted(answer["matched"] for answer in answers) == [False, True]
        for frames in seen:
            kinds = [f["type"] for f in frames]
            assert kinds.count("crush_match_notify") == 1, kinds
            assert set(kinds) <= {
                "crush_add_response",
                "crush_match_notify",
                "crush_notify",
                "ping_response",
            }, kinds


async def test_twenty_likes_through_two_processes_arrive_in_seq_order(
    pair: list[Process],
) -> None:
    a, b = pair
    owner = await register(a, "13800000001", "zhang")
    fans = [await register(p, f"1380000001{i}", f"fan{i}") for i, p in enumerate((a, b))]
    async with AsyncExitStack() as stack:
        watchers = [await logged_in(stack, p, owner["token"]) for p in (a, b)]
        pictures = await post_pictures(watchers[0], 10)
        fan_sockets = [
            await logged_in(stack, process, fan["token"])
            for process, fan in zip((a, b), fans, strict=True)
        ]

        async def like_all(ws: ClientConnection) -> None:
            for picture in pictures:
                liked = await call(ws, {"type": "picture_like_request", "picture_id": picture})
                assert liked["success"], liked

        await asyncio.gather(*(like_all(ws) for ws in fan_sockets))
        for ws in watchers:
            assert [p["seq"] for p in await pushes(ws, 20)] == list(range(1, 21))


async def test_process_killed_its_users_replay_on_the_other(pair: list[Process]) -> None:
    a, b = pair
    owner = await register(a, "13800000001", "zhang")
    fan = await register(b, "13800000002", "wang")
    async with AsyncExitStack() as stack:
        owner_ws = await logged_in(stack, a, owner["token"])
        pictures = await post_pictures(owner_ws, 3)
        fan_ws = await logged_in(stack, b, fan["token"])
        await call(fan_ws, {"type": "picture_like_request", "picture_id": pictures[0]})
        assert [p["seq"] for p in await pushes(owner_ws, 1)] == [1]
        a.proc.kill()  # SIGKILL: no goodbye
        await a.proc.wait()
        for picture in pictures[1:]:  # while the owner is cut off
            liked = await call(fan_ws, {"type": "picture_like_request", "picture_id": picture})
            assert liked["success"], liked
        back = await stack.enter_async_context(connect(url(b)))
        auth = await call(back, {"type": "auth_request", "token": owner["token"], "last_seq": 1})
        assert auth["success"] and auth["last_seq"] == 3 and auth["recovered"], auth
        assert [p["seq"] for p in await pushes(back, 2)] == [2, 3]


async def match(li_ws: ClientConnection, wang_ws: ClientConnection, li: Any, wang: Any) -> str:
    """Make li and wang match; the conversation's id (each socket has had its match push)."""
    assert (await call(li_ws, {"type": "crush_add_request", "crush_tel": wang["tel"]}))["success"]
    await frames_until(wang_ws, "crush_notify")
    await wang_ws.send(json.dumps({"type": "crush_add_request", "crush_tel": li["tel"]}))
    frames = await frames_until(wang_ws, "crush_add_response")
    if not any(f["type"] == "crush_match_notify" for f in frames):
        frames += await frames_until(wang_ws, "crush_match_notify")
    (told,) = [f for f in frames if f["type"] == "crush_match_notify"]
    (other,) = await frames_until(li_ws, "crush_match_notify")
    assert told["conversation_id"] == other["conversation_id"]
    return str(told["conversation_id"])


async def test_chat_message_reaches_the_peer_on_the_other_process_live(
    pair: list[Process],
) -> None:
    """A message sent through one process reaches the peer, and my socket, on the other."""
    a, b = pair
    li = await register(a, "13800000001", "li")
    wang = await register(b, "13800000002", "wang")
    async with AsyncExitStack() as stack:
        li_ws = await logged_in(stack, a, li["token"])
        wang_ws = await logged_in(stack, b, wang["token"])
        chat = await match(li_ws, wang_ws, li, wang)
        li_on_b = await logged_in(stack, b, li["token"])
        await frames_until(li_on_b, "crush_match_notify")  # its replay from last_seq 0
        send = {"type": "chat_send_request", "conversation_id": chat, "msg": "你好"}
        sent = await call(li_ws, send)
        assert sent["success"], sent
        for ws in (wang_ws, li_on_b, li_ws):
            (push,) = await frames_until(ws, "chat_message_notify")
            assert (push["message_id"], push["msg"], push["user_id"]) == (
                sent["message_id"],
                "你好",
                li["user_id"],
            )
        await li_ws.send(json.dumps({"type": "chat_typing_request", "conversation_id": chat}))
        typing = await frames_until(wang_ws, "chat_typing_notify")
        assert typing == [{"type": "chat_typing_notify", "conversation_id": chat}]


async def test_chat_expiry_told_exactly_once_by_two_processes(brief_chats: list[Process]) -> None:
    """Both processes look for expired conversations; each person is told once."""
    a, b = brief_chats
    li = await register(a, "13800000001", "li")
    wang = await register(b, "13800000002", "wang")
    async with AsyncExitStack() as stack:
        li_ws = await logged_in(stack, a, li["token"])
        wang_ws = await logged_in(stack, b, wang["token"])
        chat = await match(li_ws, wang_ws, li, wang)
        for ws in (li_ws, wang_ws):
            (closed,) = await frames_until(ws, "chat_closed_notify")
            assert (closed["conversation_id"], closed["reason"]) == (chat, "expired")
    await asyncio.sleep(0.5)  # both processes look again several times
    async with AsyncExitStack() as stack:
        for process, person in ((b, li), (a, wang)):
            ws = await stack.enter_async_context(connect(url(process)))
            auth = {"type": "auth_request", "token": person["token"], "last_seq": 0}
            await ws.send(json.dumps(auth))
            await ws.send(json.dumps({"type": "ping_request"}))
            kinds = [f["type"] for f in await frames_until(ws, "ping_response")]
            assert kinds.count("chat_closed_notify") == 1, kinds
