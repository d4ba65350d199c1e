"""At most one event per key and interval, in this process (typing indicators)."""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["Throttle"]

#: Keys remembered before the stale ones are forgotten.
MAX_KEYS = 100_000


class Throttle:
    """Lets one event per key through in each `interval` seconds; forgets stale keys."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._last: dict[Hashable, float] = {}

    def allow(self, key: Hashable, now: float, interval: float) -> bool:
        """True if no event of `key` was let through in the last `interval` seconds."""
        last = self._last.get(key)
        if last is not None and now - last < interval:
            return False
        if last is None and len(self._last) >= self.max_keys:
            self._last = {k: t for k, t in self._last.items() if now - t < interval}
            if len(self._last) >= self.max_keys:
                return False  # a flood of live keys: drop rather than grow
        self._last[key] = now
        return True
