"""三天, three days to talk: chat between matched users (section 4.6)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from protocol.base import Id, IdOut, Notify, Request, Response, Text, UnsequencedNotify

__all__ = [
    "HISTORY_DEFAULT",
    "HISTORY_MAX",
    "MSG_MAX",
    "ChatCloseRequest",
    "ChatCloseResponse",
    "ChatClosedNotify",
    "ChatConversation",
    "ChatHistoryRequest",
    "ChatHistoryResponse",
    "ChatKeepNotify",
    "ChatKeepRequest",
    "ChatKeepResponse",
    "ChatListRequest",
    "ChatListResponse",
    "ChatMessage",
    "ChatMessageNotify",
    "ChatReadNotify",
    "ChatReadRequest",
    "ChatReadResponse",
    "ChatSendRequest",
    "ChatSendResponse",
    "ChatTypingNotify",
    "ChatTypingRequest",
]

#: A chat message's text: 1..1000 characters (section 2).
MSG_MAX = 1000
#: chat_history_request's `limit`: 1..50, 20 by default.
HISTORY_MAX = 50
HISTORY_DEFAULT = 20


def _client_key(value: Any) -> Any:
    """A client_msg_id: "" counts as absent, a number is read as its decimal text."""
    if value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _empty_none(value: Any) -> Any:
    return None if value == "" else value


#: A client's key for retrying a message safely (per user, as in 3.4).
ClientMsgId = Annotated[Annotated[str, Field(max_length=64)] | None, BeforeValidator(_client_key)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatMessage(_Shape):
    """A message as lists and history show it."""

    message_id: IdOut
    #: The sender.
    user_id: IdOut
    msg: str
    #: The picture's URL path, "" for none.
    picture: str
    send_time: str
    send_time_ts: int


class ChatConversation(_Shape):
    """One conversation of mine, with the peer's public profile."""

    conversation_id: IdOut
    #: The peer.
    user_id: IdOut
    nickname: str
    avatar: str
    open: bool
    kept: bool
    #: When it expires; "" and 0 once both kept it.
    expire_time: str
    expire_ts: int
    unread: int
    last_message: ChatMessage | None = None


class ChatListResponse(Response):
    type: Literal["chat_list_response"] = "chat_list_response"
    conversations: list[ChatConversation]


class ChatListRequest(Request):
    """My conversations, the most recent activity first."""

    RESPONSE = ChatListResponse
    type: Literal["chat_list_request"] = "chat_list_request"


class ChatSendResponse(Response):
    type: Literal["chat_send_response"] = "chat_send_response"
    message_id: IdOut
    send_time: str
    send_time_ts: int


class ChatSendRequest(Request):
    """Send text, a picture, or both to the peer of a conversation."""

    RESPONSE = ChatSendResponse
    type: Literal["chat_send_request"] = "chat_send_request"
    conversation_id: Id
    msg: Annotated[Annotated[str, Text(MSG_MAX)] | None, BeforeValidator(_empty_none)] = None
    picture: Annotated[str | None, BeforeValidator(_empty_none)] = None
    client_msg_id: ClientMsgId = None

    @model_validator(mode="after")
    def _some_content(self) -> ChatSendRequest:
        if not self.msg and self.picture is None:
            raise ValueError(f"msg (1 to {MSG_MAX} characters) or picture is required")
        return self


class ChatHistoryResponse(Response):
    type: Literal["chat_history_response"] = "chat_history_response"
    messages: list[ChatMessage]
    more: bool


class ChatHistoryRequest(Request):
    """Messages older than `before` (the newest without it), oldest first."""

    RESPONSE = ChatHistoryResponse
    type: Literal["chat_history_request"] = "chat_history_request"
    conversation_id: Id
    before: Id | None = None
    limit: Annotated[int, Field(ge=1, le=HISTORY_MAX)] = HISTORY_DEFAULT


class ChatReadResponse(Response):
    type: Literal["chat_read_response"] = "chat_read_response"


class ChatReadRequest(Request):
    """Everything up to this message is read by me."""

    RESPONSE = ChatReadResponse
    type: Literal["chat_read_request"] = "chat_read_request"
    conversation_id: Id
    message_id: Id


class ChatKeepResponse(Response):
    type: Literal["chat_keep_response"] = "chat_keep_response"
    kept: bool


class ChatKeepRequest(Request):
    """Ask to keep a conversation; once both asked it never expires."""

    RESPONSE = ChatKeepResponse
    type: Literal["chat_keep_request"] = "chat_keep_request"
    conversation_id: Id


class ChatCloseResponse(Response):
    type: Literal["chat_close_response"] = "chat_close_response"


class ChatCloseRequest(Request):
    """End a conversation now."""

    RESPONSE = ChatCloseResponse
    type: Literal["chat_close_request"] = "chat_close_request"
    conversation_id: Id


class ChatTypingRequest(Request):
    """Tell the peer I am typing; answered by nothing."""

    RESPONSE = None
    type: Literal["chat_typing_request"] = "chat_typing_request"
    conversation_id: Id


class ChatMessageNotify(Notify):
    type: Literal["chat_message_notify"] = "chat_message_notify"
    conversation_id: IdOut
    message_id: IdOut
    user_id: IdOut
    msg: str
    picture: str
    send_time: str
    send_time_ts: int


class ChatReadNotify(Notify):
    type: Literal["chat_read_notify"] = "chat_read_notify"
    conversation_id: IdOut
    message_id: IdOut


class ChatKeepNotify(Notify):
    type: Literal["chat_keep_notify"] = "chat_keep_notify"
    conversation_id: IdOut
    kept: bool


class ChatClosedNotify(Notify):
    type: Literal["chat_closed_notify"] = "chat_closed_notify"
    conversation_id: IdOut
    reason: Literal["closed", "expired"]


class ChatTypingNotify(UnsequencedNotify):
    type: Literal["chat_typing_notify"] = "chat_typing_notify"
    conversation_id: IdOut
