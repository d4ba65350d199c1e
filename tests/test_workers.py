"""`lovewire serve --workers N` (contract sections 7 and 8): real processes on real ports."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from lovewire.config import Settings
from lovewire.workers import worker_environment
from tests.helpers_postgres import pg_schema
from tests.helpers_redis import TEST_REDIS_URL as REDIS_URL
from tests.helpers_workers import Service, alive, deployment, serve_argv, serve_env, start_service

REFUSAL = (
    b"lovewire: several workers share state through PostgreSQL and Redis:"
    b" set LOVEWIRE_DATABASE_URL and LOVEWIRE_REDIS_URL\n"
)


async def _run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out, err


@pytest.mark.parametrize(
    "settings",
    [
        {"workers": "2"},
        {"workers": "2", "database_url": "postgresql://127.0.0.1:5432/test"},
        {"workers": "2", "redis_url": REDIS_URL},
        {"workers": "3", "database_url": "sqlite:///x.db", "redis_url": REDIS_URL},
    ],
    ids=["neither", "postgresql-only", "redis-only", "not-postgresql"],
)
async def test_several_workers_need_postgresql_and_redis(
    tmp_path: Path, settings: dict[str, str]
) -> None:
    """Without both, the start is refused with one line and status 2; nothing starts."""
    code, out, err = await _run(serve_argv(tmp_path), serve_env(**settings), tmp_path)
    assert (code, out, err) == (2, b"", REFUSAL)
    assert not (tmp_path / "data").exists()


async def test_the_flag_is_refused_the_same(tmp_path: Path) -> None:
    """`--workers 2` is LOVEWIRE_WORKERS=2."""
    code, out, err = await _run(serve_argv(tmp_path, "--workers", "2"), serve_env(), tmp_path)
    assert (code, out, err) == (2, b"", REFUSAL)


async def test_a_worker_that_cannot_start_stops_the_service(tmp_path: Path) -> None:
    """A worker that exits before it listens (no database there) ends the start, status 1."""
    settings = {"database_url": "postgresql://127.0.0.1:1/test", "redis_url": REDIS_URL}
    code, out, err = await _run(
        serve_argv(tmp_path, "--workers", "2"), serve_env(**settings), tmp_path
    )
    assert code == 1 and out == b"", err
    last = err.splitlines()[-1]
    assert re.fullmatch(rb"lovewire: cannot start: worker \d exited \(status 1\) before .*", last)
    assert b"Traceback" not in err


@pytest.mark.needs_services
async def test_a_database_that_refuses_to_be_set_up_is_one_line(tmp_path: Path) -> None:
    """A search_path naming no schema: one line and status 1, no traceback."""
    async with pg_schema() as url:
        missing = url.replace("search_path=", "search_path=missing_")
        code, out, err = await _run(serve_argv(tmp_path), serve_env(database_url=missing), tmp_path)
    assert code == 1 and out == b"", err
    assert err.startswith(b"lovewire: cannot start: ") and b"Traceback" not in err
    assert b"search_path" in err


def test_workers_get_every_setting_through_their_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's settings, read from the environment it is given, are the supervisor's."""
    settings = Settings(
        data_dir=tmp_path,
        trusted_proxies="10.0.0.1, 10.0.0.2",
        sms_international=True,
        shutdown_grace=2.5,
        lang="en",
        admin_token="s3cret",
        database_url="postgresql://u:p@db/lovewire",
        redis_url=REDIS_URL,
        workers=3,
    )
    env = worker_environment(settings, 1111, 2222, tmp_path / "metrics")
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "metrics")
    assert "LOVEWIRE_CONFIG" not in env and "NOTIFY_SOCKET" not in env
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    expected = settings.model_dump() | {"ws_port": 1111, "http_port": 2222}
    assert Settings().model_dump() == expected


async def test_a_port_in_use_stops_the_start_with_one_line(tmp_path: Path) -> None:
    """A port another program listens on: status 1, one line naming it, no worker."""
    settings = {"database_url": "postgresql://127.0.0.1:1/test", "redis_url": REDIS_URL}
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        argv = serve_argv(tmp_path, "--workers", "2", "--http-port", port)
        code, out, err = await _run(argv, serve_env(**settings), tmp_path)
    assert (code, out) == (1, b""), err
    assert err.startswith(b"lovewire: cannot start: ") and err.count(b"\n") == 1, err
    assert f"127.0.0.1:{port}".encode() in err


# -- on PostgreSQL and Redis -------------------------------------------------------------


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    """`lovewire serve --workers 2 --lang en` on PostgreSQL and Redis of the test's own."""
    async with deployment() as settings, start_service(tmp_path, settings, "--lang", "en") as s:
        yield s


async def _request(ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(frame))
    answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert isinstance(answer, dict)
    return answer


@pytest.mark.needs_services
async def test_two_workers_serve_both_ports_on_one_database(service: Service) -> None:
    """Each worker serves sockets and HTTP; a login on one is a session on the other; an
    announcement made through either reaches the sockets of both (Redis)."""
    workers = service.workers()
    assert len(workers) == 2
    first, second = sorted(workers)
    async with await service.socket_on(first) as a, await service.socket_on(second) as b:
        tel = "13800000001"
        sent = await _request(a, {"type": "sms_validation_request", "tel": tel})
        assert sent["success"], sent
        printed = await service.line()  # the console provider's line, passed on unchanged
        assert printed.startswith(f"lovewire sms to {tel}: code ".encode()), printed
        code = printed.rsplit(b" ", 1)[1].decode()
        ticket = await _request(a, {"type": "sms_validation_code", "code": code})
        assert ticket["success"] and ticket["registered"] is False, ticket
        info = {"nickname": "zhang", "sex": 1, "birthday": "1995-3-21"}
        user = await _request(a, {"type": "user_register_info", "token": ticket["token"], **info})
        assert user["success"], user
        auth = await _request(b, {"type": "auth_request", "token": user["token"], "last_seq": 0})
        assert auth["success"] and auth["user_id"] == user["user_id"], auth
        wrong = await _request(b, {"type": "no_such_request"})
        assert wrong["success"] is False and wrong["err_msg"].isascii()  # --lang en, passed on
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{service.http_port}"
            async with http.post(f"{base}/admin/broadcast", json={"msg": "maintenance"}) as resp:
                assert resp.status == 200
        for ws in (a, b):
            notice = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert notice["type"] == "system_notify" and notice["msg"] == "maintenance"
    for pid in (first, second):
        assert await service.healthz_on(pid) == b"HTTP/1.1 200 OK"
    async with aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{service.http_port}"
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 200 and "lovewire_sockets_opened_total" in await resp.text()
    # Both workers write their figures where every scrape reads them (multiprocess mode).
    written = {int(f.stem.rsplit("_", 1)[1]) for f in (service.data / "metrics").glob("*.db")}
    assert workers <= written


@pytest.mark.needs_services
async def test_a_killed_worker_is_restarted_then_sigterm_stops_all(service: Service) -> None:
    """SIGKILL: the worker is replaced and serves; SIGTERM: sockets get 1001, status 0.

    The supervisor tells systemd it is stopping; every worker is gone when it exits.
    """
    before = service.workers()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    await service.log(rb"worker \d exited unexpectedly \(SIGKILL\)")
    # Its share of the live gauges is dropped from the shared scrape.
    assert not list((service.data / "metrics").glob(f"gauge_live*_{victim}.db"))
    while True:
        match = await service.log(rb"lovewire\[(\d+)\]: lovewire listening ")
        if int(match.group(1)) not in before:
            break
    new = int(match.group(1))
    assert service.workers() == before - {victim} | {new}
    ws = await service.socket_on(new)
    assert (await _request(ws, {"type": "ping_request"}))["success"]
    workers = service.workers()
    service.proc.send_signal(signal.SIGTERM)
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 20)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert await asyncio.wait_for(service.proc.wait(), 30) == 0
    assert not alive(workers)
    assert service.notify.recv(64) == b"STOPPING=1"
