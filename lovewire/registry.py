"""Handler tables: decorators only record; the engine includes tables explicitly."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from protocol.base import Request, Response

if TYPE_CHECKING:
    from lovewire.context import Context

__all__ = ["AuthMode", "HandlerTable", "Registry", "Route"]

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

    @property
    def type(self) -> str:
        return str(self.model.model_fields["type"].default)


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


class Registry:
    """Every route by request `type`; a duplicate type is refused."""

    def __init__(self, tables: Iterable[HandlerTable]) -> None:
        self.routes: dict[str, Route] = {}
        for table in tables:
            for route in table.routes:
                if route.type in self.routes:
                    raise ValueError(f"two handlers for {route.type!r}")
                self.routes[route.type] = route

    def get(self, type_: str) -> Route | None:
        return self.routes.get(type_)
