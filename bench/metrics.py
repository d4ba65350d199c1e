"""The server's own figures, read from `GET /metrics` (loopback needs no token).

`Commits` tells a latency row whether the disk held it up: every durable write waits
for a commit (`lovewire_store_commit_seconds`), so when a row's tail is long and its
commits were slow, the disk, not the code, made the tail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import aiohttp

__all__ = ["SLOW_COMMIT", "Commits", "samples", "scrape"]

#: A commit above this (seconds, a bucket bound of the histogram) counts as slow.
SLOW_COMMIT = 0.025

_COMMIT = "lovewire_store_commit_seconds"


async def scrape(http_url: str) -> dict[str, float]:
    """Every sample of one scrape of the server at `http_url` (see `samples`)."""
    async with aiohttp.ClientSession() as http, http.get(http_url + "/metrics") as resp:
        resp.raise_for_status()
        return samples(await resp.text())


def samples(text: str) -> dict[str, float]:
    """The samples of a scrape's text: each name with its labels, as written, to its value."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, number = line.rpartition(" ")
            found[name] = float(number)
    return found


@dataclass(frozen=True, slots=True)
class Commits:
    """The durable commits between two scrapes."""

    count: int
    #: How many took longer than SLOW_COMMIT.
    slow: int
    #: The longest lay at or under this (seconds): the bound of its bucket (inf past 5 s).
    longest: float

    @classmethod
    def between(cls, before: dict[str, float], after: dict[str, float]) -> Commits:
        def count(le: str) -> int:
            key = f'{_COMMIT}_bucket{{le="{le}"}}'
            return round(after.get(key, 0.0) - before.get(key, 0.0))

        bounds = sorted(
            float(name.split('"')[1])
            for name in after
            if name.startswith(f"{_COMMIT}_bucket{{") and 'le="+Inf"' not in name
        )
        total = count("+Inf")
        longest = next((b for b in bounds if count(_le(b)) == total), math.inf)
        return cls(total, total - count(_le(SLOW_COMMIT)), longest if total else 0.0)

    def describe(self) -> str:
        """`12 of 9,800 commits over 25 ms, the longest <= 100 ms`, or `none over 25 ms`."""
        over = f"over {1000 * SLOW_COMMIT:g} ms"
        if not self.slow:
            return f"{self.count:,} commit{'' if self.count == 1 else 's'}, none {over}"
        longest = "over 5 s" if math.isinf(self.longest) else f"<= {1000 * self.longest:g} ms"
        return f"{self.slow} of {self.count:,} commits {over}, the longest {longest}"


def _le(bound: float) -> str:
    """A bucket's `le` label as prometheus_client writes it (0.025, 1.0)."""
    return repr(float(bound))
