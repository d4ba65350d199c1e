"""The PostgreSQL repository of the picture community.

One like per user and picture: the primary key, and `INSERT ... ON CONFLICT DO NOTHING`
whose row count tells whether this like is new (a second insert waits for the first to
commit, then does nothing). A like or an unlike is one call of a server-side function
(migration 0007), which locks the picture's row first, so likes of one picture take turns.
Per-user budgets (`actions_since`, `record_action`) are counted under a lock named by the
user and the kind, so parallel requests in any processes cannot pass a budget together.
"""

from __future__ import annotations

from collections.abc import Sequence

from lovewire.storage.base import PictureRepo
from lovewire.storage.postgres.repo import PgRepo
from lovewire.storage.records import (
    FeedPost,
    Liked,
    Picture,
    PictureComment,
    Unliked,
    from_row,
)

__all__ = ["PgPictures"]

#: A comment row with its author's nickname (its reply count is a column).
_COMMENT = "c.*, u.nickname AS author_nickname"
#: An id above every id: `before` when the caller gives none.
_TOP = 2**63 - 1


class PgPictures(PgRepo, PictureRepo):
    async def create(
        self, owner_id: int, path: str, words: str, client_msg_id: str | None, now: int
    ) -> Picture:
        row = await self._one(
            "INSERT INTO pictures (owner_id, path, words, client_msg_id, created_ts)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING *",
            owner_id,
            path,
            words,
            client_msg_id,
            now,
        )
        assert row is not None
        return from_row(Picture, row)

    async def get(self, picture_id: int) -> Picture | None:
        row = await self._one("SELECT * FROM pictures WHERE id = $1", picture_id)
        return from_row(Picture, row) if row else None

    async def by_client_msg_id(self, owner_id: int, client_msg_id: str) -> Picture | None:
        row = await self._one(
            "SELECT * FROM pictures WHERE owner_id = $1 AND client_msg_id = $2",
            owner_id,
            client_msg_id,
        )
        return from_row(Picture, row) if row else None

    async def delete(self, picture_id: int) -> None:
        await self._exec("DELETE FROM pictures WHERE id = $1", picture_id)

    async def feed(self, viewer_id: int, before: int | None, limit: int) -> list[FeedPost]:
        rows = await self._all(
            "SELECT p.*, u.nickname AS owner_nickname,"
            " EXISTS (SELECT 1 FROM picture_likes l"
            "   WHERE l.picture_id = p.id AND l.user_id = $1) AS liked_by_me"
            " FROM pictures p JOIN users u ON u.id = p.owner_id"
            " WHERE p.id < $2 ORDER BY p.id DESC LIMIT $3",
            viewer_id,
            before if before is not None else _TOP,
            limit,
        )
        return [
            FeedPost(
                id=row["id"],
                owner_id=row["owner_id"],
                owner_nickname=row["owner_nickname"],
                path=row["path"],
                words=row["words"],
                created_ts=row["created_ts"],
                like_count=row["like_count"],
                comment_count=row["comment_count"],
                liked_by_me=row["liked_by_me"],
            )
            for row in rows
        ]

    async def comments_of(
        self, picture_ids: Sequence[int], per_picture: int, before: int | None = None
    ) -> list[PictureComment]:
        if not picture_ids:
            return []
        rows = await self._all(
            f"SELECT {_COMMENT} FROM unnest($1::bigint[]) AS p (id)"
            " CROSS JOIN LATERAL (SELECT t.* FROM picture_comments t"
            "   WHERE t.picture_id = p.id AND t.parent_id IS NULL AND t.id < $2"
            "   ORDER BY t.id DESC LIMIT $3) c"
            " JOIN users u ON u.id = c.author_id"
            " ORDER BY c.picture_id, c.id",
            [int(i) for i in picture_ids],
            before if before is not None else _TOP,
            per_picture,
        )
        return [from_row(PictureComment, row) for row in rows]

    async def replies_of(
        self, comment_ids: Sequence[int], per_comment: int, before: int | None = None
    ) -> list[PictureComment]:
        if not comment_ids:
            return []
        rows = await self._all(
            f"SELECT {_COMMENT} FROM unnest($1::bigint[]) AS p (id)"
            " CROSS JOIN LATERAL (SELECT t.* FROM picture_comments t"
            "   WHERE t.parent_id = p.id AND t.id < $2 ORDER BY t.id DESC LIMIT $3) c"
            " JOIN users u ON u.id = c.author_id"
            " ORDER BY c.parent_id, c.id",
            [int(i) for i in comment_ids],
            before if before is not None else _TOP,
            per_comment,
        )
        return [from_row(PictureComment, row) for row in rows]

    async def like(self, picture_id: int, user_id: int, now: int) -> Liked | None:
        row = await self._one("SELECT * FROM lovewire_like($1, $2, $3)", picture_id, user_id, now)
        if row is None or not row["picture_found"]:
            return None
        return Liked(
            added=row["added"],
            count=row["likes"],
            owner_id=row["owner_user"],
            tell_owner=row["tell"],
            liker_nickname=row["liker_nickname"] or "",
        )

    async def unlike(self, picture_id: int, user_id: int) -> Unliked | None:
        row = await self._one("SELECT * FROM lovewire_unlike($1, $2)", picture_id, user_id)
        if row is None or not row["picture_found"]:
            return None
        return Unliked(removed=row["removed"], count=row["likes"])

    async def like_count(self, picture_id: int) -> int:
        row = await self._one("SELECT like_count AS n FROM pictures WHERE id = $1", picture_id)
        return int(row["n"]) if row else 0

    async def add_comment(
        self,
        picture_id: int,
        author_id: int,
        msg: str,
        parent_id: int | None,
        reply_to: int | None,
        client_msg_id: str | None,
        now: int,
    ) -> PictureComment:
        row = await self._one(
            "INSERT INTO picture_comments"
            " (picture_id, parent_id, reply_to, author_id, msg, client_msg_id, created_ts)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            picture_id,
            parent_id,
            reply_to,
            author_id,
            msg,
            client_msg_id,
            now,
        )
        assert row is not None
        comment = await self.get_comment(int(row["id"]))
        assert comment is not None
        return comment

    async def get_comment(self, comment_id: int) -> PictureComment | None:
        row = await self._one(
            f"SELECT {_COMMENT} FROM picture_comments c JOIN users u ON u.id = c.author_id"
            " WHERE c.id = $1",
            comment_id,
        )
        return from_row(PictureComment, row) if row else None

    async def comment_by_client_msg_id(
        self, author_id: int, client_msg_id: str
    ) -> PictureComment | None:
        row = await self._one(
            f"SELECT {_COMMENT} FROM picture_comments c JOIN users u ON u.id = c.author_id"
            " WHERE c.author_id = $1 AND c.client_msg_id = $2",
            author_id,
            client_msg_id,
        )
        return from_row(PictureComment, row) if row else None

    async def delete_comment(self, comment_id: int) -> None:
        await self._exec("DELETE FROM picture_comments WHERE id = $1", comment_id)

    async def path_in_use(self, path: str) -> bool:
        row = await self._one(
            "SELECT EXISTS (SELECT 1 FROM pictures WHERE path = $1)"
            " OR EXISTS (SELECT 1 FROM users WHERE avatar = $1)"
            " OR EXISTS (SELECT 1 FROM chat_messages WHERE picture = $1) AS used",
            path,
        )
        return bool(row and row["used"])

    async def lock_path(self, path: str) -> None:
        await self._lock("media", path)

    async def actions_since(self, user_id: int, kind: str, since: int) -> tuple[int, int | None]:
        await self._lock("actions", user_id, kind)
        row = await self._one(
            "SELECT COUNT(*) AS n, MIN(ts) AS first FROM community_actions"
            " WHERE user_id = $1 AND kind = $2 AND ts >= $3",
            user_id,
            kind,
            since,
        )
        assert row is not None
        return int(row["n"]), row["first"]

    async def record_action(self, user_id: int, kind: str, now: int, forget_before: int) -> None:
        await self._lock("actions", user_id, kind)
        await self._exec(
            "DELETE FROM community_actions WHERE user_id = $1 AND kind = $2 AND ts < $3",
            user_id,
            kind,
            forget_before,
        )
        await self._exec(
            "INSERT INTO community_actions (user_id, kind, ts) VALUES ($1, $2, $3)",
            user_id,
            kind,
            now,
        )

    async def take_back_action(self, user_id: int, kind: str, ts: int) -> None:
        await self._exec(
            "DELETE FROM community_actions WHERE id = (SELECT id FROM community_actions"
            " WHERE user_id = $1 AND kind = $2 AND ts = $3 LIMIT 1)",
            user_id,
            kind,
            ts,
        )
