"""The error codes of the contract (section 2), and their messages in both languages."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ERROR_PRECEDENCE", "ErrorCode"]


class ErrorCode(IntEnum):
    """Every `error_no` the server may send."""

    OK = 0
    CODE_MISMATCH = 1
    BAD_INPUT = 2
    BAD_FRAME = 3
    UNKNOWN_TYPE = 4
    BAD_TOKEN = 5
    TOO_FREQUENT = 6
    SMS_FAILED = 7
    NOT_FOUND = 8
    FORBIDDEN = 9
    CONFLICT = 10
    PAYLOAD_REFUSED = 11
    CODE_EXPIRED = 12
    INTERNAL = 13


#: When several errors apply, the first in this order wins.
ERROR_PRECEDENCE: tuple[ErrorCode, ...] = (
    ErrorCode.BAD_FRAME,
    ErrorCode.UNKNOWN_TYPE,
    ErrorCode.BAD_INPUT,
    ErrorCode.BAD_TOKEN,
    ErrorCode.TOO_FREQUENT,
    ErrorCode.NOT_FOUND,
    ErrorCode.FORBIDDEN,
    ErrorCode.CONFLICT,
    ErrorCode.PAYLOAD_REFUSED,
    ErrorCode.CODE_EXPIRED,
    ErrorCode.CODE_MISMATCH,
    ErrorCode.SMS_FAILED,
    ErrorCode.INTERNAL,
)
