"""SMS code requests: tel shapes, intervals, caps and the SMS platform (contract 3.1)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Server
from tests.test_auth import assert_error


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
