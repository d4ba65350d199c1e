"""Every benchmark of issue 10 in one command, one table, one JSON file.

    python -m bench [--quick] [--json FILE] [--only ping,like,...] [--cache DIR]

It starts what it needs: lovewire as a process (`bench.common.start_server`: fresh data
dir, limits lifted), a bare `websockets` echo server as the ceiling, and the clients in
spawned processes, each measuring its own CPU over its measuring window; a row says so
when one used more than 70% of a core (the client, not the server, may have set the
pace). Scenarios (targets from the issue):

- ping: `ping_request` round trips, lovewire / the echo server, same load (>= 0.85x);
- like: durable like/unlike on one process, SQLite, owners reading pushes (>= 5000/s);
- workers: the same on `--workers 2`, PostgreSQL and Redis, / like (>= 1.6x);
- idle: server memory per idle logged-in socket (<= 18 KiB);
- push: like -> owner's push at 1,000 likes/s offered, sockets connected (p99 <= 50 ms);
- feed: `picture_info_request` from 1,000,000 posts, 5,000,000 comments (p99 <= 5 ms);
- notify: `POST /admin/broadcast` until the last socket has it (<= 250 ms);
- reconnect: sockets back at once with `last_seq`, 20 pushes owed each (<= 10 s);
- chat: chat message -> peer's push at 1,000 messages/s (p99 <= 20 ms).

`--quick` runs smaller counts and shorter windows (under two minutes on two cores); the
full run takes about 5 minutes (a minute more to seed the feed's database the first
time, or every time without `--cache`). PostgreSQL and Redis come from
LOVEWIRE_BENCH_DATABASE_URL and LOVEWIRE_BENCH_REDIS_URL (defaults: local ones);
`workers` is skipped without them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.common import (
    kill_started,
    machine_cpu_seconds,
    raise_fd_limit,
    remove_data_dirs,
    services_cpu_seconds,
    tree_cpu_seconds,
)
from bench.suite.chat import chat
from bench.suite.core import CLIENT_CPU_LIMIT, Result, Sizes, Suite, kill_agents
from bench.suite.feed import feed
from bench.suite.push import push
from bench.suite.sockets import idle, notify, reconnect
from bench.suite.throughput import like, ping, workers

SCENARIOS: dict[str, Callable[[Suite], Awaitable[Result]]] = {
    "ping": ping,
    "like": like,
    "workers": workers,
    "idle": idle,
    "push": push,
    "feed": feed,
    "notify": notify,
    "reconnect": reconnect,
    "chat": chat,
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller counts, under two minutes")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the tests' sizes
    p.add_argument("--json", metavar="FILE", default="bench-results.json")
    p.add_argument("--only", metavar="A,B", help=f"some of: {','.join(SCENARIOS)}")
    p.add_argument("--cache", metavar="DIR", help="keep the feed's seeded database here")
    args = p.parse_args(argv)
    args.only = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [name for name in args.only if name not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(unknown)}")
    return args


#: Other work on the machine, in % of one core over a scenario, worth a note.
OTHERS_LIMIT = 25.0


def _note_others(result: Result, others_pct: float) -> None:
    """Keep the CPU the rest of the machine used meanwhile; note it when noisy."""
    result.details["others_cpu_pct"] = round(others_pct, 1)
    if others_pct > OTHERS_LIMIT and "busy elsewhere" not in result.notes:
        note = f"machine busy elsewhere: {others_pct:.0f}% of a core (noisy)"
        result.notes = f"{result.notes}; {note}" if result.notes else note


def _figure(r: Result) -> str:
    if r.figure is None:
        return "-"
    if r.figure >= 100:
        return f"{r.figure:,.0f} {r.unit}"
    return f"{r.figure:.2f} {r.unit}"


def _met(r: Result) -> str:
    return "skipped" if r.met is None else ("yes" if r.met else "NO")


def print_table(results: list[Result], mode: str) -> None:
    rows = [("scenario", "figure", "target", "met?", "ceiling/notes")]
    rows += [(r.name, _figure(r), r.target, _met(r), r.notes) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print(f"\nlovewire bench ({mode}), {os.cpu_count()} cores")
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)), "|", row[4])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    suite = Suite(
        Sizes.of(mode),
        cache=args.cache,
        database_url=os.environ.get(
            "LOVEWIRE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1/test"
        ),
        redis_url=os.environ.get("LOVEWIRE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    if mode != "full":
        print(f"--{mode}: smaller counts and shorter windows than the targets name")
    results, started = [], time.monotonic()
    for name in args.only:
        t0 = time.monotonic()
        cpu0 = machine_cpu_seconds() - tree_cpu_seconds() - services_cpu_seconds()
        print(f"{name} ...", flush=True)
        try:
            result = await SCENARIOS[name](suite)
        except Exception as exc:
            traceback.print_exc()
            result = Result(name, None, "", "", False, f"FAILED: {type(exc).__name__}: {exc}")
            result.details["traceback"] = traceback.format_exc()
        finally:
            kill_agents()
            kill_started()
        if result.figure is not None and math.isnan(result.figure):
            result.figure = None  # JSON has no NaN
        result.details["seconds"] = round(time.monotonic() - t0, 1)
        others = machine_cpu_seconds() - tree_cpu_seconds() - services_cpu_seconds() - cpu0
        _note_others(result, others / (time.monotonic() - t0) * 100)
        print(f"{name}: {_figure(result)} ({_met(result)}) in {result.details['seconds']} s")
        results.append(result)
    print_table(results, mode)
    return {
        "mode": mode,
        "sizes": asdict(suite.sizes),
        "machine": {
            "cores": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "client_cpu_limit_pct": CLIENT_CPU_LIMIT,
        "seconds": round(time.monotonic() - started, 1),
        "results": [asdict(r) for r in results],
    }


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    try:
        report = asyncio.run(run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        kill_agents()
        kill_started()
        remove_data_dirs()
    Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"written: {args.json}")


if __name__ == "__main__":
    main()
