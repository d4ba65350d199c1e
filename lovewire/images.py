"""Pictures sent as data URIs: decode, check, convert to sRGB, strip, store by content hash.

Three steps, so that the costly one can run elsewhere:
- `parse_data_uri`: the header (at most `HEADER_MAX` characters, no regex) and the base64,
  linear in the input and cheap; the server runs it in a thread.
- `clean_picture`: counts scans and frames from the bytes, then decodes and re-encodes
  every frame in sRGB with no metadata. This is the work a hostile picture can make
  costly: the server runs it in a worker process under a budget (`lovewire/imagepool.py`).
- `picture_path`: the cleaned bytes' name, by their hash; `lovewire.media` stores them.
`store_image` chains the three and writes a file, in the calling thread (tools and tests).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageCms, ImageSequence

from lovewire.errors import PayloadRefused

__all__ = [
    "HEADER_MAX",
    "MEDIA_PATH",
    "Limits",
    "clean_picture",
    "image_url",
    "parse_data_uri",
    "picture_path",
    "remove_image",
    "store_image",
    "write_file",
    "write_picture",
]

#: A stored picture's path relative to the media directory: `ab/<sha256>.<ext>`.
MEDIA_PATH = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{16,64}\.(?:jpg|png|gif|webp)$")

#: The longest data URI header read, `data:` to the comma included; a longer one is refused.
HEADER_MAX = 256

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
#: One pass over the base64: URL-safe letters become standard ones, white space goes.
_BASE64_TABLE = bytes.maketrans(b"-_", b"+/")
_BLANKS = b" \t\n\r\x0b\x0c"
#: A marker after entropy-coded JPEG data: 0xFF then neither a stuffed 0, a restart nor fill.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: Above this many pixels a JPEG is written without optimized Huffman tables, which would
#: make libjpeg keep every coefficient of the picture in memory.
_OPTIMIZE_MAX = 16_000_000


@dataclass(frozen=True, slots=True)
class Limits:
    """What one picture may hold: pixels summed over frames, frames, JPEG scans."""

    max_pixels: int = 50_000_000
    max_frames: int = 1000
    max_scans: int = 100


def parse_data_uri(data_uri: str, max_bytes: int) -> tuple[str | None, bytes]:
    """Return (declared Pillow format or None, decoded bytes) of a data URI or bare base64."""
    text = data_uri.lstrip()
    declared = None
    if text[:5].lower() == "data:":
        comma = text.find(",", 0, HEADER_MAX)
        if comma < 0:
            raise PayloadRefused("not a data URI, or its header is too long")
        mime, *params = text[5:comma].split(";")
        if "base64" not in (p.strip().lower() for p in params):
            raise PayloadRefused("a data URI must be base64")
        declared = _MIME_FORMATS.get(mime.strip().lower())
        if declared is None:
            raise PayloadRefused("not a supported image type")
        text = text[comma + 1 :]
    try:
        encoded = text.encode("ascii").translate(_BASE64_TABLE, _BLANKS)
    except UnicodeEncodeError:
        raise PayloadRefused("bad base64") from None
    if len(encoded) // 4 * 3 > max_bytes + 2:
        raise PayloadRefused("picture too large")
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


def _jpeg_scans(raw: bytes, limit: int) -> int:
    """Count a JPEG's scans (SOS segments) from its markers, stopping past `limit`."""
    if raw[:2] != b"\xff\xd8":
        return 0
    scans, pos, end = 0, 2, len(raw)
    while pos + 4 <= end and scans <= limit:
        if raw[pos] != 0xFF or raw[pos + 1] == 0xFF:
            found = _JPEG_MARKER.search(raw, pos)
            if found is None:
                break
            pos = found.start()
            continue
        marker = raw[pos + 1]
        if marker == 0xD9:
            break
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        pos += 2 + int.from_bytes(raw[pos + 2 : pos + 4], "big")
        if marker == 0xDA:
            scans += 1
            found = _JPEG_MARKER.search(raw, pos)
            if found is None:
                break
            pos = found.start()
    return scans


def _skip_sub_blocks(raw: bytes, pos: int) -> int:
    """The position after a GIF chain of data sub-blocks (each led by its length)."""
    end = len(raw)
    while pos < end:
        size = raw[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return end


def _gif_frames(raw: bytes, limit: int) -> int:
    """Count a GIF's image descriptors from its blocks, stopping past `limit`."""
    if len(raw) < 13:
        return 0
    pos = 13
    if raw[10] & 0x80:
        pos += 3 << ((raw[10] & 7) + 1)
    frames, end = 0, len(raw)
    while pos < end and frames <= limit:
        block = raw[pos]
        if block == 0x2C:  # image descriptor, local colour table, LZW code size, data
            frames += 1
            if pos + 10 > end:
                break
            flags = raw[pos + 9]
            pos += 10
            if flags & 0x80:
                pos += 3 << ((flags & 7) + 1)
            pos = _skip_sub_blocks(raw, pos + 1)
        elif block == 0x21:  # extension: label, then sub-blocks
            pos = _skip_sub_blocks(raw, pos + 2)
        else:  # trailer, or garbage Pillow will not read past either
            break
    return frames


def _open(raw: bytes, limits: Limits) -> Image.Image:
    """Open from the headers only, refusing what would decode to too much work."""
    if raw[:2] == b"\xff\xd8" and _jpeg_scans(raw, limits.max_scans) > limits.max_scans:
        raise PayloadRefused("too many JPEG scans")
    if raw[:4] == b"GIF8" and _gif_frames(raw, limits.max_frames) > limits.max_frames:
        raise PayloadRefused("too many frames")
    max_pixels = limits.max_pixels
    try:
        image = Image.open(io.BytesIO(raw), formats=_OPEN_FORMATS)
        width, height = image.size
        if width <= 0 or height <= 0 or width * height > max_pixels:
            raise PayloadRefused("too many pixels")
        # Every format counts its frames from headers here; GIF's were bounded above.
        frames = int(getattr(image, "n_frames", 1))
    except PayloadRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadRefused("too many pixels") from None
    except Exception:
        raise PayloadRefused("not a supported image") from None
    if frames > limits.max_frames:
        raise PayloadRefused("too many frames")
    if width * height * frames > max_pixels:
        raise PayloadRefused("too many pixels summed over the frames")
    return image


class _Srgb:
    """Converts frames from an embedded ICC profile to sRGB; nothing to do without one."""

    def __init__(self, icc: bytes | None) -> None:
        self.source: ImageCms.ImageCmsProfile | None = None
        self._transforms: dict[str, ImageCms.ImageCmsTransform | None] = {}
        if icc:
            try:
                self.source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            except Exception:
                self.source = None  # not a profile: the pixels are taken as sRGB

    def __call__(self, frame: Image.Image, alpha: bool) -> Image.Image:
        if self.source is None:
            return frame
        if frame.mode not in ("RGB", "RGBA", "CMYK", "L"):
            frame = frame.convert("RGBA" if alpha else "RGB")
        out_mode = "RGBA" if frame.mode == "RGBA" else "RGB"
        if frame.mode not in self._transforms:
            try:
                self._transforms[frame.mode] = ImageCms.buildTransform(
                    self.source, _srgb_profile(), frame.mode, out_mode
                )
            except Exception:
                self._transforms[frame.mode] = None  # a profile of another colour space
        transform = self._transforms[frame.mode]
        if transform is None:
            return frame
        if frame.mode == out_mode:
            ImageCms.applyTransform(frame, transform, inPlace=True)
            return frame
        converted = ImageCms.applyTransform(frame, transform)
        assert converted is not None
        return converted


_SRGB: list[ImageCms.ImageCmsProfile] = []


def _srgb_profile() -> ImageCms.ImageCmsProfile:
    if not _SRGB:
        _SRGB.append(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")))
    return _SRGB[0]


def _has_alpha(frame: Image.Image) -> bool:
    return "A" in frame.getbands() or "transparency" in frame.info


def _clean(
    frame: Image.Image, target: str, srgb: _Srgb, turn: Image.Transpose | None, reuse: bool
) -> Image.Image:
    """One frame's pixels, upright, in sRGB, with no metadata; `reuse`: may be `frame`."""
    transparency = frame.info.get("transparency")
    alpha = _has_alpha(frame)
    out = frame.transpose(turn) if turn is not None else frame
    if out is frame and not reuse:
        out = frame.copy()
    converted = srgb(out, alpha)
    if target == "JPEG" and converted.mode not in ("L", "RGB", "CMYK"):
        converted = converted.convert("RGB")
    converted.info = {}
    if transparency is not None and converted.mode == frame.mode:
        converted.info["transparency"] = transparency
    return converted


def _orientation(image: Image.Image, target: str) -> Image.Transpose | None:
    if target not in ("JPEG", "WEBP", "PNG"):
        return None
    try:
        return _TRANSPOSE.get(int(image.getexif().get(_ORIENTATION, 1)))
    except Exception:
        return None


def _reencode(image: Image.Image, max_pixels: int) -> tuple[str, bytes]:
    """Decode every frame and write it again in sRGB without metadata; return (ext, bytes)."""
    fmt = image.format or ""
    target = "JPEG" if fmt == "MPO" else fmt
    try:
        srgb = _Srgb(image.info.get("icc_profile") if target != "GIF" else None)
        turn = _orientation(image, target)
        loop = image.info.get("loop", 0)
        lossless = bool(image.info.get("lossless"))
        frames: list[Image.Image] = []
        durations: list[int] = []
        if target == "JPEG" or int(getattr(image, "n_frames", 1)) == 1:
            image.load()
            width, height = image.size
            frames.append(_clean(image, target, srgb, turn, reuse=True))
            if frames[0] is not image:
                image.close()  # free the decoded pixels before encoding
        else:
            width, height = image.size
            pixels = 0
            for frame in ImageSequence.Iterator(image):
                pixels += frame.size[0] * frame.size[1]
                if pixels > max_pixels:
                    raise PayloadRefused("too many pixels summed over the frames")
                frame.load()
                durations.append(int(frame.info.get("duration", 0) or 0))
                frames.append(_clean(frame, target, srgb, turn, reuse=False))
        out = io.BytesIO()
        options: dict[str, Any] = {}
        if target == "JPEG":
            options.update(quality=90, optimize=width * height <= _OPTIMIZE_MAX)
        elif target == "WEBP":
            options.update(quality=90, lossless=lossless)
        if len(frames) > 1:
            options.update(save_all=True, append_images=frames[1:], duration=durations, loop=loop)
        frames[0].save(out, format=target, **options)
    except PayloadRefused:
        raise
    except MemoryError:
        raise PayloadRefused("picture too large to decode") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadRefused("too many pixels") from None
    except Exception:
        raise PayloadRefused("not a valid image") from None
    return _EXTENSIONS[target], out.getvalue()


def clean_picture(raw: bytes, declared: str | None, limits: Limits) -> tuple[str, bytes]:
    """Check a picture's bytes and re-encode it in sRGB, stripped; return (ext, bytes)."""
    image = _open(raw, limits)
    with image:
        real = "JPEG" if image.format == "MPO" else image.format
        if declared is not None and declared != real:
            raise PayloadRefused("the declared type is not the picture's real format")
        return _reencode(image, limits.max_pixels)


def picture_path(data: bytes, ext: str) -> str:
    """A cleaned picture's path in the media store: `ab/<sha256>.<ext>` of its bytes."""
    digest = hashlib.sha256(data).hexdigest()
    return f"{digest[:2]}/{digest}.{ext}"


def write_file(final: Path, data: bytes) -> None:
    """Write `data` at `final` atomically (a temporary file, fsync, rename), mode 0644."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-", suffix=final.suffix)
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


def write_picture(data: bytes, ext: str, media_dir: Path) -> str:
    """Write atomically under the bytes' hash; return the relative path."""
    rel = picture_path(data, ext)
    final = media_dir / rel
    if not final.is_file():
        write_file(final, data)
    return rel


def store_image(data_uri: str, media_dir: Path, *, max_bytes: int, max_pixels: int) -> str:
    """Check a data URI (or bare base64) picture, store it cleaned; return `ab/<hash>.<ext>`."""
    declared, raw = parse_data_uri(data_uri, max_bytes)
    ext, data = clean_picture(raw, declared, Limits(max_pixels=max_pixels))
    return write_picture(data, ext, media_dir)


def image_url(rel_path: str, public_url: str) -> str:
    """The URL clients fetch a stored picture at: `/uploads/<rel>`, absolute if configured."""
    path = f"/uploads/{rel_path}"
    return public_url.rstrip("/") + path if public_url else path


def remove_image(rel_path: str, media_dir: Path) -> None:
    """Delete a stored picture; a path that is not a stored picture's is ignored."""
    if MEDIA_PATH.match(rel_path):
        (media_dir / rel_path).unlink(missing_ok=True)
