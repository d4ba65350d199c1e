"""The collector's settings for many long-lived sockets (lovewire.collector).

Full collections freeze what survives them, so a closed socket must not need the
collector: it is freed by reference counting alone, frozen or not.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from lovewire import collector
from tests.conftest import Server


@pytest.fixture
def collector_off() -> Iterator[None]:
    """No automatic collection during the test: what is freed is freed by refcounts."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Node:
    """An object that can be in a reference cycle and be watched with a weak reference."""

    other: Node | None = None


def test_a_full_collection_freezes_its_survivors() -> None:
    collector.settle()
    try:
        node = Node()
        gc.collect()
        assert gc.get_freeze_count() > 0
        assert gc.get_count() == (0, 0, 0)
        # Frozen, it is still freed as soon as it is dropped (no cycle).
        watched = weakref.ref(node)
        del node
        assert watched() is None
    finally:
        collector.reset()
    assert gc.get_freeze_count() == 0


def test_many_new_objects_are_walked_in_short_full_collections() -> None:
    """Thousands of sockets logging in make objects that live on: each full collection
    walks only those made since the last (the rest is frozen), and comes often enough
    that none walks more than about seven young generations' worth (a short pause;
    with GC_OLD 5 it was nineteen)."""
    made = 0
    walked: list[int] = []
    last = 0

    def full(phase: str, info: dict[str, int]) -> None:
        nonlocal last
        if phase == "stop" and info["generation"] == 2:
            walked.append(made - last)
            last = made

    collector.settle()
    gc.callbacks.insert(0, full)
    kept: list[list[int]] = []
    try:
        for made in range(1, 30 * collector.GC_YOUNG + 1):
            kept.append([made])  # one tracked object that lives on
    finally:
        gc.callbacks.remove(full)
        collector.reset()
    assert len(walked) >= 3, walked
    assert max(walked) <= 8 * collector.GC_YOUNG, walked


def test_thaw_frees_a_cycle_dropped_after_it_froze() -> None:
    collector.settle()
    try:
        node = Node()
        node.other = node
        watched = weakref.ref(node)
        gc.collect()  # it survives, and is frozen
        del node
        gc.collect()
        assert watched() is not None  # what the thaw is for
        collector.thaw()
        assert watched() is None
    finally:
        collector.reset()


@pytest.mark.both_loops
async def test_closed_sockets_are_freed_without_the_collector(
    server: Server, collector_off: None
) -> None:
    """Logged in or not, closed cleanly or dropped (a phone losing its network), a closed
    socket's objects (its connection and session, websockets' connection and protocol,
    asyncio's transport) are freed by reference counting alone."""
    watched: list[weakref.ref[object]] = []
    listener = server.app.ws
    assert listener is not None
    async with server.connect() as a, server.connect() as b, server.connect() as dropped:
        await server.register(a)
        assert (await b.request({"type": "ping_request"}))["success"]
        await server.register(dropped)
        conns = list(listener.connections)
        assert len(conns) == 3
        for conn in conns:
            parts = (conn, conn.session, conn.ws, conn.ws.protocol, conn.ws.transport)
            watched += [weakref.ref(x) for x in parts]
        sockets = [conn.ws for conn in conns]
        handlers = list(listener._handlers)  # the tasks serving the three sockets
        del conns, conn, parts
        dropped.ws.transport.abort()  # no closing handshake, no FIN: a reset
    await asyncio.gather(*(ws.wait_closed() for ws in sockets))
    await asyncio.gather(*handlers)
    del sockets, handlers
    alive = [type(ref()).__name__ for ref in watched if ref() is not None]
    assert alive == []
