"""Can one address stall the event loop? A bystander's ping latency under a frame flood.

    python -m bench.flood [attackers] [seconds] [rounds]

A real `lovewire serve` on its default limits. One attacking address (X-Forwarded-For
through the trusted loopback proxy) runs `attackers` clients in each phase; a bystander
on another address pings every 10 ms meanwhile. Phases:

- quiet: no attack (the reference);
- ws-anon: sockets that never log in send 64 KiB frames (the most a stranger may send):
  `[[],...]`, an object holding `[[],...]`, a padded `ping_request`;
- ws-anon-1m: sockets that never log in send 1 MiB frames of `[[],[],...]`, reconnecting
  whenever they are closed;
- ws-login: logged-in sockets send 1 MiB frames: `[[],...]`, an object holding
  `[[],...]`, and a valid 1 MiB `ping_request` padded with a long string;
- http: clients POST 1 MiB `[[],...]` bodies to /api, and 15 MB bodies (`[[],...]`
  and an object holding it) to the upload route.

The goal: the bystander's p99 stays under 100 ms in every phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.common import BenchServer, call, raise_fd_limit, register, start_server

MIB = 1 << 20
ATTACKER = [("X-Forwarded-For", "198.51.100.66")]
BYSTANDER = [("X-Forwarded-For", "203.0.113.7")]
#: The server's limits as shipped (bench.common lifts them for registering many users).
DEFAULTS = ["--requests-per-second", "50", "--sockets-per-addr", "1000"]
PHASES = ["quiet", "ws-anon", "ws-anon-1m", "ws-login", "http"]


def _lists(size: int) -> str:
    return "[" + ",".join(["[]"] * (size // 3 - 1)) + "]"


LISTS_64K = _lists(65536 - 64)
OBJECT_64K = '{"type":"ping_request","x":' + _lists(65536 - 128) + "}"
PADDED_64K = '{"type":"ping_request","pad":"' + "x" * (65536 - 64) + '"}'
LISTS_1M = _lists(MIB - 64)
OBJECT_1M = '{"type":"ping_request","x":' + _lists(MIB - 128) + "}"
PADDED_1M = '{"type":"ping_request","pad":"' + "x" * (MIB - 64) + '"}'
LISTS_15M = _lists(15 * MIB).encode()
OBJECT_15M = ('{"picture":"x","x":' + _lists(15 * MIB - 64) + "}").encode()


async def _bystander(ws: ClientConnection, stop: asyncio.Event) -> list[float]:
    """Ping until stop; the ping in flight when it is set is measured too."""
    latencies: list[float] = []
    while not stop.is_set():
        start = time.perf_counter()
        await call(ws, {"type": "ping_request"})
        latencies.append(time.perf_counter() - start)
        await asyncio.sleep(0.01)
    return latencies


async def _drain(ws: object) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:  # type: ignore[attr-defined]
            pass


async def _ws_anon(url: str, frames: list[str], stop: asyncio.Event, stats: dict[str, int]) -> None:
    n = 0
    while not stop.is_set():
        try:
            async with connect(
                url, additional_headers=ATTACKER, max_size=None, close_timeout=0.1
            ) as ws:
                reader = asyncio.create_task(_drain(ws))
                try:
                    while not stop.is_set():
                        await ws.send(frames[n % len(frames)])
                        n += 1
                        stats["sent"] += 1
                finally:
                    reader.cancel()
        except (ConnectionClosed, InvalidStatus, OSError):
            stats["closed"] += 1


async def _ws_login(url: str, token: str, stop: asyncio.Event, stats: dict[str, int]) -> None:
    frames = [LISTS_1M, OBJECT_1M, PADDED_1M]
    n = 0
    while not stop.is_set():
        try:
            async with connect(url, additional_headers=ATTACKER, max_size=None) as ws:
                await call(ws, {"type": "auth_request", "token": token})
                reader = asyncio.create_task(_drain(ws))
                try:
                    while not stop.is_set():
                        await ws.send(frames[n % 3])
                        n += 1
                        stats["sent"] += 1
                finally:
                    reader.cancel()
        except (ConnectionClosed, InvalidStatus, OSError):
            stats["closed"] += 1


async def _http(http_url: str, stop: asyncio.Event, stats: dict[str, int]) -> None:
    posts = [
        ("/api", LISTS_1M.encode()),
        ("/index.php?r=picture/upload", LISTS_15M),
        ("/index.php?r=picture/upload", OBJECT_15M),
    ]
    n = 0
    async with aiohttp.ClientSession(headers=dict(ATTACKER)) as http:
        while not stop.is_set():
            path, body = posts[n % 3]
            n += 1
            try:
                async with http.post(http_url + path, data=io.BytesIO(body)) as resp:
                    await resp.read()
                    stats[f"http {resp.status}"] = stats.get(f"http {resp.status}", 0) + 1
            except aiohttp.ClientError:
                stats["closed"] += 1
            stats["sent"] += 1


async def _attack(
    kind: str, urls: tuple[str, str], token: str, count: int, seconds: float
) -> dict[str, int]:
    ws_url, http_url = urls
    stop = asyncio.Event()
    stats = {"sent": 0, "closed": 0}
    attacks: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
        "ws-anon": lambda: _ws_anon(ws_url, [LISTS_64K, OBJECT_64K, PADDED_64K], stop, stats),
        "ws-anon-1m": lambda: _ws_anon(ws_url, [LISTS_1M], stop, stats),
        "ws-login": lambda: _ws_login(ws_url, token, stop, stats),
        "http": lambda: _http(http_url, stop, stats),
    }
    tasks = [asyncio.create_task(attacks[kind]()) for _ in range(count)]
    await asyncio.sleep(seconds)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return stats


def _attacker_process(
    kind: str, urls: tuple[str, str], token: str, count: int, seconds: float, out: Connection
) -> None:
    """The attack in a process of its own, so that it does not slow the bystander's loop."""
    out.send(asyncio.run(_attack(kind, urls, token, count, seconds)))


async def phase(
    server: BenchServer, kind: str, attackers: int, seconds: float, tokens: tuple[str, str]
) -> tuple[list[float], dict[str, int]]:
    bystander, attacker = tokens
    stats: dict[str, int] = {}
    proc = None
    # The bystander logs in before the attack: what is measured is its pings.
    async with connect(server.ws_url, additional_headers=BYSTANDER) as ws:
        await call(ws, {"type": "auth_request", "token": bystander})
        if kind != "quiet":
            receive, send = multiprocessing.Pipe(duplex=False)
            urls = (server.ws_url, server.http_url)
            proc = multiprocessing.get_context("spawn").Process(
                target=_attacker_process,
                args=(kind, urls, attacker, attackers, seconds + 1, send),
            )
            proc.start()
            await asyncio.sleep(1)  # let the attack get going before measuring
        stop = asyncio.Event()
        pinger = asyncio.create_task(_bystander(ws, stop))
        await asyncio.sleep(seconds)
        stop.set()
        latencies = await pinger
    if proc is not None:
        stats = await asyncio.to_thread(receive.recv)
        await asyncio.to_thread(proc.join)
    return latencies, stats


def _summary(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    return (
        statistics.median(ordered) * 1000,
        ordered[int(len(ordered) * 0.99)] * 1000,
        ordered[-1] * 1000,
    )


async def main(attackers: int, seconds: float, rounds: int) -> None:
    raise_fd_limit()
    results: dict[str, list[tuple[float, float]]] = {}
    for n in range(rounds):
        server = await start_server(*DEFAULTS)
        try:
            bystander = await register(server, str(13100000000 + n * 2), "bystander")
            attacker = await register(server, str(13100000001 + n * 2), "attacker")
            print(f"round {n + 1}: {attackers} attackers from one address, {seconds:.0f} s each")
            for kind in PHASES:
                latencies, stats = await phase(
                    server, kind, attackers, seconds, (bystander["token"], attacker["token"])
                )
                p50, p99, worst = _summary(latencies)
                results.setdefault(kind, []).append((p50, p99))
                print(
                    f"  {kind:9} bystander ping p50 {p50:7.2f} ms  p99 {p99:8.2f} ms"
                    f"  max {worst:8.2f} ms  ({len(latencies)} pings; attacker {stats})"
                )
        finally:
            server.proc.kill()
            await server.proc.wait()
    print(f"median over {rounds} rounds (goal: p99 < 100 ms):")
    for name, values in results.items():
        p50 = statistics.median(v[0] for v in values)
        p99 = statistics.median(v[1] for v in values)
        print(f"  {name:9} p50 {p50:7.2f} ms  p99 {p99:8.2f} ms")


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:]]
    attackers, seconds, rounds = (args + [8, 6, 3][len(args) :])[:3]
    asyncio.run(main(int(attackers), seconds, int(rounds)))
