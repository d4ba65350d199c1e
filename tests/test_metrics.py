"""`GET /metrics`: prometheus_client's figures, per server and across worker processes."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

import lovewire.metrics
from lovewire.metrics import (
    CONTENT_TYPE_LATEST,
    REQUEST_BUCKETS,
    Metrics,
    mark_process_dead,
    prepare_multiprocess_dir,
)
from tests.conftest import Server
from tests.test_cli import ROOT, Process, _serve_argv, _start

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http_url: str) -> Samples:
    """Every sample of one scrape, keyed by name and labels."""
    async with aiohttp.ClientSession() as http, http.get(http_url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = await resp.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def parse(text: bytes | str) -> Samples:
    text = text.decode() if isinstance(text, bytes) else text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_requests_timed_by_type_and_sms_counted(start_server: Any) -> None:
    """Each request type has a count and a latency histogram (0.1 ms to 5 s); SMS are
    counted sent and failed; the process and platform figures are there."""
    server: Server = await start_server()
    async with server.connect() as c:
        await server.register(c)
        for _ in range(3):
            assert (await c.request({"type": "ping_request"}))["success"]
        server.sms.status = 500
        async with server.connect() as other:
            tel = server.new_tel()
            failed = await other.request({"type": "sms_validation_request", "tel": tel})
            assert failed["error_no"] == 7
            samples = await scrape(server.http_url)
    assert value(samples, "lovewire_requests_total", type="ping_request") == 3
    assert value(samples, "lovewire_request_seconds_count", type="ping_request") == 3
    assert value(samples, "lovewire_request_seconds_bucket", type="ping_request", le="+Inf") == 3
    for le in ("0.0001", "0.001", "0.01", "0.1", "1.0", "5.0"):
        bucket = value(samples, "lovewire_request_seconds_bucket", type="ping_request", le=le)
        assert bucket is not None, le
    assert value(samples, "lovewire_errors_total", error_no="7") == 1
    assert value(samples, "lovewire_sms_sent_total") == 1
    assert value(samples, "lovewire_sms_failed_total") == 1
    assert value(samples, "lovewire_sockets_open") == 2
    assert value(samples, "lovewire_sockets_opened_total") == 2
    assert value(samples, "lovewire_pushes_sent_total") == 0
    assert value(samples, "lovewire_sockets_closed_slow_total") == 0
    assert (value(samples, "process_resident_memory_bytes") or 0) > 0
    assert (value(samples, "process_open_fds") or 0) > 0
    assert value(samples, "process_cpu_seconds_total") is not None
    assert any(name == "python_info" for name, _ in samples)


async def test_durable_commits_are_timed(server: Server) -> None:
    """Every durable commit is in lovewire_store_commit_seconds, on either backend: the
    disk's share of a write, where an operator sees a stalling disk."""
    before = await scrape(server.http_url)
    async with server.connect() as c:
        await server.register(c)  # an SMS code stored, then a user: two units at least
    after = await scrape(server.http_url)

    def commits(samples: Samples) -> float:
        return value(samples, "lovewire_store_commit_seconds_count") or 0.0

    assert commits(after) >= commits(before) + 2
    assert value(after, "lovewire_store_commit_seconds_bucket", le="+Inf") == commits(after)
    assert (value(after, "lovewire_store_commit_seconds_sum") or 0.0) > (
        value(before, "lovewire_store_commit_seconds_sum") or 0.0
    )


async def test_servers_in_one_process_count_apart(start_server: Any) -> None:
    """Two servers in one process keep their own figures; a closed socket leaves the gauge."""
    first: Server = await start_server()
    second: Server = await start_server()
    async with first.connect() as c:
        assert (await c.request({"type": "ping_request"}))["success"]
    assert value(await scrape(first.http_url), "lovewire_requests_total", type="ping_request")
    other = await scrape(second.http_url)
    assert value(other, "lovewire_requests_total", type="ping_request") is None
    assert value(other, "lovewire_sockets_opened_total") == 0
    metrics = first.app.services.metrics  # type: ignore[union-attr]
    await first.app.stop()  # its sockets' handlers have all ended
    assert metrics.value("lovewire_sockets_open") == 0
    assert metrics.value("lovewire_sockets_opened_total") == 1


async def _pings(process: Process, count: int) -> ClientConnection:
    """A socket to `process` that sent `count` pings, left open."""
    ws = await connect(f"ws://127.0.0.1:{process.ws_port}")
    for _ in range(count):
        await ws.send('{"type":"ping_request"}')
        assert json.loads(await ws.recv())["success"]
    return ws


async def test_workers_sharing_a_multiprocess_dir_scrape_as_one(tmp_path: Path) -> None:
    """Two `lovewire serve` with one PROMETHEUS_MULTIPROC_DIR: either's scrape sums both;
    a dead worker's open sockets leave the gauge once marked dead, its counts stay."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    (shared / "counter_1.db").write_bytes(b"an earlier run's figures")
    prepare_multiprocess_dir(shared)
    assert list(shared.iterdir()) == []
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = await _start(_serve_argv(tmp_path / "a"), cwd=tmp_path / "a", env=env)
    try:
        b = await _start(_serve_argv(tmp_path / "b"), cwd=tmp_path / "b", env=env)
        try:
            ws_a, ws_b = await _pings(a, 2), await _pings(b, 3)
            for process in (a, b):
                samples = await scrape(f"http://127.0.0.1:{process.http_port}")
                assert value(samples, "lovewire_requests_total", type="ping_request") == 5
                seconds = value(samples, "lovewire_request_seconds_count", type="ping_request")
                assert seconds == 5
                assert value(samples, "lovewire_sockets_open") == 2
                assert value(samples, "lovewire_sockets_opened_total") == 2
                assert (value(samples, "process_resident_memory_bytes") or 0) > 0
            b.proc.send_signal(signal.SIGKILL)  # dies with its socket open
            await asyncio.wait_for(b.proc.wait(), 10)
            await ws_b.close()
            mark_process_dead(b.proc.pid, shared)  # what the supervisor does
            samples = await scrape(f"http://127.0.0.1:{a.http_port}")
            assert value(samples, "lovewire_sockets_open") == 1
            assert value(samples, "lovewire_requests_total", type="ping_request") == 5
            await ws_a.close()
        finally:
            if b.proc.returncode is None:
                b.proc.kill()
                await b.proc.wait()
        a.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(a.proc.wait(), 10) == 0
    finally:
        if a.proc.returncode is None:
            a.proc.kill()
            await a.proc.wait()
    # A worker that stops marks itself dead: no live gauge of either is left.
    assert not list(shared.glob("gauge_live*"))
    assert list(shared.glob("counter_*.db"))
    prepare_multiprocess_dir(shared)
    assert not list(shared.glob("*.db"))


async def test_a_request_is_in_the_next_scrape(start_server: Any) -> None:
    """Request figures are written in batches: each scrape writes what came before it."""
    server: Server = await start_server()
    metrics = server.app.services.metrics  # type: ignore[union-attr]
    async with server.connect() as c:
        for expected in (1, 2, 3):
            assert (await c.request({"type": "ping_request"}))["success"]
            samples = await scrape(server.http_url)
            assert value(samples, "lovewire_requests_total", type="ping_request") == expected
            count = value(samples, "lovewire_request_seconds_count", type="ping_request")
            assert count == expected
            assert (value(samples, "lovewire_request_seconds_sum", type="ping_request") or 0) > 0
    assert metrics.value("lovewire_requests_total", type="ping_request") == 3
    assert metrics.value("lovewire_request_seconds_count", type="ping_request") == 3


def test_batched_latencies_scrape_as_observe_writes_them() -> None:
    """A batch puts each time in the bucket Histogram.observe does, bounds included."""
    times = [0.0, 0.00005, *REQUEST_BUCKETS, 0.0003, 0.0003, 0.7, 4.999, 5.0000001, 60.0]
    metrics = Metrics()
    reference = CollectorRegistry()
    observed = Histogram(
        "lovewire_request_seconds", "x", ["type"], buckets=REQUEST_BUCKETS, registry=reference
    ).labels("ping_request")
    for seconds in times:
        metrics.request("ping_request")
        metrics.handled("ping_request", seconds)
        observed.observe(seconds)
    metrics.request("logout_request")  # counted, not answered yet
    ours = parse(metrics.render())
    expected = parse(generate_latest(reference))
    histogram = {
        k: v
        for k, v in ours.items()
        if k[0].startswith("lovewire_request_seconds") and ("type", "ping_request") in k[1]
    }
    assert histogram.keys() == expected.keys()
    for key, number in expected.items():
        if key[0].endswith("_sum"):
            assert math.isclose(histogram[key], number), key
        else:
            assert histogram[key] == number, key
    assert value(ours, "lovewire_requests_total", type="ping_request") == len(times)
    assert value(ours, "lovewire_requests_total", type="logout_request") == 1
    # More figures after a scrape are added to what it wrote, not written over it.
    metrics.request("ping_request")
    metrics.handled("ping_request", 0.002)
    again = parse(metrics.render())
    assert value(again, "lovewire_requests_total", type="ping_request") == len(times) + 1
    le = value(again, "lovewire_request_seconds_bucket", type="ping_request", le="+Inf")
    assert le == len(times) + 1


def test_a_request_a_second_after_the_last_batch_writes_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between scrapes, the first request a second or more after the last batch writes one
    (what other readers of the registry, and other workers, see)."""
    now = [1000.0]
    monkeypatch.setattr(lovewire.metrics, "monotonic", lambda: now[0])
    metrics = Metrics()
    registry = metrics.registry

    def written() -> float:
        return registry.get_sample_value("lovewire_requests_total", {"type": "x"}) or 0.0

    metrics.request("x")
    metrics.handled("x", 0.001)
    now[0] += 0.5
    metrics.request("x")
    assert written() == 0
    now[0] += 0.5
    metrics.request("x")
    assert written() == 3
    labels = {"type": "x", "le": "0.001"}
    assert registry.get_sample_value("lovewire_request_seconds_bucket", labels) == 1


_MULTIPROCESS_WORKER = """
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from lovewire.metrics import Metrics

metrics = Metrics()
for _ in range(3):
    metrics.request("ping_request")
    metrics.handled("ping_request", 0.0003)
others = CollectorRegistry()  # what another worker's scrape reads
multiprocess.MultiProcessCollector(others)
print(generate_latest(others).decode())
"""


def test_multiprocess_figures_are_written_at_once(tmp_path: Path) -> None:
    """In multiprocess mode another worker's scrape sees a request's figures as soon as
    they are recorded, with no scrape or batch of this worker's own."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _MULTIPROCESS_WORKER],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    samples = parse(done.stdout)
    assert value(samples, "lovewire_requests_total", type="ping_request") == 3
    labels = {"type": "ping_request"}
    assert value(samples, "lovewire_request_seconds_count", **labels) == 3
    assert value(samples, "lovewire_request_seconds_bucket", **labels, le="0.00025") == 0
    assert value(samples, "lovewire_request_seconds_bucket", **labels, le="0.0005") == 3
