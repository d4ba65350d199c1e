"""bench.disk: the disk's fsync times, briefly."""

from __future__ import annotations

import json
from pathlib import Path

from bench.disk import main


def test_disk_probe_times_every_fsync_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "disk.json"
    got = main(f"--rate 200 --seconds 0.1 --size 8192 --dir {tmp_path} --json {out}".split())
    assert got["fsyncs"] >= 10
    assert 0 < got["p50_ms"] <= got["p99_ms"] <= got["p999_ms"] <= got["max_ms"]
    assert got["fsyncs"] >= got["over_25ms"] >= got["over_50ms"] >= 0
    assert json.loads(out.read_text()) == got
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.json"]
