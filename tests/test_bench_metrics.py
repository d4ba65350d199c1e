"""bench.metrics: the server's commit figures, read from prometheus_client's own text."""

from __future__ import annotations

import math

from bench.metrics import Commits, samples
from lovewire.metrics import Metrics
from tests.test_metrics import parse


def _samples(metrics: Metrics) -> dict[str, float]:
    return samples(metrics.render().decode())


def test_commits_between_two_scrapes() -> None:
    """Only the commits after the first scrape count; slow ones and the longest's bucket."""
    metrics = Metrics()
    metrics.committed(0.2)  # before the window: not counted
    before = _samples(metrics)
    for seconds in (0.0004, 0.003, 0.02, 0.03, 0.09):
        metrics.committed(seconds)
    commits = Commits.between(before, _samples(metrics))
    assert (commits.count, commits.slow, commits.longest) == (5, 2, 0.1)
    assert commits.describe() == "2 of 5 commits over 25 ms, the longest <= 100 ms"
    # The figures are prometheus_client's own: the parser agrees with its text.
    assert parse(metrics.render())[("lovewire_store_commit_seconds_count", frozenset())] == 6


def test_commits_none_slow_and_past_the_last_bucket() -> None:
    metrics = Metrics()
    before = _samples(metrics)
    assert Commits.between(before, before) == Commits(0, 0, 0.0)
    metrics.committed(0.001)
    assert Commits.between(before, _samples(metrics)).describe() == "1 commit, none over 25 ms"
    metrics.committed(7.0)
    late = Commits.between(before, _samples(metrics))
    assert (late.slow, late.longest) == (1, math.inf)
    assert late.describe().endswith("the longest over 5 s")
