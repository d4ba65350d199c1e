"""Like -> owner's push under an open-loop like rate, with many other sockets connected.

One client process holds the likers and the owners together, so that a like's send time
and its push's arrival are read on one clock in one process; the other sockets (idle,
logged in) are held by `bench.suite.sockets.hold` in another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.common import call, register_many, start_server
from bench.compare import upload
from bench.metrics import Commits, scrape
from bench.suite.core import DISK_STALL, Agent, Result, Suite, client_cpu_note, percentile
from bench.suite.sockets import USERS, hold

__all__ = ["push"]

OWNERS = 20
LIKERS = 100
PICTURES = 100


async def likes(
    conn: Connection,
    url: str,
    likers: list[tuple[str, str]],
    owners: list[str],
    pictures: list[str],
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """Agent: send first likes at `rate` a second for `seconds` (open loop: on schedule,
    whatever the answers), each (liker, picture) pair once; the owners' sockets note
    when each push arrives."""
    sent: dict[tuple[str, str], float] = {}
    arrived: dict[tuple[str, str], float] = {}
    answers = {"ok": 0, "failed": 0}
    total = min(int(rate * seconds), len(likers) * len(pictures))
    all_arrived = asyncio.Event()

    async def login(token: str) -> ClientConnection:
        ws = await connect(url, ping_interval=None)
        assert (await call(ws, {"type": "auth_request", "token": token}))["success"]
        return ws

    liker_ws = [await login(token) for token, _ in likers]
    owner_ws = [await login(token) for token in owners]

    async def owner_reads(ws: ClientConnection) -> None:
        async for raw in ws:
            got = time.monotonic()
            frame = json.loads(raw)
            if frame["type"] == "picture_like_notify":
                arrived[str(frame["picture_id"]), str(frame["user_id"])] = got
                if len(arrived) >= total:
                    all_arrived.set()

    async def liker_reads(ws: ClientConnection) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "picture_like_response":
                answers["ok" if frame["success"] else "failed"] += 1

    readers = [asyncio.create_task(owner_reads(ws)) for ws in owner_ws]
    readers += [asyncio.create_task(liker_reads(ws)) for ws in liker_ws]
    conn.send(("ready",))
    await asyncio.to_thread(conn.recv)
    start, cpu0 = time.monotonic(), time.process_time()
    i = 0
    while i < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while i < due:
            k, p = i % len(likers), i // len(likers)
            picture = pictures[p]
            sent[picture, likers[k][1]] = time.monotonic()
            await liker_ws[k].send(
                json.dumps({"type": "picture_like_request", "picture_id": picture})
            )
            i += 1
        await asyncio.sleep(0.001)
    sending = time.monotonic() - start
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_arrived.wait(), 15)
    cpu = (time.process_time() - cpu0) / (time.monotonic() - start) * 100
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in liker_ws + owner_ws), return_exceptions=True)
    latencies = [arrived[k] - sent[k] for k in sent if k in arrived]
    last = max(arrived.values(), default=start)
    return {
        "pushed_per_s": len(arrived) / (last - start) if last > start else 0.0,
        "likes": total,
        "sending_s": sending,
        "latencies": latencies,
        "pushes": len(latencies),
        "answers": answers,
        "cpu_pct": cpu,
    }


async def push(suite: Suite) -> Result:
    """p99 of like sent -> owner's push received, at the offered rate."""
    sizes = suite.sizes
    server = await start_server("--uploads-per-hour", "1000000")
    agents: list[Agent] = []
    try:
        users = await register_many(server, OWNERS + LIKERS + USERS, start=13500000000)
        owners, likers = users[:OWNERS], users[OWNERS : OWNERS + LIKERS]
        others = [u["token"] for u in users[OWNERS + LIKERS :]]
        pictures = await upload(server, owners, PICTURES)
        idle = max(0, sizes.push_sockets - OWNERS - LIKERS)
        if idle:
            agents.append(Agent(hold, server.ws_url, others, idle))
            await agents[0].recv(300)
        liker = Agent(
            likes,
            server.ws_url,
            [(u["token"], str(u["user_id"])) for u in likers],
            [u["token"] for u in owners],
            pictures,
            sizes.push_rate,
            sizes.push_seconds,
        )
        await liker.recv(120)
        scraped = await scrape(server.http_url)
        liker.send("go")
        got = await liker.result(120)
        commits = Commits.between(scraped, await scrape(server.http_url))
        cpu = [got["cpu_pct"]]
        for agent in agents:
            agent.send(("close",))
            cpu.append((await agent.result())["cpu_pct"])
    finally:
        await server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)
    lat = [x * 1000 for x in got["latencies"]]
    p99 = percentile(lat, 0.99) if lat else float("nan")
    achieved = got["likes"] / got["sending_s"]
    lost = got["likes"] - got["pushes"]
    notes = [
        f"{OWNERS + LIKERS + idle:,} sockets; {got['likes']:,} likes offered at "
        f"{achieved:,.0f}/s, pushed at {got['pushed_per_s']:,.0f}/s; "
        f"p50 {statistics.median(lat) if lat else float('nan'):.1f} ms"
    ]
    if lost:
        notes.append(f"{lost} pushes not received within 15 s")
    if got["answers"]["failed"]:
        notes.append(f"{got['answers']['failed']} likes failed")
    notes.append(commits.describe())
    met = bool(lat) and p99 <= 50 and not lost
    if not met and commits.slow:
        notes.append(DISK_STALL)
    notes.append(client_cpu_note(cpu))
    return Result(
        "push",
        p99,
        "ms (p99)",
        "<= 50",
        met,
        "; ".join(n for n in notes if n),
        {
            "sockets": OWNERS + LIKERS + idle,
            "likes": got["likes"],
            "offered_rate": sizes.push_rate,
            "achieved_rate": achieved,
            "pushed_rate": got["pushed_per_s"],
            "p50_ms": statistics.median(lat) if lat else None,
            "p99_ms": p99 if lat else None,
            "max_ms": max(lat, default=None),
            "pushes_received": got["pushes"],
            "answers": got["answers"],
            "client_cpu_pct": cpu,
            "commits": commits.count,
            "commits_slow": commits.slow,
            "longest_commit_ms": 1000 * commits.longest,
        },
    )
