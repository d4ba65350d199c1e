"""Framing and error frames (contract sections 1 and 2): one bad frame never costs the socket."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import Server

BAD_FRAMES: list[tuple[str, str, int]] = [
    ("not json", "error", 3),
    ("{", "error", 3),
    ("[1, 2]", "error", 3),
    ('"a string"', "error", 3),
    ("42", "error", 3),
    ("null", "error", 3),
    # Under LOVEWIRE_MAX_ANON_FRAME (64 KiB): a bigger frame before login is closed 1009.
    ("[" * 30_000 + "]" * 30_000, "error", 3),
    ("{}", "error", 4),
    ('{"type": 5}', "error", 4),
    ('{"type": null}', "error", 4),
    ('{"type": "no_such_request"}', "error", 4),
    ('{"type": "picture_like_notify"}', "error", 4),
    ('{"type": "sms_validation_request"}', "sms_validation_send", 2),
    ('{"type": "sms_validation_request", "tel": 1}', "sms_validation_send", 2),
    ('{"type": "sms_validation_request", "tel": ["18615794931"]}', "sms_validation_send", 2),
    ('{"type": "auth_request", "token": "x", "last_seq": 1e400}', "auth_response", 2),
    (
        '{"type": "auth_request", "token": "x", "last_seq": 99999999999999999999999}',
        "auth_response",
        2,
    ),
    ('{"type": "auth_request", "token": "x", "last_seq": -1}', "auth_response", 2),
    ('{"type": "ping_request", "token": 12}', "ping_response", 2),
    ('{"type": "ping_request", "id": {"a": 1}}', "ping_response", 2),
    ('{"type": "ping_request", "id": "' + "x" * 65 + '"}', "ping_response", 2),
    ('{"type": "ping_request", "id": true}', "ping_response", 2),
    ('{"type": "ping_request", "token": "not-a-token"}', "ping_response", 5),
    ('{"type": "logout_request"}', "logout_response", 5),
    (
        '{"type": "sms_validation_request", "tel": "1" , "x": {"y": '
        + "[" * 5000
        + "]" * 5000
        + "}}",
        "error",
        3,
    ),
]


async def test_bad_frames_each_get_error_and_socket_stays_open(server: Server) -> None:
    """Every malformed frame gets its error frame, on one socket, which keeps working."""
    async with server.connect() as c:
        for raw, type_, error_no in BAD_FRAMES:
            frame = await c.request(raw)
            assert frame["type"] == type_, (raw[:80], frame)
            assert frame["error_no"] == error_no, (raw[:80], frame)
            assert frame["success"] is False and frame["err_msg"]
            assert "id" not in frame
        pong = await c.request({"type": "ping_request"})
        assert pong["success"]


async def test_unknown_fields_ignored(server: Server) -> None:
    """Requests are read liberally: unknown fields do not matter."""
    async with server.connect() as c:
        pong = await c.request({"type": "ping_request", "whatever": [1, {"a": None}]})
        assert pong["success"]


@pytest.mark.parametrize("request_id", ["abc", 7, 0, "x" * 64, "中文"])
async def test_id_echoed_unchanged(server: Server, request_id: Any) -> None:
    """An optional id (string or int, up to 64 chars) is echoed in the response."""
    async with server.connect() as c:
        pong = await c.request({"type": "ping_request", "id": request_id})
        assert pong["id"] == request_id


async def test_id_echoed_on_error_response(server: Server) -> None:
    """A failed request still echoes a valid id."""
    async with server.connect() as c:
        frame = await c.request({"type": "logout_request", "id": "r1"})
        assert frame["error_no"] == 5 and frame["id"] == "r1"


async def test_responses_in_request_order(server: Server) -> None:
    """Pipelined requests are answered in order."""
    async with server.connect() as c:
        for i in range(30):
            await c.send({"type": "ping_request", "id": i})
        ids = [(await c.response())["id"] for _ in range(30)]
        assert ids == list(range(30))


async def test_notify_ack_answers_nothing_even_malformed(server: Server) -> None:
    """notify_ack gets no response, not even when malformed."""
    async with server.connect() as c:
        await c.send({"type": "notify_ack", "seq": "bad"})
        await c.send({"type": "notify_ack", "seq": 1})
        pong = await c.request({"type": "ping_request", "id": "after"})
        assert pong["id"] == "after"


async def test_invalid_utf8_closes_1007(server: Server) -> None:
    """A text frame that is not UTF-8 is refused by the WebSocket layer with 1007."""
    async with server.connect() as c:
        await c.ws.send(b'{"type":"\xff"}', text=True)
        with pytest.raises(ConnectionClosed) as info:
            await c.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1007


async def test_binary_frame_with_json_is_answered(server: Server) -> None:
    """A binary frame holding UTF-8 JSON is read like a text frame."""
    async with server.connect() as c:
        await c.ws.send(b'{"type":"ping_request","id":1}')
        assert (await c.response())["id"] == 1


async def test_http_body_too_large_is_413_with_error_11(start_server: Any) -> None:
    """An HTTP body over the limit gets 413 and the error-11 frame."""
    server: Server = await start_server(max_frame=65536)
    status, frame = await server.post("/api", '{"type":"ping_request","p":"' + "x" * 100_000 + '"}')
    assert status == 413 and frame["error_no"] == 11


async def test_id_with_lone_surrogate_is_error_2_and_socket_stays_open(server: Server) -> None:
    """An id that cannot be written back as UTF-8 is error 2, not echoed; the socket lives."""
    raw = '{"type": "ping_request", "id": "\\ud800"}'
    async with server.connect() as c:
        frame = await c.request(raw)
        assert frame["type"] == "ping_response" and frame["error_no"] == 2
        assert "id" not in frame
        pong = await c.request({"type": "ping_request", "id": "after"})
        assert pong["id"] == "after"
    status, body = await server.post("/api", raw)
    assert status == 200 and body["error_no"] == 2 and "id" not in body


BAD_INPUT_WITHOUT_LOGIN: list[dict[str, Any]] = [
    {"type": "tel_change_request", "new_tel": "123"},
    {"type": "crush_add_request", "crush_tel": "not a tel"},
    {"type": "crush_remove_request", "crush_tel": "12345"},
    {"type": "profile_update_request", "nickname": "   "},
    {"type": "profile_update_request", "nickname": "x" * 21},
    {"type": "profile_update_request", "signature": "s" * 101},
    {"type": "profile_update_request", "birthday": "2015-2-30"},
    {"type": "profile_update_request", "birthday": "2020-1-1"},
    {"type": "picture_comment_request", "picture_id": "1", "msg": "   "},
]


@pytest.mark.parametrize("frame", BAD_INPUT_WITHOUT_LOGIN, ids=lambda f: str(f["type"]))
@pytest.mark.parametrize("token", [None, "not-a-token"])
async def test_bad_input_is_error_2_before_token_error_5(
    server: Server, frame: dict[str, Any], token: str | None
) -> None:
    """Input that is not valid is error 2 even when the token is missing or bad (2 before 5)."""
    async with server.connect() as c:
        reply = await c.request({**frame, **({"token": token} if token else {})})
        assert reply["error_no"] == 2, reply
    status, body = await server.post("/api", {**frame, **({"token": token} if token else {})})
    assert status == 200 and body["error_no"] == 2, body


async def test_lone_surrogate_in_any_field_is_error_2(server: Server) -> None:
    """A field holding a lone surrogate (a JSON escape) is error 2, never stored."""
    async with server.connect() as c:
        reg = await server.register(c)
        for raw in (
            '{"type": "profile_update_request", "nickname": "\\ud800x"}',
            '{"type": "profile_update_request", "avatar": "\\udfff"}',
            '{"type": "user_register_info", "token": "'
            + reg["token"]
            + '", "nickname": "\\ud800"}',
            '{"type": "sms_validation_request", "tel": "13800000009", "time": ["\\udc00"]}',
        ):
            frame = await c.request(raw)
            assert frame["error_no"] == 2, (raw, frame)
        ignored = await c.request('{"type": "ping_request", "unknown": "\\udc00"}')
        assert ignored["success"]
        profile = (await c.request({"type": "profile_request"}))["profile"]
        assert profile["nickname"] == "zhang"


async def test_refused_requests_count_towards_rate(start_server: Any) -> None:
    """Requests refused by their handler (here: not found) count towards the limit too."""
    server: Server = await start_server(requests_per_second=3)
    async with server.connect() as c:
        await server.register(c)
        server.clock.advance(1)
        for _ in range(3):
            frame = await c.request({"type": "picture_like_request", "picture_id": "999"})
            assert frame["error_no"] == 8, frame
        frame = await c.request({"type": "picture_like_request", "picture_id": "999"})
        assert frame["error_no"] == 6 and frame["retry_after"] >= 1, frame
        server.clock.advance(1)
        for _ in range(3):
            assert (await c.request({"type": "ping_request"}))["success"]
        assert (await c.request({"type": "ping_request"}))["error_no"] == 6
