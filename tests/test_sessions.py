"""Session tokens: auth requests, expiry, restart, logout and refresh (contract 4.1)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Server
from tests.test_auth import BASE_FIELDS, assert_error


async def test_auth_request_new_socket_logs_in(server: Server) -> None:
    """A saved token logs a new socket in."""
    async with server.connect() as c:
        reg = await server.register(c, nickname="wang")
    async with server.connect() as c:
        auth = await c.request({"type": "auth_request", "token": reg["token"], "last_seq": 0})
        assert set(auth) == BASE_FIELDS | {
            "user_id",
            "nickname",
            "token_expire",
            "token_expire_ts",
            "last_seq",
            "recovered",
        }
        assert auth["user_id"] == reg["user_id"] and auth["nickname"] == "wang"
        assert auth["last_seq"] == 0 and auth["recovered"] is True
        assert (await c.request({"type": "token_refresh_request"}))["success"]


async def test_auth_request_bad_token_is_5(server: Server) -> None:
    """An unknown or missing token is error 5."""
    async with server.connect() as c:
        assert_error(
            await c.request({"type": "auth_request", "token": "x" * 43}), "auth_response", 5
        )
        assert_error(await c.request({"type": "auth_request"}), "auth_response", 5)


async def test_token_expired_is_5(server: Server) -> None:
    """After LOVEWIRE_TOKEN_DAYS the token no longer logs in."""
    async with server.connect() as c:
        reg = await server.register(c)
    server.clock.advance(31 * 86400)
    async with server.connect() as c:
        assert_error(
            await c.request({"type": "auth_request", "token": reg["token"]}), "auth_response", 5
        )


async def test_token_in_request_logs_socket_in(server: Server) -> None:
    """The original app puts `token` in requests: that logs the socket in."""
    async with server.connect() as c:
        reg = await server.register(c)
    async with server.connect() as c:
        assert_error(
            await c.request({"type": "token_refresh_request"}), "token_refresh_response", 5
        )
        assert (await c.request({"type": "ping_request", "token": reg["token"]}))["success"]
        assert (await c.request({"type": "token_refresh_request"}))["success"]


async def test_token_of_other_user_is_5(server: Server) -> None:
    """A socket never changes user through a request's token."""
    async with server.connect() as a, server.connect() as b:
        reg_a = await server.register(a)
        await server.register(b)
        assert_error(
            await b.request({"type": "ping_request", "token": reg_a["token"]}), "ping_response", 5
        )


async def test_restart_user_and_token_survive(start_server: Any) -> None:
    """Users and tokens are in the database file."""
    first: Server = await start_server()
    async with first.connect() as c:
        reg = await first.register(c, nickname="zhao")
    await first.app.stop()
    second: Server = await start_server()
    async with second.connect() as c:
        auth = await c.request({"type": "auth_request", "token": reg["token"]})
        assert auth["success"] and auth["user_id"] == reg["user_id"] and auth["nickname"] == "zhao"


async def test_logout_revokes_token_and_ends_other_sockets(server: Server) -> None:
    """Logout revokes the token; another socket on it gets session_end_notify and stays open."""
    async with server.connect() as a, server.connect() as b:
        reg = await server.register(a)
        assert (await b.request({"type": "auth_request", "token": reg["token"]}))["success"]
        out = await a.request({"type": "logout_request"})
        assert out == {"type": "logout_response", "success": True, "error_no": 0, "err_msg": ""}
        assert await b.push() == {"type": "session_end_notify", "reason": "logout"}
        assert_error(
            await b.request({"type": "token_refresh_request"}), "token_refresh_response", 5
        )
        assert_error(
            await a.request({"type": "auth_request", "token": reg["token"]}), "auth_response", 5
        )


async def test_logout_all_revokes_every_token(server: Server) -> None:
    """logout {all: true} revokes every token of the user."""
    async with server.connect() as a:
        reg = await server.register(a)
    server.clock.advance(61)
    async with server.connect() as b:
        second = await server.login_code(b, reg["tel"])
        assert (await b.request({"type": "logout_request", "all": True}))["success"]
    async with server.connect() as c:
        for token in (reg["token"], second["token"]):
            assert_error(
                await c.request({"type": "auth_request", "token": token}), "auth_response", 5
            )


async def test_token_refresh_revokes_old_token(server: Server) -> None:
    """A refreshed token replaces the old one; the socket stays logged in."""
    async with server.connect() as a, server.connect() as b:
        reg = await server.register(a)
        assert (await b.request({"type": "auth_request", "token": reg["token"]}))["success"]
        new = await a.request({"type": "token_refresh_request"})
        assert new["success"] and new["token"] != reg["token"]
        assert await b.push() == {"type": "session_end_notify", "reason": "refreshed"}
        assert (await a.request({"type": "token_refresh_request"}))["success"]
        assert_error(
            await b.request({"type": "auth_request", "token": reg["token"]}), "auth_response", 5
        )
