"""A thin WebSocket client for load generators that hold thousands of sockets.

websockets' client spends some 50 us of Python on every frame it receives: a generator
process holding 5,000 sockets took 0.3 s to read one `system_notify` on each, and the
notify row measured that, not the server. This client does what a load generator needs
and no more: the opening handshake, masked text frames out (RFC 6455), and the server's
frames parsed just enough: text frames handed on, pings answered, a close echoed.
The server cannot tell it from any other client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections import deque
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

__all__ = ["ThinSocket", "call_thin", "connect_thin"]

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA

#: Seconds to connect and complete the handshake: thousands connect at once.
OPEN_TIMEOUT = 60.0


class ThinSocket(asyncio.Protocol):
    """One client socket. `on_text`, when set, takes every text frame; else `recv` does."""

    def __init__(self, host: str, path: str) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.on_text: Callable[[bytes], None] | None = None
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._upgraded = False
        self._texts: deque[bytes] = deque()
        self._text_waiter: asyncio.Future[None] | None = None
        self._mask = os.urandom(4)

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not a subclass of asyncio's, but is one).
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self._upgraded and not self._buffer and len(data) >= 2 and data[0] == 0x81:
            # The usual read: one whole small text frame, taken without copying.
            length = data[1] & 0x7F
            if length < 126 and len(data) == 2 + length:
                self._text(data[2:])
                return
        self._buffer += data
        if not self._upgraded:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self._buffer[: self._buffer.find(b"\r\n")])
            del self._buffer[: end + 4]
            if b" 101 " not in status:
                self._fail(ConnectionError(f"handshake refused: {status.decode(errors='replace')}"))
                assert self.transport is not None
                self.transport.close()
                return
            self._upgraded = True
            self.opened.set_result(None)
        self._read_frames()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("connection closed"))

    # -- frames -------------------------------------------------------------------------------

    def _read_frames(self) -> None:
        buf = self._buffer
        while len(buf) >= 2:
            opcode, length, start = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, start = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, start = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < start + length:
                return
            payload = bytes(buf[start : start + length])
            del buf[: start + length]
            if opcode == TEXT:
                self._text(payload)
            elif opcode == PING:
                self._send(PONG, payload)
            elif opcode == CLOSE:
                self._send(CLOSE, payload[:2])
                assert self.transport is not None
                self.transport.close()
                return

    def _text(self, payload: bytes) -> None:
        if self.on_text is not None:
            self.on_text(payload)
            return
        self._texts.append(payload)
        if self._text_waiter is not None and not self._text_waiter.done():
            self._text_waiter.set_result(None)

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n))
        elif n < 1 << 16:
            header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        key = (self._mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
        self.transport.write(header + self._mask + masked)

    def _fail(self, exc: BaseException) -> None:
        for fut in (self.opened, self.closed):
            if not fut.done():
                if fut is self.closed:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)
        if self._text_waiter is not None and not self._text_waiter.done():
            self._text_waiter.set_exception(ConnectionError("connection closed"))

    # -- the client's side ---------------------------------------------------------------

    def send_text(self, text: str) -> None:
        self._send(TEXT, text.encode())

    async def recv(self) -> bytes:
        """The next text frame (when `on_text` is not set)."""
        while not self._texts:
            if self.closed.done():
                raise ConnectionError("connection closed")
            self._text_waiter = asyncio.get_running_loop().create_future()
            await self._text_waiter
        return self._texts.popleft()

    async def close(self) -> None:
        """Send a close frame (1000) and wait for the server to end the connection."""
        if self.transport is not None and not self.transport.is_closing():
            self._send(CLOSE, (1000).to_bytes(2, "big"))
            try:
                await asyncio.wait_for(asyncio.shield(self.closed), 5)
            except TimeoutError:
                self.transport.abort()


async def connect_thin(url: str) -> ThinSocket:
    """Open a `ws://` URL and complete the handshake (within `OPEN_TIMEOUT` seconds)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(OPEN_TIMEOUT):
        _, sock = await loop.create_connection(
            lambda: ThinSocket(f"{host}:{port}", parts.path or "/"), host, port
        )
        await sock.opened
    return sock


async def call_thin(ws: ThinSocket, frame: dict[str, Any]) -> dict[str, Any]:
    """Send one request; its answer (pushes that come first are skipped)."""
    ws.send_text(json.dumps(frame))
    while True:
        reply: dict[str, Any] = json.loads(await ws.recv())
        if not reply["type"].endswith("_notify"):
            return reply
