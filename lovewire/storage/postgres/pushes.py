"""The PostgreSQL repository of stored pushes and each user's push seq.

The seq counter is the user's row: `UPDATE ... RETURNING push_seq` locks it until the unit
ends, so a second writer to the same user (in any process) waits, then reads the first
one's committed value, and a unit rolled back gives its seq back: gapless per user. The
UPDATE and the push's INSERT are one statement (a CTE): one round trip a push.
"""

from __future__ import annotations

from collections.abc import Iterable

from lovewire.storage.base import PushRepo
from lovewire.storage.errors import UnknownUser
from lovewire.storage.postgres.repo import PgRepo
from lovewire.storage.records import StoredPush, from_row

__all__ = ["PgPushes"]


class PgPushes(PgRepo, PushRepo):
    async def append(self, user_id: int, body: str, now: int) -> StoredPush:
        row = await self._one(
            "WITH counter AS ("
            " UPDATE users SET push_seq = push_seq + 1 WHERE id = $1 RETURNING push_seq)"
            " INSERT INTO pushes (user_id, seq, body, created_ts)"
            " SELECT $1, push_seq, $2, $3 FROM counter RETURNING seq",
            user_id,
            body,
            now,
        )
        if row is None:
            raise UnknownUser(f"no user {user_id}")
        return StoredPush(user_id=user_id, seq=int(row["seq"]), body=body, created_ts=now)

    async def append_if(
        self, user_id: int | None, body: str, now: int, *, stand_in: int
    ) -> StoredPush | None:
        real = user_id is not None
        # Without a push, the row of `stand_in` is rewritten unchanged and the placeholder
        # (user 0, seq 0) is replaced: the same tables and indexes are written as for a
        # new push, by the same one statement, and no user ever reads the placeholder.
        row = await self._one(
            "WITH counter AS ("
            " UPDATE users SET push_seq = push_seq + $1::boolean::int WHERE id = $2"
            " RETURNING push_seq)"
            " INSERT INTO pushes (user_id, seq, body, created_ts)"
            " SELECT CASE WHEN $1::boolean AND c.push_seq IS NOT NULL THEN $2 ELSE 0 END,"
            "  CASE WHEN $1::boolean AND c.push_seq IS NOT NULL THEN c.push_seq ELSE 0 END, $3, $4"
            " FROM (VALUES (1)) AS one LEFT JOIN counter c ON TRUE"
            " ON CONFLICT (user_id, seq) DO UPDATE SET body = excluded.body,"
            " created_ts = excluded.created_ts, delivered = FALSE"
            " RETURNING user_id, seq",
            real,
            user_id if user_id is not None else stand_in,
            body,
            now,
        )
        if user_id is None or row is None or row["user_id"] == 0:
            return None
        return StoredPush(user_id=user_id, seq=int(row["seq"]), body=body, created_ts=now)

    async def current_seq(self, user_id: int) -> int:
        row = await self._one("SELECT push_seq FROM users WHERE id = $1", user_id)
        return int(row["push_seq"]) if row else 0

    async def after(self, user_id: int, after: int, upto: int, limit: int) -> list[StoredPush]:
        rows = await self._all(
            "SELECT * FROM pushes WHERE user_id = $1 AND seq > $2 AND seq <= $3"
            " ORDER BY seq LIMIT $4",
            user_id,
            after,
            upto,
            limit,
        )
        return [from_row(StoredPush, row) for row in rows]

    async def oldest_seq(self, user_id: int) -> int | None:
        row = await self._one("SELECT MIN(seq) AS seq FROM pushes WHERE user_id = $1", user_id)
        return row["seq"] if row else None

    async def undelivered(self, user_id: int, upto: int, limit: int) -> list[StoredPush]:
        rows = await self._all(
            "SELECT * FROM pushes WHERE user_id = $1 AND seq <= $2 AND NOT delivered"
            " ORDER BY seq LIMIT $3",
            user_id,
            upto,
            limit,
        )
        return [from_row(StoredPush, row) for row in rows]

    async def mark_delivered(self, pushes: Iterable[tuple[int, int]]) -> None:
        # In one order, so two units marking overlapping pushes never wait on each other
        # in a cycle.
        await self._many(
            "UPDATE pushes SET delivered = TRUE WHERE user_id = $1 AND seq = $2",
            sorted(set(pushes)),
        )

    async def ack(self, user_id: int, seq: int) -> None:
        await self._exec(
            "UPDATE users SET acked_seq = GREATEST(acked_seq, LEAST($2, push_seq)) WHERE id = $1",
            user_id,
            seq,
        )

    async def prune(self, before_ts: int) -> int:
        return await self._exec("DELETE FROM pushes WHERE created_ts < $1", before_ts)
