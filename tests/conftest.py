"""Fixtures: a real server on ephemeral ports, a stand-in SMS platform, real clients."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from websockets.asyncio.client import ClientConnection, connect

from handlers import TABLES
from lovewire.app import Lovewire
from lovewire.clock import ManualClock
from lovewire.config import Settings
from tests.helpers_postgres import TEST_URL, pg_schema
from tests.helpers_redis import TEST_REDIS_URL, redis_prefix

# The settings of the operator's environment must not leak into tests; the variables
# that steer the tests themselves (LOVEWIRE_TEST_*, LOVEWIRE_REQUIRE_SERVICES) stay.
for _name in list(os.environ):
    if _name.startswith("LOVEWIRE_") and not (
        _name.startswith("LOVEWIRE_TEST_") or _name == "LOVEWIRE_REQUIRE_SERVICES"
    ):
        del os.environ[_name]

#: The loops a test marked `both_loops` runs on: asyncio's, and uvloop (the server's
#: default where it installs) when it is installed.
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
try:
    import uvloop
except ImportError:
    pass
else:
    LOOPS["uvloop"] = uvloop.new_event_loop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run a test marked `both_loops` once on each loop; every other on asyncio's."""
    if item.get_closest_marker("both_loops") is not None:
        return LOOPS
    return {"asyncio": asyncio.new_event_loop}


#: The backend the end-to-end tests run on: "sqlite" (one process, the default) or
#: "postgresql" (PostgreSQL and Redis, as several processes run).
BACKEND = os.environ.get("LOVEWIRE_TEST_BACKEND", "sqlite")


class SmsPlatform:
    """A real HTTP server on loopback standing in for the SMS provider."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.status = 200
        self.hang = False
        self.auth_headers: list[str | None] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.auth_headers.append(request.headers.get("Authorization"))
        if self.hang:
            await asyncio.sleep(3600)
        if 200 <= self.status < 300:
            await self.messages.put(body)
        return web.json_response({"ok": self.status < 300}, status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/send", self._receive)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/send"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def code_for(self, tel: str) -> str:
        """The next code sent, which must be for tel."""
        message = await asyncio.wait_for(self.messages.get(), 5)
        assert message["tel"] == tel
        assert message["code"] in message["text"]
        return str(message["code"])


class Client:
    """A websockets client that keeps pushes apart from responses."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pushes: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), 5))
        assert isinstance(frame, dict)
        return frame

    async def response(self) -> dict[str, Any]:
        """The next frame that is not a push (pushes are kept in self.pushes)."""
        while True:
            frame = await self.recv()
            if str(frame.get("type", "")).endswith("_notify"):
                self.pushes.append(frame)
                continue
            return frame

    async def request(self, frame: dict[str, Any] | str) -> dict[str, Any]:
        await self.send(frame)
        return await self.response()

    async def push(self) -> dict[str, Any]:
        """The next push, received earlier or now."""
        if self.pushes:
            return self.pushes.pop(0)
        frame = await self.recv()
        assert str(frame["type"]).endswith("_notify"), frame
        return frame


class Server:
    """A running lovewire with helpers to connect and to log users in."""

    def __init__(self, app: Lovewire, sms: SmsPlatform, clock: ManualClock) -> None:
        self.app = app
        self.sms = sms
        self.clock = clock
        self._tel = 13800000000

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.app.ws_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.app.http_port}"

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Client]:
        async with connect(self.ws_url, max_size=None) as ws:
            yield Client(ws)

    def new_tel(self) -> str:
        self._tel += 1
        return str(self._tel)

    async def login_code(self, client: Client, tel: str) -> dict[str, Any]:
        """Ask for a code and verify it; return the sms_validation_result."""
        sent = await client.request({"type": "sms_validation_request", "tel": tel})
        assert sent["success"], sent
        code = await self.sms.code_for(tel)
        return await client.request({"type": "sms_validation_code", "code": code})

    async def register(
        self, client: Client, tel: str | None = None, nickname: str = "zhang"
    ) -> dict[str, Any]:
        """Register a new user on client; return the user_register_result."""
        tel = tel or self.new_tel()
        result = await self.login_code(client, tel)
        assert result["success"] and result["registered"] is False, result
        registered = await client.request(
            {
                "type": "user_register_info",
                "token": result["token"],
                "nickname": nickname,
                "sex": 1,
                "birthday": "1995-3-21",
            }
        )
        assert registered["success"], registered
        registered["tel"] = tel
        return registered

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                self.http_url + path,
                data=body if isinstance(body, (str, bytes)) else json.dumps(body),
            ) as resp,
        ):
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)


@pytest.fixture
async def sms_platform() -> AsyncIterator[SmsPlatform]:
    platform = SmsPlatform()
    await platform.start()
    yield platform
    await platform.close()


ServerFactory = Callable[..., Any]


@pytest.fixture
async def start_server(
    tmp_path: Path, sms_platform: SmsPlatform
) -> AsyncIterator[Callable[..., Any]]:
    """Start servers on one data dir: `await start_server(**settings)`; stopped at the end.

    `database_url=<a postgresql:// URL>` runs the server on PostgreSQL, in a schema of this
    test's own (created at first use, dropped at the end): every server of the test given
    the same URL shares it, as processes of one deployment do. `redis_url=...` likewise
    gives the test's servers a Redis key prefix of their own (keys deleted at the end).
    """
    running: list[Lovewire] = []
    clock = ManualClock()
    schemas: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    cleanup = AsyncExitStack()

    async def start(**overrides: Any) -> Server:
        if BACKEND == "postgresql" and "database_url" not in overrides:
            overrides = {"database_url": TEST_URL, "redis_url": TEST_REDIS_URL, **overrides}
        url = overrides.get("database_url", "")
        if url.startswith("postgres"):
            if url not in schemas:
                schemas[url] = await cleanup.enter_async_context(pg_schema(url))
            overrides["database_url"] = schemas[url]
        redis = overrides.get("redis_url", "")
        if redis and "redis_prefix" not in overrides:
            if redis not in prefixes:
                prefixes[redis] = await cleanup.enter_async_context(redis_prefix(redis))
            overrides["redis_prefix"] = prefixes[redis]
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "ws_port": 0,
            "http_port": 0,
            "data_dir": tmp_path / "data",
            "sms_provider": "http",
            "sms_url": sms_platform.url,
            "lang": "zh",
        }
        values.update(overrides)
        app = Lovewire(Settings(**values), tables=TABLES, clock=clock)
        await app.start()
        running.append(app)
        return Server(app, sms_platform, clock)

    async with cleanup:
        yield start
        for app in reversed(running):
            await app.stop()


#: The backends `server` and `roomy` run their tests on: each such test runs once on
#: SQLite (one process) and once on PostgreSQL with Redis (as several processes run).
#: With LOVEWIRE_TEST_BACKEND=postgresql every server of the suite is on PostgreSQL.
BACKENDS = (
    ["postgresql"]
    if BACKEND == "postgresql"
    else ["sqlite", pytest.param("postgresql", marks=pytest.mark.needs_services)]
)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings of the test's backend (skips a test marked sqlite_only on another)."""
    if request.param == "sqlite":
        return {}
    if request.node.get_closest_marker("sqlite_only"):
        pytest.skip("looks at SQLite's own files or statements")
    return {"database_url": TEST_URL, "redis_url": TEST_REDIS_URL}


@pytest.fixture
async def server(start_server: Callable[..., Any], backend: dict[str, Any]) -> Server:
    server: Server = await start_server(**backend)
    return server


@pytest.fixture
async def roomy(start_server: Callable[..., Any], backend: dict[str, Any]) -> Server:
    """A server whose per-socket, SMS and posting limits leave room for many users."""
    server: Server = await start_server(
        **backend,
        requests_per_second=1_000_000,
        sms_interval=0,
        sms_tel_hourly=10_000,
        sms_tel_daily=10_000,
        sms_addr_hourly=10_000,
        sms_global_hourly=100_000,
        uploads_per_hour=10_000,
        comments_per_minute=10_000,
    )
    return server
