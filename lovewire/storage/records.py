"""Plain records the repositories return: never wire models."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol, TypeVar, get_type_hints

__all__ = [
    "ChatListItem",
    "ChatMessage",
    "Code",
    "Conversation",
    "Crush",
    "FeedPost",
    "Liked",
    "Picture",
    "PictureComment",
    "ProfileChanges",
    "StoredPush",
    "Swept",
    "TelChange",
    "Token",
    "Unliked",
    "User",
    "from_row",
]

R = TypeVar("R")


class Row(Protocol):
    """A database row read by column name (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: str, /) -> Any: ...


def from_row(record: type[R], row: Row) -> R:
    """The record of a row whose columns are named as its fields (any backend).

    A `bool` field is read with `bool()`: SQLite stores flags as 0 and 1.
    """
    names, flags = _fields(record)  # type: ignore[arg-type]  # a class is hashable
    values = [row[name] for name in names]
    for i in flags:
        values[i] = bool(values[i])
    return record(*values)


@functools.cache
def _fields(record: type[Any]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The record's field names in order, and the positions of its `bool` fields."""
    hints = get_type_hints(record)
    found = fields(record)
    return (
        tuple(field.name for field in found),
        tuple(i for i, field in enumerate(found) if hints[field.name] is bool),
    )


@dataclass(frozen=True, slots=True)
class User:
    id: int
    tel: str
    nickname: str
    sex: int
    birthday: str  # ISO YYYY-MM-DD
    signature: str
    avatar: str
    crush_receive: bool
    push_seq: int
    acked_seq: int
    created_ts: int


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    """The profile fields a request sets; None leaves a field as it is."""

    nickname: str | None = None
    sex: int | None = None
    birthday: str | None = None  # ISO YYYY-MM-DD
    signature: str | None = None
    avatar: str | None = None  # a stored file's name, "" for none

    @classmethod
    def of(cls, values: Mapping[str, object]) -> ProfileChanges:
        """Changes from field names and values, each checked against its type."""
        types = {f.name: int if f.name == "sex" else str for f in fields(cls)}
        for name, value in values.items():
            kind = types.get(name)
            if kind is None:
                raise TypeError(f"not a profile field: {name!r}")
            if type(value) is not kind:
                raise TypeError(f"profile field {name!r} is not {kind.__name__}: {value!r}")
        return cls(**values)  # type: ignore[arg-type]

    def items(self) -> list[tuple[str, str | int]]:
        """The fields set, by name."""
        found = ((f.name, getattr(self, f.name)) for f in fields(self))
        return [(name, value) for name, value in found if value is not None]


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    kind: str  # "session" or "ticket"
    user_id: int | None
    tel: str | None
    expires_ts: int
    revoked: bool
    #: The user's session generation the token was minted in (0 for a ticket).
    gen: int = 0


@dataclass(frozen=True, slots=True)
class Code:
    id: int
    tel: str
    purpose: str
    user_id: int | None
    code_hash: bytes
    expires_ts: int
    attempts: int
    used: bool


@dataclass(frozen=True, slots=True)
class StoredPush:
    user_id: int
    seq: int
    body: str  # the push as JSON without seq/time/time_ts
    created_ts: int


@dataclass(frozen=True, slots=True)
class Crush:
    id: int
    user_id: int  # the admirer
    crush_tel: str
    words: str
    created_ts: int
    since_ts: int  # start of the 90 days within which it must match
    matched: bool


@dataclass(frozen=True, slots=True)
class TelChange:
    user_id: int
    new_tel: str
    old_tel: str
    created_ts: int


@dataclass(frozen=True, slots=True)
class Picture:
    id: int
    owner_id: int
    path: str  # relative to the media directory: ab/<sha256>.<ext>
    words: str
    client_msg_id: str | None
    created_ts: int


@dataclass(frozen=True, slots=True)
class FeedPost:
    """A picture as the feed shows it, with its counts for one viewer."""

    id: int
    owner_id: int
    owner_nickname: str
    path: str
    words: str
    created_ts: int
    like_count: int
    comment_count: int  # top-level comments
    liked_by_me: bool


@dataclass(frozen=True, slots=True)
class Liked:
    """What a like did, as one repository call found it."""

    added: bool  # this like is new (a user's like counts once)
    count: int  # the picture's likes right after this one
    owner_id: int
    tell_owner: bool  # the owner is to be pushed this like: first time told, not their own
    liker_nickname: str  # for the push


@dataclass(frozen=True, slots=True)
class Unliked:
    """What an unlike did."""

    removed: bool  # there was a like to take back
    count: int  # the picture's likes right after this


@dataclass(frozen=True, slots=True)
class PictureComment:
    id: int
    picture_id: int
    parent_id: int | None  # the top-level comment a reply is filed under; None if top-level
    reply_to: int | None  # the comment replied to (top-level or a reply); None if top-level
    author_id: int
    author_nickname: str
    msg: str
    client_msg_id: str | None
    created_ts: int
    reply_count: int  # replies filed under it (0 for a reply)


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation opened by a match (4.6); `low_user` < `high_user`."""

    id: int
    low_user: int
    high_user: int
    opened_ts: int
    expire_ts: int
    low_kept: bool
    high_kept: bool
    ended_ts: int | None  # None while it is open
    end_reason: str | None  # "closed" or "expired" once ended
    last_ts: int  # the latest activity: the opening or the newest message
    low_read: int  # the newest message id read by each side (0: none)
    high_read: int

    def has(self, user_id: int) -> bool:
        return user_id in (self.low_user, self.high_user)

    def peer_of(self, user_id: int) -> int:
        return self.high_user if user_id == self.low_user else self.low_user

    @property
    def kept(self) -> bool:
        """Both asked to keep it: it never expires."""
        return self.low_kept and self.high_kept

    def kept_by(self, user_id: int) -> bool:
        return self.low_kept if user_id == self.low_user else self.high_kept

    def read_by(self, user_id: int) -> int:
        return self.low_read if user_id == self.low_user else self.high_read

    def is_open(self, now: int) -> bool:
        """Not ended, and kept or before its expiry (the sweeper may not have run yet)."""
        return self.ended_ts is None and (self.kept or now < self.expire_ts)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    id: int
    conversation_id: int
    sender_id: int
    msg: str
    picture: str  # a stored file's name, "" for none
    client_msg_id: str | None
    created_ts: int


@dataclass(frozen=True, slots=True)
class ChatListItem:
    """A conversation of one user's list: the peer's public profile and the unread count."""

    conversation: Conversation
    peer_id: int
    peer_nickname: str
    peer_avatar: str
    unread: int


@dataclass(frozen=True, slots=True)
class Swept:
    """What one retention unit deleted (`ChatRepo.delete_ended`)."""

    conversations: int
    messages: int
    #: The stored files the deleted messages referred to, each once.
    pictures: list[str]
