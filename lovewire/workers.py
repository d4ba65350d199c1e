"""`lovewire serve --workers N`: N server processes sharing both ports, supervised.

The supervisor reserves the two ports first: it binds (without listening) a socket with
SO_REUSEPORT on each, port 0 becoming a free port, and keeps them open as long as it
runs. A bound socket that does not listen is given no connection by the kernel, but it
holds the port: every worker, the first ones and any restarted later, binds the same
ports with SO_REUSEPORT, and no other program can take them in between.

Each worker is `python -m lovewire.cli serve --worker-of <supervisor pid>`, its settings
the supervisor's own, passed in its environment (never on its command line, which every
user of the host can read). A worker prints its listening line; the supervisor prints
the service's once every worker has, and forwards every other line of their standard
output unchanged. A worker that exits while the service runs is restarted, at once the
first time, then after a doubling delay while it keeps dying young. SIGTERM or SIGINT
is passed on to every worker as SIGTERM; those still running after
LOVEWIRE_SHUTDOWN_GRACE plus a margin are killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from lovewire.config import Settings
from lovewire.metrics import mark_process_dead, prepare_multiprocess_dir

__all__ = ["REFUSAL", "StartFailed", "Supervisor", "refusal", "supervise", "worker_environment"]

log = logging.getLogger(__name__)

REFUSAL = (
    "several workers share state through PostgreSQL and Redis:"
    " set LOVEWIRE_DATABASE_URL and LOVEWIRE_REDIS_URL"
)
#: What a worker prints once both its listeners are up (contract section 7).
LISTENING = b"lovewire listening "
#: Seconds given past LOVEWIRE_SHUTDOWN_GRACE before a worker still running is killed.
KILL_MARGIN = 5.0
#: The longest delay before a worker that keeps dying is started again, seconds.
RESTART_MAX = 30.0
#: A worker that ran this long before it exited is restarted at once.
STABLE_AFTER = 60.0


def refusal(settings: Settings) -> str | None:
    """Why these settings cannot run several workers; None if they can."""
    if settings.workers == 1:
        return None
    scheme = urlsplit(settings.database_url).scheme.lower()
    if scheme not in ("postgresql", "postgres") or not settings.redis_url:
        return REFUSAL
    return None


def worker_environment(
    settings: Settings, ws_port: int, http_port: int, metrics_dir: Path
) -> dict[str, str]:
    """The environment of a worker: this one, with every setting spelt out."""
    env = {k: v for k, v in os.environ.items() if k not in ("LOVEWIRE_CONFIG", "NOTIFY_SOCKET")}
    values = settings.model_dump(mode="json")
    values.update(ws_port=ws_port, http_port=http_port)
    for name, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        env[f"LOVEWIRE_{name.upper()}"] = text
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    return env


def reserve_port(host: str, port: int) -> tuple[int, list[socket.socket]]:
    """Bind, without listening, SO_REUSEPORT sockets on every address of host at port.

    Port 0 becomes a free port, the same on every address. Returns the port and the
    sockets, to keep open while workers bind it.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, type_, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, type_, proto)
            sockets.append(sock)
            # As asyncio's create_server sets them, so the workers' binds agree.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((address[0], port, *address[2:]))
            except OSError as exc:  # worded as asyncio words it for one process
                where = f"{address[0]}:{port}"
                raise OSError(exc.errno, f"cannot bind {where}: {exc.strerror}") from None
            port = int(sock.getsockname()[1])
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return port, sockets


def notify_systemd(state: str) -> None:
    """Tell systemd (Type=notify) the service's state, when it runs under it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("cannot notify systemd: %s", exc)


class StartFailed(Exception):
    """A worker exited before it ever listened: the settings or the host are at fault."""


class _Worker:
    """One worker slot: the process in it now, restarted when it exits."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.proc: asyncio.subprocess.Process | None = None
        self.listening = asyncio.Event()
        #: Exits in a row, each after less than STABLE_AFTER seconds.
        self.failures = 0


class Supervisor:
    """Start `settings.workers` workers on shared ports; keep them running until stopped."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ws_port = 0
        self.http_port = 0
        self.workers = [_Worker(n) for n in range(1, settings.workers + 1)]
        self._stopping = asyncio.Event()
        self._failed: BaseException | None = None
        self._env: dict[str, str] = {}
        self._metrics_dir = Path()

    @property
    def listening_line(self) -> str:
        host = self.settings.host
        return f"lovewire listening ws://{host}:{self.ws_port} http://{host}:{self.http_port}"

    def pids(self) -> list[int]:
        """The pids of the workers running now."""
        return [w.proc.pid for w in self.workers if w.proc and w.proc.returncode is None]

    def stop(self) -> None:
        """Begin the shutdown (SIGTERM, SIGINT)."""
        self._stopping.set()

    async def run(self) -> None:
        """Serve until stop(); raise OSError (or StartFailed) if the service cannot start."""
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self._metrics_dir = prepare_multiprocess_dir(configured or settings.data_dir / "metrics")
        with contextlib.ExitStack() as held:
            self.ws_port, sockets = reserve_port(settings.host, settings.ws_port)
            for sock in sockets:
                held.enter_context(sock)
            self.http_port, sockets = reserve_port(settings.host, settings.http_port)
            for sock in sockets:
                held.enter_context(sock)
            self._env = worker_environment(
                settings, self.ws_port, self.http_port, self._metrics_dir
            )
            tasks = [asyncio.create_task(self._keep(w)) for w in self.workers]
            for task in tasks:
                task.add_done_callback(self._kept)
            try:
                await self._serve()
            finally:
                self._stopping.set()
                await self._stop_workers(tasks)
        if self._failed is not None:
            raise self._failed

    def _kept(self, task: asyncio.Task[None]) -> None:
        """A slot's task ended: if it failed, the service stops (a fault of this module)."""
        if not task.cancelled() and task.exception() is not None and self._failed is None:
            self._failed = task.exception()
            self._stopping.set()

    async def _serve(self) -> None:
        ready = asyncio.create_task(self._all_listening())
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait([ready, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if self._stopping.is_set():
            stopping.cancel()
            return
        print(self.listening_line, flush=True)
        log.info("%s (%d workers: %s)", self.listening_line, len(self.workers), self.pids())
        notify_systemd("READY=1")
        await stopping
        notify_systemd("STOPPING=1")

    async def _all_listening(self) -> None:
        for worker in self.workers:
            await worker.listening.wait()

    async def _keep(self, worker: _Worker) -> None:
        """Run the worker, again each time it exits, until the service stops."""
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            started = loop.time()
            try:
                code = _status(await self._run_once(worker))
            except OSError as exc:  # no process could be started (fork, memory)
                code = str(exc)
            if self._stopping.is_set():
                return
            if not worker.listening.is_set():
                self._failed = StartFailed(
                    f"worker {worker.number} exited ({code}) before it listened; see its log above"
                )
                self._stopping.set()
                return
            lived = loop.time() - started
            worker.failures = worker.failures + 1 if lived < STABLE_AFTER else 1
            delay = 0.0 if worker.failures == 1 else min(RESTART_MAX, 2.0 ** (worker.failures - 2))
            log.error(
                "worker %d exited unexpectedly (%s) after %.0f s; restarting it in %.0f s",
                worker.number,
                code,
                lived,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _run_once(self, worker: _Worker) -> int:
        """Start the worker's process, forward its output, return its exit status."""
        proc = worker.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lovewire.cli",
            "serve",
            "--worker-of",
            str(os.getpid()),
            env=self._env,
            stdout=asyncio.subprocess.PIPE,
        )
        log.info("worker %d started (pid %d)", worker.number, proc.pid)
        if self._stopping.is_set():
            proc.terminate()
        await self._forward(worker, proc)
        code = await proc.wait()
        mark_process_dead(proc.pid, self._metrics_dir)
        log.info("worker %d (pid %d) exited: %s", worker.number, proc.pid, _status(code))
        return code

    async def _forward(self, worker: _Worker, proc: asyncio.subprocess.Process) -> None:
        """Pass the worker's output on until it closes, but for its listening line."""
        assert proc.stdout is not None
        listened = False
        out = sys.stdout.buffer
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError:  # a line past the stream's limit, dropped by it
                log.warning("worker %d wrote a line too long to pass on", worker.number)
                continue
            if not line:
                return
            if line.startswith(LISTENING) and not listened:
                listened = True
                worker.listening.set()
                log.debug("worker %d (pid %d) listening", worker.number, proc.pid)
                continue
            out.write(line)
            out.flush()

    async def _stop_workers(self, tasks: list[asyncio.Task[None]]) -> None:
        """SIGTERM every worker; SIGKILL those still running after the grace and margin."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        _, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace + KILL_MARGIN)
        if pending:
            for pid in self.pids():
                log.warning("worker pid %d still running after the grace: killed", pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.wait(pending)


def _status(code: int) -> str:
    """An exit status as a person reads it: `status 1`, `SIGKILL`."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
    return f"status {code}"


async def supervise(settings: Settings) -> None:
    """Run the workers until SIGTERM or SIGINT; OSError or StartFailed if they cannot start."""
    supervisor = Supervisor(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, supervisor.stop)
    await supervisor.run()
    log.info("stopped")
