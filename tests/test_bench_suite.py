"""python -m bench: one quick run of two scenarios, with the tests' tiny counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.cores import split


def test_bench_quick_ping_and_feed_write_the_table_and_json(tmp_path: Path) -> None:
    """Both rows are printed and written with their figures, targets and details."""
    out = tmp_path / "bench.json"
    flags = ["--quick", "--tiny", "--only", "ping,feed", "--json", str(out)]
    run = subprocess.run(
        [sys.executable, "-m", "bench", *flags, "--cache", str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "scenario" in run.stdout and "ceiling/notes" in run.stdout
    report = json.loads(out.read_text())
    assert report["mode"] == "tiny"
    assert [r["name"] for r in report["results"]] == ["ping", "feed"]
    for result in report["results"]:
        assert set(result) == {"name", "figure", "unit", "target", "met", "notes", "details"}
        assert isinstance(result["figure"], float) and result["figure"] > 0, result
        assert isinstance(result["met"], bool)
    ping, feed = report["results"]
    # The ceiling (echo on asyncio's loop), and echo on uvloop where it installs.
    assert (
        {"echo", "lovewire"}
        <= set(ping["details"]["requests_per_s"])
        <= {
            "echo",
            "echo_uvloop",
            "lovewire",
        }
    )
    # Each server on a core of its own, the clients on the others, where there are two.
    assert ("pinned to core" in ping["notes"]) == (split() is not None), ping["notes"]
    assert feed["details"]["posts_in_response"] == 20
    assert feed["details"]["query_plans"] and all(q["plan"] for q in feed["details"]["query_plans"])
    assert any((tmp_path / "cache").iterdir())  # the seeded database, kept for the next run
