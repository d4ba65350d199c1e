"""From raw frame to response frame: the one place where failures become error frames."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Any

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
from protocol.base import ErrorFrame, Request, Response, Rules

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

MAX_ID_CHARS = 64
#: A frame with more commas than this is refused unparsed (error 11): parsing costs about
#: one object per comma, and no request comes near it (the longest text field is 1,000).
MAX_FRAME_COMMAS = 4096
_OBJECT_START = re.compile(r"[ \t\n\r]*\{")
_OBJECT_START_BYTES = re.compile(rb"[ \t\n\r]*\{")


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        # A lone surrogate (a JSON `\ud800` escape) cannot be written back as UTF-8.
        return len(value) <= MAX_ID_CHARS and _encodable(value)
    if isinstance(value, int):
        return len(str(value)) <= MAX_ID_CHARS
    return False


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
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


def _with_id(frame: str, request_id: Any) -> str:
    if request_id is None:
        return frame
    return f'{frame[:-1]},"id":{json.dumps(request_id, ensure_ascii=False)}}}'


class Dispatcher:
    """Parse, validate, authenticate, rate-limit, call the handler, render the answer."""

    def __init__(self, services: Services, registry: Registry) -> None:
        self.services = services
        self.registry = registry

    async def dispatch(
        self, raw: str | bytes, session: Session, *, force_type: str | None = None
    ) -> str | None:
        """Answer one frame with one frame (None only for silent messages).

        `force_type` routes the frame whatever its `type` says (the legacy upload route).
        """
        # Every frame counts towards the rates, even one refused unparsed (section 2).
        wait = self._take_request(session)
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
        return await self.dispatch_object(payload, session, wait=wait)

    async def dispatch_object(
        self, payload: dict[str, Any], session: Session, *, wait: float | None = None
    ) -> str | None:
        """Answer an already parsed JSON object (`wait`: its rate check, if already taken)."""
        if wait is None:
            wait = self._take_request(session)
        type_ = payload.get("type")
        route = self.registry.get(type_) if isinstance(type_, str) else None
        request_id = payload.get("id")
        if route is None:
            # A valid id is echoed even here: a pipelining client learns which one failed.
            echoed = request_id if _valid_id(request_id) else None
            return _with_id(self.error_frame("error", UnknownType()), echoed)
        self.services.metrics.request(route.type)
        ctx: Context | None = None
        try:
            if request_id is not None and not _valid_id(request_id):
                request_id = None
                raise BadInput("id must be a string or an integer of at most 64 characters")
            if "id" in payload and payload["id"] is None:
                raise BadInput("id must not be null")
            try:
                request = route.model.model_validate(payload, context=self._rules())
            except ValidationError as exc:
                raise BadInput(_describe(exc)) from None
            if not _all_encodable(request):
                raise BadInput("a field holds a lone surrogate, which is not Unicode text")
            ctx = Context(self.services, session)
            await self._authenticate(route, request, ctx, session)
            if wait:
                raise TooFrequent(wait, "too many requests on this connection or address")
            with self.services.metrics.handling(route.type):
                response = await route.handler(ctx, request)
        except LovewireError as exc:
            if route.silent:
                return None
            return _with_id(self.error_frame(route.response_type, exc), request_id)
        except Exception:
            (log if ctx is None else ctx.log).exception("handler for %s failed", route.type)
            if route.silent:
                return None
            return _with_id(self.error_frame(route.response_type, Internal()), request_id)
        if response is None:
            return None
        return _with_id(_render(response), request_id)

    def _rules(self) -> Rules:
        """The server's rules a request's fields are checked against while validated."""
        settings = self.services.settings
        today = datetime.fromtimestamp(self.services.clock.now(), settings.zone).date()
        return Rules(settings.sms_international, settings.min_age, today)

    async def _authenticate(
        self, route: Route, request: Request, ctx: Context, session: Session
    ) -> None:
        if route.auth == "self":
            return
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
            ctx.end_expired_session()
        if route.auth == "user":
            if session.login is None:
                raise BadToken("not logged in")
            ctx.act_as(session.login)

    async def publish_outbox(self, session: Session) -> None:
        """Deliver the pushes the session's last request committed (after its response)."""
        if session.outbox:
            pushes, session.outbox = session.outbox, []
            await self.services.hub.publish(pushes)

    def _take_request(self, session: Session) -> float:
        """Count one request on the session's and its address's rates; 0 or the wait."""
        now = self.services.clock.now()
        if session.bucket is None:
            session.bucket = TokenBucket(self.services.settings.requests_per_second, now)
        wait = session.bucket.take(now)
        if session.addr_bucket is not None:
            wait = max(wait, session.addr_bucket.take(now))
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


def _describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "frame"
    return f"{where}: {first['msg']}"
