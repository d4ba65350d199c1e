"""The disk alone: how long an fsync takes under a steady stream of durable writes.

    python -m bench.disk [--rate 1000] [--seconds 300] [--size 81920] [--dir DIR]

No SQLite and no lovewire: `--rate` times a second, `--size` bytes are written over the
start of a 4 MiB file (as SQLite rewrites its WAL) and `fdatasync`ed, as the server's
writer does for a group of chat messages (about 10 pages each). It prints the median, the
tail and the longest fsync, and how many took over 25 and 50 ms. A virtual disk that now
and then holds one fsync for a tenth of a second holds every durable write meanwhile:
run this for minutes, not seconds, to see whether a latency row's rare miss is the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

__all__ = ["main", "measure", "parse"]

#: The file is written over from its start again past this size, as a WAL is reused.
SPAN = 4 << 20


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.disk", description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0, help="fsyncs a second")
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to write")
    parser.add_argument("--size", type=int, default=81920, help="bytes written per fsync")
    parser.add_argument("--dir", default=None, help="where (default: the temp directory)")
    parser.add_argument("--json", help="write the figures here as JSON")
    return parser.parse_args(argv)


def measure(rate: float, seconds: float, size: int, folder: str | None = None) -> dict[str, Any]:
    """Write and fsync on a schedule (a late one goes at once); the fsyncs' times."""
    fd, path = tempfile.mkstemp(prefix="lovewire-disk-", dir=folder)
    block = os.urandom(size)
    spent: list[float] = []
    try:
        due = time.monotonic()
        end = due + seconds
        offset = 0
        while due < end:
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            os.pwrite(fd, block, offset)
            started = time.perf_counter()
            os.fdatasync(fd)
            spent.append(time.perf_counter() - started)
            offset = (offset + size) % SPAN
            due += 1 / rate
    finally:
        os.close(fd)
        os.unlink(path)
    spent.sort()
    n = len(spent)

    def ms(p: float) -> float:
        return round(1000 * spent[min(n - 1, int(p * n))], 3)

    return {
        "fsyncs": n,
        "rate": rate,
        "size": size,
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
        "max_ms": round(1000 * spent[-1], 3),
        "over_25ms": sum(s > 0.025 for s in spent),
        "over_50ms": sum(s > 0.050 for s in spent),
    }


def main(argv: list[str]) -> dict[str, Any]:
    args = parse(argv)
    got = measure(args.rate, args.seconds, args.size, args.dir)
    print(
        f"{got['fsyncs']:,} fsyncs of {args.size:,} bytes at {args.rate:g}/s:"
        f" p50 {got['p50_ms']} ms, p99 {got['p99_ms']} ms, p99.9 {got['p999_ms']} ms,"
        f" max {got['max_ms']} ms; {got['over_25ms']} over 25 ms, {got['over_50ms']} over 50 ms"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(got, f, indent=2)
    return got


if __name__ == "__main__":
    main(sys.argv[1:])
