"""Settings (设置) messages: phone number change and crush messages (section 4.5)."""

from __future__ import annotations

from typing import Literal

from protocol.base import Request, Response
from protocol.session import Code, Tel

__all__ = [
    "CrushSettingRequest",
    "CrushSettingResponse",
    "TelChangeCode",
    "TelChangeRequest",
    "TelChangeResult",
    "TelChangeSend",
]


class TelChangeSend(Response):
    type: Literal["tel_change_send"] = "tel_change_send"


class TelChangeRequest(Request):
    """Start moving my account to `new_tel`: a code goes to it and one to my current tel."""

    RESPONSE = TelChangeSend
    type: Literal["tel_change_request"] = "tel_change_request"
    new_tel: Tel


class TelChangeResult(Response):
    type: Literal["tel_change_result"] = "tel_change_result"
    token: str
    token_expire: str
    token_expire_ts: int


class TelChangeCode(Request):
    """Finish the change with the code sent to the new tel and the one sent to the old."""

    RESPONSE = TelChangeResult
    type: Literal["tel_change_code"] = "tel_change_code"
    code: Code
    old_code: Code


class CrushSettingResponse(Response):
    type: Literal["crush_setting_response"] = "crush_setting_response"
    receive: bool


class CrushSettingRequest(Request):
    """Receive anonymous crush notices or not (matches always come)."""

    RESPONSE = CrushSettingResponse
    type: Literal["crush_setting_request"] = "crush_setting_request"
    receive: bool
