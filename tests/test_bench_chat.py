"""bench.chat against a real server, briefly."""

from __future__ import annotations

from bench.chat import main, parse


async def test_chat_bench_every_message_reaches_its_peer() -> None:
    """Every message sent in the window is answered and pushed to the peer; figures come out."""
    report = await main(parse("--rate 40 --seconds 0.5 --warmup 0.2 --pairs 4".split()))
    assert report["errors"] == 0 and report["lost"] == 0
    assert report["messages"] == report["delivered"] > 0
    assert report["p99_ms"] is not None and report["p99_ms"] >= report["p50_ms"] > 0
    # The server's commits over the window: at least one per message's group.
    assert 0 < report["commits"] <= 2 * report["messages"] + 10
    assert 0 <= report["commits_slow"] <= report["commits"]
