"""The chat's chores (4.6): ending expired conversations, deleting ended ones.

Both are safe on every process at once. Expiry is a claim in the database
(`ChatRepo.claim_expired`: a conditional UPDATE) in the unit that also stores the two
`chat_closed_notify` pushes, so each conversation is told exactly once, by whichever
process claims it first, whether or not anyone is online. The retention sweep deletes
rows (twice is harmless) and then each picture nothing refers to any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from lovewire.context import Services
from lovewire.pushes import push_body
from lovewire.uploads import remove_if_unused
from protocol.chat import ChatClosedNotify
from protocol.times import DAY

__all__ = ["BATCH", "SWEEP_ROWS", "ChatChores"]

log = logging.getLogger(__name__)

#: Conversations claimed per unit.
BATCH = 100
#: Messages, or conversations, deleted per unit: about a millisecond of the writer.
SWEEP_ROWS = 1000
#: A retention sweep runs at most this often (seconds), and after any clock jump.
SWEEP_EVERY = 600.0
#: At stop, the pass in progress gets this long to finish before it is cancelled.
CLOSE_WAIT = 5.0


class ChatChores:
    """Expiry and retention of conversations, run by every process."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._wake = asyncio.Event()
        self._swept_at = -SWEEP_EVERY
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run the chores in the background until `close`."""
        self._task = asyncio.create_task(self.run(), name="lovewire-chats")

    async def close(self) -> None:
        """Stop after the pass in progress (a unit is never cut in the middle), or cancel
        it after CLOSE_WAIT seconds."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), CLOSE_WAIT)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def expire(self) -> int:
        """End every open, not kept conversation past its expiry; tell both people."""
        services = self.services
        ended = 0
        while True:
            now = int(services.clock.now())
            async with services.store.unit() as tx:
                claimed = await tx.chats.claim_expired(now, BATCH)
                owed = sorted(
                    (user_id, chat.id)
                    for chat in claimed
                    for user_id in (chat.low_user, chat.high_user)
                )
                # One user after another in id order: the lock order of every chat unit.
                for user_id, chat_id in owed:
                    notify = ChatClosedNotify(conversation_id=chat_id, reason="expired")
                    await tx.push(user_id, push_body(notify), now)
            await services.hub.publish(tx.new_pushes)
            ended += len(claimed)
            if len(claimed) < BATCH:
                return ended

    async def sweep(self) -> int:
        """Delete conversations ended more than the retention ago, messages and pictures."""
        services = self.services
        keep = round(services.settings.chat_retention_days * DAY)
        deleted = 0
        while True:
            now = int(services.clock.now())
            async with services.store.unit() as tx:
                swept = await tx.chats.delete_ended(now - keep, SWEEP_ROWS)
            for path in swept.pictures:
                await remove_if_unused(services.store, services.media, path)
            deleted += swept.conversations
            if swept.messages < SWEEP_ROWS and swept.conversations < SWEEP_ROWS:
                if deleted:
                    log.info("deleted %d ended conversations", deleted)
                return deleted

    def wake(self) -> None:
        """Run the chores now (the server's clock jumped)."""
        self._wake.set()

    async def run(self) -> None:
        """Expire every `chat_sweep_interval` seconds (and at each clock jump); sweep now
        and then."""
        clock = self.services.clock
        clock.watch(self.wake)
        try:
            while not self._closing:
                jumped = self._wake.is_set()
                self._wake.clear()
                try:
                    await self.expire()
                    loop_now = asyncio.get_running_loop().time()
                    if jumped or loop_now - self._swept_at >= SWEEP_EVERY:
                        self._swept_at = loop_now
                        await self.sweep()
                except Exception:
                    log.exception("chat chores failed")
                if self._closing:
                    break
                with contextlib.suppress(TimeoutError):
                    interval = self.services.settings.chat_sweep_interval
                    await asyncio.wait_for(self._wake.wait(), interval)
        finally:
            clock.unwatch(self.wake)
