"""Settings (4.5): phone number change over both sockets and HTTP, and crush notices."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from tests.conftest import Client, Server


async def change_request(client: Client, new_tel: str) -> dict[str, Any]:
    return await client.request({"type": "tel_change_request", "new_tel": new_tel})


async def test_tel_change_revokes_other_sockets_and_moves_account(server: Server) -> None:
    """Both codes move the account; the other socket gets session_end_notify and error 5."""
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(server.connect())
        other = await stack.enter_async_context(server.connect())
        reg = await server.register(a)
        old_tel, new_tel = reg["tel"], server.new_tel()
        assert (await other.request({"type": "auth_request", "token": reg["token"]}))["success"]
        server.clock.advance(61)
        sent = await change_request(a, f"+86 {new_tel}")
        assert sent == {"type": "tel_change_send", "success": True, "error_no": 0, "err_msg": ""}
        code, old_code = await server.sms.code_for(new_tel), await server.sms.code_for(old_tel)
        done = await a.request({"type": "tel_change_code", "code": code, "old_code": old_code})
        assert done["success"] and set(done) == {
            "type",
            "success",
            "error_no",
            "err_msg",
            "token",
            "token_expire",
            "token_expire_ts",
        }
        ended = await other.push()
        assert ended == {"type": "session_end_notify", "reason": "tel_changed"}
        refused = await other.request({"type": "crush_list_request"})
        assert refused["error_no"] == 5
        stale = await other.request({"type": "auth_request", "token": reg["token"]})
        assert stale["error_no"] == 5
        fresh = await other.request({"type": "auth_request", "token": done["token"]})
        assert fresh["success"]
        mine = await a.request({"type": "profile_request"})
        assert mine["profile"]["tel"] == new_tel
        server.clock.advance(61)
        relog = await server.login_code(other, new_tel)
        assert relog["registered"] is True and relog["user_id"] == reg["user_id"]


async def test_tel_change_wrong_code_is_error_1_then_right_codes_work(server: Server) -> None:
    """A wrong code counts and is error 1; the right pair still works afterwards."""
    async with server.connect() as a:
        reg = await server.register(a)
        new_tel = server.new_tel()
        server.clock.advance(61)
        await change_request(a, new_tel)
        code, old_code = await server.sms.code_for(new_tel), await server.sms.code_for(reg["tel"])
        wrong = "000000" if old_code != "000000" else "111111"
        bad = await a.request({"type": "tel_change_code", "code": code, "old_code": wrong})
        assert bad["error_no"] == 1 and bad["err_msg"] == "验证码不符"
        done = await a.request({"type": "tel_change_code", "code": code, "old_code": old_code})
        assert done["success"]
        again = await a.request({"type": "tel_change_code", "code": code, "old_code": old_code})
        assert again["error_no"] == 12


async def test_tel_change_to_registered_tel_is_error_10_after_rate_limits(server: Server) -> None:
    """A taken tel is error 10, but only once the SMS rate limits pass (6 first)."""
    async with server.connect() as a, server.connect() as b:
        await server.register(a)
        taken = (await server.register(b))["tel"]
        limited = await change_request(a, taken)
        assert limited["error_no"] == 6 and limited["retry_after"] >= 1
        server.clock.advance(61)
        assert (await change_request(a, taken))["error_no"] == 10
        assert server.sms.messages.empty()


async def test_tel_change_to_own_tel_is_error_2(server: Server) -> None:
    """The current tel as new_tel is error 2; a malformed one too."""
    async with server.connect() as a:
        reg = await server.register(a)
        assert (await change_request(a, reg["tel"]))["error_no"] == 2
        assert (await change_request(a, "12"))["error_no"] == 2


async def test_tel_change_code_without_request_is_error_12(server: Server) -> None:
    """Codes with no pending change are error 12; a malformed code is error 2."""
    async with server.connect() as a:
        await server.register(a)
        frame = {"type": "tel_change_code", "code": "123456", "old_code": "654321"}
        assert (await a.request(frame))["error_no"] == 12
        assert (await a.request({**frame, "code": "12"}))["error_no"] == 2


async def test_tel_change_over_http_kept_per_user(server: Server) -> None:
    """The pending change lives in the database: both steps work over POST /api."""
    async with server.connect() as a:
        reg = await server.register(a)
        new_tel = server.new_tel()
        server.clock.advance(61)
        body = {"type": "tel_change_request", "new_tel": new_tel, "token": reg["token"]}
        status, sent = await server.post("/api", body)
        assert status == 200 and sent["success"], sent
        code, old_code = await server.sms.code_for(new_tel), await server.sms.code_for(reg["tel"])
        body = {
            "type": "tel_change_code",
            "code": code,
            "old_code": old_code,
            "token": reg["token"],
        }
        status, done = await server.post("/api", body)
        assert done["success"], done
        assert await a.push() == {"type": "session_end_notify", "reason": "tel_changed"}
        status, mine = await server.post(
            "/api", {"type": "profile_request", "token": done["token"]}
        )
        assert mine["profile"]["tel"] == new_tel


async def test_tel_change_old_crushes_stay_with_old_number(server: Server) -> None:
    """A crush naming the old tel does not follow the user to the new one."""
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(server.connect())
        b = await stack.enter_async_context(server.connect())
        reg = await server.register(a)
        await server.register(b)
        await b.request({"type": "crush_add_request", "crush_tel": reg["tel"]})
        assert (await a.push())["type"] == "crush_notify"
        new_tel = server.new_tel()
        server.clock.advance(61)
        await change_request(a, new_tel)
        code, old_code = await server.sms.code_for(new_tel), await server.sms.code_for(reg["tel"])
        assert (await a.request({"type": "tel_change_code", "code": code, "old_code": old_code}))[
            "success"
        ]
        assert (await a.request({"type": "crush_received_request"}))["count"] == 0
        listed = await b.request({"type": "crush_list_request"})
        assert [c["crush_tel"] for c in listed["crushes"]] == [reg["tel"]]


async def test_crush_setting_round_trip(server: Server) -> None:
    """crush_setting_request answers with the stored value; missing receive is error 2."""
    async with server.connect() as a:
        await server.register(a)
        for value in (False, True):
            frame = await a.request({"type": "crush_setting_request", "receive": value})
            assert frame == {
                "type": "crush_setting_response",
                "success": True,
                "error_no": 0,
                "err_msg": "",
                "receive": value,
            }
        assert (await a.request({"type": "crush_setting_request"}))["error_no"] == 2
