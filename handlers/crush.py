"""Secret crush (暗恋, 4.3): nobody learns who likes them unless the feeling is mutual."""

from __future__ import annotations

from handlers.auth import app_time
from lovewire.context import Context
from lovewire.errors import CannotCrushSelf, CrushLimit, CrushNotFound, UserNotFound
from lovewire.pushes import push_body
from lovewire.registry import HandlerTable
from lovewire.storage.base import Unit
from lovewire.storage.records import Crush, User
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
from protocol.pushes import CrushMatchNotify, CrushNotify
from protocol.times import DAY

__all__ = ["CRUSH_TTL", "MAX_CRUSHES", "MAX_NEW_TELS", "claim_tel", "table"]

table = HandlerTable()

#: Active crushes per user, and new tels per user in NEW_TEL_WINDOW.
MAX_CRUSHES = 9
MAX_NEW_TELS = 9
NEW_TEL_WINDOW = 30 * DAY
#: An unmatched crush expires after this long.
CRUSH_TTL = 90 * DAY
#: At most one anonymous notice per admirer and tel in this long.
NOTICE_INTERVAL = DAY


def _fresh(ctx: Context) -> int:
    return ctx.now() - CRUSH_TTL


async def _me(tx: Unit, user_id: int) -> User:
    user = await tx.users.get(user_id)
    if user is None:
        raise UserNotFound("the caller's user is gone")
    return user


async def _match(ctx: Context, tx: Unit, mine: Crush, me: User, theirs: Crush) -> None:
    """Match two crushes and tell both people who the other is."""
    other = await _me(tx, theirs.user_id)
    await tx.crushes.match(mine, theirs, ctx.now())
    for to, who, words in ((me, other, theirs.words), (other, me, mine.words)):
        notify = CrushMatchNotify(user_id=who.id, nickname=who.nickname, tel=who.tel, words=words)
        await ctx.push(tx, to.id, notify)


async def _notice(
    ctx: Context, tx: Unit, tel: str, target: User | None, admirer_ids: list[int]
) -> None:
    """Tell the holder of tel anonymously how many crushes name them, daily per admirer.

    Told or not, registered or not, the same statements run (one notice row per admirer
    told, one push): only what they store differs, so the time taken tells nothing.
    """
    now = ctx.now()
    due = []
    for admirer_id in admirer_ids:
        last = await tx.crushes.last_notice(admirer_id, tel)
        if last is None or now - last >= NOTICE_INTERVAL:
            due.append(admirer_id)
    count = await tx.crushes.count_naming(tel, _fresh(ctx))
    body = push_body(CrushNotify(count=count))
    if target is not None and target.crush_receive and due:
        await tx.crushes.noticed(due, tel, now)
        await tx.push_if(target.id, body, now, stand_in=admirer_ids[0])
    else:
        # A notice a whole interval ago changes nothing (a later one is kept; a notice
        # now is still due) but writes the same row; the push stores nothing, by the same
        # writes.
        await tx.crushes.noticed(admirer_ids, tel, now - NOTICE_INTERVAL)
        await tx.push_if(None, body, now, stand_in=admirer_ids[0])


async def claim_tel(ctx: Context, tx: Unit, user: User) -> None:
    """user now holds user.tel (registration, phone change): waiting crushes fire now."""
    fresh = _fresh(ctx)
    waiting = [c for c in await tx.crushes.naming(user.tel, fresh) if not c.matched]
    admirers = await tx.users.get_many(c.user_id for c in waiting)
    one_sided = []
    for crush in waiting:
        admirer = admirers.get(crush.user_id)
        if admirer is None or admirer.id == user.id:
            continue
        mine = await tx.crushes.pending_from(user.tel, admirer.tel, fresh)
        if mine is not None:
            await _match(ctx, tx, mine, user, crush)
        else:
            one_sided.append(admirer.id)
    if one_sided:
        await _notice(ctx, tx, user.tel, user, one_sided)


@table.handles(CrushAddRequest)
async def add_crush(ctx: Context, req: CrushAddRequest) -> CrushAddResponse:
    """Name a tel; a mutual crush matches, a one-sided one is told anonymously.

    The same queries run whether or not the tel is registered, so neither the answer nor
    its timing tells the admirer.
    """
    tel = req.crush_tel
    now = ctx.now()
    fresh = _fresh(ctx)
    async with ctx.unit() as tx:
        me = await _me(tx, ctx.user_id)
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
            await _match(ctx, tx, mine, me, theirs)
        else:
            await _notice(ctx, tx, tel, target, [me.id])
    return CrushAddResponse(matched=theirs is not None)


@table.handles(CrushListRequest)
async def list_crushes(ctx: Context, req: CrushListRequest) -> CrushListResponse:
    """My active crushes, newest first."""
    async with ctx.store.read() as tx:
        crushes = await tx.crushes.of_user(ctx.user_id, _fresh(ctx))
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
        crush = await tx.crushes.get(ctx.user_id, tel, _fresh(ctx))
        if crush is None:
            raise CrushNotFound()
        await tx.crushes.remove(crush, ctx.now())
    return CrushRemoveResponse()


@table.handles(CrushReceivedRequest)
async def count_received(ctx: Context, req: CrushReceivedRequest) -> CrushReceivedResponse:
    """How many active crushes name my tel, matched ones included."""
    async with ctx.store.read() as tx:
        me = await _me(tx, ctx.user_id)
        count = await tx.crushes.count_naming(me.tel, _fresh(ctx))
    return CrushReceivedResponse(count=count)
