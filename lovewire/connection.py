"""One WebSocket connection: its session, its bounded outbound queue and its writer.

A `Connection` owns the socket's `Session` (who is logged in) and its `PushOrder` (which
pushes to send, in what order): it follows the session's logins and does the I/O the
order asks for (writing frames, reading a gap from the store). It is used as an async
context manager around the socket's reader, and ends one way: `close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from types import TracebackType

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.protocol import State

from lovewire.context import Services
from lovewire.login import MAX_REPLAY
from lovewire.ordering import PushOrder, Send
from lovewire.pushes import DeliveryRecorder, render_push
from lovewire.session import Login, Session
from lovewire.storage.records import StoredPush
from protocol.pushes import SessionEndNotify

__all__ = ["EPHEMERAL_QUEUE", "WRITE_LIMIT", "Connection"]

log = logging.getLogger(__name__)

#: High-water mark of a socket's transport buffer: `ws.send` waits above it, so at most
#: this much sits there beyond the frame being written.
WRITE_LIMIT = 2**15
#: An ephemeral frame (typing) is dropped when this many frames already wait, or more
#: than WRITE_LIMIT bytes: it is only worth sending at once.
EPHEMERAL_QUEUE = 8


class Connection:
    """A live socket. Everything it sends goes out in order, through one bounded queue
    whenever the socket has anything waiting (its writer task, made on first need, then
    writes the queue)."""

    def __init__(
        self, ws: ServerConnection, addr: str, services: Services, recorder: DeliveryRecorder
    ) -> None:
        self.ws = ws
        self.services = services
        self.recorder = recorder
        self.session = Session(addr, watcher=self)
        self.pushes = PushOrder()
        self.limit = services.settings.outbound_queue
        self.max_bytes = services.settings.outbound_bytes
        # The queue, its events and the writer task are made on a socket's first backlog:
        # most sockets never have one, and thousands of idle sockets stay small.
        self._queue: deque[tuple[bytes, StoredPush | None]] | None = None
        #: UTF-8 bytes in the queue, and of the frame `ws.send` is writing (until it returns).
        self._queued_bytes = 0
        self._sending_bytes = 0
        self._ready: asyncio.Event | None = None
        #: Set whenever the bytes waiting drop within the bound, or the socket closes.
        self._drained: asyncio.Event | None = None
        self._closing = False
        self._writer: asyncio.Task[None] | None = None
        #: The task reading a gap in the pushes from the store, while there is one.
        self._gap_reader: asyncio.Task[None] | None = None
        #: Set when pushes may have been missed (`catch_up`): the reader checks the store.
        self._catch_up_wanted = False
        #: Fires when the login's token expires (one per logged-in socket, none otherwise).
        self._expiry: asyncio.TimerHandle | None = None
        #: The task closing the socket from outside the reader (kept so it is not collected).
        self._closer: asyncio.Task[None] | None = None

    @property
    def id(self) -> int:
        return self.session.id

    @property
    def login(self) -> Login | None:
        return self.session.login

    # -- lifetime ----------------------------------------------------------------------

    async def __aenter__(self) -> Connection:
        self._set_frame_limit()
        self.services.hub.register(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """The reader is done: the socket is gone or going; leave the hub, stop writing."""
        self._closing = True
        self.session.log_out()
        # The session and this connection point at each other: untied, a closed socket is
        # freed as soon as it is dropped, without waiting for the collector.
        self.session.watcher = None
        self.services.hub.unregister(self)
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    def close(self, code: CloseCode, reason: str) -> None:
        """Close the socket (from outside its reader): nothing more is sent."""
        if self._closing:
            return
        self._closing = True
        self._queue = None
        self._queued_bytes = 0
        self._set_drained()
        self._closer = asyncio.get_running_loop().create_task(self.ws.close(code, reason))

    # -- sending -----------------------------------------------------------------------

    def send(self, frame: str, push: StoredPush | None = None, *, replay: bool = False) -> None:
        """Queue a frame; a socket it would take over its bounds is closed (pushes stay stored).

        The bounds are `outbound_bytes` waiting (queued, being written, and in the
        transport's buffer) and `outbound_queue` frames queued. One frame always fits when
        nothing else waits; a replay (at most MAX_REPLAY frames) may go over once.

        When nothing waits at all, not even in the transport's buffer (the usual case), the
        frame is written at once: no queue, no writer task to wake.
        """
        if self._closing:
            return
        data = frame.encode()
        busy = self._queue or self._sending_bytes  # else the frame fits, however large
        if self._writes_now(data):
            if self.ws.protocol.state is not State.OPEN:
                return  # closing: nothing more goes out (as `ws.send` would refuse)
            try:
                broadcast((self.ws,), data, text=True, raise_exceptions=True)
            except Exception:
                return  # the transport failed: the socket is going, the push stays stored
            if push is not None:
                self._sent(push)
            return
        if (
            busy
            and not replay
            and (
                self.waiting_bytes + len(data) > self.max_bytes
                or len(self._queue or ()) >= self.limit
            )
        ):
            self.services.metrics.socket_closed_slow()
            log.warning("conn %s: outbound queue full, closing stalled socket", self.id)
            self.close(CloseCode.TRY_AGAIN_LATER, "outbound queue full")
            return
        if self._queue is None:
            self._queue = deque()
        self._queue.append((data, push))
        self._queued_bytes += len(data)
        if self._writer is None:
            self._ready = asyncio.Event()
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        assert self._ready is not None
        self._ready.set()

    def _writes_now(self, data: bytes) -> bool:
        """Nothing waits, not even in the transport's buffer: `data` may go out at once."""
        return (
            not self._queue
            and not self._sending_bytes
            and len(data) <= self.max_bytes
            and not self.ws.transport.get_write_buffer_size()
        )

    def _sent(self, push: StoredPush) -> None:
        self.services.metrics.push_sent()
        self.recorder.delivered(push.user_id, push.seq)

    @property
    def waiting_bytes(self) -> int:
        """Bytes written to this socket that its client has not taken yet (in this process)."""
        return self._queued_bytes + self._sending_bytes + self.ws.transport.get_write_buffer_size()

    async def writable(self) -> bool:
        """Wait while the bytes waiting exceed the bound; False once the socket is closing.

        The reader calls this before it starts a request: a client that does not read gets
        no more work done for it, and TCP pushes back on what it sends meanwhile.
        """
        while not self._closing and self.waiting_bytes > self.max_bytes:
            if self._drained is None:
                self._drained = asyncio.Event()
            self._drained.clear()
            await self._drained.wait()
        return not self._closing

    def _set_drained(self) -> None:
        if self._drained is not None:
            self._drained.set()

    async def _write_loop(self) -> None:
        """Write queued frames in order until the socket closes."""
        ready = self._ready
        assert ready is not None
        try:
            while True:
                await ready.wait()
                while self._queue:
                    data, push = self._queue.popleft()
                    self._queued_bytes -= len(data)
                    self._sending_bytes = len(data)
                    try:
                        await self.ws.send(data, text=True)
                    finally:
                        self._sending_bytes = 0
                    del data
                    if self.waiting_bytes <= self.max_bytes:
                        self._set_drained()
                    if push is not None:
                        self._sent(push)
                ready.clear()
        except ConnectionClosed:
            pass
        finally:
            # Gone or going: nothing more is written; a reader waiting for room stops.
            self._closing = True
            self._set_drained()

    def respond(self, frame: str) -> None:
        """Send a request's answer (the request cycle's Channel)."""
        self.send(frame)

    def _send_all(self, sends: list[Send]) -> None:
        for push, frame, replay in sends:
            self.send(frame, push, replay=replay)

    # -- the hub's view: Subscriber ------------------------------------------------------

    def deliver(self, push: StoredPush, frame: str) -> None:
        login = self.session.login
        if login is None or push.user_id != login.user_id:
            return
        if login.expires_ts <= self.services.clock.now():
            # An expired token gets no more pushes: its socket is logged out (section 1).
            self.check_expiry()
            return
        self._send_all(self.pushes.live(push, frame))
        self._read_gaps_soon()

    def catch_up(self) -> None:
        if self.session.login is not None:
            self._catch_up_wanted = True
            self._read_gaps_soon()

    def _read_gaps_soon(self) -> None:
        wanted = self._catch_up_wanted or self.pushes.gap is not None
        if wanted and self._gap_reader is None:
            self._gap_reader = asyncio.get_running_loop().create_task(self._read_gaps())

    def send_notice(self, frame: str) -> None:
        self.send(frame)

    def send_ephemeral(self, frame: str) -> None:
        if self.session.login is None or self._closing:
            return
        if len(self._queue or ()) >= EPHEMERAL_QUEUE or self.waiting_bytes > WRITE_LIMIT:
            return  # slow: dropped, never queued behind what waits (4.6)
        self.send(frame)

    def end_session(self, frame: str) -> None:
        self.session.log_out()
        self.send(frame)

    def evict(self) -> None:
        self.session.log_out()
        self.close(CloseCode.POLICY_VIOLATION, "too many sockets for this user")

    # -- the session's view: LoginWatcher ------------------------------------------------

    def login_changed(self, previous: Login | None, current: Login | None) -> None:
        """Follow the session: hub membership, push order, frame limit, expiry timer."""
        hub = self.services.hub
        if previous is not None and (current is None or current.user_id != previous.user_id):
            hub.detach(previous.user_id, self)
            self._stop_gap_reader()
            self.pushes.end()
        if current is not None and (previous is None or previous.user_id != current.user_id):
            self.pushes.begin(current.user_id)
            hub.attach(current.user_id, self)
        self._set_frame_limit()
        self._arm_expiry()  # a new token (login, refresh) brings its own expiry

    def _set_frame_limit(self) -> None:
        """Read frames up to the limit of the socket's state (section 1), from now on.

        A socket that is not logged in reads at most LOVEWIRE_MAX_ANON_FRAME, whatever
        logged it out (its own request, another socket's logout, expiry, eviction).
        """
        settings = self.services.settings
        size = settings.max_frame
        if self.session.login is None:
            size = min(settings.max_anon_frame, size)
        protocol = self.ws.protocol
        if hasattr(protocol, "max_message_size"):  # websockets >= 15
            protocol.max_message_size = size
        else:
            protocol.max_size = size  # type: ignore[attr-defined]

    # -- reading pushes from the store ---------------------------------------------------

    async def replay(self) -> None:
        """Send what the session's last login owes (section 5), then the pushes held meanwhile."""
        plan, self.session.replay = self.session.replay, None
        if plan is None:
            return
        zone = self.services.settings.zone
        rendered = [(push, render_push(push, zone)) for push in plan.pushes]
        self._send_all(self.pushes.replayed(plan.user_id, rendered, plan.upto))
        self._read_gaps_soon()  # kept ahead of a gap, or a catch up asked meanwhile

    async def _read_gaps(self) -> None:
        """Read the pushes missing before the kept ones from the store, until none is;
        first, when asked to catch up, the user's current seq and the token's state."""
        try:
            await asyncio.sleep(0)  # publishers woken by the same commit go first
            zone = self.services.settings.zone
            while True:
                if self._catch_up_wanted:
                    self._catch_up_wanted = False
                    if not await self._still_live():
                        return
                gap = self.pushes.gap
                if gap is None:
                    break
                async with self.services.store.read() as tx:
                    found = await tx.pushes.after(gap.user_id, gap.after, gap.upto, MAX_REPLAY)
                rendered = [(push, render_push(push, zone)) for push in found]
                complete = len(found) < MAX_REPLAY
                self._send_all(self.pushes.filled(gap, rendered, complete=complete))
        except Exception:
            log.exception("conn %s: could not fill a gap in the pushes", self.id)
        finally:
            if self._gap_reader is asyncio.current_task():
                self._gap_reader = None

    async def _still_live(self) -> bool:
        """After the bus between processes missed something: is the token still live (a
        logout elsewhere may not have reached us), and which pushes does the store hold?"""
        login = self.session.login
        if login is None:
            return False
        async with self.services.store.read() as tx:
            token = await tx.tokens.live_session(login.token_hash, int(self.services.clock.now()))
            upto = await tx.pushes.current_seq(login.user_id)
        if self.session.login is not login:
            return False
        if token is None:
            self.end_session(_REVOKED)
            return False
        self.pushes.expect(upto)
        return True

    def _stop_gap_reader(self) -> None:
        self._catch_up_wanted = False
        if self._gap_reader is not None:
            self._gap_reader.cancel()
            self._gap_reader = None

    # -- token expiry --------------------------------------------------------------------

    def _arm_expiry(self) -> None:
        """Set the timer for the login's expiry (replacing any earlier one)."""
        self._disarm_expiry()
        login = self.session.login
        if login is None or self._closing:
            return
        clock = self.services.clock
        delay = max(0.0, login.expires_ts - clock.now())
        self._expiry = asyncio.get_running_loop().call_later(delay, self._expiry_due)
        clock.watch(self.check_expiry)

    def _disarm_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
            self.services.clock.unwatch(self.check_expiry)

    def _expiry_due(self) -> None:
        self._expiry = None
        self.services.clock.unwatch(self.check_expiry)
        self.check_expiry()

    def check_expiry(self) -> None:
        """Log the socket out now if its token has expired by the server's clock.

        Called by the timer (which runs on the loop's clock, so it re-checks the server's
        and waits again if that is behind), and by the server's clock when it jumps (a
        test's ManualClock; the wall clock never calls). Every socket on that token has
        its own timer, so each ends itself.
        """
        login = self.session.login
        if login is None:
            return
        if login.expires_ts > self.services.clock.now():
            if self._expiry is None:
                self._arm_expiry()
            return
        self.end_session(_EXPIRED)


_EXPIRED = SessionEndNotify(reason="expired").model_dump_json()
#: A token found revoked after a session end did not reach this process (its reason lost).
_REVOKED = SessionEndNotify(reason="logout").model_dump_json()
