"""Closed-loop throughput: ping against the bare echo server, durable like/unlike on one
process and on `--workers 2`.

The load is `bench.loadgen`'s: spawned generator processes, a fixed number of sockets
each, one request in flight per socket, counted over one measuring window after a
warm-up; each generator measures its own CPU over the window (`client_cpu_pct`).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
from dataclasses import asdict
from typing import Any

from bench.common import BenchServer, register_many, start_server
from bench.compare import FLAGS, Run, figures, measure, upload
from bench.cores import Split, pin, split
from bench.scale import deployment
from bench.suite.core import Result, Suite, client_cpu_note, fsync_ms
from bench.suite.echo import start_echo
from lovewire import eventloop

__all__ = ["like", "ping", "workers"]

OWNERS = 2
#: Percent busy, of the clients' pinned cores, above which they may have set the pace.
CLIENT_CORES_FULL = 90.0


def _load(suite: Suite) -> argparse.Namespace:
    """The options `bench.compare.measure` reads."""
    s = suite.sizes
    return argparse.Namespace(
        seconds=s.seconds, warmup=s.warmup, processes=s.processes, sockets=s.sockets
    )


def _cpu(run: Run) -> str:
    return client_cpu_note(run.client_cpu_pct)


def _pinned(cores: Split | None, runs: list[Run]) -> str:
    """Where the servers and clients ran; a warning when the clients' cores were full in
    `runs` (those of the ratio)."""
    if cores is None:
        return "servers and clients not pinned (one core, or not Linux)"
    busiest = max(sum(r.client_cpu_pct) / len(cores.clients) for r in runs)
    note = (
        f"each server pinned to core {min(cores.server)}, the clients to "
        f"{len(cores.clients)} other core(s), at most {busiest:.0f}% busy"
    )
    if busiest > CLIENT_CORES_FULL:
        note += " (WARNING: near full, the clients may have set the pace)"
    return note


def _others(run: Run) -> str:
    """A note when the machine was busy with something else than this bench."""
    if run.others_cpu_pct > 25:
        return f"machine busy elsewhere: {run.others_cpu_pct:.0f}% of a core (noisy)"
    return ""


async def ping(suite: Suite) -> Result:
    """`ping_request` through lovewire against the echo server: same load, alternated."""
    args = _load(suite)
    sockets = args.processes * args.sockets
    server = await start_server(*FLAGS)
    loop = eventloop.loop_name("auto")  # lovewire's, by default
    echoes = {"echo": await start_echo()}
    if loop != "asyncio":
        echoes[f"echo_{loop}"] = await start_echo(loop)
    # Each server on a core of its own, the clients on the others (see bench.cores).
    cores = split()
    if cores is not None:
        for target in (server, *echoes.values()):
            pin(target.proc.pid, cores.server)
    try:
        users = await register_many(server, sockets)
        anonymous = [{"token": ""}] * sockets
        targets = [(name, echo, anonymous) for name, echo in echoes.items()]
        targets.append(("lovewire", server, users))
        runs: dict[str, list[Run]] = {name: [] for name, _, _ in targets}
        for n in range(suite.sizes.rounds):
            for name, target, who in targets:
                got = await measure(
                    target, "ping", who, [], [], args, cores.clients if cores else None
                )
                runs[name].append(figures(("ping", name, n), args.seconds, *got))
    finally:
        for echo in echoes.values():
            await echo.stop()
        await server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)
    # Each server's best round: noise only ever slows a round down (on the two-core VM,
    # one round in four or five ran a server at twice its CPU a request, on a core of its
    # own, nothing else busy), so the best round is the nearest to what the server can do.
    best = {k: max(v, key=lambda r: r.requests_per_s) for k, v in runs.items()}
    rate = {k: r.requests_per_s for k, r in best.items()}
    cost = {k: r.server_us_per_request for k, r in best.items()}
    ratio = rate["lovewire"] / rate["echo"]
    suite.found["echo_rate"] = rate["echo"]
    every = [r for v in runs.values() for r in v]
    notes = [
        f"ceiling: echo {rate['echo']:,.0f}/s at {cost['echo']:.0f} us CPU/req; lovewire "
        f"(on {loop}) {rate['lovewire']:,.0f}/s at {cost['lovewire']:.0f} us CPU/req, "
        f"p99 {best['lovewire'].p99_ms:.1f} ms (best rounds of {len(runs['echo'])})",
        *(
            f"echo on {loop} too: {rate[name]:,.0f}/s at {cost[name]:.0f} us CPU/req, "
            f"lovewire {rate['lovewire'] / rate[name]:.2f}x it"
            for name in echoes
            if name != "echo"
        ),
        client_cpu_note([c for r in every for c in r.client_cpu_pct]),
        _pinned(cores, runs["echo"] + runs["lovewire"]),
        _others(max(every, key=lambda r: r.others_cpu_pct)),
    ]
    errors = sum(r.errors for v in runs.values() for r in v)
    if errors:
        notes.append(f"{errors} requests failed")
    return Result(
        "ping",
        ratio,
        "x echo",
        ">= 0.85",
        ratio >= 0.85 and not errors,
        "; ".join(n for n in notes if n),
        {
            "requests_per_s": rate,
            "server_us_per_request": cost,
            "sockets": sockets,
            "processes": args.processes,
            "runs": {k: [asdict(r) for r in v] for k, v in runs.items()},
            "client_cpu_pct": [c for v in runs.values() for r in v for c in r.client_cpu_pct],
        },
    )


async def _like_on(server: BenchServer, suite: Suite, label: str) -> Run:
    """Durable like/unlike on a fresh server (stopped at the end), owners reading pushes."""
    args = _load(suite)
    try:
        suite.found.setdefault("fsync_ms", fsync_ms(server.data_dir))
        users = await register_many(server, OWNERS + args.processes * args.sockets)
        owners, likers = users[:OWNERS], users[OWNERS:]
        pictures = await upload(server, owners, suite.sizes.pictures)
        got = await measure(server, "like", likers, owners, pictures, args)
        return figures(("like", label, 1), args.seconds, *got)
    finally:
        await server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


def _like_notes(run: Run) -> list[str]:
    notes = [
        f"p99 {run.p99_ms:.1f} ms, server {run.server_us_per_request:.0f} us CPU/req "
        f"({run.server_cpu_pct:.0f}% of a core); pushes {run.pushes}/{run.first_likes}"
    ]
    if run.errors:
        notes.append(f"{run.errors} requests failed")
    if run.repeat_likes:
        notes.append(f"pictures ran out: {run.repeat_likes} likes pushed nothing")
    notes.append(_others(run))
    notes.append(_cpu(run))
    return [n for n in notes if n]


async def like(suite: Suite) -> Result:
    """Durable like/unlike requests a second on one process, SQLite."""
    run = await _like_on(await start_server(*FLAGS), suite, "sqlite")
    suite.found["like_run"] = run
    notes = _like_notes(run)
    fsync = suite.found["fsync_ms"]
    notes.insert(
        0, f"disk: fsync {fsync:.2f} ms (one durable commit at a time: {1000 / fsync:,.0f}/s)"
    )
    if "echo_rate" in suite.found:
        notes.insert(0, f"ceiling: echo {suite.found['echo_rate']:,.0f}/s")
    return Result(
        "like",
        run.requests_per_s,
        "req/s",
        ">= 5000",
        run.requests_per_s >= 5000 and not run.errors and run.pushes == run.first_likes,
        "; ".join(notes),
        {"run": asdict(run), "fsync_ms": fsync, "client_cpu_pct": run.client_cpu_pct},
    )


def reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def workers(suite: Suite) -> Result:
    """The like load on `--workers 2` (PostgreSQL, Redis) against one process (SQLite);
    one process on the same PostgreSQL and Redis is measured too, for the notes."""
    if not (reachable(5432) and reachable(6379)):
        return Result(
            "workers", None, "x 1 process", ">= 1.6", None,
            "skipped: PostgreSQL (127.0.0.1:5432) or Redis (:6379) not reachable",
        )  # fmt: skip
    base: Run = suite.found.get("like_run") or await _like_on(
        await start_server(*FLAGS), suite, "sqlite"
    )
    # The same deployment on one process too: how the two workers scale, beside the
    # target's comparison with SQLite.
    async with deployment(suite.database_url, suite.redis_url) as env:
        server = await start_server(*FLAGS, python=sys.executable, env=env)
        single = await _like_on(server, suite, "pg-1")
    async with deployment(suite.database_url, suite.redis_url) as env:
        server = await start_server(*FLAGS, "--workers", "2", python=sys.executable, env=env)
        run = await _like_on(server, suite, "workers")
    ratio = run.requests_per_s / base.requests_per_s
    notes = [
        f"2 workers {run.requests_per_s:,.0f}/s vs 1 process {base.requests_per_s:,.0f}/s; "
        f"1 process on PostgreSQL and Redis {single.requests_per_s:,.0f}/s "
        f"(2 workers: {run.requests_per_s / single.requests_per_s:.2f}x it); "
        f"pg+redis {run.services_cpu_pct:.0f}% of a core",
        *_like_notes(run),
    ]
    details: dict[str, Any] = {
        "run": asdict(run),
        "one_process": asdict(base),
        "one_process_postgres": asdict(single),
        "client_cpu_pct": run.client_cpu_pct,
    }
    return Result(
        "workers",
        ratio,
        "x 1 process",
        ">= 1.6",
        ratio >= 1.6 and not run.errors,
        "; ".join(notes),
        details,
    )
