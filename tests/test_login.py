"""Login by SMS code, tickets and registration (contract 3.1, 3.2)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import Server
from tests.test_auth import BASE_FIELDS, assert_error


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


async def test_the_age_rule_follows_the_servers_date(server: Server) -> None:
    """Turning 18 at midnight: refused at 23:58 on the server's clock, welcome at 00:01."""
    zone = ZoneInfo("Asia/Shanghai")
    now = datetime.fromtimestamp(server.clock.now(), zone)
    tomorrow = (now + timedelta(days=1)).date()
    if (tomorrow.month, tomorrow.day) == (2, 29):  # no such birthday 18 years before
        tomorrow += timedelta(days=1)
    server.clock.advance(
        datetime.combine(tomorrow, time(), zone).timestamp() - 120 - now.timestamp()
    )
    birthday = f"{tomorrow.year - 18}-{tomorrow.month}-{tomorrow.day}"
    fields = {"type": "user_register_info", "nickname": "z", "sex": 1, "birthday": birthday}
    async with server.connect() as c:
        ticket = (await server.login_code(c, server.new_tel()))["token"]
        assert_error(await c.request({**fields, "token": ticket}), "user_register_result", 2)
        server.clock.advance(180)
        assert (await c.request({**fields, "token": ticket}))["success"]
