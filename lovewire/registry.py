"""Handler tables: decorators only record; the engine includes tables explicitly."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeGuard, TypeVar, Union

from pydantic import BaseModel, Field, TypeAdapter

from protocol import all_messages
from protocol.base import Request, Response, message_type

if TYPE_CHECKING:
    from lovewire.context import Context

__all__ = ["AuthMode", "HandlerTable", "Registry", "RegistryError", "Route"]

#: How a request's `token` is treated before its handler runs:
#: "user": a logged-in socket or a valid token is required;
#: "optional": a token, when present, must be valid;
#: "lenient": a valid token logs the socket in, an invalid one is ignored (SMS login);
#: "self": the handler reads the token itself (auth_request, registration tickets).
AuthMode = Literal["user", "optional", "lenient", "self"]

R = TypeVar("R", bound=Request)

Handler = Callable[["Context", Any], Awaitable[Response | None]]


@dataclass(frozen=True, slots=True)
class Route:
    model: type[Request]
    handler: Handler
    auth: AuthMode
    #: The request's wire `type`.
    type: str = field(init=False)
    #: The `type` of the frame answering it ("" for a request answered by nothing).
    response_type: str = field(init=False)

    def __post_init__(self) -> None:
        response = getattr(self.model, "RESPONSE", None)
        response_type = message_type(response) if _is_response(response) else ""
        object.__setattr__(self, "type", message_type(self.model))
        object.__setattr__(self, "response_type", response_type)

    @property
    def silent(self) -> bool:
        """True for a request answered by nothing, not even an error (`notify_ack`)."""
        return getattr(self.model, "RESPONSE", None) is None


class HandlerTable:
    """The handlers of one feature module."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def handles(
        self, model: type[R], *, auth: AuthMode = "user"
    ) -> Callable[[Callable[[Context, R], Awaitable[Any]]], Callable[[Context, R], Awaitable[Any]]]:
        """Register the decorated coroutine as the handler of `model`."""

        def record(
            handler: Callable[[Context, R], Awaitable[Any]],
        ) -> Callable[[Context, R], Awaitable[Any]]:
            self.routes.append(Route(model, handler, auth))
            return handler

        return record


class RegistryError(ValueError):
    """The handler tables do not cover the protocol's requests exactly once."""


class Registry:
    """Every route by request `type`, checked when built.

    Each request model of `messages` (by default every one `protocol` lists) must have
    exactly one handler, and a handler must handle one of them: a missing, a duplicate
    or a stray handler fails here, at start, rather than as error 4 at the first frame.
    """

    def __init__(
        self,
        tables: Iterable[HandlerTable],
        messages: Iterable[type[BaseModel]] | None = None,
    ) -> None:
        if messages is None:
            messages = all_messages()
        requests = [m for m in messages if issubclass(m, Request)]
        known = {message_type(m): m for m in requests}
        self.routes: dict[str, Route] = {}
        problems: list[str] = []
        for table in tables:
            for route in table.routes:
                if known.get(route.type) is not route.model:
                    problems.append(
                        f"{route.model.__name__} ({route.type!r}) handled by "
                        f"{_name(route.handler)} is not a request protocol lists"
                    )
                elif route.type in self.routes:
                    problems.append(
                        f"two handlers for {route.type!r}: "
                        f"{_name(self.routes[route.type].handler)} and {_name(route.handler)}"
                    )
                else:
                    self.routes[route.type] = route
        for type_, model in known.items():
            if type_ not in self.routes:
                problems.append(f"no handler for {type_!r} ({model.__name__})")
            if not hasattr(model, "RESPONSE"):
                problems.append(f"{model.__name__} declares no RESPONSE")
            elif model.RESPONSE is not None and not _is_response(model.RESPONSE):
                problems.append(f"{model.__name__}.RESPONSE is not a response model")
        if problems:
            raise RegistryError("; ".join(problems))

    def get(self, type_: str) -> Route | None:
        return self.routes.get(type_)

    def request_adapter(self) -> TypeAdapter[Request]:
        """One validator of every routed request, chosen by the frame's `type`.

        It parses JSON and validates in one pass. The member is chosen by the `type`
        literal, in pydantic's own code: a frame whose `type` is missing, not a string or
        not routed fails (`union_tag_not_found`, `union_tag_invalid`).
        """
        members = tuple(r.model for r in self.routes.values())
        union: Any = Union[members]  # noqa: UP007  (a union built at run time)
        adapter: TypeAdapter[Request] = TypeAdapter(Annotated[union, Field(discriminator="type")])
        return adapter


def _is_response(model: object) -> TypeGuard[type[Response]]:
    return isinstance(model, type) and issubclass(model, Response)


def _name(handler: Handler) -> str:
    return f"{handler.__module__}.{handler.__qualname__}"
