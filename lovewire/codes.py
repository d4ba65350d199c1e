"""Verification codes by SMS: sending one under every rule of 3.1 and section 7, checking one.

Shared by the features that send codes (login, phone change).
"""

from __future__ import annotations

from datetime import datetime, time

from lovewire.context import Context
from lovewire.errors import CodeExpired, SmsFailed, TooFrequent
from lovewire.security import new_code
from lovewire.sms import SmsSendError, sms_text
from lovewire.storage.base import Unit
from protocol.times import DAY, HOUR

__all__ = [
    "CODE_TTL",
    "MAX_CODE_ATTEMPTS",
    "MAX_DAILY_FAILURES",
    "check_code",
    "check_sms_limits",
    "check_socket_interval",
    "send_code",
]

CODE_TTL = 300
MAX_CODE_ATTEMPTS = 5
MAX_DAILY_FAILURES = 20


def _day_start(ctx: Context, now: int) -> int:
    local = datetime.fromtimestamp(now, ctx.settings.zone)
    return int(datetime.combine(local.date(), time(), ctx.settings.zone).timestamp())


async def _check_daily_failures(ctx: Context, tx: Unit, tel: str, now: int) -> None:
    start = _day_start(ctx, now)
    if await tx.codes.failures_since(tel, start) > MAX_DAILY_FAILURES:
        raise TooFrequent(start + DAY - now, "too many wrong codes for this tel today")


def check_socket_interval(ctx: Context) -> None:
    """TooFrequent if this socket got a code less than LOVEWIRE_SMS_INTERVAL ago."""
    sent_at = ctx.code_sent_at
    now = ctx.now()
    interval = ctx.settings.sms_interval
    if sent_at is not None and now - sent_at < interval:
        raise TooFrequent(sent_at + interval - now, "one code per socket per interval")


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
        (await tx.sms.count_addr(ctx.addr, now - HOUR), settings.sms_addr_hourly, HOUR),
        (await tx.sms.count_all(now - HOUR), settings.sms_global_hourly, HOUR),
    ):
        if count >= cap:
            raise TooFrequent((oldest or now) + window - now, "SMS cap reached")


async def send_code(
    ctx: Context, tel: str, purpose: str, user_id: int | None = None, *, check_socket: bool = True
) -> None:
    """Send a fresh code for purpose to tel, under every SMS rule of 3.1 and section 7."""
    settings = ctx.settings
    now = ctx.now()
    if check_socket:
        check_socket_interval(ctx)
    code = new_code()
    async with ctx.unit() as tx:
        await check_sms_limits(ctx, tx, tel)
        send_id = await tx.sms.record(tel, ctx.addr, now)
        code_id = await tx.codes.add(
            tel, purpose, user_id, ctx.codes.hash(tel, code), now + CODE_TTL, now
        )
    try:
        await ctx.sms.send(tel, code, sms_text(code, settings.lang))
    except SmsSendError as exc:
        ctx.metrics.sms_failed()
        ctx.log.warning("SMS to a tel failed: %s", exc)
        async with ctx.unit(check_login=False) as tx:  # undoes the send: trusts no token
            await tx.sms.delete(send_id)
            await tx.codes.delete(code_id)
        raise SmsFailed(str(exc)) from None
    ctx.metrics.sms_sent()
    if check_socket:
        ctx.code_sent_at = now


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
    if not ctx.codes.matches(tel, code, pending.code_hash):
        await tx.codes.fail(pending.id)
        return False
    if consume:
        await tx.codes.use(pending.id)
    return True
