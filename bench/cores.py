"""Cores for a server under test and for its load: apart, so the scheduler cannot mix them.

On two cores, one server and two client processes do not fit one to a core, and where
Linux put them decided the figure: the same echo server answered 36,000 or 70,000 pings
a second by the round, running on a whole core or on two thirds of one. With each server
on one core and the clients on the others, every server runs on a whole core and the
ping row measures the servers, not the scheduler. The clients' core must then have room
to spare: `bench.loadgen` keeps their cost down, and the row says how busy it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Split", "pin", "split"]


@dataclass(frozen=True)
class Split:
    """The server's core, and the cores left for its load generators."""

    server: frozenset[int]
    clients: frozenset[int]


def split() -> Split | None:
    """The first core this process may use for servers, the rest for clients.

    None where there is no such choice: one core, or no `sched_setaffinity` (not Linux).
    """
    if not hasattr(os, "sched_getaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    return Split(frozenset(cores[:1]), frozenset(cores[1:]))


def pin(pid: int, cores: frozenset[int]) -> None:
    """Run every thread of process `pid` on `cores`; threads it starts later inherit them."""
    tasks = Path(f"/proc/{pid}/task")
    for task in tasks.iterdir() if tasks.is_dir() else []:
        try:
            os.sched_setaffinity(int(task.name), cores)
        except ProcessLookupError:
            pass  # the thread ended meanwhile
