"""Many sockets at once: idle memory, `system_notify` fan-out, reconnect with replay.

The sockets live in spawned client processes (`hold`, `replay`), each recording
`time.monotonic()` (system-wide, so comparable with this process's) when a frame of
interest arrives.
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

import aiohttp
from websockets.asyncio.client import connect

from bench.common import BenchServer, call, register_many, start_server
from bench.compare import upload
from bench.suite.core import Agent, Result, Suite, client_cpu_note, cpu_pct_since
from bench.thin import ThinSocket, call_thin, connect_thin

__all__ = ["idle", "notify", "reconnect"]

#: Sockets per client process: far below the fd limit of 20,000 a process has here.
PER_PROCESS = 5000
#: The users whose tokens the held sockets log in with.
USERS = 50


async def _command(conn: Connection) -> Any:
    while not await asyncio.to_thread(conn.poll, 0.5):
        pass
    return conn.recv()


async def hold(conn: Connection, url: str, tokens: list[str], count: int) -> dict[str, float]:
    """Agent: hold `count` logged-in sockets, tell when each got a `system_notify`.

    Commands: ("report", msg, timeout) answers ("report", received, last arrival, first);
    ("close",) ends it. Thin sockets (`bench.thin`): reading a frame costs the generator
    a few microseconds, so the server sets the pace.
    """
    sem = asyncio.Semaphore(100)  # a gentle opening: the listen backlog is not measured here
    arrivals: dict[str, list[float]] = {}
    complete: dict[str, asyncio.Event] = {}
    sockets: list[ThinSocket] = []

    #: One broadcast's frame is the same bytes on every socket: parsed once.
    msg_of: dict[bytes, str] = {}

    def arrived(payload: bytes) -> None:
        if b'"system_notify"' in payload:
            got = time.monotonic()
            msg = msg_of.get(payload)
            if msg is None:
                msg = msg_of[payload] = json.loads(payload)["msg"]
            arrivals.setdefault(msg, []).append(got)
            if len(arrivals[msg]) >= count:
                complete.setdefault(msg, asyncio.Event()).set()

    async def open_one(i: int) -> None:
        async with sem:
            ws = await connect_thin(url)
            reply = await call_thin(ws, {"type": "auth_request", "token": tokens[i % len(tokens)]})
            assert reply["success"], reply
            ws.on_text = arrived
            sockets.append(ws)

    await asyncio.gather(*(open_one(i) for i in range(count)))
    conn.send(("ready", len(sockets)))
    wall0, cpu0 = time.monotonic(), time.process_time()
    while (cmd := await _command(conn))[0] == "report":
        _, msg, within = cmd
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(complete.setdefault(msg, asyncio.Event()).wait(), within)
        mine = arrivals.get(msg, [])
        conn.send(("report", len(mine), max(mine, default=0.0), min(mine, default=0.0)))
    cpu = cpu_pct_since(wall0, cpu0)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {"cpu_pct": cpu}


async def _holders(server: BenchServer, tokens: list[str], count: int) -> tuple[list[Agent], int]:
    """Client processes holding `count` sockets logged in with the given tokens."""
    agents = []
    for n in range(0, count, PER_PROCESS):
        agents.append(Agent(hold, server.ws_url, tokens, min(PER_PROCESS, count - n)))
    opened = sum([(await a.recv(300))[1] for a in agents])
    return agents, opened


async def _close(agents: list[Agent]) -> list[float]:
    for agent in agents:
        agent.send(("close",))
    return [(await agent.result())["cpu_pct"] for agent in agents]


async def _tokens(server: BenchServer) -> list[str]:
    return [u["token"] for u in await register_many(server, USERS, start=13300000000)]


async def idle(suite: Suite) -> Result:
    """Server RSS growth per idle logged-in socket."""
    count = suite.sizes.idle_sockets
    server = await start_server()
    try:
        tokens = await _tokens(server)
        await asyncio.sleep(0.5)
        before = server.rss_kib()
        agents, opened = await _holders(server, tokens, count)
        await asyncio.sleep(1)
        after = server.rss_kib()
        cpu = await _close(agents)
    finally:
        await server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)
    per = (after - before) / opened
    return Result(
        "idle",
        per,
        "KiB/socket",
        "<= 18",
        per <= 18,
        f"{opened:,} sockets, {USERS} users: server RSS {before / 1024:,.0f} -> "
        f"{after / 1024:,.0f} MiB",
        {
            "sockets": opened,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "client_cpu_pct": cpu,
        },
    )


async def notify(suite: Suite) -> Result:
    """POST /admin/broadcast from loopback; time until the last socket got it."""
    count, repeats = suite.sizes.notify_sockets, suite.sizes.notify_repeats
    server = await start_server()
    try:
        agents, opened = await _holders(server, await _tokens(server), count)
        times, firsts, server_ms, missing = [], [], [], 0
        async with aiohttp.ClientSession() as http:
            for n in range(repeats):
                await asyncio.sleep(0.2)
                msg = f"bench {n}"
                cpu0 = server.own_cpu_seconds()
                sent = time.monotonic()
                async with http.post(f"{server.http_url}/admin/broadcast", json={"msg": msg}) as r:
                    assert r.status == 200, await r.text()
                server_ms.append((server.own_cpu_seconds() - cpu0) * 1000)
                for agent in agents:
                    agent.send(("report", msg, 30.0))
                reports = [await agent.recv() for agent in agents]
                missing += opened - sum(r[1] for r in reports)
                times.append((max(r[2] for r in reports) - sent) * 1000)
                firsts.append((min(r[3] for r in reports) - sent) * 1000)
        cpu = await _close(agents)
    finally:
        await server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)
    median = statistics.median(times)
    notes = [
        f"{opened:,} sockets, {repeats} broadcasts: max {max(times):.0f} ms; "
        f"first socket's at {statistics.median(firsts):.0f} ms; "
        f"server CPU {statistics.median(server_ms):.0f} ms a broadcast"
    ]
    if missing:
        notes.append(f"{missing} deliveries missing after 30 s")
    notes.append(client_cpu_note(cpu))
    return Result(
        "notify",
        median,
        "ms (median)",
        "<= 250",
        median <= 250 and not missing,
        "; ".join(n for n in notes if n),
        {
            "sockets": opened,
            "all_delivered_ms": times,
            "first_delivered_ms": firsts,
            "server_cpu_ms": server_ms,
            "median_ms": median,
            "max_ms": max(times),
            "missing": missing,
            "client_cpu_pct": cpu,
        },
    )


async def replay(
    conn: Connection, url: str, plan: list[tuple[str, int]], owed: int
) -> dict[str, Any]:
    """Agent: at the start time, connect every socket at once and log in with
    `last_seq`; the time each had its `auth_response` and all `owed` pushes."""
    conn.send(("ready",))
    start = (await _command(conn))[1]
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    cpu0 = time.process_time()

    async def one(token: str, last_seq: int) -> float | str:
        try:
            ws = await connect_thin(url)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        try:
            ws.send_text(json.dumps({"type": "auth_request", "token": token, "last_seq": last_seq}))
            answered, pushes = False, 0
            while not answered or pushes < owed:
                got = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if got["type"] == "auth_response":
                    if not got["success"]:
                        return f"auth failed: {got}"
                    answered = True
                elif got["type"] == "picture_like_notify" and got["seq"] > last_seq:
                    pushes += 1
            return time.monotonic()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            await ws.close()

    done = await asyncio.gather(*(one(t, s) for t, s in plan))
    cpu = (time.process_time() - cpu0) / max(1e-9, time.monotonic() - start) * 100
    times = [d for d in done if isinstance(d, float)]
    errors = [d for d in done if isinstance(d, str)]
    return {"times": times, "errors": errors[:5], "failed": len(errors), "cpu_pct": cpu}


async def _owe_pushes(server: BenchServer, users: list[dict[str, Any]], owed: int) -> None:
    """Each user gets a picture, liked by the `owed` users after it (round the ring)."""
    pictures = await upload(server, users, len(users))  # picture k is users[k]'s

    async def liker(k: int) -> None:
        async with connect(server.ws_url, ping_interval=None) as ws:
            await call(ws, {"type": "auth_request", "token": users[k]["token"]})
            for d in range(1, owed + 1):
                frame = {"type": "picture_like_request", "picture_id": pictures[k - d]}
                reply = await call(ws, frame)
                assert reply["success"], reply

    sem = asyncio.Semaphore(50)

    async def limited(k: int) -> None:
        async with sem:
            await liker(k)

    await asyncio.gather(*(limited(k) for k in range(len(users))))


async def _current_seq(server: BenchServer, token: str) -> int:
    async with connect(server.ws_url, ping_interval=None) as ws:
        reply = await call(ws, {"type": "auth_request", "token": token})
        return int(reply["last_seq"])


async def reconnect(suite: Suite) -> Result:
    """Every socket reconnects at once with `last_seq`; time until all are replayed."""
    sizes = suite.sizes
    owed = min(sizes.reconnect_owed, sizes.reconnect_users - 1)
    server = await start_server("--uploads-per-hour", "1000000")
    try:
        users = await register_many(server, sizes.reconnect_users, start=13400000000)
        await _owe_pushes(server, users, owed)
        sem = asyncio.Semaphore(50)

        async def seq(u: dict[str, Any]) -> int:
            async with sem:
                return await _current_seq(server, u["token"])

        seqs = await asyncio.gather(*(seq(u) for u in users))
        plan = [
            (u["token"], s - owed)
            for u, s in zip(users, seqs, strict=True)
            for _ in range(sizes.reconnect_per_user)
        ]
        halves = [plan[: len(plan) // 2], plan[len(plan) // 2 :]]
        agents = [Agent(replay, server.ws_url, part, owed) for part in halves if part]
        for agent in agents:
            await agent.recv()
        start = time.monotonic() + 0.5
        for agent in agents:
            agent.send(("start", start))
        results = [await agent.result(300) for agent in agents]
    finally:
        await server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)
    times = [t for r in results for t in r["times"]]
    failed = sum(r["failed"] for r in results)
    last = (max(times) - start) if times else float("nan")
    cpu = [r["cpu_pct"] for r in results]
    notes = [
        f"{len(plan):,} sockets ({len(users)} users x {sizes.reconnect_per_user}), "
        f"{owed} pushes owed each; p50 socket {(statistics.median(times) - start):.2f} s"
        if times
        else "no socket came back",
    ]
    if failed:
        notes.append(f"{failed} sockets failed")
    notes.append(client_cpu_note(cpu))
    return Result(
        "reconnect",
        last,
        "s",
        "<= 10",
        bool(times) and last <= 10 and not failed,
        "; ".join(n for n in notes if n),
        {
            "sockets": len(plan),
            "owed": owed,
            "all_back_s": last,
            "failed": failed,
            "errors": [e for r in results for e in r["errors"]][:5],
            "client_cpu_pct": cpu,
        },
    )
