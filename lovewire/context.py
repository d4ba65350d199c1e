"""What a handler sees: a facade over the caller, storage, pictures, the SMS gateway and settings.

Handlers get a `Context` and nothing else: the caller's identity and address, the
named operations that change its login, and the process-wide values they need. The
socket's state and the process's services stay behind it; the login state machine
lives in `lovewire.login`.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from lovewire.clock import Clock
from lovewire.config import Settings
from lovewire.errors import BadToken
from lovewire.hub import Hub
from lovewire.imagepool import ImagePool
from lovewire.login import MAX_REPLAY, LoggedIn, LoginMachine
from lovewire.media import MediaStore
from lovewire.metrics import Metrics
from lovewire.pushes import push_body
from lovewire.security import CodeHasher
from lovewire.session import Login, Session
from lovewire.sms import SmsGateway
from lovewire.storage.base import Store, Unit
from lovewire.storage.records import StoredPush
from lovewire.throttle import Throttle
from protocol.base import Notify, UnsequencedNotify
from protocol.times import format_app_time

__all__ = ["MAX_REPLAY", "Context", "RequestLog", "Services", "app_time"]

log = logging.getLogger(__name__)


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
    media: MediaStore
    metrics: Metrics = field(default_factory=Metrics)
    #: Ephemeral pushes let through per key (typing: one a second per sender and chat).
    throttle: Throttle = field(default_factory=Throttle)


class RequestLog(logging.LoggerAdapter[logging.Logger]):
    """A request's logger: every line names its connection and its user (as websockets does).

    The user is read when the line is written, so lines after a login name it. Lines carry
    `conn` and `user` as record attributes too. Never log a token, a code or a tel.
    """

    def __init__(self, logger: logging.Logger, session: Session) -> None:
        super().__init__(logger, {"conn": session.id})
        self.session = session

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        conn, user = self.session.id, self.session.user_id
        kwargs["extra"] = {**kwargs.get("extra", {}), "conn": conn, "user": user}
        return f"conn {conn} user {'-' if user is None else user}: {msg}", kwargs


class _RequestUnit:
    """`Context.unit()`: a class, not a generator, as it runs for every write."""

    __slots__ = ("_ctx", "_inner", "_login", "_tx")

    def __init__(self, ctx: Context, login: Login | None) -> None:
        self._ctx = ctx
        self._login = login
        self._inner = ctx.store.unit()
        self._tx: Unit | None = None

    async def __aenter__(self) -> Unit:
        tx = await self._inner.__aenter__()
        try:
            login = self._login
            if login is not None and not await tx.tokens.hold(login.token_id, self._ctx.now()):
                raise BadToken("token revoked or expired")
        except BaseException as exc:
            await self._inner.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._tx = tx
        return tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, tb)
        if exc_type is None and self._tx is not None:
            self._ctx._session.outbox.extend(self._tx.new_pushes)


class Context:
    """One request's world, as its handler sees it. Handlers get nothing else."""

    __slots__ = ("_acting", "_log", "_login_machine", "_services", "_session")

    def __init__(self, services: Services, session: Session) -> None:
        self._services = services
        self._session = session
        self._acting: Login | None = None
        # Made on first use: most requests need neither.
        self._login_machine: LoginMachine | None = None
        self._log: RequestLog | None = None

    @property
    def log(self) -> RequestLog:
        """The request's logger: its lines name the connection and the user."""
        if self._log is None:
            self._log = RequestLog(log, self._session)
        return self._log

    @property
    def _login(self) -> LoginMachine:
        if self._login_machine is None:
            services = self._services
            self._login_machine = LoginMachine(
                services.store, services.hub, services.clock, self._session
            )
        return self._login_machine

    # -- process-wide values -------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self._services.settings

    @property
    def store(self) -> Store:
        return self._services.store

    @property
    def sms(self) -> SmsGateway:
        return self._services.sms

    @property
    def codes(self) -> CodeHasher:
        """Hashes and checks verification codes."""
        return self._services.codes

    @property
    def metrics(self) -> Metrics:
        return self._services.metrics

    @property
    def pictures(self) -> ImagePool:
        """The worker pool that decodes and cleans pictures."""
        return self._services.pictures

    @property
    def media(self) -> MediaStore:
        """Where stored pictures live (files, or the database every process shares)."""
        return self._services.media

    def now(self) -> int:
        """The server's clock, whole Unix seconds."""
        return int(self._services.clock.now())

    def act_as(self, login: Login | None) -> None:
        """Make the request act as `login` (its `token`, or the socket's): the dispatcher's.

        Each of the request's write units then first checks, in the database, that this
        token is still live.
        """
        self._acting = login

    # -- the caller ----------------------------------------------------------------------

    @property
    def addr(self) -> str:
        """The caller's address (its client's, behind a trusted proxy)."""
        return self._session.addr

    @property
    def login(self) -> Login | None:
        """The login of the caller's socket (or HTTP request), None if it has none."""
        return self._session.login

    @property
    def user_id(self) -> int:
        """The logged-in caller; BadToken if there is none."""
        login = self._session.login
        if login is None:
            raise BadToken("not logged in")
        return login.user_id

    @property
    def code_tel(self) -> str | None:
        """The tel this socket last asked a login code for."""
        return self._session.sms_tel

    @code_tel.setter
    def code_tel(self, tel: str) -> None:
        self._session.sms_tel = tel

    @property
    def code_sent_at(self) -> float | None:
        """When this socket was last sent a code (the per-socket SMS interval)."""
        return self._session.sms_at

    @code_sent_at.setter
    def code_sent_at(self, when: float) -> None:
        self._session.sms_at = when

    # -- storage -------------------------------------------------------------------------

    def unit(self, *, check_login: bool = True) -> AbstractAsyncContextManager[Unit]:
        """A write transaction; the pushes it stored go out after the request's response.

        A request acting as the session's login writes only while its token is live: the
        token is checked inside the transaction, first (BadToken if it was revoked or
        expired since the request was authenticated, even by another process). Handlers
        that check the token themselves (they revoke or refresh it) pass check_login=False.
        """
        return _RequestUnit(self, self._acting if check_login else None)

    async def push(self, tx: Unit, user_id: int, notify: Notify) -> StoredPush:
        """Store a push for user_id in tx; it is delivered after the commit."""
        return await tx.push(user_id, push_body(notify), self.now())

    async def notify(
        self, user_id: int, notify: UnsequencedNotify, *, key: object = None, every: float = 0
    ) -> bool:
        """Send an ephemeral push (not stored, no seq) to the user's sockets, now.

        With `key`, at most one per `every` seconds of the server's clock is sent (in this
        process); the rest are dropped. A slow socket drops it too. True if it went out.
        """
        if key is not None and not self._services.throttle.allow(
            key, self._services.clock.now(), every
        ):
            return False
        await self._services.hub.notify(user_id, notify.model_dump_json())
        return True

    # -- the caller's login (lovewire.login) ---------------------------------------------

    async def check_token(self, token: str) -> Login:
        """The login a session token stands for; BadToken if it is not valid now."""
        return await self._login.check_token(token)

    async def log_in(self, login: Login, last_seq: int | None = None) -> LoggedIn:
        """Log the caller in and plan its replay: the user, S and `recovered` of section 5."""
        return await self._login.log_in(login, last_seq)

    def replace_login(self, old: Login, new: Login) -> None:
        """Log the caller in with `new`, minted by a unit that found `old` live."""
        self._login.replace_login(old, new)

    def log_out(self) -> None:
        """Log the caller out; its socket stops getting pushes."""
        self._login.log_out()

    async def end_expired_session(self) -> None:
        """Log out every socket of the caller's expired token, the caller's included."""
        await self._login.end_expired_session()

    async def end_other_sessions(
        self, user_id: int, token_ids: list[int] | None, reason: str
    ) -> None:
        """Log out the user's sockets using those tokens (all if None), but the caller's."""
        await self._login.end_other_sessions(user_id, token_ids, reason)


def app_time(ctx: Context, ts: int) -> str:
    """A time of the contract's app format, in the server's zone."""
    return format_app_time(ts, ctx.settings.zone)
