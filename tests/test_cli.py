"""The operator's view (contract section 7): the CLI, the listening line, signals, schema."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(rb"^lovewire listening ws://([\d.]+):(\d+) http://([\d.]+):(\d+)$")


def _lovewire() -> list[str]:
    script = Path(sys.executable).parent / "lovewire"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lovewire.cli"]


def _serve_argv(tmp_path: Path) -> list[str]:
    """`lovewire serve` on free ports with its data under tmp_path."""
    return [
        *_lovewire(),
        "serve",
        "--ws-port",
        "0",
        "--http-port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
    ]


class Process:
    def __init__(self, proc: asyncio.subprocess.Process, ws_port: int, http_port: int) -> None:
        self.proc = proc
        self.ws_port = ws_port
        self.http_port = http_port

    async def line(self) -> bytes:
        assert self.proc.stdout is not None
        return (await asyncio.wait_for(self.proc.stdout.readline(), 10)).rstrip(b"\n")


async def _start(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> Process:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), 20)).rstrip(b"\n")
    match = LISTENING.match(first)
    assert match, first
    return Process(proc, int(match.group(2)), int(match.group(4)))


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Process]:
    process = await _start(
        _serve_argv(tmp_path),
        cwd=tmp_path,
    )
    yield process
    if process.proc.returncode is None:
        process.proc.kill()
        await process.proc.wait()


async def test_serve_console_login_then_sigterm_closes_1001(served: Process) -> None:
    """Started from the CLI: log in with the console code, then SIGTERM ends it cleanly."""
    async with connect(f"ws://127.0.0.1:{served.ws_port}") as ws:
        await ws.send(json.dumps({"type": "sms_validation_request", "tel": "18615794931"}))
        assert json.loads(await ws.recv())["success"]
        line = await served.line()
        assert line.startswith(b"lovewire sms to 18615794931: code "), line
        code = line.rsplit(b" ", 1)[1].decode()
        await ws.send(json.dumps({"type": "sms_validation_code", "code": code}))
        assert json.loads(await ws.recv())["registered"] is False
        served.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    assert await asyncio.wait_for(served.proc.wait(), 10) == 0


async def test_sigint_exits_zero(served: Process) -> None:
    """SIGINT stops the server with exit status 0."""
    served.proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(served.proc.wait(), 10) == 0


async def test_server_py_with_toml_env_and_flags(tmp_path: Path) -> None:
    """python server.py reads the TOML file, then the environment, then flags."""
    config = tmp_path / "lovewire.toml"
    config.write_text(f'data_dir = "{tmp_path / "d"}"\nws_port = 1\nhttp_port = 1\nlang = "en"\n')
    process = await _start(
        [sys.executable, str(ROOT / "server.py"), "--config", str(config), "--ws-port", "0"],
        cwd=tmp_path,
        env={"LOVEWIRE_HTTP_PORT": "0"},
    )
    try:
        async with connect(f"ws://127.0.0.1:{process.ws_port}") as ws:
            await ws.send('{"type":"logout_request"}')
            frame = json.loads(await ws.recv())
            assert frame["error_no"] == 5 and frame["err_msg"].isascii()
        assert (tmp_path / "d" / "lovewire.db").exists()
    finally:
        process.proc.terminate()
        assert await asyncio.wait_for(process.proc.wait(), 10) == 0


async def refused_start(tmp_path: Path, *flags: str) -> bytes:
    """`lovewire serve` with `flags`, which must stop it with status 2; its standard error."""
    proc = await asyncio.create_subprocess_exec(
        *_lovewire(),
        "serve",
        *flags,
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2, err
    return err


async def test_bad_setting_exits_with_message(tmp_path: Path) -> None:
    """A setting that is not valid stops the start with a message and status 2."""
    assert b"ws_port" in await refused_start(tmp_path, "--ws-port", "notaport")


async def test_port_in_use_exits_with_one_line(served: Process, tmp_path: Path) -> None:
    """A port already taken stops the start with one line naming it, no traceback, status 1."""
    proc = await asyncio.create_subprocess_exec(
        *_lovewire(),
        "serve",
        "--ws-port",
        "0",
        "--http-port",
        str(served.http_port),
        "--data-dir",
        str(tmp_path / "other"),
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1, err
    assert b"cannot start" in err and str(served.http_port).encode() in err
    assert b"Traceback" not in err


async def test_schema_lists_every_message(tmp_path: Path) -> None:
    """lovewire schema prints the JSON Schema of every message."""
    proc = await asyncio.create_subprocess_exec(
        *_lovewire(),
        "schema",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0
    messages = json.loads(out)["messages"]
    for name in (
        "SmsValidationRequest",
        "SmsValidationResult",
        "UserRegisterInfo",
        "AuthResponse",
        "PictureLikeNotify",
        "ErrorFrame",
    ):
        assert name in messages
    assert messages["SmsValidationResult"]["properties"]["user_id"]["anyOf"][0]["type"] == "string"


async def _console_register(process: Process, tel: str, nickname: str) -> dict[str, object]:
    """Register through the console SMS provider of a server process."""
    async with connect(f"ws://127.0.0.1:{process.ws_port}") as ws:
        await ws.send(json.dumps({"type": "sms_validation_request", "tel": tel}))
        assert json.loads(await ws.recv())["success"]
        code = (await process.line()).rsplit(b" ", 1)[1].decode()
        await ws.send(json.dumps({"type": "sms_validation_code", "code": code}))
        ticket = json.loads(await ws.recv())["token"]
        await ws.send(
            json.dumps(
                {
                    "type": "user_register_info",
                    "token": ticket,
                    "nickname": nickname,
                    "sex": 1,
                    "birthday": "1990-1-1",
                }
            )
        )
        result: dict[str, object] = json.loads(await ws.recv())
        assert result["success"], result
        return result


async def test_sigkill_loses_no_committed_push(tmp_path: Path) -> None:
    """A push committed before SIGKILL is replayed after the restart."""
    argv = _serve_argv(tmp_path)
    first = await _start(argv, cwd=tmp_path)
    try:
        li = await _console_register(first, "13900000001", "li")
        wang = await _console_register(first, "13800000001", "wang")
        async with connect(f"ws://127.0.0.1:{first.ws_port}") as ws:
            await ws.send(json.dumps({"type": "auth_request", "token": wang["token"]}))
            assert json.loads(await ws.recv())["success"]
            await ws.send(json.dumps({"type": "crush_add_request", "crush_tel": "13900000001"}))
            assert json.loads(await ws.recv())["success"]
            first.proc.kill()
            await first.proc.wait()
    finally:
        if first.proc.returncode is None:
            first.proc.kill()
            await first.proc.wait()
    second = await _start(argv, cwd=tmp_path)
    try:
        async with connect(f"ws://127.0.0.1:{second.ws_port}") as ws:
            await ws.send(json.dumps({"type": "auth_request", "token": li["token"], "last_seq": 0}))
            auth = json.loads(await ws.recv())
            assert auth["success"] and auth["last_seq"] == 1, auth
            push = json.loads(await ws.recv())
            assert push["type"] == "crush_notify" and push["seq"] == 1, push
    finally:
        second.proc.terminate()
        assert await asyncio.wait_for(second.proc.wait(), 10) == 0


async def test_schema_piped_into_a_reader_that_stops_early(tmp_path: Path) -> None:
    """`lovewire schema --asyncapi | head`: no traceback when the reader stops reading."""

    def run() -> tuple[bytes, int, bytes]:
        read_end, write_end = os.pipe()
        proc = subprocess.Popen(
            [*_lovewire(), "schema", "--asyncapi"],
            cwd=tmp_path,
            stdout=write_end,
            stderr=subprocess.PIPE,
        )
        os.close(write_end)
        first = os.read(read_end, 20)
        os.close(read_end)  # like `head`, which exits once it has its lines
        _, err = proc.communicate(timeout=20)
        return first, proc.returncode, err

    first, status, err = await asyncio.to_thread(run)
    assert first.startswith(b"{")
    assert status == 0, err
    assert b"Traceback" not in err
