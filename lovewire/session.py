"""Who is calling: one session per WebSocket connection, or one per HTTP request."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Protocol

from lovewire.storage.records import StoredPush

__all__ = ["Login", "LoginWatcher", "Replay", "Session", "TokenBucket"]

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
    """Pushes to send after the response that logged a socket in: `pushes`, read by the
    login, are the stored ones up to `upto`; live ones after it follow.

    `after` None means the pushes never written to any socket of the user.
    """

    user_id: int
    after: int | None
    upto: int
    pushes: tuple[StoredPush, ...] = ()


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


class LoginWatcher(Protocol):
    """What follows a session's login: its socket (an HTTP request's session has none)."""

    def login_changed(self, previous: Login | None, current: Login | None) -> None:
        """The session's login went from `previous` to `current` (None: logged out)."""


class Session:
    """The caller of a request: plain state, owned by its socket or its HTTP request.

    Logging in and out happens here and only here, whoever causes it (a request, another
    socket's logout, expiry, eviction); the socket's `watcher` is told of each change.
    """

    def __init__(self, addr: str, watcher: LoginWatcher | None = None) -> None:
        self.id = next(_ids)
        self.addr = addr
        self.watcher = watcher
        self.login: Login | None = None
        #: The tel this session last asked a login code for, and when (monotonic per socket).
        self.sms_tel: str | None = None
        self.sms_at: float | None = None
        self.bucket: TokenBucket | None = None
        #: The request budget shared by every session of the client's address.
        self.addr_bucket: TokenBucket | None = None
        #: The replay the last login owes, sent after its response by a socket (an HTTP
        #: request has no pushes and drops it).
        self.replay: Replay | None = None
        #: Pushes committed by this session's request, published after its response.
        self.outbox: list[StoredPush] = []

    @property
    def user_id(self) -> int | None:
        return self.login.user_id if self.login else None

    def log_in(self, login: Login) -> None:
        """Become logged in as login.user_id (a new token of the same user included)."""
        previous, self.login = self.login, login
        if self.watcher is not None:
            self.watcher.login_changed(previous, login)

    def log_out(self) -> None:
        """Forget the login and the replay it owed; the socket stops getting pushes."""
        previous, self.login = self.login, None
        self.replay = None
        if self.watcher is not None and previous is not None:
            self.watcher.login_changed(previous, None)
