"""The push hub: the one place that knows the open sockets and which belong to which user.

Handlers publish after their transaction commits; the hub hands each frame to the
subscribers' own bounded queues and never waits on a socket. `LocalHub` serves one
process; a hub that fans out across processes (Redis) implements the same interface.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import tzinfo
from typing import Protocol

from lovewire.clock import Clock
from lovewire.config import Settings
from lovewire.ingress import ADDR_REQUESTS_FACTOR
from lovewire.pushes import render_push
from lovewire.session import Session
from lovewire.storage.records import StoredPush
from protocol.pushes import SessionEndNotify

__all__ = ["Hub", "LocalHub", "Subscriber", "hub_from_settings"]

log = logging.getLogger(__name__)


class Subscriber(Protocol):
    """An open socket, as the hub sees it (pushes reach it once it is attached to a user)."""

    @property
    def session(self) -> Session:
        """The socket's session: who is logged in on it, with which token."""

    def deliver(self, push: StoredPush, frame: str) -> None:
        """Queue a stored push (dropped if its seq was already sent)."""

    def send_notice(self, frame: str) -> None:
        """Queue an unsequenced frame."""

    def send_ephemeral(self, frame: str) -> None:
        """Send an unstored frame to a logged-in socket now, or drop it if the socket is
        slow (never queued behind what waits, never closing it)."""

    def end_session(self, frame: str) -> None:
        """Log out, then queue the session_end_notify frame."""

    def evict(self) -> None:
        """Close the socket: its user has too many."""

    def catch_up(self) -> None:
        """Send the user's stored pushes this socket has not got yet.

        For pushes a networked hub may have missed (its bus was down meanwhile).
        """


class Hub(ABC):
    @abstractmethod
    def register(self, sub: Subscriber) -> None:
        """Know an open socket, logged in or not (broadcasts reach it)."""

    @abstractmethod
    def unregister(self, sub: Subscriber) -> None:
        """Forget a socket that is gone."""

    @abstractmethod
    def attach(self, user_id: int, sub: Subscriber) -> None: ...

    @abstractmethod
    def detach(self, user_id: int, sub: Subscriber) -> None: ...

    @abstractmethod
    async def publish(self, pushes: Iterable[StoredPush]) -> None:
        """Deliver committed pushes to their users' sockets.

        A coroutine, so that a hub sending to other processes does it in the caller's task
        (no hidden task to lose or order); it never waits on a socket: local sockets get
        the frames in their own bounded queues before it returns.
        """

    @abstractmethod
    async def end_sessions(
        self,
        user_id: int,
        token_ids: Iterable[int] | None,
        reason: str,
        keep: Session | None = None,
    ) -> None:
        """Log out the user's sockets using those tokens (all if None), but `keep`'s."""

    @abstractmethod
    async def broadcast(self, frame: str) -> int:
        """Send an unsequenced frame to every open socket, logged in or not; return how many."""

    @abstractmethod
    async def notify(self, user_id: int, frame: str) -> None:
        """Send an ephemeral frame (not stored, no seq: `chat_typing_notify`) to the user's
        sockets wherever they are; a slow socket drops it. Never waits on a socket."""

    async def joined(self, session: Session) -> None:
        """The session's socket was attached to its user: return once pushes published
        for that user anywhere reach it (a networked hub subscribes), and once the
        user's sockets are counted everywhere (the oldest beyond the limit is closed).

        Called after the login, before the user's current seq is read for a replay.
        Nothing to wait for in one process, nor for a session with no socket.
        """

    # -- per-address limits across processes (one process: nothing to add) --------------

    async def address_opened(self, addr: str) -> int:
        """Count a socket of client address `addr` opened here; return how many it has
        open on the other processes."""
        return 0

    async def address_closed(self, addr: str) -> None:
        """A socket of `addr` counted by `address_opened` closed."""

    def address_request(self, addr: str, now: float) -> float:
        """Count one request of `addr` here, at the server's time `now`; the seconds to
        wait when the address is over its request rate across every process (0: within
        it, or one process)."""
        return 0.0

    async def start(self) -> None:
        """Connect what a hub needs."""

    async def close(self) -> None:
        """Disconnect it."""


class LocalHub(Hub):
    """The open sockets of this process, and its subscribers per user, oldest first."""

    def __init__(self, zone: tzinfo, sockets_per_user: int) -> None:
        self.zone = zone
        self.sockets_per_user = sockets_per_user
        self._open: dict[Subscriber, None] = {}
        self._subs: dict[int, dict[Subscriber, None]] = {}

    def register(self, sub: Subscriber) -> None:
        self._open[sub] = None

    def unregister(self, sub: Subscriber) -> None:
        self._open.pop(sub, None)

    def attach(self, user_id: int, sub: Subscriber) -> None:
        subs = self._subs.setdefault(user_id, {})
        subs[sub] = None
        while len(subs) > self.sockets_per_user:
            oldest = next(iter(subs))
            del subs[oldest]
            oldest.evict()

    def detach(self, user_id: int, sub: Subscriber) -> None:
        subs = self._subs.get(user_id)
        if subs is not None:
            subs.pop(sub, None)
            if not subs:
                del self._subs[user_id]

    async def publish(self, pushes: Iterable[StoredPush]) -> None:
        for push in pushes:
            self.deliver(push)

    async def end_sessions(
        self,
        user_id: int,
        token_ids: Iterable[int] | None,
        reason: str,
        keep: Session | None = None,
    ) -> None:
        self.end_local_sessions(user_id, token_ids, reason, keep)

    async def broadcast(self, frame: str) -> int:
        return self.notify_all(frame)

    async def notify(self, user_id: int, frame: str) -> None:
        self.notify_local(user_id, frame)

    # -- the same, in one step: for a networked hub handing on another process's message --

    def deliver(self, push: StoredPush) -> None:
        """Queue a committed push for the user's sockets here (the frame rendered once)."""
        subs = self._subs.get(push.user_id)
        if subs:
            frame = render_push(push, self.zone)
            for sub in list(subs):
                sub.deliver(push, frame)

    def end_local_sessions(
        self,
        user_id: int,
        token_ids: Iterable[int] | None,
        reason: str,
        keep: Session | None = None,
    ) -> None:
        """Log out the user's sockets here using those tokens (all if None), but `keep`'s."""
        subs = self._subs.get(user_id)
        if not subs:
            return
        wanted = None if token_ids is None else set(token_ids)
        frame = SessionEndNotify.model_validate({"reason": reason}).model_dump_json()
        for sub in list(subs):
            login = sub.session.login
            if sub.session is keep or login is None:
                continue
            if wanted is not None and login.token_id not in wanted:
                continue
            self.detach(user_id, sub)
            sub.end_session(frame)

    def notify_local(self, user_id: int, frame: str) -> None:
        """Hand an ephemeral frame to the user's sockets here (each drops it if slow)."""
        for sub in list(self._subs.get(user_id, ())):
            sub.send_ephemeral(frame)

    def notify_all(self, frame: str) -> int:
        """Queue an unsequenced frame for every open socket here; return how many."""
        subs = list(self._open)
        for sub in subs:
            sub.send_notice(frame)
        return len(subs)

    def subscribers(self, user_id: int) -> list[Subscriber]:
        """The user's sockets in this process, oldest first."""
        return list(self._subs.get(user_id, ()))

    @property
    def users_online(self) -> int:
        return len(self._subs)


def hub_from_settings(settings: Settings, clock: Clock) -> Hub:
    """The hub `settings.redis_url` names: Redis between processes, or this process alone."""
    if settings.redis_url:
        from lovewire.redishub import RedisHub

        return RedisHub(
            settings.redis_url,
            settings.redis_prefix,
            settings.zone,
            settings.sockets_per_user,
            addr_requests_per_second=settings.requests_per_second * ADDR_REQUESTS_FACTOR,
            clock=clock.now,
        )
    return LocalHub(settings.zone, settings.sockets_per_user)
