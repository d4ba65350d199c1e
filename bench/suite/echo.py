"""The ceiling: a bare `websockets` echo server, run as its own process.

    python -m bench.suite.echo [asyncio|uvloop]   (prints "echo listening ws://127.0.0.1:PORT")

Same library and socket settings as lovewire's WebSocket side (no compression), no
application at all: every frame is sent back as it came. The ceiling of the issue's
target runs on asyncio's own loop; on uvloop (lovewire's default loop) it is noted too.
"""

from __future__ import annotations

import asyncio
import re
import sys
from typing import cast

from websockets.asyncio.server import ServerConnection, serve

from bench.common import STARTED, BenchServer
from lovewire import eventloop

__all__ = ["start_echo"]

LISTENING = re.compile(r"^echo listening (ws://[\d.]+:\d+)$")


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def main() -> None:
    async with serve(_echo, "127.0.0.1", 0, compression=None, max_size=2**20) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"echo listening ws://127.0.0.1:{port}", flush=True)
        await server.serve_forever()


async def start_echo(loop: eventloop.LoopName = "asyncio") -> BenchServer:
    """The echo server as a process, in the shape of a lovewire one (no HTTP side)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.suite.echo",
        loop,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    STARTED.add(proc)
    assert proc.stdout is not None
    match = LISTENING.match((await proc.stdout.readline()).decode().strip())
    assert match, "echo server did not start"
    return BenchServer(proc, match.group(1), "", {})


if __name__ == "__main__":
    choice = sys.argv[1] if len(sys.argv) > 1 else "asyncio"
    if choice not in ("asyncio", "uvloop"):
        raise SystemExit(f"unknown event loop: {choice}")
    eventloop.run(main(), eventloop.loop_factory(cast(eventloop.LoopName, choice)))
