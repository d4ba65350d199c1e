"""The WebSocket listener: one Connection per socket, frames dispatched in order."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from lovewire.addresses import client_address
from lovewire.connection import WRITE_LIMIT, Connection
from lovewire.context import Services
from lovewire.dispatch import Dispatcher
from lovewire.pushes import DeliveryRecorder

__all__ = ["WsServer"]

log = logging.getLogger(__name__)

CLOSE_TOO_MANY = 1013
#: Incoming frames buffered per socket before TCP pushes back.
MAX_QUEUE = 8


class WsServer:
    """Accept sockets, read frames, answer each in order, close cleanly."""

    def __init__(
        self, services: Services, dispatcher: Dispatcher, recorder: DeliveryRecorder
    ) -> None:
        self.services = services
        self.dispatcher = dispatcher
        self.recorder = recorder
        self.per_addr: Counter[str] = Counter()
        self.connections: set[Connection] = set()
        self._server: Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; return the real port."""
        settings = self.services.settings
        self._server = await serve(
            self.handle,
            host,
            port,
            max_size=settings.max_frame,
            max_queue=MAX_QUEUE,
            compression=None,
            write_limit=WRITE_LIMIT,
            ping_interval=settings.ping_interval,
            ping_timeout=max(1.0, settings.ping_timeout - settings.ping_interval),
            close_timeout=5,
        )
        sockname = next(iter(self._server.sockets)).getsockname()
        return int(sockname[1])

    async def close(self) -> None:
        """Stop accepting, close every socket with 1001, wait for their handlers."""
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
            self._server = None

    async def handle(self, ws: ServerConnection) -> None:
        settings = self.services.settings
        peer = ws.remote_address[0] if ws.remote_address else None
        addr = client_address(
            peer,
            ws.request.headers.get("X-Forwarded-For") if ws.request else None,
            settings.trusted_proxies,
        )
        if self.per_addr[addr] >= settings.sockets_per_addr:
            await ws.close(CLOSE_TOO_MANY, "too many sockets from this address")
            return
        self.per_addr[addr] += 1
        self.services.metrics.sockets_opened += 1
        conn = Connection(ws, addr, self.services, self.recorder)
        self.connections.add(conn)
        writer = asyncio.create_task(conn.write_loop())
        try:
            async for message in ws:
                if not await conn.writable():
                    continue  # closing: start nothing, read on to the client's close frame
                reply = await self.dispatcher.dispatch(message, conn)
                if reply is not None:
                    conn.send(reply)
                self.dispatcher.publish_outbox(conn)
                if conn.replay is not None:
                    await conn.run_replay()
        except ConnectionClosed:
            pass
        finally:
            conn.detach()
            self.connections.discard(conn)
            self.per_addr[addr] -= 1
            if self.per_addr[addr] <= 0:
                del self.per_addr[addr]
            writer.cancel()
