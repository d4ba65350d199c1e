"""The HTTP side of login: the POST /api flow and /healthz."""

from __future__ import annotations

from tests.conftest import Server


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
