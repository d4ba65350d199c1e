"""Hostile pictures (issue 7, item 2): budgets and worker processes.

The server under test runs in this process, its picture workers in others: the memory a
picture costs the server is this process's peak RSS (VmHWM, reset through clear_refs).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import resource
import signal
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from bench.pictures import big_png, many_frame_gif, repeated_scan_jpeg, semicolon_uri
from lovewire import images
from lovewire.errors import PayloadRefused
from tests.conftest import Client, Server

UPLOAD_ROUTE = "/index.php?r=picture/upload"
MARKER = b"LOVEWIRE-OPAQUE-MARKER"

_colour = 0


def picture(fmt: str = "PNG", size: tuple[int, int] = (8, 6)) -> bytes:
    """A small real picture, different from every earlier one."""
    global _colour
    _colour += 1
    out = io.BytesIO()
    Image.new("RGB", size, (_colour % 256, _colour // 256 % 256, 9)).save(out, format=fmt)
    return out.getvalue()


def uri(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def stored_files(server: Server) -> list[Path]:
    media = server.app.settings.data_dir / "uploads"
    return sorted(p for p in media.rglob("*") if p.is_file()) if media.exists() else []


def reset_peak_rss() -> None:
    """Make this process's VmHWM its current RSS (Linux clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def rss_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise AssertionError(f"no {key}")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def post_upload(server: Server, token: str, data_uri: str) -> dict[str, Any]:
    """The app's upload route, which takes bodies larger than a WebSocket frame."""
    body = json.dumps({"token": token, "words": "x", "picture": data_uri}).encode()
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.http_url + UPLOAD_ROUTE, data=io.BytesIO(body)) as resp,
    ):
        assert resp.status == 200
        answer = json.loads(await resp.text())
    assert answer["type"] == "picture_upload_response"
    return answer  # type: ignore[no-any-return]


async def upload(client: Client, data_uri: str) -> dict[str, Any]:
    return await client.request({"type": "picture_upload_request", "picture": data_uri})


async def set_avatar(client: Client, data_uri: str) -> dict[str, Any]:
    return await client.request({"type": "profile_update_request", "avatar": data_uri})


async def still_serving(server: Server, client: Client) -> None:
    """The server answers a ping and still stores an ordinary picture."""
    assert (await client.request({"type": "ping_request"}))["success"]
    done = await upload(client, uri(picture()))
    assert done["success"], done


async def fetch(server: Server, path: str) -> bytes:
    async with aiohttp.ClientSession() as http, http.get(server.http_url + path) as resp:
        assert resp.status == 200
        return await resp.read()


@cache
def png_7000() -> str:
    """A 7000x7000 PNG of one colour (150 KB; 147 MB decoded), as a data URI."""
    return uri(big_png(7000))


# -- item 2: decoding costs the server neither CPU nor memory beyond a budget --


async def test_picture_huge_png_decoded_outside_server_rss_stays_low(
    start_server: Callable[..., Any],
) -> None:
    """3 PNGs of 7000x7000 (147 MB each decoded) at once leave the server's peak RSS low."""
    server: Server = await start_server(uploads_per_hour=100, picture_workers=1, picture_wait=0)
    attack = png_7000()
    async with server.connect() as a:
        reg = await server.register(a)
        reset_peak_rss()
        base = rss_kib("VmRSS:")
        answers = await asyncio.gather(
            *(post_upload(server, reg["token"], attack) for _ in range(3))
        )
        peak = rss_kib("VmHWM:")
        assert {a["error_no"] for a in answers} <= {0, 6, 11}, answers
        assert peak - base < 100 * 1024, (base, peak)
        await still_serving(server, a)


@pytest.mark.sqlite_only
async def test_picture_over_memory_budget_error_11_pool_keeps_serving(
    start_server: Callable[..., Any],
) -> None:
    """A picture that needs more memory than its worker may have is error 11; next one works."""
    server: Server = await start_server(picture_memory_mb=32, picture_workers=1)
    async with server.connect() as a:
        reg = await server.register(a)
        refused = await post_upload(server, reg["token"], uri(big_png(4000)))
        assert (refused["success"], refused["error_no"]) == (False, 11)
        await still_serving(server, a)
    assert len(stored_files(server)) == 1


async def test_picture_gif_of_100000_frames_error_11(start_server: Callable[..., Any]) -> None:
    """A GIF of 100,000 one-pixel frames is refused from its blocks, never decoded."""
    server: Server = await start_server(uploads_per_hour=100)
    async with server.connect() as a:
        reg = await server.register(a)
        attack = uri(many_frame_gif(), "image/gif")
        before = cpu_seconds()
        refused = await post_upload(server, reg["token"], attack)
        assert cpu_seconds() - before < 2.0  # the server's own share (it took 15 s)
        assert (refused["success"], refused["error_no"]) == (False, 11)
        assert (await upload(a, uri(many_frame_gif(5), "image/gif")))["success"]
        await still_serving(server, a)


async def test_picture_jpeg_with_repeated_scans_error_11(start_server: Callable[..., Any]) -> None:
    """A progressive JPEG whose scan is repeated 2,000 times is refused from its markers."""
    server: Server = await start_server(uploads_per_hour=100)
    attack = uri(repeated_scan_jpeg(1000, 2000), "image/jpeg")
    async with server.connect() as a:
        reg = await server.register(a)
        before = cpu_seconds()
        refused = await post_upload(server, reg["token"], attack)
        assert cpu_seconds() - before < 2.0  # the server's own share
        assert (refused["success"], refused["error_no"]) == (False, 11)
        ordinary = uri(repeated_scan_jpeg(64, 0), "image/jpeg")
        assert (await upload(a, ordinary))["success"]
        await still_serving(server, a)


@pytest.mark.parametrize(
    ("limits", "death"),
    [
        ({"picture_cpu_seconds": 1, "picture_deadline": 120}, -signal.SIGXCPU),
        ({"picture_cpu_seconds": 600, "picture_deadline": 2}, -signal.SIGKILL),
    ],
    ids=["cpu-budget", "wall-deadline"],
)
async def test_picture_decode_over_its_limit_worker_killed_error_11_pool_keeps_serving(
    start_server: Callable[..., Any], limits: dict[str, int], death: int
) -> None:
    """With the scan limit lifted, 20 s of decoding is cut at the CPU budget (SIGXCPU) or at
    the wall-clock deadline (SIGKILL): error 11, and the pool serves on."""
    server: Server = await start_server(picture_max_scans=1_000_000, **limits)
    attack = uri(repeated_scan_jpeg(2000, 5000), "image/jpeg")
    async with server.connect() as a:
        reg = await server.register(a)
        refused = await post_upload(server, reg["token"], attack)
        assert (refused["success"], refused["error_no"]) == (False, 11)
        assert server.app.services is not None
        assert list(server.app.services.pictures.exit_codes) == [death]
        await still_serving(server, a)


async def test_picture_workers_busy_error_6_retry_after_budget_kept(
    start_server: Callable[..., Any],
) -> None:
    """One worker, no wait: pictures sent while it decodes get error 6 and keep their budget."""
    server: Server = await start_server(picture_workers=1, picture_wait=0, uploads_per_hour=4)
    attack = png_7000()
    async with server.connect() as a:
        reg = await server.register(a)
        answers = await asyncio.gather(
            *(post_upload(server, reg["token"], attack) for _ in range(3))
        )
        busy = [x for x in answers if x["error_no"] == 6]
        assert busy and all(x["retry_after"] >= 1 for x in busy), answers
        assert all(x["error_no"] in (0, 11) for x in answers if x not in busy), answers
        # Refused for a busy worker: no budget used. 4 - (3 - len(busy)) uploads remain.
        for _ in range(1 + len(busy)):
            assert (await upload(a, uri(picture())))["success"]
        assert (await upload(a, uri(picture())))["error_no"] == 6


@pytest.mark.parametrize("comma", [True, False], ids=["comma", "no-comma"])
async def test_picture_data_uri_of_15m_semicolons_error_11_linear(
    server: Server, comma: bool
) -> None:
    """`data:` and 15 M semicolons: error 11 at once (the header is read up to 256 chars)."""
    async with server.connect() as a:
        reg = await server.register(a)
        attack = semicolon_uri(15_000_000, comma)
        before = cpu_seconds()
        refused = await post_upload(server, reg["token"], attack)
        spent = cpu_seconds() - before
        assert (refused["success"], refused["error_no"]) == (False, 11)
        # This process sends, parses (JSON) and refuses it: well under the 5 s a regex took.
        assert spent < 2.0, spent
        await still_serving(server, a)


def test_data_uri_header_longer_than_256_refused() -> None:
    """The header is only looked for in the first 256 characters; a longer one is refused."""
    raw = picture()
    fine = "data:image/png;" + "x" * 200 + ";base64," + base64.b64encode(raw).decode()
    assert images.parse_data_uri(fine, 10**6) == ("PNG", raw)
    long = "data:image/png;" + "x" * 300 + ";base64," + base64.b64encode(raw).decode()
    with pytest.raises(PayloadRefused):
        images.parse_data_uri(long, 10**6)


# -- item 2: budgets before decoding; refused pictures count; avatars have their own --


async def test_upload_refused_after_decoding_counts_towards_uploads(
    start_server: Callable[..., Any],
) -> None:
    """A picture refused by its decoding uses an upload; bad base64 (never decoded) does not."""
    server: Server = await start_server(uploads_per_hour=2)
    async with server.connect() as a:
        await server.register(a)
        assert (await upload(a, "data:image/png;base64,%%%"))["error_no"] == 11
        assert (await upload(a, uri(b"not a picture at all")))["error_no"] == 11
        assert (await upload(a, uri(picture())))["success"]
        refused = await upload(a, uri(picture()))
        assert (refused["error_no"], refused["retry_after"]) == (6, 3600)


async def test_upload_parallel_over_budget_decodes_only_budget(
    start_server: Callable[..., Any],
) -> None:
    """8 uploads at once against a budget of 2: 2 are decoded and posted, 6 get error 6."""
    server: Server = await start_server(uploads_per_hour=2)
    async with server.connect() as a:
        reg = await server.register(a)
        answers = await asyncio.gather(
            *(post_upload(server, reg["token"], uri(picture())) for _ in range(8))
        )
    assert sorted(x["error_no"] for x in answers) == [0, 0, 6, 6, 6, 6, 6, 6]
    assert server.app.services is not None
    assert server.app.services.pictures.decoded == 2


async def test_avatar_changes_over_daily_budget_error_6_until_day_passes(
    start_server: Callable[..., Any],
) -> None:
    """avatars_per_day caps avatar changes, a refused picture included; uploads are apart."""
    server: Server = await start_server(avatars_per_day=2, uploads_per_hour=1)
    async with server.connect() as a:
        await server.register(a)
        assert (await upload(a, uri(picture())))["success"]
        assert (await set_avatar(a, uri(b"not a picture")))["error_no"] == 11
        assert (await set_avatar(a, uri(picture())))["success"]
        server.clock.advance(3600)
        refused = await set_avatar(a, uri(picture()))
        assert (refused["error_no"], refused["retry_after"]) == (6, 86400 - 3600)
        # Clearing the avatar decodes nothing and is always allowed.
        assert (await set_avatar(a, ""))["success"]
        server.clock.advance(86400 - 3600)
        assert (await set_avatar(a, uri(picture())))["success"]


@pytest.mark.sqlite_only
async def test_avatar_replaced_file_removed_unless_still_used(
    start_server: Callable[..., Any],
) -> None:
    """Changing avatars leaves only the current file; a file a post still shows is kept."""
    server: Server = await start_server(avatars_per_day=100, uploads_per_hour=100)
    async with server.connect() as a:
        await server.register(a)
        for _ in range(6):
            assert (await set_avatar(a, uri(picture())))["success"]
        assert len(stored_files(server)) == 1
        shared = picture()
        posted = await upload(a, uri(shared))
        avatar = (await set_avatar(a, uri(shared)))["profile"]["avatar"]
        assert avatar == posted["picture_content"] and len(stored_files(server)) == 1
        await set_avatar(a, uri(picture()))
        assert len(stored_files(server)) == 2  # the post still shows the old avatar's file
        assert (await set_avatar(a, ""))["success"]
        assert len(stored_files(server)) == 1
