"""bench.scale against real servers of the installed build, briefly."""

from __future__ import annotations

import pytest

from bench.scale import main, parse
from tests.helpers_postgres import pg_schema
from tests.helpers_redis import redis_prefix


@pytest.mark.needs_services
async def test_one_round_of_both_setups() -> None:
    """One process on SQLite and two workers on PostgreSQL and Redis both answer every
    request of both scenarios; the workers' setup reports its services' CPU."""
    async with pg_schema(), redis_prefix():  # skips when either is unreachable
        pass
    brief = "--rounds 1 --seconds 0.5 --warmup 0.2 --processes 1 --sockets 3 --pictures 50"
    report = await main(parse(brief.split()))
    runs = {(r["build"], r["scenario"]): r for r in report["runs"]}
    assert set(runs) == {(s, c) for s in "AB" for c in ("ping", "like")}
    for run in runs.values():
        assert run["errors"] == 0 and run["requests_per_s"] > 0
        assert run["pushes"] == run["first_likes"]
    assert runs["B", "like"]["services_cpu_pct"] > 0
    assert set(report["summary"]["ping"]) == {"A", "B", "B/A"}
