"""A session's login: token checks, logging in and out, and the replay a login owes.

The state machine behind a request's facade (`Context`): handlers call it through the
facade's named operations, the dispatcher directly when it authenticates a request.
"""

from __future__ import annotations

from dataclasses import dataclass

from lovewire.clock import Clock
from lovewire.errors import BadToken
from lovewire.hub import Hub
from lovewire.security import hash_token
from lovewire.session import Login, Replay, Session
from lovewire.storage.base import Store, Unit
from lovewire.storage.records import StoredPush, User

__all__ = ["MAX_REPLAY", "LoggedIn", "LoginMachine"]

#: The most pushes one replay sends (section 5).
MAX_REPLAY = 1000


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """What a login found: the user, S of section 5, and whether the replay is complete."""

    user: User
    last_seq: int
    recovered: bool


class LoginMachine:
    """Log one session in and out against the store's tokens and the hub."""

    __slots__ = ("clock", "hub", "session", "store")

    def __init__(self, store: Store, hub: Hub, clock: Clock, session: Session) -> None:
        self.store = store
        self.hub = hub
        self.clock = clock
        self.session = session

    def now(self) -> int:
        return int(self.clock.now())

    async def check_token(self, token: str) -> Login:
        """The login a session token stands for; BadToken if it is not valid now."""
        token_hash = hash_token(token)
        now = self.now()
        current = self.session.login
        if current is not None and current.token_hash == token_hash:
            if current.expires_ts <= now:
                await self.end_expired_session()
                raise BadToken("token expired")
            return current
        async with self.store.read() as tx:
            record = await tx.tokens.live_session(token_hash, now)
        if record is None or record.user_id is None:
            raise BadToken("token not valid")
        return Login(record.user_id, record.id, token_hash, record.expires_ts)

    async def end_expired_session(self) -> None:
        """Log out every socket of the session's expired token, this one included."""
        login = self.session.login
        if login is not None:
            await self.hub.end_sessions(login.user_id, [login.token_id], "expired")
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

    def log_out(self) -> None:
        """Forget the session's login; a live session stops getting pushes."""
        self.session.log_out()

    async def end_other_sessions(
        self, user_id: int, token_ids: list[int] | None, reason: str
    ) -> None:
        """Log out the user's other sockets using those tokens (all if None)."""
        await self.hub.end_sessions(user_id, token_ids, reason, keep=self.session)

    def _require(self, login: Login, live: bool) -> None:
        if self.session.login is not login:
            raise BadToken("session ended meanwhile")
        if not live:
            self.session.log_out()
            raise BadToken("token revoked meanwhile")

    async def log_in(self, login: Login, last_seq: int | None = None) -> LoggedIn:
        """Log the session in and plan the replay (section 5).

        The token is read again after the socket joined the hub: a revocation committed
        before that read is seen, one committed after it finds the socket in the hub (its
        hub.end_sessions follows its commit). Either way a revoked token never stays
        logged in. BadToken (and logged out) if it is no longer live.

        One read unit: the user (S is its push seq), the token, and the pushes the socket
        is owed, all from one snapshot.
        """
        self.session.log_in(login)
        await self.hub.joined(self.session)
        upto, recovered = 0, False
        owed: list[StoredPush] = []
        async with self.store.read() as tx:
            user = await tx.users.get(login.user_id)
            live = await tx.tokens.live_session(login.token_hash, self.now())
            if user is not None and live is not None:
                upto = user.push_seq  # S
                owed, recovered = await self._owed(tx, user.id, last_seq, upto)
        self._require(login, live is not None)
        if user is None:
            self.session.log_out()
            raise BadToken("user gone")
        self.session.replay = Replay(login.user_id, last_seq, upto, tuple(owed))
        return LoggedIn(user, upto, recovered)

    async def _owed(
        self, tx: Unit, user_id: int, last_seq: int | None, upto: int
    ) -> tuple[list[StoredPush], bool]:
        """The pushes a login owes its socket (none to a session without one), and
        whether those are all it missed (`recovered`)."""
        socket = self.session.watcher is not None
        if last_seq is None:
            # The app's own login: what was never written to any socket of the user.
            owed = await tx.pushes.undelivered(user_id, upto, MAX_REPLAY) if socket else []
            return owed, True
        if last_seq >= upto:
            return [], last_seq == upto
        first_needed, whole = last_seq + 1, upto - last_seq <= MAX_REPLAY
        if not socket:
            oldest = await tx.pushes.oldest_seq(user_id)
            return [], whole and oldest is not None and oldest <= first_needed
        start = max(last_seq, upto - MAX_REPLAY)
        owed = await tx.pushes.after(user_id, start, upto, MAX_REPLAY)
        # Pushes are pruned oldest first: the first one needed is there, or some are gone.
        return owed, whole and bool(owed) and owed[0].seq == first_needed
