"""A first walk through login and registration."""

from __future__ import annotations

from tests.conftest import Server


async def test_register_then_ping(server: Server) -> None:
    """A new tel registers and its socket is logged in."""
    async with server.connect() as c:
        reg = await server.register(c)
        assert reg["user_id"] == "1"
        pong = await c.request({"type": "ping_request", "id": 7})
        assert pong["success"] and pong["id"] == 7
