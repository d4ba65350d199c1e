"""Text hygiene (issue 7, item 14): refused, blank and decomposed text in every field."""

from __future__ import annotations

import unicodedata
from contextlib import AsyncExitStack

from tests.conftest import Client, Server
from tests.test_security_misc import png_uri

# -- item 14: text hygiene -----------------------------------------------------------------

#: Refused in every text field: control characters, bidi overrides and isolates.
REFUSED = ["a\x00b", "a\x07b", "a\rb", "a\tb", "a\u202eb", "a\u2066b", "a\u2069b", "\x85"]
#: Shows nothing: empty.
BLANK = ["\u200b", " \u200c\u200d ", "\u2060\ufeff", "\u3000\u200b\u3000"]
#: Decomposed: NFC makes it "é".
DECOMPOSED = "e\u0301"


async def _registered(server: Server, stack: AsyncExitStack) -> Client:
    client = await stack.enter_async_context(server.connect())
    await server.register(client)
    return client


async def test_text_nickname_registration_hygiene(server: Server) -> None:
    """Nickname at registration: no line feed either, blank is empty (2), kept NFC."""
    async with server.connect() as c:
        result = await server.login_code(c, server.new_tel())
        base = {"type": "user_register_info", "token": result["token"], "sex": 1}
        base["birthday"] = "1995-3-21"
        for bad in [*REFUSED, *BLANK, "a\nb", "a\u2028b"]:
            frame = await c.request({**base, "nickname": bad})
            assert frame["error_no"] == 2, (bad, frame)
        # 20 characters once composed, 40 code points as sent.
        done = await c.request({**base, "nickname": f" {DECOMPOSED * 20}\u200b "})
        assert done["success"], done
        mine = await c.request({"type": "profile_request"})
        assert mine["profile"]["nickname"] == "é" * 20


async def test_text_profile_nickname_and_signature_hygiene(server: Server) -> None:
    """Profile update: nickname and signature refuse controls, keep NFC; blank signature is ""."""
    async with AsyncExitStack() as stack:
        c = await _registered(server, stack)
        for field in ("nickname", "signature"):
            for bad in REFUSED:
                frame = await c.request({"type": "profile_update_request", field: bad})
                assert frame["error_no"] == 2, (field, bad, frame)
        for blank in BLANK:
            frame = await c.request({"type": "profile_update_request", "nickname": blank})
            assert frame["error_no"] == 2, (blank, frame)
        update = {"type": "profile_update_request", "signature": f"caf{DECOMPOSED}\nok"}
        assert (await c.request(update))["profile"]["signature"] == "café\nok"
        for blank in BLANK:
            update = {"type": "profile_update_request", "signature": blank}
            assert (await c.request(update))["profile"]["signature"] == ""
        too_long = {"type": "profile_update_request", "signature": "x" * 101}
        assert (await c.request(too_long))["error_no"] == 2
        composed = {"type": "profile_update_request", "signature": DECOMPOSED * 100}
        assert (await c.request(composed))["profile"]["signature"] == "é" * 100


async def test_text_picture_words_and_comment_hygiene(server: Server) -> None:
    """Picture words and comment msg: controls refused; blank words are "", a blank comment 2."""
    async with AsyncExitStack() as stack:
        c = await _registered(server, stack)
        upload = {"type": "picture_upload_request", "picture": png_uri(1)}
        for bad in REFUSED:
            frame = await c.request({**upload, "words": bad})
            assert frame["error_no"] == 2, (bad, frame)
        posted = await c.request({**upload, "words": f"{DECOMPOSED}\nline"})
        assert posted["success"], posted
        blank = await c.request({**upload, "picture": png_uri(2), "words": "\u200b\u2060"})
        assert blank["success"], blank
        pid = posted["picture_id"]
        comment = {"type": "picture_comment_request", "picture_id": pid}
        for bad in [*REFUSED, *BLANK]:
            frame = await c.request({**comment, "msg": bad})
            assert frame["error_no"] == 2, (bad, frame)
        assert (await c.request({**comment, "msg": f"{DECOMPOSED * 500}"}))["success"]
        assert (await c.request({**comment, "msg": "x" * 501}))["error_no"] == 2
        feed = await c.request({"type": "picture_info_request"})
        words = {p["picture_id"]: p["picture_words"] for p in feed["information"]}
        assert words == {pid: "é\nline", blank["picture_id"]: ""}
        post = next(p for p in feed["information"] if p["picture_id"] == pid)
        assert [m["comment_msg"] for m in post["picture_comment"]] == ["é" * 500]


async def test_text_crush_words_hygiene(server: Server) -> None:
    """Crush words: controls refused, NFC kept, blank is ""."""
    async with AsyncExitStack() as stack:
        c = await _registered(server, stack)
        for bad in REFUSED:
            add = {"type": "crush_add_request", "crush_tel": server.new_tel(), "words": bad}
            assert (await c.request(add))["error_no"] == 2, bad
        first, second = server.new_tel(), server.new_tel()
        add = {"type": "crush_add_request", "crush_tel": first, "words": DECOMPOSED * 100}
        assert (await c.request(add))["success"]
        add = {"type": "crush_add_request", "crush_tel": second, "words": " \u200b "}
        assert (await c.request(add))["success"]
        listed = await c.request({"type": "crush_list_request"})
        words = {i["crush_tel"]: i["words"] for i in listed["crushes"]}
        assert words == {first: "é" * 100, second: ""}
        assert all(unicodedata.is_normalized("NFC", w) for w in words.values())
