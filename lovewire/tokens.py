"""Session tokens: minting one in a unit, and ending every session of a user.

Shared by the features that log a user in (login, registration, refresh, phone change).
"""

from __future__ import annotations

from lovewire.context import Context
from lovewire.errors import BadToken
from lovewire.security import hash_token, new_token
from lovewire.session import Login
from lovewire.storage.base import Unit
from protocol.times import DAY

__all__ = ["end_all_sessions", "issue_session"]


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
