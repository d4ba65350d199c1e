"""The PostgreSQL repositories of secret crushes and pending phone number changes.

Two users adding each other at once, from any processes: `add` takes a lock named by the
pair of tels, so the second add waits for the first to commit and then, under READ
COMMITTED, sees its crush in `pending_from`: the pair matches exactly once (the unique
keys of `crush_matches` are the backstop). The per-user caps (`count_of_user`,
`tels_added_since`) are counted under the user's crush lock, always taken before the
pair's, so two adds by one user cannot pass a cap together.
"""

from __future__ import annotations

from collections.abc import Iterable

from lovewire.storage.base import CrushRepo, TelChangeRepo
from lovewire.storage.errors import UnknownUser
from lovewire.storage.postgres.repo import PgRepo
from lovewire.storage.records import Crush, TelChange, from_row

__all__ = ["PgCrushes", "PgTelChanges"]

#: A crush row with its `matched` flag.
_SELECT = (
    "SELECT c.*, EXISTS (SELECT 1 FROM crush_matches m"
    " WHERE m.low_crush = c.id OR m.high_crush = c.id) AS matched FROM crushes c"
)


def _active(fresh: str) -> str:
    """Active: matched, or unmatched and still within its 90 days (`fresh` a parameter)."""
    return f"(c.matched OR c.since_ts >= {fresh})"


class PgCrushes(PgRepo, CrushRepo):
    async def get(self, user_id: int, crush_tel: str, fresh: int) -> Crush | None:
        row = await self._one(
            f"SELECT * FROM ({_SELECT} WHERE c.user_id = $1 AND c.crush_tel = $2) c"
            f" WHERE {_active('$3')}",
            user_id,
            crush_tel,
            fresh,
        )
        return from_row(Crush, row) if row else None

    async def of_user(self, user_id: int, fresh: int) -> list[Crush]:
        rows = await self._all(
            f"SELECT * FROM ({_SELECT} WHERE c.user_id = $1) c WHERE {_active('$2')}"
            " ORDER BY c.created_ts DESC, c.id DESC",
            user_id,
            fresh,
        )
        return [from_row(Crush, row) for row in rows]

    async def add(self, user_id: int, crush_tel: str, words: str, now: int, fresh: int) -> Crush:
        await self._lock("crush-user", user_id)
        me = await self._one("SELECT tel FROM users WHERE id = $1", user_id)
        if me is None:
            raise UnknownUser(f"no user {user_id}")
        await self._lock("crush-pair", *sorted((me["tel"], crush_tel)))
        # An expired crush on the same tel gives way (it is unmatched, so no match goes).
        await self._exec(
            "DELETE FROM crushes WHERE user_id = $1 AND crush_tel = $2 AND since_ts < $3",
            user_id,
            crush_tel,
            fresh,
        )
        row = await self._one(
            "INSERT INTO crushes (user_id, crush_tel, words, created_ts, since_ts)"
            " VALUES ($1, $2, $3, $4, $4) RETURNING *, FALSE AS matched",
            user_id,
            crush_tel,
            words,
            now,
        )
        assert row is not None
        await self._exec(
            "INSERT INTO crush_adds (user_id, crush_tel, ts) VALUES ($1, $2, $3)",
            user_id,
            crush_tel,
            now,
        )
        return from_row(Crush, row)

    async def remove(self, crush: Crush, now: int) -> int | None:
        row = await self._one(
            "DELETE FROM crush_matches WHERE low_crush = $1 OR high_crush = $1"
            " RETURNING low_user, high_user, low_crush, high_crush",
            crush.id,
        )
        await self._exec("DELETE FROM crushes WHERE id = $1", crush.id)
        if row is not None:
            other = row["high_crush"] if row["low_crush"] == crush.id else row["low_crush"]
            await self._exec("UPDATE crushes SET since_ts = $2 WHERE id = $1", other, now)
            return int(row["high_user"] if row["low_crush"] == crush.id else row["low_user"])
        return None

    async def count_of_user(self, user_id: int, fresh: int) -> int:
        await self._lock("crush-user", user_id)
        row = await self._one(
            f"SELECT COUNT(*) AS n FROM ({_SELECT} WHERE c.user_id = $1) c WHERE {_active('$2')}",
            user_id,
            fresh,
        )
        return int(row["n"]) if row else 0

    async def tels_added_since(self, user_id: int, since: int) -> set[str]:
        await self._lock("crush-user", user_id)
        rows = await self._all(
            "SELECT DISTINCT crush_tel FROM crush_adds WHERE user_id = $1 AND ts >= $2",
            user_id,
            since,
        )
        return {row["crush_tel"] for row in rows}

    async def pending_from(self, admirer_tel: str, crush_tel: str, fresh: int) -> Crush | None:
        row = await self._one(
            f"SELECT * FROM ({_SELECT} JOIN users u ON u.id = c.user_id"
            " WHERE u.tel = $1 AND c.crush_tel = $2) c WHERE NOT c.matched AND c.since_ts >= $3",
            admirer_tel,
            crush_tel,
            fresh,
        )
        return from_row(Crush, row) if row else None

    async def naming(self, crush_tel: str, fresh: int) -> list[Crush]:
        rows = await self._all(
            f"SELECT * FROM ({_SELECT} WHERE c.crush_tel = $1) c WHERE {_active('$2')}"
            " ORDER BY c.id",
            crush_tel,
            fresh,
        )
        return [from_row(Crush, row) for row in rows]

    async def count_naming(self, crush_tel: str, fresh: int) -> int:
        row = await self._one(
            f"SELECT COUNT(*) AS n FROM ({_SELECT} WHERE c.crush_tel = $1) c WHERE {_active('$2')}",
            crush_tel,
            fresh,
        )
        return int(row["n"]) if row else 0

    async def match(self, first: Crush, second: Crush, now: int) -> None:
        low, high = sorted((first, second), key=lambda c: c.user_id)
        await self._exec(
            "INSERT INTO crush_matches (low_user, high_user, low_crush, high_crush, created_ts)"
            " VALUES ($1, $2, $3, $4, $5)",
            low.user_id,
            high.user_id,
            low.id,
            high.id,
            now,
        )

    async def last_notice(self, admirer_id: int, crush_tel: str) -> int | None:
        row = await self._one(
            "SELECT ts FROM crush_notices WHERE admirer_id = $1 AND crush_tel = $2",
            admirer_id,
            crush_tel,
        )
        return int(row["ts"]) if row else None

    async def noticed(self, admirer_ids: Iterable[int], crush_tel: str, ts: int) -> None:
        await self._many(
            "INSERT INTO crush_notices (admirer_id, crush_tel, ts) VALUES ($1, $2, $3)"
            " ON CONFLICT (admirer_id, crush_tel)"
            " DO UPDATE SET ts = GREATEST(crush_notices.ts, excluded.ts)",
            [(admirer_id, crush_tel, ts) for admirer_id in sorted(set(admirer_ids))],
        )


class PgTelChanges(PgRepo, TelChangeRepo):
    async def put(self, user_id: int, new_tel: str, old_tel: str, now: int) -> None:
        await self._exec(
            "INSERT INTO tel_changes (user_id, new_tel, old_tel, created_ts)"
            " VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (user_id) DO UPDATE SET new_tel = excluded.new_tel,"
            " old_tel = excluded.old_tel, created_ts = excluded.created_ts",
            user_id,
            new_tel,
            old_tel,
            now,
        )

    async def get(self, user_id: int) -> TelChange | None:
        row = await self._one("SELECT * FROM tel_changes WHERE user_id = $1", user_id)
        return from_row(TelChange, row) if row else None

    async def delete(self, user_id: int) -> None:
        await self._exec("DELETE FROM tel_changes WHERE user_id = $1", user_id)
