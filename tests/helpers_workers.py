"""`lovewire serve --workers N` as a real process, and what the kernel says about it.

Which worker serves a socket is read from the kernel: the accepted socket's inode in
/proc/net/tcp, then the worker whose file descriptors hold it.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from tests.helpers_postgres import pg_schema
from tests.helpers_redis import TEST_REDIS_URL, redis_prefix

LISTENING = re.compile(rb"^lovewire listening ws://([\d.]+):(\d+) http://([\d.]+):(\d+)$")
#: Sockets opened at most to find one served by a given worker (the kernel spreads them).
TRIES = 100


def serve_argv(tmp_path: Path, *flags: str) -> list[str]:
    """`lovewire serve` on free ports, its data dir in tmp_path; flags come last and win."""
    script = Path(sys.executable).parent / "lovewire"
    lovewire = [str(script)] if script.exists() else [sys.executable, "-m", "lovewire.cli"]
    data = str(tmp_path / "data")
    return [*lovewire, "serve", "--ws-port", "0", "--http-port", "0", "--data-dir", data, *flags]


def serve_env(**settings: str) -> dict[str, str]:
    """This environment with LOVEWIRE_<NAME> for each setting, no metrics dir of its own."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    return {**env, **{f"LOVEWIRE_{k.upper()}": v for k, v in settings.items()}}


@asynccontextmanager
async def deployment() -> AsyncIterator[dict[str, str]]:
    """The settings of a deployment on PostgreSQL and Redis: a schema and a key prefix of
    the test's own, dropped afterwards."""
    async with pg_schema() as url, redis_prefix() as prefix:
        yield {"database_url": url, "redis_url": TEST_REDIS_URL, "redis_prefix": prefix}


def children(parent: int) -> set[int]:
    """The live child processes of parent, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == parent and state != "Z":
            found.add(int(entry.name))
    return found


def alive(pids: set[int]) -> set[int]:
    """The processes of pids still there (running or not yet reaped)."""
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


async def gone(pid: int) -> None:
    """Return once process pid (not necessarily a child) has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def serving_pid(client: int, server: int, pids: set[int]) -> int | None:
    """The one of pids holding the server side of the loopback IPv4 connection from port
    client to port server (accepted already)."""
    wanted = (f"0100007F:{server:04X}", f"0100007F:{client:04X}")
    inode = next(
        (
            fields[9]
            for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines())
            if (fields[1], fields[2]) == wanted
        ),
        None,
    )
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def ws_pid(ws: ClientConnection, pids: set[int]) -> int | None:
    """The one of pids holding the server side of ws."""
    return serving_pid(ws.local_address[1], ws.remote_address[1], pids)


class Service:
    """A running supervisor, its output read as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process, data: Path, notify: socket.socket) -> None:
        self.proc = proc
        self.data = data
        #: Where systemd would hear from it (NOTIFY_SOCKET).
        self.notify = notify
        self.ws_port = 0
        self.http_port = 0
        self.logs: asyncio.Queue[bytes] = asyncio.Queue()
        assert proc.stderr is not None
        self.reader = asyncio.create_task(self._read_logs(proc.stderr))

    async def _read_logs(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            await self.logs.put(line)

    async def line(self) -> bytes:
        """The next line of the supervisor's standard output."""
        assert self.proc.stdout is not None
        return (await asyncio.wait_for(self.proc.stdout.readline(), 30)).rstrip(b"\n")

    async def log(self, pattern: bytes) -> re.Match[bytes]:
        """The next log line (standard error, every process's) matching pattern."""
        while True:
            line = await asyncio.wait_for(self.logs.get(), 20)
            if match := re.search(pattern, line):
                return match

    def workers(self) -> set[int]:
        return children(self.proc.pid)

    async def socket_on(self, pid: int) -> ClientConnection:
        """A WebSocket served by worker pid: sockets are opened until the kernel picks it."""
        others = []
        try:
            for _ in range(TRIES):
                ws = await connect(f"ws://127.0.0.1:{self.ws_port}")
                if ws_pid(ws, {pid}) == pid:
                    return ws
                others.append(ws)
        finally:
            for other in others:
                await other.close()
        raise AssertionError(f"none of {TRIES} sockets was served by worker {pid}")

    async def healthz_on(self, pid: int) -> bytes:
        """GET /healthz on a keep-alive connection, until worker pid is the one that
        answered it (the kernel picks); its status line."""
        for _ in range(TRIES):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.http_port)
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: lovewire\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                assert length, head
                await reader.readexactly(int(length.group(1)))
                client = writer.get_extra_info("sockname")[1]
                if serving_pid(client, self.http_port, {pid}) == pid:
                    return head.split(b"\r\n", 1)[0]
            finally:
                writer.close()
                await writer.wait_closed()
        raise AssertionError(f"none of {TRIES} connections was served by worker {pid}")


@asynccontextmanager
async def start_service(
    tmp_path: Path, settings: dict[str, str], *flags: str, env: dict[str, str] | None = None
) -> AsyncIterator[Service]:
    """`lovewire serve --workers 2 [flags]` with these settings (LOVEWIRE_*) and env,
    listening and READY; SIGTERM at the end."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.setblocking(False)
    name = f"lovewire-test-{secrets.token_hex(8)}"
    notify.bind(f"\0{name}")  # an abstract address, `@name` in NOTIFY_SOCKET
    proc = await asyncio.create_subprocess_exec(
        *serve_argv(tmp_path, "--workers", "2", *flags),
        cwd=tmp_path,
        env={**serve_env(**settings), "NOTIFY_SOCKET": f"@{name}", **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    service = Service(proc, tmp_path / "data", notify)
    try:
        first = await service.line()
        match = LISTENING.match(first)
        assert match, first
        service.ws_port, service.http_port = int(match.group(2)), int(match.group(4))
        ready = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(notify, 64), 10)
        assert ready == b"READY=1"
        yield service
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        service.reader.cancel()
        notify.close()
