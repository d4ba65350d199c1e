"""The WebSocket listener: one Connection per socket, frames dispatched in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from lovewire.addresses import client_address
from lovewire.connection import WRITE_LIMIT, Connection
from lovewire.context import Services
from lovewire.dispatch import Dispatcher
from lovewire.ingress import FREE_BYTES, Address, AddressBook
from lovewire.keepalive import Keepalive
from lovewire.pushes import DeliveryRecorder

__all__ = ["WsServer"]

log = logging.getLogger(__name__)

#: Connections the kernel keeps waiting for accept (capped by net.core.somaxconn).
LISTEN_BACKLOG = 4096

#: Incoming frames buffered per socket before TCP pushes back.
MAX_QUEUE = 8


class _Socket(ServerConnection):
    """A server connection that leaves no reference cycle behind once closed, so that it
    is freed at once, even once frozen (lovewire.collector)."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # websockets' protocol keeps its parser, a generator suspended in `parse` with the
        # protocol in its frame, and the error that ended parsing, whose traceback holds
        # that frame: nothing is parsed after the connection is lost, so the parser is
        # closed and the error keeps its message, not its frames.
        protocol = self.protocol
        parser = getattr(protocol, "parser", None)
        if parser is not None:
            parser.close()
        error: BaseException | None = getattr(protocol, "parser_exc", None)
        seen: set[int] = set()
        while error is not None and id(error) not in seen:
            seen.add(id(error))
            error.__traceback__ = None
            error = error.__cause__ or error.__context__
        # Python 3.11's socket transport keeps a bound method of itself until collected
        # (python/cpython#100348, fixed in 3.12 by the same assignment in `close`).
        if hasattr(self.transport, "_read_ready_cb"):
            self.transport._read_ready_cb = None


class WsServer:
    """Accept sockets, read frames, answer each in order, close cleanly."""

    def __init__(
        self,
        services: Services,
        dispatcher: Dispatcher,
        recorder: DeliveryRecorder,
        addresses: AddressBook,
    ) -> None:
        self.services = services
        self.dispatcher = dispatcher
        self.recorder = recorder
        self.addresses = addresses
        self.connections: set[Connection] = set()
        self._server: Server | None = None
        self._handlers: set[asyncio.Task[object]] = set()
        #: Every socket until it is gone, its handler over or not (a closing handshake
        #: with a client that does not read lasts close_timeout).
        self._sockets: weakref.WeakSet[ServerConnection] = weakref.WeakSet()
        #: Set at shutdown: requests not started yet are abandoned.
        self._stopping = False
        settings = services.settings
        #: A socket answers a ping within the timeout, or is closed (1011): one that
        #: answers none for `ping_timeout` seconds is gone.
        self.keepalive = Keepalive(
            lambda: self._sockets,
            settings.ping_interval,
            max(1.0, settings.ping_timeout - settings.ping_interval),
        )

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        """Listen; return the real port. `reuse_port`: share it with other processes."""
        settings = self.services.settings
        self._server = await serve(
            self.handle,
            host,
            port,
            max_size=min(settings.max_anon_frame, settings.max_frame),  # raised on login
            max_queue=MAX_QUEUE,
            compression=None,
            write_limit=WRITE_LIMIT,
            ping_interval=None,  # one task pings every socket: `self.keepalive`
            close_timeout=5,
            reuse_port=reuse_port,
            # Thousands of apps reconnect at once after a restart or a network blip: a
            # short accept queue drops their SYNs and each retries a second later.
            backlog=LISTEN_BACKLOG,
            create_connection=_Socket,
        )
        self.keepalive.start()
        sockname = next(iter(self._server.sockets)).getsockname()
        return int(sockname[1])

    async def close(self, grace: float | None = None) -> None:
        """Stop accepting, close every socket with 1001, wait for their handlers.

        Requests not started are abandoned; after `grace` seconds the ones in flight are
        cancelled (their write units roll back) and the sockets are dropped.
        """
        if self._server is None:
            return
        if grace is None:
            grace = self.services.settings.shutdown_grace
        self._stopping = True
        await self.keepalive.stop()
        self._server.close(close_connections=True)
        # Most of the grace for what is in flight, the rest to drop what is left: the
        # process is gone within the grace, as systemd expects.
        last = min(1.0, grace / 5)
        try:
            await asyncio.wait_for(asyncio.shield(self._server.wait_closed()), grace - last)
        except TimeoutError:
            log.warning(
                "shutdown grace over: %d socket handlers cancelled, %d sockets dropped",
                len(self._handlers),
                len(self._sockets),
            )
            for task in self._handlers:
                task.cancel()
            for ws in list(self._sockets):
                ws.transport.abort()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), last)
        self._server = None

    async def handle(self, ws: ServerConnection) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._sockets.add(ws)
        try:
            await self._handle(ws)
        finally:
            self._handlers.discard(task)

    async def _handle(self, ws: ServerConnection) -> None:
        settings = self.services.settings
        peer = ws.remote_address[0] if ws.remote_address else None
        key = client_address(
            peer,
            ws.request.headers.get_all("X-Forwarded-For") if ws.request else None,
            settings.trusted_proxies,
        )
        address = self.addresses.get(key)
        if address.sockets >= settings.sockets_per_addr:
            await ws.close(CloseCode.TRY_AGAIN_LATER, "too many sockets from this address")
            return
        if self._stopping:
            await ws.close(CloseCode.GOING_AWAY)
            return
        hub = self.services.hub
        address.sockets += 1
        try:
            # The address's sockets on the other processes count too (section 8).
            if address.sockets + await hub.address_opened(key) > settings.sockets_per_addr:
                await ws.close(CloseCode.TRY_AGAIN_LATER, "too many sockets from this address")
                return
            await self._serve(ws, key, address)
        finally:
            address.sockets -= 1
            await hub.address_closed(key)

    async def _serve(self, ws: ServerConnection, key: str, address: Address) -> None:
        self.services.metrics.socket_opened()
        loop = asyncio.get_running_loop()
        try:
            async with Connection(ws, key, self.services, self.recorder) as conn:
                conn.session.addr_bucket = address.requests
                self.connections.add(conn)
                try:
                    await self._read(ws, conn, address, loop)
                finally:
                    self.connections.discard(conn)
        finally:
            self.services.metrics.socket_closed()

    async def _read(
        self,
        ws: ServerConnection,
        conn: Connection,
        address: Address,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """Serve the socket's frames in order, until it closes or the server stops.

        The frame limit follows the socket's login (Connection._set_frame_limit): a login
        changes it before its answer goes out, so the client can rely on it.
        """
        try:
            async for message in ws:
                if self._stopping:
                    break
                if not await conn.writable():
                    continue  # closing: start nothing, read on to the client's close frame
                size = _size(message)
                if size > FREE_BYTES:
                    # The address's parse budget: over it, this socket is not read.
                    delay = address.bytes.charge(size, loop.time())
                    if delay:
                        await asyncio.sleep(delay)
                        if self._stopping:
                            break
                        if not await conn.writable():
                            continue
                await self.dispatcher.serve(message, conn)
        except ConnectionClosed:
            pass


def _size(message: str | bytes) -> int:
    """The frame's size in bytes, as the budget counts it (UTF-8 for a text frame)."""
    if isinstance(message, bytes) or message.isascii():
        return len(message)
    return len(message.encode("utf-8", "surrogatepass"))
