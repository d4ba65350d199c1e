"""Connection limits and the operator's HTTP endpoints (sections 4.1, 5, 6, 7)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import Server


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, await resp.text()


async def _post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as r:
        return r.status, await r.json()


async def test_sockets_per_user_oldest_closed_1008(start_server: Any) -> None:
    """Beyond LOVEWIRE_SOCKETS_PER_USER, the user's oldest socket is closed with 1008."""
    server: Server = await start_server(sockets_per_user=2)
    async with server.connect() as first, server.connect() as second, server.connect() as third:
        reg = await server.register(first)
        for c in (second, third):
            assert (await c.request({"type": "auth_request", "token": reg["token"]}))["success"]
        with pytest.raises(ConnectionClosed):
            await first.recv()
        assert first.ws.close_code == 1008
        assert (await third.request({"type": "ping_request"}))["success"]


async def test_sockets_per_addr_new_socket_closed_1013(start_server: Any) -> None:
    """Beyond LOVEWIRE_SOCKETS_PER_ADDR, a new socket from that address is closed at once."""
    server: Server = await start_server(sockets_per_addr=2)
    async with server.connect() as a, server.connect() as b, server.connect() as c:
        with pytest.raises(ConnectionClosed):
            await c.recv()
        assert c.ws.close_code == 1013
        for ok in (a, b):
            assert (await ok.request({"type": "ping_request"}))["success"]


async def test_expired_token_resent_ends_session(server: Server) -> None:
    """Sending the socket's own token after it expired ends the session with `expired`."""
    async with server.connect() as c:
        reg = await server.register(c)
        server.clock.advance(31 * 86400)
        frame = await c.request({"type": "ping_request", "token": reg["token"]})
        assert frame["error_no"] == 5
        assert c.pushes == [{"type": "session_end_notify", "reason": "expired"}]
        assert (await c.request({"type": "token_refresh_request"}))["error_no"] == 5


async def test_admin_endpoints_need_token_through_proxy(start_server: Any) -> None:
    """Through a proxy (X-Forwarded-For), /metrics and broadcast need the admin token."""
    server: Server = await start_server(admin_token="adm1n")
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    assert (await _get(server.http_url + "/metrics", proxied))[0] == 403
    status, text = await _get(
        server.http_url + "/metrics", {**proxied, "Authorization": "Bearer adm1n"}
    )
    assert status == 200 and "lovewire_requests_total" in text
    async with aiohttp.ClientSession() as http:
        async with http.post(
            server.http_url + "/admin/broadcast", json={"msg": "x"}, headers=proxied
        ) as resp:
            assert resp.status == 403


async def test_metrics_counts_requests_and_errors(server: Server) -> None:
    """/metrics (loopback) counts requests by type and errors by code."""
    async with server.connect() as c:
        await c.request({"type": "logout_request"})
    status, text = await _get(server.http_url + "/metrics")
    assert status == 200
    assert 'lovewire_requests_total{type="logout_request"} 1.0' in text
    assert 'lovewire_errors_total{error_no="5"} 1.0' in text
    assert "lovewire_sockets_open " in text
