"""Decode pictures in worker processes, each decode under a budget of CPU, memory and time.

A picture is the one input a stranger sends that costs real work to check: a small file
can declare fifty megapixels, a hundred thousand frames or thousands of JPEG scans. So
the server never decodes one itself. `ImagePool` keeps a few worker processes (forked
from a clean forkserver that has Pillow loaded); each decodes one picture at a time with
- an address-space limit (`RLIMIT_AS`, the budget above what the worker had at start),
- a CPU limit (`RLIMIT_CPU`, moved forward before each picture: the kernel ends a worker
  that goes over with SIGXCPU),
- a wall-clock deadline after which the server kills the worker.
A worker that dies or is killed is replaced at the next picture and its picture refused
(error 11). At most `workers` pictures are decoded at once; a picture that waits longer
than `wait` for a free worker is refused with error 6. Workers start on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import pickle
import resource
import signal
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any

from lovewire.errors import Internal, PayloadRefused, TooFrequent
from lovewire.images import Limits, clean_picture

__all__ = ["ImagePool"]

log = logging.getLogger(__name__)

#: Pictures one worker decodes before it is replaced (memory fragmentation).
JOBS_PER_WORKER = 200


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection
    jobs: int = 0
    alive: bool = True
    retired: bool = False
    exit_code: int | None = None


class ImagePool:
    """A few worker processes that check and clean pictures under a budget."""

    def __init__(
        self,
        *,
        workers: int,
        wait: float,
        cpu_seconds: int,
        memory_bytes: int,
        deadline: float,
    ) -> None:
        self.size = workers if workers > 0 else max(1, min(4, os.cpu_count() or 1))
        self.wait = wait
        self.cpu_seconds = cpu_seconds
        self.memory_bytes = memory_bytes
        self.deadline = deadline
        #: Pictures decoded; workers killed or dead over a budget, and how each ended (for
        #: tests and metrics: -SIGXCPU over the CPU limit, -SIGKILL past the deadline).
        self.decoded = 0
        self.killed = 0
        self.exit_codes: deque[int | None] = deque(maxlen=100)
        self._mp: ForkServerContext | SpawnContext
        if "forkserver" in multiprocessing.get_all_start_methods():
            # Workers fork from a clean process that has Pillow loaded: fast to start.
            self._mp = multiprocessing.get_context("forkserver")
            self._mp.set_forkserver_preload(["lovewire.imagepool"])
        else:
            self._mp = multiprocessing.get_context("spawn")
        self._slots = asyncio.Semaphore(self.size)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(self.size, thread_name_prefix="lovewire-picture")
        self._closed = False

    @property
    def retry_after(self) -> int:
        """The longest a busy worker can stay busy: when to try again."""
        return max(1, math.ceil(self.deadline))

    async def clean(self, raw: bytes, declared: str | None, limits: Limits) -> tuple[str, bytes]:
        """Check and clean a picture in a worker; return (ext, bytes) or raise error 11 or 6."""
        if self._closed:
            raise Internal("shutting down")
        if self._slots.locked():
            try:
                async with asyncio.timeout(self.wait):
                    await self._slots.acquire()
            except TimeoutError:
                raise TooFrequent(self.retry_after, "every picture worker is busy") from None
        else:
            await self._slots.acquire()
        try:
            worker = self._idle.pop() if self._idle else None
        except BaseException:
            self._slots.release()
            raise
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._executor, self._run, worker, raw, declared, limits)
        job.add_done_callback(self._finished)
        # A cancelled request leaves the job running to its end: the slot stays taken until then.
        worker, outcome = await asyncio.shield(job)
        if outcome[0] == "ok":
            self.decoded += 1
            return outcome[1], outcome[2]
        raise PayloadRefused(outcome[1])

    def _finished(self, job: asyncio.Future[tuple[_Worker | None, tuple[Any, ...]]]) -> None:
        """On the loop, once a job has ended: give its worker and its slot back."""
        self._slots.release()
        if job.cancelled() or job.exception() is not None:
            return
        worker, _outcome = job.result()
        if worker is None:
            return
        if worker.alive and not self._closed and worker.jobs < JOBS_PER_WORKER:
            self._idle.append(worker)
        elif not worker.retired:
            with contextlib.suppress(RuntimeError):  # closing: close() reaps it
                self._executor.submit(self._retire, worker)

    def _start_worker(self) -> _Worker:
        ours, theirs = self._mp.Pipe()
        process = self._mp.Process(
            target=_serve,
            args=(theirs, self.cpu_seconds, self.memory_bytes),
            name="lovewire-picture",
            daemon=True,
        )
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        with self._lock:
            if self._closed:
                self._retire(worker)
                raise Internal("shutting down")
            self._all.add(worker)
        return worker

    def _run(
        self, worker: _Worker | None, raw: bytes, declared: str | None, limits: Limits
    ) -> tuple[_Worker | None, tuple[Any, ...]]:
        """In a thread: hand the picture to a worker and wait for it, at most the deadline."""
        if worker is None:
            worker = self._start_worker()
        worker.jobs += 1
        try:
            worker.conn.send_bytes(pickle.dumps((raw, declared, limits), protocol=5))
            if worker.conn.poll(self.deadline):
                reply = _decode_reply(worker.conn.recv_bytes())
                if reply[0] == "retire":
                    worker.alive = False
                    reply = ("refused", *reply[1:])
                return worker, reply
            why = "picture took too long to decode"
        except (EOFError, OSError):
            why = "picture went over its decoding budget"
        worker.alive = False
        self._retire(worker)
        self.killed += 1
        self.exit_codes.append(worker.exit_code)
        return worker, ("refused", why)

    def _retire(self, worker: _Worker) -> None:
        """Kill a worker and reap it; safe twice, from any thread."""
        with self._lock:
            if worker.retired:
                return
            worker.retired = True
            worker.alive = False
            self._all.discard(worker)
        with contextlib.suppress(Exception):
            worker.process.kill()
        worker.process.join(5)
        worker.exit_code = worker.process.exitcode
        with contextlib.suppress(Exception):
            worker.process.close()
        worker.conn.close()

    async def close(self) -> None:
        """Kill every worker (a decode in flight is refused) and wait for the threads."""
        with self._lock:
            self._closed = True
            workers = list(self._all)
        self._idle.clear()
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.process.kill()
        await asyncio.to_thread(self._executor.shutdown)
        for worker in workers:
            await asyncio.to_thread(self._retire, worker)


#: A worker's answer, as bytes (never a pickle: the worker is the process that parses
#: hostile pictures, and must not be able to make the server run code): one kind byte,
#: then for "ok" the extension, a NUL and the picture, else the reason in UTF-8.
_KINDS = {"ok": b"o", "refused": b"r", "retire": b"x"}
_EXTENSIONS = frozenset({"jpg", "png", "gif", "webp"})


def _encode_reply(reply: tuple[Any, ...]) -> bytes:
    kind = _KINDS[reply[0]]
    if reply[0] == "ok":
        return kind + str(reply[1]).encode("ascii") + b"\0" + bytes(reply[2])
    return kind + str(reply[1]).encode("utf-8", "replace")


def _decode_reply(data: bytes) -> tuple[Any, ...]:
    """A worker's answer; anything not of the format is a refusal."""
    kind, body = data[:1], data[1:]
    if kind == b"o":
        ext, sep, picture = body.partition(b"\0")
        name = ext.decode("ascii", "replace")
        if sep and name in _EXTENSIONS and picture:
            return ("ok", name, picture)
    elif kind in (b"r", b"x"):
        reason = body[:200].decode("utf-8", "replace") or "not a valid image"
        return ("refused" if kind == b"r" else "retire", reason)
    return ("retire", "not a valid image")


def _vm_size() -> int:
    """This process's address space, bytes (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _serve(conn: Connection, cpu_seconds: int, memory_bytes: int) -> None:
    """A worker's life: decode pictures one at a time until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server ends its workers itself
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    base = _vm_size()
    if base and memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (base + memory_bytes, base + memory_bytes))
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    while True:
        try:
            raw, declared, limits = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        allowed = math.ceil(usage.ru_utime + usage.ru_stime) + cpu_seconds
        if hard != resource.RLIM_INFINITY:
            allowed = min(allowed, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (allowed, hard))
        try:
            ext, data = clean_picture(raw, declared, limits)
            reply: tuple[Any, ...] = ("ok", ext, data)
        except PayloadRefused as refused:
            reply = ("refused", refused.detail or "not a valid image")
        except MemoryError:
            reply = ("retire", "picture too large to decode")
        except Exception:
            reply = ("retire", "not a valid image")
        del raw
        try:
            conn.send_bytes(_encode_reply(reply))
        except MemoryError:
            conn.send_bytes(_encode_reply(("retire", "picture too large to decode")))
        except (OSError, EOFError):
            return
        if reply[0] == "retire":
            return
