"""Per-address limits, shared by every socket and HTTP request of one client address.

An address (an IPv4 address or an IPv6 /64, see `lovewire.addresses`) has a count of open
sockets and HTTP connections, a request budget, a request budget for its HTTP requests
(what one socket has, for the whole address), and a byte budget for the frames and
bodies it makes the server parse. Entries are forgotten once nothing is open and every
budget has refilled, so a client rotating addresses cannot grow the table.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from lovewire.clock import Clock
from lovewire.config import Settings
from lovewire.session import TokenBucket

__all__ = [
    "ADDR_REQUESTS_FACTOR",
    "FREE_BYTES",
    "PARSE_FRAMES_PER_SECOND",
    "AcceptErrorLog",
    "Address",
    "AddressBook",
    "ByteBudget",
    "watch_descriptors",
]

log = logging.getLogger(__name__)

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

#: Requests a second of one address, in sockets' worth (`LOVEWIRE_REQUESTS_PER_SECOND`):
#: 1,000 by default, one a second for each of the 1,000 sockets a carrier NAT may hold.
ADDR_REQUESTS_FACTOR = 20
#: Bytes a second one address may have parsed, in largest frames (8 MiB/s by default).
PARSE_FRAMES_PER_SECOND = 8
#: Frames and bodies up to this size skip the byte budget: the request budget bounds them.
FREE_BYTES = 4096
#: The table is swept when it reaches this size, then twice what the last sweep kept.
SWEEP_MIN = 1024


class ByteBudget:
    """Bytes a second an address may have parsed; a big frame overdraws it, then waits.

    `charge` takes the bytes of a frame and returns the seconds to wait before parsing
    it: 0 while the budget holds, else until the overdraft is paid back.
    """

    __slots__ = ("_level", "_stamp", "capacity", "rate")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self._level = capacity
        self._stamp = now

    def _refill(self, now: float) -> None:
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait(self, size: int, now: float) -> float:
        """The seconds `charge(size, now)` would return, without charging."""
        self._refill(now)
        return max(0.0, (size - self._level) / self.rate)

    def charge(self, size: int, now: float) -> float:
        """Take size bytes; return the seconds to wait before parsing them."""
        wait = self.wait(size, now)
        self._level -= size
        return wait

    def full(self, now: float) -> bool:
        return self._level + (now - self._stamp) * self.rate >= self.capacity


class Address:
    """What one client address shares."""

    __slots__ = ("bytes", "connections", "http_requests", "key", "requests", "sockets")

    def __init__(self, key: str, settings: Settings, now: float, mono: float) -> None:
        self.key = key
        self.sockets = 0
        self.connections = 0
        rps = settings.requests_per_second
        self.requests = TokenBucket(rps * ADDR_REQUESTS_FACTOR, now)
        self.http_requests = TokenBucket(rps, now)
        rate = settings.max_frame * PARSE_FRAMES_PER_SECOND
        self.bytes = ByteBudget(rate, rate * 2, mono)

    def idle(self, now: float, mono: float) -> bool:
        """Nothing open and every budget full: forgetting it changes nothing."""
        return (
            self.sockets == 0
            and self.connections == 0
            and self.requests.full(now)
            and self.http_requests.full(now)
            and self.bytes.full(mono)
        )


class AddressBook:
    """The addresses seen lately, by key; idle ones are swept out."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.monotonic = monotonic
        self._addrs: dict[str, Address] = {}
        self._sweep_at = SWEEP_MIN

    def __len__(self) -> int:
        return len(self._addrs)

    def get(self, key: str) -> Address:
        """The entry of key, created if need be."""
        addr = self._addrs.get(key)
        if addr is None:
            if len(self._addrs) >= self._sweep_at:
                self.sweep()
            addr = self._addrs[key] = Address(
                key, self.settings, self.clock.now(), self.monotonic()
            )
        return addr

    def sweep(self) -> None:
        """Forget the idle entries."""
        now, mono = self.clock.now(), self.monotonic()
        for key in [k for k, a in self._addrs.items() if a.idle(now, mono)]:
            del self._addrs[key]
        self._sweep_at = max(SWEEP_MIN, 2 * len(self._addrs))


class AcceptErrorLog:
    """A loop exception handler: running out of file descriptors on accept is one line a
    second, without a traceback; anything else goes to the previous handler.

    asyncio reports each failed `accept()` (EMFILE, ENFILE, ENOBUFS, ENOMEM) through the
    loop's exception handler, with a traceback each time, then retries a second later;
    a retry that fires after its listener closed fails on the closed socket, which is
    logged at debug only. uvloop reports nothing (libuv accepts the connections it has
    no room for and closes them at once): `watch_descriptors` tells the same line then.
    """

    def __init__(self, previous: ExceptionHandler | None, every: float = 1.0) -> None:
        self.previous = previous
        self.every = every
        self._logged = float("-inf")
        self._missed = 0

    def out_of_resources(self, strerror: str | None, failed_accepts: int) -> None:
        """Note failed accepts (0: found by the probe); one line a second at most."""
        self._missed += failed_accepts
        now = time.monotonic()
        if now - self._logged < self.every:
            return
        if self._missed:
            detail = f"{self._missed} failed accepts since the last line"
        else:
            detail = "no file descriptor free for a new connection"
        log.error("cannot accept connections: %s (%s)", strerror, detail)
        self._logged, self._missed = now, 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if (
            isinstance(exc, OSError)
            and exc.errno in _OUT_OF_RESOURCES
            and "accept" in str(context.get("message", ""))
        ):
            self.out_of_resources(exc.strerror, 1)
            return
        if isinstance(exc, (ValueError, OSError)) and "_start_serving" in repr(
            context.get("handle")
        ):
            log.debug("accept retry after the listener closed: %s", exc)
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


async def watch_descriptors(report: AcceptErrorLog, every: float = 1.0) -> None:
    """Every `every` seconds, check that a file descriptor is free, and report if none is.

    What the next connection needs is one descriptor: opening /dev/null (and closing it)
    is the whole probe, two system calls a second.
    """
    while True:
        await asyncio.sleep(every)
        try:
            os.close(os.open(os.devnull, os.O_RDONLY))
        except OSError as exc:
            if exc.errno in _OUT_OF_RESOURCES:
                report.out_of_resources(exc.strerror, 0)
