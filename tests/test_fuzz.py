"""Random hostile frames on one logged-in socket: each gets its one answer, never error 13."""

from __future__ import annotations

import json
import random
from typing import Any

from lovewire.registry import Registry
from tests.conftest import Server

NASTY: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63,
    2**70,
    -(2**70),
    1.5,
    1e308,
    float("-1e308"),
    "",
    " ",
    "0",
    "1",
    "-1",
    "18615794931",
    "+86 186-1579-4931",
    "abc",
    "x" * 700,
    "中文昵称",
    "\u0000",
    "\n",
    "1995-2-29",
    "2000-2-29",
    "data:image/png;base64,AAAA",
    "data:image/jpeg;base64,/9j/4AAQ",
    [],
    [1, 2],
    {},
    {"year": 2000, "month": 2, "day": 30},
    [[[[[[[[[[[[]]]]]]]]]]]],
    {"a": {"b": {"c": None}}},
]
FIELDS = [
    "token",
    "tel",
    "code",
    "nickname",
    "sex",
    "birthday",
    "birthdate",
    "picture_id",
    "comment_id",
    "reply_to",
    "before",
    "limit",
    "msg",
    "words",
    "picture",
    "client_msg_id",
    "crush_tel",
    "receive",
    "user_id",
    "signature",
    "avatar",
    "new_tel",
    "old_code",
    "last_seq",
    "all",
    "seq",
    "time",
]


def _frame(rng: random.Random, types: list[str]) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": rng.choice(types)}
    for name in rng.sample(FIELDS, rng.randint(0, 6)):
        frame[name] = rng.choice(NASTY)
    return frame


async def test_fuzz_random_frames_answered_without_internal_errors(roomy: Server) -> None:
    """2,000 random frames: one answer each, of the right type, none an internal error."""
    server = roomy
    registry: Registry = server.app.registry
    types = sorted(t for t, route in registry.routes.items() if not route.silent)
    types += ["no_such_type", "picture_like_notify"]
    rng = random.Random(20261127)
    async with server.connect() as c:
        reg = await server.register(c)
        for i in range(2000):
            frame = _frame(rng, types)
            if frame.get("token") is None and rng.random() < 0.2:
                frame["token"] = reg["token"]
            frame["id"] = i
            answer = await c.request(json.dumps(frame, allow_nan=True))
            route = registry.get(frame["type"])
            expected = route.response_type if route is not None else "error"
            assert answer["type"] == expected, (frame, answer)
            assert answer["error_no"] != 13, (frame, answer)
            if answer["type"] != "error":
                assert answer["id"] == i, (frame, answer)
        assert (await c.request({"type": "ping_request"}))["success"]


async def test_fuzz_random_bodies_over_http_answered(server: Server) -> None:
    """Random bodies on POST /api: always HTTP 200 (204 for the silent ones), never error 13."""
    registry: Registry = server.app.registry
    types = [*sorted(registry.routes), "no_such_type"]
    rng = random.Random(7)
    for _ in range(300):
        frame = _frame(rng, types)
        status, answer = await server.post("/api", json.dumps(frame, allow_nan=True))
        route = registry.get(frame["type"])
        if route is not None and route.silent:
            assert status == 204 and answer is None
            continue
        assert status == 200, (frame, status)
        assert answer["error_no"] != 13, (frame, answer)
