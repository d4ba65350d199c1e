"""The server's clock, injectable so that tests can move time instead of sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "ManualClock"]


class Clock:
    """Wall-clock Unix seconds.

    Timers that wait for an instant of this clock (a token's expiry) run on the event
    loop's own clock and check this one when they fire. A clock that jumps (ManualClock)
    calls its watchers after each jump, so that they look at the time again at once.
    """

    def now(self) -> float:
        return time.time()

    def watch(self, callback: Callable[[], None]) -> None:
        """Call back after each jump. Wall time flows and never jumps: nothing to do."""

    def unwatch(self, callback: Callable[[], None]) -> None:
        """Stop calling back."""


class ManualClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._watchers: list[Callable[[], None]] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move forward; what waits for an instant now passed happens before this returns."""
        self._now += seconds
        for callback in list(self._watchers):
            callback()

    def watch(self, callback: Callable[[], None]) -> None:
        self._watchers.append(callback)

    def unwatch(self, callback: Callable[[], None]) -> None:
        if callback in self._watchers:
            self._watchers.remove(callback)
