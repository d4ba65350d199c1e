"""The PostgreSQL repository of conversations between matched users and their messages.

Ending a conversation is one conditional UPDATE (`ended_ts IS NULL`), re-checked by
PostgreSQL on the newest row version after a wait: of two processes ending one, exactly
one gets the row back and stores the pushes. `claim_expired` skips rows another unit
holds, so processes sweeping at once share the work instead of queueing on it. `get` in
a write unit locks the row (FOR UPDATE): a message is never added to a conversation that
is being ended. `sent_since` counts under the sender's named lock, so two sends of one
user cannot both pass the messages-per-minute limit. Lock order in a send: token row,
the sender's count lock, the conversation's row, a picture's path lock, user rows (the
push counters, lower user id first).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from lovewire.storage.base import ChatRepo
from lovewire.storage.postgres.repo import PgRepo
from lovewire.storage.records import ChatListItem, ChatMessage, Conversation, Swept, from_row

__all__ = ["PgChats"]


def _pair(user_a: int, user_b: int) -> tuple[int, int]:
    low, high = sorted((user_a, user_b))
    return low, high


class PgChats(PgRepo, ChatRepo):
    async def open(self, user_a: int, user_b: int, now: int, expire_ts: int) -> Conversation:
        row = await self._one(
            "INSERT INTO conversations (low_user, high_user, opened_ts, expire_ts, last_ts)"
            " VALUES ($1, $2, $3, $4, $3) RETURNING *",
            *_pair(user_a, user_b),
            now,
            expire_ts,
        )
        assert row is not None
        return from_row(Conversation, row)

    async def get(self, conversation_id: int) -> Conversation | None:
        lock = " FOR UPDATE" if self.session.writable else ""
        row = await self._one(f"SELECT * FROM conversations WHERE id = $1{lock}", conversation_id)
        return from_row(Conversation, row) if row else None

    async def close(self, conversation_id: int, now: int, reason: str) -> Conversation | None:
        row = await self._one(
            "UPDATE conversations SET ended_ts = $2, end_reason = $3"
            " WHERE id = $1 AND ended_ts IS NULL RETURNING *",
            conversation_id,
            now,
            reason,
        )
        return from_row(Conversation, row) if row else None

    async def close_pair(self, user_a: int, user_b: int, now: int) -> Conversation | None:
        row = await self._one(
            "UPDATE conversations SET ended_ts = $3, end_reason = CASE"
            " WHEN expire_ts <= $3 AND NOT (low_kept AND high_kept) THEN 'expired'"
            " ELSE 'closed' END"
            " WHERE low_user = $1 AND high_user = $2 AND ended_ts IS NULL RETURNING *",
            *_pair(user_a, user_b),
            now,
        )
        return from_row(Conversation, row) if row else None

    async def keep(self, conversation_id: int, user_id: int) -> Conversation:
        row = await self._one(
            "UPDATE conversations SET"
            " low_kept = low_kept OR low_user = $2, high_kept = high_kept OR high_user = $2"
            " WHERE id = $1 RETURNING *",
            conversation_id,
            user_id,
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
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
            conversation_id,
            sender_id,
            msg,
            picture,
            client_msg_id,
            now,
        )
        assert row is not None
        await self._exec(
            # Only when it moves: a message in the same second as the last changes nothing.
            "UPDATE conversations SET last_ts = $2 WHERE id = $1 AND last_ts < $2",
            conversation_id,
            now,
        )
        return from_row(ChatMessage, row)

    async def sent_since(self, sender_id: int, since: int) -> tuple[int, int | None]:
        await self._lock("chat-sent", sender_id)
        row = await self._one(
            "SELECT COUNT(*) AS n, MIN(created_ts) AS first FROM chat_messages"
            " WHERE sender_id = $1 AND created_ts >= $2",
            sender_id,
            since,
        )
        assert row is not None
        return int(row["n"]), row["first"]

    async def message(self, message_id: int) -> ChatMessage | None:
        row = await self._one("SELECT * FROM chat_messages WHERE id = $1", message_id)
        return from_row(ChatMessage, row) if row else None

    async def by_client_msg_id(self, sender_id: int, client_msg_id: str) -> ChatMessage | None:
        row = await self._one(
            "SELECT * FROM chat_messages WHERE sender_id = $1 AND client_msg_id = $2",
            sender_id,
            client_msg_id,
        )
        return from_row(ChatMessage, row) if row else None

    async def history(
        self, conversation_id: int, before: int | None, limit: int
    ) -> list[ChatMessage]:
        rows = await self._all(
            "SELECT * FROM chat_messages WHERE conversation_id = $1 AND id < $2"
            " ORDER BY id DESC LIMIT $3",
            conversation_id,
            before if before is not None else 2**63 - 1,
            limit,
        )
        return [from_row(ChatMessage, row) for row in reversed(rows)]

    async def mark_read(self, conversation_id: int, user_id: int, message_id: int) -> bool:
        changed = await self._exec(
            "UPDATE conversations SET"
            " low_read = CASE WHEN low_user = $2 THEN $3 ELSE low_read END,"
            " high_read = CASE WHEN high_user = $2 THEN $3 ELSE high_read END"
            " WHERE id = $1 AND ((low_user = $2 AND low_read < $3)"
            " OR (high_user = $2 AND high_read < $3))",
            conversation_id,
            user_id,
            message_id,
        )
        return changed > 0

    async def of_user(self, user_id: int) -> list[ChatListItem]:
        rows = await self._all(
            "SELECT c.*, u.id AS peer_id, u.nickname AS peer_nickname,"
            " u.avatar AS peer_avatar,"
            " (SELECT COUNT(*) FROM chat_messages m WHERE m.conversation_id = c.id"
            "  AND m.sender_id <> $1"
            "  AND m.id > CASE WHEN c.low_user = $1 THEN c.low_read ELSE c.high_read END)"
            " AS unread"
            " FROM conversations c"
            " JOIN users u ON u.id = CASE WHEN c.low_user = $1 THEN c.high_user ELSE c.low_user END"
            " WHERE c.low_user = $1 OR c.high_user = $1"
            " ORDER BY c.last_ts DESC, c.id DESC",
            user_id,
        )
        return [_item(row) for row in rows]

    async def last_messages(self, conversation_ids: Sequence[int]) -> dict[int, ChatMessage]:
        ids = list(conversation_ids)
        if not ids:
            return {}
        rows = await self._all(
            "SELECT * FROM chat_messages WHERE id IN (SELECT MAX(id) FROM chat_messages"
            " WHERE conversation_id = ANY($1::bigint[]) GROUP BY conversation_id)",
            ids,
        )
        found = [from_row(ChatMessage, row) for row in rows]
        return {m.conversation_id: m for m in found}

    async def claim_expired(self, now: int, limit: int) -> list[Conversation]:
        rows = await self._all(
            "UPDATE conversations SET ended_ts = $1, end_reason = 'expired'"
            " WHERE id IN (SELECT id FROM conversations WHERE ended_ts IS NULL"
            "  AND expire_ts <= $1 AND NOT (low_kept AND high_kept)"
            "  ORDER BY expire_ts LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " AND ended_ts IS NULL RETURNING *",
            now,
            limit,
        )
        return sorted((from_row(Conversation, row) for row in rows), key=lambda c: c.id)

    async def delete_ended(self, before_ts: int, limit: int) -> Swept:
        rows = await self._all(
            "SELECT id FROM conversations WHERE ended_ts < $1 ORDER BY ended_ts LIMIT $2"
            " FOR UPDATE SKIP LOCKED",
            before_ts,
            limit,
        )
        ids = [int(row["id"]) for row in rows]
        if not ids:
            return Swept(0, 0, [])
        messages = await self._all(
            "DELETE FROM chat_messages WHERE id IN (SELECT id FROM chat_messages"
            " WHERE conversation_id = ANY($1::bigint[]) LIMIT $2) RETURNING picture",
            ids,
            limit,
        )
        pictures = sorted({str(row["picture"]) for row in messages if row["picture"]})
        if len(messages) == limit:
            return Swept(0, len(messages), pictures)  # more of theirs may be left
        await self._exec("DELETE FROM conversations WHERE id = ANY($1::bigint[])", ids)
        return Swept(len(ids), len(messages), pictures)


def _item(row: asyncpg.Record) -> ChatListItem:
    return ChatListItem(
        conversation=from_row(Conversation, row),
        peer_id=int(row["peer_id"]),
        peer_nickname=str(row["peer_nickname"]),
        peer_avatar=str(row["peer_avatar"]),
        unread=int(row["unread"]),
    )
