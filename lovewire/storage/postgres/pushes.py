"""The PostgreSQL repository of stored pushes and each user's push seq.

The seq counter is the user's row: `UPDATE ... RETURNING push_seq` locks it until the unit
ends, so a second writer to the same user (in any process) waits, then reads the first
one's committed value, and a unit rolled back gives its seq back: gapless per user.
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
            "UPDATE users SET push_seq = push_seq + 1 WHERE id = $1 RETURNING push_seq", user_id
        )
        if row is None:
            raise UnknownUser(f"no user {user_id}")
        seq = int(row["push_seq"])
        await self._exec(
            "INSERT INTO pushes (user_id, seq, body, created_ts) VALUES ($1, $2, $3, $4)",
            user_id,
            seq,
            body,
            now,
        )
        return StoredPush(user_id=user_id, seq=seq, body=body, created_ts=now)

    async def append_if(
        self, user_id: int | None, body: str, now: int, *, stand_in: int
    ) -> StoredPush | None:
        step, owner = (1, user_id) if user_id is not None else (0, stand_in)
        row = await self._one(
            "UPDATE users SET push_seq = push_seq + $1 WHERE id = $2 RETURNING push_seq",
            step,
            owner,
        )
        seq = int(row["push_seq"]) if row is not None and user_id is not None else None
        # Without a push, the placeholder (user 0, seq 0) is replaced: the same table and
        # index are written as for a new push, and no user ever reads it.
        target = (0, 0) if seq is None else (user_id, seq)
        await self._exec(
            "INSERT INTO pushes (user_id, seq, body, created_ts) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (user_id, seq) DO UPDATE SET body = excluded.body,"
            " created_ts = excluded.created_ts, delivered = FALSE",
            *target,
            body,
            now,
        )
        if user_id is None or seq is None:
            return None
        return StoredPush(user_id=user_id, seq=seq, body=body, created_ts=now)

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
