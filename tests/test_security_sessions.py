"""Sessions under attack (issue 7, items 1 and 9): a revoked session stays revoked, and an
expired token logs its sockets out at the moment it expires."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import connect

from handlers import TABLES
from lovewire.app import Lovewire
from lovewire.clock import Clock, ManualClock
from lovewire.config import Settings
from lovewire.connection import Connection
from protocol.times import DAY
from tests.conftest import Client, Server, SmsPlatform

ROOMY: dict[str, Any] = {
    "requests_per_second": 1_000_000,
    "sms_interval": 0,
    "sms_tel_hourly": 10_000,
    "sms_tel_daily": 10_000,
    "sms_addr_hourly": 10_000,
    "sms_global_hourly": 100_000,
    "sockets_per_user": 32,
}
REFRESH = {"type": "token_refresh_request"}


@pytest.fixture
async def busy(start_server: Callable[..., Any]) -> Server:
    """A server with room for many sockets of one user and many codes."""
    server: Server = await start_server(**ROOMY)
    return server


@asynccontextmanager
async def sockets(server: Server, count: int) -> AsyncIterator[list[Client]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(server.connect()) for _ in range(count)]


async def assert_dead(server: Server, tokens: list[str]) -> None:
    """Every token fails auth_request with error 5, on a fresh socket."""
    async with server.connect() as check:
        for token in tokens:
            auth = await check.request({"type": "auth_request", "token": token})
            assert auth["error_no"] == 5, (tokens.index(token), auth)


async def ticket(server: Server, client: Client, tel: str) -> str:
    """A registration ticket for a tel nobody holds yet."""
    result = await server.login_code(client, tel)
    assert result["success"] and result["registered"] is False, result
    return str(result["token"])


def register_info(token: str) -> dict[str, Any]:
    return {
        "type": "user_register_info",
        "token": token,
        "nickname": "li",
        "sex": 0,
        "birthday": "1990-1-2",
    }


async def refresh_loop(thief: Client, tokens: list[str], enough: asyncio.Event, want: int) -> None:
    """Refresh on one socket until refused; keep every token obtained."""
    for _ in range(300):
        answer = await thief.request(REFRESH)
        if not answer["success"]:
            assert answer["error_no"] == 5, answer
            return
        tokens.append(answer["token"])
        if len(tokens) >= want:
            enough.set()
    raise AssertionError("the thief kept refreshing after the victim revoked everything")


async def relog(thief: Client, auth: dict[str, Any]) -> None:
    """Log in with a stolen token again and again until refused."""
    for _ in range(300):
        if not (await thief.request(auth))["success"]:
            return
    raise AssertionError("the stolen token kept logging in")


# -- item 1: a token refreshes at most once ----------------------------------------------


async def test_twenty_sockets_refreshing_one_token_at_once_one_wins(busy: Server) -> None:
    """20 sockets logged in with one token refresh it at once: one success, 19 error 5."""
    async with sockets(busy, 20) as clients:
        reg = await busy.register(clients[0])
        for c in clients[1:]:
            assert (await c.request({"type": "auth_request", "token": reg["token"]}))["success"]
        answers = await asyncio.gather(*(c.request(REFRESH) for c in clients))
        winners = [a for a in answers if a["success"]]
        assert len(winners) == 1, answers
        assert all(a["error_no"] == 5 for a in answers if not a["success"])
        await assert_dead(busy, [reg["token"]])
        async with busy.connect() as check:
            auth = await check.request({"type": "auth_request", "token": winners[0]["token"]})
            assert auth["success"]


async def test_twenty_http_refreshes_of_one_token_one_wins(busy: Server) -> None:
    """20 POST /api refreshes of one token at once: one success, 19 error 5."""
    async with busy.connect() as c:
        reg = await busy.register(c)
    frame = {"type": "token_refresh_request", "token": reg["token"]}
    answers = await asyncio.gather(*(busy.post("/api", frame) for _ in range(20)))
    assert all(status == 200 for status, _ in answers)
    winners = [body for _, body in answers if body["success"]]
    assert len(winners) == 1, answers
    assert all(body["error_no"] == 5 for _, body in answers if not body["success"])
    await assert_dead(busy, [reg["token"]])


# -- item 1: logout-all and a phone change leave no token alive ------------------------------


async def test_thief_refreshing_in_a_loop_holds_nothing_after_logout_all(busy: Server) -> None:
    """A thief refreshing a stolen token in a loop while the victim logs out everywhere ends
    with no valid token and a logged-out socket (a real race, many rounds)."""
    for round_ in range(12):
        async with sockets(busy, 3) as (victim, thief, other):
            reg = await busy.register(victim)
            own = await busy.login_code(other, reg["tel"])  # the victim's second device
            assert (await thief.request({"type": "auth_request", "token": reg["token"]}))["success"]
            tokens = [reg["token"]]
            enough = asyncio.Event()
            loop = asyncio.create_task(refresh_loop(thief, tokens, enough, 2 + round_ % 3))
            await enough.wait()
            out = await other.request({"type": "logout_request", "all": True})
            assert out["success"], out
            await loop
            refused = await thief.request({"type": "crush_list_request"})
            assert refused["error_no"] == 5, (round_, refused)
            await assert_dead(busy, [*tokens, own["token"]])


async def test_thief_refreshing_in_a_loop_holds_nothing_after_phone_change(busy: Server) -> None:
    """A thief refreshing in a loop while the victim changes number ends with no valid
    token; the victim's new token works."""
    for round_ in range(6):
        async with sockets(busy, 3) as (victim, thief, other):
            reg = await busy.register(victim)
            own = await busy.login_code(other, reg["tel"])
            assert own["registered"] is True
            new_tel = busy.new_tel()
            sent = await other.request({"type": "tel_change_request", "new_tel": new_tel})
            assert sent["success"], sent
            code = await busy.sms.code_for(new_tel)
            old_code = await busy.sms.code_for(reg["tel"])
            assert (await thief.request({"type": "auth_request", "token": reg["token"]}))["success"]
            tokens = [reg["token"]]
            enough = asyncio.Event()
            loop = asyncio.create_task(refresh_loop(thief, tokens, enough, 2 + round_ % 3))
            await enough.wait()
            done = await other.request(
                {"type": "tel_change_code", "code": code, "old_code": old_code}
            )
            assert done["success"], done
            await loop
            refused = await thief.request({"type": "crush_list_request"})
            assert refused["error_no"] == 5, (round_, refused)
            await assert_dead(busy, [*tokens, own["token"]])
            async with busy.connect() as check:
                assert (await check.request({"type": "auth_request", "token": done["token"]}))[
                    "success"
                ]


async def test_auth_racing_logout_all_never_leaves_a_socket_logged_in(busy: Server) -> None:
    """A socket logging in again and again with a stolen token while the victim logs out
    everywhere is logged out in the end (the token is read again after joining the hub)."""
    for round_ in range(15):
        async with sockets(busy, 2) as (victim, thief):
            reg = await busy.register(victim)
            auth = {"type": "auth_request", "token": reg["token"]}
            assert (await thief.request(auth))["success"]
            loop = asyncio.create_task(relog(thief, auth))
            for _ in range(round_ % 4):
                await victim.request({"type": "ping_request"})
            assert (await victim.request({"type": "logout_request", "all": True}))["success"]
            await loop
            refused = await thief.request({"type": "crush_list_request"})
            assert refused["error_no"] == 5, (round_, refused)


async def test_write_after_revocation_by_another_process_is_refused(
    start_server: Callable[..., Any],
) -> None:
    """A socket whose token was revoked by another process (same database, no shared hub)
    cannot write with it: the write unit checks the token in the database."""
    first: Server = await start_server(**ROOMY)
    second: Server = await start_server(**ROOMY)
    async with first.connect() as a, second.connect() as b:
        reg = await first.register(a)
        assert (await b.request({"type": "auth_request", "token": reg["token"]}))["success"]
        assert (await b.request({"type": "logout_request", "all": True}))["success"]
        update = await a.request({"type": "profile_update_request", "signature": "pwned"})
        assert update["error_no"] == 5, update
        assert (await a.request(REFRESH))["error_no"] == 5
        assert (await a.request({"type": "logout_request", "all": True}))["error_no"] == 5
        relog = await second.login_code(b, reg["tel"])
        profile = await b.request({"type": "profile_request", "token": relog["token"]})
        assert profile["profile"]["signature"] == ""


async def test_a_write_is_checked_against_the_token_it_carries(
    start_server: Callable[..., Any],
) -> None:
    """A socket whose own token was revoked elsewhere writes only with a live token in the
    request (a token present authenticates that request)."""
    first: Server = await start_server(**ROOMY)
    second: Server = await start_server(**ROOMY)
    async with first.connect() as a, second.connect() as b, second.connect() as d:
        reg = await first.register(a)
        fresh = await second.login_code(d, reg["tel"])
        assert (await b.request({"type": "auth_request", "token": reg["token"]}))["success"]
        assert (await b.request({"type": "logout_request"}))["success"]
        bare = {"type": "profile_update_request", "signature": "bare"}
        assert (await a.request(bare))["error_no"] == 5
        carried = {"type": "profile_update_request", "signature": "ok", "token": fresh["token"]}
        assert (await a.request(carried))["success"]


# -- item 1: registration tickets die with the sessions --------------------------------------


async def test_logout_all_kills_the_tickets_of_the_users_tel(busy: Server) -> None:
    """Tickets obtained for the tel before it registered (the one that created the user, and
    a racing one) mint no session after logout-all."""
    async with sockets(busy, 3) as (a, b, c):
        tel = busy.new_tel()
        first = await ticket(busy, a, tel)
        second = await ticket(busy, b, tel)
        reg = await a.request(register_info(first))
        assert reg["success"], reg
        resent = await c.request(register_info(first))  # a lost reply, sent again: allowed
        assert resent["success"] and resent["user_id"] == reg["user_id"]
        assert (await a.request({"type": "logout_request", "all": True}))["success"]
    async with sockets(busy, 2) as (d, e):
        for stale in (first, second):
            again = await d.request(register_info(stale))
            assert again["error_no"] == 5, again
        await assert_dead(busy, [reg["token"], resent["token"]])
        relog = await busy.login_code(e, tel)  # the owner still logs in by SMS
        assert relog["registered"] is True and relog["user_id"] == reg["user_id"]


async def test_phone_change_kills_tickets_of_the_old_and_the_new_tel(busy: Server) -> None:
    """After a phone change neither the ticket that registered the old tel nor one obtained
    earlier for the new tel mints a session for the account."""
    async with sockets(busy, 3) as (a, b, c):
        old_tel, new_tel = busy.new_tel(), busy.new_tel()
        old_ticket = await ticket(busy, a, old_tel)
        reg = await a.request(register_info(old_ticket))
        assert reg["success"], reg
        new_ticket = await ticket(busy, b, new_tel)
        assert (await a.request({"type": "tel_change_request", "new_tel": new_tel}))["success"]
        code, old_code = await busy.sms.code_for(new_tel), await busy.sms.code_for(old_tel)
        done = await a.request({"type": "tel_change_code", "code": code, "old_code": old_code})
        assert done["success"], done
        for stale in (old_ticket, new_ticket):
            again = await c.request(register_info(stale))
            assert again["error_no"] == 5, again
        assert (await a.request({"type": "profile_request"}))["profile"]["tel"] == new_tel


# -- item 9: an expired token logs its sockets out when it expires ---------------------------


def _connection(server: Server, token_owner: Any) -> Connection:
    assert server.app.ws is not None
    return next(conn for conn in server.app.ws.connections if token_owner(conn))


async def test_expiry_logs_sockets_out_at_that_moment(server: Server) -> None:
    """When the token expires its sockets get session_end_notify {expired} at once,
    without sending anything and without any push."""
    async with server.connect() as a, server.connect() as b:
        reg = await server.register(a)
        assert (await b.request({"type": "auth_request", "token": reg["token"]}))["success"]
        server.clock.advance(reg["token_expire_ts"] - server.clock.now() - 1)
        assert (await a.request({"type": "ping_request"}))["success"] and a.pushes == []
        server.clock.advance(1)
        for c in (a, b):
            ended = json.loads(await asyncio.wait_for(c.ws.recv(), 2))
            assert ended == {"type": "session_end_notify", "reason": "expired"}
            assert (await c.request({"type": "crush_list_request"}))["error_no"] == 5


async def test_expiry_timer_fires_in_real_time(sms_platform: SmsPlatform, tmp_path: Any) -> None:
    """On the wall clock, a token of two seconds logs its socket out by itself."""
    settings = Settings(
        host="127.0.0.1",
        ws_port=0,
        http_port=0,
        data_dir=tmp_path / "data",
        sms_provider="http",
        sms_url=sms_platform.url,
        token_days=2.5 / DAY,
    )
    async with Lovewire(settings, tables=TABLES, clock=Clock()) as app:
        server = Server(app, sms_platform, ManualClock())
        async with connect(server.ws_url) as ws:
            c = Client(ws)
            await server.register(c)
            frame = await asyncio.wait_for(c.push(), 4)
            assert frame == {"type": "session_end_notify", "reason": "expired"}


async def test_expiry_timer_follows_the_login(server: Server) -> None:
    """One timer per logged-in socket: replaced by a refresh (the old expiry passes quietly),
    cancelled by a logout and by closing; none for HTTP requests."""
    async with server.connect() as a:
        reg = await server.register(a)
        conn = _connection(server, lambda c: c.login is not None)
        first = conn._expiry
        assert first is not None
        server.clock.advance(10 * DAY)
        new = await a.request(REFRESH)
        assert new["success"]
        assert first.cancelled() and conn._expiry is not None and conn._expiry is not first
        server.clock.advance(reg["token_expire_ts"] - server.clock.now() + 1)  # old expiry
        assert (await a.request({"type": "ping_request"}))["success"] and a.pushes == []
        assert (await a.request({"type": "logout_request"}))["success"]
        assert conn._expiry is None and _socket_watchers(server) == []
        again = await server.login_code(a, reg["tel"])
        assert again["success"]
        armed = conn._expiry
        assert armed is not None
        ping = {"type": "ping_request", "token": again["token"]}
        status, body = await server.post("/api", ping)
        assert status == 200 and body["success"]
        assert conn._expiry is armed and not armed.cancelled()
        await server.app.stop()  # closes every socket and waits for their handlers
    assert armed.cancelled() and conn._expiry is None and _socket_watchers(server) == []


@pytest.mark.sqlite_only
async def test_tokens_of_a_database_before_generations_stay_valid(
    start_server: Callable[..., Any], tmp_path: Any
) -> None:
    """A session token stored before migration 0004 still logs in after the upgrade, and
    logout-all kills it."""
    import sqlite3

    from lovewire.security import hash_token, new_token
    from lovewire.storage.sqlite import migrations

    (tmp_path / "data").mkdir()
    old = sqlite3.connect(tmp_path / "data" / "lovewire.db")
    for number, _, sql in migrations():
        if number < 4:
            old.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
    token = new_token()
    old.execute(
        "INSERT INTO users (id, tel, nickname, sex, birthday, created_ts)"
        " VALUES (7, '13900000007', 'old', 1, '1990-01-01', 0)"
    )
    old.execute(
        "INSERT INTO tokens (hash, kind, user_id, expires_ts, created_ts)"
        " VALUES (?, 'session', 7, 4102444800, 0)",
        (hash_token(token),),
    )
    old.commit()
    old.close()
    server: Server = await start_server()
    async with server.connect() as c:
        auth = await c.request({"type": "auth_request", "token": token})
        assert auth["success"] and auth["user_id"] == "7", auth
        assert (await c.request({"type": "logout_request", "all": True}))["success"]
    await assert_dead(server, [token])


def _socket_watchers(server: Server) -> list[object]:
    """What watches the clock besides the server's own chores (the chat's expiry)."""
    chores = server.app.chats
    return [w for w in server.clock._watchers if chores is None or w != chores.wake]
