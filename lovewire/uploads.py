"""Pictures users send (posts, avatars): a budget spent before decoding, files forgotten.

A stored file is checked (by the unit that will refer to it) and forgotten (by the unit
that found nothing refers to it) under `tx.pictures.lock_path`: in every process, one
unit at a time, so no post or avatar is ever committed with its file gone.

Shared by the feature modules that take pictures, which never import each other.
"""

from __future__ import annotations

import asyncio

from lovewire.context import Context
from lovewire.errors import Internal, PayloadRefused, TooFrequent
from lovewire.images import Limits, parse_data_uri, picture_path
from lovewire.media import MediaStore
from lovewire.storage.base import Store, Unit

__all__ = [
    "UPLOAD",
    "check_budget",
    "check_stored",
    "forget_file",
    "give_back",
    "remove_if_unused",
    "store_picture",
]

#: The budget kind of a picture a user sends (a post, a chat picture): uploads an hour.
UPLOAD = "upload"


async def check_budget(
    tx: Unit, user_id: int, kind: str, limit: int, window: int, now: int
) -> None:
    """TooFrequent once the user has done `limit` actions of a kind within `window`."""
    count, oldest = await tx.pictures.actions_since(user_id, kind, now - window + 1)
    if count >= limit:
        raise TooFrequent((oldest if oldest is not None else now) + window - now)


async def give_back(ctx: Context, user_id: int, kind: str, now: int) -> None:
    """Return an action spent by `store_picture` at `now` (the request changed nothing).

    An undo, not an act of the caller's token: it runs even when the request failed
    because that token was revoked meanwhile.
    """
    try:
        async with ctx.unit(check_login=False) as tx:
            await tx.pictures.take_back_action(user_id, kind, now)
    except Exception:
        ctx.log.exception("could not give an upload budget back")


async def store_picture(
    ctx: Context, data_uri: str, kind: str, limit: int, window: int, now: int
) -> str:
    """Spend one of the caller's `kind` actions at `now`, then check, clean, store a picture.

    The action is counted before anything is decoded, in the same unit as the check, so
    parallel requests cannot pass the budget together. A picture refused by its decoding
    (error 11) keeps it spent (contract section 2); any other failure gives it back, as
    must the caller if it fails afterwards (`give_back` with the same user and `now`). Returns the
    stored picture's path; the caller forgets it if it does not end up using it.
    """
    user_id = ctx.user_id
    settings = ctx.settings
    async with ctx.unit() as tx:
        await check_budget(tx, user_id, kind, limit, window, now)
        await tx.pictures.record_action(user_id, kind, now, now - window)
    try:
        declared, raw = await asyncio.to_thread(parse_data_uri, data_uri, settings.max_upload)
    except BaseException:
        await give_back(ctx, user_id, kind, now)
        raise
    limits = Limits(
        max_pixels=settings.max_pixels,
        max_frames=settings.picture_max_frames,
        max_scans=settings.picture_max_scans,
    )
    try:
        ext, data = await ctx.pictures.clean(raw, declared, limits)
    except PayloadRefused:
        raise
    except BaseException:
        await give_back(ctx, user_id, kind, now)
        raise
    del raw
    rel = picture_path(data, ext)
    try:
        await ctx.media.put(rel, data)
    except BaseException:
        await give_back(ctx, user_id, kind, now)
        raise
    return rel


async def check_stored(ctx: Context, tx: Unit, rel_path: str) -> None:
    """In the unit that is to refer to a stored file: hold it, Internal if it is gone."""
    await tx.pictures.lock_path(rel_path)
    if not await ctx.media.exists(rel_path):
        raise Internal("the stored picture was removed meanwhile")


async def remove_if_unused(store: Store, media: MediaStore, rel_path: str) -> None:
    """Delete a stored file unless a post, an avatar or a chat message refers to it.

    The check and the removal happen inside one write unit, so an upload (which checks
    its file inside its own unit) never commits a post whose file is gone.
    """
    async with store.unit() as tx:
        await tx.pictures.lock_path(rel_path)
        if not await tx.pictures.path_in_use(rel_path):
            await media.delete(rel_path)


async def forget_file(ctx: Context, rel_path: str) -> None:
    """Delete a stored file unless something still refers to it (`remove_if_unused`).

    A clean-up, not an act of the caller's token: it runs even if that token was revoked
    meanwhile; a failure is logged, never the caller's.
    """
    try:
        await remove_if_unused(ctx.store, ctx.media, rel_path)
    except Exception:
        ctx.log.exception("could not remove an unused stored picture")
