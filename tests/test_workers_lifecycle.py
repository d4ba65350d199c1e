"""Two releases sharing the ports during an upgrade; workers outliving no supervisor."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.helpers_workers import deployment, gone, start_service, ws_pid

pytestmark = pytest.mark.needs_services


async def test_a_new_release_shares_the_ports_then_serves_alone(tmp_path: Path) -> None:
    """A second service starts on the first one's ports; once the first stops (its sockets
    get 1001), every new socket is the second one's."""
    async with deployment() as settings, start_service(tmp_path, settings) as old:
        ports = ("--ws-port", str(old.ws_port), "--http-port", str(old.http_port))
        # A metrics dir of its own, as lovewire@.service gives each release.
        metrics = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "new-metrics")}
        async with start_service(tmp_path, settings, *ports, env=metrics) as new:
            assert (new.ws_port, new.http_port) == (old.ws_port, old.http_port)
            kept = await old.socket_on(min(old.workers()))
            fresh = await new.socket_on(min(new.workers()))
            old.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(kept.recv(), 20)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
            assert await asyncio.wait_for(old.proc.wait(), 30) == 0
            workers = new.workers()
            for _ in range(10):
                async with connect(f"ws://127.0.0.1:{new.ws_port}") as ws:
                    assert ws_pid(ws, workers) is not None
                    await ws.send(json.dumps({"type": "ping_request"}))
                    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["success"]
            await fresh.send(json.dumps({"type": "ping_request"}))
            assert json.loads(await asyncio.wait_for(fresh.recv(), 10))["success"]
            await fresh.close()


async def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    """SIGKILL to the supervisor (it cannot pass anything on): its workers stop anyway."""
    async with deployment() as settings, start_service(tmp_path, settings) as service:
        workers = service.workers()
        assert len(workers) == 2
        service.proc.kill()
        await service.proc.wait()
        await asyncio.wait_for(asyncio.gather(*(gone(pid) for pid in workers)), 20)
