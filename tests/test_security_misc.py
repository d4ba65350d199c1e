"""Issue 7, items 5, 6, 11 and 13: quiet logs, timing-blind crushes, id echo, tels."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import signal
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image
from websockets.asyncio.client import connect

from tests.conftest import Client, Server
from tests.test_cli import _serve_argv

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(rb"^lovewire listening ws://[\d.]+:(\d+) http://[\d.]+:(\d+)$")
SMS_LINE = re.compile(rb"^lovewire sms to (\S+): code (\d{6})$")


def png_uri(shade: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), (shade, 90, 200)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


# -- item 5: no level of logging leaks secrets --------------------------------------------


class Served:
    """A `lovewire serve` process of this tree; codes come from its standard output."""

    def __init__(self, proc: asyncio.subprocess.Process, ws_port: int, http_port: int) -> None:
        self.proc = proc
        self.ws_url = f"ws://127.0.0.1:{ws_port}"
        self.http_port = http_port
        self.http_url = f"http://127.0.0.1:{http_port}"

    async def code(self, tel: str) -> str:
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 10)).rstrip(b"\n")
        match = SMS_LINE.match(line)
        assert match and match.group(1).decode() == tel, line
        return match.group(2).decode()


async def _call(ws: Any, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(frame))
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if not reply["type"].endswith("_notify"):
            assert reply["success"], reply
            return reply  # type: ignore[no-any-return]


async def _sign_up(served: Served, ws: Any, tel: str, secrets: list[str]) -> str:
    await _call(ws, {"type": "sms_validation_request", "tel": tel})
    code = await served.code(tel)
    ticket = (await _call(ws, {"type": "sms_validation_code", "code": code}))["token"]
    info = {"nickname": "zhang", "sex": 1, "birthday": "1995-3-21"}
    token = (await _call(ws, {"type": "user_register_info", "token": ticket, **info}))["token"]
    secrets += [code, ticket, token]
    return str(token)


async def test_log_at_debug_holds_no_code_token_or_tel(tmp_path: Path) -> None:
    """A whole debug-level run (login, register, crush, chat, profile, refresh, tel change,
    HTTP) logs no code, token, tel or chat message it used: not in frames, SQL parameters
    or our own lines."""
    log_path = tmp_path / "stderr.log"
    tels = ["13911110001", "13911110002", "13911110003", "13911110004"]
    secrets: list[str] = list(tels)
    with log_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *_serve_argv(tmp_path),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "LOVEWIRE_LOG_LEVEL": "debug",
                "LOVEWIRE_SMS_PROVIDER": "console",
                "LOVEWIRE_SMS_INTERVAL": "0",
            },
        )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).rstrip(b"\n")
        match = LISTENING.match(first)
        assert match, first
        served = Served(proc, int(match.group(1)), int(match.group(2)))
        async with connect(served.ws_url) as a, connect(served.ws_url) as c:
            await _sign_up(served, a, tels[0], secrets)
            await _sign_up(served, c, tels[2], secrets)
            await _call(a, {"type": "crush_add_request", "crush_tel": tels[2], "words": "hi"})
            await _call(a, {"type": "crush_add_request", "crush_tel": tels[1]})
            matched = await _call(c, {"type": "crush_add_request", "crush_tel": tels[0]})
            assert matched["matched"], matched
            chat = (await _call(a, {"type": "chat_list_request"}))["conversations"][0]
            text = "meet me at the 秘密 place"
            send = {"type": "chat_send_request", "conversation_id": chat["conversation_id"]}
            await _call(c, {**send, "msg": text, "client_msg_id": "m1"})
            await _call(c, {**send, "msg": text, "client_msg_id": "m1"})  # a retry
            await _call(
                a, {"type": "chat_history_request", "conversation_id": chat["conversation_id"]}
            )
            secrets.append(text)
            update = {"type": "profile_update_request", "nickname": "li", "signature": "yo"}
            await _call(a, update)
            token = (await _call(a, {"type": "token_refresh_request"}))["token"]
            secrets.append(token)
            await _call(a, {"type": "tel_change_request", "new_tel": tels[3]})
            new_code, old_code = await served.code(tels[3]), await served.code(tels[0])
            change = {"type": "tel_change_code", "code": new_code, "old_code": old_code}
            token = (await _call(a, change))["token"]
            secrets += [new_code, old_code, token]
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    served.http_url + "/api",
                    data=json.dumps({"type": "profile_request", "token": token}),
                ) as resp,
            ):
                assert (await resp.json())["profile"]["tel"] == tels[3]
            await _call(c, {"type": "crush_received_request"})
        # Requests aiohttp cannot parse: its error quotes them (a tel in a header or path).
        for raw in (
            f"GARBAGE /api?tel={tels[1]} HTTP/1.1\r\n\r\n",
            f"GET /api?tel={tels[1]} HTTP/1.1\r\nHost: {tels[2]}\x00\r\n\r\n",
            f"POST /api HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}BAD /{tels[3]} HTTP/1.1\r\n\r\n",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", served.http_port)
            writer.write(raw.encode())
            assert (await asyncio.wait_for(reader.read(), 10)).count(b" 400 ") == 1
            writer.close()
            await writer.wait_closed()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert " DEBUG " in log and "connection is OPEN" in log, log[:2000]
    leaked = [s for s in secrets if re.search(rf"(?<![0-9A-Za-z_-]){re.escape(s)}(?![0-9])", log)]
    assert leaked == [], [line for line in log.splitlines() if any(s in line for s in leaked)][:5]


# -- item 6: timing does not reveal who is registered -------------------------------------


def _template(statement: str) -> str:
    """A traced statement without its values, to compare what two requests ran."""
    return re.sub(r"'(?:[^']|'')*'|\bX'[0-9A-F]*'|\b\d+\b|\bNULL\b", "?", statement)


@pytest.mark.sqlite_only
async def test_crush_add_registered_or_not_same_statements_one_commit(server: Server) -> None:
    """Adding a registered, notice-accepting tel runs the very statements an unregistered
    tel's add runs, in one commit; only the first stores the anonymous notice."""
    async with AsyncExitStack() as stack:
        admirer = await stack.enter_async_context(server.connect())
        await server.register(admirer)
        async with server.connect() as t:
            target = await server.register(t)
        statements: list[str] = []
        assert server.app.services is not None
        # The add is one write unit: the writer runs all of it (readers serve other
        # sockets, such as the target's closing replay, and are not traced).
        writer = server.app.services.store._writer  # type: ignore[attr-defined]
        await writer.set_trace_callback(statements.append)
        ran = {}
        for label, tel in (("registered", target["tel"]), ("unregistered", server.new_tel())):
            statements.clear()
            done = await admirer.request({"type": "crush_add_request", "crush_tel": tel})
            assert done["success"] and done["matched"] is False
            ran[label] = [_template(s) for s in statements]
        assert ran["registered"] == ran["unregistered"]
        assert [s for s in ran["registered"] if s.startswith("COMMIT")] == ["COMMIT"]
        async with server.connect() as t:
            auth = {"type": "auth_request", "token": target["token"], "last_seq": 0}
            assert (await t.request(auth))["success"]
            assert (await t.push())["type"] == "crush_notify"


async def _change(client: Client, new_tel: str) -> int:
    frame = await client.request({"type": "tel_change_request", "new_tel": new_tel})
    return int(frame["error_no"])


@pytest.mark.parametrize("registered", [True, False])
async def test_tel_change_to_registered_tel_spends_sms_budget_like_success(
    start_server: Any, registered: bool
) -> None:
    """Error 10 uses up the per-tel budget exactly as sending the codes does: after the
    same number of requests the next one is error 6, registered target or not."""
    server: Server = await start_server(sms_interval=0, sms_tel_hourly=3)
    async with server.connect() as a, server.connect() as b:
        await server.register(a)
        other = await server.register(b)
        new_tel = other["tel"] if registered else server.new_tel()
        results = []
        for _ in range(3):
            results.append(await _change(a, new_tel))
            while not server.sms.messages.empty():
                server.sms.messages.get_nowait()
    expected = 10 if registered else 0
    assert results == [expected, expected, 6]


async def test_tel_change_to_registered_tel_starts_socket_interval(server: Server) -> None:
    """Error 10 starts the socket's 60 s like a sent code: the next probe is error 6."""
    async with server.connect() as a, server.connect() as b, server.connect() as c:
        await server.register(a)
        taken = [(await server.register(x))["tel"] for x in (b, c)]
        server.clock.advance(61)
        assert await _change(a, taken[0]) == 10
        assert await _change(a, taken[1]) == 6
        assert await _change(a, server.new_tel()) == 6
        server.clock.advance(61)
        assert await _change(a, taken[1]) == 10
    assert server.sms.messages.empty()


# -- item 11: the error frame of an unknown type echoes a valid id ------------------------


@pytest.mark.parametrize(
    ("frame", "echoed"),
    [
        ({"type": "no_such_request", "id": "r1"}, "r1"),
        ({"type": "picture_like_notify", "id": 7}, 7),
        ({"id": "no-type"}, "no-type"),
        ({"type": 5, "id": "int-type"}, "int-type"),
        ({"type": None, "id": 12}, 12),
        ({"type": "no_such_request", "id": {"a": 1}}, None),
        ({"type": "no_such_request", "id": "x" * 65}, None),
        ({"type": "no_such_request", "id": True}, None),
    ],
)
async def test_unknown_type_error_echoes_valid_id(
    server: Server, frame: dict[str, Any], echoed: Any
) -> None:
    """Error 4 echoes a valid id (and only a valid one); the socket keeps working."""
    async with server.connect() as c:
        reply = await c.request(frame)
        assert reply["type"] == "error" and reply["error_no"] == 4
        assert reply.get("id") == echoed
        assert (await c.request({"type": "ping_request", "id": "after"}))["id"] == "after"


# -- item 13: international numbers are normalized to E.164 -------------------------------


@pytest.mark.parametrize(
    "spelled",
    [
        "+447911123456",
        "+44 7911 123456",
        "+44 07911 123456",
        "+44 (0)7911-123456",
        "0044 7911 123456",
        "+44.7911.123.456",
    ],
)
async def test_international_tel_spellings_are_one_number(start_server: Any, spelled: str) -> None:
    """A trunk zero, `00`, spaces, hyphens, dots or parentheses make no new number."""
    server: Server = await start_server(sms_international=True)
    async with server.connect() as c:
        sent = await c.request({"type": "sms_validation_request", "tel": spelled})
        assert sent["success"], sent
        await server.sms.code_for("+447911123456")


@pytest.mark.parametrize(
    "bad",
    [
        "+44 12345",  # E.164 in shape, no such number
        "+4479111234567",  # one digit too many
        "+1 800 FLOWERS",  # letters read as digits by a keypad
        "+44 7911 123456 ext 5",
        "+86 10 1234 5678",  # a mainland landline
        "+44 7911 １２３４５６",  # fullwidth digits
        "+",
    ],
)
async def test_international_tel_not_valid_is_error_2(start_server: Any, bad: str) -> None:
    """Only valid numbers (phonenumbers.is_valid_number) are accepted."""
    server: Server = await start_server(sms_international=True)
    async with server.connect() as c:
        sent = await c.request({"type": "sms_validation_request", "tel": bad})
        assert sent["error_no"] == 2, (bad, sent)


async def test_international_crush_tel_stored_in_e164(start_server: Any) -> None:
    """A crush on a trunk-zero spelling is the same crush as on the E.164 number."""
    server: Server = await start_server(sms_international=True)
    async with server.connect() as c:
        await server.register(c)
        for spelled in ("+44 07911 123456", "0044 7911 123456", "+447911123456"):
            frame = {"type": "crush_add_request", "crush_tel": spelled}
            assert (await c.request(frame))["success"]
        listed = await c.request({"type": "crush_list_request"})
        assert [i["crush_tel"] for i in listed["crushes"]] == ["+447911123456"]
        plus86 = {"type": "crush_add_request", "crush_tel": "0086 138 0000 0777"}
        assert (await c.request(plus86))["success"]
        listed = await c.request({"type": "crush_list_request"})
        assert sorted(i["crush_tel"] for i in listed["crushes"]) == [
            "+447911123456",
            "13800000777",
        ]


async def test_mainland_tel_unchanged_and_international_off_by_default(server: Server) -> None:
    """Mainland numbers are still 11 digits; without the setting no other number passes."""
    async with server.connect() as c:
        sent = await c.request({"type": "sms_validation_request", "tel": "86 139-1111-0009"})
        assert sent["success"], sent
        await server.sms.code_for("13911110009")
        for bad in ("+447911123456", "0044 7911 123456"):
            frame = {"type": "sms_validation_request", "tel": bad}
            assert (await c.request(frame))["error_no"] == 2
