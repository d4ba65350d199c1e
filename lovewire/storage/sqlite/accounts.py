"""The SQLite repositories of accounts: users, session tokens, SMS codes and the SMS log."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lovewire.storage.base import CodeRepo, SmsLogRepo, TokenRepo, UserRepo
from lovewire.storage.errors import UnknownUser
from lovewire.storage.records import Code, ProfileChanges, Token, User, from_row
from lovewire.storage.sqlite.repo import SqliteRepo

__all__ = ["SqliteCodes", "SqliteSmsLog", "SqliteTokens", "SqliteUsers"]


class SqliteUsers(SqliteRepo, UserRepo):
    async def get(self, user_id: int) -> User | None:
        row = await self._one("SELECT * FROM users WHERE id = ?", (user_id,))
        return from_row(User, row) if row else None

    async def by_tel(self, tel: str) -> User | None:
        row = await self._one("SELECT * FROM users WHERE tel = ?", (tel,))
        return from_row(User, row) if row else None

    async def get_many(self, user_ids: Iterable[int]) -> dict[int, User]:
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = await self._all(f"SELECT * FROM users WHERE id IN ({marks})", ids)
        return {row["id"]: from_row(User, row) for row in rows}

    async def create(self, tel: str, nickname: str, sex: int, birthday: str, now: int) -> User:
        row = await self._one(
            "INSERT INTO users (tel, nickname, sex, birthday, created_ts) VALUES (?, ?, ?, ?, ?)"
            " RETURNING *",
            (tel, nickname, sex, birthday, now),
        )
        assert row is not None
        return from_row(User, row)

    async def update_profile(self, user_id: int, changes: ProfileChanges) -> User:
        values = changes.items()
        if values:
            # The names are the dataclass's own fields, never a caller's string.
            sets = ", ".join(f"{name} = ?" for name, _ in values)
            params = (*(value for _, value in values), user_id)
            await self._exec(f"UPDATE users SET {sets} WHERE id = ?", params)
        return await self._got(user_id)

    async def set_tel(self, user_id: int, tel: str) -> User:
        await self._exec("UPDATE users SET tel = ? WHERE id = ?", (tel, user_id))
        return await self._got(user_id)

    async def set_crush_receive(self, user_id: int, receive: bool) -> User:
        await self._exec("UPDATE users SET crush_receive = ? WHERE id = ?", (int(receive), user_id))
        return await self._got(user_id)

    async def _got(self, user_id: int) -> User:
        user = await self.get(user_id)
        if user is None:
            raise UnknownUser(f"no user {user_id}")
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
            raise UnknownUser(f"no user {user_id}")
        return int(row["token_gen"])


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
        return from_row(Token, row) if row else None

    async def live_session(self, token_hash: bytes, now: int) -> Token | None:
        row = await self._one(
            f"SELECT * FROM tokens t WHERE t.hash = ? AND {LIVE}", (token_hash, now)
        )
        return from_row(Token, row) if row else None

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
        await self._many("UPDATE tokens SET revoked = 1 WHERE id = ?", [(i,) for i in token_ids])

    async def active_ids(self, user_id: int, now: int) -> list[int]:
        rows = await self._all(
            f"SELECT t.id FROM tokens t WHERE t.user_id = ? AND {LIVE}", (user_id, now)
        )
        return [row["id"] for row in rows]


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
        return from_row(Code, row) if row else None

    async def fail(self, code_id: int) -> int:
        row = await self._one(
            "UPDATE sms_codes SET attempts = attempts + 1 WHERE id = ? RETURNING attempts",
            (code_id,),
        )
        return int(row["attempts"]) if row else 0

    async def use(self, code_id: int) -> bool:
        cur = await self._exec(
            "UPDATE sms_codes SET used = 1 WHERE id = ? AND used = 0", (code_id,)
        )
        return cur.rowcount == 1

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
