"""Registration, information collection (3.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from handlers.auth import app_time, issue_session
from handlers.crush import claim_tel
from lovewire.context import Context
from lovewire.errors import BadInput, BadToken
from lovewire.registry import HandlerTable
from lovewire.security import hash_token
from lovewire.storage.base import Unit
from lovewire.storage.records import ProfileChanges, User

if TYPE_CHECKING:
    from datetime import date
from protocol.session import UserRegisterInfo, UserRegisterResult

__all__ = ["PersonalInfo", "personal_fields", "table", "tel_claimed"]

table = HandlerTable()


async def tel_claimed(ctx: Context, tx: Unit, user: User) -> None:
    """A tel has just become this user's (registration or phone change): crushes fire."""
    await claim_tel(ctx, tx, user)


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


@table.handles(UserRegisterInfo, auth="self")
async def register_user(ctx: Context, req: UserRegisterInfo) -> UserRegisterResult:
    """Create the user of a registration ticket, or update a registered user's info."""
    now = ctx.now()
    record = None
    if req.token is not None:
        async with ctx.store.read() as tx:
            record = await tx.tokens.by_hash(hash_token(req.token))
    usable = record is not None and not record.revoked and record.expires_ts > now
    updating = usable and record is not None and record.kind == "session"

    fields = personal_fields(req)
    if not updating and not {"nickname", "sex", "birthday"} <= fields.keys():
        raise BadInput("nickname, sex and birthday are required")
    if not usable or record is None:
        raise BadToken("registration ticket not valid")
    if updating:
        assert req.token is not None
        login = await ctx.check_token(req.token)
        if ctx.session.login is not None and ctx.session.login.user_id != login.user_id:
            raise BadToken("token of another user than this socket's")

    # The token is checked again inside the unit that uses it: a logout-all or a phone
    # change committed since the read above leaves it nothing to mint or update.
    async with ctx.unit() as tx:
        if updating:
            if not await tx.tokens.hold(login.token_id, now):
                raise BadToken("token revoked or expired")
            user = await tx.users.update_profile(login.user_id, ProfileChanges.of(fields))
            token = req.token
        else:
            existing = None
            if record.user_id is not None:
                existing = await tx.users.get(record.user_id)
            if existing is None and record.tel is not None:
                existing = await tx.users.by_tel(record.tel)
            if existing is None:
                assert record.tel is not None
                user = await tx.users.create(
                    record.tel,
                    str(fields["nickname"]),
                    int(str(fields["sex"])),
                    str(fields["birthday"]),
                    now,
                )
                await tel_claimed(ctx, tx, user)
            else:
                user = existing
            if not await tx.tokens.bind_ticket(record.id, user.id, now):
                raise BadToken("registration ticket revoked or expired")
            token, login = await issue_session(ctx, tx, user.id)
    last_seq, _ = await ctx.log_in(login)
    return UserRegisterResult(
        user_id=user.id,
        token=token,
        token_expire=app_time(ctx, login.expires_ts),
        token_expire_ts=login.expires_ts,
        last_seq=last_seq,
    )
