"""Where two limits meet: holes a review of the security work found between its parts."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging

import pytest
from PIL import Image

from lovewire.imagepool import _decode_reply
from lovewire.ingress import AcceptErrorLog
from tests.conftest import Server
from tests.test_security_ingress import _closed_code, _post


async def test_socket_logged_out_from_elsewhere_reads_only_anonymous_frames(
    server: Server,
) -> None:
    """After another socket's logout-all, a socket is anonymous: a 100 KB frame closes it."""
    async with server.connect() as a, server.connect() as b:
        registered = await server.register(a)
        assert (await b.request({"type": "auth_request", "token": registered["token"]}))["success"]
        assert (await a.request({"type": "logout_request", "all": True}))["success"]
        assert (await b.push())["type"] == "session_end_notify"
        await b.send(json.dumps({"type": "ping_request", "pad": "x" * 100_000}))
        assert await _closed_code(b.ws) == 1009


async def test_chunked_body_is_charged_while_it_is_read(start_server: object) -> None:
    """A body of unknown length is not read whole before the parse budget is asked."""
    server: Server = await start_server(max_frame=1024)  # type: ignore[operator]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.app.http_port)
    writer.write(
        b"POST /index.php?r=picture/upload HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"A" * 65536
    for _ in range(3):
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    await writer.drain()
    # The body never ends: only a server that refuses it as it arrives can answer.
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    frame = json.loads(await reader.readexactly(length))
    assert frame["type"] == "picture_upload_response" and frame["error_no"] == 6, frame
    assert frame["retry_after"] >= 1
    writer.transport.abort()


async def test_http_deadline_starts_again_after_a_post_answered_unread(
    start_server: object,
) -> None:
    """A keep-alive request after a POST answered without its body has its own deadline."""
    server: Server = await start_server(http_timeout=2)  # type: ignore[operator]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.app.http_port)
    writer.write(b"POST /index.php?r=nope HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 404"), head
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    await reader.readexactly(length)
    body = b'{"type":"ping_request"}'
    # The times under test: the second request starts 1 s after the first and takes 1.5 s
    # to arrive, so it ends 2.5 s after the first began, 1.5 s after its own start.
    await asyncio.sleep(1.0)
    writer.write(b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
    await writer.drain()
    await asyncio.sleep(1.5)
    writer.write(body)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200"), head
    writer.close()


def _big_png() -> str:
    out = io.BytesIO()
    Image.new("RGB", (5000, 5000), (20, 200, 40)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


async def test_upload_ended_by_logout_all_gives_back_its_budget_and_file(
    start_server: object, caplog: pytest.LogCaptureFixture
) -> None:
    """An upload whose token dies while it decodes leaves no file, no error log, its budget."""
    server: Server = await start_server(  # type: ignore[operator]
        uploads_per_hour=1, picture_cpu_seconds=20, picture_deadline=30
    )
    caplog.set_level(logging.WARNING)
    uploads = server.app.settings.data_dir / "uploads"
    picture = _big_png()
    async with server.connect() as a, server.connect() as b:
        registered = await server.register(a)
        assert (await b.request({"type": "auth_request", "token": registered["token"]}))["success"]
        await a.send({"type": "picture_upload_request", "picture": picture})
        assert (await b.request({"type": "logout_request", "all": True}))["success"]
        answer = await a.response()
        assert answer["error_no"] == 5, answer
    assert not [p for p in uploads.rglob("*") if p.is_file()] if uploads.exists() else True
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    server.clock.advance(61)  # the tel's next code, well inside the upload's hour
    async with server.connect() as c:
        result = await server.login_code(c, registered["tel"])
        assert result["success"], result
        small = io.BytesIO()
        Image.new("RGB", (8, 8), (1, 2, 3)).save(small, "PNG")
        uri = "data:image/png;base64," + base64.b64encode(small.getvalue()).decode()
        posted = await c.request({"type": "picture_upload_request", "picture": uri})
        assert posted["success"], posted  # the hour's one upload was given back


def test_worker_answer_not_of_the_format_is_a_refusal() -> None:
    """The server reads a picture worker's answer as bytes of a fixed format, never a pickle."""
    assert _decode_reply(b"opng\0\x89PNG") == ("ok", "png", b"\x89PNG")
    assert _decode_reply(b"rtoo many frames") == ("refused", "too many frames")
    assert _decode_reply(b"oexe\0MZ")[0] == "retire"
    assert _decode_reply(b"\x80\x05cos\nsystem\n")[0] == "retire"  # a pickle is no answer
    assert _decode_reply(b"")[0] == "retire"


async def test_http_bodies_refused_unread_count_towards_the_rate(start_server: object) -> None:
    """A 413 (refused before parsing) still counts towards its address's HTTP rate."""
    server: Server = await start_server(requests_per_second=5)  # type: ignore[operator]
    too_big = json.dumps({"type": "ping_request", "pad": "x" * 2_000_000})
    for _ in range(5):
        status, frame = await _post(server, "/api", too_big)
        assert (status, frame["error_no"]) == (413, 11)
    status, frame = await server.post("/api", {"type": "ping_request"})
    assert (status, frame["error_no"]) == (200, 6), frame


async def test_accept_retry_after_close_is_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """asyncio's accept retry firing on a closed listener (after EMFILE) logs no error."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(AcceptErrorLog(previous))
    done = asyncio.Event()

    def _start_serving() -> None:  # named as asyncio's own retry callback
        done.set()
        raise ValueError("Invalid file descriptor: -1")

    try:
        with caplog.at_level(logging.DEBUG):
            loop.call_soon(_start_serving)
            await done.wait()
    finally:
        loop.set_exception_handler(previous)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("accept retry" in r.getMessage() for r in caplog.records)
