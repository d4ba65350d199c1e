"""Chat message to peer: how long from sending to the peer's push, at a steady rate.

    python -m bench.chat [--rate 1000] [--seconds 10] [--pairs 100] [--json FILE]
        [-- extra `lovewire serve` flags, e.g. --database-url ... --redis-url ...]

The target of issue 10: p99 <= 20 ms at 1,000 messages a second. The server runs as a
process (SQLite, one process, unless flags say otherwise) with the bench limits lifted
(`BENCH_FLAGS`, and `--messages-per-minute` raised). `--pairs` matched pairs are
registered through the real flow, each pair's conversation opened by a real match, each
user on a socket of their own. Then for `--seconds` every pair's first user sends
`chat_send_request` at `rate / pairs` a second (paced on a schedule, not waiting for
answers: a slow server shows as latency, not as a lower rate); the peer's socket reads
the `chat_message_notify`, and the latency is from the moment the request was due to
the moment its push arrived (so a late send counts against the figure, not for it).

Every message is durable when answered (a message and two pushes, fsynced), so a disk
that holds an fsync for 100 ms holds every message meanwhile: the server's commit times
(`lovewire_store_commit_seconds`, read from `/metrics` around the window) are reported
beside the latencies. The load generator is this process; its CPU is reported (near 100%
of a core means the client, not the server, set the pace: lower the rate, or read it as
a lower bound).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.common import BenchServer, call, raise_fd_limit, register_many, start_server
from bench.metrics import Commits, scrape

__all__ = ["main", "parse"]

TARGET_P99_MS = 20.0
#: Seconds before the window when the server's commit figures are read.
SCRAPE_AHEAD = 0.25


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chat", description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages a second, total")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=1.0, help="load before the window")
    parser.add_argument("--pairs", type=int, default=100, help="matched pairs talking")
    parser.add_argument("--json", help="write the figures here as JSON")
    parser.add_argument("serve", nargs="*", help="extra `lovewire serve` flags, after --")
    return parser.parse_args(argv)


async def _pair_up(server: BenchServer, pairs: int) -> list[tuple[dict[str, Any], ...]]:
    """Register 2 x pairs users and make each pair match; (a, b, conversation_id)."""
    users = await register_many(server, 2 * pairs, start=13100000000)
    for i in range(pairs):
        users[2 * i]["tel"] = str(13100000000 + 2 * i)
        users[2 * i + 1]["tel"] = str(13100000000 + 2 * i + 1)
    sem = asyncio.Semaphore(20)

    async def match(a: dict[str, Any], b: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        async with sem, connect(server.ws_url) as wa, connect(server.ws_url) as wb:
            for ws, who in ((wa, a), (wb, b)):
                auth = await call(ws, {"type": "auth_request", "token": who["token"]})
                assert auth["success"], auth
            added = await call(wa, {"type": "crush_add_request", "crush_tel": b["tel"]})
            assert added["success"], added
            added = await call(wb, {"type": "crush_add_request", "crush_tel": a["tel"]})
            assert added["matched"], added
            while True:
                frame = json.loads(await wb.recv())
                if frame["type"] == "crush_match_notify":
                    return a, b, {"conversation_id": frame["conversation_id"]}

    return list(
        await asyncio.gather(*(match(users[2 * i], users[2 * i + 1]) for i in range(pairs)))
    )


async def _login(server: BenchServer, stack: AsyncExitStack, token: str) -> ClientConnection:
    ws = await stack.enter_async_context(connect(server.ws_url, max_size=None))
    # last_seq far ahead: nothing is replayed (the match pushes are old news).
    auth = await call(ws, {"type": "auth_request", "token": token, "last_seq": 2**40})
    assert auth["success"], auth
    return ws


async def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    server = await start_server("--messages-per-minute", "100000000", *args.serve)
    try:
        talks = await _pair_up(server, args.pairs)
        async with AsyncExitStack() as stack:
            senders = [await _login(server, stack, a["token"]) for a, _, _ in talks]
            peers = [await _login(server, stack, b["token"]) for _, b, _ in talks]
            chats = [c["conversation_id"] for _, _, c in talks]
            return await _measure(args, server, senders, peers, chats)
    finally:
        await server.stop()


async def _measure(
    args: argparse.Namespace,
    server: BenchServer,
    senders: list[ClientConnection],
    peers: list[ClientConnection],
    chats: list[str],
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    interval = len(senders) / args.rate
    start = loop.time() + 0.2
    window = (start + args.warmup, start + args.warmup + args.seconds)
    end = window[1]
    #: When each message was due, by its text.
    due: dict[str, float] = {}
    latencies: list[float] = []
    errors = 0
    sent_in_window = 0
    sending = True
    all_in = asyncio.Event()

    async def talk(i: int) -> None:
        nonlocal sent_in_window
        ws, chat = senders[i], chats[i]
        n = 0
        t = start + i * interval / len(senders)
        while t < end:
            await asyncio.sleep(max(0.0, t - loop.time()))
            key = f"{i}:{n}"
            due[key] = t
            if window[0] <= t < window[1]:
                sent_in_window += 1
            await ws.send(
                json.dumps({"type": "chat_send_request", "conversation_id": chat, "msg": key})
            )
            n += 1
            t += interval

    async def drain_sender(i: int) -> None:
        nonlocal errors
        async for raw in senders[i]:
            frame = json.loads(raw)
            if frame["type"] == "chat_send_response" and not frame["success"]:
                errors += 1

    async def listen(i: int) -> None:
        async for raw in peers[i]:
            arrived = loop.time()
            frame = json.loads(raw)
            if frame["type"] == "chat_message_notify":
                sent_at = due.pop(frame["msg"])
                if window[0] <= sent_at < window[1]:
                    latencies.append(arrived - sent_at)
                if not due and not sending:
                    all_in.set()

    # The server is one process: its own CPU is one file read, which never stalls the
    # senders (walking /proc for child processes did, by a hundred milliseconds).
    readers = [loop.create_task(drain_sender(i)) for i in range(len(senders))]
    readers += [loop.create_task(listen(i)) for i in range(len(peers))]
    cpu0, server_cpu0 = time.process_time(), server.own_cpu_seconds()
    # The talkers start now, warmup included: started at the window, they would send the
    # warmup's messages in one burst, and the first of the window would wait behind it.
    talking = asyncio.gather(*(talk(i) for i in range(len(senders))))
    # The server's commits, read just before the window (a scrape is a few ms of its CPU).
    await asyncio.sleep(max(0.0, window[0] - SCRAPE_AHEAD - loop.time()))
    scraped = await scrape(server.http_url)
    await asyncio.sleep(max(0.0, window[0] - loop.time()))
    cpu_w, server_w = time.process_time(), server.own_cpu_seconds()
    await talking
    cpu1, server_cpu1 = time.process_time(), server.own_cpu_seconds()
    sending = False
    if not due:
        all_in.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_in.wait(), 5)  # the last pushes, or they are lost
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    commits = Commits.between(scraped, await scrape(server.http_url))
    latencies.sort()

    def pct(p: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    busy = args.warmup + args.seconds
    return {
        "scenario": "chat",
        "rate_offered": args.rate,
        "pairs": len(senders),
        "seconds": args.seconds,
        "messages": sent_in_window,
        "delivered": len(latencies),
        "lost": len(due),
        "errors": errors,
        "p50_ms": round(pct(0.50), 2) if latencies else None,
        "p99_ms": round(pct(0.99), 2) if latencies else None,
        "max_ms": round(1000 * latencies[-1], 2) if latencies else None,
        "target_p99_ms": TARGET_P99_MS,
        "met": bool(latencies) and pct(0.99) <= TARGET_P99_MS and not due,
        "commits": commits.count,
        "commits_slow": commits.slow,
        "longest_commit_ms": round(1000 * commits.longest, 3),
        "commits_note": commits.describe(),
        "server_cpu_pct": round(100 * (server_cpu1 - server_w) / args.seconds, 1),
        "client_cpu_pct": round(100 * (cpu1 - cpu_w) / args.seconds, 1),
        "client_cpu_pct_with_warmup": round(100 * (cpu1 - cpu0) / busy, 1),
        "server_cpu_pct_with_warmup": round(100 * (server_cpu1 - server_cpu0) / busy, 1),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    report = await run(args)
    print(
        f"chat message -> peer at {report['rate_offered']:.0f}/s offered"
        f" ({report['pairs']} pairs, {report['seconds']} s):"
        f" p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms (target <= {TARGET_P99_MS}),"
        f" max {report['max_ms']} ms; {report['delivered']}/{report['messages']} delivered,"
        f" {report['errors']} errors; {report['commits_note']};"
        f" server CPU {report['server_cpu_pct']}%,"
        f" client CPU {report['client_cpu_pct']}%"
        + (" (the client set the pace)" if report["client_cpu_pct"] > 70 else "")
    )
    if args.json:
        _write(args.json, report)
    return report


def _write(path: str, report: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
