"""Hostile pictures (issue 7, item 15): stored files carry no ICC profile nor opaque block."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from tests.conftest import Server
from tests.test_security_pictures import MARKER, fetch, post_upload, uri

# -- item 15: stored pictures carry no ICC profile nor any other opaque block --


def _icc_with_marker() -> bytes:
    """A real sRGB ICC profile with 64 KB of arbitrary bytes riding inside it."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    profile += MARKER * 3000
    profile[0:4] = len(profile).to_bytes(4, "big")
    return bytes(profile)


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x010E] = MARKER.decode()  # ImageDescription
    return exif.tobytes()


def _png_with_blocks(icc: bytes) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", MARKER.decode())
    info.add_text("zipped", MARKER.decode() * 50, zip=True)
    info.add_itxt("intl", MARKER.decode(), lang="en", tkey="x")
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 90)).save(
        out, "PNG", pnginfo=info, icc_profile=icc, exif=_exif()
    )
    return out.getvalue()


def _jpeg_with_blocks(icc: bytes) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 90)).save(
        out, "JPEG", icc_profile=icc, exif=_exif(), comment=MARKER, xmp=MARKER
    )
    raw = out.getvalue()
    app13 = b"Photoshop 3.0\x00" + MARKER  # an APP13 block Pillow does not know
    return raw[:2] + b"\xff\xed" + (len(app13) + 2).to_bytes(2, "big") + app13 + raw[2:]


def _webp_with_blocks(icc: bytes) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 90)).save(
        out, "WEBP", icc_profile=icc, exif=_exif(), xmp=MARKER
    )
    return out.getvalue()


def _gif_with_comment(_icc: bytes) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 90)).save(out, "GIF", comment=MARKER)
    return out.getvalue()


@pytest.mark.parametrize(
    ("make", "mime", "fmt"),
    [
        (_png_with_blocks, "image/png", "PNG"),
        (_jpeg_with_blocks, "image/jpeg", "JPEG"),
        (_webp_with_blocks, "image/webp", "WEBP"),
        (_gif_with_comment, "image/gif", "GIF"),
    ],
    ids=["png", "jpeg", "webp", "gif"],
)
@pytest.mark.parametrize(
    "icc", [_icc_with_marker(), MARKER * 3000], ids=["profile-with-marker", "not-a-profile"]
)
async def test_picture_stored_without_icc_or_opaque_blocks(
    server: Server, make: Callable[[bytes], bytes], mime: str, fmt: str, icc: bytes
) -> None:
    """ICC data, EXIF, XMP, comments, PNG text chunks, APP13: none reach the stored file."""
    raw = make(icc)
    assert MARKER in raw
    async with server.connect() as a:
        reg = await server.register(a)
        done = await post_upload(server, reg["token"], uri(raw, mime))
        assert done["success"], done
        stored = await fetch(server, done["picture_content"])
    assert MARKER not in stored
    with Image.open(io.BytesIO(stored)) as image:
        assert (image.format, image.size) == (fmt, (40, 30))
        assert "icc_profile" not in image.info and not image.getexif()
        red, green, blue = image.convert("RGB").getpixel((20, 15))  # type: ignore[misc]
    assert abs(red - 200) < 8 and abs(green - 30) < 8 and abs(blue - 90) < 8
