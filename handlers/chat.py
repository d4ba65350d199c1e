"""三天, three days to talk (4.6): conversations opened by matches, messages, receipts."""

from __future__ import annotations

from lovewire.context import Context, app_time
from lovewire.errors import ChatEnded, ChatNotFound, NotFound, TooFrequent
from lovewire.images import image_url
from lovewire.registry import HandlerTable
from lovewire.storage.base import Unit
from lovewire.storage.records import ChatMessage, Conversation
from lovewire.uploads import (
    UPLOAD,
    check_budget,
    check_stored,
    forget_file,
    give_back,
    store_picture,
)
from protocol.chat import (
    ChatClosedNotify,
    ChatCloseRequest,
    ChatCloseResponse,
    ChatConversation,
    ChatHistoryRequest,
    ChatHistoryResponse,
    ChatKeepNotify,
    ChatKeepRequest,
    ChatKeepResponse,
    ChatListRequest,
    ChatListResponse,
    ChatMessageNotify,
    ChatReadNotify,
    ChatReadRequest,
    ChatReadResponse,
    ChatSendRequest,
    ChatSendResponse,
    ChatTypingNotify,
    ChatTypingRequest,
)
from protocol.chat import ChatMessage as ChatMessageItem
from protocol.times import HOUR, MINUTE

__all__ = ["TYPING_EVERY", "table"]

table = HandlerTable()

#: Typing notices forwarded per sender and conversation: one in this many seconds.
TYPING_EVERY = 1.0


async def _mine(tx: Unit, conversation_id: int, user_id: int) -> Conversation:
    """My conversation (locked in a write unit); ChatNotFound (8) for any other id."""
    chat = await tx.chats.get(conversation_id)
    if chat is None or not chat.has(user_id):
        raise ChatNotFound()
    return chat


def _check_open(ctx: Context, chat: Conversation) -> None:
    if not chat.is_open(ctx.now()):
        raise ChatEnded()


async def _check_rate(ctx: Context, tx: Unit, user_id: int, now: int) -> None:
    """TooFrequent (6) once the user sent LOVEWIRE_MESSAGES_PER_MINUTE in the last minute."""
    count, oldest = await tx.chats.sent_since(user_id, now - MINUTE + 1)
    if count >= ctx.settings.messages_per_minute:
        raise TooFrequent((oldest if oldest is not None else now) + MINUTE - now)


def _picture_url(ctx: Context, path: str) -> str:
    return image_url(path, ctx.settings.public_url) if path else ""


def _item(ctx: Context, m: ChatMessage) -> ChatMessageItem:
    return ChatMessageItem(
        message_id=m.id,
        user_id=m.sender_id,
        msg=m.msg,
        picture=_picture_url(ctx, m.picture),
        send_time=app_time(ctx, m.created_ts),
        send_time_ts=m.created_ts,
    )


def _sent(ctx: Context, m: ChatMessage) -> ChatSendResponse:
    return ChatSendResponse(
        message_id=m.id, send_time=app_time(ctx, m.created_ts), send_time_ts=m.created_ts
    )


@table.handles(ChatListRequest)
async def list_chats(ctx: Context, req: ChatListRequest) -> ChatListResponse:
    """My conversations, the latest activity first; two queries however many."""
    me = ctx.user_id
    now = ctx.now()
    async with ctx.store.read() as tx:
        items = await tx.chats.of_user(me)
        last = await tx.chats.last_messages([i.conversation.id for i in items])
    conversations = []
    for i in items:
        chat = i.conversation
        newest = last.get(chat.id)
        conversations.append(
            ChatConversation(
                conversation_id=chat.id,
                user_id=i.peer_id,
                nickname=i.peer_nickname,
                avatar=_picture_url(ctx, i.peer_avatar),
                open=chat.is_open(now),
                kept=chat.kept,
                expire_time="" if chat.kept else app_time(ctx, chat.expire_ts),
                expire_ts=0 if chat.kept else chat.expire_ts,
                unread=i.unread,
                last_message=_item(ctx, newest) if newest is not None else None,
            )
        )
    return ChatListResponse(conversations=conversations)


@table.handles(ChatSendRequest)
async def send_message(ctx: Context, req: ChatSendRequest) -> ChatSendResponse:
    """Store a message (its picture checked and stored like an upload); push it to both."""
    me = ctx.user_id
    key = req.client_msg_id
    now = ctx.now()
    settings = ctx.settings
    rel = ""
    if req.picture is not None:
        async with ctx.store.read() as tx:
            first = await tx.chats.by_client_msg_id(me, key) if key else None
            if first is not None:
                return _sent(ctx, first)  # a retry: the first result, whatever it holds
            # Refused before the picture is decoded, in the contract's order (6, 8, 10).
            await _check_rate(ctx, tx, me, now)
            await check_budget(tx, me, UPLOAD, settings.uploads_per_hour, HOUR, now)
            _check_open(ctx, await _mine(tx, req.conversation_id, me))
        rel = await store_picture(ctx, req.picture, UPLOAD, settings.uploads_per_hour, HOUR, now)
    try:
        async with ctx.unit() as tx:
            first = await tx.chats.by_client_msg_id(me, key) if key else None
            if first is None:
                # Locks in the contract's order of errors (6, 8, 10): the sender's count,
                # then the conversation's row.
                await _check_rate(ctx, tx, me, now)
                chat = await _mine(tx, req.conversation_id, me)
                _check_open(ctx, chat)
                if rel:
                    await check_stored(ctx, tx, rel)
                message = await tx.chats.add_message(chat.id, me, req.msg or "", rel, key, now)
                notify = ChatMessageNotify(
                    conversation_id=chat.id,
                    message_id=message.id,
                    user_id=me,
                    msg=message.msg,
                    picture=_picture_url(ctx, rel),
                    send_time=app_time(ctx, now),
                    send_time_ts=now,
                )
                for user_id in (chat.low_user, chat.high_user):
                    await ctx.push(tx, user_id, notify)
    except BaseException:
        if rel:
            await give_back(ctx, me, UPLOAD, now)
            await forget_file(ctx, rel)
        raise
    if first is not None:
        if rel:
            await give_back(ctx, me, UPLOAD, now)
            if first.picture != rel:
                await forget_file(ctx, rel)
        return _sent(ctx, first)
    ctx.log.info("chat message %d in conversation %d", message.id, chat.id)
    return _sent(ctx, message)


@table.handles(ChatHistoryRequest)
async def chat_history(ctx: Context, req: ChatHistoryRequest) -> ChatHistoryResponse:
    """Up to `limit` messages older than `before`, oldest first; `more` if older remain."""
    me = ctx.user_id
    async with ctx.store.read() as tx:
        chat = await _mine(tx, req.conversation_id, me)
        found = await tx.chats.history(chat.id, req.before, req.limit + 1)
    more = len(found) > req.limit
    page = found[1:] if more else found
    return ChatHistoryResponse(messages=[_item(ctx, m) for m in page], more=more)


@table.handles(ChatReadRequest)
async def read_chat(ctx: Context, req: ChatReadRequest) -> ChatReadResponse:
    """Everything up to a message is read by me; the peer is told if the mark moved."""
    me = ctx.user_id
    async with ctx.unit() as tx:
        chat = await _mine(tx, req.conversation_id, me)
        message = await tx.chats.message(req.message_id)
        if message is None or message.conversation_id != chat.id:
            raise NotFound("message_id is not a message of this conversation")
        if await tx.chats.mark_read(chat.id, me, message.id):
            notify = ChatReadNotify(conversation_id=chat.id, message_id=message.id)
            await ctx.push(tx, chat.peer_of(me), notify)
    return ChatReadResponse()


@table.handles(ChatKeepRequest)
async def keep_chat(ctx: Context, req: ChatKeepRequest) -> ChatKeepResponse:
    """I want to keep it; once both asked, it never expires. The peer is told."""
    me = ctx.user_id
    async with ctx.unit() as tx:
        chat = await _mine(tx, req.conversation_id, me)
        _check_open(ctx, chat)
        if not chat.kept_by(me):
            chat = await tx.chats.keep(chat.id, me)
            notify = ChatKeepNotify(conversation_id=chat.id, kept=chat.kept)
            await ctx.push(tx, chat.peer_of(me), notify)
    return ChatKeepResponse(kept=chat.kept)


@table.handles(ChatCloseRequest)
async def close_chat(ctx: Context, req: ChatCloseRequest) -> ChatCloseResponse:
    """End it now; both are told "closed". An ended one changes nothing."""
    me = ctx.user_id
    now = ctx.now()
    async with ctx.unit() as tx:
        chat = await _mine(tx, req.conversation_id, me)
        # One past its expiry is ended already: the sweeper tells both "expired".
        if chat.is_open(now):
            closed = await tx.chats.close(chat.id, now, "closed")
            if closed is not None:
                notify = ChatClosedNotify(conversation_id=chat.id, reason="closed")
                for user_id in (chat.low_user, chat.high_user):
                    await ctx.push(tx, user_id, notify)
    return ChatCloseResponse()


@table.handles(ChatTypingRequest)
async def typing(ctx: Context, req: ChatTypingRequest) -> None:
    """Tell the peer's open sockets I am typing: not stored, one a second, else dropped."""
    me = ctx.user_id
    async with ctx.store.read() as tx:
        chat = await _mine(tx, req.conversation_id, me)
    _check_open(ctx, chat)
    notify = ChatTypingNotify(conversation_id=chat.id)
    await ctx.notify(chat.peer_of(me), notify, key=("typing", me, chat.id), every=TYPING_EVERY)
