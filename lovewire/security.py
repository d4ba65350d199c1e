"""Tokens and verification codes: random, stored only as hashes, compared in constant time."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

__all__ = ["SECRET_BYTES", "CodeHasher", "hash_token", "load_secret", "new_code", "new_token"]

#: The length of the key codes are hashed with.
SECRET_BYTES = 32


def new_token() -> str:
    """A fresh opaque token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    """The stored form of a token (tokens are high-entropy, so a plain hash suffices)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def new_code() -> str:
    """Six random digits."""
    return f"{secrets.randbelow(1_000_000):06d}"


class CodeHasher:
    """Keyed hashes of codes: a leaked database alone does not reveal live codes."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def hash(self, tel: str, code: str) -> bytes:
        return hmac.new(self._key, f"{tel}:{code}".encode(), hashlib.sha256).digest()

    def matches(self, tel: str, code: str, stored: bytes) -> bool:
        return hmac.compare_digest(self.hash(tel, code), stored)


def load_secret(path: Path) -> bytes:
    """Read the server's secret key, creating it (mode 0600) on first start.

    Made whole in a temporary file, then linked to `path` unless another caller got there
    first: racing callers all read the one key that was linked.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(SECRET_BYTES))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return path.read_bytes()
