"""Profile (个人资料) messages (section 4.4)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict

from protocol.base import Id, IdOut, Request, Response, Text
from protocol.session import BirthFields, Nickname

__all__ = [
    "SIGNATURE_MAX",
    "OwnProfile",
    "ProfileRequest",
    "ProfileResponse",
    "ProfileUpdateRequest",
    "ProfileUpdateResponse",
    "PublicProfile",
]

SIGNATURE_MAX = 100


class OwnProfile(BaseModel):
    """My own profile: every field, the birthday and the tel included."""

    model_config = ConfigDict(extra="forbid")

    user_id: IdOut
    nickname: str
    sex: int
    birthday: str
    signature: str
    avatar: str
    tel: str


class PublicProfile(BaseModel):
    """Another user's public fields: an age, never the birthday or the tel."""

    model_config = ConfigDict(extra="forbid")

    user_id: IdOut
    nickname: str
    sex: int
    age: int
    signature: str
    avatar: str


class ProfileResponse(Response):
    type: Literal["profile_response"] = "profile_response"
    profile: OwnProfile | PublicProfile


class ProfileRequest(Request):
    """My profile, or with `user_id` another user's public one."""

    RESPONSE = ProfileResponse
    type: Literal["profile_request"] = "profile_request"
    user_id: Id | None = None


class ProfileUpdateResponse(Response):
    type: Literal["profile_update_response"] = "profile_update_response"
    profile: OwnProfile


class ProfileUpdateRequest(BirthFields):
    """Change the given fields of my profile; `avatar` is a data URI ("" removes it)."""

    RESPONSE = ProfileUpdateResponse
    type: Literal["profile_update_request"] = "profile_update_request"
    nickname: Nickname | None = None
    sex: Literal[0, 1] | None = None
    signature: Annotated[str, Text(SIGNATURE_MAX)] | None = None
    avatar: str | None = None
