"""Profile (个人资料, 4.4): my own profile, others' public fields, and updates."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

from handlers.registration import personal_fields
from lovewire.context import Context
from lovewire.errors import UserNotFound
from lovewire.images import image_url, store_image
from lovewire.registry import HandlerTable
from lovewire.storage.records import User
from protocol.profile import (
    SIGNATURE_MAX,
    OwnProfile,
    ProfileRequest,
    ProfileResponse,
    ProfileUpdateRequest,
    ProfileUpdateResponse,
    PublicProfile,
)
from protocol.times import age_on, format_app_date

__all__ = ["SIGNATURE_MAX", "table"]

table = HandlerTable()


def _avatar(ctx: Context, user: User) -> str:
    return image_url(user.avatar, ctx.settings.public_url) if user.avatar else ""


def own_profile(ctx: Context, user: User) -> OwnProfile:
    """Every field of my profile."""
    return OwnProfile(
        user_id=user.id,
        nickname=user.nickname,
        sex=user.sex,
        birthday=format_app_date(date.fromisoformat(user.birthday)),
        signature=user.signature,
        avatar=_avatar(ctx, user),
        tel=user.tel,
    )


def public_profile(ctx: Context, user: User) -> PublicProfile:
    """What others see: an age, never the birthday or the tel."""
    today = datetime.fromtimestamp(ctx.now(), ctx.settings.zone).date()
    return PublicProfile(
        user_id=user.id,
        nickname=user.nickname,
        sex=user.sex,
        age=age_on(date.fromisoformat(user.birthday), today),
        signature=user.signature,
        avatar=_avatar(ctx, user),
    )


@table.handles(ProfileRequest)
async def get_profile(ctx: Context, req: ProfileRequest) -> ProfileResponse:
    """My own profile, or another user's public one."""
    me = ctx.user_id
    async with ctx.store.read() as tx:
        user = await tx.users.get(req.user_id or me)
    if user is None:
        raise UserNotFound()
    if user.id == me:
        return ProfileResponse(profile=own_profile(ctx, user))
    return ProfileResponse(profile=public_profile(ctx, user))


@table.handles(ProfileUpdateRequest)
async def update_profile(ctx: Context, req: ProfileUpdateRequest) -> ProfileUpdateResponse:
    """Change the given fields; the avatar is stored like a picture."""
    fields = personal_fields(req)
    if req.signature is not None:
        fields["signature"] = req.signature
    user_id = ctx.user_id
    if req.avatar == "":
        fields["avatar"] = ""
    elif req.avatar is not None:
        settings = ctx.settings
        fields["avatar"] = await asyncio.to_thread(
            store_image,
            req.avatar,
            ctx.services.media_dir,
            max_bytes=settings.max_upload,
            max_pixels=settings.max_pixels,
        )
    async with ctx.unit() as tx:
        user = await tx.users.update(user_id, **fields)
    return ProfileUpdateResponse(profile=own_profile(ctx, user))
