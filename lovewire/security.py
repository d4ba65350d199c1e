"""Tokens and verification codes: random, stored only as hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
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
    """Read the server's secret key, creating it (mode 0600) on first start."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(SECRET_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key
