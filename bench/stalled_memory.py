"""Can sockets that never read grow the server's memory? RSS while they ask for full feeds.

    python -m bench.stalled_memory [sockets...] [--rounds N]

A real `lovewire serve` process gets 20 posts, each with 20 comments of 20 replies, every
text 500 Chinese characters (what the issue's attack used), through the real requests.
Then `sockets` clients that never read (a 4 KiB receive buffer, their library's queue of
one message) each send up to 400 `picture_info_request`s. The server's VmRSS is sampled
every 50 ms from /proc until every stalled socket is closed (1013), 60 s pass, or it
reaches 1.5 GB (then it is killed: the old code grew to 3.0 GB with one socket).

Measured (2 shared cores, 3 rounds, medians), server VmRSS after seeding -> peak:
  before (c74d67d, 256-frame queue, 14.2 MB feed frames): 1 socket 83 -> 1468 MiB,
  2 sockets 93 -> 1473 MiB, both stopped at 1.5 GB after 51-60 s, never closed;
  after (4 MiB outbound bound, 0.71 MB feed frames): 1 socket 66 -> 76 MiB, closed
  1013 in 0.6 s; 2 sockets 66 -> 80 MiB, both closed 1013 in about 1 s.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image
from websockets.asyncio.client import ClientConnection, connect

from bench.common import BenchServer, call, register_many, start_server
from bench.metrics import scrape

TEXT = "爱" * 500
POSTS = 20
COMMENTS = 20
REPLIES = 20
REQUESTS = 400
LIMIT_KIB = 1_500_000
SECONDS = 60.0


def _gif() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 30)).save(buf, "GIF")
    return "data:image/gif;base64," + base64.b64encode(buf.getvalue()).decode()


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise LookupError(key)


async def _seed(server: BenchServer, users: list[dict[str, Any]]) -> None:
    """The posts, comments and replies, written by 20 sockets at once."""
    sockets: list[ClientConnection] = []
    for user in users:
        ws = await connect(server.ws_url, max_size=None)
        await call(ws, {"type": "auth_request", "token": user["token"]})
        sockets.append(ws)
    gif = _gif()

    async def post(ws: ClientConnection) -> None:
        done = await call(ws, {"type": "picture_upload_request", "picture": gif, "words": TEXT})
        pid = done["picture_id"]
        for _ in range(COMMENTS):
            top = await call(
                ws, {"type": "picture_comment_request", "picture_id": pid, "msg": TEXT}
            )
            for _ in range(REPLIES):
                frame = {
                    "type": "picture_comment_request",
                    "picture_id": pid,
                    "msg": TEXT,
                    "reply_to": top["comment_id"],
                }
                assert (await call(ws, frame))["success"]

    await asyncio.gather(*(post(ws) for ws in sockets[:POSTS]))
    for ws in sockets:
        await ws.close()


async def _closed_slow(http_url: str) -> int:
    return round((await scrape(http_url)).get("lovewire_sockets_closed_slow_total", 0.0))


async def _stalled(url: str, token: str) -> ClientConnection:
    """A client that will never read: tiny receive buffer, a library queue of one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.removeprefix("ws://").split(":")
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    ws = await connect(url, sock=sock, max_size=None, max_queue=1, ping_interval=None)
    await ws.send(json.dumps({"type": "auth_request", "token": token}))
    for _ in range(REQUESTS):
        await ws.send('{"type":"picture_info_request"}')
    return ws


async def scenario(stalled: int) -> dict[str, Any]:
    """One fresh server, seeded; `stalled` sockets ask for feeds; the server's memory."""
    server = await start_server("--comments-per-minute", "100000000")
    try:
        users = await register_many(server, POSTS)
        started = time.monotonic()
        await _seed(server, users)
        seeded = time.monotonic() - started
        async with connect(server.ws_url, max_size=None) as ws:
            await call(ws, {"type": "auth_request", "token": users[0]["token"]})
            await ws.send('{"type":"picture_info_request"}')
            feed_bytes = len(await ws.recv(decode=False))
        pid = server.proc.pid
        base = _status(pid, "VmRSS")
        clients = [await _stalled(server.ws_url, users[i]["token"]) for i in range(stalled)]
        peak, closed, killed = base, 0, False
        started = time.monotonic()
        while time.monotonic() - started < SECONDS:
            peak = max(peak, _status(pid, "VmRSS"))
            if peak >= LIMIT_KIB:
                killed = True
                break
            closed = await _closed_slow(server.http_url)
            if closed >= stalled:
                break
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        hwm = _status(pid, "VmHWM")
        for ws in clients:
            ws.transport.abort()
        return {
            "stalled": stalled,
            "seed_s": seeded,
            "feed_bytes": feed_bytes,
            "base_mib": base / 1024,
            "peak_mib": max(peak, hwm) / 1024,
            "closed": closed,
            "killed": killed,
            "seconds": elapsed,
        }
    finally:
        with contextlib.suppress(ProcessLookupError):
            server.proc.kill()
        await server.proc.wait()


async def main(counts: list[int], rounds: int) -> None:
    for stalled in counts:
        peaks = []
        for n in range(rounds):
            r = await scenario(stalled)
            peaks.append(r["peak_mib"])
            state = (
                "KILLED at the 1.5 GB stop"
                if r["killed"]
                else f"{r['closed']} of {stalled} closed 1013"
                if r["closed"]
                else "not closed"
            )
            print(
                f"{stalled} stalled, round {n + 1}: feed frame {r['feed_bytes'] / 1e6:.2f} MB,"
                f" RSS {r['base_mib']:.0f} MiB -> peak {r['peak_mib']:.0f} MiB"
                f" in {r['seconds']:.1f} s; {state} (seeded in {r['seed_s']:.0f} s)",
                flush=True,
            )
        print(f"{stalled} stalled: median peak {statistics.median(peaks):.0f} MiB", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    rounds = 3
    if "--rounds" in args:
        i = args.index("--rounds")
        rounds = int(args[i + 1])
        del args[i : i + 2]
    asyncio.run(main([int(a) for a in args] or [1, 2], rounds))
