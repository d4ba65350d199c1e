"""Is one build of lovewire slower than another? Two scenarios, measured from outside.

    python -m bench.compare --python A/bin/python --python B/bin/python
        [--rounds 3] [--seconds 5] [--processes 2] [--sockets 25] [--json FILE]

Each `--python` is the interpreter of a virtualenv holding one build of lovewire; the
server runs with it, from its data dir, so it imports that build and nothing else. To
compare a change with the commit before it:

    git worktree add /tmp/before HEAD~1
    python3 -m venv /tmp/a && /tmp/a/bin/pip install -q /tmp/before
    python3 -m venv /tmp/b && /tmp/b/bin/pip install -q .
    .venv/bin/python -m bench.compare --python /tmp/a/bin/python --python /tmp/b/bin/python

Two venvs of the same commit show the noise level (A/A); without `--python` this
interpreter's installed build is run twice. Rounds alternate the builds (A, B, A, B...),
each on a fresh server and data dir. Per round and build:

- `ping`: `ping_request` round trips through the full dispatch, from logged-in sockets;
- `like`: `picture_like_request` then `picture_unlike_request` (both counted as
  requests) on pictures of other users. Only a user's first like of a picture pushes
  (PROTOCOL 3.5), so each socket walks through `--pictures` pictures and every like is a
  first one: it pushes a `picture_like_notify` to the owner, who stays connected and
  reads it (durable writes, fsynced, plus a push). "pushes 3861/3861" checks that.

The load comes from `--processes` spawned processes of `--sockets` sockets each, one
request in flight per socket, after `--warmup` seconds of load outside the window.
Figures are medians over the rounds, and B/A: requests a second, latency, the server's
CPU microseconds per request. CPU% is of one core, over the window: the server's (with
the processes it started), the busiest load generator's (near 100 means the client set
the pace), all of them together (`clients`), PostgreSQL's and Redis's (`pg+redis`:
every process of this host named `postgres` or `redis-server`, read from /proc; near 0
on SQLite; `pg+redis us/req` is that CPU per request), and the rest of the machine's
(`others`: anything else running makes the rounds noisy; rerun when it is near 0).
`req/s max/min` is the spread over the rounds. On a small machine keep processes x
sockets modest (2 x 25 on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from websockets.asyncio.client import ClientConnection, connect

from bench.common import (
    BenchServer,
    call,
    machine_cpu_seconds,
    raise_fd_limit,
    register_many,
    services_cpu_seconds,
    start_server,
)
from bench.loadgen import Job, Tally, Window, generate

#: Flags on top of `BENCH_FLAGS`: owners upload as many pictures as the scenario needs.
FLAGS = ("--uploads-per-hour", "1000000")
SCENARIOS = ("ping", "like")


@dataclass
class Run:
    """One scenario on one build in one round (`owners_cpu_pct`: this process, which
    holds the owners' sockets)."""

    scenario: str
    build: str
    round: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    server_us_per_request: float
    server_cpu_pct: float
    services_us_per_request: float
    client_cpu_pct: list[float]
    owners_cpu_pct: float
    services_cpu_pct: float
    others_cpu_pct: float
    errors: int
    first_likes: int
    repeat_likes: int
    pushes: int


def _png(n: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (n % 256, n // 256 % 256, 99)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


async def upload(server: BenchServer, owners: list[dict[str, Any]], count: int) -> list[str]:
    """`count` pictures shared out among the owners; their ids, owners interleaved."""

    async def one_owner(k: int) -> list[tuple[int, str]]:
        ids = []
        async with connect(server.ws_url) as ws:
            await call(ws, {"type": "auth_request", "token": owners[k]["token"]})
            for n in range(k, count, len(owners)):
                frame = {"type": "picture_upload_request", "words": "bench", "picture": _png(n)}
                post = await call(ws, frame)
                assert post["success"], post
                ids.append((n, post["picture_id"]))
        return ids

    per_owner = await asyncio.gather(*(one_owner(k) for k in range(len(owners))))
    return [pid for _, pid in sorted(x for ids in per_owner for x in ids)]


async def _owners_reading(
    server: BenchServer, owners: list[dict[str, Any]]
) -> tuple[list[ClientConnection], list[asyncio.Task[int]]]:
    """The owners' sockets, each with a task counting its like pushes."""
    sockets = []
    for owner in owners:
        ws = await connect(server.ws_url, ping_interval=None)
        await call(ws, {"type": "auth_request", "token": owner["token"]})
        sockets.append(ws)
    return sockets, [asyncio.create_task(_count_pushes(ws)) for ws in sockets]


async def _count_pushes(ws: ClientConnection) -> int:
    """Like pushes read until the answer to a ping, sent once the likes are done."""
    pushes = 0
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == "picture_like_notify":
            pushes += 1
        elif frame["type"] == "ping_response":
            return pushes


async def measure(
    server: BenchServer,
    scenario: str,
    likers: list[dict[str, Any]],
    owners: list[dict[str, Any]],
    pictures: list[str],
    args: argparse.Namespace,
    client_cores: frozenset[int] | None = None,
) -> tuple[list[Tally], dict[str, float], int]:
    """One scenario: the generators' tallies, CPU shares over the window, pushes read.

    `client_cores`: the cores the generators run on (`bench.cores`), if they are pinned.
    """
    tokens = [u["token"] for u in likers]
    jobs = [
        Job(
            server.ws_url,
            tokens[i :: args.processes],
            scenario,
            pictures if owners else [],
            client_cores,
        )
        for i in range(args.processes)
    ]
    sockets, readers = await _owners_reading(server, owners)
    cpu: dict[str, float] = {}

    async def at_window(window: Window) -> None:
        await asyncio.sleep(window.start - time.monotonic())
        t0, machine0 = time.monotonic(), machine_cpu_seconds()
        server0, own0 = server.cpu_seconds(), time.process_time()
        services0 = services_cpu_seconds()
        await asyncio.sleep(window.end - time.monotonic())
        cpu["server"] = server.cpu_seconds() - server0
        cpu["services"] = services_cpu_seconds() - services0
        cpu["owners"] = time.process_time() - own0
        cpu["machine"] = machine_cpu_seconds() - machine0
        cpu["elapsed"] = time.monotonic() - t0

    tallies = await generate(jobs, args.warmup, args.seconds, at_window)
    for ws in sockets:
        await ws.send(json.dumps({"type": "ping_request"}))
    pushes = sum(await asyncio.gather(*readers))
    for ws in sockets:
        await ws.close()
    return tallies, cpu, pushes


def figures(
    key: tuple[str, str, int],
    seconds: float,
    tallies: list[Tally],
    cpu: dict[str, float],
    pushes: int,
) -> Run:
    scenario, build, n = key
    latencies = sorted(x for t in tallies for x in t.latencies)
    requests = sum(t.requests for t in tallies)
    if not requests:
        raise RuntimeError(f"{scenario} on {build}: no request answered in the window")
    share = {k: v / cpu["elapsed"] * 100 for k, v in cpu.items()}
    clients = [t.cpu / seconds * 100 for t in tallies]
    return Run(
        scenario=scenario,
        build=build,
        round=n,
        requests_per_s=requests / seconds,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
        server_us_per_request=cpu["server"] / cpu["elapsed"] * seconds / requests * 1e6,
        server_cpu_pct=share["server"],
        services_us_per_request=cpu["services"] / cpu["elapsed"] * seconds / requests * 1e6,
        client_cpu_pct=clients,
        owners_cpu_pct=share["owners"],
        services_cpu_pct=share["services"],
        others_cpu_pct=(
            share["machine"] - share["server"] - share["owners"] - share["services"] - sum(clients)
        ),
        errors=sum(t.errors for t in tallies),
        first_likes=sum(t.first_likes for t in tallies),
        repeat_likes=sum(t.repeat_likes for t in tallies),
        pushes=pushes,
    )


async def _one_build(python: str, build: str, n: int, args: argparse.Namespace) -> list[Run]:
    """Both scenarios on a fresh server of one build."""
    return await scenarios(await start_server(*FLAGS, python=python), build, n, args)


async def scenarios(server: BenchServer, build: str, n: int, args: argparse.Namespace) -> list[Run]:
    """Both scenarios on a fresh server, stopped at the end; `build` labels its runs."""
    try:
        users = await register_many(server, args.owners + args.processes * args.sockets)
        owners, likers = users[: args.owners], users[args.owners :]
        pictures = await upload(server, owners, args.pictures)
        runs = []
        for scenario in SCENARIOS:
            mine = owners if scenario == "like" else []
            got = await measure(server, scenario, likers, mine, pictures, args)
            runs.append(figures((scenario, build, n), args.seconds, *got))
            _print_run(runs[-1])
        return runs
    finally:
        await server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


def _print_run(r: Run) -> None:
    clients = " ".join(f"{c:.0f}" for c in r.client_cpu_pct)
    line = (
        f"round {r.round} {r.build} {r.scenario:4}: {r.requests_per_s:7,.0f} req/s"
        f"  p50 {r.p50_ms:5.2f} ms  p99 {r.p99_ms:6.2f} ms"
        f"  server {r.server_us_per_request:5.0f} us/req, CPU% {r.server_cpu_pct:.0f}"
        f"  clients {clients}  pg+redis {r.services_cpu_pct:.0f}  others {r.others_cpu_pct:.0f}"
    )
    if r.scenario == "like":
        line += f"  owners {r.owners_cpu_pct:.0f}; pushes {r.pushes}/{r.first_likes} likes"
    print(line, flush=True)
    if r.errors:
        print(f"  {r.errors} requests failed", flush=True)
    if r.repeat_likes:
        print(f"  pictures ran out: {r.repeat_likes} likes pushed nothing (raise --pictures)")


#: The summary's figures: (field, heading, format, compared between builds).
COLUMNS = [
    ("requests_per_s", "req/s", "{:,.0f}", True),
    ("p50_ms", "p50 ms", "{:.2f}", True),
    ("p99_ms", "p99 ms", "{:.2f}", True),
    ("server_us_per_request", "server us/req", "{:.1f}", True),
    ("server_cpu_pct", "server CPU%", "{:.0f}", False),
    ("client_cpu_max_pct", "client CPU%", "{:.0f}", False),
    ("client_cpu_sum_pct", "clients CPU%", "{:.0f}", False),
    ("services_cpu_pct", "pg+redis CPU%", "{:.0f}", False),
    ("services_us_per_request", "pg+redis us/req", "{:.0f}", False),
    ("others_cpu_pct", "others CPU%", "{:.0f}", False),
    ("spread", "req/s max/min", "{:.2f}", False),
]


def summarise(runs: list[Run], builds: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Medians per scenario and build, then each later build's ratio to the first.

    `client_cpu_max_pct` is the busiest load generator process, `client_cpu_sum_pct`
    all of them together; `spread` the fastest round's requests a second over the
    slowest one's.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for scenario in SCENARIOS:
        rows = out.setdefault(scenario, {})
        for build in builds:
            mine = [asdict(r) for r in runs if r.scenario == scenario and r.build == build]
            for r in mine:
                r["client_cpu_max_pct"] = max(r["client_cpu_pct"])
                r["client_cpu_sum_pct"] = sum(r["client_cpu_pct"])
            rates = [r["requests_per_s"] for r in mine]
            rows[build] = {f: statistics.median(r[f] for r in mine) for f, *_ in COLUMNS[:-1]}
            rows[build]["spread"] = max(rates) / min(rates)
        for build in builds[1:]:
            base, other = rows[builds[0]], rows[build]
            ratios = {f: other[f] / base[f] for f, _, _, compared in COLUMNS if compared}
            rows[f"{build}/{builds[0]}"] = ratios
    return out


def print_table(summary: dict[str, dict[str, dict[str, float]]]) -> None:
    print(f"\n{'scenario':8} {'build':5} " + " ".join(f"{h:>15}" for _, h, _, _ in COLUMNS))
    for scenario, rows in summary.items():
        for build, row in rows.items():
            cells = [
                (f"{row[f]:.3f}" if "/" in build else fmt.format(row[f])) if f in row else ""
                for f, _, fmt, _ in COLUMNS
            ]
            print((f"{scenario:8} {build:5} " + " ".join(f"{c:>15}" for c in cells)).rstrip())


def describe(python: str) -> dict[str, str]:
    """Which lovewire an interpreter imports, run from elsewhere than here."""
    code = (
        "import importlib.metadata as m, lovewire; print(m.version('lovewire'), lovewire.__file__)"
    )
    with tempfile.TemporaryDirectory() as elsewhere:
        out = subprocess.run(
            [python, "-c", code], cwd=elsewhere, capture_output=True, text=True, check=True
        )
    version, path = out.stdout.split()
    return {"python": python, "version": version, "lovewire": path}


def _interpreter(path: str) -> str:
    """A path made absolute, not resolved (a venv's python is a link, and must stay one):
    each server runs in its data dir, where a relative path names nothing."""
    return os.path.abspath(path) if os.sep in path else path


async def main(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    pythons = args.python or [sys.executable, sys.executable]
    builds = list(string.ascii_uppercase[: len(pythons)])
    info = {b: describe(p) for b, p in zip(builds, pythons, strict=True)}
    print(f"{os.cpu_count()} cores; CPU% is of one core")
    for build, about in info.items():
        print(f"{build}: {about['python']} -> lovewire {about['version']} at {about['lovewire']}")
    runs = []
    for n in range(1, args.rounds + 1):
        for build, python in zip(builds, pythons, strict=True):
            runs += await _one_build(python, build, n, args)
    summary = summarise(runs, builds)
    print_table(summary)
    config = {k: v for k, v in vars(args).items() if k not in ("json", "python")}
    config["cores"] = os.cpu_count()
    return {"config": config, "builds": info, "runs": [asdict(r) for r in runs], "summary": summary}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = arguments("python -m bench.compare", __doc__)
    p.add_argument(
        "--python", action="append", type=_interpreter, help="interpreter of one build (repeat)"
    )
    return p.parse_args(argv)


def arguments(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """The options of the load and the rounds, for this bench and those reusing it."""
    p = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0, help="measured, per scenario")
    p.add_argument("--warmup", type=float, default=1.0, help="load before the window")
    p.add_argument("--processes", type=int, default=2, help="load generator processes")
    p.add_argument("--sockets", type=int, default=25, help="sockets per process")
    p.add_argument("--owners", type=int, default=2, help="users whose pictures are liked")
    p.add_argument("--pictures", type=int, default=300, help="pictures, all owners together")
    p.add_argument("--json", metavar="FILE", help="write runs and medians as JSON")
    return p


if __name__ == "__main__":
    args = parse()
    report = asyncio.run(main(args))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
