"""Login by SMS, registration and the session messages (sections 3.1, 3.2, 4.1, 5)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from protocol.base import IdOut, Request, Response

__all__ = [
    "AuthRequest",
    "AuthResponse",
    "Birthdate",
    "LogoutRequest",
    "LogoutResponse",
    "NotifyAck",
    "PingRequest",
    "PingResponse",
    "SmsValidationCode",
    "SmsValidationRequest",
    "SmsValidationResult",
    "SmsValidationSend",
    "TokenRefreshRequest",
    "TokenRefreshResponse",
    "UserRegisterInfo",
    "UserRegisterResult",
]

Tel = Annotated[str, Field(min_length=1, max_length=32)]
Seq = Annotated[int, Field(ge=0, le=2**63 - 1)]


def _code_digits(value: Any) -> Any:
    """Read a code sent as a number as 6 digits with leading zeros."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 999_999:
        return f"{value:06d}"
    return value


Code = Annotated[str, BeforeValidator(_code_digits), Field(pattern=r"^[0-9]{6}$")]


class SmsValidationRequest(Request):
    """Ask for a login code to be sent to `tel` by SMS."""

    RESPONSE: ClassVar[str] = "sms_validation_send"
    type: Literal["sms_validation_request"] = "sms_validation_request"
    tel: Tel
    #: The client's clock, in any of the app's shapes; informational only.
    time: Any = None


class SmsValidationSend(Response):
    type: Literal["sms_validation_send"] = "sms_validation_send"


class SmsValidationCode(Request):
    """Check the code this socket (or `tel`) asked for."""

    RESPONSE: ClassVar[str] = "sms_validation_result"
    type: Literal["sms_validation_code"] = "sms_validation_code"
    code: Code
    tel: Tel | None = None


class SmsValidationResult(Response):
    type: Literal["sms_validation_result"] = "sms_validation_result"
    token: str | None = None
    registered: bool | None = None
    user_id: IdOut | None = None
    token_expire: str | None = None
    token_expire_ts: int | None = None
    last_seq: int | None = None
    ticket_expire_ts: int | None = None


class Birthdate(BaseModel):
    """The app's later shape of a birthday."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    year: int
    month: int
    day: int


class UserRegisterInfo(Request):
    """Register the tel of a registration ticket, or update a registered user's info."""

    RESPONSE: ClassVar[str] = "user_register_result"
    type: Literal["user_register_info"] = "user_register_info"
    nickname: str | None = None
    sex: Literal[0, 1] | None = None
    birthday: Annotated[str | None, Field(max_length=16)] = None
    birthdate: Birthdate | None = None


class UserRegisterResult(Response):
    type: Literal["user_register_result"] = "user_register_result"
    user_id: IdOut
    token: str
    token_expire: str
    token_expire_ts: int
    last_seq: int


class AuthRequest(Request):
    """Log a (re)connected socket in with a saved token; replay pushes after `last_seq`."""

    RESPONSE: ClassVar[str] = "auth_response"
    type: Literal["auth_request"] = "auth_request"
    last_seq: Seq | None = None


class AuthResponse(Response):
    type: Literal["auth_response"] = "auth_response"
    user_id: IdOut
    nickname: str
    token_expire: str
    token_expire_ts: int
    last_seq: int
    recovered: bool


class TokenRefreshRequest(Request):
    """Swap the socket's token for a new one."""

    RESPONSE: ClassVar[str] = "token_refresh_response"
    type: Literal["token_refresh_request"] = "token_refresh_request"


class TokenRefreshResponse(Response):
    type: Literal["token_refresh_response"] = "token_refresh_response"
    token: str
    token_expire: str
    token_expire_ts: int


class LogoutRequest(Request):
    """Revoke this socket's token, or with `all` every token of the user."""

    RESPONSE: ClassVar[str] = "logout_response"
    type: Literal["logout_request"] = "logout_request"
    all: bool = False


class LogoutResponse(Response):
    type: Literal["logout_response"] = "logout_response"


class PingRequest(Request):
    """Application-level liveness check."""

    RESPONSE: ClassVar[str] = "ping_response"
    type: Literal["ping_request"] = "ping_request"


class PingResponse(Response):
    type: Literal["ping_response"] = "ping_response"
    time: str
    time_ts: int


class NotifyAck(Request):
    """Mark pushes up to `seq` as seen; answered by nothing."""

    RESPONSE: ClassVar[str] = ""
    SILENT: ClassVar[bool] = True
    type: Literal["notify_ack"] = "notify_ack"
    seq: Seq
