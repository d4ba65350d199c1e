"""Rendering stored pushes as frames, and remembering which ones reached a socket."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import tzinfo

from lovewire.storage.base import Store
from lovewire.storage.records import StoredPush
from protocol.base import Notify
from protocol.times import format_app_time

__all__ = ["DeliveryRecorder", "push_body", "render_push"]

log = logging.getLogger(__name__)

_STAMP_FIELDS = {"seq", "time", "time_ts"}


def push_body(notify: Notify) -> str:
    """The stored form of a push: its JSON without the fields added when it is sent."""
    return notify.model_dump_json(exclude=_STAMP_FIELDS)


def render_push(push: StoredPush, zone: tzinfo) -> str:
    """The frame of a stored push, with its seq and time."""
    stamp = json.dumps(format_app_time(push.created_ts, zone), ensure_ascii=False)
    return f'{push.body[:-1]},"seq":{push.seq},"time":{stamp},"time_ts":{push.created_ts}}}'


class DeliveryRecorder:
    """Marks pushes as written to a socket, in batches, off the hot path."""

    def __init__(self, store: Store, interval: float = 0.1) -> None:
        self.store = store
        self.interval = interval
        self._pending: set[tuple[int, int]] = set()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def delivered(self, user_id: int, seq: int) -> None:
        self._pending.add((user_id, seq))
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lovewire-delivery")

    async def close(self) -> None:
        if self._task is not None:
            async with self._lock:  # never cancel a batch halfway through its transaction
                self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Record every delivery so far; returns once they are committed."""
        # One flush at a time: a caller waits for a batch already being written.
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, set()
            try:
                async with self.store.unit() as tx:
                    await tx.pushes.mark_delivered(sorted(batch))
            except BaseException:
                self._pending |= batch  # kept for the next flush (or the one at close)
                raise

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("could not record push deliveries")
            await asyncio.sleep(self.interval)
