"""Settings (设置, 4.5): phone number change and whether crush notices reach me."""

from __future__ import annotations

from handlers.common import claim_tel, drop_crush
from lovewire.codes import check_code, check_sms_limits, check_socket_interval, send_code
from lovewire.context import Context, app_time
from lovewire.errors import (
    BadToken,
    CodeExpired,
    CodeMismatch,
    LovewireError,
    SameTel,
    TelTaken,
    TooFrequent,
    UserNotFound,
)
from lovewire.registry import HandlerTable
from lovewire.tokens import end_all_sessions, issue_session
from protocol.codes import ERROR_PRECEDENCE
from protocol.settings import (
    CrushSettingRequest,
    CrushSettingResponse,
    TelChangeCode,
    TelChangeRequest,
    TelChangeResult,
    TelChangeSend,
)

__all__ = ["TEL_NEW", "TEL_OLD", "table"]

table = HandlerTable()

#: Code purposes of a phone change: the code sent to the new tel, and to the current one.
TEL_NEW = "tel_new"
TEL_OLD = "tel_old"


@table.handles(TelChangeRequest)
async def request_tel_change(ctx: Context, req: TelChangeRequest) -> TelChangeSend:
    """Send a code to the new tel and one to the current tel; remember the change."""
    new_tel = req.new_tel
    user_id = ctx.user_id
    async with ctx.store.read() as tx:
        me = await tx.users.get(user_id)
        if me is None:
            raise UserNotFound("the caller's user is gone")
        if new_tel == me.tel:
            raise SameTel()
        check_socket_interval(ctx)
        await check_sms_limits(ctx, tx, new_tel)
        await check_sms_limits(ctx, tx, me.tel)
        taken = await tx.users.by_tel(new_tel) is not None
    if taken:
        # Error 10 uses up the SMS budgets the two codes would have (socket, both tels, the
        # address, the total): else it is a free, fast oracle of who is registered.
        now = ctx.now()
        async with ctx.unit() as tx:
            for tel in (new_tel, me.tel):
                await check_sms_limits(ctx, tx, tel)
                await tx.sms.record(tel, ctx.addr, now)
        ctx.code_sent_at = now
        raise TelTaken()
    async with ctx.unit() as tx:
        await tx.tel_changes.put(user_id, new_tel, me.tel, ctx.now())
    await send_code(ctx, new_tel, TEL_NEW, user_id, check_socket=False)
    await send_code(ctx, me.tel, TEL_OLD, user_id)
    return TelChangeSend()


@table.handles(TelChangeCode)
async def change_tel(ctx: Context, req: TelChangeCode) -> TelChangeResult:
    """Check both codes, move the account to the new tel, revoke every other token.

    Every token of the user, and every registration ticket of the old or the new tel,
    dies in the unit that moves the account (the caller's token is held there first):
    none minted concurrently survives it.
    """
    caller = ctx.login
    if caller is None:
        raise BadToken("not logged in")
    user_id = caller.user_id
    now = ctx.now()
    failures: list[LovewireError] = []
    async with ctx.unit(check_login=False) as tx:
        if not await tx.tokens.hold(caller.token_id, now):
            raise BadToken("token revoked or expired")
        change = await tx.tel_changes.get(user_id)
        me = await tx.users.get(user_id)
        if me is None:
            raise UserNotFound("the caller's user is gone")
        if change is None or change.old_tel != me.tel:
            raise CodeExpired("no phone change pending: request one")
        if await tx.users.by_tel(change.new_tel) is not None:
            raise TelTaken()
        for tel, purpose, code in (
            (change.new_tel, TEL_NEW, req.code),
            (change.old_tel, TEL_OLD, req.old_code),
        ):
            try:
                if not await check_code(ctx, tx, tel, purpose, code, user_id, consume=False):
                    failures.append(CodeMismatch())
            except (TooFrequent, CodeExpired) as exc:
                failures.append(exc)
        if not failures:
            for tel, purpose in ((change.new_tel, TEL_NEW), (change.old_tel, TEL_OLD)):
                pending = await tx.codes.pending(tel, purpose, now, user_id)
                assert pending is not None
                await tx.codes.use(pending.id)
            await tx.tel_changes.delete(user_id)
            await end_all_sessions(tx, user_id, [change.old_tel, change.new_tel])
            user = await tx.users.set_tel(user_id, change.new_tel)
            # A crush of mine on the tel I now hold (expired or not) has no meaning left.
            mine = await tx.crushes.get(user_id, change.new_tel, 0)
            if mine is not None:
                await drop_crush(ctx, tx, mine)
            await claim_tel(ctx, tx, user)
            token, login = await issue_session(ctx, tx, user_id)
    if failures:
        # The wrong attempts are committed; the first error in contract order wins.
        raise min(failures, key=lambda exc: ERROR_PRECEDENCE.index(exc.error_no))
    # Pushes go out after the response, so the sockets logged out here get none of them.
    ctx.replace_login(caller, login)
    await ctx.end_other_sessions(user_id, None, "tel_changed")
    return TelChangeResult(
        token=token, token_expire=app_time(ctx, login.expires_ts), token_expire_ts=login.expires_ts
    )


@table.handles(CrushSettingRequest)
async def set_crush_receive(ctx: Context, req: CrushSettingRequest) -> CrushSettingResponse:
    """Turn anonymous crush notices on or off; matches always come."""
    async with ctx.unit() as tx:
        user = await tx.users.set_crush_receive(ctx.user_id, req.receive)
    return CrushSettingResponse(receive=user.crush_receive)
