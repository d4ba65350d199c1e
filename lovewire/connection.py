"""One WebSocket connection: its session, its bounded outbound queue and its writer."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from lovewire.context import Services
from lovewire.login import MAX_REPLAY
from lovewire.pushes import DeliveryRecorder, render_push
from lovewire.session import Login, Session
from lovewire.storage.records import StoredPush
from protocol.pushes import SessionEndNotify

__all__ = ["WRITE_LIMIT", "Connection"]

log = logging.getLogger(__name__)

#: High-water mark of a socket's transport buffer: `ws.send` waits above it, so at most
#: this much sits there beyond the frame being written.
WRITE_LIMIT = 2**15

_EXPIRED = SessionEndNotify(reason="expired").model_dump_json()


class Connection(Session):
    """A live socket. Everything it sends goes through one bounded queue, in order."""

    live = True

    def __init__(
        self, ws: ServerConnection, addr: str, services: Services, recorder: DeliveryRecorder
    ) -> None:
        super().__init__(addr)
        self.ws = ws
        self.services = services
        self.recorder = recorder
        self.limit = services.settings.outbound_queue
        self.max_bytes = services.settings.outbound_bytes
        self._queue: deque[tuple[bytes, StoredPush | None]] = deque()
        #: UTF-8 bytes in the queue, and of the frame `ws.send` is writing (until it returns).
        self._queued_bytes = 0
        self._sending_bytes = 0
        self._ready = asyncio.Event()
        #: Set whenever the bytes waiting drop within the bound, or the socket closes.
        self._drained = asyncio.Event()
        self._closing = False
        #: Highest seq queued so far; pushes at or below it are not sent again.
        self._push_floor = 0
        #: While a login's replay is being prepared, live pushes wait here.
        self._held: list[tuple[StoredPush, str]] | None = None
        #: Pushes that arrived ahead of an earlier one, by seq, and the task filling the gap.
        self._early: dict[int, tuple[StoredPush, str]] = {}
        self._gap_filler: asyncio.Task[None] | None = None
        #: Fires when the login's token expires (one per logged-in socket, none otherwise).
        self._expiry: asyncio.TimerHandle | None = None
        #: Tasks closing the socket from outside the reader (kept so none is collected).
        self._closers: set[asyncio.Task[None]] = set()
        self._set_frame_limit()
        services.hub.register(self)

    # -- sending -------------------------------------------------------------------------

    def send(self, frame: str, push: StoredPush | None = None, *, replay: bool = False) -> None:
        """Queue a frame; a socket it would take over its bounds is closed (pushes stay stored).

        The bounds are `outbound_bytes` waiting (queued, being written, and in the
        transport's buffer) and `outbound_queue` frames queued. One frame always fits when
        nothing else waits; a replay (at most MAX_REPLAY frames) may go over once.
        """
        if self._closing:
            return
        data = frame.encode()
        busy = self._queue or self._sending_bytes  # else the frame fits, however large
        if (
            busy
            and not replay
            and (self.waiting_bytes + len(data) > self.max_bytes or len(self._queue) >= self.limit)
        ):
            self.services.metrics.socket_closed_slow()
            log.warning("conn %s: outbound queue full, closing stalled socket", self.id)
            self.close(CloseCode.TRY_AGAIN_LATER, "outbound queue full")
            return
        self._queue.append((data, push))
        self._queued_bytes += len(data)
        self._ready.set()

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
            self._drained.clear()
            await self._drained.wait()
        return not self._closing

    async def write_loop(self) -> None:
        """Write queued frames in order until the socket closes."""
        try:
            while True:
                await self._ready.wait()
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
                        self._drained.set()
                    if push is not None:
                        self.services.metrics.push_sent()
                        self.recorder.delivered(push.user_id, push.seq)
                self._ready.clear()
        except ConnectionClosed:
            pass
        finally:
            # Gone or going: nothing more is written; a reader waiting for room stops.
            self._closing = True
            self._drained.set()

    def close(self, code: CloseCode, reason: str) -> None:
        """Close the socket from outside the reader."""
        if self._closing:
            return
        self._closing = True
        self._queue.clear()
        self._queued_bytes = 0
        self._drained.set()
        closer = asyncio.get_running_loop().create_task(self.ws.close(code, reason))
        self._closers.add(closer)
        closer.add_done_callback(self._closers.discard)

    # -- the hub's view: Subscriber --------------------------------------------------------

    @property
    def token_id(self) -> int | None:
        return self.login.token_id if self.login else None

    def deliver(self, push: StoredPush, frame: str) -> None:
        login = self.login
        if login is None or push.user_id != login.user_id:
            return
        if login.expires_ts <= self.services.clock.now():
            # An expired token gets no more pushes: its sockets are logged out (section 1).
            self.check_expiry()
            return
        if self._held is not None:
            self._held.append((push, frame))
        elif push.seq == self._push_floor + 1:
            self._send_push(push, frame)
            self._send_early()
        elif push.seq > self._push_floor:
            # Published ahead of an earlier push (they commit together, or on another
            # process): keep it until the gap is filled, from the store if need be.
            self._early[push.seq] = (push, frame)
            if self._gap_filler is None:
                self._gap_filler = asyncio.get_running_loop().create_task(self._fill_gap())

    def _send_push(self, push: StoredPush, frame: str, *, replay: bool = False) -> None:
        self._push_floor = push.seq
        self.send(frame, push, replay=replay)

    def _send_early(self) -> None:
        """Send the kept pushes that now follow on, in seq order."""
        for seq in sorted(self._early):
            if seq <= self._push_floor:
                del self._early[seq]
            elif seq == self._push_floor + 1:
                self._send_push(*self._early.pop(seq))
            else:
                break

    async def _fill_gap(self) -> None:
        """Read the pushes missing before the kept ones from the store and send all in order."""
        try:
            await asyncio.sleep(0)  # publishers woken by the same commit go first
            self._send_early()
            while self._early and self.login is not None:
                first = min(self._early)
                async with self.services.store.read() as tx:
                    missing = await tx.pushes.after(
                        self.login.user_id, self._push_floor, first - 1, MAX_REPLAY
                    )
                zone = self.services.settings.zone
                for push in missing:
                    if push.seq > self._push_floor:
                        self._send_push(push, render_push(push, zone))
                if len(missing) < MAX_REPLAY:
                    self._push_floor = max(self._push_floor, first - 1)  # pruned ones are gone
                self._send_early()
        except Exception:
            log.exception("conn %s: could not fill a gap in the pushes", self.id)
        finally:
            if self._gap_filler is asyncio.current_task():
                self._gap_filler = None

    def send_notice(self, frame: str) -> None:
        self.send(frame)

    def end_session(self, frame: str) -> None:
        Session.log_out(self)
        self._set_frame_limit()
        self._forget_pushes()
        self._disarm_expiry()
        self.send(frame)

    def _set_frame_limit(self) -> None:
        """Read frames up to the limit of the socket's state (section 1), from now on.

        A socket that is not logged in reads at most LOVEWIRE_MAX_ANON_FRAME, whatever
        logged it out (its own request, another socket's logout, expiry, eviction).
        """
        settings = self.services.settings
        size = settings.max_frame
        if self.login is None:
            size = min(settings.max_anon_frame, size)
        protocol = self.ws.protocol
        if hasattr(protocol, "max_message_size"):  # websockets >= 15
            protocol.max_message_size = size
        else:
            protocol.max_size = size  # type: ignore[attr-defined]

    # -- token expiry ----------------------------------------------------------------------

    def _arm_expiry(self) -> None:
        """Set the timer for the login's expiry (replacing any earlier one)."""
        self._disarm_expiry()
        login = self.login
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
        test's ManualClock; the wall clock never calls).
        """
        login = self.login
        if login is None:
            return
        if login.expires_ts > self.services.clock.now():
            if self._expiry is None:
                self._arm_expiry()
            return
        # Every socket of this process on that token is logged out with its notice.
        self.services.hub.end_sessions(login.user_id, [login.token_id], "expired")
        if self.login is login:  # not in the hub (it never is while logged in): end it here
            self.end_session(_EXPIRED)

    def _forget_pushes(self) -> None:
        """Drop the pushes waiting for this socket's login or order."""
        self._held = None
        self._early.clear()
        if self._gap_filler is not None:
            self._gap_filler.cancel()
            self._gap_filler = None

    def evict(self) -> None:
        Session.log_out(self)
        self._set_frame_limit()
        self._disarm_expiry()
        self.close(CloseCode.POLICY_VIOLATION, "too many sockets for this user")

    # -- login and replay ------------------------------------------------------------------

    def log_in(self, login: Login) -> None:
        previous = self.login
        if previous is not None and previous.user_id != login.user_id:
            self.services.hub.detach(previous.user_id, self)
        super().log_in(login)
        if previous is None or previous.user_id != login.user_id:
            self._forget_pushes()  # a gap being filled was the previous user's
            self._push_floor = 0
            self._held = []
            self.services.hub.attach(login.user_id, self)
        self._set_frame_limit()
        self._arm_expiry()  # a new token (login, refresh) brings its own expiry

    def log_out(self) -> None:
        if self.login is not None:
            self.services.hub.detach(self.login.user_id, self)
        super().log_out()
        self._set_frame_limit()
        self._forget_pushes()
        self._disarm_expiry()

    def detach(self) -> None:
        """Leave the hub: the socket is gone."""
        self.services.hub.unregister(self)
        if self.login is not None:
            self.services.hub.detach(self.login.user_id, self)
        self._forget_pushes()
        self._disarm_expiry()

    async def run_replay(self) -> None:
        """Send what the last login owes this socket, then the pushes held meanwhile."""
        plan, self.replay = self.replay, None
        if plan is None or self.login is None or self.login.user_id != plan.user_id:
            return
        zone = self.services.settings.zone
        try:
            async with self.services.store.read() as tx:
                if plan.after is None:
                    pushes = await tx.pushes.undelivered(plan.user_id, plan.upto, MAX_REPLAY)
                else:
                    start = max(plan.after, plan.upto - MAX_REPLAY)
                    pushes = await tx.pushes.after(plan.user_id, start, plan.upto, MAX_REPLAY)
        finally:
            held, self._held = self._held or [], None
        if self.login is None or self.login.user_id != plan.user_id:
            return  # the session ended while the replay was read
        for push in pushes:
            if push.seq > self._push_floor:
                self._send_push(push, render_push(push, zone), replay=True)
        self._push_floor = max(self._push_floor, plan.upto)
        for push, frame in held:
            self.deliver(push, frame)
