"""The AsyncAPI 3.0 document of every message: `lovewire schema --asyncapi`.

The document describes the server: its one channel is the WebSocket at `/`; a request
is an operation the server *receives* (its `reply` is the response, or an error frame
of the response's `type`), a push or the `type: error` frame one it *sends*. Payloads
are the JSON Schemas `lovewire schema` prints (requests as read, answers as written),
gathered under `components/schemas`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from lovewire import __version__
from protocol import ErrorFrame, Request, Response, all_messages
from protocol.base import message_type

__all__ = ["asyncapi"]

CHANNEL = "lovewire"
#: The optional `id` of section 1: a request's is echoed in its answer.
_ID = {
    "description": "Optional; echoed unchanged in the answer (a string or an int, 64 chars).",
    "anyOf": [{"type": "string", "maxLength": 64}, {"type": "integer"}],
}
_CORRELATION = {"location": "$message.payload#/id"}


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every message, as a JSON-ready dict."""
    messages = all_messages()
    modes: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (m, "validation" if issubclass(m, Request) else "serialization") for m in messages
    ]
    refs, top = models_json_schema(modes, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = top.get("$defs", {})
    answers = sorted(message_type(m) for m in messages if issubclass(m, Response))

    components: dict[str, Any] = {}
    channel: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for model, mode in modes:
        name = model.__name__
        payload = refs[(model, mode)]
        schema = schemas[payload["$ref"].rsplit("/", 1)[1]]
        if model is ErrorFrame:
            # `error`, or the response type of the request it refuses (section 2).
            schema["properties"]["type"]["enum"] = ["error", *answers]
        wire = "error" if model is ErrorFrame else message_type(model)
        message: dict[str, Any] = {"name": wire, "title": wire, "payload": payload}
        if model.__doc__:
            message["summary"] = model.__doc__.strip().splitlines()[0]
        if issubclass(model, (Request, Response, ErrorFrame)):
            schema["properties"]["id"] = _ID
            message["correlationId"] = _CORRELATION
        components[name] = message
        channel[name] = {"$ref": f"#/components/messages/{name}"}
        operations[wire] = _operation(model, wire, message.get("summary"))

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "lovewire",
            "version": __version__,
            "description": (
                "The lovewire wire protocol. One WebSocket text frame is one JSON object "
                "with a string `type`. This document describes the server: `receive` "
                "operations are the requests a client sends (each answered by its reply, "
                "in order), `send` operations the pushes and error frames the server sends."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:8765",
                "protocol": "ws",
                "description": "`lovewire serve` with its defaults (LOVEWIRE_HOST, _WS_PORT).",
            }
        },
        "channels": {
            CHANNEL: {
                "address": "/",
                "title": "WebSocket",
                "description": "The one socket: requests, responses and pushes share it.",
                "messages": channel,
            }
        },
        "operations": operations,
        "components": {"messages": components, "schemas": schemas},
    }


def _operation(model: type[BaseModel], wire: str, summary: str | None) -> dict[str, Any]:
    here = {"$ref": f"#/channels/{CHANNEL}"}
    operation: dict[str, Any] = {
        "action": "receive" if issubclass(model, Request) else "send",
        "channel": here,
        "title": wire,
        "messages": [_in_channel(model)],
    }
    if summary:
        operation["summary"] = summary
    if issubclass(model, Request):
        if model.RESPONSE is None:
            operation["description"] = "Answered by nothing, not even an error frame."
        else:
            replies = [_in_channel(model.RESPONSE), _in_channel(ErrorFrame)]
            operation["reply"] = {"channel": here, "messages": replies}
    return operation


def _in_channel(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/channels/{CHANNEL}/messages/{model.__name__}"}
