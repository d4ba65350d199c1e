"""The registry: every request of `protocol` has exactly one handler, checked at start."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pytest

import handlers
from handlers import TABLES
from lovewire.app import Lovewire
from lovewire.config import Settings
from lovewire.context import Context
from lovewire.registry import HandlerTable, Registry, RegistryError
from protocol import Request, Response, all_messages
from protocol.base import message_type
from protocol.pictures import PictureLikeRequest
from protocol.session import PingRequest, PingResponse
from tests.conftest import Server


def _settings(tmp_path: Path) -> Settings:
    return Settings(host="127.0.0.1", ws_port=0, http_port=0, data_dir=tmp_path / "data")


def test_registry_every_request_handled_once() -> None:
    """The shipped tables cover every request model of `protocol`, each once."""
    registry = Registry(TABLES)
    requests = [m for m in all_messages() if issubclass(m, Request)]
    assert sorted(registry.routes) == sorted(message_type(m) for m in requests)
    assert all(registry.routes[message_type(m)].model is m for m in requests)


def test_registry_missing_handler_fails_at_start(tmp_path: Path) -> None:
    """A forgotten table is refused when the app is built, naming each message it leaves."""
    without_crush = [t for t in TABLES if t is not handlers.crush.table]
    with pytest.raises(RegistryError) as info:
        Lovewire(_settings(tmp_path), tables=without_crush)
    message = str(info.value)
    for type_ in ("crush_add_request", "crush_list_request", "crush_remove_request"):
        assert f"no handler for {type_!r}" in message
    assert "ping_request" not in message


def test_registry_duplicate_handler_fails_at_start(tmp_path: Path) -> None:
    """A second handler for a message is refused when the app is built, naming both."""
    extra = HandlerTable()

    @extra.handles(PingRequest, auth="optional")
    async def ping_again(ctx: Context, req: PingRequest) -> PingResponse:
        raise AssertionError("never called")

    with pytest.raises(RegistryError) as info:
        Lovewire(_settings(tmp_path), tables=[*TABLES, extra])
    message = str(info.value)
    assert "two handlers for 'ping_request'" in message
    assert "handlers.auth." in message and "ping_again" in message


def test_registry_handler_of_unlisted_model_refused() -> None:
    """A handler for a request `protocol` does not list (a forgotten export) is refused."""

    class StrayResponse(Response):
        type: Literal["stray_response"] = "stray_response"

    class StrayRequest(Request):
        RESPONSE = StrayResponse
        type: Literal["stray_request"] = "stray_request"

    extra = HandlerTable()

    @extra.handles(StrayRequest)
    async def stray(ctx: Context, req: StrayRequest) -> StrayResponse:
        return StrayResponse()

    with pytest.raises(RegistryError, match=re.escape("StrayRequest ('stray_request') handled by")):
        Registry([*TABLES, extra])
    # The same model listed among the messages is accepted.
    registry = Registry([*TABLES, extra], messages=[*all_messages(), StrayRequest])
    assert registry.routes["stray_request"].response_type == "stray_response"


def test_registry_response_must_be_a_model() -> None:
    """`RESPONSE` names the response model; a string (the old way) is refused."""

    class OldStyle(Request):
        RESPONSE = "old_style_response"  # type: ignore[assignment]
        type: Literal["old_style_request"] = "old_style_request"

    table = HandlerTable()

    @table.handles(OldStyle)
    async def old(ctx: Context, req: OldStyle) -> None:
        return None

    with pytest.raises(RegistryError, match=re.escape("OldStyle.RESPONSE is not a response model")):
        Registry([*TABLES, table], messages=[*all_messages(), OldStyle])


def test_requests_response_is_a_listed_response_model() -> None:
    """Every request's RESPONSE is a response model of `protocol` (None: answered by nothing)."""
    messages = all_messages()
    for model in messages:
        if issubclass(model, Request):
            response = model.RESPONSE
            if response is None:
                assert message_type(model) in ("notify_ack", "chat_typing_request")
                continue
            assert issubclass(response, Response) and response in messages, model


async def test_error_frame_type_taken_from_response_model(server: Server) -> None:
    """A refused request's error frame carries its response model's `type`, and its `id`."""
    async with server.connect() as c:
        cases: list[tuple[type[Request], dict[str, object]]] = [
            (PingRequest, {"type": "ping_request", "id": [1]}),
            (PictureLikeRequest, {"type": "picture_like_request", "picture_id": "1", "id": 9}),
        ]
        for model, frame in cases:
            answer = await c.request(frame)
            assert model.RESPONSE is not None
            assert answer["type"] == message_type(model.RESPONSE)
            assert answer["success"] is False and answer["error_no"] in (2, 5)
