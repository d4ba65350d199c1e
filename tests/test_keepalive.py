"""Keepalive: the server pings every socket, and closes one that answers no ping (4.1)."""

from __future__ import annotations

import asyncio
import json
from itertools import pairwise
from types import SimpleNamespace
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from lovewire.keepalive import SLICE, Keepalive
from tests.conftest import Server


class RawClient:
    """A WebSocket client on the sans-I/O protocol that may keep its pongs to itself."""

    def __init__(self, url: str, *, answer_pings: bool) -> None:
        self.url = url
        self.answer_pings = answer_pings
        self.protocol = ClientProtocol(parse_uri(url))
        self.events: list[Frame] = []

    async def open(self) -> None:
        uri = parse_uri(self.url)
        self.reader, self.writer = await asyncio.open_connection(uri.host, uri.port)
        self.protocol.send_request(self.protocol.connect())
        self._flush(always=True)

    def _flush(self, *, always: bool = False) -> None:
        for data in self.protocol.data_to_send():
            if data and (always or self.answer_pings):
                self.writer.write(data)

    async def frame(self) -> Frame | None:
        """The next frame from the server; None once the connection has ended."""
        while not self.events:
            data = await self.reader.read(65536)
            if not data:
                self.protocol.receive_eof()
                return None
            self.protocol.receive_data(data)
            self.events.extend(e for e in self.protocol.events_received() if isinstance(e, Frame))
            self._flush()  # pongs (and closes) go back only if this client answers pings
        return self.events.pop(0)

    def send_text(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        self._flush(always=True)

    def close(self) -> None:
        self.writer.close()


@pytest.mark.both_loops
async def test_socket_answering_no_ping_is_closed(start_server: Any) -> None:
    server: Server = await start_server(ping_interval=0.05, ping_timeout=1.05)
    client = RawClient(server.ws_url, answer_pings=False)
    await client.open()
    try:
        pings = 0
        while (frame := await client.frame()) is not None:
            if frame.opcode is Opcode.PING:
                pings += 1
            elif frame.opcode is Opcode.CLOSE:
                close = Close.parse(frame.data)
                break
        assert pings >= 1
        assert close.code == CloseCode.INTERNAL_ERROR
        assert close.reason == "keepalive ping timeout"
    finally:
        client.close()


@pytest.mark.both_loops
async def test_socket_answering_pings_stays_open(start_server: Any) -> None:
    server: Server = await start_server(ping_interval=0.05, ping_timeout=1.05)
    client = RawClient(server.ws_url, answer_pings=True)
    await client.open()
    try:
        # Many rounds, each answered: far longer than a timeout (1 s) without any frame
        # of the client's own but its pongs.
        pings = 0
        while pings < 30:
            frame = await client.frame()
            assert frame is not None and frame.opcode is not Opcode.CLOSE
            pings += frame.opcode is Opcode.PING
        client.send_text(json.dumps({"type": "ping_request"}))
        while (frame := await client.frame()) is not None and frame.opcode is not Opcode.TEXT:
            assert frame.opcode is Opcode.PING
        assert frame is not None
        assert json.loads(bytes(frame.data))["type"] == "ping_response"
    finally:
        client.close()


class _Pinged:
    """Stands for an open socket with room to write; notes when it was pinged."""

    def __init__(self, log: list[float]) -> None:
        self.log = log
        self.protocol = SimpleNamespace(state=State.OPEN)
        self.transport = SimpleNamespace(get_write_buffer_size=lambda: 0)
        self.write_limit_high = 2**15

    async def ping(self) -> asyncio.Future[float]:
        loop = asyncio.get_running_loop()
        self.log.append(loop.time())
        return loop.create_future()


async def test_a_round_spreads_its_pings_over_the_interval() -> None:
    """Thousands of sockets pinged at once (and their pongs read at once) held every
    other socket up: a round pings a slice at a time, spread over the interval."""
    pinged: list[float] = []
    sockets = [_Pinged(pinged) for _ in range(4 * SLICE)]
    keepalive = Keepalive(lambda: sockets, interval=10, timeout=30)  # type: ignore[arg-type, return-value]
    loop = asyncio.get_running_loop()
    started = loop.time()
    await keepalive.round(spread=0.2)
    assert len(pinged) == 4 * SLICE
    slices = [pinged[i : i + SLICE] for i in range(0, len(pinged), SLICE)]
    assert all(later[0] - earlier[-1] >= 0.05 - 0.01 for earlier, later in pairwise(slices))
    assert loop.time() - started < 0.2 + 0.5  # one spread, not a second one after it
