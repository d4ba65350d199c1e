"""The request cycle without a socket: frames given to `Dispatcher.serve` directly.

The app runs with `listen=False`; `MemoryClient` (tests/memory.py) stands where a socket
would. What a frame gets here is what it gets over a WebSocket, in the same order.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from handlers import TABLES
from lovewire.app import Lovewire
from lovewire.clock import ManualClock
from lovewire.config import Settings
from lovewire.dispatch import _with_id
from tests.conftest import SmsPlatform
from tests.memory import MemoryClient


@pytest.fixture
async def app(tmp_path: Path, sms_platform: SmsPlatform) -> AsyncIterator[Lovewire]:
    settings = Settings(
        data_dir=tmp_path / "data",
        sms_provider="http",
        sms_url=sms_platform.url,
        sms_interval=0,
        lang="en",
    )
    async with Lovewire(settings, tables=TABLES, clock=ManualClock(), listen=False) as app:
        assert app.ws is None and app.ws_port == 0  # nothing listens
        yield app


async def register(
    app: Lovewire, sms: SmsPlatform, client: MemoryClient, tel: str
) -> dict[str, Any]:
    assert (await client.request({"type": "sms_validation_request", "tel": tel}))["success"]
    code = await sms.code_for(tel)
    ticket = await client.request({"type": "sms_validation_code", "code": code})
    reg = await client.request(
        {
            "type": "user_register_info",
            "token": ticket["token"],
            "nickname": f"n{tel[-2:]}",
            "sex": 0,
            "birthday": "1990-1-1",
        }
    )
    assert reg["success"], reg
    return reg


async def test_ping_with_id_is_answered_in_memory(app: Lovewire) -> None:
    client = MemoryClient(app)
    (got,) = await client.send({"type": "ping_request", "id": "a1"})
    assert got["type"] == "ping_response" and got["success"] and got["id"] == "a1"
    assert got["time_ts"] == int(app.clock.now())


async def test_pings_of_one_second_share_a_time_each_with_its_own_id(
    app: Lovewire, tmp_path: Path
) -> None:
    """A ping's answer is made once a second (and zone), and each ping gets its own id."""
    clock = app.clock
    assert isinstance(clock, ManualClock)
    client = MemoryClient(app)
    ids: list[Any] = ["a1", 7, 'q"\\\n\u00e9\u4e2d', "", None, "a1"]
    frames = [{"type": "ping_request"} | ({} if i is None else {"id": i}) for i in ids]
    got = [await client.request(frame) for frame in frames]
    assert [g.get("id") for g in got] == ids and "id" not in got[4]
    assert len({(g["time"], g["time_ts"]) for g in got}) == 1
    assert got[0]["time_ts"] == int(clock.now())
    # Another request's answer between two pings of the second.
    assert (await client.request({"type": "logout_request", "id": 1}))["error_no"] == 5
    again = await client.request({"type": "ping_request", "id": 2})
    assert again == {**got[0], "id": 2}
    clock.advance(60)
    later = await client.request({"type": "ping_request", "id": 3})
    assert later["time_ts"] == got[0]["time_ts"] + 60 and later["time"] != got[0]["time"]
    # A server of another zone in this process, on the same clock: its own time.
    settings = Settings(data_dir=tmp_path / "utc", timezone="UTC", lang="en")
    async with Lovewire(settings, tables=TABLES, clock=clock, listen=False) as utc:
        there = await MemoryClient(utc).request({"type": "ping_request"})
        here = await client.request({"type": "ping_request"})
    assert there["time_ts"] == here["time_ts"] == later["time_ts"]
    assert there["time"] != here["time"] == later["time"]


@pytest.mark.parametrize(
    "request_id", ["a1", "", 'q"\\\n\t\x00\u00e9\u4e2d\U0001f600', 7, 10**63, -1, 2.5]
)
def test_an_echoed_id_is_written_as_json_dumps_writes_it(request_id: Any) -> None:
    frame = '{"type":"ping_response","success":true}'
    echoed = json.dumps(request_id, ensure_ascii=False)
    assert _with_id(frame, request_id) == frame[:-1] + ',"id":' + echoed + "}"
    assert _with_id(frame, None) == frame


@pytest.mark.parametrize(
    ("frame", "answer"),
    [
        ("[1]", {"type": "error", "error_no": 3}),
        ("{nope", {"type": "error", "error_no": 3}),
        ('{"type":"nope","id":7}', {"type": "error", "error_no": 4, "id": 7}),
        ('{"type":5}', {"type": "error", "error_no": 4}),
        ('{"type":"ping_request","id":null}', {"type": "ping_response", "error_no": 2}),
        ('{"type":"ping_request","id":true}', {"type": "ping_response", "error_no": 2}),
        # 2 comes before 5 (section 2): the field is checked before the missing login.
        (
            '{"type":"picture_like_request","id":"x"}',
            {"type": "picture_like_response", "error_no": 2, "id": "x"},
        ),
        (
            '{"type":"picture_like_request","picture_id":"1","id":"x"}',
            {"type": "picture_like_response", "error_no": 5, "id": "x"},
        ),
        ('{"type":"ping_request","id":"\\ud800"}', {"type": "ping_response", "error_no": 2}),
    ],
)
async def test_refused_frames_get_their_error(
    app: Lovewire, frame: str, answer: dict[str, Any]
) -> None:
    client = MemoryClient(app)
    (got,) = await client.send(frame)
    assert {k: got.get(k) for k in answer} == answer and got["success"] is False
    assert ("id" in got) == ("id" in answer)


async def test_silent_request_gets_nothing_even_malformed(app: Lovewire) -> None:
    client = MemoryClient(app)
    assert await client.send({"type": "notify_ack", "seq": "many"}) == []
    assert await client.send({"type": "notify_ack", "seq": 1}) == []


async def test_one_pass_and_lenient_parse_answer_alike(app: Lovewire) -> None:
    """A raw line break inside a string (hand-built JSON) is read as its escaped form is."""
    client = MemoryClient(app)
    escaped = await client.request('{"type":"ping_request","note":"a\\nb","id":1}')
    raw = await client.request('{"type":"ping_request","note":"a\nb","id":1}')
    assert raw == escaped and raw["success"]


async def test_rate_counts_every_frame_even_unparsed(app: Lovewire) -> None:
    client = MemoryClient(app)
    rate = int(app.settings.requests_per_second)
    for _ in range(rate):
        await client.send("not json")
    refused = await client.request({"type": "ping_request"})
    assert refused["error_no"] == 6 and refused["retry_after"] >= 1


async def test_match_pushes_follow_the_answer_and_reach_the_other_client(
    app: Lovewire, sms_platform: SmsPlatform
) -> None:
    """A request's pushes are published after its answer; the other user gets theirs live."""
    a, b = MemoryClient(app), MemoryClient(app)
    reg_a = await register(app, sms_platform, a, "13800000001")
    reg_b = await register(app, sms_platform, b, "13800000002")
    a.take(), b.take()
    assert (await a.request({"type": "crush_add_request", "crush_tel": "13800000002"}))["success"]
    assert [f["type"] for f in b.take()] == ["crush_notify"]
    got = await b.send({"type": "crush_add_request", "crush_tel": "13800000001"})
    assert [f["type"] for f in got] == ["crush_add_response", "crush_match_notify"]
    assert got[1]["user_id"] == reg_a["user_id"] and got[1]["seq"] == 2
    (match,) = [f for f in a.take() if f["type"] == "crush_match_notify"]
    assert match["user_id"] == reg_b["user_id"] and match["seq"] == 1


async def test_login_replays_after_its_answer(app: Lovewire, sms_platform: SmsPlatform) -> None:
    """auth_request {last_seq}: the answer, then the pushes owed, in seq order."""
    a, b = MemoryClient(app), MemoryClient(app)
    await register(app, sms_platform, a, "13800000001")
    reg_b = await register(app, sms_platform, b, "13800000002")
    b.close()  # offline
    await a.request({"type": "crush_add_request", "crush_tel": "13800000002"})
    await a.request({"type": "crush_add_request", "crush_tel": "13800000003"})
    back = MemoryClient(app)
    got = await back.send({"type": "auth_request", "token": reg_b["token"], "last_seq": 0})
    assert [f["type"] for f in got] == ["auth_response", "crush_notify"]
    assert got[0]["last_seq"] == 1 and got[1]["seq"] == 1 and json.dumps(got[1])
