"""Unsolicited frames (section 5)."""

from __future__ import annotations

from typing import Literal

from protocol.base import IdOut, Notify, UnsequencedNotify

__all__ = [
    "CrushMatchNotify",
    "CrushNotify",
    "PictureCommentNotify",
    "PictureLikeNotify",
    "SessionEndNotify",
    "SystemNotify",
]


class PictureLikeNotify(Notify):
    type: Literal["picture_like_notify"] = "picture_like_notify"
    picture_id: IdOut
    user_id: IdOut
    nickname: str
    picture_like_num: str


class PictureCommentNotify(Notify):
    type: Literal["picture_comment_notify"] = "picture_comment_notify"
    picture_id: IdOut
    comment_id: IdOut
    user_id: IdOut
    nickname: str
    msg: str
    reply_to: IdOut | None


class CrushNotify(Notify):
    type: Literal["crush_notify"] = "crush_notify"
    count: int


class CrushMatchNotify(Notify):
    type: Literal["crush_match_notify"] = "crush_match_notify"
    user_id: IdOut
    nickname: str
    tel: str
    words: str
    #: The conversation the match opened (4.6), open until expire_ts.
    conversation_id: IdOut
    expire_time: str
    expire_ts: int


class SystemNotify(UnsequencedNotify):
    type: Literal["system_notify"] = "system_notify"
    msg: str


class SessionEndNotify(UnsequencedNotify):
    type: Literal["session_end_notify"] = "session_end_notify"
    reason: Literal["logout", "tel_changed", "expired", "refreshed"]
