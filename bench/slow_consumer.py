"""Does one stalled socket slow anyone else? Ping latency of others, with and without it.

    python -m bench.slow_consumer [clients] [rounds]

A writer comments on a picture as fast as it can, so its owner gets a push per comment.
Run A: the owner reads its socket. Run B: the owner's socket stops reading (stalled). The
other clients' ping latency is measured in both; the goal is B within 10% of A, and the
stalled socket closed (1013) instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import statistics
import sys
import time
from typing import Any

from PIL import Image
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.common import call, raise_fd_limit, register_many, start_server
from bench.metrics import scrape

#: Seconds each measuring client waits between two pings (a busy app, not a flood).
THINK = 0.01


def _gif() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 200, 30)).save(buf, "GIF")
    return "data:image/gif;base64," + base64.b64encode(buf.getvalue()).decode()


async def _pingers(url: str, users: list[dict[str, Any]], stop: asyncio.Event) -> list[float]:
    latencies: list[float] = []

    async def one(user: dict[str, Any]) -> None:
        async with connect(url) as ws:
            await call(ws, {"type": "auth_request", "token": user["token"]})
            while not stop.is_set():
                start = time.perf_counter()
                await call(ws, {"type": "ping_request"})
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(THINK)

    await asyncio.gather(*(one(u) for u in users))
    return latencies


async def _closed_slow(http_url: str) -> int:
    return round((await scrape(http_url)).get("lovewire_sockets_closed_slow_total", 0.0))


async def scenario(stall: bool, clients: int, seconds: float) -> tuple[list[float], float, str]:
    """Measure the others' pings; stalled: until the stalled socket is closed."""
    server = await start_server("--comments-per-minute", "100000000")
    owner, writer, *others = await register_many(server, clients + 2)
    async with connect(server.ws_url) as ws:
        await call(ws, {"type": "auth_request", "token": owner["token"]})
        post = await call(ws, {"type": "picture_upload_request", "picture": _gif()})
    picture_id = post["picture_id"]
    owner_ws = await connect(server.ws_url, max_queue=1)
    await owner_ws.send(json.dumps({"type": "auth_request", "token": owner["token"]}))
    stop = asyncio.Event()

    async def owner_reads() -> None:
        with contextlib.suppress(ConnectionClosed):
            while not stop.is_set():
                await owner_ws.recv()

    async def writer_comments() -> None:
        async with connect(server.ws_url) as ws:
            await call(ws, {"type": "auth_request", "token": writer["token"]})
            while not stop.is_set():
                frame = {
                    "type": "picture_comment_request",
                    "picture_id": picture_id,
                    "msg": "x" * 500,
                }
                await call(ws, frame)

    async def stop_later() -> None:
        deadline = time.monotonic() + (120 if stall else seconds)
        while time.monotonic() < deadline:
            if stall and await _closed_slow(server.http_url):
                break
            await asyncio.sleep(0.2)
        stop.set()

    started = time.monotonic()
    tasks = [asyncio.create_task(writer_comments()), asyncio.create_task(stop_later())]
    if not stall:
        tasks.append(asyncio.create_task(owner_reads()))
    latencies = await _pingers(server.ws_url, others, stop)
    elapsed = time.monotonic() - started
    await asyncio.gather(*tasks, return_exceptions=True)
    state = "n/a"
    if stall:
        state = "closed 1013" if await _closed_slow(server.http_url) else "NOT closed"
    owner_ws.transport.abort()
    await server.stop()
    return latencies, elapsed, state


def _summary(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99)] * 1000


async def main(clients: int, rounds: int) -> None:
    raise_fd_limit()
    ratios: list[tuple[float, float]] = []
    for n in range(rounds):
        stalled, seconds, state = await scenario(True, clients, 0)
        base, _, _ = await scenario(False, clients, seconds)
        (b50, b99), (s50, s99) = _summary(base), _summary(stalled)
        ratios.append((s50 / b50, s99 / b99))
        print(f"round {n + 1}: {clients} clients pinging for {seconds:.1f} s, writer commenting")
        print(f"  owner reading:  p50 {b50:.2f} ms  p99 {b99:.2f} ms")
        print(f"  owner stalled:  p50 {s50:.2f} ms  p99 {s99:.2f} ms  (stalled socket: {state})")
    p50 = statistics.median(r[0] for r in ratios)
    p99 = statistics.median(r[1] for r in ratios)
    print(
        f"median ratio stalled/reading over {rounds} rounds: p50 {p50:.2f}  p99 {p99:.2f}"
        " (goal <= 1.10)"
    )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [50, 3][len(args) :])))
