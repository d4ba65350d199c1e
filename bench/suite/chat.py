"""Chat message -> peer's push at a steady rate (`bench.chat`), as a row of the table."""

from __future__ import annotations

import argparse

from bench import chat as chat_bench
from bench.suite.core import CLIENT_CPU_LIMIT, DISK_STALL, Result, Suite

__all__ = ["chat"]

#: (rate, seconds, pairs) of each mode.
_SIZES = {"full": (1000.0, 10.0, 100), "quick": (1000.0, 3.0, 100), "tiny": (100.0, 0.5, 5)}


async def chat(suite: Suite) -> Result:
    """p99 from a message due to its `chat_message_notify` at the peer, one process, SQLite."""
    rate, seconds, pairs = _SIZES[suite.sizes.mode]
    args = argparse.Namespace(
        rate=rate, seconds=seconds, warmup=suite.sizes.warmup, pairs=pairs, json=None, serve=[]
    )
    got = await chat_bench.run(args)
    p99 = got["p99_ms"]
    notes = [
        f"{pairs} pairs, {got['messages']} messages offered at {rate:,.0f}/s;"
        f" p50 {got['p50_ms']} ms, max {got['max_ms']} ms;"
        f" {got['delivered']}/{got['messages']} delivered, {got['errors']} errors;"
        f" server {got['server_cpu_pct']}% of a core",
        got["commits_note"],
    ]
    if not got["met"] and got["commits_slow"]:
        notes.append(DISK_STALL)
    if got["client_cpu_pct"] > CLIENT_CPU_LIMIT:
        notes.append(f"load generator {got['client_cpu_pct']}% of a core: it may set the pace")
    return Result(
        "chat", p99, "ms (p99)", "<= 20 at 1000/s", bool(got["met"]), "; ".join(notes), got
    )
