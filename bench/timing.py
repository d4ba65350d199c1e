"""Does crush_add_request's timing tell whether a tel is registered? (issue 7, item 6)

    python -m bench.timing [admirers] [rounds]

Against a real `lovewire serve` process: registered users (accepting crush notices, so
the registered path stores and publishes an anonymous `crush_notify`) and fresh tels
nobody holds, each named by one crush only. Each admirer adds 8 crushes, 4 on registered
tels and 4 on unregistered ones in a random order, one request at a time, and the
response time of each is taken.
Both samples are compared: medians, p90, a Mann-Whitney U test and a two-sample
Kolmogorov-Smirnov test (plain Python, no dependency), and the accuracy of the best
single-threshold guess "slower means registered". Indistinguishable: p-values well above
0.05 and a guess near 50%. `rounds` repeats the whole run on a fresh server.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import sys
import time
from typing import Any

from websockets.asyncio.client import connect

from bench.common import call, raise_fd_limit, register_many, start_server

PER_ADMIRER = 8


def mann_whitney(a: list[float], b: list[float]) -> tuple[float, float]:
    """U of a and the two-sided p-value (normal approximation with tie correction)."""
    pooled = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    n1, n2 = len(a), len(b)
    r1 = sum(r for r, (_, group) in zip(ranks, pooled, strict=True) if group == 0)
    u = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    z = (u - n1 * n2 / 2) / sigma if sigma else 0.0
    return u, math.erfc(abs(z) / math.sqrt(2))


def kolmogorov_smirnov(a: list[float], b: list[float]) -> tuple[float, float]:
    """D and the asymptotic two-sided p-value of the two-sample KS test."""
    xs, ys = sorted(a), sorted(b)
    i = j = 0
    d = 0.0
    while i < len(xs) and j < len(ys):
        x = min(xs[i], ys[j])
        while i < len(xs) and xs[i] <= x:
            i += 1
        while j < len(ys) and ys[j] <= x:
            j += 1
        d = max(d, abs(i / len(xs) - j / len(ys)))
    en = math.sqrt(len(xs) * len(ys) / (len(xs) + len(ys)))
    lam = (en + 0.12 + 0.11 / en) * d
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return d, min(1.0, max(0.0, p))


def best_guess(registered: list[float], unregistered: list[float]) -> float:
    """Accuracy of the best threshold rule "at least t: registered" over these samples."""
    labelled = sorted([(x, 1) for x in registered] + [(x, 0) for x in unregistered])
    total = len(labelled)
    # Threshold below everything: every sample is guessed registered.
    right = best = len(registered)
    for _, label in labelled:
        right += -1 if label else 1
        best = max(best, right, total - right)
    return best / total


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


async def one_run(admirers: int) -> tuple[list[float], list[float]]:
    server = await start_server()
    try:
        half = PER_ADMIRER // 2
        # Each tel, registered or not, is named once: a tel many crushes name takes longer
        # to count whoever holds it, and that is not what is measured here.
        target_tels = [str(13100000000 + i) for i in range(half * admirers)]
        await register_many(server, len(target_tels), start=13100000000)
        random.shuffle(target_tels)
        users = await register_many(server, admirers, start=13200000000)
        registered: list[float] = []
        unregistered: list[float] = []
        fresh = 15500000000
        for n, user in enumerate(users):
            plan = [(target_tels.pop(), True) for _ in range(half)]
            for _ in range(half):
                fresh += 1
                plan.append((str(fresh), False))
            random.shuffle(plan)
            async with connect(server.ws_url) as ws:
                await call(ws, {"type": "auth_request", "token": user["token"]})
                # One warm-up request, so the first timed one is no different.
                await call(ws, {"type": "crush_received_request"})
                for tel, is_registered in plan:
                    frame = json.dumps(
                        {"type": "crush_add_request", "crush_tel": tel, "words": f"w{n}"}
                    )
                    start = time.perf_counter()
                    await ws.send(frame)
                    reply: dict[str, Any] = json.loads(await ws.recv())
                    elapsed = time.perf_counter() - start
                    assert reply["type"] == "crush_add_response" and reply["success"], reply
                    (registered if is_registered else unregistered).append(elapsed * 1000)
        return registered, unregistered
    finally:
        await server.stop()


async def main() -> None:
    raise_fd_limit()
    admirers = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    print(f"{admirers} admirers x {PER_ADMIRER} adds per run, {rounds} run(s); times in ms")
    for _ in range(rounds):
        reg, unreg = await one_run(admirers)
        _, p_mw = mann_whitney(reg, unreg)
        d, p_ks = kolmogorov_smirnov(reg, unreg)
        print(
            f"registered   n={len(reg)} median={statistics.median(reg):.3f} p90={p90(reg):.3f}\n"
            f"unregistered n={len(unreg)} median={statistics.median(unreg):.3f}"
            f" p90={p90(unreg):.3f}\n"
            f"Mann-Whitney p={p_mw:.3g}  KS D={d:.3f} p={p_ks:.3g}"
            f"  best single-threshold guess {best_guess(reg, unreg):.0%}",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
