"""The PostgreSQL repositories of accounts: users, session tokens, SMS codes and the SMS log."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lovewire.storage.base import CodeRepo, SmsLogRepo, TokenRepo, UserRepo
from lovewire.storage.errors import UnknownUser
from lovewire.storage.postgres.repo import PgRepo
from lovewire.storage.records import Code, ProfileChanges, Token, User, from_row

__all__ = ["PgCodes", "PgSmsLog", "PgTokens", "PgUsers"]


class PgUsers(PgRepo, UserRepo):
    async def get(self, user_id: int) -> User | None:
        row = await self._one("SELECT * FROM users WHERE id = $1", user_id)
        return from_row(User, row) if row else None

    async def by_tel(self, tel: str) -> User | None:
        row = await self._one("SELECT * FROM users WHERE tel = $1", tel)
        return from_row(User, row) if row else None

    async def get_many(self, user_ids: Iterable[int]) -> dict[int, User]:
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        rows = await self._all("SELECT * FROM users WHERE id = ANY($1::bigint[])", ids)
        return {row["id"]: from_row(User, row) for row in rows}

    async def create(self, tel: str, nickname: str, sex: int, birthday: str, now: int) -> User:
        row = await self._one(
            "INSERT INTO users (tel, nickname, sex, birthday, created_ts)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING *",
            tel,
            nickname,
            sex,
            birthday,
            now,
        )
        assert row is not None
        return from_row(User, row)

    async def update_profile(self, user_id: int, changes: ProfileChanges) -> User:
        values = changes.items()
        if values:
            # The names are the dataclass's own fields, never a caller's string.
            sets = ", ".join(f"{name} = ${i}" for i, (name, _) in enumerate(values, 2))
            params = (value for _, value in values)
            await self._exec(f"UPDATE users SET {sets} WHERE id = $1", user_id, *params)
        return await self._got(user_id)

    async def set_tel(self, user_id: int, tel: str) -> User:
        await self._exec("UPDATE users SET tel = $2 WHERE id = $1", user_id, tel)
        return await self._got(user_id)

    async def set_crush_receive(self, user_id: int, receive: bool) -> User:
        await self._exec("UPDATE users SET crush_receive = $2 WHERE id = $1", user_id, receive)
        return await self._got(user_id)

    async def _got(self, user_id: int) -> User:
        user = await self.get(user_id)
        if user is None:
            raise UnknownUser(f"no user {user_id}")
        return user

    async def lock_sessions(self, user_id: int) -> int | None:
        lock = " FOR NO KEY UPDATE" if self.session.writable else ""
        row = await self._one(f"SELECT token_gen FROM users WHERE id = $1{lock}", user_id)
        return int(row["token_gen"]) if row else None

    async def end_sessions(self, user_id: int) -> int:
        row = await self._one(
            "UPDATE users SET token_gen = token_gen + 1 WHERE id = $1 RETURNING token_gen",
            user_id,
        )
        if row is None:
            raise UnknownUser(f"no user {user_id}")
        return int(row["token_gen"])


def _live(now: str) -> str:
    """A live session token `t` at the parameter `now`: the one definition of "valid"."""
    return (
        f"t.kind = 'session' AND NOT t.revoked AND t.expires_ts > {now}"
        " AND t.gen = (SELECT u.token_gen FROM users u WHERE u.id = t.user_id)"
    )


class PgTokens(PgRepo, TokenRepo):
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
        row = await self._one(
            "INSERT INTO tokens (hash, kind, user_id, tel, expires_ts, created_ts, gen)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            token_hash,
            kind,
            user_id,
            tel,
            expires_ts,
            now,
            gen,
        )
        assert row is not None
        return int(row["id"])

    async def by_hash(self, token_hash: bytes) -> Token | None:
        row = await self._one("SELECT * FROM tokens WHERE hash = $1", token_hash)
        return from_row(Token, row) if row else None

    async def live_session(self, token_hash: bytes, now: int) -> Token | None:
        row = await self._one(
            f"SELECT * FROM tokens t WHERE t.hash = $1 AND {_live('$2')}", token_hash, now
        )
        return from_row(Token, row) if row else None

    async def hold(self, token_id: int, now: int) -> bool:
        lock = " FOR SHARE OF t" if self.session.writable else ""
        row = await self._one(
            f"SELECT 1 FROM tokens t WHERE t.id = $1 AND {_live('$2')}{lock}", token_id, now
        )
        return row is not None

    async def revoke_live(self, token_id: int, now: int) -> bool:
        changed = await self._exec(
            f"UPDATE tokens AS t SET revoked = TRUE WHERE t.id = $1 AND {_live('$2')}",
            token_id,
            now,
        )
        return changed == 1

    async def revoke_all(self, user_id: int, tels: Iterable[str]) -> None:
        await self._exec(
            "UPDATE tokens SET revoked = TRUE WHERE NOT revoked AND (user_id = $1"
            " OR (kind = 'ticket' AND tel = ANY($2::text[])))",
            user_id,
            sorted(set(tels)),
        )

    async def bind_ticket(self, token_id: int, user_id: int, now: int) -> bool:
        changed = await self._exec(
            "UPDATE tokens SET user_id = $2 WHERE id = $1 AND kind = 'ticket' AND NOT revoked"
            " AND expires_ts > $3 AND (user_id IS NULL OR user_id = $2)",
            token_id,
            user_id,
            now,
        )
        return changed == 1

    async def revoke(self, token_ids: Iterable[int]) -> None:
        ids = sorted(set(token_ids))
        if ids:
            await self._exec("UPDATE tokens SET revoked = TRUE WHERE id = ANY($1::bigint[])", ids)

    async def active_ids(self, user_id: int, now: int) -> list[int]:
        rows = await self._all(
            f"SELECT t.id FROM tokens t WHERE t.user_id = $1 AND {_live('$2')} ORDER BY t.id",
            user_id,
            now,
        )
        return [row["id"] for row in rows]


class PgCodes(PgRepo, CodeRepo):
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
            "UPDATE sms_codes SET used = TRUE WHERE tel = $1 AND purpose = $2 AND NOT used",
            tel,
            purpose,
        )
        row = await self._one(
            "INSERT INTO sms_codes (tel, purpose, user_id, code_hash, expires_ts, created_ts)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            tel,
            purpose,
            user_id,
            code_hash,
            expires_ts,
            now,
        )
        assert row is not None
        return int(row["id"])

    async def pending(
        self, tel: str, purpose: str, now: int, user_id: int | None = None
    ) -> Code | None:
        row = await self._one(
            "SELECT * FROM sms_codes WHERE tel = $1 AND purpose = $2 AND NOT used"
            " AND expires_ts > $3 AND ($4::bigint IS NULL OR user_id = $4)"
            " ORDER BY id DESC LIMIT 1",
            tel,
            purpose,
            now,
            user_id,
        )
        return from_row(Code, row) if row else None

    async def fail(self, code_id: int) -> int:
        row = await self._one(
            "UPDATE sms_codes SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts",
            code_id,
        )
        return int(row["attempts"]) if row else 0

    async def use(self, code_id: int) -> bool:
        changed = await self._exec(
            "UPDATE sms_codes SET used = TRUE WHERE id = $1 AND NOT used", code_id
        )
        return changed == 1

    async def delete(self, code_id: int) -> None:
        await self._exec("DELETE FROM sms_codes WHERE id = $1", code_id)

    async def failures_since(self, tel: str, since: int) -> int:
        row = await self._one(
            "SELECT COALESCE(SUM(attempts), 0) AS n FROM sms_codes"
            " WHERE tel = $1 AND created_ts >= $2",
            tel,
            since,
        )
        return int(row["n"]) if row else 0


class PgSmsLog(PgRepo, SmsLogRepo):
    """The SMS send log. Every method of a write unit first takes the one SMS lock: a unit
    that checks the caps and records a send runs alone among all processes, so the caps
    (per tel, per address, in total) count each send once, under READ COMMITTED."""

    async def record(self, tel: str, addr: str, now: int) -> int:
        await self._lock("sms")
        row = await self._one(
            "INSERT INTO sms_sends (tel, addr, ts) VALUES ($1, $2, $3) RETURNING id",
            tel,
            addr,
            now,
        )
        assert row is not None
        return int(row["id"])

    async def delete(self, send_id: int) -> None:
        await self._exec("DELETE FROM sms_sends WHERE id = $1", send_id)

    async def last_for_tel(self, tel: str) -> int | None:
        await self._lock("sms")
        row = await self._one("SELECT MAX(ts) AS ts FROM sms_sends WHERE tel = $1", tel)
        return row["ts"] if row else None

    async def _count(self, where: str, *args: Any) -> tuple[int, int | None]:
        await self._lock("sms")
        sql = f"SELECT COUNT(*) AS n, MIN(ts) AS first FROM sms_sends WHERE {where}"
        row = await self._one(sql, *args)
        assert row is not None
        return int(row["n"]), row["first"]

    async def count_tel(self, tel: str, since: int) -> tuple[int, int | None]:
        return await self._count("tel = $1 AND ts >= $2", tel, since)

    async def count_addr(self, addr: str, since: int) -> tuple[int, int | None]:
        return await self._count("addr = $1 AND ts >= $2", addr, since)

    async def count_all(self, since: int) -> tuple[int, int | None]:
        return await self._count("ts >= $1", since)
