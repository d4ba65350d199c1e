"""Ingress limits (issue 7, items 3, 7, 8, 12, 16): what a stranger can make the server do."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import resource
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict
from PIL import Image
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from lovewire.clock import ManualClock
from lovewire.config import Settings
from tests.conftest import LOOPS, Client, Server
from tests.test_cli import LISTENING, _serve_argv

MIB = 1 << 20


def _gif_uri() -> str:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 30)).save(out, "GIF")
    return "data:image/gif;base64," + base64.b64encode(out.getvalue()).decode()


@asynccontextmanager
async def _from(server: Server, *forwarded_for: str) -> AsyncIterator[Client]:
    """A socket through the trusted 127.0.0.1 proxy, for the client X-Forwarded-For names."""
    headers = [("X-Forwarded-For", value) for value in forwarded_for]
    async with connect(server.ws_url, max_size=None, additional_headers=headers) as ws:
        yield Client(ws)


async def _closed_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    return info.value.rcvd.code if info.value.rcvd is not None else None


async def _post(server: Server, path: str, body: str, *forwarded_for: str) -> tuple[int, Any]:
    headers = CIMultiDict([("X-Forwarded-For", value) for value in forwarded_for])
    data = io.BytesIO(body.encode())  # a big bytes body would warn
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.http_url + path, data=data, headers=headers) as resp,
    ):
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None)


# -- item 3: frames and bodies a stranger can make the server parse --------------------


async def test_anonymous_frame_over_anon_limit_closes_1009(server: Server) -> None:
    """Before login a frame over LOVEWIRE_MAX_ANON_FRAME (64 KiB) is closed with 1009."""
    async with server.connect() as c:
        await c.send('{"type":"ping_request","pad":"' + "x" * 100 * 1024 + '"}')
        assert await _closed_code(c.ws) == 1009


async def test_logged_in_socket_sends_1mib_upload_frame(server: Server) -> None:
    """Once logged in, a socket may send frames up to LOVEWIRE_MAX_FRAME again."""
    async with server.connect() as c:
        await server.register(c)
        frame = {
            "type": "picture_upload_request",
            "picture": _gif_uri(),
            "words": "big frame",
            "pad": "x" * (MIB - 4096),
        }
        reply = await c.request(frame)
        assert reply["success"], reply


async def test_frame_of_many_values_refused_unparsed_socket_stays(server: Server) -> None:
    """A logged-in 1 MiB frame of `[[],[],...]` inside an object is error 11; the socket lives."""
    async with server.connect() as c:
        await server.register(c)
        lists = ",".join(["[]"] * (MIB // 3 - 20))
        reply = await c.request('{"type":"ping_request","x":[' + lists + "]}")
        assert reply["type"] == "error" and reply["error_no"] == 11, reply
        reply = await c.request("[" + lists + "]")
        assert reply["type"] == "error" and reply["error_no"] == 3, reply
        assert (await c.request({"type": "ping_request"}))["success"]


async def test_api_body_over_max_frame_is_413_error_11(server: Server) -> None:
    """POST /api is limited like a frame (LOVEWIRE_MAX_FRAME): 413 with the error-11 frame."""
    body = '{"type":"ping_request","pad":"' + "x" * (MIB + 10) + '"}'
    status, frame = await _post(server, "/api", body)
    assert status == 413 and frame["type"] == "error" and frame["error_no"] == 11, frame


async def test_upload_route_still_takes_a_big_body(server: Server) -> None:
    """The legacy upload route keeps the larger upload body limit."""
    async with server.connect() as c:
        token = (await server.register(c))["token"]
    body = json.dumps({"token": token, "picture": _gif_uri(), "words": "w", "pad": "x" * (3 * MIB)})
    status, frame = await _post(server, "/index.php?r=picture/upload", body)
    assert status == 200 and frame["success"], frame


# -- item 16: every request counts, per socket and per address -------------------------


async def test_failing_requests_count_towards_socket_rate(start_server: Any) -> None:
    """Refused requests use up the socket's rate: a flood of failing likes gets error 6."""
    server: Server = await start_server(requests_per_second=5)
    async with server.connect() as c:
        await server.register(c)
        server.clock.advance(10)
        errors = []
        for _ in range(12):
            reply = await c.request({"type": "picture_like_request", "picture_id": "999"})
            errors.append(reply["error_no"])
        assert errors == [8] * 5 + [6] * 7, errors


async def test_address_request_budget_shared_by_its_sockets(start_server: Any) -> None:
    """All sockets of one address share its request budget; another address is not touched."""
    server: Server = await start_server(requests_per_second=1)
    replies = []
    for _ in range(21):  # the address's budget is 20 sockets' worth
        async with _from(server, "198.51.100.7") as c:
            replies.append((await c.request({"type": "ping_request"}))["error_no"])
    assert replies == [0] * 20 + [6], replies
    async with _from(server, "198.51.100.8") as c:
        assert (await c.request({"type": "ping_request"}))["success"]


async def test_http_requests_share_their_address_rate(start_server: Any) -> None:
    """HTTP requests of one address share one socket's rate: error 6 with retry_after."""
    server: Server = await start_server(requests_per_second=2)
    answers = [
        (await _post(server, "/api", '{"type":"ping_request"}', "2001:db8:1:2::1"))[1]
        for _ in range(2)
    ]
    assert all(a["success"] for a in answers), answers
    status, frame = await _post(server, "/api", '{"type":"ping_request"}', "2001:db8:1:2::2")
    assert status == 200 and frame["error_no"] == 6 and frame["retry_after"] >= 1, frame
    status, frame = await _post(server, "/api", '{"type":"ping_request"}', "2001:db8:1:3::1")
    assert frame["success"], frame


def test_address_table_forgets_idle_addresses() -> None:
    """A client rotating addresses cannot grow the per-address table without bound."""
    from lovewire.addresses import client_address
    from lovewire.ingress import AddressBook

    clock = ManualClock()
    now = [0.0]
    book = AddressBook(Settings(), clock, monotonic=lambda: now[0])
    for i in range(20_000):
        book.get(client_address(f"2001:db8:{i // 65536:x}:{i % 65536:x}::1", None, ()))
        book.get(f"2001:db8::{i}").requests.take(clock.now())
        clock.advance(0.01)
        now[0] += 0.01
    assert len(book) < 5_000
    busy = book.get("198.51.100.1")
    busy.sockets = 1
    clock.advance(100)
    now[0] += 100
    book.sweep()
    assert len(book) == 1 and book.get("198.51.100.1") is busy


# -- item 12: addresses through proxies, in any spelling, IPv6 per /64 ----------------


async def test_two_forwarded_for_headers_are_one_list(start_server: Any) -> None:
    """Two X-Forwarded-For headers on a handshake are read as one list, not a 1011."""
    server: Server = await start_server(sockets_per_addr=1)
    async with _from(server, "192.0.2.1", "203.0.113.5") as first:
        assert (await first.request({"type": "ping_request"}))["success"]
        async with _from(server, "192.0.2.99, 203.0.113.5") as same:
            assert await _closed_code(same.ws) == 1013
        async with _from(server, "203.0.113.5, 192.0.2.1") as other:
            assert (await other.request({"type": "ping_request"}))["success"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("192.0.2.4", "::ffff:192.0.2.4"),
        ("192.0.2.4", "::FFFF:c000:0204"),
        ("2001:db8:5:6::1", "2001:0db8:0005:0006:ffff::9"),
    ],
)
async def test_address_spellings_and_ipv6_64_are_one_address(
    start_server: Any, first: str, second: str
) -> None:
    """One address in any spelling, or one IPv6 /64, counts once for sockets per address."""
    server: Server = await start_server(sockets_per_addr=1)
    async with _from(server, first) as c:
        assert (await c.request({"type": "ping_request"}))["success"]
        async with _from(server, second) as again:
            assert await _closed_code(again.ws) == 1013
        async with _from(server, "2001:db8:5:7::1") as next_64:
            assert (await next_64.request({"type": "ping_request"}))["success"]


async def test_sms_address_cap_counts_ipv6_per_64(start_server: Any) -> None:
    """The SMS cap per address counts an IPv6 client by its /64."""
    server: Server = await start_server(sms_addr_hourly=1)
    async with _from(server, "2001:db8:9:9::1") as c:
        tel = server.new_tel()
        assert (await c.request({"type": "sms_validation_request", "tel": tel}))["success"]
        await server.sms.code_for(tel)
    async with _from(server, "2001:db8:9:9:abcd::2") as c:
        frame = await c.request({"type": "sms_validation_request", "tel": server.new_tel()})
        assert frame["error_no"] == 6, frame


# -- item 8: out of file descriptors; lovewire serve as a process --------------------


async def _serve(tmp_path: Path, env: dict[str, str], preexec: Any = None) -> Any:
    """`lovewire serve` with its standard error in a file; (process, ws port, http port)."""
    stderr = (tmp_path / "stderr.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *_serve_argv(tmp_path),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env={**os.environ, **env},
        preexec_fn=preexec,
    )
    stderr.close()
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), 20)).rstrip(b"\n")
    match = LISTENING.match(first)
    assert match, first
    return proc, int(match.group(2)), int(match.group(4))


async def _healthy_again(http_port: int, within: float = 10.0) -> None:
    """Until /healthz answers 200. The server frees the aborted sockets' descriptors as it
    reads their resets; until then a new connection may still find none (uvloop accepts
    it and closes it at once), so a connection reset is tried again, for `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{http_port}/healthz") as resp,
            ):
                assert resp.status == 200
                return
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)  # a poll: no event tells when the server has freed them


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_out_of_file_descriptors_logs_one_line_a_second(tmp_path: Path, loop: str) -> None:
    """Running out of file descriptors on accept logs a line a second, not a traceback each,
    on either event loop (uvloop reports no failed accept: a probe finds the shortage)."""
    if loop not in LOOPS:
        pytest.skip(f"{loop} is not installed")

    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    proc, ws_port, http_port = await _serve(tmp_path, {"LOVEWIRE_EVENT_LOOP": loop}, few_files)
    try:
        held = []
        # The listeners fail from the first connection over the limit: count from here.
        started = asyncio.get_running_loop().time()
        for i in range(120):
            held.append(await asyncio.open_connection("127.0.0.1", (ws_port, http_port)[i % 2]))
        # Keep the listeners failing for a while: the server must stay quiet meanwhile.
        await asyncio.sleep(2)  # the time under test, not a wait for an event
        for _, writer in held:
            writer.transport.abort()
        elapsed = asyncio.get_running_loop().time() - started
        await _healthy_again(http_port)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    log = (tmp_path / "stderr.log").read_text()
    assert "Traceback" not in log, log[:2000]
    assert f"(event loop: {loop})" in log, log[:2000]
    lines = [line for line in log.splitlines() if "cannot accept" in line]
    assert 1 <= len(lines) <= elapsed + 3, log[:2000]


# -- item 7: SIGTERM within the grace, whatever is queued ------------------------------


async def test_sigterm_exits_within_grace_whatever_is_queued(tmp_path: Path) -> None:
    """SIGTERM: queued requests are abandoned, in-flight ones get the grace, exit 0 in time."""
    grace = 1.0
    proc, ws_port, http_port = await _serve(tmp_path, {"LOVEWIRE_SHUTDOWN_GRACE": str(grace)})
    assert proc.stdout is not None
    url = f"ws://127.0.0.1:{ws_port}"
    try:
        async with connect(url) as ws:
            tel = "18615794931"
            await ws.send(json.dumps({"type": "sms_validation_request", "tel": tel}))
            assert json.loads(await ws.recv())["success"]
            code = (await asyncio.wait_for(proc.stdout.readline(), 10)).split()[-1].decode()
            await ws.send(json.dumps({"type": "sms_validation_code", "code": code}))
            ticket = json.loads(await ws.recv())["token"]
            await ws.send(
                json.dumps(
                    {
                        "type": "user_register_info",
                        "token": ticket,
                        "nickname": "n",
                        "sex": 1,
                        "birthday": "1990-1-1",
                    }
                )
            )
            token = json.loads(await ws.recv())["token"]
        # Sockets that queue many requests and never read their answers.
        stalled = []
        for _ in range(5):
            ws = await connect(url, max_queue=1)
            await ws.send(json.dumps({"type": "auth_request", "token": token}))
            for _ in range(300):
                await ws.send(json.dumps({"type": "picture_info_request"}))
            stalled.append(ws)
        # An HTTP request whose body never ends.
        _, writer = await asyncio.open_connection("127.0.0.1", http_port)
        writer.write(b'POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"type"')
        await writer.drain()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), grace + 5) == 0
        writer.close()
        for ws in stalled:
            ws.transport.abort()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert re.search(r"\bstopped\b", (tmp_path / "stderr.log").read_text())
