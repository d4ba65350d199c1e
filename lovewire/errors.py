"""Typed errors a handler raises; dispatch turns each into its error frame.

LovewireError                  error_no, message per language
 ├── CodeMismatch              1
 ├── BadInput                  2  (CannotCrushSelf, SameTel ...)
 ├── BadFrame                  3
 ├── UnknownType               4
 ├── BadToken                  5
 ├── TooFrequent               6  carries retry_after
 ├── SmsFailed                 7
 ├── NotFound                  8  (CrushNotFound, UserNotFound ...)
 ├── Forbidden                 9
 ├── Conflict                  10 (TelTaken, CrushLimit ...)
 ├── PayloadRefused            11
 ├── CodeExpired               12
 └── Internal                  13
"""

from __future__ import annotations

from typing import ClassVar

from protocol.codes import ErrorCode

__all__ = [
    "BadFrame",
    "BadInput",
    "BadToken",
    "CannotCrushSelf",
    "ChatEnded",
    "ChatNotFound",
    "CodeExpired",
    "CodeMismatch",
    "CommentNotFound",
    "Conflict",
    "CrushLimit",
    "CrushNotFound",
    "Forbidden",
    "Internal",
    "LovewireError",
    "NotAuthor",
    "NotFound",
    "PayloadRefused",
    "PictureNotFound",
    "SameTel",
    "SmsFailed",
    "TelTaken",
    "TooFrequent",
    "UnknownType",
    "UserNotFound",
]


class LovewireError(Exception):
    """Base of every error that becomes an error frame."""

    error_no: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    zh: ClassVar[str] = "服务器内部错误，请重试"
    en: ClassVar[str] = "internal error, nothing was changed; please retry"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.en)
        #: An English detail for logs and for `err_msg` in English; never secret.
        self.detail = detail

    def message(self, lang: str) -> str:
        """Return the `err_msg` in the configured language."""
        if lang == "en":
            return self.detail or self.en
        return self.zh


class CodeMismatch(LovewireError):
    error_no = ErrorCode.CODE_MISMATCH
    zh = "验证码不符"
    en = "verification code does not match"


class BadInput(LovewireError):
    error_no = ErrorCode.BAD_INPUT
    zh = "输入无效"
    en = "input not valid"


class CannotCrushSelf(BadInput):
    zh = "不能暗恋自己"
    en = "you cannot name your own tel"


class SameTel(BadInput):
    zh = "新号码与当前号码相同"
    en = "the new tel is your current tel"


class BadFrame(LovewireError):
    error_no = ErrorCode.BAD_FRAME
    zh = "消息不是有效的JSON对象"
    en = "frame is not a valid JSON object"


class UnknownType(LovewireError):
    error_no = ErrorCode.UNKNOWN_TYPE
    zh = "未知的消息类型"
    en = "unknown message type"


class BadToken(LovewireError):
    error_no = ErrorCode.BAD_TOKEN
    zh = "登录已失效，请重新登录"
    en = "token not valid or not logged in"


class TooFrequent(LovewireError):
    error_no = ErrorCode.TOO_FREQUENT
    zh = "操作太频繁，请稍后再试"
    en = "too frequent, try again later"

    def __init__(self, retry_after: float, detail: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after + 0.999))


class SmsFailed(LovewireError):
    error_no = ErrorCode.SMS_FAILED
    zh = "短信发送失败"
    en = "the SMS provider failed to send"


class NotFound(LovewireError):
    error_no = ErrorCode.NOT_FOUND
    zh = "未找到"
    en = "not found"


class CrushNotFound(NotFound):
    zh = "暗恋名单中没有这个号码"
    en = "this tel is not on your crush list"


class UserNotFound(NotFound):
    zh = "用户不存在"
    en = "no such user"


class PictureNotFound(NotFound):
    zh = "图片不存在"
    en = "picture not found"


class CommentNotFound(NotFound):
    zh = "评论不存在"
    en = "comment not found"


class ChatNotFound(NotFound):
    zh = "会话不存在"
    en = "conversation not found"


class Forbidden(LovewireError):
    error_no = ErrorCode.FORBIDDEN
    zh = "没有权限"
    en = "permission denied"


class NotAuthor(Forbidden):
    zh = "只能删除自己的图片或评论"
    en = "only the author or the picture's owner may delete this"


class Conflict(LovewireError):
    error_no = ErrorCode.CONFLICT
    zh = "冲突"
    en = "conflict"


class TelTaken(Conflict):
    zh = "该手机号已注册"
    en = "this tel is already registered"


class CrushLimit(Conflict):
    zh = "暗恋名单已满：最多9个号码，30天内最多添加9个新号码"
    en = "crush limit: at most 9 crushes, and at most 9 new tels in 30 days"


class ChatEnded(Conflict):
    zh = "会话已结束"
    en = "this conversation has ended: it is read-only"


class PayloadRefused(LovewireError):
    error_no = ErrorCode.PAYLOAD_REFUSED
    zh = "内容被拒绝：过大或不是支持的图片"
    en = "payload refused: too large, not a supported image, or bad base64"


class CodeExpired(LovewireError):
    error_no = ErrorCode.CODE_EXPIRED
    zh = "验证码已失效，请重新获取"
    en = "verification code expired, used or blocked: request a new one"


class Internal(LovewireError):
    """Nothing was changed; safe to retry."""
