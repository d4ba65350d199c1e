"""Login by SMS code (3.1) and the session messages (4.1, notify_ack of section 5)."""

from __future__ import annotations

from datetime import datetime, time

from lovewire.context import Context
from lovewire.errors import (
    BadToken,
    CodeExpired,
    CodeMismatch,
    SmsFailed,
    TooFrequent,
)
from lovewire.registry import HandlerTable
from lovewire.security import hash_token, new_code, new_token
from lovewire.session import Login
from lovewire.sms import SmsSendError, sms_text
from lovewire.storage.base import Unit
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
from protocol.times import DAY, HOUR, format_app_time

__all__ = [
    "CODE_TTL",
    "TICKET_TTL",
    "check_code",
    "check_sms_limits",
    "check_socket_interval",
    "end_all_sessions",
    "issue_session",
    "send_code",
    "table",
]

table = HandlerTable()

CODE_TTL = 300
TICKET_TTL = 600
MAX_CODE_ATTEMPTS = 5
MAX_DAILY_FAILURES = 20
LOGIN = "login"


def _day_start(ctx: Context, now: int) -> int:
    local = datetime.fromtimestamp(now, ctx.settings.zone)
    return int(datetime.combine(local.date(), time(), ctx.settings.zone).timestamp())


async def _check_daily_failures(ctx: Context, tx: Unit, tel: str, now: int) -> None:
    start = _day_start(ctx, now)
    if await tx.codes.failures_since(tel, start) > MAX_DAILY_FAILURES:
        raise TooFrequent(start + DAY - now, "too many wrong codes for this tel today")


def check_socket_interval(ctx: Context) -> None:
    """TooFrequent if this socket got a code less than LOVEWIRE_SMS_INTERVAL ago."""
    session = ctx.session
    now = ctx.now()
    interval = ctx.settings.sms_interval
    if session.sms_at is not None and now - session.sms_at < interval:
        raise TooFrequent(session.sms_at + interval - now, "one code per socket per interval")


async def check_sms_limits(ctx: Context, tx: Unit, tel: str) -> None:
    """TooFrequent if a code to tel now would break a rule of 3.1 or section 7."""
    settings = ctx.settings
    now = ctx.now()
    interval = settings.sms_interval
    await _check_daily_failures(ctx, tx, tel, now)
    last = await tx.sms.last_for_tel(tel)
    if last is not None and now - last < interval:
        raise TooFrequent(last + interval - now, "one code per tel per interval")
    for (count, oldest), cap, window in (
        (await tx.sms.count_tel(tel, now - HOUR), settings.sms_tel_hourly, HOUR),
        (await tx.sms.count_tel(tel, now - DAY), settings.sms_tel_daily, DAY),
        (await tx.sms.count_addr(ctx.session.addr, now - HOUR), settings.sms_addr_hourly, HOUR),
        (await tx.sms.count_all(now - HOUR), settings.sms_global_hourly, HOUR),
    ):
        if count >= cap:
            raise TooFrequent((oldest or now) + window - now, "SMS cap reached")


async def send_code(
    ctx: Context, tel: str, purpose: str, user_id: int | None = None, *, check_socket: bool = True
) -> None:
    """Send a fresh code for purpose to tel, under every SMS rule of 3.1 and section 7."""
    settings = ctx.settings
    session = ctx.session
    now = ctx.now()
    if check_socket:
        check_socket_interval(ctx)
    code = new_code()
    async with ctx.unit() as tx:
        await check_sms_limits(ctx, tx, tel)
        send_id = await tx.sms.record(tel, session.addr, now)
        code_id = await tx.codes.add(
            tel, purpose, user_id, ctx.services.codes.hash(tel, code), now + CODE_TTL, now
        )
    try:
        await ctx.sms.send(tel, code, sms_text(code, settings.lang))
    except SmsSendError as exc:
        ctx.services.metrics.sms_failed += 1
        ctx.log.warning("SMS to a tel failed: %s", exc)
        async with ctx.unit(check_login=False) as tx:  # undoes the send: trusts no token
            await tx.sms.delete(send_id)
            await tx.codes.delete(code_id)
        raise SmsFailed(str(exc)) from None
    ctx.services.metrics.sms_sent += 1
    if check_socket:
        session.sms_at = now


async def check_code(
    ctx: Context,
    tx: Unit,
    tel: str,
    purpose: str,
    code: str,
    user_id: int | None = None,
    *,
    consume: bool = True,
) -> bool:
    """Check a code inside tx; True if it matched (and is now used, if `consume`).

    A wrong code is counted in tx and reported by returning False, so that the caller
    commits the count before raising CodeMismatch.
    """
    now = ctx.now()
    await _check_daily_failures(ctx, tx, tel, now)
    pending = await tx.codes.pending(tel, purpose, now, user_id)
    if pending is None or pending.attempts >= MAX_CODE_ATTEMPTS:
        raise CodeExpired("no live code for this tel: request a new one")
    if not ctx.services.codes.matches(tel, code, pending.code_hash):
        await tx.codes.fail(pending.id)
        return False
    if consume:
        await tx.codes.use(pending.id)
    return True


async def issue_session(ctx: Context, tx: Unit, user_id: int) -> tuple[str, Login]:
    """Create a session token for user_id in tx, of the user's current session generation.

    The user's row is locked for it: a logout-all or a phone change committing at the
    same time comes either before (the token is of the new generation) or after (its
    generation bump kills the token).
    """
    gen = await tx.users.lock_sessions(user_id)
    if gen is None:
        raise BadToken("user gone")
    token = new_token()
    token_hash = hash_token(token)
    now = ctx.now()
    expires = now + int(ctx.settings.token_days * DAY)
    token_id = await tx.tokens.create(token_hash, "session", user_id, None, expires, now, gen)
    return token, Login(user_id, token_id, token_hash, expires)


async def end_all_sessions(tx: Unit, user_id: int, tels: list[str]) -> None:
    """Kill every token of the user in tx, and the registration tickets of `tels`.

    The token rows first, then the generation on the user row (the order of locks of
    TokenRepo): what a concurrent unit mints after the first is killed by the second.
    """
    await tx.tokens.revoke_all(user_id, tels)
    await tx.users.end_sessions(user_id)


def app_time(ctx: Context, ts: int) -> str:
    return format_app_time(ts, ctx.settings.zone)


@table.handles(SmsValidationRequest, auth="lenient")
async def request_sms_code(ctx: Context, req: SmsValidationRequest) -> SmsValidationSend:
    """Send a login code to the tel."""
    tel = req.tel
    await send_code(ctx, tel, LOGIN)
    ctx.session.sms_tel = tel
    return SmsValidationSend()


@table.handles(SmsValidationCode, auth="lenient")
async def verify_sms_code(ctx: Context, req: SmsValidationCode) -> SmsValidationResult:
    """Check the code; log a registered tel in, give a new tel a registration ticket."""
    tel = req.tel if req.tel is not None else ctx.session.sms_tel
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
    last_seq, _ = await ctx.log_in(login)
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
    async with ctx.store.read() as tx:
        user = await tx.users.get(login.user_id)
    if user is None:
        raise BadToken("user gone")
    last_seq, recovered = await ctx.log_in(login, req.last_seq)
    return AuthResponse(
        user_id=user.id,
        nickname=user.nickname,
        token_expire=app_time(ctx, login.expires_ts),
        token_expire_ts=login.expires_ts,
        last_seq=last_seq,
        recovered=recovered,
    )


@table.handles(TokenRefreshRequest)
async def refresh_token(ctx: Context, req: TokenRefreshRequest) -> TokenRefreshResponse:
    """Swap this socket's token for a new one; the old one is revoked.

    The old token is revoked only if it is still live, by a conditional update in the unit
    that mints the new one: of concurrent refreshes of one token exactly one wins, and a
    token revoked meanwhile (logout-all, phone change) refreshes into nothing.
    """
    old = ctx.session.login
    if old is None:
        raise BadToken("not logged in")
    async with ctx.unit(check_login=False) as tx:
        if not await tx.tokens.revoke_live(old.token_id, ctx.now()):
            raise BadToken("token already refreshed or revoked")
        token, login = await issue_session(ctx, tx, old.user_id)
    ctx.replace_login(old, login)
    ctx.hub.end_sessions(old.user_id, [old.token_id], "refreshed", keep=ctx.session)
    return TokenRefreshResponse(
        token=token, token_expire=app_time(ctx, login.expires_ts), token_expire_ts=login.expires_ts
    )


@table.handles(LogoutRequest)
async def log_out(ctx: Context, req: LogoutRequest) -> LogoutResponse:
    """Revoke this socket's token, or every token of the user (and tickets of its tel)."""
    login = ctx.session.login
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
    ctx.hub.end_sessions(
        login.user_id, None if req.all else [login.token_id], "logout", keep=ctx.session
    )
    ctx.session.log_out()
    return LogoutResponse()


@table.handles(PingRequest, auth="optional")
async def ping(ctx: Context, req: PingRequest) -> PingResponse:
    """Answer with the server's time."""
    now = ctx.now()
    return PingResponse(time=app_time(ctx, now), time_ts=now)


@table.handles(NotifyAck)
async def ack_pushes(ctx: Context, req: NotifyAck) -> None:
    """Mark the caller's pushes up to seq as seen."""
    async with ctx.unit() as tx:
        await tx.pushes.ack(ctx.user_id, req.seq)
