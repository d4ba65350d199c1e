"""The SQLite repository of conversations between matched users and their messages."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from lovewire.storage.base import ChatRepo
from lovewire.storage.records import ChatListItem, ChatMessage, Conversation, Swept, from_row
from lovewire.storage.sqlite.repo import SqliteRepo

__all__ = ["SqliteChats"]


def _pair(user_a: int, user_b: int) -> tuple[int, int]:
    low, high = sorted((user_a, user_b))
    return low, high


def _marks(ids: Sequence[int]) -> str:
    return ",".join("?" * len(ids))


class SqliteChats(SqliteRepo, ChatRepo):
    async def open(self, user_a: int, user_b: int, now: int, expire_ts: int) -> Conversation:
        row = await self._one(
            "INSERT INTO conversations (low_user, high_user, opened_ts, expire_ts, last_ts)"
            " VALUES (?, ?, ?, ?, ?) RETURNING *",
            (*_pair(user_a, user_b), now, expire_ts, now),
        )
        assert row is not None
        return from_row(Conversation, row)

    async def get(self, conversation_id: int) -> Conversation | None:
        # The unit already holds SQLite's one write lock (BEGIN IMMEDIATE): a read is enough.
        row = await self._one("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        return from_row(Conversation, row) if row else None

    async def close(self, conversation_id: int, now: int, reason: str) -> Conversation | None:
        row = await self._one(
            "UPDATE conversations SET ended_ts = ?, end_reason = ?"
            " WHERE id = ? AND ended_ts IS NULL RETURNING *",
            (now, reason, conversation_id),
        )
        return from_row(Conversation, row) if row else None

    async def close_pair(self, user_a: int, user_b: int, now: int) -> Conversation | None:
        row = await self._one(
            "UPDATE conversations SET ended_ts = ?1, end_reason = CASE"
            " WHEN expire_ts <= ?1 AND NOT (low_kept AND high_kept) THEN 'expired'"
            " ELSE 'closed' END"
            " WHERE low_user = ?2 AND high_user = ?3 AND ended_ts IS NULL RETURNING *",
            (now, *_pair(user_a, user_b)),
        )
        return from_row(Conversation, row) if row else None

    async def keep(self, conversation_id: int, user_id: int) -> Conversation:
        row = await self._one(
            "UPDATE conversations SET"
            " low_kept = CASE WHEN low_user = ?1 THEN 1 ELSE low_kept END,"
            " high_kept = CASE WHEN high_user = ?1 THEN 1 ELSE high_kept END"
            " WHERE id = ?2 RETURNING *",
            (user_id, conversation_id),
        )
        assert row is not None
        return from_row(Conversation, row)

    async def add_message(
        self,
        conversation_id: int,
        sender_id: int,
        msg: str,
        picture: str,
        client_msg_id: str | None,
        now: int,
    ) -> ChatMessage:
        row = await self._one(
            "INSERT INTO chat_messages"
            " (conversation_id, sender_id, msg, picture, client_msg_id, created_ts)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
            (conversation_id, sender_id, msg, picture, client_msg_id, now),
        )
        assert row is not None
        await self._exec(
            # Only when it moves: a message in the same second as the last changes nothing.
            "UPDATE conversations SET last_ts = ? WHERE id = ? AND last_ts < ?",
            (now, conversation_id, now),
        )
        return from_row(ChatMessage, row)

    async def sent_since(self, sender_id: int, since: int) -> tuple[int, int | None]:
        # The unit already holds SQLite's one write lock: nobody counts meanwhile.
        row = await self._one(
            "SELECT COUNT(*) AS n, MIN(created_ts) AS first FROM chat_messages"
            " WHERE sender_id = ? AND created_ts >= ?",
            (sender_id, since),
        )
        assert row is not None
        return int(row["n"]), row["first"]

    async def message(self, message_id: int) -> ChatMessage | None:
        row = await self._one("SELECT * FROM chat_messages WHERE id = ?", (message_id,))
        return from_row(ChatMessage, row) if row else None

    async def by_client_msg_id(self, sender_id: int, client_msg_id: str) -> ChatMessage | None:
        row = await self._one(
            "SELECT * FROM chat_messages WHERE sender_id = ? AND client_msg_id = ?",
            (sender_id, client_msg_id),
        )
        return from_row(ChatMessage, row) if row else None

    async def history(
        self, conversation_id: int, before: int | None, limit: int
    ) -> list[ChatMessage]:
        rows = await self._all(
            "SELECT * FROM chat_messages WHERE conversation_id = ? AND id < ?"
            " ORDER BY id DESC LIMIT ?",
            (conversation_id, before if before is not None else 2**63 - 1, limit),
        )
        return [from_row(ChatMessage, row) for row in reversed(rows)]

    async def mark_read(self, conversation_id: int, user_id: int, message_id: int) -> bool:
        cur = await self._exec(
            "UPDATE conversations SET"
            " low_read = CASE WHEN low_user = ?1 THEN ?2 ELSE low_read END,"
            " high_read = CASE WHEN high_user = ?1 THEN ?2 ELSE high_read END"
            " WHERE id = ?3 AND ((low_user = ?1 AND low_read < ?2)"
            " OR (high_user = ?1 AND high_read < ?2))",
            (user_id, message_id, conversation_id),
        )
        return cur.rowcount > 0

    async def of_user(self, user_id: int) -> list[ChatListItem]:
        rows = await self._all(
            "SELECT c.*, u.id AS peer_id, u.nickname AS peer_nickname,"
            " u.avatar AS peer_avatar,"
            " (SELECT COUNT(*) FROM chat_messages m WHERE m.conversation_id = c.id"
            "  AND m.sender_id <> ?1"
            "  AND m.id > CASE WHEN c.low_user = ?1 THEN c.low_read ELSE c.high_read END)"
            " AS unread"
            " FROM conversations c"
            " JOIN users u ON u.id = CASE WHEN c.low_user = ?1 THEN c.high_user ELSE c.low_user END"
            " WHERE c.low_user = ?1 OR c.high_user = ?1"
            " ORDER BY c.last_ts DESC, c.id DESC",
            (user_id,),
        )
        return [_item(row) for row in rows]

    async def last_messages(self, conversation_ids: Sequence[int]) -> dict[int, ChatMessage]:
        ids = list(conversation_ids)
        if not ids:
            return {}
        rows = await self._all(
            "SELECT * FROM chat_messages WHERE id IN (SELECT MAX(id) FROM chat_messages"
            f" WHERE conversation_id IN ({_marks(ids)}) GROUP BY conversation_id)",
            ids,
        )
        found = [from_row(ChatMessage, row) for row in rows]
        return {m.conversation_id: m for m in found}

    async def claim_expired(self, now: int, limit: int) -> list[Conversation]:
        rows = await self._all(
            "UPDATE conversations SET ended_ts = ?1, end_reason = 'expired'"
            " WHERE id IN (SELECT id FROM conversations WHERE ended_ts IS NULL"
            "  AND expire_ts <= ?1 AND NOT (low_kept AND high_kept)"
            "  ORDER BY expire_ts LIMIT ?2)"
            " RETURNING *",
            (now, limit),
        )
        return sorted((from_row(Conversation, row) for row in rows), key=lambda c: c.id)

    async def delete_ended(self, before_ts: int, limit: int) -> Swept:
        rows = await self._all(
            "SELECT id FROM conversations WHERE ended_ts < ? ORDER BY ended_ts LIMIT ?",
            (before_ts, limit),
        )
        ids = [int(row["id"]) for row in rows]
        if not ids:
            return Swept(0, 0, [])
        messages = await self._all(
            f"SELECT id, picture FROM chat_messages WHERE conversation_id IN ({_marks(ids)})"
            " LIMIT ?",
            (*ids, limit),
        )
        if messages:
            gone = [int(row["id"]) for row in messages]
            await self._exec(f"DELETE FROM chat_messages WHERE id IN ({_marks(gone)})", gone)
        pictures = sorted({str(row["picture"]) for row in messages if row["picture"]})
        if len(messages) == limit:
            return Swept(0, len(messages), pictures)  # more of theirs may be left
        await self._exec(f"DELETE FROM conversations WHERE id IN ({_marks(ids)})", ids)
        return Swept(len(ids), len(messages), pictures)


def _item(row: sqlite3.Row) -> ChatListItem:
    return ChatListItem(
        conversation=from_row(Conversation, row),
        peer_id=int(row["peer_id"]),
        peer_nickname=str(row["peer_nickname"]),
        peer_avatar=str(row["peer_avatar"]),
        unread=int(row["unread"]),
    )
