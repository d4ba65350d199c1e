"""Ingress limits on HTTP (issue 7, item 8): connections, deadlines, aborts."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.conftest import Server
from tests.test_security_ingress import _post

# -- item 8: HTTP connections, deadlines, aborts --------------------------------------


async def _eof_or_reset(reader: asyncio.StreamReader) -> bytes:
    """What the server sends before it closes the connection (b"" if nothing)."""
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        return b""


async def test_http_request_must_arrive_within_timeout(start_server: Any) -> None:
    """A request still incomplete after LOVEWIRE_HTTP_TIMEOUT has its connection dropped."""
    server: Server = await start_server(http_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.app.http_port)
    writer.write(b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()
    assert await _eof_or_reset(reader) == b""
    writer.close()
    # A slow header is dropped as well.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.app.http_port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    assert await _eof_or_reset(reader) == b""
    writer.close()
    status, frame = await server.post("/api", '{"type":"ping_request"}')
    assert status == 200 and frame["success"]


async def test_http_connections_per_address_limited(start_server: Any) -> None:
    """At most LOVEWIRE_HTTP_PER_ADDR open HTTP connections per address; the next is closed."""
    server: Server = await start_server(http_per_addr=3, trusted_proxies="")
    port = server.app.http_port
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await _eof_or_reset(reader) == b""
    writer.close()
    for _, w in held:
        w.close()
    # Once the server has seen them closed, a new connection is admitted again.
    for _ in range(50):
        try:
            status, frame = await server.post("/api", '{"type":"ping_request"}')
            break
        except aiohttp.ClientError:
            continue
    assert status == 200 and frame["success"]


async def test_proxied_http_requests_in_flight_limited_per_client(start_server: Any) -> None:
    """Through a trusted proxy, a client's requests in flight count per client address."""
    server: Server = await start_server(http_per_addr=2)
    stuck = []
    for _ in range(2):  # requests whose bodies never end: in flight until dropped
        _, writer = await asyncio.open_connection("127.0.0.1", server.app.http_port)
        writer.write(
            b"POST /api HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.50\r\n"
            b'Content-Length: 5000\r\n\r\n{"type":"ping_request","p":"'
        )
        await writer.drain()
        stuck.append(writer)
    # The stuck requests reach their handler in their own time: ask until they have.
    for _ in range(40):
        _, frame = await _post(server, "/api", '{"type":"ping_request"}', "192.0.2.50")
        if frame["error_no"] == 6:
            break
    assert frame["error_no"] == 6 and frame["retry_after"] >= 1, frame
    _, frame = await _post(server, "/api", '{"type":"ping_request"}', "192.0.2.51")
    assert frame["success"], frame
    for writer in stuck:
        writer.close()


async def test_aborted_http_request_logs_nothing_above_debug(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that drops its request mid-body leaves no error (nor traceback) in the log."""
    caplog.set_level("DEBUG")
    for _ in range(3):
        _, writer = await asyncio.open_connection("127.0.0.1", server.app.http_port)
        writer.write(b'POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"type"')
        await writer.drain()
        writer.transport.abort()
    # The server is still fine, and by now has handled the aborted requests' ends.
    for _ in range(3):
        _, frame = await server.post("/api", '{"type":"ping_request"}')
        assert frame["success"]
    loud = [r for r in caplog.records if r.levelno > 10]
    assert loud == [], [r.getMessage() for r in loud]
