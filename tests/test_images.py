"""Pictures sent as data URIs: checked, cleaned and stored by content hash."""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from lovewire.errors import PayloadRefused
from lovewire.images import MEDIA_PATH, image_url, remove_image, store_image

MAX_BYTES = 1_000_000
MAX_PIXELS = 50_000_000


def make_image(fmt: str = "JPEG", size: tuple[int, int] = (8, 6), **options: object) -> bytes:
    """A small real picture in the given format."""
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(out, format=fmt, **options)
    return out.getvalue()


def data_uri(raw: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def store(uri: str, media: Path, **limits: int) -> str:
    return store_image(
        uri,
        media,
        max_bytes=limits.get("max_bytes", MAX_BYTES),
        max_pixels=limits.get("max_pixels", MAX_PIXELS),
    )


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels."""
    raw = bytearray(make_image("PNG", (1, 1)))
    ihdr = bytearray(raw[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    raw[16:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return bytes(raw)


def opened(path: Path) -> tuple[str, tuple[int, int], int, bool]:
    """(format, size, frames, has EXIF) of a stored picture."""
    with Image.open(path) as image:
        fmt = image.format or ""
        return fmt, image.size, int(getattr(image, "n_frames", 1)), bool(image.getexif())


def animated_gif(side: int, count: int = 3) -> bytes:
    """An animated GIF of `count` differently coloured frames."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9)]
    frames = [Image.new("RGB", (side, side), colours[i % 4]) for i in range(count)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    return out.getvalue()


def assert_nothing_stored(media: Path) -> None:
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


def test_store_jpeg_named_by_hash_of_stored_bytes(tmp_path: Path) -> None:
    """A JPEG is stored at ab/<sha256>.jpg, named by the stored bytes' hash."""
    rel = store(data_uri(make_image()), tmp_path)
    assert MEDIA_PATH.match(rel) and rel.endswith(".jpg")
    stored = (tmp_path / rel).read_bytes()
    assert rel == f"{rel[:2]}/{hashlib.sha256(stored).hexdigest()}.jpg"
    assert opened(tmp_path / rel)[0] == "JPEG"


@pytest.mark.parametrize(
    ("fmt", "mime", "ext"),
    [("PNG", "image/png", "png"), ("GIF", "image/gif", "gif"), ("WEBP", "image/webp", "webp")],
)
def test_store_each_format_kept_in_its_format(
    tmp_path: Path, fmt: str, mime: str, ext: str
) -> None:
    """PNG, GIF and WebP are stored in their own format."""
    rel = store(data_uri(make_image(fmt), mime), tmp_path)
    assert rel.endswith("." + ext)
    assert opened(tmp_path / rel)[0] == fmt


def test_store_line_breaks_and_bare_base64_accepted(tmp_path: Path) -> None:
    """Android's line-broken base64 and base64 without the data: prefix both work."""
    encoded = base64.encodebytes(make_image()).decode()
    assert "\n" in encoded
    first = store("data:image/jpeg;base64," + encoded.replace("\n", "\r\n"), tmp_path)
    second = store(encoded, tmp_path)
    assert first == second


def test_store_exif_gps_stripped(tmp_path: Path) -> None:
    """EXIF (camera, GPS position) does not survive storing."""
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    exif[0x8825] = {1: "N", 2: (39.0, 54.0, 0.0)}
    raw = make_image("JPEG", exif=exif.tobytes())
    assert b"SecretCam" in raw
    rel = store(data_uri(raw), tmp_path)
    stored = (tmp_path / rel).read_bytes()
    assert b"SecretCam" not in stored and b"Exif" not in stored
    assert not opened(tmp_path / rel)[3]


def test_store_exif_orientation_applied_before_stripping(tmp_path: Path) -> None:
    """A photo rotated by its EXIF orientation is stored upright."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    rel = store(data_uri(make_image("JPEG", (8, 4), exif=exif.tobytes())), tmp_path)
    assert opened(tmp_path / rel)[1] == (4, 8)


def test_store_animated_gif_keeps_frames(tmp_path: Path) -> None:
    """An animated GIF keeps its frames."""
    rel = store(data_uri(animated_gif(10), "image/gif"), tmp_path)
    assert opened(tmp_path / rel)[2] == 3


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("data:image/jpeg;base64,@@@@not base64@@@@", "bad base64"),
        ("data:image/jpeg;base64,Zm9v!", "bad base64 character"),
        ("data:image/jpeg;base64,", "empty"),
        ("data:image/jpeg," + "abcd", "not base64 encoded"),
        ("data:text/plain;base64," + base64.b64encode(b"hello").decode(), "not an image mime"),
        (data_uri(b"just some text, not a picture"), "not an image"),
        (data_uri(make_image("BMP"), "image/bmp"), "unsupported format"),
        (base64.b64encode(make_image("BMP")).decode(), "unsupported format, bare"),
        (data_uri(make_image("PNG"), "image/jpeg"), "a PNG declared as JPEG"),
        (data_uri(make_image()[:60]), "truncated JPEG"),
        ("data:image/jpeg;base64,ＡＢＣＤ", "non-ASCII"),
    ],
)
def test_store_refused_payload_raises_and_stores_nothing(
    tmp_path: Path, uri: str, why: str
) -> None:
    """Anything that is not a supported, well-declared picture is refused."""
    with pytest.raises(PayloadRefused):
        store(uri, tmp_path)
    assert_nothing_stored(tmp_path)


def test_store_too_many_bytes_refused(tmp_path: Path) -> None:
    """More decoded bytes than max_bytes is refused."""
    raw = make_image("PNG", (64, 64))
    with pytest.raises(PayloadRefused):
        store(data_uri(raw, "image/png"), tmp_path, max_bytes=len(raw) - 1)
    assert store(data_uri(raw, "image/png"), tmp_path, max_bytes=len(raw))


@pytest.mark.parametrize("side", [10_000, 50_000, 2_000_000])
def test_store_decompression_bomb_refused_without_decoding(tmp_path: Path, side: int) -> None:
    """A tiny file whose header claims a huge picture is refused from its header."""
    with pytest.raises(PayloadRefused):
        store(data_uri(png_claiming(side, side), "image/png"), tmp_path)
    assert_nothing_stored(tmp_path)


def test_store_pixels_over_limit_refused(tmp_path: Path) -> None:
    """A picture with more pixels than max_pixels is refused."""
    with pytest.raises(PayloadRefused):
        store(data_uri(make_image("PNG", (40, 30)), "image/png"), tmp_path, max_pixels=1199)


def test_store_animation_pixels_summed_over_frames(tmp_path: Path) -> None:
    """max_pixels counts every frame of an animation."""
    uri = data_uri(animated_gif(20), "image/gif")
    with pytest.raises(PayloadRefused):
        store(uri, tmp_path, max_pixels=1000)
    assert store(uri, tmp_path, max_pixels=1200)


def test_image_url_relative_or_public() -> None:
    """The URL is /uploads/<rel>, or absolute under public_url."""
    assert image_url("ab/abc.jpg", "") == "/uploads/ab/abc.jpg"
    assert image_url("ab/abc.jpg", "https://x.example/") == "https://x.example/uploads/ab/abc.jpg"


def test_remove_image_deletes_only_stored_paths(tmp_path: Path) -> None:
    """remove_image deletes a stored picture and ignores anything else."""
    rel = store(data_uri(make_image()), tmp_path)
    outside = tmp_path / "keep.txt"
    outside.write_text("x")
    remove_image("../keep.txt", tmp_path)
    remove_image(rel, tmp_path)
    remove_image(rel, tmp_path)
    assert not (tmp_path / rel).exists() and outside.exists()
