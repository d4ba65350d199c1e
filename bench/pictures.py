"""What hostile pictures cost the server: its CPU seconds and peak memory per attack.

    python -m bench.pictures [rounds] [png|gif|jpeg|semicolons ...]

Starts a real `lovewire serve` process per attack, registers one user, sends the attack
over HTTP (`POST /index.php?r=picture/upload`, the app's route) and reads the server
process's CPU time (utime + stime, /proc/<pid>/stat) and peak RSS (VmHWM,
/proc/<pid>/status); and the same for the whole process tree (the server, its
forkserver and picture workers, dead ones included through cutime): CPU summed, RSS
summed and sampled every 20 ms. The attacks:
- png: a 7000x7000 PNG of one colour (about 150 KB, 147 MB decoded), 12 at once;
- gif: a GIF of 100,000 one-pixel frames;
- jpeg: a progressive 4000x4000 JPEG whose last scan is repeated 2,000 times;
- semicolons: `data:` followed by 15 million semicolons (and a comma).
Each answer's error_no is printed; the server must still answer a ping afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import statistics
import struct
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image
from websockets.asyncio.client import connect

from bench.common import BenchServer, call, register, start_server

__all__ = ["big_png", "many_frame_gif", "repeated_scan_jpeg", "semicolon_uri"]


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def big_png(side: int = 7000) -> bytes:
    """A side x side RGB PNG of one colour: about 150 KB, 3 bytes a pixel once decoded."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00\x80\xff" * side
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def many_frame_gif(frames: int = 100_000) -> bytes:
    """A 1x1 GIF of `frames` frames, 23 bytes each."""
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    frame = (
        b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # graphic control: 10 ms
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
        + b"\x02\x02\x44\x01\x00"  # LZW: one pixel of colour 0
    )
    return head + loop + frame * frames + b"\x3b"


def repeated_scan_jpeg(side: int = 4000, repeats: int = 2000) -> bytes:
    """A progressive JPEG of one colour whose last scan (31 bytes) is repeated."""
    out = io.BytesIO()
    Image.new("RGB", (side, side), (40, 90, 200)).save(out, "JPEG", quality=90, progressive=True)
    raw = out.getvalue()
    eoi = raw.rfind(b"\xff\xd9")
    sos = raw.rfind(b"\xff\xda", 0, eoi)
    return raw[:eoi] + raw[sos:eoi] * repeats + raw[eoi:]


def semicolon_uri(count: int = 15_000_000, comma: bool = True) -> str:
    """`data:` and `count` semicolons, then a comma and a little base64 if `comma`."""
    return "data:" + ";" * count + (",AAAA" if comma else "")


def data_uri(raw: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def _tree(pid: int) -> list[int]:
    """pid and its live descendants (the forkserver and picture workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _cpu(pid: int) -> float:
    """CPU seconds of a process and its reaped children (utime, stime, cutime, cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _status_mib(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Sampler:
    """Peak of the summed RSS of the server's process tree, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            total = sum(_status_mib(p, "VmRSS:") for p in _tree(self.pid))
            self.peak = max(self.peak, total)
            await asyncio.sleep(0.02)

    async def stop(self) -> float:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        return self.peak


async def _post(http: aiohttp.ClientSession, url: str, body: bytes) -> dict[str, Any]:
    async with http.post(url + "/index.php?r=picture/upload", data=body) as resp:
        return json.loads(await resp.text())  # type: ignore[no-any-return]


ATTACKS: dict[str, tuple[int, Callable[[], str]]] = {
    "png": (12, lambda: data_uri(big_png(), "image/png")),
    "gif": (1, lambda: data_uri(many_frame_gif(), "image/gif")),
    "jpeg": (1, lambda: data_uri(repeated_scan_jpeg(), "image/jpeg")),
    "semicolons": (1, semicolon_uri),
}


async def attack(name: str) -> dict[str, Any]:
    """Server CPU and peak RSS, the whole tree's CPU and peak RSS, answers, ping."""
    copies, make = ATTACKS[name]
    picture = make()
    server: BenchServer = await start_server("--uploads-per-hour", "1000")
    try:
        user = await register(server, "13900000001")
        body = json.dumps({"token": user["token"], "words": "x", "picture": picture}).encode()
        del picture
        pid = server.proc.pid
        before = {p: _cpu(p) for p in _tree(pid)}
        sampler = Sampler(pid)
        timeout = aiohttp.ClientTimeout(total=900)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            answers = await asyncio.gather(
                *(_post(http, server.http_url, body) for _ in range(copies))
            )
        tree = _tree(pid)
        tree_peak = await sampler.stop()
        async with connect(server.ws_url) as ws:
            pong = await asyncio.wait_for(call(ws, {"type": "ping_request"}), 10)
        return {
            "cpu": _cpu(pid) - before[pid],
            "tree_cpu": sum(_cpu(p) - before.get(p, 0.0) for p in tree),
            "peak": _status_mib(pid, "VmHWM:"),
            "tree_peak": tree_peak,
            "errors": sorted(int(a["error_no"]) for a in answers),
            "pong": bool(pong["success"]),
        }
    finally:
        await server.stop()


async def main(rounds: int, names: list[str]) -> None:
    for name in names or list(ATTACKS):
        runs = []
        for _ in range(rounds):
            start = time.perf_counter()
            run = await attack(name)
            runs.append(run)
            print(
                f"{name:>10}: server cpu {run['cpu']:6.2f} s, peak rss {run['peak']:7.1f} MiB;"
                f" with workers cpu {run['tree_cpu']:6.2f} s, rss {run['tree_peak']:7.1f} MiB;"
                f" wall {time.perf_counter() - start:6.2f} s; error_no {run['errors']};"
                f" ping {'ok' if run['pong'] else 'FAILED'}",
                flush=True,
            )
        print(
            f"{name:>10}: median of {rounds}:"
            + "".join(
                f" {key} {statistics.median(r[key] for r in runs):.2f}"
                for key in ("cpu", "peak", "tree_cpu", "tree_peak")
            ),
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3, sys.argv[2:]))
