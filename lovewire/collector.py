"""The garbage collector, tuned for a heap of many long-lived sockets.

CPython's full collection walks every object it tracks, and a logged-in socket is about
90 of them: at 5,000 sockets one full collection stops every socket for a quarter of a
second or more, even when it finds nothing to free. So:

- At start, what lives as long as the process (modules, models, the registry) is frozen:
  no collection walks it again.
- After every full collection, what survived it is frozen too. Everything left at that
  moment is reachable, so nothing freed later is kept by this; the next full collection
  walks only what was made since.
- A frozen object is still freed the moment its last reference goes. Only a reference
  cycle that was frozen and then dropped needs the collector: the sockets break theirs
  when they close (`Connection`, and `wsserver._Socket` for websockets' protocol and
  asyncio's transport), so a closed socket is freed at once, frozen or not. As a
  backstop against cycles elsewhere, every `THAW_INTERVAL` everything is thawed and
  collected once.
- Thresholds sized for many long-lived objects collect the young ones less often.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

__all__ = [
    "GC_MIDDLE",
    "GC_OLD",
    "GC_YOUNG",
    "THAW_INTERVAL",
    "reset",
    "settle",
    "thaw",
    "thaw_forever",
]

log = logging.getLogger(__name__)

#: The collector's thresholds once the server runs. With Python's 700, every few requests
#: paid a young collection: like/unlike 5,445 a second here against 3,615. A full
#: collection walks what was made since the last one (the rest is frozen), so it comes
#: after about 70,000 new objects that live on, not 190,000 (GC_OLD 5): while 10,000
#: sockets logged in, the longest took 19 ms instead of 97, and all of them together
#: 495 ms instead of 732 (docs/performance.md).
GC_YOUNG, GC_MIDDLE, GC_OLD = 10_000, 1, 1

#: How often every frozen object is looked at again, for cycles dropped after they froze.
THAW_INTERVAL = 6 * 3600.0


def settle() -> None:
    """Freeze what the process made while starting, then every full collection's survivors."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, GC_MIDDLE, GC_OLD)
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def reset() -> None:
    """Undo `settle`: Python's own thresholds, nothing frozen (for a process that goes on)."""
    if _freeze_survivors in gc.callbacks:
        gc.callbacks.remove(_freeze_survivors)
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def thaw() -> None:
    """Look at every object once more: free the cycles dropped since they froze."""
    started = time.perf_counter()
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    freed = gc.collect()  # its survivors freeze again (`_freeze_survivors`)
    log.info(
        "collector: %d objects looked at again, %d freed, in %.0f ms",
        frozen,
        freed,
        (time.perf_counter() - started) * 1000,
    )


async def thaw_forever(interval: float = THAW_INTERVAL) -> None:
    """`thaw` every `interval` seconds, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        thaw()
