"""The server's clock, injectable so that tests can move time instead of sleeping."""

from __future__ import annotations

import time

__all__ = ["Clock", "ManualClock"]


class Clock:
    """Wall-clock Unix seconds."""

    def now(self) -> float:
        return time.time()


class ManualClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
