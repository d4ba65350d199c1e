"""Registration, information collection (3.2)."""

from __future__ import annotations

from handlers.common import claim_tel, personal_fields
from lovewire.context import Context, app_time
from lovewire.errors import BadInput, BadToken
from lovewire.registry import HandlerTable
from lovewire.security import hash_token
from lovewire.storage.records import ProfileChanges
from lovewire.tokens import issue_session
from protocol.session import UserRegisterInfo, UserRegisterResult

__all__ = ["table"]

table = HandlerTable()


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
        if ctx.login is not None and ctx.login.user_id != login.user_id:
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
                await claim_tel(ctx, tx, user)
            else:
                user = existing
            if not await tx.tokens.bind_ticket(record.id, user.id, now):
                raise BadToken("registration ticket revoked or expired")
            token, login = await issue_session(ctx, tx, user.id)
    last_seq = (await ctx.log_in(login)).last_seq
    return UserRegisterResult(
        user_id=user.id,
        token=token,
        token_expire=app_time(ctx, login.expires_ts),
        token_expire_ts=login.expires_ts,
        last_seq=last_seq,
    )
