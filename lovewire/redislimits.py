"""Per-address limits of every process, counted in Redis (contract section 8).

Each process keeps its own counts of open sockets and requests per client address and
shares them: socket counts at once, in a hash per address (`{prefix}a:{addr}`, a field
per process), requests every 0.1 s, added to a counter per address and second of the
server's clock (`{prefix}r:{second}:{addr}`), which tells each process the total. Entries
of processes whose heartbeat is gone do not count.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

from redis import asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["AddressCounts", "text"]

#: How long a count of sockets outlives its last change (its process may be gone).
SOCKETS_TTL = 7 * 86400
#: How long a second's request counter is kept.
REQUESTS_TTL = 3
#: Addresses remembered as over their rate before the older seconds are forgotten.
OVER_MAX = 1024


class AddressCounts:
    """This process's share of the per-address counts, and what it learnt of the total."""

    def __init__(
        self,
        prefix: str,
        process: str,
        requests_per_second: float,
        client: Callable[[], aioredis.Redis | None],
        alive: Callable[[set[str]], Awaitable[set[str]]],
        failed: Callable[[str, BaseException], None],
    ) -> None:
        self.prefix = prefix
        self.process = process
        #: Requests a second one address may make across every process (0: no limit).
        self.rate = requests_per_second
        self._client = client
        self._alive = alive
        self._failed = failed
        #: Open sockets per address here, and the addresses whose count changed since sent.
        self._sockets: Counter[str] = Counter()
        self._dirty: set[str] = set()
        #: Requests per address since last sent, and the addresses over their rate in the
        #: current second (by its number), across every process.
        self._requests: Counter[str] = Counter()
        self._over: dict[str, int] = {}
        #: The second (of the server's clock) of each address's last request here.
        self._active: dict[str, int] = {}
        #: Socket counts are written one at a time, so Redis gets them in their order.
        self._writing = asyncio.Lock()

    def _sockets_key(self, addr: str) -> str:
        return f"{self.prefix}a:{addr}"

    def _requests_key(self, addr: str, second: int) -> str:
        return f"{self.prefix}r:{second}:{addr}"

    async def opened(self, addr: str) -> int:
        """Count a socket of `addr` opened here; its open sockets on the other processes."""
        self._sockets[addr] += 1
        redis = self._client()
        if redis is None:
            self._dirty.add(addr)  # sent once Redis is back
            return 0
        key = self._sockets_key(addr)
        try:
            async with self._writing, redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, self.process, self._sockets[addr])
                pipe.expire(key, SOCKETS_TTL)
                pipe.hgetall(key)
                *_, raw = await pipe.execute()
            counts = {text(k): int(v) for k, v in raw.items()}
            counts.pop(self.process, None)
            alive = await self._alive(set(counts))
            if gone := set(counts) - alive:  # fields of processes that died
                await redis.hdel(key, *gone)
        except (RedisError, OSError) as exc:
            self._dirty.add(addr)
            self._failed("address count", exc)
            return 0
        return sum(n for process, n in counts.items() if process in alive)

    async def closed(self, addr: str) -> None:
        """A socket of `addr` counted by `opened` closed."""
        self._sockets[addr] -= 1
        left = self._sockets[addr]
        if left <= 0:
            del self._sockets[addr]
        redis = self._client()
        if redis is None:
            self._dirty.add(addr)  # sent once Redis is back
            return
        key = self._sockets_key(addr)
        try:
            async with self._writing:  # in the order counted here, on any connection
                if left > 0:
                    async with redis.pipeline(transaction=False) as pipe:
                        pipe.hset(key, self.process, left)
                        pipe.expire(key, SOCKETS_TTL)
                        await pipe.execute()
                else:
                    await redis.hdel(key, self.process)
        except (RedisError, OSError) as exc:
            self._dirty.add(addr)
            self._failed("address count", exc)

    def request(self, addr: str, now: float) -> float:
        """Count one request; the seconds to wait while `addr` is over its rate (else 0)."""
        if not self.rate:
            return 0.0
        self._requests[addr] += 1
        self._active[addr] = int(now)
        if self._over.get(addr) == int(now):
            return 1.0 - (now % 1.0)  # until the next second
        return 0.0

    async def share(self, now: float) -> None:
        """Send this process's counts, and learn which addresses are over their request
        rate in the second of `now` (the server's clock), across processes."""
        redis = self._client()
        if redis is None:
            return
        second = int(now)
        dirty, self._dirty = self._dirty, set()
        requests, self._requests = self._requests, Counter()
        # Addresses busy this second learn the total again, new requests here or not.
        self._active = {a: s for a, s in self._active.items() if s >= second}
        for addr in self._active:
            requests[addr] += 0
        if not dirty and not requests:
            return
        try:
            await self._send(redis, dirty, requests, second)
        except (RedisError, OSError) as exc:
            self._dirty |= dirty
            self._failed("address counts", exc)

    async def _send(
        self, redis: aioredis.Redis, dirty: set[str], requests: Counter[str], second: int
    ) -> None:
        async with redis.pipeline(transaction=False) as pipe:
            for addr in dirty:
                key = self._sockets_key(addr)
                if self._sockets.get(addr):
                    pipe.hset(key, self.process, self._sockets[addr])
                    pipe.expire(key, SOCKETS_TTL)
                else:
                    pipe.hdel(key, self.process)
            order = list(requests)
            for addr in order:
                key = self._requests_key(addr, second)
                pipe.incrby(key, requests[addr])
                pipe.expire(key, REQUESTS_TTL)
            results = await pipe.execute()
        totals = results[len(results) - 2 * len(order) :: 2]
        for addr, total in zip(order, totals, strict=True):
            if total > self.rate:
                self._over[addr] = second
        if len(self._over) > OVER_MAX:  # forget seconds gone by
            self._over = {a: s for a, s in self._over.items() if s >= second}


def text(value: bytes | str) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else value
