"""What every scenario of `python -m bench` shares: sizes, results, helper processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bench.common import raise_fd_limit

__all__ = [
    "CLIENT_CPU_LIMIT",
    "DISK_STALL",
    "Agent",
    "Result",
    "Sizes",
    "Suite",
    "client_cpu_note",
    "cpu_pct_since",
    "fsync_ms",
    "kill_agents",
    "percentile",
]

#: A load generator busier than this share of one core may have set the pace itself.
CLIENT_CPU_LIMIT = 70.0
#: The note of a latency row that missed while the server's commits were slow.
DISK_STALL = (
    "the disk held commits: every write waits for its fsync (docs/performance.md, 'Disk stalls')"
)


@dataclass
class Sizes:
    """The counts and windows of one run: full, `--quick`, or `--tiny` (the tests)."""

    mode: str
    rounds: int  # ping: rounds of echo then lovewire, alternated; the best of each counts
    seconds: float  # measuring window of ping and like
    warmup: float
    processes: int  # load generator processes of ping and like
    sockets: int  # sockets per generator process
    pictures: int  # pictures the like scenario walks through
    idle_sockets: int
    push_sockets: int
    push_rate: float
    push_seconds: float
    feed_posts: int
    feed_comments: int
    feed_big: int  # comments of the one big post among the newest
    feed_requests: int
    notify_sockets: int
    notify_repeats: int
    reconnect_users: int
    reconnect_per_user: int
    reconnect_owed: int

    @classmethod
    def of(cls, mode: str) -> Sizes:
        if mode == "full":
            return cls(
                mode, 3, 5.0, 1.0, 2, 25, 1500, 10_000, 5_000, 1000.0, 10.0,
                1_000_000, 5_000_000, 100_000, 2000, 10_000, 5, 500, 10, 20,
            )  # fmt: skip
        if mode == "quick":
            return cls(
                mode, 2, 2.0, 0.5, 2, 25, 600, 2_000, 1_000, 1000.0, 3.0,
                100_000, 500_000, 100_000, 500, 2_000, 5, 100, 10, 20,
            )  # fmt: skip
        return cls(
            mode, 1, 0.5, 0.2, 1, 3, 50, 40, 30, 100.0, 0.5,
            2_000, 10_000, 1_000, 50, 40, 2, 6, 2, 5,
        )  # fmt: skip


@dataclass
class Result:
    """One row of the table: `figure` in `unit` against `target`; `met` None: skipped."""

    name: str
    figure: float | None
    unit: str
    target: str
    met: bool | None
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Suite:
    """What a scenario gets: the sizes, the options, and what earlier scenarios found."""

    sizes: Sizes
    cache: str | None = None
    database_url: str = ""
    redis_url: str = ""
    found: dict[str, Any] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of the values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def client_cpu_note(cpu_pcts: list[float]) -> str:
    """A warning when a load generator used more than `CLIENT_CPU_LIMIT` % of a core."""
    busiest = max(cpu_pcts, default=0.0)
    if busiest > CLIENT_CPU_LIMIT:
        return f"WARNING: a client process used {busiest:.0f}% of a core (it may set the pace)"
    return ""


def fsync_ms(folder: str, times: int = 20) -> float:
    """The median time of a 4 KiB write and its fsync in `folder`: the disk's part of
    every durable commit."""
    path = os.path.join(folder, "fsync-probe")
    spent = []
    with open(path, "wb") as f:
        for _ in range(times):
            f.write(b"x" * 4096)
            t0 = time.perf_counter()
            f.flush()
            os.fsync(f.fileno())
            spent.append(time.perf_counter() - t0)
    os.unlink(path)
    return sorted(spent)[times // 2] * 1000


def cpu_pct_since(wall0: float, cpu0: float) -> float:
    """This process's CPU over the time since (`wall0`, `cpu0`), in % of one core."""
    wall = time.monotonic() - wall0
    return (time.process_time() - cpu0) / wall * 100 if wall > 0 else 0.0


# -- helper processes ---------------------------------------------------------------------

_AGENTS: set[Agent] = set()


def _agent_main(
    fn: Callable[..., Coroutine[Any, Any, Any]], conn: Connection, args: tuple[Any, ...]
) -> None:
    """The body of an agent process: run `fn(conn, *args)`, send back its result."""
    raise_fd_limit()
    try:
        conn.send(("result", asyncio.run(fn(conn, *args))))
    except BaseException:
        conn.send(("error", traceback.format_exc()))


class Agent:
    """A spawned client process running `fn(pipe, *args)`: a fresh interpreter, so that
    the clients never share a core's worth of Python with this process.

    `fn` talks to this process over the pipe: messages it sends come out of `recv`, and
    its return value comes out as the last message ("result", value).
    """

    def __init__(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.conn, theirs = spawn.Pipe()
        self.proc: BaseProcess = spawn.Process(
            target=_agent_main, args=(fn, theirs, args), daemon=True
        )
        self.proc.start()
        theirs.close()
        _AGENTS.add(self)

    def send(self, message: Any) -> None:
        self.conn.send(message)

    async def recv(self, within: float = 120.0) -> Any:
        """The next message, within `within` seconds; an error of the agent is raised here."""
        deadline = time.monotonic() + within
        while not await asyncio.to_thread(self.conn.poll, 0.2):
            if time.monotonic() > deadline:
                raise TimeoutError(f"a client process said nothing for {within:.0f} s")
            if not self.proc.is_alive() and not self.conn.poll():
                raise RuntimeError(f"a client process died (exit code {self.proc.exitcode})")
        message = self.conn.recv()
        if isinstance(message, tuple) and message and message[0] == "error":
            raise RuntimeError(f"a client process failed:\n{message[1]}")
        return message

    async def result(self, within: float = 120.0) -> Any:
        """The agent's return value; then the process is gone."""
        message = await self.recv(within)
        while not (isinstance(message, tuple) and message and message[0] == "result"):
            message = await self.recv(within)
        await self.stop()
        return message[1]

    async def stop(self) -> None:
        await asyncio.to_thread(self.proc.join, 5)
        if self.proc.is_alive():
            self.proc.kill()
            await asyncio.to_thread(self.proc.join, 5)
        self.conn.close()
        _AGENTS.discard(self)


def kill_agents() -> None:
    """End every agent process still running."""
    for agent in list(_AGENTS):
        if agent.proc.is_alive():
            agent.proc.kill()
        _AGENTS.discard(agent)
