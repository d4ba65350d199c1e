"""Keepalive pings for every socket from one task, instead of one task per socket.

websockets' own keepalive runs a task per connection; at ten thousand idle sockets that
is ten thousand tasks and timers (about 1.4 KiB each). Here one task walks the sockets
once every `interval` seconds: it pings each socket with no ping outstanding, and closes
(1011) a socket whose ping has waited `timeout` seconds for its pong.

A round is spread over the interval, a slice of sockets at a time: pinging 5,000 sockets
at once, and reading their 5,000 pongs, held every other socket up for 0.2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.protocol import State

__all__ = ["Keepalive"]

log = logging.getLogger(__name__)

#: Sockets pinged together; the slices of a round are spread over the interval.
SLICE = 32


class Keepalive:
    """Pings the sockets `sockets()` names, every `interval` seconds, from one task."""

    def __init__(
        self,
        sockets: Callable[[], Iterable[ServerConnection]],
        interval: float,
        timeout: float,
    ) -> None:
        self.sockets = sockets
        self.interval = interval
        self.timeout = timeout
        #: Each socket's outstanding ping: its pong waiter and when it was sent.
        self._pings: weakref.WeakKeyDictionary[ServerConnection, tuple[Awaitable[float], float]] = (
            weakref.WeakKeyDictionary()
        )
        #: Pings waiting for room in a busy socket, and closes under way.
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._runner = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.round(spread=self.interval)
            except Exception:
                log.exception("keepalive round failed")
            # A round spread over the whole interval is followed at once by the next one.
            await asyncio.sleep(max(0.0, started + self.interval - loop.time()))

    async def round(self, spread: float = 0.0) -> None:
        """Ping every open socket that has no ping outstanding; close the silent ones.

        `spread`: seconds over which to spread the slices of sockets.
        """
        loop = asyncio.get_running_loop()
        sockets = list(self.sockets())
        slices = -(-len(sockets) // SLICE)
        for first in range(0, len(sockets), SLICE):
            if first:
                await asyncio.sleep(spread / slices)
            for ws in sockets[first : first + SLICE]:
                await self._visit(ws, loop.time())

    async def _visit(self, ws: ServerConnection, now: float) -> None:
        if ws.protocol.state is not State.OPEN:
            return
        pending = self._pings.get(ws)
        if pending is not None:
            pong, sent = pending
            if not _done(pong):
                if now - sent >= self.timeout:
                    del self._pings[ws]
                    self._spawn(ws.close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout"))
                return
        if ws.transport.get_write_buffer_size() > ws.write_limit_high:
            # Its client reads slowly: ping once there is room, without waiting here.
            self._pings[ws] = (asyncio.get_running_loop().create_future(), now)
            self._spawn(self._ping_later(ws, now))
            return
        try:
            self._pings[ws] = (await ws.ping(), now)  # the transport has room: no wait
        except ConnectionClosed:
            return

    async def _ping_later(self, ws: ServerConnection, sent: float) -> None:
        with contextlib.suppress(ConnectionClosed):
            pong = await ws.ping()
            if ws in self._pings:
                self._pings[ws] = (pong, sent)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _done(pong: Awaitable[float]) -> bool:
    return isinstance(pong, asyncio.Future) and pong.done()
