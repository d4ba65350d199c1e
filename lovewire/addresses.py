"""The client's address, through trusted reverse proxies."""

from __future__ import annotations

__all__ = ["client_address"]


def client_address(peer: str | None, forwarded_for: str | None, trusted: tuple[str, ...]) -> str:
    """The peer, or when the peer is a trusted proxy, the last untrusted X-Forwarded-For hop."""
    addr = peer or "unknown"
    if forwarded_for and addr in trusted:
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            addr = hop
            if hop not in trusted:
                break
    return addr
