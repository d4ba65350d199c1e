"""What a handler sees: the caller, storage, the push hub, the SMS gateway, settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lovewire.clock import Clock
from lovewire.config import Settings
from lovewire.errors import BadToken
from lovewire.hub import Hub
from lovewire.imagepool import ImagePool
from lovewire.metrics import Metrics
from lovewire.pushes import push_body
from lovewire.security import CodeHasher, hash_token
from lovewire.session import Login, Replay, Session
from lovewire.sms import SmsGateway
from lovewire.storage.base import Store, Unit
from lovewire.storage.records import StoredPush
from protocol.base import Notify

__all__ = ["MAX_REPLAY", "Context", "Services"]

log = logging.getLogger(__name__)

#: The most pushes one replay sends (section 5).
MAX_REPLAY = 1000


@dataclass(slots=True)
class Services:
    """The process-wide parts every request shares."""

    settings: Settings
    store: Store
    hub: Hub
    sms: SmsGateway
    clock: Clock
    codes: CodeHasher
    pictures: ImagePool
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def media_dir(self) -> Path:
        return self.settings.data_dir / "uploads"


class Context:
    """One request's world. Handlers get nothing else."""

    __slots__ = ("log", "services", "session")

    def __init__(self, services: Services, session: Session) -> None:
        self.services = services
        self.session = session
        self.log = logging.LoggerAdapter(log, {"conn": session.id})

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def hub(self) -> Hub:
        return self.services.hub

    @property
    def sms(self) -> SmsGateway:
        return self.services.sms

    def now(self) -> int:
        """The server's clock, whole Unix seconds."""
        return int(self.services.clock.now())

    @property
    def user_id(self) -> int:
        """The logged-in caller; BadToken if there is none."""
        login = self.session.login
        if login is None:
            raise BadToken("not logged in")
        return login.user_id

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[Unit]:
        """A write transaction; the pushes it stored go out after the request's response."""
        async with self.store.unit() as tx:
            yield tx
        self.session.outbox.extend(tx.new_pushes)

    async def push(self, tx: Unit, user_id: int, notify: Notify) -> StoredPush:
        """Store a push for user_id in tx; it is delivered after the commit."""
        return await tx.push(user_id, push_body(notify), self.now())

    async def check_token(self, token: str) -> Login:
        """The login a session token stands for; BadToken if it is not valid now."""
        token_hash = hash_token(token)
        now = self.now()
        current = self.session.login
        if current is not None and current.token_hash == token_hash:
            if current.expires_ts <= now:
                self.end_expired_session()
                raise BadToken("token expired")
            return current
        async with self.store.read() as tx:
            record = await tx.tokens.by_hash(token_hash)
        if (
            record is None
            or record.kind != "session"
            or record.revoked
            or record.user_id is None
            or record.expires_ts <= now
        ):
            raise BadToken("token not valid")
        return Login(record.user_id, record.id, token_hash, record.expires_ts)

    def end_expired_session(self) -> None:
        """Log out every socket of the session's expired token, this one included."""
        login = self.session.login
        if login is not None:
            self.hub.end_sessions(login.user_id, [login.token_id], "expired")
            self.session.log_out()

    async def log_in(self, login: Login, last_seq: int | None = None) -> tuple[int, bool]:
        """Log the session in and plan the replay; return (S, recovered) of section 5."""
        self.session.log_in(login)
        async with self.store.read() as tx:
            upto = await tx.pushes.current_seq(login.user_id)
            oldest = await tx.pushes.oldest_seq(login.user_id)
        recovered = True
        if last_seq is not None:
            if last_seq > upto:
                recovered = False
            elif last_seq < upto:
                first_needed = last_seq + 1
                if oldest is None or oldest > first_needed or upto - last_seq > MAX_REPLAY:
                    recovered = False
        if self.session.live:
            self.session.replay = Replay(login.user_id, last_seq, upto)
        return upto, recovered
