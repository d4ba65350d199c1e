"""The HTTP side (section 6): the same dispatch and handlers as the WebSocket."""

from __future__ import annotations

import logging

from aiohttp import web

from lovewire.addresses import client_address
from lovewire.context import Services
from lovewire.dispatch import Dispatcher
from lovewire.errors import PayloadRefused
from lovewire.images import MEDIA_PATH
from lovewire.session import Session
from protocol.pushes import SystemNotify

__all__ = ["HttpServer"]

log = logging.getLogger(__name__)

UPLOAD_TYPE = "picture_upload_request"
#: Stored files are named by content hash (`ab/abcdef....jpg`); their types by extension.
_CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp"}
LOOPBACK = {"127.0.0.1", "::1"}


class HttpServer:
    """aiohttp application with the routes of section 6."""

    def __init__(self, services: Services, dispatcher: Dispatcher) -> None:
        self.services = services
        self.dispatcher = dispatcher
        self._runner: web.AppRunner | None = None
        settings = services.settings
        # base64 is 4/3 of the picture; the app's JSON adds an escaped line break every 76
        # characters and escapes every "/": leave room for both.
        self.app = web.Application(client_max_size=settings.max_upload * 3 // 2 + 65536)
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

    async def start(self, host: str, port: int) -> int:
        """Listen; return the real port."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _session(self, request: web.Request) -> Session:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return Session(
            client_address(
                peer[0] if peer else None,
                request.headers.get("X-Forwarded-For"),
                self.services.settings.trusted_proxies,
            )
        )

    async def _answer(self, request: web.Request, force_type: str | None = None) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            route = self.dispatcher.registry.get(force_type) if force_type else None
            type_ = route.model.RESPONSE if route is not None else "error"
            refused = self.dispatcher.error_frame(type_, PayloadRefused("request body too large"))
            return _json(refused, 413)
        session = self._session(request)
        frame = await self.dispatcher.dispatch(body, session, force_type=force_type)
        self.dispatcher.publish_outbox(session)
        if frame is None:
            return web.Response(status=204)
        return _json(frame)

    async def api(self, request: web.Request) -> web.Response:
        """Any request of sections 3 and 4 as a JSON body."""
        return await self._answer(request)

    async def legacy(self, request: web.Request) -> web.Response:
        """The original app's upload route: POST /index.php?r=picture/upload."""
        if request.query.get("r") != "picture/upload":
            raise web.HTTPNotFound()
        return await self._answer(request, force_type=UPLOAD_TYPE)

    async def uploads(self, request: web.Request) -> web.StreamResponse:
        """A stored picture, by its content-hash path."""
        path = request.match_info["path"]
        if not MEDIA_PATH.match(path):
            raise web.HTTPNotFound()
        file = self.services.media_dir / path
        if not file.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(
            file,
            headers={
                "Content-Type": _CONTENT_TYPES[path.rsplit(".", 1)[1]],
                "Cache-Control": "public, max-age=31536000, immutable",
                "X-Content-Type-Options": "nosniff",
            },
        )

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
            text=self.services.metrics.render(), content_type="text/plain", charset="utf-8"
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
        sent = self.services.hub.broadcast(SystemNotify(msg=msg).model_dump_json())
        return web.json_response({"sent": sent})


def _json(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="application/json", charset="utf-8")
