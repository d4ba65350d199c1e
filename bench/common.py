"""Shared bench helpers: start a real server process, register users through the real flow."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

LISTENING = re.compile(r"^lovewire listening ws://([\d.]+):(\d+) http://([\d.]+):(\d+)$")
CODE = re.compile(r"^lovewire sms to (\S+): code (\d{6})$")

#: Flags that lift the anti-pumping limits, so that a bench can register many users.
BENCH_FLAGS = [
    "--sms-interval",
    "0",
    "--sms-tel-hourly",
    "1000000",
    "--sms-tel-daily",
    "1000000",
    "--sms-addr-hourly",
    "100000000",
    "--sms-global-hourly",
    "100000000",
    "--requests-per-second",
    "1000000",
    "--sockets-per-user",
    "100000",
    "--sockets-per-addr",
    "1000000",
    "--log-level",
    "warning",
]


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass
class BenchServer:
    proc: asyncio.subprocess.Process
    ws_url: str
    http_url: str
    codes: dict[str, asyncio.Future[str]]
    data_dir: str = ""

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the server and the processes it started, alive.

        It walks /proc: tens of milliseconds, which stall a caller's event loop. A
        process that measures latency meanwhile takes `own_cpu_seconds` instead.
        """
        return sum(_cpu_seconds(pid) for pid in _descendants(self.proc.pid))

    def own_cpu_seconds(self) -> float:
        """CPU seconds used so far by the server process alone: one file read."""
        return _cpu_seconds(self.proc.pid)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                _kill_group(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        STARTED.discard(self.proc)


#: Every server process started here and not stopped yet: `kill_started` ends them.
STARTED: set[asyncio.subprocess.Process] = set()
#: Every data dir made for a server here: `remove_data_dirs` removes those left over.
DATA_DIRS: set[str] = set()


def _kill_group(pid: int, sig: signal.Signals) -> None:
    """Signal a process started in its own session, and everything it started."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_started() -> None:
    """End every server process still running (and its workers): at exit or Ctrl-C."""
    for proc in list(STARTED):
        if proc.returncode is None:
            _kill_group(proc.pid, signal.SIGKILL)
        STARTED.discard(proc)


def remove_data_dirs() -> None:
    """Remove the data dirs made here that are still there (after Ctrl-C, say)."""
    for path in list(DATA_DIRS):
        shutil.rmtree(path, ignore_errors=True)
        DATA_DIRS.discard(path)


def machine_cpu_seconds() -> float:
    """CPU seconds spent so far by the whole machine, all cores and processes together."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    # user nice system idle iowait irq softirq steal: all but idle and iowait is work.
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


#: The process names (/proc/PID/comm) of the services a deployment may use.
SERVICES = ("postgres", "redis-server")


def services_cpu_seconds() -> float:
    """CPU seconds used so far by the PostgreSQL and Redis processes of this host.

    A backend that exits (its pool closed) counts once its parent, the postmaster, has
    reaped it (`cutime`/`cstime`): without those, the workers row's backends, gone at
    its end, were counted as the machine being busy elsewhere.
    """
    total = 0.0
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:  # ended meanwhile
            continue
        if name in SERVICES:
            total += _cpu_seconds(int(comm.parent.name), reaped=True)
    return total


def _descendants(root: int) -> list[int]:
    """`root` and every live process below it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu_seconds() -> float:
    """CPU seconds used so far by this process and everything it started, ended or not.

    Ended children count once reaped (`cutime`/`cstime`), through whichever of this
    process's descendants reaped them.
    """
    total = 0.0
    for pid in _descendants(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime: fields 14 to 17 of proc(5).
        total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def _cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """CPU seconds of process `pid`; with `reaped`, its ended children's too."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime (cutime, cstime): fields 14 to 17 of proc(5), after the ")" of the name.
    return sum(int(f) for f in fields[11 : 15 if reaped else 13]) / os.sysconf("SC_CLK_TCK")


async def start_server(
    *extra: str,
    python: str | None = None,
    env: dict[str, str] | None = None,
    data_dir: str | None = None,
) -> BenchServer:
    """Start `lovewire serve` on free ports with a fresh data dir and `BENCH_FLAGS`.

    `data_dir`: an existing one instead (a seeded database, say).

    `python` is the interpreter to run it with (default: this one). A given interpreter
    runs in the data dir, so that it imports its own installed build of lovewire, never
    the sources of the current directory. `env` is added to this process's environment.
    """
    data = data_dir or tempfile.mkdtemp(prefix="lovewire-bench-")
    DATA_DIRS.add(data)
    proc = await asyncio.create_subprocess_exec(
        python or sys.executable,
        "-m",
        "lovewire.cli",
        "serve",
        "--ws-port",
        "0",
        "--http-port",
        "0",
        "--data-dir",
        data,
        *BENCH_FLAGS,
        *extra,
        stdout=asyncio.subprocess.PIPE,
        limit=2**20,
        cwd=data if python else None,
        env={**os.environ, **env} if env else None,
        start_new_session=True,
    )
    STARTED.add(proc)
    assert proc.stdout is not None
    match = LISTENING.match((await proc.stdout.readline()).decode().strip())
    assert match, "server did not start"
    server = BenchServer(
        proc, f"ws://127.0.0.1:{match.group(2)}", f"http://127.0.0.1:{match.group(4)}", {}, data
    )
    asyncio.get_running_loop().create_task(_read_codes(server))
    return server


async def _read_codes(server: BenchServer) -> None:
    assert server.proc.stdout is not None
    while line := await server.proc.stdout.readline():
        match = CODE.match(line.decode().strip())
        if match:
            fut = server.codes.setdefault(
                match.group(1), asyncio.get_running_loop().create_future()
            )
            if not fut.done():
                fut.set_result(match.group(2))


async def call(ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(frame))
    while True:
        reply = json.loads(await ws.recv())
        if not reply["type"].endswith("_notify"):
            return reply  # type: ignore[no-any-return]


async def register(server: BenchServer, tel: str, nickname: str = "bench") -> dict[str, Any]:
    """Register one user through SMS and registration; return the registration result."""
    async with connect(server.ws_url) as ws:
        fut = server.codes.setdefault(tel, asyncio.get_running_loop().create_future())
        sent = await call(ws, {"type": "sms_validation_request", "tel": tel})
        assert sent["success"], sent
        code = await asyncio.wait_for(fut, 10)
        ticket = await call(ws, {"type": "sms_validation_code", "code": code})
        reg = await call(
            ws,
            {
                "type": "user_register_info",
                "token": ticket["token"],
                "nickname": nickname,
                "sex": 1,
                "birthday": "1990-1-1",
            },
        )
        assert reg["success"], reg
        return reg


async def register_many(
    server: BenchServer, count: int, start: int = 13000000000
) -> list[dict[str, Any]]:
    sem = asyncio.Semaphore(50)

    async def one(i: int) -> dict[str, Any]:
        async with sem:
            return await register(server, str(start + i), f"u{i}")

    return list(await asyncio.gather(*(one(i) for i in range(count))))
