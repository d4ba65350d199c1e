"""Socket-wide protocol: ping, request rate, error language, many logins, frame size."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import Server

BASE_FIELDS = {"type", "success", "error_no", "err_msg"}


def assert_error(frame: dict[str, Any], type_: str, error_no: int) -> None:
    assert frame["type"] == type_, frame
    assert frame["success"] is False, frame
    assert frame["error_no"] == error_no, frame
    assert isinstance(frame["err_msg"], str) and frame["err_msg"], frame


async def test_ping_answers_time(server: Server) -> None:
    """ping works without login and carries the server time."""
    async with server.connect() as c:
        pong = await c.request({"type": "ping_request"})
        assert set(pong) == BASE_FIELDS | {"time", "time_ts"}
        assert pong["time_ts"] == int(server.clock.now())


async def test_requests_per_second_limit_is_6(start_server: Any) -> None:
    """Beyond LOVEWIRE_REQUESTS_PER_SECOND a socket gets error 6 until time passes."""
    server: Server = await start_server(requests_per_second=3)
    async with server.connect() as c:
        for _ in range(3):
            assert (await c.request({"type": "ping_request"}))["success"]
        assert_error(await c.request({"type": "ping_request"}), "ping_response", 6)
        server.clock.advance(1)
        assert (await c.request({"type": "ping_request"}))["success"]


async def test_err_msg_english_when_configured(start_server: Any) -> None:
    """LOVEWIRE_LANG=en gives English messages."""
    server: Server = await start_server(lang="en")
    async with server.connect() as c:
        frame = await c.request({"type": "sms_validation_code", "code": "123456"})
        assert frame["err_msg"].isascii()


async def test_concurrent_logins_many_sockets(server: Server) -> None:
    """Many sockets registering at once all succeed with distinct ids."""

    async def one() -> str:
        async with server.connect() as c:
            return str((await server.register(c))["user_id"])

    ids = await asyncio.gather(*(one() for _ in range(20)))
    assert len(set(ids)) == 20


async def test_oversized_frame_closes_1009(start_server: Any) -> None:
    """A frame over LOVEWIRE_MAX_FRAME is closed by the WebSocket layer with 1009."""
    server: Server = await start_server(max_frame=2048)
    async with server.connect() as c:
        await c.send('{"type":"ping_request","pad":"' + "x" * 4096 + '"}')
        with pytest.raises(ConnectionClosed) as info:
            await c.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
