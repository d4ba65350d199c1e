"""Feature logic two features share. Not a feature: it registers no handler.

Feature modules never import each other; what two of them need lives here (engine logic,
such as sending codes or minting tokens, lives in `lovewire`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from lovewire.context import Context, app_time
from lovewire.errors import UserNotFound
from lovewire.pushes import push_body
from lovewire.storage.base import Unit
from lovewire.storage.records import Conversation, Crush, User
from protocol.chat import ChatClosedNotify
from protocol.pushes import CrushMatchNotify, CrushNotify
from protocol.times import DAY

if TYPE_CHECKING:
    from datetime import date

__all__ = [
    "CRUSH_TTL",
    "NOTICE_INTERVAL",
    "PersonalInfo",
    "caller",
    "claim_tel",
    "drop_crush",
    "fresh_since",
    "match_crushes",
    "notice_crush",
    "personal_fields",
    "tell_closed",
]

# -- secret crushes: crush adds them, registration and a phone change claim a tel's -------

#: An unmatched crush expires after this long.
CRUSH_TTL = 90 * DAY
#: At most one anonymous notice per admirer and tel in this long.
NOTICE_INTERVAL = DAY


def fresh_since(ctx: Context) -> int:
    """Crushes created before this are expired."""
    return ctx.now() - CRUSH_TTL


async def caller(tx: Unit, user_id: int) -> User:
    """The user of user_id; UserNotFound if it is gone."""
    user = await tx.users.get(user_id)
    if user is None:
        raise UserNotFound("the caller's user is gone")
    return user


async def match_crushes(ctx: Context, tx: Unit, mine: Crush, me: User, theirs: Crush) -> None:
    """Match two crushes, open their conversation (4.6), tell both who the other is."""
    other = await caller(tx, theirs.user_id)
    now = ctx.now()
    await tx.crushes.match(mine, theirs, now)
    expire_ts = now + round(ctx.settings.chat_days * DAY)
    chat = await tx.chats.open(me.id, other.id, now, expire_ts)
    for to, who, words in ((me, other, theirs.words), (other, me, mine.words)):
        notify = CrushMatchNotify(
            user_id=who.id,
            nickname=who.nickname,
            tel=who.tel,
            words=words,
            conversation_id=chat.id,
            expire_time=app_time(ctx, expire_ts),
            expire_ts=expire_ts,
        )
        await ctx.push(tx, to.id, notify)


async def drop_crush(ctx: Context, tx: Unit, crush: Crush) -> None:
    """Remove a crush; a match it ends closes its conversation, as a close would (4.3)."""
    now = ctx.now()
    other = await tx.crushes.remove(crush, now)
    if other is not None:
        chat = await tx.chats.close_pair(crush.user_id, other, now)
        if chat is not None:
            # "expired" if the sweeper had not told it yet: either way, never why.
            await tell_closed(ctx, tx, chat, chat.end_reason or "closed")


async def tell_closed(ctx: Context, tx: Unit, chat: Conversation, reason: str) -> None:
    """Tell both people a conversation ended (the lower user id first: one lock order)."""
    notify = ChatClosedNotify.model_validate({"conversation_id": chat.id, "reason": reason})
    for user_id in (chat.low_user, chat.high_user):
        await ctx.push(tx, user_id, notify)


async def notice_crush(
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
    count = await tx.crushes.count_naming(tel, fresh_since(ctx))
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
    fresh = fresh_since(ctx)
    waiting = [c for c in await tx.crushes.naming(user.tel, fresh) if not c.matched]
    admirers = await tx.users.get_many(c.user_id for c in waiting)
    one_sided = []
    for crush in waiting:
        admirer = admirers.get(crush.user_id)
        if admirer is None or admirer.id == user.id:
            continue
        mine = await tx.crushes.pending_from(user.tel, admirer.tel, fresh)
        if mine is not None:
            await match_crushes(ctx, tx, mine, user, crush)
        else:
            one_sided.append(admirer.id)
    if one_sided:
        await notice_crush(ctx, tx, user.tel, user, one_sided)


# -- personal fields: registration and a profile update set them ------------------------


class PersonalInfo(Protocol):
    """The personal fields registration and a profile update share."""

    @property
    def nickname(self) -> str | None: ...
    @property
    def sex(self) -> int | None: ...
    @property
    def born(self) -> date | None: ...


def personal_fields(req: PersonalInfo) -> dict[str, object]:
    """The user columns a request sets (checked while it was validated: lengths, age)."""
    fields: dict[str, object] = {}
    if req.nickname is not None:
        fields["nickname"] = req.nickname
    if req.sex is not None:
        fields["sex"] = req.sex
    if req.born is not None:
        fields["birthday"] = req.born.isoformat()
    return fields
