"""Shared helpers of the picture community tests: shapes, pictures, requests."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from tests.conftest import Client, Server

APP_TIME = re.compile(r"^\d{4}-[1-9]\d?-[1-9]\d? (?:1?\d|2[0-3]):[0-5]\d$")

REPLY_SHAPE = {
    "comment_id": "str",
    "comment_response_own": "str",
    "comment_response_msg": "str",
    "user_id": "str",
    "reply_to": "str",
    "comment_response_time": "str",
    "comment_response_time_ts": "int",
}
COMMENT_SHAPE = {
    "comment_id": "str",
    "comment_own": "str",
    "comment_msg": "str",
    "comment_response": [REPLY_SHAPE],
    "user_id": "str",
    "comment_time": "str",
    "comment_time_ts": "int",
    "comment_response_num": "str",
}
POST_SHAPE = {
    "picture_id": "str",
    "picture_publish_time": "str",
    "picture_content": "str",
    "picture_words": "str",
    "picture_like_num": "str",
    "picture_owner": "str",
    "picture_comment": [COMMENT_SHAPE],
    "picture_comment_num": "str",
    "user_id": "str",
    "liked_by_me": "bool",
    "picture_publish_time_ts": "int",
}
FEED_SHAPE = {
    "type": "str",
    "information": [POST_SHAPE],
    "success": "bool",
    "error_no": "int",
    "err_msg": "str",
}

_colour = 0


def picture(fmt: str = "JPEG", size: tuple[int, int] = (8, 6)) -> bytes:
    """A small real picture, different from every earlier one."""
    global _colour
    _colour += 1
    out = io.BytesIO()
    image = Image.new("RGB", size, (_colour * 53 % 256, _colour * 97 % 256, 77))
    # Neighbouring colours may encode alike: the counter's bits, as black and white
    # pixels, make every picture's bytes (and the server's re-encoding) differ.
    for bit in range(min(24, size[0] * size[1])):
        white = (_colour >> bit) & 1
        image.putpixel((bit % size[0], bit // size[0]), (255,) * 3 if white else (0, 0, 0))
    image.save(out, format=fmt)
    return out.getvalue()


def uri(raw: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def shape(value: Any) -> Any:
    """Field names and JSON types of a frame, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def stored_files(server: Server) -> list[Path]:
    media = server.app.settings.data_dir / "uploads"
    return sorted(p for p in media.rglob("*") if p.is_file()) if media.exists() else []


async def upload(client: Client, words: str = "hello!", **extra: Any) -> dict[str, Any]:
    frame = {"type": "picture_upload_request", "words": words, "picture": uri(picture())}
    frame.update(extra)
    return await client.request(frame)


async def feed(client: Client, **extra: Any) -> dict[str, Any]:
    return await client.request({"type": "picture_info_request", **extra})


async def comment(client: Client, picture_id: str | int, msg: str, **extra: Any) -> dict[str, Any]:
    frame = {"type": "picture_comment_request", "picture_id": picture_id, "msg": msg, **extra}
    return await client.request(frame)


async def get(server: Server, path: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as http, http.get(server.http_url + path) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def post_bytes(server: Server, path: str, body: bytes) -> tuple[int, Any]:
    """POST a large body as a stream."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.http_url + path, data=io.BytesIO(body)) as resp,
    ):
        return resp.status, json.loads(await resp.text())


async def no_push_pending(client: Client) -> None:
    """Assert nothing was pushed to client: a push would arrive before this ping's answer."""
    pong = await client.request({"type": "ping_request"})
    assert pong["success"]
    assert client.pushes == []
