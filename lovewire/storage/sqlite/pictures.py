"""The SQLite repository of the picture community."""

from __future__ import annotations

import json
from collections.abc import Sequence

from lovewire.storage.base import PictureRepo
from lovewire.storage.errors import ReadOnlyUnit
from lovewire.storage.records import (
    FeedPost,
    Liked,
    Picture,
    PictureComment,
    Unliked,
    from_row,
)
from lovewire.storage.sqlite.inline import InlineConnection
from lovewire.storage.sqlite.repo import SqliteRepo

__all__ = ["SqlitePictures"]

#: A comment row with its author's nickname (its reply count is a column).
_COMMENT = "c.*, u.nickname AS author_nickname"


def _ids(ids: Sequence[int]) -> str:
    """A list of ids as one JSON parameter, read back with json_each."""
    return json.dumps([int(i) for i in ids])


class SqlitePictures(SqliteRepo, PictureRepo):
    async def create(
        self, owner_id: int, path: str, words: str, client_msg_id: str | None, now: int
    ) -> Picture:
        row = await self._one(
            "INSERT INTO pictures (owner_id, path, words, client_msg_id, created_ts)"
            " VALUES (?, ?, ?, ?, ?) RETURNING *",
            (owner_id, path, words, client_msg_id, now),
        )
        assert row is not None
        return from_row(Picture, row)

    async def get(self, picture_id: int) -> Picture | None:
        row = await self._one("SELECT * FROM pictures WHERE id = ?", (picture_id,))
        return from_row(Picture, row) if row else None

    async def by_client_msg_id(self, owner_id: int, client_msg_id: str) -> Picture | None:
        row = await self._one(
            "SELECT * FROM pictures WHERE owner_id = ? AND client_msg_id = ?",
            (owner_id, client_msg_id),
        )
        return from_row(Picture, row) if row else None

    async def delete(self, picture_id: int) -> None:
        await self._exec("DELETE FROM pictures WHERE id = ?", (picture_id,))

    async def feed(self, viewer_id: int, before: int | None, limit: int) -> list[FeedPost]:
        rows = await self._all(
            "SELECT p.*, u.nickname AS owner_nickname,"
            " EXISTS (SELECT 1 FROM picture_likes l"
            "   WHERE l.picture_id = p.id AND l.user_id = ?) AS liked_by_me"
            " FROM pictures p JOIN users u ON u.id = p.owner_id"
            " WHERE p.id < ? ORDER BY p.id DESC LIMIT ?",
            (viewer_id, before if before is not None else 2**63 - 1, limit),
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
                liked_by_me=bool(row["liked_by_me"]),
            )
            for row in rows
        ]

    async def comments_of(
        self, picture_ids: Sequence[int], per_picture: int, before: int | None = None
    ) -> list[PictureComment]:
        if not picture_ids:
            return []
        rows = await self._all(
            f"SELECT {_COMMENT} FROM json_each(?) AS p"
            " JOIN picture_comments c ON c.id IN ("
            "   SELECT t.id FROM picture_comments t"
            "   WHERE t.picture_id = p.value AND t.parent_id IS NULL AND t.id < ?"
            "   ORDER BY t.id DESC LIMIT ?)"
            " JOIN users u ON u.id = c.author_id"
            " ORDER BY c.picture_id, c.id",
            (_ids(picture_ids), before if before is not None else 2**63 - 1, per_picture),
        )
        return [from_row(PictureComment, row) for row in rows]

    async def replies_of(
        self, comment_ids: Sequence[int], per_comment: int, before: int | None = None
    ) -> list[PictureComment]:
        if not comment_ids:
            return []
        rows = await self._all(
            f"SELECT {_COMMENT} FROM json_each(?) AS p"
            " JOIN picture_comments c ON c.id IN ("
            "   SELECT t.id FROM picture_comments t WHERE t.parent_id = p.value AND t.id < ?"
            "   ORDER BY t.id DESC LIMIT ?)"
            " JOIN users u ON u.id = c.author_id"
            " ORDER BY c.parent_id, c.id",
            (_ids(comment_ids), before if before is not None else 2**63 - 1, per_comment),
        )
        return [from_row(PictureComment, row) for row in rows]

    async def like(self, picture_id: int, user_id: int, now: int) -> Liked | None:
        self._writer_only("like")
        # The writer is the only one: what this read finds holds until the unit ends, so
        # it decides which of the two writes are needed and what the count becomes.
        row = await self._one(
            "SELECT p.owner_id, p.like_count,"
            " EXISTS (SELECT 1 FROM picture_likes l"
            "   WHERE l.picture_id = p.id AND l.user_id = ?2) AS liked,"
            " EXISTS (SELECT 1 FROM picture_like_notices n"
            "   WHERE n.picture_id = p.id AND n.user_id = ?2) AS told,"
            " (SELECT u.nickname FROM users u WHERE u.id = ?2) AS nickname"
            " FROM pictures p WHERE p.id = ?1",
            (picture_id, user_id),
        )
        if row is None:
            return None
        owner_id, count, liked, told, nickname = row
        if not liked:
            await self._exec(
                "INSERT INTO picture_likes (picture_id, user_id, created_ts) VALUES (?, ?, ?)",
                (picture_id, user_id, now),
            )
            count += 1
        tell = owner_id != user_id and not told
        if tell:
            await self._exec(
                "INSERT INTO picture_like_notices (picture_id, user_id) VALUES (?, ?)",
                (picture_id, user_id),
            )
        return Liked(
            added=not liked,
            count=count,
            owner_id=owner_id,
            tell_owner=tell,
            liker_nickname=nickname or "",
        )

    async def unlike(self, picture_id: int, user_id: int) -> Unliked | None:
        self._writer_only("unlike")
        row = await self._one(
            "SELECT p.like_count, EXISTS (SELECT 1 FROM picture_likes l"
            "   WHERE l.picture_id = p.id AND l.user_id = ?2) AS liked"
            " FROM pictures p WHERE p.id = ?1",
            (picture_id, user_id),
        )
        if row is None:
            return None
        count, liked = row
        if liked:
            await self._exec(
                "DELETE FROM picture_likes WHERE picture_id = ? AND user_id = ?",
                (picture_id, user_id),
            )
            count -= 1
        return Unliked(removed=bool(liked), count=count)

    def _writer_only(self, what: str) -> None:
        """Refuse a read unit loudly even when the write would have changed nothing."""
        if not isinstance(self.db, InlineConnection):
            raise ReadOnlyUnit(f"a read unit cannot {what}")

    async def like_count(self, picture_id: int) -> int:
        row = await self._one("SELECT like_count AS n FROM pictures WHERE id = ?", (picture_id,))
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
            " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (picture_id, parent_id, reply_to, author_id, msg, client_msg_id, now),
        )
        assert row is not None
        comment = await self.get_comment(int(row["id"]))
        assert comment is not None
        return comment

    async def get_comment(self, comment_id: int) -> PictureComment | None:
        row = await self._one(
            f"SELECT {_COMMENT} FROM picture_comments c JOIN users u ON u.id = c.author_id"
            " WHERE c.id = ?",
            (comment_id,),
        )
        return from_row(PictureComment, row) if row else None

    async def comment_by_client_msg_id(
        self, author_id: int, client_msg_id: str
    ) -> PictureComment | None:
        row = await self._one(
            f"SELECT {_COMMENT} FROM picture_comments c JOIN users u ON u.id = c.author_id"
            " WHERE c.author_id = ? AND c.client_msg_id = ?",
            (author_id, client_msg_id),
        )
        return from_row(PictureComment, row) if row else None

    async def delete_comment(self, comment_id: int) -> None:
        await self._exec("DELETE FROM picture_comments WHERE id = ?", (comment_id,))

    async def path_in_use(self, path: str) -> bool:
        row = await self._one(
            "SELECT EXISTS (SELECT 1 FROM pictures WHERE path = ?)"
            " OR EXISTS (SELECT 1 FROM users WHERE avatar = ?)"
            " OR EXISTS (SELECT 1 FROM chat_messages WHERE picture = ?) AS used",
            (path, path, path),
        )
        return bool(row and row["used"])

    async def lock_path(self, path: str) -> None:
        """Nothing to do: write units already run one at a time."""

    async def actions_since(self, user_id: int, kind: str, since: int) -> tuple[int, int | None]:
        row = await self._one(
            "SELECT COUNT(*) AS n, MIN(ts) AS first FROM community_actions"
            " WHERE user_id = ? AND kind = ? AND ts >= ?",
            (user_id, kind, since),
        )
        assert row is not None
        return int(row["n"]), row["first"]

    async def record_action(self, user_id: int, kind: str, now: int, forget_before: int) -> None:
        await self._exec(
            "DELETE FROM community_actions WHERE user_id = ? AND kind = ? AND ts < ?",
            (user_id, kind, forget_before),
        )
        await self._exec(
            "INSERT INTO community_actions (user_id, kind, ts) VALUES (?, ?, ?)",
            (user_id, kind, now),
        )

    async def take_back_action(self, user_id: int, kind: str, ts: int) -> None:
        await self._exec(
            "DELETE FROM community_actions WHERE rowid = (SELECT rowid FROM community_actions"
            " WHERE user_id = ? AND kind = ? AND ts = ? LIMIT 1)",
            (user_id, kind, ts),
        )
