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

    __slots__ = ("acting", "log", "services", "session")

    def __init__(self, services: Services, session: Session) -> None:
        self.services = services
        self.session = session
        #: The login a request needing one acts as (its `token`, or the socket's): each of
        #: its write units first checks, in the database, that this token is still live.
        self.acting: Login | None = None
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
    async def unit(self, *, check_login: bool = True) -> AsyncIterator[Unit]:
        """A write transaction; the pushes it stored go out after the request's response.

        A request acting as the session's login writes only while its token is live: the
        token is checked inside the transaction, first (BadToken if it was revoked or
        expired since the request was authenticated, even by another process). Handlers
        that check the token themselves (they revoke or refresh it) pass check_login=False.
        """
        login = self.acting if check_login else None
        async with self.store.unit() as tx:
            if login is not None and not await tx.tokens.hold(login.token_id, self.now()):
                raise BadToken("token revoked or expired")
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
            record = await tx.tokens.live_session(token_hash, now)
        if record is None or record.user_id is None:
            raise BadToken("token not valid")
        return Login(record.user_id, record.id, token_hash, record.expires_ts)

    def end_expired_session(self) -> None:
        """Log out every socket of the session's expired token, this one included."""
        login = self.session.login
        if login is not None:
            self.hub.end_sessions(login.user_id, [login.token_id], "expired")
            self.session.log_out()

    def replace_login(self, old: Login, new: Login) -> None:
        """Log the session in with `new`, minted by a unit that found `old` live.

        If the session was ended while that unit ran, its user's tokens were revoked
        after the unit checked `old` (a logout-all or a phone change, whose hub.end_sessions
        follows its commit and whose generation bump killed `new` too): BadToken, and the
        session stays logged out. A revocation committed later ends the session itself.
        """
        if self.session.login is not old:
            raise BadToken("session ended meanwhile")
        self.session.log_in(new)

    def _require(self, login: Login, live: bool) -> None:
        if self.session.login is not login:
            raise BadToken("session ended meanwhile")
        if not live:
            self.session.log_out()
            raise BadToken("token revoked meanwhile")

    async def log_in(self, login: Login, last_seq: int | None = None) -> tuple[int, bool]:
        """Log the session in and plan the replay; return (S, recovered) of section 5.

        The token is read again after the socket joined the hub: a revocation committed
        before that read is seen, one committed after it finds the socket in the hub (its
        hub.end_sessions follows its commit). Either way a revoked token never stays
        logged in. BadToken (and logged out) if it is no longer live.
        """
        self.session.log_in(login)
        async with self.store.read() as tx:
            upto = await tx.pushes.current_seq(login.user_id)
            oldest = await tx.pushes.oldest_seq(login.user_id)
            live = await tx.tokens.live_session(login.token_hash, self.now())
        self._require(login, live is not None)
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
