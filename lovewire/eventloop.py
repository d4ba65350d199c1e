"""The event loop the server runs on: uvloop where it is installed, else asyncio's own.

uvloop runs the same code with less CPU a request (docs/performance.md); asyncio's loop
stays one setting away (`LOVEWIRE_EVENT_LOOP=asyncio`), and is what the tests run on.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["LoopChoice", "LoopName", "loop_factory", "loop_name", "run"]

T = TypeVar("T")

LoopName = Literal["asyncio", "uvloop"]
LoopChoice = Literal["auto", "asyncio", "uvloop"]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_name(choice: LoopChoice) -> LoopName:
    """The loop `choice` runs on: `auto` is uvloop when it is installed."""
    if choice == "auto":
        return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    return choice


def loop_factory(choice: LoopChoice) -> LoopFactory:
    """A function making a new loop of the chosen kind; ValueError if it is not installed."""
    if loop_name(choice) == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        raise ValueError("LOVEWIRE_EVENT_LOOP is uvloop, but uvloop is not installed") from None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], factory: LoopFactory) -> T:
    """Run `main` to its end on a new loop made by `factory` (as `asyncio.run` does)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
