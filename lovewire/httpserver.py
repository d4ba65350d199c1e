"""The HTTP side (section 6): the same dispatch and handlers as the WebSocket."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from lovewire.addresses import client_address, is_trusted
from lovewire.context import Services
from lovewire.dispatch import Dispatcher
from lovewire.errors import PayloadRefused, TooFrequent
from lovewire.ingress import FREE_BYTES, Address, AddressBook
from lovewire.media import content_type, is_media_path
from lovewire.metrics import CONTENT_TYPE_LATEST
from lovewire.session import Session
from protocol.pushes import SystemNotify

__all__ = ["HttpServer"]

log = logging.getLogger(__name__)

UPLOAD_TYPE = "picture_upload_request"
LOOPBACK = {"127.0.0.1", "::1"}
#: The longest an HTTP request waits for its address's parse budget before error 6.
MAX_BUDGET_WAIT = 2.0


class _TooLarge(Exception):
    """A request body over its limit."""


class _Refused(Exception):
    """A request body refused while it was read; `response` answers it."""

    def __init__(self, response: web.Response) -> None:
        super().__init__()
        self.response = response


class _Connection(RequestHandler):
    """aiohttp's protocol, counted per client address, with a deadline on each request.

    A request must arrive whole (headers and body) within `LOVEWIRE_HTTP_TIMEOUT` of its
    first byte (of the connection, for the first one), or the connection is dropped.
    """

    def __init__(self, http: HttpServer, manager: web.Server, timeout: float) -> None:
        super().__init__(
            manager,
            loop=asyncio.get_running_loop(),
            access_log=None,  # type: ignore[arg-type]  # aiohttp reads None as "no log"
            keepalive_timeout=timeout,
        )
        self.http = http
        self.timeout = timeout
        self.address: Address | None = None
        self._deadline: asyncio.TimerHandle | None = None
        #: True from a request's first byte until its handler has it whole.
        self._receiving = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        admitted, self.address = self.http.connection_opened(transport)
        if not admitted:
            cast(asyncio.Transport, transport).abort()  # too many from this address
            return
        self.arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.request_arrived()
        if self.address is not None:
            self.address.connections -= 1
            self.address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._receiving:
            self.arm()
        super().data_received(data)

    def arm(self) -> None:
        """Start the deadline of the next request."""
        self._receiving = True
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().call_later(self.timeout, self._expire)

    def request_arrived(self) -> None:
        """The handler has the whole request: the deadline is met."""
        self._receiving = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        log.debug("HTTP request not received within %s s: connection dropped", self.timeout)
        if self.transport is not None:
            self.transport.abort()


class _Exchange:
    """One HTTP request as a request cycle's channel: one answer, no pushes, no replay."""

    __slots__ = ("frame", "session")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.frame: str | None = None

    def respond(self, frame: str) -> None:
        self.frame = frame

    async def replay(self) -> None:
        self.session.replay = None  # pushes reach sockets only


class HttpServer:
    """aiohttp application with the routes of section 6."""

    def __init__(self, services: Services, dispatcher: Dispatcher, addresses: AddressBook) -> None:
        self.services = services
        self.dispatcher = dispatcher
        self._runner: web.AppRunner | None = None
        settings = services.settings
        self.addresses = addresses
        self._server: asyncio.Server | None = None
        # base64 is 4/3 of the picture; the app's JSON adds an escaped line break every 76
        # characters and escapes every "/": leave room for both.
        self.max_upload_body = settings.max_upload * 3 // 2 + 65536
        self.app = web.Application(
            client_max_size=self.max_upload_body, middlewares=[self._deadline_middleware]
        )
        self.app.add_routes(
            [
                web.post("/api", self.api),
                web.post("/index.php", self.legacy),
                web.get("/uploads/{path:.+}", self.uploads),
                web.get("/healthz", self.healthz),
                web.get("/metrics", self.metrics),
                web.post("/admin/broadcast", self.broadcast),
            ]
        )

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        """Listen; return the real port. `reuse_port`: share it with other processes."""
        settings = self.services.settings
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=settings.shutdown_grace,
        )
        await self._runner.setup()
        manager = self._runner.server
        assert manager is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self, manager, settings.http_timeout),
            host,
            port,
            backlog=128,
            reuse_port=reuse_port,
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting; requests in flight get LOVEWIRE_SHUTDOWN_GRACE, then are cancelled."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def connection_opened(self, transport: asyncio.BaseTransport) -> tuple[bool, Address | None]:
        """Count a new connection against its peer: (admitted, the address counted).

        A trusted proxy's connections carry many clients: they are not counted here; their
        requests are, per client address, while in flight (`_answer`).
        """
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if peer else None
        if host is None or is_trusted(host, self._trusted):
            return True, None
        address = self.addresses.get(client_address(host, None, ()))
        if address.connections >= self.services.settings.http_per_addr:
            log.debug("HTTP connection refused: too many from one address")
            return False, None
        address.connections += 1
        return True, address

    @property
    def _trusted(self) -> tuple[str, ...]:
        return self.services.settings.trusted_proxies

    @web.middleware
    async def _deadline_middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        conn = request.protocol
        if isinstance(conn, _Connection) and request.method in ("GET", "HEAD"):
            conn.request_arrived()
        try:
            return await handler(request)
        finally:
            # Answered, body read or not: the deadline is over for this request, and the
            # next one on a keep-alive connection gets its own.
            if isinstance(conn, _Connection):
                conn.request_arrived()

    def _session(self, address: Address) -> Session:
        session = Session(address.key)
        # Every HTTP request of an address shares one socket's request rate, and the
        # address's own budget with its sockets.
        session.bucket = address.http_requests
        session.addr_bucket = address.requests
        return session

    def _address(self, request: web.Request) -> Address:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        key = client_address(
            str(peer[0]) if peer else None,
            request.headers.getall("X-Forwarded-For", []),
            self._trusted,
        )
        return self.addresses.get(key)

    async def _read_body(
        self, request: web.Request, limit: int, charge: Address | None, type_: str
    ) -> bytes:
        """The whole body, at most limit bytes; _TooLarge beyond.

        With `charge` (a body of unknown length), what passes FREE_BYTES is charged to that
        address's parse budget as it arrives, and the rest is not read until it is paid
        back (TCP holds it back meanwhile); _Refused when the wait would be too long.
        """
        conn = request.protocol
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            if charge is not None and size > FREE_BYTES:
                paid = min(len(chunk), size - FREE_BYTES)
                refused = await self._wait_parse_budget(charge, paid, type_)
                if refused is not None:
                    raise _Refused(refused)
        if isinstance(conn, _Connection):
            conn.request_arrived()
        return b"".join(chunks)

    async def _answer(self, request: web.Request, force_type: str | None = None) -> web.Response:
        route = self.dispatcher.registry.get(force_type) if force_type else None
        type_ = route.response_type if route is not None else "error"
        address = self._address(request)
        # A trusted proxy's connection is not counted: its client's requests are, in flight.
        proxied = isinstance(request.protocol, _Connection) and request.protocol.address is None
        if proxied:
            if address.connections >= self.services.settings.http_per_addr:
                busy = TooFrequent(1, "too many HTTP requests in flight from this address")
                self._count_refused(address)
                return _json(self.dispatcher.error_frame(type_, busy))
            address.connections += 1
        try:
            return await self._answer_counted(request, address, type_, force_type)
        finally:
            if proxied:
                address.connections -= 1

    async def _answer_counted(
        self, request: web.Request, address: Address, type_: str, force_type: str | None
    ) -> web.Response:
        settings = self.services.settings
        limit = self.max_upload_body if force_type == UPLOAD_TYPE else settings.max_frame
        declared = request.content_length
        if declared is not None and declared > limit:
            self._count_refused(address)
            return self._too_large(type_)
        if declared is not None and declared > FREE_BYTES:
            # Charged before the body is read: while it waits, TCP holds the body back.
            refused = await self._wait_parse_budget(address, declared, type_)
            if refused is not None:
                self._count_refused(address)
                return refused
        try:
            body = await self._read_body(
                request, limit, address if declared is None else None, type_
            )
        except _TooLarge:
            self._count_refused(address)
            return self._too_large(type_)
        except _Refused as refused:
            self._count_refused(address)
            return refused.response
        except (ConnectionError, asyncio.IncompleteReadError, web.HTTPException) as exc:
            # The client went away (or broke the framing) mid-request: nothing to answer.
            log.debug("HTTP request not received whole: %s", type(exc).__name__)
            return web.Response(status=400)
        exchange = _Exchange(self._session(address))
        await self.dispatcher.serve(body, exchange, force_type=force_type)
        if exchange.frame is None:
            return web.Response(status=204)
        return _json(exchange.frame)

    def _count_refused(self, address: Address) -> None:
        """Count a request refused before dispatch on its address's rates (section 2)."""
        now = self.services.clock.now()
        address.http_requests.take(now)
        address.requests.take(now)

    def _too_large(self, type_: str) -> web.Response:
        refused = PayloadRefused("request body too large")
        return _json(self.dispatcher.error_frame(type_, refused), 413)

    async def _wait_parse_budget(
        self, address: Address, size: int, type_: str
    ) -> web.Response | None:
        """Charge size bytes to the address's parse budget and wait for it; error 6 if the
        wait would be longer than MAX_BUDGET_WAIT (then nothing is charged)."""
        now = asyncio.get_running_loop().time()
        wait = address.bytes.wait(size, now)
        if wait > MAX_BUDGET_WAIT:
            busy = TooFrequent(wait, "too many bytes to parse from this address")
            return _json(self.dispatcher.error_frame(type_, busy))
        address.bytes.charge(size, now)
        if wait:
            await asyncio.sleep(wait)
        return None

    async def api(self, request: web.Request) -> web.Response:
        """Any request of sections 3 and 4 as a JSON body."""
        return await self._answer(request)

    async def legacy(self, request: web.Request) -> web.Response:
        """The original app's upload route: POST /index.php?r=picture/upload."""
        if request.query.get("r") != "picture/upload":
            raise web.HTTPNotFound()
        return await self._answer(request, force_type=UPLOAD_TYPE)

    async def uploads(self, request: web.Request) -> web.StreamResponse:
        """A stored picture, by its content-hash path, from whichever store keeps it."""
        path = request.match_info["path"]
        if not is_media_path(path):
            raise web.HTTPNotFound()
        headers = {
            "Content-Type": content_type(path),
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        }
        media = self.services.media
        file = media.local_file(path)
        if file is not None:
            if not await asyncio.to_thread(file.is_file):
                raise web.HTTPNotFound()
            return web.FileResponse(file, headers=headers)
        data = await media.get(path)
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, headers=headers)

    async def healthz(self, request: web.Request) -> web.Response:
        if await self.services.store.healthy():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "database unreachable"}, status=503)

    def _is_admin(self, request: web.Request) -> bool:
        token = self.services.settings.admin_token
        if token and request.headers.get("Authorization") == f"Bearer {token}":
            return True
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if not peer or "X-Forwarded-For" in request.headers:
            return False
        return str(peer[0]) in LOOPBACK

    async def metrics(self, request: web.Request) -> web.Response:
        if not self._is_admin(request):
            raise web.HTTPForbidden()
        return web.Response(
            body=self.services.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def broadcast(self, request: web.Request) -> web.Response:
        """Send a system_notify {msg} to every open socket, logged in or not."""
        if not self._is_admin(request):
            raise web.HTTPForbidden()
        try:
            body = await request.json()
            msg = body["msg"]
            if not isinstance(msg, str) or not msg:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'body must be {"msg": "..."}'}, status=400)
        sent = await self.services.hub.broadcast(SystemNotify(msg=msg).model_dump_json())
        return web.json_response({"sent": sent})


def _json(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="application/json", charset="utf-8")
