"""bench.compare against a real server of the installed build, briefly."""

from __future__ import annotations

import os
import sys

from bench.compare import main, parse


async def test_one_round_of_one_build() -> None:
    """Both scenarios run without a failed request; every first like reaches its owner."""
    brief = "--rounds 1 --seconds 0.5 --warmup 0.2 --processes 1 --sockets 3 --pictures 50"
    args = parse(["--python", sys.executable, *brief.split()])
    report = await main(args)
    ping, like = report["runs"]
    assert (ping["scenario"], like["scenario"]) == ("ping", "like")
    assert ping["errors"] == like["errors"] == 0
    assert ping["requests_per_s"] > 0 and like["requests_per_s"] > 0
    assert like["first_likes"] > 0
    assert like["pushes"] == like["first_likes"]
    assert report["builds"]["A"]["python"] == sys.executable
    assert set(report["summary"]["like"]) == {"A"}


def test_a_relative_interpreter_is_made_absolute_not_resolved() -> None:
    """Each server runs in its data dir: `.venv/bin/python` must name the same file there,
    and stay the venv's link (resolved, it would be the base Python without lovewire)."""
    args = parse(["--python", "venv/bin/python", "--python", "python3"])
    assert args.python == [os.path.join(os.getcwd(), "venv", "bin", "python"), "python3"]
