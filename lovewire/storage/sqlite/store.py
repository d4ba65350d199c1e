"""The SQLite store: aiosqlite in WAL mode, one writer, a small pool of readers."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from lovewire.storage.base import (
    CodeRepo,
    PushRepo,
    SmsLogRepo,
    Store,
    TokenRepo,
    Unit,
    UserRepo,
)
from lovewire.storage.records import Code, StoredPush, Token, User

__all__ = ["SqliteRepo", "SqliteStore", "SqliteUnit", "StoreClosed", "StoreError"]

log = logging.getLogger(__name__)

READERS = 2


class SqliteRepo:
    """Base of the SQLite repositories: a connection and three query helpers.

    Each helper is one trip to the connection's thread (the statement and its rows
    together): those trips, not SQLite, are most of a unit's cost.
    """

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self.db.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(await self.db.execute_fetchall(sql, params))

    async def _exec(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Cursor:
        """Run a statement for its effect; the cursor tells rowcount and lastrowid."""
        return await self.db.execute(sql, params)


def _user(row: sqlite3.Row) -> User:
    return User(
        id=row["id"],
        tel=row["tel"],
        nickname=row["nickname"],
        sex=row["sex"],
        birthday=row["birthday"],
        signature=row["signature"],
        avatar=row["avatar"],
        crush_receive=bool(row["crush_receive"]),
        push_seq=row["push_seq"],
        acked_seq=row["acked_seq"],
        created_ts=row["created_ts"],
    )


USER_COLUMNS = {"nickname", "sex", "birthday", "signature", "avatar", "tel", "crush_receive"}


class SqliteUsers(SqliteRepo, UserRepo):
    async def get(self, user_id: int) -> User | None:
        row = await self._one("SELECT * FROM users WHERE id = ?", (user_id,))
        return _user(row) if row else None

    async def by_tel(self, tel: str) -> User | None:
        row = await self._one("SELECT * FROM users WHERE tel = ?", (tel,))
        return _user(row) if row else None

    async def get_many(self, user_ids: Iterable[int]) -> dict[int, User]:
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = await self._all(f"SELECT * FROM users WHERE id IN ({marks})", ids)
        return {row["id"]: _user(row) for row in rows}

    async def create(self, tel: str, nickname: str, sex: int, birthday: str, now: int) -> User:
        row = await self._one(
            "INSERT INTO users (tel, nickname, sex, birthday, created_ts) VALUES (?, ?, ?, ?, ?)"
            " RETURNING *",
            (tel, nickname, sex, birthday, now),
        )
        assert row is not None
        return _user(row)

    async def update(self, user_id: int, **fields: Any) -> User:
        unknown = set(fields) - USER_COLUMNS
        if unknown:
            raise ValueError(f"not user columns: {sorted(unknown)}")
        if fields:
            sets = ", ".join(f"{name} = ?" for name in fields)
            await self._exec(f"UPDATE users SET {sets} WHERE id = ?", (*fields.values(), user_id))
        user = await self.get(user_id)
        assert user is not None
        return user

    async def lock_sessions(self, user_id: int) -> int | None:
        # The unit already holds SQLite's one write lock (BEGIN IMMEDIATE): a read is enough.
        row = await self._one("SELECT token_gen FROM users WHERE id = ?", (user_id,))
        return int(row["token_gen"]) if row else None

    async def end_sessions(self, user_id: int) -> int:
        row = await self._one(
            "UPDATE users SET token_gen = token_gen + 1 WHERE id = ? RETURNING token_gen",
            (user_id,),
        )
        if row is None:
            raise LookupError(f"no user {user_id}")
        return int(row["token_gen"])


def _token(row: sqlite3.Row) -> Token:
    return Token(
        id=row["id"],
        kind=row["kind"],
        user_id=row["user_id"],
        tel=row["tel"],
        expires_ts=row["expires_ts"],
        revoked=bool(row["revoked"]),
        gen=row["gen"],
    )


#: A live session token `t` (its user joined as `u`): the one definition of "valid".
LIVE = (
    "t.kind = 'session' AND t.revoked = 0 AND t.expires_ts > ?"
    " AND t.gen = (SELECT u.token_gen FROM users u WHERE u.id = t.user_id)"
)


class SqliteTokens(SqliteRepo, TokenRepo):
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
        cur = await self._exec(
            "INSERT INTO tokens (hash, kind, user_id, tel, expires_ts, created_ts, gen)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (token_hash, kind, user_id, tel, expires_ts, now, gen),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def by_hash(self, token_hash: bytes) -> Token | None:
        row = await self._one("SELECT * FROM tokens WHERE hash = ?", (token_hash,))
        return _token(row) if row else None

    async def live_session(self, token_hash: bytes, now: int) -> Token | None:
        row = await self._one(
            f"SELECT * FROM tokens t WHERE t.hash = ? AND {LIVE}", (token_hash, now)
        )
        return _token(row) if row else None

    async def hold(self, token_id: int, now: int) -> bool:
        # Inside a write unit SQLite's write lock already keeps every revocation out.
        row = await self._one(f"SELECT 1 FROM tokens t WHERE t.id = ? AND {LIVE}", (token_id, now))
        return row is not None

    async def revoke_live(self, token_id: int, now: int) -> bool:
        cur = await self._exec(
            f"UPDATE tokens AS t SET revoked = 1 WHERE t.id = ? AND {LIVE}", (token_id, now)
        )
        return cur.rowcount == 1

    async def revoke_all(self, user_id: int, tels: Iterable[str]) -> None:
        tels = sorted(set(tels))
        marks = ",".join("?" * len(tels)) or "NULL"
        await self._exec(
            "UPDATE tokens SET revoked = 1 WHERE revoked = 0 AND (user_id = ?"
            f" OR (kind = 'ticket' AND tel IN ({marks})))",
            (user_id, *tels),
        )

    async def bind_ticket(self, token_id: int, user_id: int, now: int) -> bool:
        cur = await self._exec(
            "UPDATE tokens SET user_id = ? WHERE id = ? AND kind = 'ticket' AND revoked = 0"
            " AND expires_ts > ? AND (user_id IS NULL OR user_id = ?)",
            (user_id, token_id, now, user_id),
        )
        return cur.rowcount == 1

    async def revoke(self, token_ids: Iterable[int]) -> None:
        await self.db.executemany(
            "UPDATE tokens SET revoked = 1 WHERE id = ?", [(i,) for i in token_ids]
        )

    async def active_ids(self, user_id: int, now: int) -> list[int]:
        rows = await self._all(
            f"SELECT t.id FROM tokens t WHERE t.user_id = ? AND {LIVE}", (user_id, now)
        )
        return [row["id"] for row in rows]


def _code(row: sqlite3.Row) -> Code:
    return Code(
        id=row["id"],
        tel=row["tel"],
        purpose=row["purpose"],
        user_id=row["user_id"],
        code_hash=row["code_hash"],
        expires_ts=row["expires_ts"],
        attempts=row["attempts"],
        used=bool(row["used"]),
    )


class SqliteCodes(SqliteRepo, CodeRepo):
    async def add(
        self,
        tel: str,
        purpose: str,
        user_id: int | None,
        code_hash: bytes,
        expires_ts: int,
        now: int,
    ) -> int:
        await self._exec(
            "UPDATE sms_codes SET used = 1 WHERE tel = ? AND purpose = ? AND used = 0",
            (tel, purpose),
        )
        cur = await self._exec(
            "INSERT INTO sms_codes (tel, purpose, user_id, code_hash, expires_ts, created_ts)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (tel, purpose, user_id, code_hash, expires_ts, now),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def pending(
        self, tel: str, purpose: str, now: int, user_id: int | None = None
    ) -> Code | None:
        row = await self._one(
            "SELECT * FROM sms_codes WHERE tel = ? AND purpose = ? AND used = 0"
            " AND expires_ts > ? AND (? IS NULL OR user_id = ?)"
            " ORDER BY id DESC LIMIT 1",
            (tel, purpose, now, user_id, user_id),
        )
        return _code(row) if row else None

    async def fail(self, code_id: int) -> int:
        row = await self._one(
            "UPDATE sms_codes SET attempts = attempts + 1 WHERE id = ? RETURNING attempts",
            (code_id,),
        )
        return int(row["attempts"]) if row else 0

    async def use(self, code_id: int) -> None:
        await self._exec("UPDATE sms_codes SET used = 1 WHERE id = ?", (code_id,))

    async def delete(self, code_id: int) -> None:
        await self._exec("DELETE FROM sms_codes WHERE id = ?", (code_id,))

    async def failures_since(self, tel: str, since: int) -> int:
        row = await self._one(
            "SELECT COALESCE(SUM(attempts), 0) AS n FROM sms_codes"
            " WHERE tel = ? AND created_ts >= ?",
            (tel, since),
        )
        return int(row["n"]) if row else 0


class SqliteSmsLog(SqliteRepo, SmsLogRepo):
    async def record(self, tel: str, addr: str, now: int) -> int:
        cur = await self._exec(
            "INSERT INTO sms_sends (tel, addr, ts) VALUES (?, ?, ?)", (tel, addr, now)
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def delete(self, send_id: int) -> None:
        await self._exec("DELETE FROM sms_sends WHERE id = ?", (send_id,))

    async def last_for_tel(self, tel: str) -> int | None:
        row = await self._one("SELECT MAX(ts) AS ts FROM sms_sends WHERE tel = ?", (tel,))
        return row["ts"] if row else None

    async def _count(self, where: str, params: Sequence[Any]) -> tuple[int, int | None]:
        sql = f"SELECT COUNT(*) AS n, MIN(ts) AS first FROM sms_sends WHERE {where}"
        row = await self._one(sql, params)
        assert row is not None
        return int(row["n"]), row["first"]

    async def count_tel(self, tel: str, since: int) -> tuple[int, int | None]:
        return await self._count("tel = ? AND ts >= ?", (tel, since))

    async def count_addr(self, addr: str, since: int) -> tuple[int, int | None]:
        return await self._count("addr = ? AND ts >= ?", (addr, since))

    async def count_all(self, since: int) -> tuple[int, int | None]:
        return await self._count("ts >= ?", (since,))


def _push(row: sqlite3.Row) -> StoredPush:
    return StoredPush(
        user_id=row["user_id"], seq=row["seq"], body=row["body"], created_ts=row["created_ts"]
    )


class SqlitePushes(SqliteRepo, PushRepo):
    async def append(self, user_id: int, body: str, now: int) -> StoredPush:
        row = await self._one(
            "UPDATE users SET push_seq = push_seq + 1 WHERE id = ? RETURNING push_seq", (user_id,)
        )
        if row is None:
            raise LookupError(f"no user {user_id}")
        seq = int(row["push_seq"])
        await self._exec(
            "INSERT INTO pushes (user_id, seq, body, created_ts) VALUES (?, ?, ?, ?)",
            (user_id, seq, body, now),
        )
        return StoredPush(user_id=user_id, seq=seq, body=body, created_ts=now)

    async def append_if(
        self, user_id: int | None, body: str, now: int, *, stand_in: int
    ) -> StoredPush | None:
        step, owner = (1, user_id) if user_id is not None else (0, stand_in)
        row = await self._one(
            "UPDATE users SET push_seq = push_seq + ? WHERE id = ? RETURNING push_seq",
            (step, owner),
        )
        seq = int(row["push_seq"]) if row is not None and user_id is not None else None
        # Without a push, the placeholder (user 0, seq 0) is replaced: the same table and
        # index pages are written as for a new push, and no user ever reads it.
        await self._exec(
            "INSERT OR REPLACE INTO pushes (user_id, seq, body, created_ts) VALUES (?, ?, ?, ?)",
            (0, 0, body, now) if seq is None else (user_id, seq, body, now),
        )
        if user_id is None or seq is None:
            return None
        return StoredPush(user_id=user_id, seq=seq, body=body, created_ts=now)

    async def current_seq(self, user_id: int) -> int:
        row = await self._one("SELECT push_seq FROM users WHERE id = ?", (user_id,))
        return int(row["push_seq"]) if row else 0

    async def after(self, user_id: int, after: int, upto: int, limit: int) -> list[StoredPush]:
        rows = await self._all(
            "SELECT * FROM pushes WHERE user_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (user_id, after, upto, limit),
        )
        return [_push(row) for row in rows]

    async def oldest_seq(self, user_id: int) -> int | None:
        row = await self._one("SELECT MIN(seq) AS seq FROM pushes WHERE user_id = ?", (user_id,))
        return row["seq"] if row else None

    async def undelivered(self, user_id: int, upto: int, limit: int) -> list[StoredPush]:
        rows = await self._all(
            "SELECT * FROM pushes WHERE user_id = ? AND seq <= ? AND delivered = 0"
            " ORDER BY seq LIMIT ?",
            (user_id, upto, limit),
        )
        return [_push(row) for row in rows]

    async def mark_delivered(self, pushes: Iterable[tuple[int, int]]) -> None:
        await self.db.executemany(
            "UPDATE pushes SET delivered = 1 WHERE user_id = ? AND seq = ?", list(pushes)
        )

    async def ack(self, user_id: int, seq: int) -> None:
        await self._exec(
            "UPDATE users SET acked_seq = MAX(acked_seq, MIN(?, push_seq)) WHERE id = ?",
            (seq, user_id),
        )

    async def prune(self, before_ts: int) -> int:
        cur = await self._exec("DELETE FROM pushes WHERE created_ts < ?", (before_ts,))
        return cur.rowcount


class SqliteUnit(Unit):
    """The repositories bound to one connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        super().__init__()
        self.db = db
        self.users = SqliteUsers(db)
        self.tokens = SqliteTokens(db)
        self.codes = SqliteCodes(db)
        self.sms = SqliteSmsLog(db)
        self.pushes = SqlitePushes(db)
        from lovewire.storage import sqlite_crush  # here: it imports SqliteRepo from this module

        self.crushes = sqlite_crush.SqliteCrushes(db)
        self.tel_changes = sqlite_crush.SqliteTelChanges(db)
        from lovewire.storage import sqlite_pictures

        self.pictures = sqlite_pictures.SqlitePictures(db)


async def _connect(path: Path) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    for pragma in (
        "journal_mode = WAL",
        "synchronous = FULL",
        "foreign_keys = ON",
        "busy_timeout = 5000",
    ):
        await db.execute(f"PRAGMA {pragma}")
    return db


async def _begin(db: aiosqlite.Connection, sql: str) -> None:
    """Start a transaction; if cancelled meanwhile, end it before giving the connection up.

    aiosqlite runs the statement in its thread even when the awaiting task is cancelled,
    so without this the next unit on the connection would find a transaction open.
    """
    begin, cancelled = await _finish(db.execute(sql))
    if cancelled:
        if begin.exception() is None:
            await _finish(db.execute("ROLLBACK"))
        raise asyncio.CancelledError
    begin.result()


async def _finish(statement: Any) -> tuple[asyncio.Future[Any], bool]:
    """Run a statement to its end even if cancelled meanwhile; return it and whether we were.

    The connection's state is known afterwards, whatever happened to the awaiting task.
    """
    done = asyncio.ensure_future(statement)
    cancelled = False
    while not done.done():
        try:
            await asyncio.wait([done])
        except asyncio.CancelledError:
            cancelled = True
    return done, cancelled


def migrations() -> list[tuple[int, str, str]]:
    """The numbered migrations shipped with the package, in order: (number, name, sql)."""
    found = []
    for item in resources.files("lovewire.storage").joinpath("migrations").iterdir():
        if item.name.endswith(".sql"):
            number = int(item.name.split("_", 1)[0])
            found.append((number, item.name, item.read_text(encoding="utf-8")))
    found.sort()
    return found


#: Most units in one group transaction.
GROUP_MAX = 256


class StoreError(Exception):
    """A write could not be made durable; nothing of its unit was kept."""


class StoreClosed(StoreError):
    """The store is closed."""


@dataclass(slots=True)
class _Group:
    """Units sharing one transaction, and the future their callers await."""

    committed: asyncio.Future[None]
    #: Units released into the group (their callers await `committed`).
    units: int = 0
    #: Units that ran in the group, failed ones included: the group's size.
    ran: int = 0
    broken: bool = False


class SqliteStore(Store):
    """A SQLite database file; writes are serialised, reads run beside them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._queued = 0
        self._group: _Group | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all: list[aiosqlite.Connection] = []

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await _connect(self.path)
            self._all.append(self._writer)
            await self._migrate(self._writer)
            for _ in range(READERS):
                reader = await _connect(self.path)
                self._all.append(reader)
                self._readers.put_nowait(reader)
        except BaseException:
            await self.close()
            raise

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        for number, name, sql in migrations():
            if number <= version:
                continue
            log.info("applying migration %s", name)
            try:
                await db.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;"
                )
            except BaseException:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        if self._writer is not None:
            async with self._write_lock:
                if self._group is not None:
                    await self._commit_group()
        connections, self._all = self._all, []
        self._writer = None
        for db in connections:
            await db.close()

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[Unit]:
        """A write unit: a savepoint inside the current group transaction.

        Units run one at a time on the writer. Units that queue up behind each other share
        one transaction, committed (one fsync) when nobody else is waiting or the group is
        full; each unit returns only once its group has committed, so it is as durable as a
        transaction of its own.
        """
        self._queued += 1
        try:
            await self._write_lock.acquire()
        finally:
            self._queued -= 1
        group: _Group | None = None
        try:
            db = self._writer
            if db is None:
                raise StoreClosed("store is closed")
            if self._group is not None and (self._group.broken or not db.in_transaction):
                # SQLite dropped the group's transaction: end it (its units fail) before a
                # savepoint here would start a transaction of its own, committed unseen.
                await self._commit_group()
            if self._group is None:
                await _begin(db, "BEGIN IMMEDIATE")
                self._group = _Group(asyncio.get_running_loop().create_future())
            self._group.ran += 1
            await db.execute("SAVEPOINT unit")
            try:
                yield SqliteUnit(db)
            except BaseException:
                await self._undo_unit(db)
                raise
            await db.execute("RELEASE unit")
            group = self._group
            group.units += 1
        finally:
            try:
                if self._group is not None and (
                    self._queued == 0 or self._group.ran >= GROUP_MAX or self._writer is None
                ):
                    await self._commit_group()
            finally:
                self._write_lock.release()
        # Shielded: a caller cancelled here must not cancel the future its group shares.
        await asyncio.shield(group.committed)

    async def _undo_unit(self, db: aiosqlite.Connection) -> None:
        """Roll one unit back; the group stays, unless SQLite already dropped it."""
        try:
            await db.execute("ROLLBACK TO unit")
            await db.execute("RELEASE unit")
        except Exception:
            log.exception("could not roll a unit back; its whole group fails")
            if self._group is not None:
                self._group.broken = True

    async def _commit_group(self) -> None:
        """Commit the current group and tell its units (all of them fail if it fails).

        The units are told in every case, even if the caller is cancelled meanwhile; the
        cancellation is raised once the connection is out of the transaction.
        """
        group, self._group = self._group, None
        db = self._writer
        assert group is not None and db is not None
        cancelled = False
        error: BaseException | None = None
        if group.broken or not db.in_transaction:
            error = StoreError("the group transaction was lost; nothing of it was kept")
        else:
            commit, cancelled = await _finish(db.execute("COMMIT"))
            error = commit.exception()
        if error is None:
            group.committed.set_result(None)
        else:
            if db.in_transaction:
                rollback, interrupted = await _finish(db.execute("ROLLBACK"))
                cancelled = cancelled or interrupted
                if rollback.exception() is not None:
                    log.error("could not roll a failed group back: %r", rollback.exception())
            if group.units:
                group.committed.set_exception(StoreError(f"commit failed: {error!r}"))
                group.committed.exception()  # its units are told; none of them may be waiting
            else:
                group.committed.set_result(None)
        if cancelled:
            raise asyncio.CancelledError

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Unit]:
        db = await self._readers.get()
        try:
            await _begin(db, "BEGIN")
            try:
                yield SqliteUnit(db)
            finally:
                # To the end even if cancelled: the reader goes back out of its snapshot.
                rollback, cancelled = await _finish(db.execute("ROLLBACK"))
                if rollback.exception() is not None:
                    log.error("a reader could not end its snapshot: %r", rollback.exception())
                if cancelled:
                    raise asyncio.CancelledError
        finally:
            self._readers.put_nowait(db)

    async def healthy(self) -> bool:
        try:
            async with self.read() as tx:
                await tx.pushes.current_seq(0)
        except Exception:
            log.exception("database health check failed")
            return False
        return True
