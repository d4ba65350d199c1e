"""Pydantic models of every lovewire message: the wire contract as code.

Pure data: nothing here imports the engine or the handlers.
"""

from __future__ import annotations

from pydantic import BaseModel

from protocol import base, chat, crush, pictures, profile, pushes, session, settings
from protocol.base import ErrorFrame, Notify, Request, Response, UnsequencedNotify
from protocol.codes import ErrorCode

__all__ = ["ErrorCode", "ErrorFrame", "Notify", "Request", "Response", "all_messages"]

#: Modules holding message models; a new feature module is added here.
MODULES = (session, pushes, crush, profile, settings, pictures, chat)


def all_messages() -> list[type[BaseModel]]:
    """Return every concrete message model (requests, responses, pushes, the error frame)."""
    bases = (Request, Response, Notify, UnsequencedNotify)
    found: list[type[BaseModel]] = [ErrorFrame]
    for module in MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, bases) and obj not in bases:
                found.append(obj)
    return found


del base
