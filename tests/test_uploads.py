"""Picture uploads over socket and HTTP, their limits, and picture deletes."""

from __future__ import annotations

import base64
import io
import json
import random
import re
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from tests.conftest import Server
from tests.helpers_pictures import (
    comment,
    feed,
    get,
    picture,
    post_bytes,
    stored_files,
    upload,
    uri,
)


async def test_upload_websocket_file_served_with_content_type(server: Server) -> None:
    """An uploaded PNG is served at its picture_content path as image/png."""
    async with server.connect() as a:
        await server.register(a)
        raw = picture("PNG")
        done = await a.request(
            {"type": "picture_upload_request", "words": "", "picture": uri(raw, "image/png")}
        )
    assert done["success"] and done["picture_id"] == "1"
    assert re.match(r"^/uploads/[0-9a-f]{2}/[0-9a-f]{64}\.png$", done["picture_content"])
    status, content_type, body = await get(server, done["picture_content"])
    assert status == 200 and content_type == "image/png"
    with Image.open(io.BytesIO(body)) as image:
        assert image.format == "PNG" and image.size == (8, 6)


async def test_upload_legacy_route_accepts_app_body(server: Server) -> None:
    """The app's HTTP body (line-broken base64, escaped slashes, tel, token) posts a picture."""
    async with server.connect() as a:
        reg = await server.register(a, nickname="zhang")
        encoded = base64.encodebytes(picture()).decode()
        body = json.dumps(
            {
                "type": "picture_upload_request",
                "token": reg["token"],
                "tel": reg["tel"],
                "words": "hello!",
                "picture": "data:image/jpeg;base64," + encoded,
            }
        ).replace("/", "\\/")
        status, done = await server.post("/index.php?r=picture/upload", body)
        assert status == 200 and done["type"] == "picture_upload_response", done
        assert done["success"] and done["picture_id"] == "1"
        post = (await feed(a))["information"][0]
    assert post["picture_words"] == "hello!" and post["picture_owner"] == "zhang"
    assert (await get(server, done["picture_content"]))[1] == "image/jpeg"


async def test_upload_legacy_route_raw_line_breaks_in_json_accepted(server: Server) -> None:
    """A hand-built body with raw (unescaped) line breaks inside the base64 still posts."""
    async with server.connect() as a:
        reg = await server.register(a)
        encoded = base64.encodebytes(picture()).decode()
        assert "\n" in encoded
        body = (
            '{"type":"picture_upload_request","token":"' + reg["token"] + '","words":"hi",'
            '"picture":"data:image/jpeg;base64,' + encoded + '"}'
        )
        status, done = await server.post("/index.php?r=picture/upload", body)
        assert status == 200 and done["success"], done


async def test_upload_public_url_makes_absolute_content(start_server: Callable[..., Any]) -> None:
    """With LOVEWIRE_PUBLIC_URL set, picture_content is an absolute URL."""
    server: Server = await start_server(public_url="https://pics.example/")
    async with server.connect() as a:
        await server.register(a)
        done = await upload(a)
    assert done["picture_content"].startswith("https://pics.example/uploads/")


def _bomb() -> str:
    raw = bytearray(picture("PNG", (1, 1)))
    ihdr = bytearray(raw[16:29])
    ihdr[0:8] = struct.pack(">II", 60_000, 60_000)
    raw[16:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return uri(bytes(raw), "image/png")


def _noise_png(side: int) -> bytes:
    out = io.BytesIO()
    noise = random.Random(side).randbytes(side * side * 3)
    Image.frombytes("RGB", (side, side), noise).save(out, format="PNG")
    assert len(out.getvalue()) > 4096
    return out.getvalue()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda: "data:image/jpeg;base64,%%%not-base64%%%", id="bad-base64"),
        pytest.param(lambda: uri(b"<html>not a picture</html>"), id="not-an-image"),
        pytest.param(lambda: uri(picture("PNG"), "image/jpeg"), id="png-declared-jpeg"),
        pytest.param(lambda: uri(_noise_png(64), "image/png"), id="too-large"),
        pytest.param(_bomb, id="decompression-bomb"),
        pytest.param(lambda: uri(picture("BMP"), "image/bmp"), id="bmp"),
    ],
)
async def test_upload_refused_payload_error_11_nothing_stored(
    start_server: Callable[..., Any], payload: Callable[[], str]
) -> None:
    """Each refused picture gets error 11 over both routes and leaves no row and no file."""
    server: Server = await start_server(max_upload=4096)
    async with server.connect() as a:
        reg = await server.register(a)
        frame = {"type": "picture_upload_request", "words": "x", "picture": payload()}
        over_ws = await a.request(frame)
        status, over_http = await server.post(
            "/index.php?r=picture/upload", {**frame, "token": reg["token"]}
        )
        assert (await feed(a))["information"] == []
    assert (over_ws["success"], over_ws["error_no"]) == (False, 11)
    assert status == 200 and over_http["error_no"] == 11
    assert over_http["type"] == "picture_upload_response"
    assert stored_files(server) == []


@pytest.mark.parametrize("token", [None, "", "not-a-token-at-all"])
async def test_upload_http_without_valid_token_error_5(server: Server, token: str | None) -> None:
    """The legacy route without a token, or with a bad one, is error 5 and stores nothing."""
    frame: dict[str, Any] = {"tel": "18782946332", "words": "x", "picture": uri(picture())}
    if token is not None:
        frame["token"] = token
    status, done = await server.post("/index.php?r=picture/upload", frame)
    assert status == 200 and (done["success"], done["error_no"]) == (False, 5)
    assert done["type"] == "picture_upload_response"
    assert stored_files(server) == []


async def test_upload_socket_not_logged_in_error_5(server: Server) -> None:
    """A socket that is not logged in cannot post, like or read the feed."""
    async with server.connect() as a:
        for frame in (
            {"type": "picture_upload_request", "picture": uri(picture())},
            {"type": "picture_info_request"},
            {"type": "picture_like_request", "picture_id": "1"},
        ):
            assert (await a.request(frame))["error_no"] == 5


async def test_upload_words_over_500_error_2(server: Server) -> None:
    """words of 501 characters are error 2; 500 are fine."""
    async with server.connect() as a:
        await server.register(a)
        assert (await upload(a, "字" * 501))["error_no"] == 2
        assert (await upload(a, "字" * 500))["success"]
        assert (await a.request({"type": "picture_upload_request"}))["error_no"] == 2


async def test_upload_over_hourly_limit_error_6_until_hour_passes(
    start_server: Callable[..., Any],
) -> None:
    """uploads_per_hour caps posts; retry_after says when. A picture refused after decoding
    counts (contract section 2), one refused before (bad base64) does not."""
    server: Server = await start_server(uploads_per_hour=3)
    async with server.connect() as a:
        await server.register(a)
        assert (await upload(a, picture="data:image/jpeg;base64,%%%"))["error_no"] == 11
        assert (await upload(a, picture=uri(b"nope")))["error_no"] == 11
        assert (await upload(a))["success"]
        server.clock.advance(600)
        assert (await upload(a))["success"]
        refused = await upload(a)
        assert (refused["error_no"], refused["retry_after"]) == (6, 3000)
        assert (await upload(a, picture=uri(b"nope")))["error_no"] == 6
        server.clock.advance(3000)
        assert (await upload(a))["success"]


@pytest.mark.sqlite_only
async def test_upload_same_client_msg_id_returns_first_result(server: Server) -> None:
    """A retried upload with the same client_msg_id posts once; another user's is separate."""
    async with server.connect() as a, server.connect() as b:
        await server.register(a)
        await server.register(b)
        first = await upload(a, client_msg_id="m-1")
        again = await upload(a, client_msg_id="m-1")
        other = await upload(b, client_msg_id="m-1")
        assert again == first and other["picture_id"] != first["picture_id"]
        assert len((await feed(a))["information"]) == 2
    assert len(stored_files(server)) == 2


async def test_picture_delete_stranger_9_owner_removes_post_and_file(server: Server) -> None:
    """Only the owner deletes (9, 8 otherwise); the post, likes, comments and file go."""
    async with server.connect() as a, server.connect() as b:
        await server.register(a)
        await server.register(b)
        done = await upload(a)
        pid = done["picture_id"]
        await b.request({"type": "picture_like_request", "picture_id": pid})
        await comment(b, pid, "nice")
        delete = {"type": "picture_delete_request", "picture_id": pid}
        assert (await b.request(delete))["error_no"] == 9
        assert (await get(server, done["picture_content"]))[0] == 200
        assert (await a.request(delete))["success"]
        assert (await a.request(delete))["error_no"] == 8
        assert (await feed(a))["information"] == []
        assert (await comment(b, pid, "late"))["error_no"] == 8
    assert (await get(server, done["picture_content"]))[0] == 404
    assert stored_files(server) == []


async def test_picture_delete_shared_file_kept_while_used(server: Server) -> None:
    """Two posts of the same picture share one file, removed with the last of them."""
    async with server.connect() as a, server.connect() as b:
        await server.register(a)
        await server.register(b)
        same = uri(picture())
        first = await upload(a, picture=same)
        second = await upload(b, picture=same)
        assert first["picture_content"] == second["picture_content"]
        path = first["picture_content"]
        await a.request({"type": "picture_delete_request", "picture_id": first["picture_id"]})
        assert (await get(server, path))[0] == 200
        await b.request({"type": "picture_delete_request", "picture_id": second["picture_id"]})
        assert (await get(server, path))[0] == 404


async def test_upload_legacy_route_max_size_app_encoding_accepted(
    start_server: Callable[..., Any],
) -> None:
    """A picture of exactly max_upload bytes fits in the app's line-broken, escaped JSON body."""
    raw = _noise_png(900)
    server: Server = await start_server(max_upload=len(raw))
    async with server.connect() as a:
        reg = await server.register(a)
    body = json.dumps(
        {
            "token": reg["token"],
            "words": "big",
            "picture": "data:image/png;base64," + base64.encodebytes(raw).decode(),
        }
    ).replace("/", "\\/")
    assert len(body) > len(raw) * 4 // 3 + 65536
    status, done = await post_bytes(server, "/index.php?r=picture/upload", body.encode())
    assert status == 200 and done["success"], done


async def test_upload_legacy_route_body_over_limit_413_error_11(
    start_server: Callable[..., Any],
) -> None:
    """A body far over the size limit gets HTTP 413 with the error-11 frame."""
    server: Server = await start_server(max_upload=4096)
    status, done = await post_bytes(server, "/index.php?r=picture/upload", b"x" * 200_000)
    assert status == 413
    assert (done["type"], done["error_no"]) == ("picture_upload_response", 11)


@pytest.mark.parametrize("tel", [18615794931, None, ["x"], "anything"])
async def test_upload_tel_informational_any_value_accepted(server: Server, tel: Any) -> None:
    """`tel` in an upload is informational: whatever it holds, the token decides."""
    async with server.connect() as a:
        await server.register(a)
        done = await upload(a, tel=tel)
        assert done["success"], done
