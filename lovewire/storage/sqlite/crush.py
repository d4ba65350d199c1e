"""The SQLite repositories of secret crushes and pending phone number changes."""

from __future__ import annotations

from collections.abc import Iterable

from lovewire.storage.base import CrushRepo, TelChangeRepo
from lovewire.storage.records import Crush, TelChange, from_row
from lovewire.storage.sqlite.repo import SqliteRepo

__all__ = ["SqliteCrushes", "SqliteTelChanges"]

#: A crush row with its `matched` flag.
_SELECT = (
    "SELECT c.*, EXISTS (SELECT 1 FROM crush_matches m"
    " WHERE m.low_crush = c.id OR m.high_crush = c.id) AS matched FROM crushes c"
)
#: Active: matched, or unmatched and still within its 90 days (`?` is `fresh`).
_ACTIVE = "(matched OR c.since_ts >= ?)"


class SqliteCrushes(SqliteRepo, CrushRepo):
    async def get(self, user_id: int, crush_tel: str, fresh: int) -> Crush | None:
        row = await self._one(
            f"SELECT * FROM ({_SELECT} WHERE c.user_id = ? AND c.crush_tel = ?) c WHERE {_ACTIVE}",
            (user_id, crush_tel, fresh),
        )
        return from_row(Crush, row) if row else None

    async def of_user(self, user_id: int, fresh: int) -> list[Crush]:
        rows = await self._all(
            f"SELECT * FROM ({_SELECT} WHERE c.user_id = ?) c WHERE {_ACTIVE}"
            " ORDER BY c.created_ts DESC, c.id DESC",
            (user_id, fresh),
        )
        return [from_row(Crush, row) for row in rows]

    async def add(self, user_id: int, crush_tel: str, words: str, now: int, fresh: int) -> Crush:
        # An expired crush on the same tel gives way (it is unmatched, so no match goes).
        await self._exec(
            "DELETE FROM crushes WHERE user_id = ? AND crush_tel = ? AND since_ts < ?",
            (user_id, crush_tel, fresh),
        )
        row = await self._one(
            "INSERT INTO crushes (user_id, crush_tel, words, created_ts, since_ts)"
            " VALUES (?, ?, ?, ?, ?) RETURNING *, 0 AS matched",
            (user_id, crush_tel, words, now, now),
        )
        assert row is not None
        await self._exec(
            "INSERT INTO crush_adds (user_id, crush_tel, ts) VALUES (?, ?, ?)",
            (user_id, crush_tel, now),
        )
        return from_row(Crush, row)

    async def remove(self, crush: Crush, now: int) -> int | None:
        row = await self._one(
            "SELECT low_user, high_user, low_crush, high_crush FROM crush_matches"
            " WHERE low_crush = ? OR high_crush = ?",
            (crush.id, crush.id),
        )
        await self._exec(
            "DELETE FROM crush_matches WHERE low_crush = ? OR high_crush = ?", (crush.id, crush.id)
        )
        await self._exec("DELETE FROM crushes WHERE id = ?", (crush.id,))
        if row is not None:
            other = row["high_crush"] if row["low_crush"] == crush.id else row["low_crush"]
            await self._exec("UPDATE crushes SET since_ts = ? WHERE id = ?", (now, other))
            return int(row["high_user"] if row["low_crush"] == crush.id else row["low_user"])
        return None

    async def count_of_user(self, user_id: int, fresh: int) -> int:
        row = await self._one(
            f"SELECT COUNT(*) AS n FROM ({_SELECT} WHERE c.user_id = ?) c WHERE {_ACTIVE}",
            (user_id, fresh),
        )
        return int(row["n"]) if row else 0

    async def tels_added_since(self, user_id: int, since: int) -> set[str]:
        rows = await self._all(
            "SELECT DISTINCT crush_tel FROM crush_adds WHERE user_id = ? AND ts >= ?",
            (user_id, since),
        )
        return {row["crush_tel"] for row in rows}

    async def pending_from(self, admirer_tel: str, crush_tel: str, fresh: int) -> Crush | None:
        row = await self._one(
            f"SELECT * FROM ({_SELECT} JOIN users u ON u.id = c.user_id"
            " WHERE u.tel = ? AND c.crush_tel = ?) c WHERE NOT matched AND c.since_ts >= ?",
            (admirer_tel, crush_tel, fresh),
        )
        return from_row(Crush, row) if row else None

    async def naming(self, crush_tel: str, fresh: int) -> list[Crush]:
        rows = await self._all(
            f"SELECT * FROM ({_SELECT} WHERE c.crush_tel = ?) c WHERE {_ACTIVE} ORDER BY c.id",
            (crush_tel, fresh),
        )
        return [from_row(Crush, row) for row in rows]

    async def count_naming(self, crush_tel: str, fresh: int) -> int:
        row = await self._one(
            f"SELECT COUNT(*) AS n FROM ({_SELECT} WHERE c.crush_tel = ?) c WHERE {_ACTIVE}",
            (crush_tel, fresh),
        )
        return int(row["n"]) if row else 0

    async def match(self, first: Crush, second: Crush, now: int) -> None:
        low, high = sorted((first, second), key=lambda c: c.user_id)
        await self._exec(
            "INSERT INTO crush_matches (low_user, high_user, low_crush, high_crush, created_ts)"
            " VALUES (?, ?, ?, ?, ?)",
            (low.user_id, high.user_id, low.id, high.id, now),
        )

    async def last_notice(self, admirer_id: int, crush_tel: str) -> int | None:
        row = await self._one(
            "SELECT ts FROM crush_notices WHERE admirer_id = ? AND crush_tel = ?",
            (admirer_id, crush_tel),
        )
        return int(row["ts"]) if row else None

    async def noticed(self, admirer_ids: Iterable[int], crush_tel: str, ts: int) -> None:
        await self._many(
            "INSERT INTO crush_notices (admirer_id, crush_tel, ts) VALUES (?, ?, ?)"
            " ON CONFLICT (admirer_id, crush_tel) DO UPDATE SET ts = MAX(ts, excluded.ts)",
            [(admirer_id, crush_tel, ts) for admirer_id in admirer_ids],
        )


class SqliteTelChanges(SqliteRepo, TelChangeRepo):
    async def put(self, user_id: int, new_tel: str, old_tel: str, now: int) -> None:
        await self._exec(
            "INSERT INTO tel_changes (user_id, new_tel, old_tel, created_ts) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET new_tel = excluded.new_tel,"
            " old_tel = excluded.old_tel, created_ts = excluded.created_ts",
            (user_id, new_tel, old_tel, now),
        )

    async def get(self, user_id: int) -> TelChange | None:
        row = await self._one("SELECT * FROM tel_changes WHERE user_id = ?", (user_id,))
        return from_row(TelChange, row) if row else None

    async def delete(self, user_id: int) -> None:
        await self._exec("DELETE FROM tel_changes WHERE user_id = ?", (user_id,))
