"""Profile (4.4): my own profile, others' public fields, updates and the avatar."""

from __future__ import annotations

import base64
import io
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from PIL import Image

from tests.conftest import Server

OWN_KEYS = {"user_id", "nickname", "sex", "birthday", "signature", "avatar", "tel"}
PUBLIC_KEYS = {"user_id", "nickname", "sex", "age", "signature", "avatar"}


def png_uri(color: str = "red") -> str:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), color).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


async def test_profile_own_has_every_field(server: Server) -> None:
    """Without user_id the caller gets their own profile, birthday and tel included."""
    async with server.connect() as a:
        reg = await server.register(a, nickname="zhang")
        frame = await a.request({"type": "profile_request"})
        assert frame["success"] and frame["type"] == "profile_response"
        assert frame["profile"] == {
            "user_id": reg["user_id"],
            "nickname": "zhang",
            "sex": 1,
            "birthday": "1995-3-21",
            "signature": "",
            "avatar": "",
            "tel": reg["tel"],
        }
        by_id = await a.request({"type": "profile_request", "user_id": int(reg["user_id"])})
        assert by_id["profile"] == frame["profile"]


async def test_profile_other_has_age_not_birthday_or_tel(server: Server) -> None:
    """Another user's profile carries an age and never the birthday or the tel."""
    async with server.connect() as a, server.connect() as b:
        await server.register(a)
        other = await server.register(b, nickname="wang")
        frame = await a.request({"type": "profile_request", "user_id": other["user_id"]})
        profile = frame["profile"]
        assert set(profile) == PUBLIC_KEYS
        today = datetime.fromtimestamp(server.clock.now(), ZoneInfo("Asia/Shanghai")).date()
        born = date(1995, 3, 21)
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        assert profile["age"] == age and profile["nickname"] == "wang"
        text = str(frame)
        assert other["tel"] not in text and "1995" not in text


async def test_profile_unknown_user_is_error_8(server: Server) -> None:
    """A user_id nobody has is error 8; a malformed one is error 2."""
    async with server.connect() as a:
        await server.register(a)
        assert (await a.request({"type": "profile_request", "user_id": "999"}))["error_no"] == 8
        assert (await a.request({"type": "profile_request", "user_id": "x"}))["error_no"] == 2


async def test_profile_update_changes_given_fields_only(server: Server) -> None:
    """An update sets the fields sent and returns the whole own profile."""
    async with server.connect() as a:
        reg = await server.register(a)
        frame = await a.request(
            {
                "type": "profile_update_request",
                "nickname": " 小王 ",
                "signature": "s" * 100,
                "birthdate": {"year": 2000, "month": 2, "day": 29},
            }
        )
        assert frame["success"] and set(frame["profile"]) == OWN_KEYS
        profile = frame["profile"]
        assert (profile["nickname"], profile["signature"]) == ("小王", "s" * 100)
        assert (profile["birthday"], profile["sex"], profile["tel"]) == ("2000-2-29", 1, reg["tel"])
        again = await a.request({"type": "profile_request"})
        assert again["profile"] == profile


async def test_profile_update_out_of_range_is_error_2_and_changes_nothing(server: Server) -> None:
    """Nickname 1..20, signature 0..100, a real date old enough, sex 0/1: else error 2."""
    async with server.connect() as a:
        await server.register(a, nickname="zhang")
        for bad in (
            {"nickname": "x" * 21},
            {"nickname": "  "},
            {"signature": "s" * 101},
            {"birthday": "2015-2-30"},
            {"birthday": f"{date.today().year - 10}-1-1"},
            {"birthdate": {"year": 2**63, "month": 1, "day": 1}},
            {"birthdate": {"year": 1995, "month": 3, "day": -(2**40)}},
            {"sex": 2},
            {"nickname": "ok", "signature": "s" * 101},
        ):
            frame = await a.request({"type": "profile_update_request", **bad})
            assert frame["error_no"] == 2, bad
        profile = (await a.request({"type": "profile_request"}))["profile"]
        assert (profile["nickname"], profile["signature"]) == ("zhang", "")


async def test_profile_avatar_stored_and_served(server: Server) -> None:
    """An avatar data URI is stored like a picture and shown as its URL path, served over HTTP."""
    async with server.connect() as a, server.connect() as b:
        reg = await server.register(a)
        await server.register(b)
        frame = await a.request({"type": "profile_update_request", "avatar": png_uri()})
        avatar = frame["profile"]["avatar"]
        assert avatar.startswith("/uploads/") and avatar.endswith(".png")
        seen = await b.request({"type": "profile_request", "user_id": reg["user_id"]})
        assert seen["profile"]["avatar"] == avatar
        async with aiohttp.ClientSession() as http, http.get(server.http_url + avatar) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == "image/png"
            assert Image.open(io.BytesIO(await resp.read())).size == (4, 3)
        cleared = await a.request({"type": "profile_update_request", "avatar": ""})
        assert cleared["profile"]["avatar"] == ""


async def test_profile_avatar_not_an_image_is_error_11(server: Server) -> None:
    """An avatar that is not a supported image is error 11 and nothing changes."""
    async with server.connect() as a:
        await server.register(a)
        junk = "data:image/png;base64," + base64.b64encode(b"not a picture").decode()
        frame = await a.request({"type": "profile_update_request", "avatar": junk, "nickname": "x"})
        assert frame["error_no"] == 11
        profile = (await a.request({"type": "profile_request"}))["profile"]
        assert (profile["avatar"], profile["nickname"]) == ("", "zhang")


async def test_profile_avatar_absolute_with_public_url(start_server: Any) -> None:
    """With LOVEWIRE_PUBLIC_URL the avatar URL is absolute."""
    server: Server = await start_server(public_url="https://cdn.example.com/")
    async with server.connect() as a:
        await server.register(a)
        frame = await a.request({"type": "profile_update_request", "avatar": png_uri("blue")})
        assert frame["profile"]["avatar"].startswith("https://cdn.example.com/uploads/")
