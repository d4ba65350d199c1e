"""Pictures sent as data URIs: decode, check, strip metadata, store by content hash.

`store_image` is CPU-bound: callers run it with `await asyncio.to_thread(...)`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, ImageSequence

from lovewire.errors import PayloadRefused

__all__ = ["MEDIA_PATH", "image_url", "remove_image", "store_image"]

#: A stored picture's path relative to the media directory: `ab/<sha256>.<ext>`.
MEDIA_PATH = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{16,64}\.(?:jpg|png|gif|webp)$")

#: Declared mime types and the Pillow format each must really be.
_MIME_FORMATS = {
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/pjpeg": "JPEG",
    "image/png": "PNG",
    "image/apng": "PNG",
    "image/x-png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
_OPEN_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")
_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}
_DATA_URI = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*),", re.IGNORECASE)
_BLANKS = re.compile(rb"[\s]+")
#: Pillow's info keys that are pixels, not metadata, and survive re-encoding.
_KEEP_INFO = ("transparency", "icc_profile")


def _decode(data_uri: str, max_bytes: int) -> tuple[str | None, bytes]:
    """Return (declared format or None, decoded bytes)."""
    text = data_uri.strip()
    declared = None
    if text[:5].lower() == "data:":
        match = _DATA_URI.match(text)
        if match is None:
            raise PayloadRefused("not a data URI")
        mime = match.group(1).strip().lower()
        params = [p.strip().lower() for p in match.group(2).split(";") if p.strip()]
        if "base64" not in params:
            raise PayloadRefused("a data URI must be base64")
        declared = _MIME_FORMATS.get(mime)
        if declared is None:
            raise PayloadRefused("not a supported image type")
        text = text[match.end() :]
    try:
        encoded = _BLANKS.sub(b"", text.encode("ascii"))
    except UnicodeEncodeError:
        raise PayloadRefused("bad base64") from None
    if len(encoded) // 4 * 3 > max_bytes + 2:
        raise PayloadRefused("picture too large")
    encoded = encoded.translate(bytes.maketrans(b"-_", b"+/"))
    encoded += b"=" * (-len(encoded) % 4)
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadRefused("bad base64") from None
    if not raw:
        raise PayloadRefused("empty picture")
    if len(raw) > max_bytes:
        raise PayloadRefused("picture too large")
    return declared, raw


def _open(raw: bytes, max_pixels: int) -> Image.Image:
    """Open from the header only, refusing what would decode to too many pixels."""
    try:
        image = Image.open(io.BytesIO(raw), formats=_OPEN_FORMATS)
        width, height = image.size
        if width <= 0 or height <= 0 or width * height > max_pixels:
            raise PayloadRefused("too many pixels")
        # GIF counts its frames by walking their headers; nothing is decoded here.
        frames = int(getattr(image, "n_frames", 1))
    except PayloadRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadRefused("too many pixels") from None
    except Exception:
        raise PayloadRefused("not a supported image") from None
    if width * height * frames > max_pixels:
        raise PayloadRefused("too many pixels summed over the frames")
    return image


def _clean(frame: Image.Image, target: str) -> Image.Image:
    """A copy of one frame with its pixels and no metadata, upright."""
    upright = ImageOps.exif_transpose(frame) if target in ("JPEG", "WEBP", "PNG") else None
    copy = (upright if upright is not None else frame).copy()
    if target == "JPEG" and copy.mode not in ("L", "RGB", "CMYK"):
        copy = copy.convert("RGB")
    copy.info = {k: frame.info[k] for k in _KEEP_INFO if k in frame.info}
    return copy


def _reencode(image: Image.Image, max_pixels: int) -> tuple[str, bytes]:
    """Decode every frame and write it again without metadata; return (ext, bytes)."""
    fmt = image.format or ""
    target = "JPEG" if fmt == "MPO" else fmt
    frames: list[Image.Image] = []
    durations: list[int] = []
    pixels = 0
    try:
        sequence = [image] if target == "JPEG" else ImageSequence.Iterator(image)
        for frame in sequence:
            pixels += frame.size[0] * frame.size[1]
            if pixels > max_pixels:
                raise PayloadRefused("too many pixels summed over the frames")
            frame.load()
            durations.append(int(frame.info.get("duration", 0) or 0))
            frames.append(_clean(frame, target))
        loop = image.info.get("loop", 0)
        out = io.BytesIO()
        options: dict[str, Any] = {}
        icc = image.info.get("icc_profile")
        if icc and target in ("JPEG", "PNG", "WEBP"):
            options["icc_profile"] = icc
        if target == "JPEG":
            options.update(quality=90, optimize=True)
        elif target == "WEBP":
            options.update(quality=90, lossless=bool(image.info.get("lossless")))
        if len(frames) > 1:
            options.update(save_all=True, append_images=frames[1:], duration=durations, loop=loop)
        frames[0].save(out, format=target, **options)
    except PayloadRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadRefused("too many pixels") from None
    except Exception:
        raise PayloadRefused("not a valid image") from None
    return _EXTENSIONS[target], out.getvalue()


def _write(data: bytes, ext: str, media_dir: Path) -> str:
    """Write atomically under the bytes' hash; return the relative path."""
    digest = hashlib.sha256(data).hexdigest()
    rel = f"{digest[:2]}/{digest}.{ext}"
    final = media_dir / rel
    if final.is_file():
        return rel
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-", suffix=f".{ext}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return rel


def store_image(data_uri: str, media_dir: Path, *, max_bytes: int, max_pixels: int) -> str:
    """Check a data URI (or bare base64) picture, store it cleaned; return `ab/<hash>.<ext>`."""
    declared, raw = _decode(data_uri, max_bytes)
    image = _open(raw, max_pixels)
    with image:
        real = "JPEG" if image.format == "MPO" else image.format
        if declared is not None and declared != real:
            raise PayloadRefused("the declared type is not the picture's real format")
        ext, data = _reencode(image, max_pixels)
    return _write(data, ext, media_dir)


def image_url(rel_path: str, public_url: str) -> str:
    """The URL clients fetch a stored picture at: `/uploads/<rel>`, absolute if configured."""
    path = f"/uploads/{rel_path}"
    return public_url.rstrip("/") + path if public_url else path


def remove_image(rel_path: str, media_dir: Path) -> None:
    """Delete a stored picture; a path that is not a stored picture's is ignored."""
    if MEDIA_PATH.match(rel_path):
        (media_dir / rel_path).unlink(missing_ok=True)
