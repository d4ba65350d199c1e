"""The storage interface: repositories inside a unit of work.

A unit is one transaction. `Store.unit()` opens a write unit (committed on a clean exit,
rolled back on an exception); `Store.read()` a read-only snapshot that refuses writes.
Repositories return records from `lovewire.storage.records` and raise the errors of
`lovewire.storage.errors`. A PostgreSQL store implements the same classes, and
`tests/test_storage_contract.py` holds every store to the same semantics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager

from lovewire.storage.errors import ReadOnlyUnit
from lovewire.storage.records import (
    ChatListItem,
    ChatMessage,
    Code,
    Conversation,
    Crush,
    FeedPost,
    Liked,
    Picture,
    PictureComment,
    ProfileChanges,
    StoredPush,
    Swept,
    TelChange,
    Token,
    Unliked,
    User,
)

__all__ = [
    "ChatRepo",
    "CodeRepo",
    "CrushRepo",
    "PictureRepo",
    "PushRepo",
    "SmsLogRepo",
    "Store",
    "TelChangeRepo",
    "TokenRepo",
    "Unit",
    "UserRepo",
]


class UserRepo(ABC):
    @abstractmethod
    async def get(self, user_id: int) -> User | None: ...

    @abstractmethod
    async def by_tel(self, tel: str) -> User | None: ...

    @abstractmethod
    async def get_many(self, user_ids: Iterable[int]) -> dict[int, User]: ...

    @abstractmethod
    async def create(self, tel: str, nickname: str, sex: int, birthday: str, now: int) -> User: ...

    @abstractmethod
    async def update_profile(self, user_id: int, changes: ProfileChanges) -> User:
        """Set the profile fields `changes` sets, and return the user as it now is."""

    @abstractmethod
    async def set_tel(self, user_id: int, tel: str) -> User:
        """Move the user to another phone number (free: the caller checked)."""

    @abstractmethod
    async def set_crush_receive(self, user_id: int, receive: bool) -> User:
        """Turn anonymous crush notices on or off."""

    @abstractmethod
    async def lock_sessions(self, user_id: int) -> int | None:
        """Lock the user's row until the unit ends and return its session generation,
        the one a token minted now records. None: no such user.

        SQLite's single writer holds every row anyway; PostgreSQL: SELECT ... FOR UPDATE.
        See TokenRepo for the order of locks.
        """

    @abstractmethod
    async def end_sessions(self, user_id: int) -> int:
        """Bump the user's session generation (locking the row): every token minted
        before, even one a unit committing at the same time mints, is dead. Returns the
        new generation."""


class TokenRepo(ABC):
    """Session tokens and registration tickets, stored by hash.

    A session token is live while it is not revoked, not expired, and of its user's
    current session generation (`UserRepo.end_sessions` kills all of them at once).

    Units that use a token are serialised on its row: `hold` (shared), `revoke_live`,
    `bind_ticket` and `revoke_all` (exclusive) lock the token rows they read or change,
    so a write trusting a token, a refresh, and a logout-all or a phone change never
    interleave, under READ COMMITTED too. A token minted meanwhile, which no statement of
    a revoking unit saw, is killed by the generation. Every unit takes its token rows
    before the user row (`UserRepo.lock_sessions`, `end_sessions`, and the push counter
    on the same row): one order, so no two units wait on each other in a cycle.
    """

    @abstractmethod
    async def create(
        self,
        token_hash: bytes,
        kind: str,
        user_id: int | None,
        tel: str | None,
        expires_ts: int,
        now: int,
        gen: int = 0,
    ) -> int:
        """Store a token; a session token records `gen`, its user's current generation."""

    @abstractmethod
    async def by_hash(self, token_hash: bytes) -> Token | None: ...

    @abstractmethod
    async def live_session(self, token_hash: bytes, now: int) -> Token | None:
        """The session token with this hash if it is live now."""

    @abstractmethod
    async def hold(self, token_id: int, now: int) -> bool:
        """True if the session token is live; it then stays so until the unit ends (its
        row is locked: PostgreSQL SELECT ... FOR SHARE), so no revocation commits between
        this check and the unit's own writes."""

    @abstractmethod
    async def revoke_live(self, token_id: int, now: int) -> bool:
        """Revoke the session token if it is live (one conditional UPDATE whose row count
        decides); False if it was not (already refreshed, revoked, expired, or of an
        older generation): the caller lost the race."""

    @abstractmethod
    async def revoke_all(self, user_id: int, tels: Iterable[str]) -> None:
        """Mark every session token of the user revoked, and every registration ticket
        bound to the user or issued for one of `tels` (a ticket never outlives the end of
        the sessions of the account holding its tel)."""

    @abstractmethod
    async def bind_ticket(self, token_id: int, user_id: int, now: int) -> bool:
        """Remember which user a registration ticket logs into, if the ticket is still
        neither revoked nor expired (a conditional UPDATE); False otherwise."""

    @abstractmethod
    async def revoke(self, token_ids: Iterable[int]) -> None: ...

    @abstractmethod
    async def active_ids(self, user_id: int, now: int) -> list[int]:
        """Ids of the user's session tokens that are live."""


class CodeRepo(ABC):
    @abstractmethod
    async def add(
        self,
        tel: str,
        purpose: str,
        user_id: int | None,
        code_hash: bytes,
        expires_ts: int,
        now: int,
    ) -> int:
        """Store a new code; older pending codes for the same tel and purpose die."""

    @abstractmethod
    async def pending(
        self, tel: str, purpose: str, now: int, user_id: int | None = None
    ) -> Code | None:
        """The live code for tel and purpose (and user, for a phone change), if any."""

    @abstractmethod
    async def fail(self, code_id: int) -> int:
        """Count one wrong attempt; return the attempts so far."""

    @abstractmethod
    async def use(self, code_id: int) -> bool:
        """Mark the code used if it is not yet (one conditional UPDATE whose row count
        decides); False if it already was: of two units using one code, one wins."""

    @abstractmethod
    async def delete(self, code_id: int) -> None: ...

    @abstractmethod
    async def failures_since(self, tel: str, since: int) -> int:
        """Wrong attempts for tel since `since`, over all its codes."""


class SmsLogRepo(ABC):
    @abstractmethod
    async def record(self, tel: str, addr: str, now: int) -> int: ...

    @abstractmethod
    async def delete(self, send_id: int) -> None: ...

    @abstractmethod
    async def last_for_tel(self, tel: str) -> int | None: ...

    @abstractmethod
    async def count_tel(self, tel: str, since: int) -> tuple[int, int | None]:
        """Sends to tel since `since`, and the oldest of them."""

    @abstractmethod
    async def count_addr(self, addr: str, since: int) -> tuple[int, int | None]: ...

    @abstractmethod
    async def count_all(self, since: int) -> tuple[int, int | None]: ...


class PushRepo(ABC):
    @abstractmethod
    async def append(self, user_id: int, body: str, now: int) -> StoredPush:
        """Store a push with the user's next seq."""

    @abstractmethod
    async def append_if(
        self, user_id: int | None, body: str, now: int, *, stand_in: int
    ) -> StoredPush | None:
        """Store a push for user_id; for None, store none by the same statements and writes.

        For a push whose existence must not show in the time a request takes (4.3): with
        None, the row of user `stand_in` is rewritten unchanged and one placeholder push
        (user 0, pruned like any push) is replaced, so as many pages change either way.
        """

    @abstractmethod
    async def current_seq(self, user_id: int) -> int: ...

    @abstractmethod
    async def after(self, user_id: int, after: int, upto: int, limit: int) -> list[StoredPush]:
        """Stored pushes with after < seq <= upto, in order, at most `limit`."""

    @abstractmethod
    async def oldest_seq(self, user_id: int) -> int | None: ...

    @abstractmethod
    async def undelivered(self, user_id: int, upto: int, limit: int) -> list[StoredPush]:
        """Pushes never written to any socket of the user, in order."""

    @abstractmethod
    async def mark_delivered(self, pushes: Iterable[tuple[int, int]]) -> None:
        """Mark (user_id, seq) pairs as written to a socket."""

    @abstractmethod
    async def ack(self, user_id: int, seq: int) -> None: ...

    @abstractmethod
    async def prune(self, before_ts: int) -> int: ...


class CrushRepo(ABC):
    """Secret crushes. Only active ones are ever seen: matched ones, and unmatched ones whose
    90 days started at or after `fresh` (the caller's now minus the crush lifetime)."""

    @abstractmethod
    async def get(self, user_id: int, crush_tel: str, fresh: int) -> Crush | None:
        """The user's active crush on crush_tel."""

    @abstractmethod
    async def of_user(self, user_id: int, fresh: int) -> list[Crush]:
        """The user's active crushes, newest first."""

    @abstractmethod
    async def add(self, user_id: int, crush_tel: str, words: str, now: int, fresh: int) -> Crush:
        """Add a crush (replacing an expired one on the same tel) and log the tel as added."""

    @abstractmethod
    async def remove(self, crush: Crush, now: int) -> int | None:
        """Delete a crush; its match ends and the other crush's 90 days start again.

        Returns the other user of the match it ended (None: it was not matched).
        """

    @abstractmethod
    async def count_of_user(self, user_id: int, fresh: int) -> int: ...

    @abstractmethod
    async def tels_added_since(self, user_id: int, since: int) -> set[str]:
        """Distinct tels the user added since `since`, removed ones included."""

    @abstractmethod
    async def pending_from(self, admirer_tel: str, crush_tel: str, fresh: int) -> Crush | None:
        """The active, unmatched crush of the user holding admirer_tel on crush_tel."""

    @abstractmethod
    async def naming(self, crush_tel: str, fresh: int) -> list[Crush]:
        """Active crushes naming crush_tel, matched ones included."""

    @abstractmethod
    async def count_naming(self, crush_tel: str, fresh: int) -> int: ...

    @abstractmethod
    async def match(self, first: Crush, second: Crush, now: int) -> None:
        """Record that two crushes matched (at most once per crush and per pair of users)."""

    @abstractmethod
    async def last_notice(self, admirer_id: int, crush_tel: str) -> int | None:
        """When the holder of crush_tel was last told of this admirer's crush."""

    @abstractmethod
    async def noticed(self, admirer_ids: Iterable[int], crush_tel: str, ts: int) -> None:
        """Record a notice at ts; a later notice already recorded is kept."""


class TelChangeRepo(ABC):
    """Pending phone number changes, one per user."""

    @abstractmethod
    async def put(self, user_id: int, new_tel: str, old_tel: str, now: int) -> None: ...

    @abstractmethod
    async def get(self, user_id: int) -> TelChange | None: ...

    @abstractmethod
    async def delete(self, user_id: int) -> None: ...


class PictureRepo(ABC):
    """The picture community: posts, likes, comments, and the actions rate-limited per user.

    A reply's `parent_id` is the top-level comment it is filed under (never a reply).
    """

    @abstractmethod
    async def create(
        self, owner_id: int, path: str, words: str, client_msg_id: str | None, now: int
    ) -> Picture: ...

    @abstractmethod
    async def get(self, picture_id: int) -> Picture | None: ...

    @abstractmethod
    async def by_client_msg_id(self, owner_id: int, client_msg_id: str) -> Picture | None: ...

    @abstractmethod
    async def delete(self, picture_id: int) -> None:
        """Delete a post with its likes and comments (not its file)."""

    @abstractmethod
    async def feed(self, viewer_id: int, before: int | None, limit: int) -> list[FeedPost]:
        """Posts with id < before (all without it), newest first, at most `limit`; one query."""

    @abstractmethod
    async def comments_of(
        self, picture_ids: Sequence[int], per_picture: int, before: int | None = None
    ) -> list[PictureComment]:
        """The newest `per_picture` top-level comments of each picture (with id < before),
        by picture then oldest first; one query."""

    @abstractmethod
    async def replies_of(
        self, comment_ids: Sequence[int], per_comment: int, before: int | None = None
    ) -> list[PictureComment]:
        """The newest `per_comment` replies filed under each comment (with id < before),
        by comment then oldest first; one query."""

    @abstractmethod
    async def like(self, picture_id: int, user_id: int, now: int) -> Liked | None:
        """Like once and mark the owner told of this liker; None: no such picture.

        The owner is to be told (`tell_owner`) at most once per liker and picture, and
        never of their own like. Likes and unlikes of one picture take turns (PostgreSQL:
        the picture's row is locked until the unit ends), so `count` is the true count
        right after this like, never a stale repeat, whatever the other units of any
        process do meanwhile. One trip to the database where the backend has trips.
        """

    @abstractmethod
    async def unlike(self, picture_id: int, user_id: int) -> Unliked | None:
        """Take the user's like back if there is one; None: no such picture.

        Takes turns with the picture's other likes and unlikes, like `like`.
        """

    @abstractmethod
    async def like_count(self, picture_id: int) -> int: ...

    @abstractmethod
    async def add_comment(
        self,
        picture_id: int,
        author_id: int,
        msg: str,
        parent_id: int | None,
        reply_to: int | None,
        client_msg_id: str | None,
        now: int,
    ) -> PictureComment: ...

    @abstractmethod
    async def get_comment(self, comment_id: int) -> PictureComment | None: ...

    @abstractmethod
    async def comment_by_client_msg_id(
        self, author_id: int, client_msg_id: str
    ) -> PictureComment | None: ...

    @abstractmethod
    async def delete_comment(self, comment_id: int) -> None:
        """Delete a comment and the replies filed under it."""

    @abstractmethod
    async def path_in_use(self, path: str) -> bool:
        """Whether a post, a user's avatar or a chat message still refers to a stored file."""

    @abstractmethod
    async def lock_path(self, path: str) -> None:
        """Hold a stored file's path until the unit ends: units that check or forget the
        file (`lovewire.uploads`) then run one after the other, in every process."""

    @abstractmethod
    async def actions_since(self, user_id: int, kind: str, since: int) -> tuple[int, int | None]:
        """The user's actions of a kind at or after `since`, and the oldest of them."""

    @abstractmethod
    async def record_action(self, user_id: int, kind: str, now: int, forget_before: int) -> None:
        """Count one action; forget the user's actions of that kind before forget_before."""

    @abstractmethod
    async def take_back_action(self, user_id: int, kind: str, ts: int) -> None:
        """Forget one action of a kind counted at ts (a reservation given back)."""


class ChatRepo(ABC):
    """Conversations between matched users (4.6) and their messages.

    A conversation is ended once `ended_ts` is set, by `close`, `close_pair` or
    `claim_expired`: each is one conditional UPDATE whose row count decides, so of two
    units (of any processes) ending one conversation exactly one does, and only that one
    stores the pushes telling it. In a write unit `get` locks the conversation's row until
    the unit ends (PostgreSQL: FOR UPDATE), so a message is never added to a
    conversation another unit is ending.
    """

    @abstractmethod
    async def open(self, user_a: int, user_b: int, now: int, expire_ts: int) -> Conversation:
        """Open a conversation for a pair (at most one open per pair)."""

    @abstractmethod
    async def get(self, conversation_id: int) -> Conversation | None:
        """The conversation, locked until the unit ends in a write unit."""

    @abstractmethod
    async def close(self, conversation_id: int, now: int, reason: str) -> Conversation | None:
        """End an open conversation; None if it was already ended (or is gone)."""

    @abstractmethod
    async def close_pair(self, user_a: int, user_b: int, now: int) -> Conversation | None:
        """End the pair's open conversation; None if it has none. Its reason is "closed",
        or "expired" if it was past its expiry (the sweeper had not got to it yet)."""

    @abstractmethod
    async def keep(self, conversation_id: int, user_id: int) -> Conversation:
        """Record that user_id asked to keep it; the conversation as it now is."""

    @abstractmethod
    async def add_message(
        self,
        conversation_id: int,
        sender_id: int,
        msg: str,
        picture: str,
        client_msg_id: str | None,
        now: int,
    ) -> ChatMessage:
        """Store a message (the conversation's latest activity is now)."""

    @abstractmethod
    async def sent_since(self, sender_id: int, since: int) -> tuple[int, int | None]:
        """The sender's messages at or after `since`, and the oldest of them. In a write
        unit it first takes the sender's lock (PostgreSQL: a named lock), so that two
        units cannot both pass a limit counted here."""

    @abstractmethod
    async def message(self, message_id: int) -> ChatMessage | None: ...

    @abstractmethod
    async def by_client_msg_id(self, sender_id: int, client_msg_id: str) -> ChatMessage | None:
        """The sender's message sent with that key, if any."""

    @abstractmethod
    async def history(
        self, conversation_id: int, before: int | None, limit: int
    ) -> list[ChatMessage]:
        """The newest `limit` messages with id < before (all without it), oldest first."""

    @abstractmethod
    async def mark_read(self, conversation_id: int, user_id: int, message_id: int) -> bool:
        """Move user_id's read mark up to message_id; False if it was there already."""

    @abstractmethod
    async def of_user(self, user_id: int) -> list[ChatListItem]:
        """The user's conversations, the latest activity first, each with its peer's
        public profile and the count of the peer's messages after the user's read mark:
        one query, whatever the number of conversations."""

    @abstractmethod
    async def last_messages(self, conversation_ids: Sequence[int]) -> dict[int, ChatMessage]:
        """The newest message of each conversation that has one; one query."""

    @abstractmethod
    async def claim_expired(self, now: int, limit: int) -> list[Conversation]:
        """End up to `limit` open, not kept conversations whose expire_ts <= now, with
        reason "expired", and return them: each is claimed by exactly one unit."""

    @abstractmethod
    async def delete_ended(self, before_ts: int, limit: int) -> Swept:
        """Delete up to `limit` messages of the first `limit` conversations ended before
        `before_ts` (the oldest ended first), and those conversations once none of their
        messages is left; return what went. A unit stays small however long the
        conversations were: its statements hold the writer (on SQLite, the event loop)."""


class Unit(ABC):
    """One transaction and its repositories.

    A read unit (`writable` False) refuses every write with `ReadOnlyUnit`, whichever
    repository method attempts it: nothing is silently rolled back.
    """

    users: UserRepo
    tokens: TokenRepo
    codes: CodeRepo
    sms: SmsLogRepo
    pushes: PushRepo
    crushes: CrushRepo
    tel_changes: TelChangeRepo
    pictures: PictureRepo
    chats: ChatRepo

    def __init__(self, *, writable: bool = True) -> None:
        self.writable = writable
        #: Pushes appended in this unit, published once it has committed.
        self.new_pushes: list[StoredPush] = []

    async def push(self, user_id: int, body: str, now: int) -> StoredPush:
        """Store a push for user_id in this transaction."""
        self._check_writable()
        stored = await self.pushes.append(user_id, body, now)
        self.new_pushes.append(stored)
        return stored

    async def push_if(
        self, user_id: int | None, body: str, now: int, *, stand_in: int
    ) -> StoredPush | None:
        """Store a push for user_id, or for None nothing, by the same statements."""
        self._check_writable()
        stored = await self.pushes.append_if(user_id, body, now, stand_in=stand_in)
        if stored is not None:
            self.new_pushes.append(stored)
        return stored

    def _check_writable(self) -> None:
        if not self.writable:
            raise ReadOnlyUnit("a read unit cannot store a push")


class Store(ABC):
    """A database: opened at start, closed at stop."""

    #: Told the seconds each durable commit took (the server's metrics), or None.
    on_commit: Callable[[float], None] | None = None

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def unit(self) -> AbstractAsyncContextManager[Unit]:
        """A write transaction: committed on a clean exit, rolled back on an exception."""

    @abstractmethod
    def read(self) -> AbstractAsyncContextManager[Unit]:
        """A read-only snapshot: a write in it raises `ReadOnlyUnit`."""

    @abstractmethod
    async def secret(self) -> bytes:
        """The key login codes are hashed with, the same for every process sharing this
        database: made at random on first use, then kept."""

    @abstractmethod
    async def healthy(self) -> bool: ...
