"""A client without a socket: frames go straight into the request cycle (`Dispatcher.serve`).

As Channels' `WebsocketCommunicator` or starlette's `TestClient`, it drives the engine
in-process. It is the request cycle's `Channel`, the session's `LoginWatcher` and the
hub's `Subscriber`, and keeps its pushes in order with the same `PushOrder` a socket uses.
"""

from __future__ import annotations

import json
from typing import Any

from lovewire.app import Lovewire
from lovewire.login import MAX_REPLAY
from lovewire.ordering import PushOrder, Send
from lovewire.pushes import render_push
from lovewire.session import Login, Session


class MemoryClient:
    """Send frames, read what came back (answers and pushes, in order)."""

    def __init__(self, app: Lovewire, addr: str = "127.0.0.1") -> None:
        assert app.services is not None and app.dispatcher is not None
        self.services = app.services
        self.dispatcher = app.dispatcher
        self.session = Session(addr, watcher=self)
        self.order = PushOrder()
        self.frames: list[dict[str, Any]] = []
        self.services.hub.register(self)

    async def send(self, frame: dict[str, Any] | str) -> list[dict[str, Any]]:
        """Serve one frame; return what this client got meanwhile (the answer, pushes)."""
        raw = frame if isinstance(frame, str) else json.dumps(frame)
        start = len(self.frames)
        await self.dispatcher.serve(raw, self)
        return self.frames[start:]

    async def request(self, frame: dict[str, Any] | str) -> dict[str, Any]:
        """Serve one frame; return its answer."""
        got = await self.send(frame)
        assert got and not got[0]["type"].endswith("_notify"), got
        return got[0]

    def take(self) -> list[dict[str, Any]]:
        """Everything received so far, forgotten once taken."""
        frames, self.frames = self.frames, []
        return frames

    def close(self) -> None:
        self.session.log_out()
        self.services.hub.unregister(self)

    # -- Channel -----------------------------------------------------------------------

    def respond(self, frame: str) -> None:
        self.frames.append(json.loads(frame))

    async def replay(self) -> None:
        plan, self.session.replay = self.session.replay, None
        assert plan is not None
        async with self.services.store.read() as tx:
            if plan.after is None:
                pushes = await tx.pushes.undelivered(plan.user_id, plan.upto, MAX_REPLAY)
            else:
                pushes = await tx.pushes.after(plan.user_id, plan.after, plan.upto, MAX_REPLAY)
        zone = self.services.settings.zone
        rendered = [(push, render_push(push, zone)) for push in pushes]
        self._take(self.order.replayed(plan.user_id, rendered, plan.upto))

    # -- LoginWatcher --------------------------------------------------------------------

    def login_changed(self, previous: Login | None, current: Login | None) -> None:
        hub = self.services.hub
        if previous is not None and (current is None or current.user_id != previous.user_id):
            hub.detach(previous.user_id, self)
            self.order.end()
        if current is not None and (previous is None or previous.user_id != current.user_id):
            self.order.begin(current.user_id)
            hub.attach(current.user_id, self)

    # -- Subscriber ----------------------------------------------------------------------

    def deliver(self, push: Any, frame: str) -> None:
        self._take(self.order.live(push, frame))
        assert self.order.gap is None, "one process publishes in seq order"

    def send_notice(self, frame: str) -> None:
        self.frames.append(json.loads(frame))

    def send_ephemeral(self, frame: str) -> None:
        self.frames.append(json.loads(frame))

    def end_session(self, frame: str) -> None:
        self.session.log_out()
        self.frames.append(json.loads(frame))

    def evict(self) -> None:
        self.session.log_out()

    def catch_up(self) -> None:
        raise AssertionError("one process misses no push")

    def _take(self, sends: list[Send]) -> None:
        self.frames.extend(json.loads(send.frame) for send in sends)
