"""Where stored pictures live: files in the data dir, or a table every process reaches.

A picture is stored under its content-hash path `ab/<sha256>.<ext>` (`images.picture_path`),
so storing the same bytes twice stores them once, and a path never changes meaning. The
store knows nothing of who uses a picture: `lovewire.uploads.forget_file` deletes one only
once no post and no avatar refers to it. `lovewire.storage.backends.media_from_settings`
picks the store beside the database: files with SQLite, PostgreSQL with PostgreSQL.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from pathlib import Path

from lovewire.images import MEDIA_PATH, write_file

__all__ = ["CONTENT_TYPES", "FileMedia", "MediaStore", "content_type", "is_media_path"]

#: The Content-Type a stored picture is served with, by its extension.
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp"}


def is_media_path(rel_path: str) -> bool:
    """Whether `rel_path` is a stored picture's path (nothing else is read or deleted)."""
    return MEDIA_PATH.match(rel_path) is not None


def content_type(rel_path: str) -> str:
    """The Content-Type of a stored picture's path."""
    return CONTENT_TYPES[rel_path.rsplit(".", 1)[1]]


class MediaStore(ABC):
    """Stored pictures by path: opened at start, closed at stop.

    Paths that are not a stored picture's are never found and never deleted; storing under
    one is a `ValueError`.
    """

    async def open(self) -> None:
        """Get ready (connect); the database's migrations have run already."""

    async def close(self) -> None:
        """Let go of what `open` took."""

    @abstractmethod
    async def put(self, rel_path: str, data: bytes) -> None:
        """Store `data` at `rel_path`; if it is there already, keep it (same hash, same bytes)."""

    @abstractmethod
    async def get(self, rel_path: str) -> bytes | None:
        """The bytes stored at `rel_path`, or None."""

    @abstractmethod
    async def exists(self, rel_path: str) -> bool:
        """Whether a picture is stored at `rel_path`."""

    @abstractmethod
    async def delete(self, rel_path: str) -> None:
        """Forget the picture at `rel_path`, if any."""

    def local_file(self, rel_path: str) -> Path | None:
        """The file to send for `rel_path` when the store keeps files (it may be missing);
        None when the bytes are to be read with `get`."""
        return None


class FileMedia(MediaStore):
    """Files under one directory (`<data_dir>/uploads`), written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _file(self, rel_path: str) -> Path | None:
        return self.root / rel_path if is_media_path(rel_path) else None

    async def put(self, rel_path: str, data: bytes) -> None:
        final = self._file(rel_path)
        if final is None:
            raise ValueError("not a stored picture's path")
        if not await asyncio.to_thread(final.is_file):
            await asyncio.to_thread(write_file, final, data)

    async def get(self, rel_path: str) -> bytes | None:
        file = self._file(rel_path)
        if file is None:
            return None
        try:
            return await asyncio.to_thread(file.read_bytes)
        except FileNotFoundError:
            return None

    async def exists(self, rel_path: str) -> bool:
        file = self._file(rel_path)
        return file is not None and await asyncio.to_thread(file.is_file)

    async def delete(self, rel_path: str) -> None:
        file = self._file(rel_path)
        if file is not None:
            await asyncio.to_thread(file.unlink, True)

    def local_file(self, rel_path: str) -> Path | None:
        return self._file(rel_path)
