"""Base classes and field types shared by every message."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

__all__ = [
    "MAX_ID",
    "MAX_ID_CHARS",
    "ErrorFrame",
    "Id",
    "IdOut",
    "Notify",
    "Request",
    "Response",
    "Rules",
    "Text",
    "UnsequencedNotify",
    "message_type",
    "parse_id",
    "request_id",
    "rules_of",
]

MAX_ID = 2**63 - 1
#: The longest request `id`, in characters (section 1).
MAX_ID_CHARS = 64


def parse_id(value: Any) -> int:
    """Read an id sent as a decimal string or an int; refuse anything else."""
    if isinstance(value, bool):
        raise ValueError("an id is a decimal string or an integer")
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 19:
            raise ValueError("an id is a decimal string")
        value = int(text)
    if not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise ValueError("an id is a positive integer")
    return value


#: An id in a request: a decimal string or an int, read as an int.
Id = Annotated[int, BeforeValidator(parse_id)]

#: An id in a response or push: always a decimal string on the wire.
IdOut = Annotated[int, PlainSerializer(str, return_type=str, when_used="always")]


#: Bidirectional overrides and isolates: they make text read in another order than stored.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Zero-width characters: a text of only these (and white space) shows nothing.
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
#: Most code points read before normalizing, per character allowed after (NFC composes
#: at most a few code points into one): a huge text is refused before any work.
_RAW_PER_CHAR = 4


def _blank(char: str) -> bool:
    return char.isspace() or char in _ZERO_WIDTH


@dataclass(frozen=True, slots=True)
class Text:
    """A text people read (section 2), as an `Annotated[str, Text(...)]` marker.

    Refused (error 2): control characters (a line feed is allowed where `line_breaks`),
    bidirectional overrides and isolates, a length out of range once NFC-normalized. A
    text that is only white space and zero-width characters is empty: `""` where
    `min_length` is 0, refused otherwise. Kept NFC-normalized; with `strip`, without the
    white space and zero-width characters around it.
    """

    max_length: int
    min_length: int = 0
    line_breaks: bool = True
    strip: bool = False

    def __call__(self, value: str) -> str:
        if len(value) > _RAW_PER_CHAR * self.max_length + _RAW_PER_CHAR:
            raise ValueError(f"at most {self.max_length} characters")
        for char in value:
            if char in _BIDI_CONTROLS:
                raise ValueError("bidirectional control characters are not allowed")
            category = unicodedata.category(char)
            if category == "Cc" and not (char == "\n" and self.line_breaks):
                raise ValueError("control characters are not allowed")
            if category in ("Zl", "Zp") and not self.line_breaks:
                raise ValueError("line breaks are not allowed")
        if not unicodedata.is_normalized("NFC", value):
            value = unicodedata.normalize("NFC", value)
        shown = [i for i, char in enumerate(value) if not _blank(char)]
        if not shown:
            value = ""
        elif self.strip:
            value = value[shown[0] : shown[-1] + 1]
        if not self.min_length <= len(value) <= self.max_length:
            raise ValueError(f"must be {self.min_length} to {self.max_length} characters")
        return value

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.update(minLength=self.min_length, maxLength=self.max_length)
        return json_schema


@dataclass(frozen=True, slots=True)
class Rules:
    """The server's rules that input validation needs, given as the validation context.

    Every check of a request's own fields happens while it is validated, so a field that
    is not valid is error 2 before any token is looked at (section 2: 2 before 5).
    """

    #: Accept non-mainland E.164 tels (LOVEWIRE_SMS_INTERNATIONAL).
    international: bool = False
    #: Youngest age allowed (LOVEWIRE_MIN_AGE), and the server's date to count it on.
    min_age: int = 18
    today: date | None = None


def rules_of(info: ValidationInfo) -> Rules:
    """The rules a validation runs under (the defaults without a context)."""
    return info.context if isinstance(info.context, Rules) else Rules()


def message_type(model: type[BaseModel]) -> str:
    """The wire `type` of a message model: the default of its `type` field."""
    field = model.model_fields.get("type")
    default = field.default if field is not None else None
    if not isinstance(default, str) or not default:
        raise TypeError(f"{model.__name__} has no `type` of its own")
    return default


def _empty_to_none(value: Any) -> Any:
    return None if value == "" else value


class Response(BaseModel):
    """A response: exact, every one carries success, error_no and err_msg."""

    model_config = ConfigDict(extra="forbid")

    type: str
    success: bool = True
    error_no: int = 0
    err_msg: str = ""


def request_id(value: Any) -> str | int:
    """A request's `id` (section 1): a string or an int of at most 64 characters."""
    if value is None:
        raise ValueError("id must not be null")
    if isinstance(value, str):
        # A lone surrogate (a JSON `\ud800` escape) cannot be written back as UTF-8.
        if len(value) <= MAX_ID_CHARS and _encodable(value):
            return value
    elif isinstance(value, int) and not isinstance(value, bool):
        if len(str(value)) <= MAX_ID_CHARS:
            return value
    raise ValueError(f"id must be a string or an integer of at most {MAX_ID_CHARS} characters")


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class Request(BaseModel):
    """A client request: liberal, unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    #: The response model answering this request; None for a request answered by
    #: nothing, not even an error (`notify_ack`).
    RESPONSE: ClassVar[type[Response] | None]

    type: str
    token: Annotated[
        Annotated[str, Field(max_length=512)] | None, BeforeValidator(_empty_to_none)
    ] = None
    #: Echoed in the response, for clients that pipeline (never null when present).
    id: Annotated[
        str | int | None,
        PlainValidator(request_id),
        WithJsonSchema(
            {"anyOf": [{"type": "string", "maxLength": MAX_ID_CHARS}, {"type": "integer"}]}
        ),
    ] = None


class ErrorFrame(BaseModel):
    """A failed request's response (its own `type`), or `type: error` for unanswerable frames."""

    model_config = ConfigDict(extra="forbid")

    type: str = "error"
    success: bool = False
    error_no: int
    err_msg: str
    retry_after: int | None = None


class Notify(BaseModel):
    """A push kept for replay: the server adds `seq`, `time` and `time_ts` when it is stored."""

    model_config = ConfigDict(extra="forbid")

    type: str
    seq: int = 0
    time: str = ""
    time_ts: int = 0


class UnsequencedNotify(BaseModel):
    """A push that is not kept and carries no `seq` (system and session notices)."""

    model_config = ConfigDict(extra="forbid")

    type: str
