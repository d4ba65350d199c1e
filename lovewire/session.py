"""Who is calling: one session per WebSocket connection, or one per HTTP request."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from lovewire.storage.records import StoredPush

__all__ = ["Login", "Replay", "Session", "TokenBucket"]

_ids = itertools.count(1)


@dataclass(slots=True)
class Login:
    """The user and token a session is logged in with."""

    user_id: int
    token_id: int
    token_hash: bytes
    expires_ts: int


@dataclass(frozen=True, slots=True)
class Replay:
    """Pushes to send after the response that logged a socket in.

    `after` None means the pushes never written to any socket of the user.
    """

    user_id: int
    after: int | None
    upto: int


class TokenBucket:
    """`rate` requests a second sustained, bursts up to `rate`."""

    __slots__ = ("_level", "_stamp", "rate")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self._level = rate
        self._stamp = now

    def take(self, now: float) -> float:
        """Take one token; return 0 if granted, else the seconds until one is available."""
        self._level = min(self.rate, self._level + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._level >= 1:
            self._level -= 1
            return 0.0
        return (1 - self._level) / self.rate

    def full(self, now: float) -> bool:
        """True if the bucket has refilled: forgetting it would change nothing."""
        return self._level + (now - self._stamp) * self.rate >= self.rate


class Session:
    """The caller of a request. Plain state; the WebSocket connection extends it."""

    #: True for a WebSocket connection, which gets pushes and replays.
    live = False

    def __init__(self, addr: str) -> None:
        self.id = next(_ids)
        self.addr = addr
        self.login: Login | None = None
        #: The tel this session last asked a login code for, and when (monotonic per socket).
        self.sms_tel: str | None = None
        self.sms_at: float | None = None
        self.bucket: TokenBucket | None = None
        #: The request budget shared by every session of the client's address.
        self.addr_bucket: TokenBucket | None = None
        self.replay: Replay | None = None
        #: Pushes committed by this session's request, published after its response.
        self.outbox: list[StoredPush] = []

    @property
    def user_id(self) -> int | None:
        return self.login.user_id if self.login else None

    def log_in(self, login: Login) -> None:
        """Become logged in as login.user_id."""
        self.login = login

    def log_out(self) -> None:
        """Forget the login; a live session stops getting pushes."""
        self.login = None
        self.replay = None
