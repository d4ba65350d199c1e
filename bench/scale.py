"""Do two workers on PostgreSQL and Redis serve more than one process on SQLite?

    python -m bench.scale [--workers 2] [--rounds 3] [--seconds 5] [--processes 2]
        [--sockets 25] [--database-url URL] [--redis-url URL] [--json FILE]

The scenarios, load and figures of `bench.compare`, on this interpreter's installed
build in two setups, alternated round by round (A, B, A, B...), each on a fresh server:

- A: one process, today's default: SQLite and files in a fresh data dir;
- B: `--workers N` (2 by default) on PostgreSQL and Redis: a fresh schema per round
  (the URL's `search_path`), dropped after it, and a fresh `LOVEWIRE_REDIS_PREFIX`,
  whose keys are deleted after it.

`B/A` is the ratio of the medians. CPU is read from /proc over the window:

- `server`: the server process and every process below it (B: the supervisor and its
  workers); `server us/req` is that CPU per request answered;
- `pg+redis`: PostgreSQL's and Redis's own processes on this host (by name: `postgres`,
  `redis-server`), kept out of `server us/req` and out of `others`;
- `clients`: the load generator processes, each measuring its own CPU;
- `others`: the machine's CPU less all of the above and this process (which holds the
  owners' sockets of the like scenario).

The load generator is accounted for by running it the same in both setups: same
processes, sockets and scenarios, on the same cores as the server, so B/A compares the
setups under one load generator; its CPU is reported beside the server's (`clients
CPU%`, of one core, all processes together), so that one sees how much of the
machine was left to the server, and to PostgreSQL and Redis, in each setup.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from redis import asyncio as aioredis

from bench.common import raise_fd_limit, start_server
from bench.compare import FLAGS, Run, arguments, print_table, scenarios, summarise

SETUPS = {"A": "1 process, SQLite", "B": "{workers} workers, PostgreSQL and Redis"}


def with_schema(url: str, schema: str) -> str:
    """The URL with `search_path` set to schema (a server setting asyncpg passes on)."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, f"search_path={schema}") if q)
    return urlunsplit(parts._replace(query=query))


@asynccontextmanager
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[dict[str, str]]:
    """The environment of a deployment on a fresh schema and Redis key prefix, both
    removed afterwards."""
    name = f"lovewire_bench_{secrets.token_hex(6)}"
    prefix = f"lovewire-bench-{secrets.token_hex(6)}:"
    conn = await asyncpg.connect(database_url, timeout=5)
    redis = aioredis.from_url(redis_url, socket_connect_timeout=2)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
        try:
            yield {
                "LOVEWIRE_DATABASE_URL": with_schema(database_url, name),
                "LOVEWIRE_REDIS_URL": redis_url,
                "LOVEWIRE_REDIS_PREFIX": prefix,
            }
        finally:
            await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
            keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
            if keys:
                await redis.delete(*keys)
    finally:
        await conn.close()
        await redis.aclose()


async def _one_setup(setup: str, n: int, args: argparse.Namespace) -> list[Run]:
    """Both scenarios on a fresh server of one setup."""
    if setup == "A":
        return await scenarios(await start_server(*FLAGS, python=sys.executable), setup, n, args)
    async with deployment(args.database_url, args.redis_url) as env:
        flags = (*FLAGS, "--workers", str(args.workers))
        server = await start_server(*flags, python=sys.executable, env=env)
        return await scenarios(server, setup, n, args)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    setups = {k: v.format(workers=args.workers) for k, v in SETUPS.items()}
    print(f"{os.cpu_count()} cores; CPU% is of one core")
    for setup, about in setups.items():
        print(f"{setup}: {about}")
    runs = []
    for n in range(1, args.rounds + 1):
        for setup in setups:
            runs += await _one_setup(setup, n, args)
    summary = summarise(runs, list(setups))
    print_table(summary)
    config = {k: v for k, v in vars(args).items() if k != "json"}
    config["cores"] = os.cpu_count()
    return {
        "config": config,
        "setups": setups,
        "runs": [asdict(r) for r in runs],
        "summary": summary,
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = arguments("python -m bench.scale", __doc__)
    p.add_argument("--workers", type=int, default=2, help="workers of setup B")
    p.add_argument(
        "--database-url",
        default=os.environ.get(
            "LOVEWIRE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1/test"
        ),
        help="PostgreSQL of setup B (a schema is made and dropped in it each round)",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("LOVEWIRE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis of setup B",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse()
    report = asyncio.run(main(args))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
