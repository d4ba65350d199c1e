"""Feature handlers, one module per feature; the engine includes these tables."""

from __future__ import annotations

from handlers import auth, chat, crush, pictures, profile, registration, settings
from lovewire.registry import HandlerTable

__all__ = ["TABLES", "auth", "chat", "crush", "pictures", "profile", "registration", "settings"]

TABLES: tuple[HandlerTable, ...] = (
    auth.table,
    registration.table,
    crush.table,
    profile.table,
    settings.table,
    pictures.table,
    chat.table,
)
