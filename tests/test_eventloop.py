"""The event loop the server runs on (LOVEWIRE_EVENT_LOOP): uvloop where it installs."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from lovewire import eventloop
from tests.test_cli import _serve_argv, refused_start

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _running() -> str:
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


def test_auto_is_uvloop_where_it_installs() -> None:
    assert eventloop.loop_name("auto") == ("uvloop" if HAS_UVLOOP else "asyncio")
    assert eventloop.loop_name("asyncio") == "asyncio"


@pytest.mark.parametrize("choice", ["asyncio", "uvloop"])
def test_run_runs_on_the_chosen_loop(choice: eventloop.LoopChoice) -> None:
    if choice == "uvloop" and not HAS_UVLOOP:
        pytest.skip("uvloop is not installed")
    assert eventloop.run(_running(), eventloop.loop_factory(choice)) == choice


async def test_serve_names_its_loop_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    """`lovewire serve` logs the loop it runs on; a loop it does not know is a bad setting."""
    assert b"event_loop" in await refused_start(tmp_path, "--event-loop", "trio")
    proc = await asyncio.create_subprocess_exec(
        *_serve_argv(tmp_path),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    await asyncio.wait_for(proc.stdout.readline(), 20)
    proc.terminate()
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0
    expected = "uvloop" if HAS_UVLOOP else "asyncio"
    assert f"(event loop: {expected})".encode() in err, err
