"""Login by SMS, registration and the session messages (sections 3.1, 3.2, 4.1, 5)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from protocol.base import IdOut, Request, Response, Text, rules_of
from protocol.tel import normalize_tel
from protocol.times import age_on, parse_app_date

__all__ = [
    "NICKNAME_MAX",
    "AuthRequest",
    "AuthResponse",
    "Birthdate",
    "LogoutRequest",
    "LogoutResponse",
    "Nickname",
    "NotifyAck",
    "PingRequest",
    "PingResponse",
    "SmsValidationCode",
    "SmsValidationRequest",
    "SmsValidationResult",
    "SmsValidationSend",
    "Tel",
    "TokenRefreshRequest",
    "TokenRefreshResponse",
    "UserRegisterInfo",
    "UserRegisterResult",
]

NICKNAME_MAX = 20


def _tel(value: str, info: ValidationInfo) -> str:
    """The stored form of a tel (section 2: 11 digits, or E.164 where allowed)."""
    tel = normalize_tel(value, international=rules_of(info).international)
    if tel is None:
        raise ValueError("not an accepted phone number")
    return tel


#: A tel, read in any accepted shape and given to handlers in its stored form.
Tel = Annotated[str, Field(min_length=1, max_length=32), AfterValidator(_tel)]
#: A nickname: one line of 1..20 characters, surrounding blanks dropped.
Nickname = Annotated[str, Text(NICKNAME_MAX, min_length=1, line_breaks=False, strip=True)]
Seq = Annotated[int, Field(ge=0, le=2**63 - 1)]


def _code_digits(value: Any) -> Any:
    """Read a code sent as a number as 6 digits with leading zeros."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 999_999:
        return f"{value:06d}"
    return value


Code = Annotated[str, BeforeValidator(_code_digits), Field(pattern=r"^[0-9]{6}$")]


class SmsValidationSend(Response):
    type: Literal["sms_validation_send"] = "sms_validation_send"


class SmsValidationRequest(Request):
    """Ask for a login code to be sent to `tel` by SMS."""

    RESPONSE = SmsValidationSend
    type: Literal["sms_validation_request"] = "sms_validation_request"
    tel: Tel
    #: The client's clock, in any of the app's shapes; informational only.
    time: Any = None


class SmsValidationResult(Response):
    type: Literal["sms_validation_result"] = "sms_validation_result"
    token: str | None = None
    registered: bool | None = None
    user_id: IdOut | None = None
    token_expire: str | None = None
    token_expire_ts: int | None = None
    last_seq: int | None = None
    ticket_expire_ts: int | None = None


class SmsValidationCode(Request):
    """Check the code this socket (or `tel`) asked for."""

    RESPONSE = SmsValidationResult
    type: Literal["sms_validation_code"] = "sms_validation_code"
    code: Code
    tel: Tel | None = None


class Birthdate(BaseModel):
    """The app's later shape of a birthday."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    year: int
    month: int
    day: int


def _born(text: str | None, parts: Birthdate | None) -> date | None:
    """The birthday in either shape; ValueError if it is not a real date."""
    try:
        if text is not None:
            return parse_app_date(text)
        if parts is not None:
            return date(parts.year, parts.month, parts.day)
    except (ValueError, OverflowError):  # date() overflows on numbers beyond a C int
        raise ValueError("birthday must be a real date YYYY-M-D") from None
    return None


class BirthFields(Request):
    """A request that may carry a birthday (`birthday`, or the later `birthdate` shape)."""

    birthday: Annotated[str | None, Field(max_length=16)] = None
    birthdate: Birthdate | None = None

    @property
    def born(self) -> date | None:
        """The birthday given, if any (checked when the request was validated)."""
        return _born(self.birthday, self.birthdate)

    @model_validator(mode="after")
    def _real_and_old_enough(self, info: ValidationInfo) -> Self:
        born = self.born
        rules = rules_of(info)
        if born is not None and (
            born.year < 1900
            or (rules.today is not None and age_on(born, rules.today) < rules.min_age)
        ):
            raise ValueError(f"users must be at least {rules.min_age} years old")
        return self


class UserRegisterResult(Response):
    type: Literal["user_register_result"] = "user_register_result"
    user_id: IdOut
    token: str
    token_expire: str
    token_expire_ts: int
    last_seq: int


class UserRegisterInfo(BirthFields):
    """Register the tel of a registration ticket, or update a registered user's info."""

    RESPONSE = UserRegisterResult
    type: Literal["user_register_info"] = "user_register_info"
    nickname: Nickname | None = None
    sex: Literal[0, 1] | None = None


class AuthResponse(Response):
    type: Literal["auth_response"] = "auth_response"
    user_id: IdOut
    nickname: str
    token_expire: str
    token_expire_ts: int
    last_seq: int
    recovered: bool


class AuthRequest(Request):
    """Log a (re)connected socket in with a saved token; replay pushes after `last_seq`."""

    RESPONSE = AuthResponse
    type: Literal["auth_request"] = "auth_request"
    last_seq: Seq | None = None


class TokenRefreshResponse(Response):
    type: Literal["token_refresh_response"] = "token_refresh_response"
    token: str
    token_expire: str
    token_expire_ts: int


class TokenRefreshRequest(Request):
    """Swap the socket's token for a new one."""

    RESPONSE = TokenRefreshResponse
    type: Literal["token_refresh_request"] = "token_refresh_request"


class LogoutResponse(Response):
    type: Literal["logout_response"] = "logout_response"


class LogoutRequest(Request):
    """Revoke this socket's token, or with `all` every token of the user."""

    RESPONSE = LogoutResponse
    type: Literal["logout_request"] = "logout_request"
    all: bool = False


class PingResponse(Response):
    type: Literal["ping_response"] = "ping_response"
    time: str
    time_ts: int


class PingRequest(Request):
    """Application-level liveness check."""

    RESPONSE = PingResponse
    type: Literal["ping_request"] = "ping_request"


class NotifyAck(Request):
    """Mark pushes up to `seq` as seen; answered by nothing."""

    RESPONSE = None
    type: Literal["notify_ack"] = "notify_ack"
    seq: Seq
