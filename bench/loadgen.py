"""Load generator processes: several sockets each, one request in flight per socket.

`generate` starts them (spawned, so each is a fresh interpreter with its own core to
use), waits until every socket is logged in, then gives them all one measuring window
on the system-wide monotonic clock. Each counts the requests answered inside the window,
their latencies, and its own CPU seconds over the window.

The load must cost less than what it measures: on two cores every microsecond a client
spends is taken from the server, or, pinned (`bench.cores`), sets the pace. So the
sockets are `bench.thin`'s (websockets' own client spent about 30 us of Python a round
trip, more than either server under test) and the processes run on uvloop where it is
installed: two clients on asyncio's loop sharing one core filled it, and lovewire's ping
ratio came out at 0.64 or 0.88 by the run; on uvloop they leave a fifth of it free.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from bench.common import raise_fd_limit
from bench.thin import ThinSocket, call_thin, connect_thin
from lovewire import eventloop


@dataclass
class Job:
    """What one generator process does: `scenario` is "ping" or "like".

    A socket whose token is "" stays anonymous (the bare echo server knows no login).
    """

    url: str
    tokens: list[str]
    scenario: str
    pictures: list[str] = field(default_factory=list)
    #: The cores the process runs on (`bench.cores`); None: wherever the system likes.
    cores: frozenset[int] | None = None


@dataclass
class Window:
    start: float
    end: float


@dataclass
class Tally:
    """One process's figures. Likes are counted over the whole run, window or not."""

    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0
    first_likes: int = 0
    repeat_likes: int = 0


async def _request(ws: ThinSocket, frame: dict[str, str], window: Window, tally: Tally) -> bool:
    """One round trip; False once the window is over (nothing sent then)."""
    sent = time.monotonic()
    if sent >= window.end:
        return False
    reply = await call_thin(ws, frame)
    done = time.monotonic()
    if not reply.get("success", True):  # an echo server's reply has no "success"
        tally.errors += 1
    if window.start <= done <= window.end:
        tally.requests += 1
        tally.latencies.append(done - sent)
    return True


async def _pings(ws: ThinSocket, _n: int, job: Job, window: Window, tally: Tally) -> None:
    while await _request(ws, {"type": "ping_request"}, window, tally):
        pass


async def _likes(ws: ThinSocket, n: int, job: Job, window: Window, tally: Tally) -> None:
    """Like then unlike each picture in turn, from a different one per socket.

    Only a user's first like of a picture pushes to its owner (a later one pushes
    nothing new): one pass over the pictures keeps every like a first one.
    """
    for i in range(n, n + 10**9):
        frame = {"picture_id": job.pictures[i % len(job.pictures)]}
        if not await _request(ws, {"type": "picture_like_request", **frame}, window, tally):
            return
        if i - n < len(job.pictures):
            tally.first_likes += 1
        else:
            tally.repeat_likes += 1
        if not await _request(ws, {"type": "picture_unlike_request", **frame}, window, tally):
            return


_Loop = Callable[[ThinSocket, int, Job, Window, Tally], Awaitable[None]]
SCENARIOS: dict[str, _Loop] = {"ping": _pings, "like": _likes}


async def _run(job: Job, conn: Connection) -> Tally:
    loop = SCENARIOS[job.scenario]
    sockets = [await connect_thin(job.url) for _ in job.tokens]
    for ws, token in zip(sockets, job.tokens, strict=True):
        if token:
            assert (await call_thin(ws, {"type": "auth_request", "token": token}))["success"]
    conn.send("ready")
    window = Window(*await asyncio.to_thread(conn.recv))
    tally = Tally()

    async def cpu_over_window() -> None:
        await asyncio.sleep(window.start - time.monotonic())
        before = time.process_time()
        await asyncio.sleep(window.end - time.monotonic())
        tally.cpu = time.process_time() - before

    await asyncio.gather(
        cpu_over_window(),
        *(
            loop(ws, n * len(job.pictures) // len(sockets), job, window, tally)
            for n, ws in enumerate(sockets)
        ),
    )
    for ws in sockets:
        await ws.close()
    return tally


def _main(job: Job, conn: Connection) -> None:
    """The body of one generator process."""
    if job.cores is not None:
        os.sched_setaffinity(0, job.cores)
    raise_fd_limit()
    # The cheapest loop installed: the load's own cost is not what is measured.
    conn.send(eventloop.run(_run(job, conn), eventloop.loop_factory("auto")))


async def generate(
    jobs: list[Job], warmup: float, seconds: float, at_window: Callable[[Window], Awaitable[None]]
) -> list[Tally]:
    """Run one process per job; `at_window` runs in this process over the window."""
    spawn = multiprocessing.get_context("spawn")
    conns, procs = [], []
    try:
        for job in jobs:
            mine, theirs = spawn.Pipe()
            proc = spawn.Process(target=_main, args=(job, theirs), daemon=True)
            proc.start()
            theirs.close()
            conns.append(mine)
            procs.append(proc)
        for conn in conns:
            assert await asyncio.to_thread(conn.recv) == "ready"
        start = time.monotonic() + warmup
        window = Window(start, start + seconds)
        for conn in conns:
            conn.send((window.start, window.end))
        await at_window(window)
        return [await asyncio.to_thread(conn.recv) for conn in conns]
    finally:
        for proc in procs:
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.kill()
