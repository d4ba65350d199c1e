"""SMS login, registration and sessions (contract 3.1, 3.2, 4.1)."""

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


async def test_sms_request_valid_tel_sends_code(server: Server) -> None:
    """A code goes to the platform and the answer is the exact success frame."""
    async with server.connect() as c:
        sent = await c.request(
            {"type": "sms_validation_request", "tel": "18615794931", "time": "2015-8-4 1:44"}
        )
        assert sent == {
            "type": "sms_validation_send",
            "success": True,
            "error_no": 0,
            "err_msg": "",
        }
        code = await server.sms.code_for("18615794931")
        assert len(code) == 6 and code.isdigit()


async def test_sms_request_tel_shapes_normalized(server: Server) -> None:
    """+86, 86, spaces and hyphens are accepted and stored as the 11 digits."""
    async with server.connect() as c:
        sent = await c.request({"type": "sms_validation_request", "tel": "+86 186-1579-4932"})
        assert sent["success"], sent
        await server.sms.code_for("18615794932")


@pytest.mark.parametrize("time", ["2015-8-4 1:44", "1438623840", 1438623840000, None])
async def test_sms_request_time_shapes_accepted(server: Server, time: Any) -> None:
    """The client's time comes in several shapes; all are accepted."""
    async with server.connect() as c:
        tel = server.new_tel()
        sent = await c.request({"type": "sms_validation_request", "tel": tel, "time": time})
        assert sent["success"], sent


@pytest.mark.parametrize(
    "tel", ["12345", "12815794931", "+4412345", "", "1861579493x", 18615794931]
)
async def test_sms_request_bad_tel_is_error_2(server: Server, tel: Any) -> None:
    """Anything but a mainland mobile (international is off by default) is error 2."""
    async with server.connect() as c:
        frame = await c.request({"type": "sms_validation_request", "tel": tel})
        assert_error(frame, "sms_validation_send", 2)


async def test_sms_request_international_allowed_when_configured(start_server: Any) -> None:
    """E.164 numbers pass when LOVEWIRE_SMS_INTERNATIONAL is on."""
    server: Server = await start_server(sms_international=True)
    async with server.connect() as c:
        sent = await c.request({"type": "sms_validation_request", "tel": "+44 7911 123456"})
        assert sent["success"], sent
        await server.sms.code_for("+447911123456")


async def test_sms_request_within_interval_is_error_6(server: Server) -> None:
    """A second code for the same tel within 60 s: error 6 with retry_after."""
    async with server.connect() as c1, server.connect() as c2:
        tel = server.new_tel()
        assert (await c1.request({"type": "sms_validation_request", "tel": tel}))["success"]
        await server.sms.code_for(tel)
        again = await c2.request({"type": "sms_validation_request", "tel": tel})
        assert_error(again, "sms_validation_send", 6)
        assert again["retry_after"] == 60
        server.clock.advance(61)
        assert (await c2.request({"type": "sms_validation_request", "tel": tel}))["success"]


async def test_sms_request_same_socket_other_tel_is_error_6(server: Server) -> None:
    """One socket cannot ask codes for many tels in a row."""
    async with server.connect() as c:
        assert (await c.request({"type": "sms_validation_request", "tel": server.new_tel()}))[
            "success"
        ]
        frame = await c.request({"type": "sms_validation_request", "tel": server.new_tel()})
        assert_error(frame, "sms_validation_send", 6)
        assert 0 < frame["retry_after"] <= 60


async def test_sms_request_tel_hourly_cap_is_error_6(start_server: Any) -> None:
    """At most LOVEWIRE_SMS_TEL_HOURLY codes a tel an hour, even spaced out."""
    server: Server = await start_server(sms_tel_hourly=2)
    tel = server.new_tel()
    for _ in range(2):
        async with server.connect() as c:
            assert (await c.request({"type": "sms_validation_request", "tel": tel}))["success"]
            await server.sms.code_for(tel)
        server.clock.advance(61)
    async with server.connect() as c:
        frame = await c.request({"type": "sms_validation_request", "tel": tel})
        assert_error(frame, "sms_validation_send", 6)
        assert frame["retry_after"] > 3000


async def test_sms_request_addr_cap_is_error_6(start_server: Any) -> None:
    """At most LOVEWIRE_SMS_ADDR_HOURLY codes per client address an hour."""
    server: Server = await start_server(sms_addr_hourly=2)
    for _ in range(2):
        async with server.connect() as c:
            tel = server.new_tel()
            assert (await c.request({"type": "sms_validation_request", "tel": tel}))["success"]
            await server.sms.code_for(tel)
    async with server.connect() as c:
        frame = await c.request({"type": "sms_validation_request", "tel": server.new_tel()})
        assert_error(frame, "sms_validation_send", 6)


async def test_sms_request_limits_survive_restart(start_server: Any) -> None:
    """The 60 s rule lives in the database: a restart does not reset it."""
    first: Server = await start_server()
    tel = first.new_tel()
    async with first.connect() as c:
        assert (await c.request({"type": "sms_validation_request", "tel": tel}))["success"]
        await first.sms.code_for(tel)
    await first.app.stop()
    second: Server = await start_server()
    async with second.connect() as c:
        assert_error(
            await c.request({"type": "sms_validation_request", "tel": tel}),
            "sms_validation_send",
            6,
        )


async def test_sms_platform_failure_is_error_7_and_starts_no_clock(server: Server) -> None:
    """A non-2xx from the platform is error 7; the tel may ask again at once."""
    tel = server.new_tel()
    server.sms.status = 500
    async with server.connect() as c:
        assert_error(
            await c.request({"type": "sms_validation_request", "tel": tel}),
            "sms_validation_send",
            7,
        )
        server.sms.status = 200
        assert (await c.request({"type": "sms_validation_request", "tel": tel}))["success"]
        await server.sms.code_for(tel)


async def test_sms_platform_unreachable_is_error_7(start_server: Any) -> None:
    """A platform that does not answer at all is a failed send."""
    server: Server = await start_server(sms_url="http://127.0.0.1:9/send")
    async with server.connect() as c:
        assert_error(
            await c.request({"type": "sms_validation_request", "tel": server.new_tel()}),
            "sms_validation_send",
            7,
        )


async def test_sms_http_provider_sends_bearer_token(start_server: Any) -> None:
    """LOVEWIRE_SMS_TOKEN goes in the Authorization header."""
    server: Server = await start_server(sms_token="s3cret")
    async with server.connect() as c:
        tel = server.new_tel()
        assert (await c.request({"type": "sms_validation_request", "tel": tel}))["success"]
        await server.sms.code_for(tel)
    assert server.sms.auth_headers[-1] == "Bearer s3cret"


async def test_code_new_tel_gives_ticket_then_register_logs_in(server: Server) -> None:
    """The whole first login: code, ticket, registration, a logged-in socket."""
    async with server.connect() as c:
        tel = server.new_tel()
        result = await server.login_code(c, tel)
        assert set(result) == BASE_FIELDS | {"token", "registered", "ticket_expire_ts"}
        assert result["success"] and result["registered"] is False
        assert len(result["token"]) >= 22
        reg = await c.request(
            {
                "type": "user_register_info",
                "token": result["token"],
                "nickname": "zhang",
                "sex": 1,
                "birthday": "1995-3-21",
            }
        )
        assert set(reg) == BASE_FIELDS | {
            "user_id",
            "token",
            "token_expire",
            "token_expire_ts",
            "last_seq",
        }
        assert reg["success"] and reg["user_id"] == "1" and reg["last_seq"] == 0
        assert isinstance(reg["token_expire_ts"], int) and isinstance(reg["token_expire"], str)
        assert reg["token"] != result["token"]
        pong = await c.request({"type": "token_refresh_request"})
        assert pong["success"], pong


async def test_code_registered_tel_logs_in(server: Server) -> None:
    """A registered tel gets a session token, its user_id and last_seq."""
    async with server.connect() as c:
        reg = await server.register(c)
    server.clock.advance(61)
    async with server.connect() as c:
        result = await server.login_code(c, reg["tel"])
        assert set(result) == BASE_FIELDS | {
            "token",
            "registered",
            "user_id",
            "token_expire",
            "token_expire_ts",
            "last_seq",
        }
        assert result["registered"] is True and result["user_id"] == reg["user_id"]
        assert (await c.request({"type": "logout_request"}))["success"]


async def test_code_number_read_as_six_digits(server: Server) -> None:
    """A code sent as a number is read with leading zeros."""
    async with server.connect() as c:
        tel = server.new_tel()
        await c.request({"type": "sms_validation_request", "tel": tel})
        code = await server.sms.code_for(tel)
        result = await c.request({"type": "sms_validation_code", "code": int(code)})
        assert result["success"], result


async def test_code_wrong_is_error_1_then_12_after_five(server: Server) -> None:
    """Five wrong tries kill the code: the right one is then refused with 12."""
    async with server.connect() as c:
        tel = server.new_tel()
        await c.request({"type": "sms_validation_request", "tel": tel})
        code = await server.sms.code_for(tel)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for _ in range(5):
            frame = await c.request({"type": "sms_validation_code", "code": wrong})
            assert_error(frame, "sms_validation_result", 1)
            assert frame["err_msg"] == "验证码不符"
        assert_error(
            await c.request({"type": "sms_validation_code", "code": code}),
            "sms_validation_result",
            12,
        )


async def test_code_single_use_then_12(server: Server) -> None:
    """A used code cannot be used again."""
    async with server.connect() as c:
        tel = server.new_tel()
        await c.request({"type": "sms_validation_request", "tel": tel})
        code = await server.sms.code_for(tel)
        assert (await c.request({"type": "sms_validation_code", "code": code}))["success"]
        assert_error(
            await c.request({"type": "sms_validation_code", "code": code}),
            "sms_validation_result",
            12,
        )


async def test_code_expired_after_five_minutes_is_12(server: Server) -> None:
    """A code is valid for 5 minutes."""
    async with server.connect() as c:
        tel = server.new_tel()
        await c.request({"type": "sms_validation_request", "tel": tel})
        code = await server.sms.code_for(tel)
        server.clock.advance(301)
        assert_error(
            await c.request({"type": "sms_validation_code", "code": code}),
            "sms_validation_result",
            12,
        )


async def test_code_never_asked_is_12(server: Server) -> None:
    """No pending code (nothing asked on this socket) is error 12."""
    async with server.connect() as c:
        assert_error(
            await c.request({"type": "sms_validation_code", "code": "123456"}),
            "sms_validation_result",
            12,
        )


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", None, 1_000_000, True])
async def test_code_malformed_is_error_2(server: Server, code: Any) -> None:
    """A code that is not 6 digits is error 2."""
    async with server.connect() as c:
        assert_error(
            await c.request({"type": "sms_validation_code", "code": code}),
            "sms_validation_result",
            2,
        )


async def test_code_with_tel_on_another_socket(server: Server) -> None:
    """With `tel` the code can be checked on a socket that did not ask for it."""
    tel = server.new_tel()
    async with server.connect() as c:
        await c.request({"type": "sms_validation_request", "tel": tel})
    code = await server.sms.code_for(tel)
    async with server.connect() as c:
        result = await c.request({"type": "sms_validation_code", "code": code, "tel": tel})
        assert result["success"], result


async def test_code_daily_wrong_attempts_block_tel(server: Server) -> None:
    """More than 20 wrong attempts for a tel in a day block it (error 6)."""
    tel = server.new_tel()
    for _ in range(5):
        async with server.connect() as c:
            await c.request({"type": "sms_validation_request", "tel": tel})
            code = await server.sms.code_for(tel)
            wrong = f"{(int(code) + 1) % 1_000_000:06d}"
            for _ in range(5):
                await c.request({"type": "sms_validation_code", "code": wrong})
        server.clock.advance(61)
    async with server.connect() as c:
        assert_error(
            await c.request({"type": "sms_validation_request", "tel": tel}),
            "sms_validation_send",
            6,
        )


async def test_register_ticket_twice_same_user(server: Server) -> None:
    """Resending the same ticket after a lost reply returns the same user_id."""
    async with server.connect() as c:
        result = await server.login_code(c, server.new_tel())
        info = {
            "type": "user_register_info",
            "token": result["token"],
            "nickname": "li",
            "sex": 0,
            "birthdate": {"year": 2000, "month": 2, "day": 29},
        }
        first = await c.request(info)
        second = await c.request(info)
        assert first["success"] and second["success"]
        assert first["user_id"] == second["user_id"]
        assert first["token"] != second["token"]


@pytest.mark.parametrize(
    "fields",
    [
        {"nickname": "", "sex": 1, "birthday": "1995-3-21"},
        {"nickname": "x" * 21, "sex": 1, "birthday": "1995-3-21"},
        {"nickname": "z", "sex": 2, "birthday": "1995-3-21"},
        {"nickname": "z", "sex": 1, "birthday": "1995-2-30"},
        {"nickname": "z", "sex": 1, "birthday": "2020-1-1"},
        {"nickname": "z", "sex": 1, "birthdate": {"year": 2**63, "month": 1, "day": 1}},
        {"nickname": "z", "sex": 1, "birthdate": {"year": 1995, "month": 2**40, "day": 1}},
        {"nickname": "z", "sex": 1},
        {"sex": 1, "birthday": "1995-3-21"},
    ],
)
async def test_register_invalid_info_is_2_and_keeps_ticket(server: Server, fields: Any) -> None:
    """Bad or missing info (or too young) is error 2; the ticket is still good after."""
    async with server.connect() as c:
        result = await server.login_code(c, server.new_tel())
        frame = await c.request({"type": "user_register_info", "token": result["token"], **fields})
        assert_error(frame, "user_register_result", 2)
        ok = await c.request(
            {
                "type": "user_register_info",
                "token": result["token"],
                "nickname": "z",
                "sex": 1,
                "birthday": "1995-03-21",
            }
        )
        assert ok["success"], ok


async def test_register_bad_ticket_is_5(server: Server) -> None:
    """An unknown ticket is error 5."""
    async with server.connect() as c:
        frame = await c.request(
            {
                "type": "user_register_info",
                "token": "nope",
                "nickname": "z",
                "sex": 1,
                "birthday": "1995-3-21",
            }
        )
        assert_error(frame, "user_register_result", 5)


async def test_register_ticket_expires_after_ten_minutes(server: Server) -> None:
    """A registration ticket is good for 10 minutes."""
    async with server.connect() as c:
        result = await server.login_code(c, server.new_tel())
        server.clock.advance(601)
        frame = await c.request(
            {
                "type": "user_register_info",
                "token": result["token"],
                "nickname": "z",
                "sex": 1,
                "birthday": "1995-3-21",
            }
        )
        assert_error(frame, "user_register_result", 5)


async def test_ticket_elsewhere_is_5(server: Server) -> None:
    """A registration ticket is not a session token."""
    async with server.connect() as c:
        result = await server.login_code(c, server.new_tel())
        assert_error(
            await c.request({"type": "ping_request", "token": result["token"]}), "ping_response", 5
        )
        assert_error(
            await c.request({"type": "auth_request", "token": result["token"]}), "auth_response", 5
        )


async def test_register_with_session_token_updates_fields(server: Server) -> None:
    """A registered user going through registration again updates what it sends."""
    async with server.connect() as c:
        reg = await server.register(c)
        again = await c.request(
            {"type": "user_register_info", "token": reg["token"], "nickname": "newname"}
        )
        assert again["success"] and again["user_id"] == reg["user_id"], again
    async with server.connect() as c:
        auth = await c.request({"type": "auth_request", "token": reg["token"]})
        assert auth["nickname"] == "newname"


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


async def test_http_api_full_login(server: Server) -> None:
    """The same flow over POST /api, with `tel` naming the code's tel."""
    tel = server.new_tel()
    status, sent = await server.post("/api", {"type": "sms_validation_request", "tel": tel})
    assert status == 200 and sent["success"], sent
    code = await server.sms.code_for(tel)
    status, result = await server.post(
        "/api", {"type": "sms_validation_code", "code": code, "tel": tel}
    )
    assert result["success"] and result["registered"] is False
    status, reg = await server.post(
        "/api",
        {
            "type": "user_register_info",
            "token": result["token"],
            "nickname": "h",
            "sex": 0,
            "birthday": "1990-1-1",
        },
    )
    assert reg["success"], reg
    status, pong = await server.post("/api", {"type": "ping_request", "token": reg["token"]})
    assert pong["success"]
    status, err = await server.post("/api", "not json")
    assert status == 200 and err["type"] == "error" and err["error_no"] == 3


async def test_healthz_ok(server: Server) -> None:
    """GET /healthz is 200 while the database answers."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(server.http_url + "/healthz") as resp:
        assert resp.status == 200


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
