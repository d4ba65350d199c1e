"""Login by SMS code (3.1) and the session messages (4.1, notify_ack of section 5)."""

from __future__ import annotations

from datetime import tzinfo

from lovewire.codes import check_code, send_code
from lovewire.context import Context, app_time
from lovewire.errors import BadToken, CodeExpired, CodeMismatch
from lovewire.registry import HandlerTable
from lovewire.security import hash_token, new_token
from lovewire.tokens import end_all_sessions, issue_session
from protocol.session import (
    AuthRequest,
    AuthResponse,
    LogoutRequest,
    LogoutResponse,
    NotifyAck,
    PingRequest,
    PingResponse,
    SmsValidationCode,
    SmsValidationRequest,
    SmsValidationResult,
    SmsValidationSend,
    TokenRefreshRequest,
    TokenRefreshResponse,
)

__all__ = ["TICKET_TTL", "table"]

table = HandlerTable()

TICKET_TTL = 600
LOGIN = "login"


@table.handles(SmsValidationRequest, auth="lenient")
async def request_sms_code(ctx: Context, req: SmsValidationRequest) -> SmsValidationSend:
    """Send a login code to the tel."""
    tel = req.tel
    await send_code(ctx, tel, LOGIN)
    ctx.code_tel = tel
    return SmsValidationSend()


@table.handles(SmsValidationCode, auth="lenient")
async def verify_sms_code(ctx: Context, req: SmsValidationCode) -> SmsValidationResult:
    """Check the code; log a registered tel in, give a new tel a registration ticket."""
    tel = req.tel if req.tel is not None else ctx.code_tel
    if tel is None:
        raise CodeExpired("no code was asked for on this socket")
    now = ctx.now()
    user = None
    async with ctx.unit() as tx:
        matched = await check_code(ctx, tx, tel, LOGIN, req.code)
        if matched:
            user = await tx.users.by_tel(tel)
            if user is not None:
                token, login = await issue_session(ctx, tx, user.id)
            else:
                token = new_token()
                await tx.tokens.create(
                    hash_token(token), "ticket", None, tel, now + TICKET_TTL, now
                )
    if not matched:
        raise CodeMismatch()
    if user is None:
        return SmsValidationResult(token=token, registered=False, ticket_expire_ts=now + TICKET_TTL)
    last_seq = (await ctx.log_in(login)).last_seq
    return SmsValidationResult(
        token=token,
        registered=True,
        user_id=user.id,
        token_expire=app_time(ctx, login.expires_ts),
        token_expire_ts=login.expires_ts,
        last_seq=last_seq,
    )


@table.handles(AuthRequest, auth="self")
async def authenticate(ctx: Context, req: AuthRequest) -> AuthResponse:
    """Log this socket in with a saved token; replay pushes after last_seq."""
    if req.token is None:
        raise BadToken("token required")
    login = await ctx.check_token(req.token)
    done = await ctx.log_in(login, req.last_seq)
    return AuthResponse(
        user_id=done.user.id,
        nickname=done.user.nickname,
        token_expire=app_time(ctx, login.expires_ts),
        token_expire_ts=login.expires_ts,
        last_seq=done.last_seq,
        recovered=done.recovered,
    )


@table.handles(TokenRefreshRequest)
async def refresh_token(ctx: Context, req: TokenRefreshRequest) -> TokenRefreshResponse:
    """Swap this socket's token for a new one; the old one is revoked.

    The old token is revoked only if it is still live, by a conditional update in the unit
    that mints the new one: of concurrent refreshes of one token exactly one wins, and a
    token revoked meanwhile (logout-all, phone change) refreshes into nothing.
    """
    old = ctx.login
    if old is None:
        raise BadToken("not logged in")
    async with ctx.unit(check_login=False) as tx:
        if not await tx.tokens.revoke_live(old.token_id, ctx.now()):
            raise BadToken("token already refreshed or revoked")
        token, login = await issue_session(ctx, tx, old.user_id)
    ctx.replace_login(old, login)
    await ctx.end_other_sessions(old.user_id, [old.token_id], "refreshed")
    return TokenRefreshResponse(
        token=token, token_expire=app_time(ctx, login.expires_ts), token_expire_ts=login.expires_ts
    )


@table.handles(LogoutRequest)
async def log_out(ctx: Context, req: LogoutRequest) -> LogoutResponse:
    """Revoke this socket's token, or every token of the user (and tickets of its tel)."""
    login = ctx.login
    if login is None:
        raise BadToken("not logged in")
    async with ctx.unit(check_login=False) as tx:
        if req.all:
            user = await tx.users.get(login.user_id)
            if user is None or not await tx.tokens.hold(login.token_id, ctx.now()):
                raise BadToken("token revoked or expired")
            await end_all_sessions(tx, user.id, [user.tel])
        elif not await tx.tokens.revoke_live(login.token_id, ctx.now()):
            raise BadToken("token revoked or expired")
    # After logout-all every socket of the user has a dead token, whichever it used.
    await ctx.end_other_sessions(login.user_id, None if req.all else [login.token_id], "logout")
    ctx.log_out()
    return LogoutResponse()


#: The last ping's answer, with the whole second and the zone it tells the time of.
#: Several servers (clocks, zones) may run in one process: both are the key.
_last_ping: tuple[int, tzinfo, PingResponse] | None = None


@table.handles(PingRequest, auth="optional")
async def ping(ctx: Context, req: PingRequest) -> PingResponse:
    """Answer with the server's time.

    Every ping of one second (and zone) gets the same response object, never changed
    once made: the dispatcher renders it once.
    """
    global _last_ping
    now = ctx.now()
    zone = ctx.settings.zone
    last = _last_ping
    if last is not None and last[0] == now and last[1] == zone:
        return last[2]
    response = PingResponse(time=app_time(ctx, now), time_ts=now)
    _last_ping = (now, zone, response)
    return response


@table.handles(NotifyAck)
async def ack_pushes(ctx: Context, req: NotifyAck) -> None:
    """Mark the caller's pushes up to seq as seen."""
    async with ctx.unit() as tx:
        await tx.pushes.ack(ctx.user_id, req.seq)
