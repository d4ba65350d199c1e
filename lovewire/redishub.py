"""The push hub of several processes: Redis pub/sub between them (contract section 8).

Each process keeps its own sockets in a `LocalHub` and subscribes, on one pub/sub
connection, to the channel of every user it has a socket of (`{prefix}u:{user_id}`),
to its own channel (`{prefix}p:{process}`) and to the announcements (`{prefix}all`). A
push committed anywhere is published once, on its user's channel: Redis hands it to the
processes holding that user's sockets and to no other. Session ends go the same way;
announcements go to every process. Sockets per user are counted across processes in a
sorted set per user (`{prefix}s:{user_id}`, oldest first); a process closes the oldest
beyond the limit, wherever it is, through that socket's process channel.

Redis going away costs no push: every push is stored first. Publishing then only skips
the bus, and the listener reconnects by itself with a backoff; once back, each local
socket reads from the store what it may have missed (`Subscriber.catch_up`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import tzinfo
from typing import Any

from redis import asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lovewire.hub import Hub, LocalHub, Subscriber
from lovewire.redislimits import AddressCounts
from lovewire.session import Session
from lovewire.storage.records import StoredPush

__all__ = ["RedisHub"]

log = logging.getLogger(__name__)

#: A process is deemed gone when its heartbeat key is this old (seconds).
HEARTBEAT_TTL = 30
HEARTBEAT_EVERY = 10.0
#: The longest a login waits for its user's channel to be subscribed.
SUBSCRIBE_WAIT = 5.0
#: The longest closing the bus (or a dropped pub/sub connection) may take, seconds.
CLOSE_WAIT = 2.0
#: How soon users owed a sync are named again while Redis fails, seconds.
SYNC_EVERY = 1.0
#: Reconnection backoff, seconds.
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 2.0
#: How often a process shares its per-address counts (a rate is enforced that late).
ADDRESS_SHARE_EVERY = 0.1
#: The longest a request waits to publish what it committed (it is stored anyway).
PUBLISH_WAIT = 0.5
#: Users remembered as owed a sync before every process is told to sync all.
UNSENT_MAX = 10_000
#: At most one line a minute says that Redis commands fail.
FAILURE_LOG_EVERY = 60.0
#: Redis commands give up after this long (a partitioned Redis must not hold requests).
COMMAND_TIMEOUT = 2.0


class RedisHub(Hub):
    """This process's sockets (a `LocalHub`), and Redis between the processes."""

    def __init__(
        self,
        url: str,
        prefix: str,
        zone: tzinfo,
        sockets_per_user: int,
        addr_requests_per_second: float = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        #: The server's clock: request rates are counted per second of it.
        self.clock = clock
        self.prefix = prefix
        self.sockets_per_user = sockets_per_user
        self.local = LocalHub(zone, sockets_per_user)
        #: This process, as other processes name it.
        self.process = secrets.token_hex(8)
        self._redis: aioredis.Redis | None = None
        self._bus: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        #: Channels this process wants, and the futures of logins waiting for one.
        self._wanted: set[str] = set()
        self._subscribed: set[str] = set()
        self._waiting: dict[str, asyncio.Future[None]] = {}
        #: Local sockets attached to a user, by their name across processes.
        self._members: dict[str, Subscriber] = {}
        #: Work for the bus that a synchronous caller cannot await (unsubscribe, forget).
        self._chores: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        self._up = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        #: Users whose messages this process could not publish, to be named once it can
        #: (all of them when there were too many to remember).
        self._unsent: set[int] = set()
        self._unsent_all = False
        self.addresses = AddressCounts(
            prefix, self.process, addr_requests_per_second, self._client, self._alive, self._failed
        )
        #: True once Redis was lost: its return makes the local sockets catch up.
        self._ever_lost = False
        self._failed_logged = -FAILURE_LOG_EVERY

    # -- channels and keys ---------------------------------------------------------------

    def _user_channel(self, user_id: int) -> str:
        return f"{self.prefix}u:{user_id}"

    def _process_channel(self, process: str) -> str:
        return f"{self.prefix}p:{process}"

    @property
    def _all_channel(self) -> str:
        return f"{self.prefix}all"

    def _sockets_key(self, user_id: int) -> str:
        return f"{self.prefix}s:{user_id}"

    def _alive_key(self, process: str) -> str:
        return f"{self.prefix}alive:{process}"

    def _member(self, session: Session) -> str:
        return f"{self.process}:{session.id}"

    # -- lifetime ------------------------------------------------------------------------

    async def start(self) -> None:
        self._redis = aioredis.from_url(
            self.url,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=COMMAND_TIMEOUT,
            health_check_interval=HEARTBEAT_EVERY,
            # A pooled connection that died with a Redis restart is replaced, once.
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.01), 1),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            socket_keepalive=True,
        )
        # The pub/sub connection never reconnects behind the listener's back (it would
        # skip the catching up of what was published meanwhile): no retries there.
        self._bus = aioredis.from_url(
            self.url,
            socket_connect_timeout=COMMAND_TIMEOUT,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
        )
        self._wanted |= {self._all_channel, self._process_channel(self.process)}
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen(), name="lovewire-bus-listen"),
            loop.create_task(self._chores_loop(), name="lovewire-bus-chores"),
            loop.create_task(self._heartbeat(), name="lovewire-bus-heartbeat"),
            loop.create_task(self._share_addresses(), name="lovewire-bus-addresses"),
        ]
        # Start connected if Redis is there; if not, serve anyway and keep trying.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), SUBSCRIBE_WAIT)
        if not self._up.is_set():
            log.warning("Redis not reachable yet: serving this process alone meanwhile")

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=CLOSE_WAIT)
            if stuck:
                log.warning("%d bus tasks did not stop; their connections are dropped", len(stuck))
        redis, self._redis = self._redis, None
        if redis is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await asyncio.wait_for(redis.delete(self._alive_key(self.process)), CLOSE_WAIT)
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await asyncio.wait_for(redis.aclose(), CLOSE_WAIT)
        bus, self._bus = self._bus, None
        if bus is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await asyncio.wait_for(bus.aclose(), CLOSE_WAIT)

    # -- the local sockets ---------------------------------------------------------------

    def register(self, sub: Subscriber) -> None:
        self.local.register(sub)

    def unregister(self, sub: Subscriber) -> None:
        self.local.unregister(sub)

    def attach(self, user_id: int, sub: Subscriber) -> None:
        first = not self.local.subscribers(user_id)
        self._members[self._member(sub.session)] = sub
        self.local.attach(user_id, sub)
        if first:
            channel = self._user_channel(user_id)
            self._wanted.add(channel)
            self._chores.put_nowait(("subscribe", channel, ""))

    def detach(self, user_id: int, sub: Subscriber) -> None:
        member = self._member(sub.session)
        if self._members.get(member) is not sub:
            return
        del self._members[member]
        self.local.detach(user_id, sub)
        self._chores.put_nowait(("forget", self._sockets_key(user_id), member))
        if not self.local.subscribers(user_id):
            channel = self._user_channel(user_id)
            self._wanted.discard(channel)
            self._chores.put_nowait(("unsubscribe", channel, ""))

    async def joined(self, session: Session) -> None:
        login = session.login
        if login is None or self._member(session) not in self._members or self._redis is None:
            return
        channel = self._user_channel(login.user_id)
        if self._up.is_set() and channel not in self._subscribed:
            waiter = self._waiting.get(channel)
            if waiter is None:
                waiter = self._waiting[channel] = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), SUBSCRIBE_WAIT)
        if session.login is not login or self._member(session) not in self._members:
            return  # logged out meanwhile: nothing to count
        try:
            await self._count_sockets(login.user_id, session)
        except (RedisError, OSError) as exc:
            self._failed("socket count", exc)

    async def _count_sockets(self, user_id: int, session: Session) -> None:
        """Add the socket to its user's sockets everywhere; close the oldest beyond the limit."""
        assert self._redis is not None
        key = self._sockets_key(user_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {self._member(session): time.time()})
            pipe.expire(key, 7 * 86400)
            pipe.zrange(key, 0, -1)
            *_, raw_members = await pipe.execute()
        members = [m.decode() for m in raw_members]
        alive = await self._alive({m.split(":", 1)[0] for m in members} - {self.process})

        def open_somewhere(member: str) -> bool:
            # Ours count only while still here (a forget may have been lost).
            process = member.split(":", 1)[0]
            return member in self._members if process == self.process else process in alive

        gone = [m for m in members if not open_somewhere(m)]
        live = [m for m in members if open_somewhere(m)]
        excess = live[: max(0, len(live) - self.sockets_per_user)]
        if gone or excess:
            await self._redis.zrem(key, *gone, *excess)
        for member in excess:
            process = member.split(":", 1)[0]
            if process == self.process:
                self._evict(member)
            else:
                message = json.dumps({"k": "evict", "m": member})
                await self._redis.publish(self._process_channel(process), message)

    def _evict(self, member: str) -> None:
        sub = self._members.get(member)
        if sub is not None:
            sub.evict()  # its session logs out, and so it detaches

    # -- per-address limits across processes (lovewire.redislimits) --------------------

    async def address_opened(self, addr: str) -> int:
        return await self.addresses.opened(addr)

    async def address_closed(self, addr: str) -> None:
        await self.addresses.closed(addr)

    def address_request(self, addr: str, now: float) -> float:
        return self.addresses.request(addr, now)

    async def share_addresses(self, now: float) -> None:
        """Share this process's per-address counts now (every 0.1 s by itself)."""
        await self.addresses.share(now)

    async def _share_addresses(self) -> None:
        while True:
            await asyncio.sleep(ADDRESS_SHARE_EVERY)
            try:
                await self.addresses.share(self.clock())
            except Exception as exc:
                self._failed("address counts", exc)

    def _client(self) -> aioredis.Redis | None:
        """The Redis client while the bus is up; None while Redis is away."""
        return self._redis if self._up.is_set() else None

    async def _alive(self, processes: set[str]) -> set[str]:
        """Which of these processes are alive (their heartbeat is recent)."""
        if not processes or self._redis is None:
            return set()
        names = sorted(processes)
        flags = await self._redis.mget([self._alive_key(p) for p in names])
        return {p for p, flag in zip(names, flags, strict=True) if flag}

    # -- what crosses processes ----------------------------------------------------------

    async def publish(self, pushes: Iterable[StoredPush]) -> None:
        pushes = list(pushes)
        await self.local.publish(pushes)
        await self._send(
            (
                self._user_channel(p.user_id),
                {"k": "push", "u": p.user_id, "s": p.seq, "t": p.created_ts, "b": p.body},
            )
            for p in pushes
        )

    async def end_sessions(
        self,
        user_id: int,
        token_ids: Iterable[int] | None,
        reason: str,
        keep: Session | None = None,
    ) -> None:
        tokens = None if token_ids is None else list(token_ids)
        await self.local.end_sessions(user_id, tokens, reason, keep)
        message = {"k": "end", "u": user_id, "t": tokens, "r": reason}
        await self._send([(self._user_channel(user_id), message)])

    async def broadcast(self, frame: str) -> int:
        sent = await self.local.broadcast(frame)
        await self._send([(self._all_channel, {"k": "all", "f": frame})])
        return sent

    async def notify(self, user_id: int, frame: str) -> None:
        # Ephemeral: named by "w", not "u", so a failed publish owes no sync (nothing of
        # it is stored to catch up on).
        await self.local.notify(user_id, frame)
        await self._send([(self._user_channel(user_id), {"k": "eph", "w": user_id, "f": frame})])

    async def _send(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Publish to other processes, within PUBLISH_WAIT. What cannot go now is stored
        anyway: the users concerned are named to every process once Redis answers again,
        and their sockets read the store (`_sync`)."""
        batch = list(messages)
        redis = self._redis
        if redis is None:
            return
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for channel, message in batch:
                    message["o"] = self.process
                    pipe.publish(channel, json.dumps(message, ensure_ascii=False))
                await asyncio.wait_for(pipe.execute(), PUBLISH_WAIT)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("publish", exc)
            self._owed_users(message["u"] for _, message in batch if "u" in message)

    def _owed_users(self, users: Iterable[int]) -> None:
        """Remember users whose messages did not reach the other processes."""
        self._unsent.update(users)
        if len(self._unsent) > UNSENT_MAX:
            self._unsent_all = True
            self._unsent.clear()

    async def _sync(self) -> None:
        """Name the users whose messages did not go to every process: their sockets there
        read the store (pushes) and check their token (session ends)."""
        if not (self._unsent or self._unsent_all) or self._redis is None:
            return
        users, self._unsent = self._unsent, set()
        every, self._unsent_all = self._unsent_all, False
        message = {"k": "sync", "u": None if every else sorted(users), "o": self.process}
        try:
            await asyncio.wait_for(
                self._redis.publish(self._all_channel, json.dumps(message)), PUBLISH_WAIT
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("sync", exc)
            self._owed_users(users)
            self._unsent_all |= every

    def _receive(self, data: bytes) -> None:
        """Hand a message of another process to this process's sockets."""
        message = json.loads(data)
        if message.get("o") == self.process:
            return  # our own, already delivered here
        kind = message["k"]
        if kind == "push":
            push = StoredPush(
                user_id=message["u"], seq=message["s"], body=message["b"], created_ts=message["t"]
            )
            self.local.deliver(push)
        elif kind == "end":
            self.local.end_local_sessions(message["u"], message["t"], message["r"])
        elif kind == "all":
            self.local.notify_all(message["f"])
        elif kind == "eph":
            self.local.notify_local(message["w"], message["f"])
        elif kind == "evict":
            self._evict(message["m"])
        elif kind == "sync":
            users = message["u"]
            for sub in list(self._members.values()):
                login = sub.session.login
                if login is not None and (users is None or login.user_id in users):
                    sub.catch_up()

    # -- the bus connection --------------------------------------------------------------

    def _lost(self, exc: BaseException) -> None:
        """The listener lost Redis: publish nothing until it is subscribed again."""
        if self._up.is_set():
            log.warning("Redis lost (%s): pushes are stored; reconnecting", type(exc).__name__)
        self._up.clear()
        self._subscribed.clear()
        self._ever_lost = True

    def _failed(self, what: str, exc: BaseException) -> None:
        """A command failed (the listener decides whether Redis is gone): say so, rarely."""
        now = time.monotonic()
        if now - self._failed_logged >= FAILURE_LOG_EVERY:
            self._failed_logged = now
            log.warning("Redis %s failed (%s); pushes are stored", what, type(exc).__name__)

    async def _listen(self) -> None:
        """Hold the pub/sub connection: (re)subscribe, read, reconnect with a backoff."""
        backoff = BACKOFF_FIRST
        while not self._closing:
            assert self._bus is not None
            pubsub = self._bus.pubsub()
            try:
                # Others subscribe through self._pubsub only once it is connected here.
                wanted = set(self._wanted)
                await pubsub.subscribe(*sorted(wanted))
                self._pubsub = pubsub
                if self._wanted - wanted:
                    await pubsub.subscribe(*sorted(self._wanted - wanted))
                heard = time.monotonic()
                while not self._closing:
                    message = await pubsub.get_message(timeout=HEARTBEAT_EVERY)
                    if message is not None:
                        heard = time.monotonic()
                        backoff = BACKOFF_FIRST
                        self._handle(message)
                    elif time.monotonic() - heard > 3 * HEARTBEAT_EVERY:
                        raise RedisConnectionError("no answer on the pub/sub connection")
                    else:
                        await pubsub.ping()  # its answer counts as hearing from Redis
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._lost(exc)
            except Exception as exc:
                # A message this process cannot read: start the connection again, and
                # let the local sockets catch up on what may have been skipped.
                log.exception("bus message not understood")
                self._lost(exc)
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    # Bounded: a connection that hangs must not hold up a reconnect or stop.
                    await asyncio.wait_for(pubsub.aclose(), CLOSE_WAIT)  # type: ignore[no-untyped-call]
            if not self._closing:
                await asyncio.sleep(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"].decode()
        if kind == "subscribe":
            self._subscribed.add(channel)
            waiter = self._waiting.pop(channel, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            if channel == self._all_channel and not self._up.is_set():
                self._back()
        elif kind == "unsubscribe":
            self._subscribed.discard(channel)
        elif kind == "message":
            try:
                self._receive(message["data"])
            except Exception as exc:  # another release's message, say: skip it, go on
                self._failed("message", exc)

    def _back(self) -> None:
        """Subscribed (again): local sockets read from the store what they may have missed."""
        self._up.set()
        if self._ever_lost:
            log.info("Redis back: %d local sockets catch up from the store", len(self._members))
            for sub in list(self._members.values()):
                sub.catch_up()

    async def _chores_loop(self) -> None:
        """Subscribe, unsubscribe and forget sockets for callers that cannot wait."""
        while True:
            action, name, member = await self._chores.get()
            pubsub, redis = self._pubsub, self._redis
            try:
                if action == "subscribe" and pubsub is not None and name in self._wanted:
                    await pubsub.subscribe(name)
                elif action == "unsubscribe" and pubsub is not None and name not in self._wanted:
                    await pubsub.unsubscribe(name)
                elif action == "forget" and redis is not None and self._up.is_set():
                    await redis.zrem(name, member)
            except (RedisError, OSError) as exc:
                self._failed(action, exc)
            except Exception as exc:
                # The pub/sub connection was dropped under the command (the listener
                # reconnects and subscribes to every channel wanted then): not fatal.
                self._failed(action, exc)

    async def _heartbeat(self) -> None:
        """Tell the other processes this one is alive (its sockets count), and name the
        users whose messages could not go to them."""
        while True:
            if self._redis is not None:
                try:
                    await self._redis.set(self._alive_key(self.process), 1, ex=HEARTBEAT_TTL)
                    await self._sync()
                except Exception as exc:
                    self._failed("heartbeat", exc)
            await asyncio.sleep(SYNC_EVERY if self._unsent or self._unsent_all else HEARTBEAT_EVERY)
