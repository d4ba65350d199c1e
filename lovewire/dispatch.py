"""The request cycle, from raw frame to answer: the one place where failures become error frames."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, time, timedelta
from json.encoder import encode_basestring
from time import perf_counter
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from lovewire.context import Context, Services
from lovewire.errors import (
    BadFrame,
    BadInput,
    BadToken,
    Internal,
    LovewireError,
    PayloadRefused,
    TooFrequent,
    UnknownType,
)
from lovewire.registry import Registry, Route
from lovewire.session import Session, TokenBucket
from protocol.base import ErrorFrame, Request, Response, Rules, request_id

__all__ = ["Channel", "Dispatcher"]

log = logging.getLogger(__name__)

#: A frame with more commas than this is refused unparsed (error 11): parsing costs about
#: one object per comma, and no request comes near it (the longest text field is 1,000).
MAX_FRAME_COMMAS = 4096
_OBJECT_START = re.compile(r"[ \t\n\r]*\{")
_OBJECT_START_BYTES = re.compile(rb"[ \t\n\r]*\{")


class Channel(Protocol):
    """Where a request's answer goes: a socket's queue, or one HTTP exchange."""

    @property
    def session(self) -> Session:
        """The caller."""

    def respond(self, frame: str) -> None:
        """Send the answer (called at most once per request)."""

    async def replay(self) -> None:
        """Send the pushes the session's new login owes (`session.replay`), or drop them."""


def _valid_id(value: Any) -> bool:
    try:
        request_id(value)
    except ValueError:
        return False
    return True


def _all_encodable(request: Request) -> bool:
    """True if every string the request holds can be written as UTF-8 (stored, echoed)."""
    todo: list[Any] = list(request.__dict__.values())
    while todo:
        value = todo.pop()
        if isinstance(value, str):
            if not value.isascii() and not _encodable(value):
                return False
        elif isinstance(value, BaseModel):
            todo.extend(value.__dict__.values())
        elif isinstance(value, dict):
            todo.extend(value.keys())
            todo.extend(value.values())
        elif isinstance(value, list):
            todo.extend(value)
    return True


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _with_id(frame: str, request_id: Any) -> str:
    if request_id is None:
        return frame
    # What json.dumps(request_id, ensure_ascii=False) writes, without making an encoder.
    if type(request_id) is str:
        echoed = encode_basestring(request_id)
    elif type(request_id) is int:
        echoed = str(request_id)
    else:
        echoed = json.dumps(request_id, ensure_ascii=False)
    return f'{frame[:-1]},"id":{echoed}}}'


class Dispatcher:
    """The request cycle: parse, route, validate, authenticate, rate, handle, answer.

    Both listeners call `serve` for each frame (the WebSocket's, an HTTP body); tests
    can call it with a channel of their own, no socket needed.
    """

    def __init__(self, services: Services, registry: Registry) -> None:
        self.services = services
        self.registry = registry
        self._requests = registry.request_adapter()
        # Its validator's own method: TypeAdapter.validate_json only checks its options
        # (none given here) and calls it.
        self._validate_json = self._requests.validator.validate_json
        self._rules_now = Rules()
        #: The server's day `_rules_now` holds, as a span of the server's clock.
        self._rules_from = self._rules_until = 0.0
        #: The last response rendered, and its frame: a handler that returns one object
        #: again (ping, within a second) gets it rendered once. Handlers never change a
        #: response they returned.
        self._last_response: Response | None = None
        self._last_frame = ""

    async def serve(
        self, raw: str | bytes, channel: Channel, *, force_type: str | None = None
    ) -> None:
        """One frame's whole cycle: its answer, then the pushes its request committed
        (published after the answer, so the caller sees them in that order), then the
        replay its login owes."""
        session = channel.session
        reply = await self.answer(raw, session, force_type=force_type)
        if reply is not None:
            channel.respond(reply)
        if session.outbox:
            pushes, session.outbox = session.outbox, []
            await self.services.hub.publish(pushes)
        if session.replay is not None:
            await channel.replay()

    async def answer(
        self, raw: str | bytes, session: Session, *, force_type: str | None = None
    ) -> str | None:
        """Answer one frame with one frame (None only for silent messages).

        `force_type` routes the frame whatever its `type` says (the legacy upload route).
        """
        # Every frame counts towards the rates, even one refused unparsed (section 2).
        now = self.services.clock.now()
        wait = self._take_request(session, now)
        if isinstance(raw, str):
            is_object, commas = bool(_OBJECT_START.match(raw)), raw.count(",")
        else:
            is_object, commas = bool(_OBJECT_START_BYTES.match(raw)), raw.count(b",")
        if not is_object:
            return self.error_frame("error", BadFrame())  # what parsing would answer
        if commas > MAX_FRAME_COMMAS:
            route = self.registry.get(force_type) if force_type else None
            type_ = route.response_type if route is not None else "error"
            return self.error_frame(type_, PayloadRefused("frame too complex"))
        if force_type is None:
            try:
                # The frame is parsed and validated in one pass; it holds valid Unicode
                # only (a lone surrogate escape fails as invalid JSON).
                request = self._validate_json(raw, context=self._rules(now))
            except ValidationError:
                pass  # the slow path below finds which error, and the id to echo
            else:
                route = self.registry.routes[request.type]
                return await self._handle(route, request, session, wait)
        try:
            # strict=False: raw line breaks inside strings (hand-built JSON around
            # Android's line-broken base64) are read, not refused.
            payload = json.loads(raw, strict=False)
        except (ValueError, RecursionError):
            return self.error_frame("error", BadFrame())
        if not isinstance(payload, dict):
            return self.error_frame("error", BadFrame())
        if force_type is not None:
            payload["type"] = force_type
        return await self._answer_object(payload, session, wait, now)

    async def _answer_object(
        self, payload: dict[str, Any], session: Session, wait: float, now: float
    ) -> str | None:
        """Answer a parsed JSON object that the one-pass validation did not take."""
        type_ = payload.get("type")
        route = self.registry.get(type_) if isinstance(type_, str) else None
        request_id = payload.get("id")
        echoed = request_id if _valid_id(request_id) else None
        if route is None:
            # A valid id is echoed even here: a pipelining client learns which one failed.
            return _with_id(self.error_frame("error", UnknownType()), echoed)
        self.services.metrics.request(route.type)
        try:
            try:
                request = self._requests.validate_python(payload, context=self._rules(now))
            except ValidationError as exc:
                raise BadInput(_describe(exc, route.type)) from None
            if not _all_encodable(request):
                raise BadInput("a field holds a lone surrogate, which is not Unicode text")
        except LovewireError as exc:
            if route.silent:
                return None
            return _with_id(self.error_frame(route.response_type, exc), echoed)
        return await self._handle(route, request, session, wait, counted=True)

    async def _handle(
        self,
        route: Route,
        request: Request,
        session: Session,
        wait: float,
        *,
        counted: bool = False,
    ) -> str | None:
        """Authenticate and rate a valid request, call its handler, render the answer."""
        if not counted:
            self.services.metrics.request(route.type)
        ctx = Context(self.services, session)
        try:
            if route.auth != "self":
                await self._authenticate(route, request, ctx, session)
            if wait:
                raise TooFrequent(wait, "too many requests on this connection or address")
            started = perf_counter()
            try:
                response = await route.handler(ctx, request)
            finally:
                self.services.metrics.handled(route.type, perf_counter() - started)
        except LovewireError as exc:
            if route.silent:
                return None
            return _with_id(self.error_frame(route.response_type, exc), request.id)
        except Exception:
            ctx.log.exception("handler for %s failed", route.type)
            if route.silent:
                return None
            return _with_id(self.error_frame(route.response_type, Internal()), request.id)
        if response is None:
            return None
        if response is self._last_response:
            frame = self._last_frame
        else:
            frame = self._last_frame = _render(response)
            self._last_response = response
        return _with_id(frame, request.id)

    def _rules(self, now: float) -> Rules:
        """The server's rules a request's fields are checked against while validated
        (made again when the server's date changes); `now` is the server's clock."""
        if not self._rules_from <= now < self._rules_until:
            settings = self.services.settings
            today = datetime.fromtimestamp(now, settings.zone).date()
            self._rules_now = Rules(settings.sms_international, settings.min_age, today)
            self._rules_from = datetime.combine(today, time(), settings.zone).timestamp()
            tomorrow = datetime.combine(today + timedelta(days=1), time(), settings.zone)
            self._rules_until = tomorrow.timestamp()
        return self._rules_now

    async def _authenticate(
        self, route: Route, request: Request, ctx: Context, session: Session
    ) -> None:
        """Check the request's token, or the socket's login, as its route's `auth` asks
        (never called for "self": the handler checks)."""
        if request.token is not None:
            try:
                login = await ctx.check_token(request.token)
            except BadToken:
                if route.auth == "lenient":
                    return
                raise
            if session.login is None:
                await ctx.log_in(login)
            elif session.login.user_id != login.user_id:
                raise BadToken("token of another user than this socket's")
            if route.auth == "user":
                ctx.act_as(login)
            return
        if session.login is not None and session.login.expires_ts <= ctx.now():
            await ctx.end_expired_session()
        if route.auth == "user":
            if session.login is None:
                raise BadToken("not logged in")
            ctx.act_as(session.login)

    def _take_request(self, session: Session, now: float) -> float:
        """Count one request on the session's and its address's rates; 0 or the wait."""
        if session.bucket is None:
            session.bucket = TokenBucket(self.services.settings.requests_per_second, now)
        wait = session.bucket.take(now)
        if session.addr_bucket is not None:
            wait = max(wait, session.addr_bucket.take(now))
            wait = max(wait, self.services.hub.address_request(session.addr, now))
        return wait

    def error_frame(self, type_: str, exc: LovewireError) -> str:
        """The error frame answering a request of response type `type_`."""
        self.services.metrics.error(int(exc.error_no))
        frame = ErrorFrame(
            type=type_,
            error_no=int(exc.error_no),
            err_msg=exc.message(self.services.settings.lang),
            retry_after=getattr(exc, "retry_after", None),
        )
        return frame.model_dump_json(exclude_none=True)


def _render(response: Response) -> str:
    return response.model_dump_json(exclude_none=True)


def _describe(exc: ValidationError, tag: str) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    loc = first["loc"]
    if loc and loc[0] == tag:  # the member of the union it was validated as
        loc = loc[1:]
    where = ".".join(str(p) for p in loc) or "frame"
    return f"{where}: {first['msg']}"
