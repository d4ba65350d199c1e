"""bench.cores: servers under test on one core, their load on the others."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cores import pin, split


def _allowed(pid: int) -> set[int]:
    """The cores any thread of `pid` may run on, as the kernel has them."""
    return {
        core
        for task in Path(f"/proc/{pid}/task").iterdir()
        for core in os.sched_getaffinity(int(task.name))
    }


def test_the_split_shares_out_this_process_cores() -> None:
    cores = split()
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        assert cores is None
        return
    assert cores is not None
    assert len(cores.server) == 1 and cores.clients
    assert not cores.server & cores.clients
    assert cores.server | cores.clients == os.sched_getaffinity(0)


def test_pin_moves_every_thread_of_a_running_process() -> None:
    cores = split()
    if cores is None:
        pytest.skip("one core, or no sched_setaffinity: nothing to pin")
    # A process with a second thread, both alive until its standard input closes.
    code = (
        "import sys, threading; t = threading.Thread(target=sys.stdin.read); t.start();"
        " print('up', flush=True); t.join()"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            assert proc.stdout.readline() == "up\n"
            assert len(list(Path(f"/proc/{proc.pid}/task").iterdir())) == 2
            pin(proc.pid, cores.server)
            assert _allowed(proc.pid) == set(cores.server)
        finally:
            proc.stdin.close()
