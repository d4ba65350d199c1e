"""The storage interface: repositories inside a unit of work.

A unit is one transaction. `Store.unit()` opens a write unit (committed on a clean exit,
rolled back on an exception); `Store.read()` a read-only snapshot. Repositories return
records from `lovewire.storage.records`. A PostgreSQL store implements the same classes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

from lovewire.storage.records import Code, StoredPush, Token, User

__all__ = ["CodeRepo", "PushRepo", "SmsLogRepo", "Store", "TokenRepo", "Unit", "UserRepo"]


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
    async def update(self, user_id: int, **fields: Any) -> User:
        """Set the given columns (nickname, sex, birthday, signature, avatar, tel, ...)."""


class TokenRepo(ABC):
    @abstractmethod
    async def create(
        self,
        token_hash: bytes,
        kind: str,
        user_id: int | None,
        tel: str | None,
        expires_ts: int,
        now: int,
    ) -> int: ...

    @abstractmethod
    async def by_hash(self, token_hash: bytes) -> Token | None: ...

    @abstractmethod
    async def bind_user(self, token_id: int, user_id: int) -> None:
        """Remember which user a registration ticket created."""

    @abstractmethod
    async def revoke(self, token_ids: Iterable[int]) -> None: ...

    @abstractmethod
    async def active_ids(self, user_id: int, now: int) -> list[int]:
        """Ids of the user's session tokens that are neither revoked nor expired."""


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
    async def use(self, code_id: int) -> None: ...

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


class Unit(ABC):
    """One transaction and its repositories."""

    users: UserRepo
    tokens: TokenRepo
    codes: CodeRepo
    sms: SmsLogRepo
    pushes: PushRepo

    def __init__(self) -> None:
        #: Pushes appended in this unit, published once it has committed.
        self.new_pushes: list[StoredPush] = []

    async def push(self, user_id: int, body: str, now: int) -> StoredPush:
        """Store a push for user_id in this transaction."""
        stored = await self.pushes.append(user_id, body, now)
        self.new_pushes.append(stored)
        return stored


class Store(ABC):
    """A database: opened at start, closed at stop."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def unit(self) -> AbstractAsyncContextManager[Unit]:
        """A write transaction: committed on a clean exit, rolled back on an exception."""

    @abstractmethod
    def read(self) -> AbstractAsyncContextManager[Unit]:
        """A read-only snapshot."""

    @abstractmethod
    async def healthy(self) -> bool: ...
