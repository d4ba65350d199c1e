"""`lovewire schema --asyncapi`: an AsyncAPI 3.0 document of every message."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError  # type: ignore[import-untyped]
from PIL import Image

from lovewire.cli import main
from protocol import ErrorFrame, Request, Response, all_messages
from protocol.base import message_type
from tests.conftest import Server


def _png() -> str:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 40, 90)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


PNG = _png()


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("asyncapi") / "asyncapi.json"
    assert main(["schema", "--asyncapi", "--output", str(out)]) == 0
    loaded: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return loaded


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_asyncapi_document_shape(document: dict[str, Any]) -> None:
    """AsyncAPI 3.0.0, one channel at `/`, and every `$ref` in it resolves."""
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "lovewire" and document["info"]["version"]
    assert [c["address"] for c in document["channels"].values()] == ["/"]
    assert {s["protocol"] for s in document["servers"].values()} == {"ws"}
    refs = _refs(document)
    assert len(refs) > 100
    for ref in refs:
        _resolve(document, ref)
    assert "$defs" not in json.dumps(document)  # every schema hoisted to components


def test_asyncapi_every_message_with_its_type(document: dict[str, Any]) -> None:
    """Each message is there, its payload a JSON Schema whose `type` is its wire type."""
    components = document["components"]["messages"]
    (channel,) = document["channels"].values()
    answers = {message_type(m) for m in all_messages() if issubclass(m, Response)}
    for model in all_messages():
        message = components[model.__name__]
        assert model.__name__ in channel["messages"]
        payload = _resolve(document, message["payload"]["$ref"])
        assert payload["type"] == "object"
        type_schema = payload["properties"]["type"]
        if model is ErrorFrame:
            assert set(type_schema["enum"]) == {"error", *answers}
        else:
            assert type_schema["const"] == message_type(model) == message["name"]
        assert set(payload.get("required", [])) <= set(payload["properties"])
    assert len(components) == len(all_messages())


def test_asyncapi_operations_receive_requests_send_the_rest(document: dict[str, Any]) -> None:
    """Requests are received and replied to by their response (or an error frame);
    responses, pushes and the error frame are sent."""
    operations = document["operations"]
    for model in all_messages():
        wire = "error" if model is ErrorFrame else message_type(model)
        operation = operations[wire]
        (sent,) = operation["messages"]
        assert _resolve(document, sent["$ref"]) == {
            "$ref": f"#/components/messages/{model.__name__}"
        }
        if not issubclass(model, Request):
            assert operation["action"] == "send"
            continue
        assert operation["action"] == "receive"
        if model.RESPONSE is None:
            assert "reply" not in operation
            continue
        replies = [r["$ref"].rsplit("/", 1)[1] for r in operation["reply"]["messages"]]
        assert replies == [model.RESPONSE.__name__, "ErrorFrame"]


async def test_asyncapi_payloads_match_frames_on_the_wire(
    document: dict[str, Any], server: Server
) -> None:
    """Real answers, failures and pushes validate against their message's payload."""

    def check(name: str, frame: dict[str, Any]) -> None:
        payload = document["components"]["messages"][name]["payload"]
        schema = {**payload, "components": document["components"]}
        Draft202012Validator(schema).validate(frame)

    async with server.connect() as owner, server.connect() as fan:
        check("PingResponse", await owner.request({"type": "ping_request", "id": "p1"}))
        check("ErrorFrame", await owner.request({"type": "ping_request", "id": [1]}))
        check("ErrorFrame", await owner.request({"type": "no_such_type", "id": 3}))
        refused = await owner.request({"type": "picture_like_request", "picture_id": "1"})
        check("ErrorFrame", refused)
        reg = await server.register(owner)
        await server.register(fan, nickname="fan")
        check("ProfileResponse", await owner.request({"type": "profile_request"}))
        posted = await owner.request(
            {"type": "picture_upload_request", "picture": PNG, "words": "hi"}
        )
        check("PictureUploadResponse", posted)
        liked = await fan.request(
            {"type": "picture_like_request", "picture_id": posted["picture_id"], "id": 9}
        )
        check("PictureLikeResponse", liked)
        check("PictureLikeNotify", await owner.push())
        feed = await fan.request({"type": "picture_info_request"})
        check("PictureInfoResponse", feed)
        bad = {**feed, "information": "not a list"}
        with pytest.raises(ValidationError):
            check("PictureInfoResponse", bad)
        assert reg["user_id"]
