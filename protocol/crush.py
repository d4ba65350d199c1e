"""Secret crush (暗恋) messages (section 4.3)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict

from protocol.base import Request, Response, Text
from protocol.session import Tel

__all__ = [
    "CrushAddRequest",
    "CrushAddResponse",
    "CrushItem",
    "CrushListRequest",
    "CrushListResponse",
    "CrushReceivedRequest",
    "CrushReceivedResponse",
    "CrushRemoveRequest",
    "CrushRemoveResponse",
]

#: Crush words: 0..100 characters (section 2).
CrushWords = Annotated[str, Text(100)] | None


class CrushAddResponse(Response):
    type: Literal["crush_add_response"] = "crush_add_response"
    matched: bool


class CrushAddRequest(Request):
    """Name a tel I secretly like, with optional words shown only on a match."""

    RESPONSE = CrushAddResponse
    type: Literal["crush_add_request"] = "crush_add_request"
    crush_tel: Tel
    words: CrushWords = None


class CrushListResponse(Response):
    type: Literal["crush_list_response"] = "crush_list_response"
    crushes: list[CrushItem]


class CrushListRequest(Request):
    """List my active crushes."""

    RESPONSE = CrushListResponse
    type: Literal["crush_list_request"] = "crush_list_request"


class CrushItem(BaseModel):
    """One crush of mine, as the list shows it."""

    model_config = ConfigDict(extra="forbid")

    crush_tel: str
    words: str
    add_time: str
    add_time_ts: int
    matched: bool


class CrushRemoveResponse(Response):
    type: Literal["crush_remove_response"] = "crush_remove_response"


class CrushRemoveRequest(Request):
    """Take a tel off my list; a match with it ends."""

    RESPONSE = CrushRemoveResponse
    type: Literal["crush_remove_request"] = "crush_remove_request"
    crush_tel: Tel


class CrushReceivedResponse(Response):
    type: Literal["crush_received_response"] = "crush_received_response"
    count: int


class CrushReceivedRequest(Request):
    """How many people have an active crush on me."""

    RESPONSE = CrushReceivedResponse
    type: Literal["crush_received_request"] = "crush_received_request"
