"""The server as one object: start and stop are one AsyncExitStack, unwound in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from contextlib import AsyncExitStack
from types import TracebackType

from lovewire.chats import ChatChores
from lovewire.clock import Clock
from lovewire.config import Settings
from lovewire.context import Services
from lovewire.dispatch import Dispatcher
from lovewire.httpserver import HttpServer
from lovewire.hub import Hub, hub_from_settings
from lovewire.imagepool import ImagePool
from lovewire.ingress import AcceptErrorLog, AddressBook, watch_descriptors
from lovewire.media import MediaStore
from lovewire.pushes import DeliveryRecorder
from lovewire.registry import HandlerTable, Registry
from lovewire.security import CodeHasher
from lovewire.sms import SmsGateway, gateway_from_settings
from lovewire.storage.backends import media_from_settings, store_from_settings
from lovewire.storage.base import Store
from lovewire.wsserver import WsServer
from protocol.times import DAY, HOUR

__all__ = ["Lovewire"]

log = logging.getLogger(__name__)

PRUNE_EVERY = float(HOUR)
#: The first pruning waits this long after start, out of the way of the reconnect storm.
PRUNE_FIRST = 60.0


class Lovewire:
    """Storage, pictures, SMS gateway, hub, listeners; `async with Lovewire(settings, tables=...)`.

    `tables` are the feature modules' handler tables (`handlers.TABLES`); they are checked
    here, so a missing or duplicate handler fails before anything starts. With
    `listen=False` nothing listens: `dispatcher.serve` answers frames given to it (tests
    of the request cycle without a socket). With `reuse_port=True` both listeners share
    their ports with other processes (SO_REUSEPORT): the workers of `lovewire.workers`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        tables: Iterable[HandlerTable],
        clock: Clock | None = None,
        sms: SmsGateway | None = None,
        store: Store | None = None,
        media: MediaStore | None = None,
        hub: Hub | None = None,
        listen: bool = True,
        reuse_port: bool = False,
    ) -> None:
        self.settings = settings
        self.listen = listen
        self.reuse_port = reuse_port
        self.clock = clock or Clock()
        self._sms = sms
        self._store = store
        self._media = media
        self._hub = hub
        self.registry = Registry(tables)
        self.ws_port = 0
        self.http_port = 0
        self.services: Services | None = None
        self.ws: WsServer | None = None
        self.recorder: DeliveryRecorder | None = None
        self.dispatcher: Dispatcher | None = None
        self.chats: ChatChores | None = None
        self._stack = AsyncExitStack()

    async def start(self) -> None:
        settings = self.settings
        stack = self._stack
        try:
            loop = asyncio.get_running_loop()
            # Kept after stop: a listener's accept retry may still fire once it is closed.
            if not isinstance(loop.get_exception_handler(), AcceptErrorLog):
                loop.set_exception_handler(AcceptErrorLog(loop.get_exception_handler()))
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            store = self._store or store_from_settings(settings)
            await store.open()
            stack.push_async_callback(store.close)
            codes = CodeHasher(await store.secret())
            media = self._media or media_from_settings(settings)
            await media.open()
            stack.push_async_callback(media.close)
            sms = self._sms or gateway_from_settings(settings)
            await sms.start()
            stack.push_async_callback(sms.close)
            hub = self._hub or hub_from_settings(settings, self.clock)
            await hub.start()
            stack.push_async_callback(hub.close)
            pictures = ImagePool(
                workers=settings.picture_workers,
                wait=settings.picture_wait,
                cpu_seconds=settings.picture_cpu_seconds,
                memory_bytes=settings.picture_memory_mb * 2**20,
                deadline=settings.picture_deadline,
            )
            stack.push_async_callback(pictures.close)
            services = Services(
                settings=settings,
                store=store,
                hub=hub,
                sms=sms,
                clock=self.clock,
                codes=codes,
                pictures=pictures,
                media=media,
            )
            self.services = services
            store.on_commit = services.metrics.committed
            # Unwound after the listeners close: the figures of their last requests too.
            stack.callback(services.metrics.flush)
            recorder = self.recorder = DeliveryRecorder(store)
            await recorder.start()
            stack.push_async_callback(recorder.close)
            dispatcher = self.dispatcher = Dispatcher(services, self.registry)
            if self.listen:
                await self._start_listeners(services, dispatcher, recorder)
            pruner = asyncio.create_task(self._prune_forever(services))
            stack.push_async_callback(_cancel, pruner)
            chats = self.chats = ChatChores(services)
            chats.start()
            stack.push_async_callback(chats.close)
        except BaseException:
            await stack.aclose()
            raise

    async def _start_listeners(
        self, services: Services, dispatcher: Dispatcher, recorder: DeliveryRecorder
    ) -> None:
        settings = self.settings
        addresses = AddressBook(settings, self.clock)
        http = HttpServer(services, dispatcher, addresses)
        reuse = self.reuse_port
        self.http_port = await http.start(settings.host, settings.http_port, reuse_port=reuse)
        self._stack.push_async_callback(http.close)
        ws = self.ws = WsServer(services, dispatcher, recorder, addresses)
        self.ws_port = await ws.start(settings.host, settings.ws_port, reuse_port=reuse)
        self._stack.push_async_callback(_close_listeners, ws, http, settings.shutdown_grace)
        # uvloop reports no failed accept: the operator learns of the shortage from this.
        report = asyncio.get_running_loop().get_exception_handler()
        assert isinstance(report, AcceptErrorLog)
        probe = asyncio.create_task(watch_descriptors(report))
        self._stack.push_async_callback(_cancel, probe)

    async def stop(self) -> None:
        """Close listeners (sockets get 1001), then the hub, the SMS client and the store."""
        await self._stack.aclose()

    async def __aenter__(self) -> Lovewire:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def listening_line(self) -> str:
        host = self.settings.host
        return f"lovewire listening ws://{host}:{self.ws_port} http://{host}:{self.http_port}"

    async def prune(self) -> None:
        """Forget pushes past retention and SMS bookkeeping older than two days."""
        assert self.services is not None
        now = int(self.clock.now())
        keep = int(self.settings.push_retention_days * DAY)
        async with self.services.store.unit() as tx:
            pruned = await tx.pushes.prune(now - keep)
        if pruned:
            log.info("pruned %d stored pushes", pruned)

    async def _prune_forever(self, services: Services) -> None:
        await asyncio.sleep(PRUNE_FIRST)
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("pruning failed")
            await asyncio.sleep(PRUNE_EVERY)


async def _close_listeners(ws: WsServer, http: HttpServer, grace: float) -> None:
    """Stop both listeners at once; what is in flight gets `grace` seconds in all."""
    await asyncio.gather(ws.close(grace), http.close())


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
