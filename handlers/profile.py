"""Profile (个人资料, 4.4): my own profile, others' public fields, and updates."""

from __future__ import annotations

from datetime import date, datetime

from handlers.common import personal_fields
from lovewire.context import Context
from lovewire.errors import UserNotFound
from lovewire.images import image_url
from lovewire.registry import HandlerTable
from lovewire.storage.records import ProfileChanges, User
from lovewire.uploads import check_stored, forget_file, give_back, store_picture
from protocol.profile import (
    SIGNATURE_MAX,
    OwnProfile,
    ProfileRequest,
    ProfileResponse,
    ProfileUpdateRequest,
    ProfileUpdateResponse,
    PublicProfile,
)
from protocol.times import DAY, age_on, format_app_date

__all__ = ["SIGNATURE_MAX", "table"]

table = HandlerTable()

AVATAR = "avatar"


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
    """Change the given fields; the avatar is stored like a picture, the old one forgotten."""
    fields = personal_fields(req)
    if req.signature is not None:
        fields["signature"] = req.signature
    user_id = ctx.user_id
    now = ctx.now()
    new_file = ""
    if req.avatar == "":
        fields["avatar"] = ""
    elif req.avatar is not None:
        limit = ctx.settings.avatars_per_day
        new_file = await store_picture(ctx, req.avatar, AVATAR, limit, DAY, now)
        fields["avatar"] = new_file
    try:
        async with ctx.unit() as tx:
            before = await tx.users.get(user_id)
            if new_file:
                await check_stored(ctx, tx, new_file)
            user = await tx.users.update_profile(user_id, ProfileChanges.of(fields))
    except BaseException:
        if new_file:
            await give_back(ctx, user_id, AVATAR, now)
            await forget_file(ctx, new_file)
        raise
    if "avatar" in fields and before is not None and before.avatar not in ("", user.avatar):
        await forget_file(ctx, before.avatar)
    return ProfileUpdateResponse(profile=own_profile(ctx, user))
