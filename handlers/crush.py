"""Secret crush (暗恋, 4.3): nobody learns who likes them unless the feeling is mutual."""

from __future__ import annotations

from handlers.common import (
    CRUSH_TTL,
    caller,
    drop_crush,
    fresh_since,
    match_crushes,
    notice_crush,
)
from lovewire.context import Context, app_time
from lovewire.errors import CannotCrushSelf, CrushLimit, CrushNotFound
from lovewire.registry import HandlerTable
from protocol.crush import (
    CrushAddRequest,
    CrushAddResponse,
    CrushItem,
    CrushListRequest,
    CrushListResponse,
    CrushReceivedRequest,
    CrushReceivedResponse,
    CrushRemoveRequest,
    CrushRemoveResponse,
)
from protocol.times import DAY

__all__ = ["CRUSH_TTL", "MAX_CRUSHES", "MAX_NEW_TELS", "table"]

table = HandlerTable()

#: Active crushes per user, and new tels per user in NEW_TEL_WINDOW.
MAX_CRUSHES = 9
MAX_NEW_TELS = 9
NEW_TEL_WINDOW = 30 * DAY


@table.handles(CrushAddRequest)
async def add_crush(ctx: Context, req: CrushAddRequest) -> CrushAddResponse:
    """Name a tel; a mutual crush matches, a one-sided one is told anonymously.

    The same queries run whether or not the tel is registered, so neither the answer nor
    its timing tells the admirer.
    """
    tel = req.crush_tel
    now = ctx.now()
    fresh = fresh_since(ctx)
    async with ctx.unit() as tx:
        me = await caller(tx, ctx.user_id)
        if tel == me.tel:
            raise CannotCrushSelf()
        existing = await tx.crushes.get(me.id, tel, fresh)
        if existing is not None:
            return CrushAddResponse(matched=existing.matched)
        if await tx.crushes.count_of_user(me.id, fresh) >= MAX_CRUSHES:
            raise CrushLimit("at most 9 active crushes")
        recent = await tx.crushes.tels_added_since(me.id, now - NEW_TEL_WINDOW)
        if tel not in recent and len(recent) >= MAX_NEW_TELS:
            raise CrushLimit("at most 9 new tels in 30 days")
        mine = await tx.crushes.add(me.id, tel, req.words or "", now, fresh)
        target = await tx.users.by_tel(tel)
        theirs = await tx.crushes.pending_from(tel, me.tel, fresh)
        if theirs is not None:
            await match_crushes(ctx, tx, mine, me, theirs)
        else:
            await notice_crush(ctx, tx, tel, target, [me.id])
    return CrushAddResponse(matched=theirs is not None)


@table.handles(CrushListRequest)
async def list_crushes(ctx: Context, req: CrushListRequest) -> CrushListResponse:
    """My active crushes, newest first."""
    async with ctx.store.read() as tx:
        crushes = await tx.crushes.of_user(ctx.user_id, fresh_since(ctx))
    return CrushListResponse(
        crushes=[
            CrushItem(
                crush_tel=c.crush_tel,
                words=c.words,
                add_time=app_time(ctx, c.created_ts),
                add_time_ts=c.created_ts,
                matched=c.matched,
            )
            for c in crushes
        ]
    )


@table.handles(CrushRemoveRequest)
async def remove_crush(ctx: Context, req: CrushRemoveRequest) -> CrushRemoveResponse:
    """Take a tel off my list; a match with it ends silently for both."""
    tel = req.crush_tel
    async with ctx.unit() as tx:
        crush = await tx.crushes.get(ctx.user_id, tel, fresh_since(ctx))
        if crush is None:
            raise CrushNotFound()
        await drop_crush(ctx, tx, crush)
    return CrushRemoveResponse()


@table.handles(CrushReceivedRequest)
async def count_received(ctx: Context, req: CrushReceivedRequest) -> CrushReceivedResponse:
    """How many active crushes name my tel, matched ones included."""
    async with ctx.store.read() as tx:
        me = await caller(tx, ctx.user_id)
        count = await tx.crushes.count_naming(me.tel, fresh_since(ctx))
    return CrushReceivedResponse(count=count)
