"""The SQLite unit: every repository bound to one connection."""

from __future__ import annotations

import aiosqlite

from lovewire.storage.base import Unit
from lovewire.storage.sqlite.accounts import SqliteCodes, SqliteSmsLog, SqliteTokens, SqliteUsers
from lovewire.storage.sqlite.chat import SqliteChats
from lovewire.storage.sqlite.crush import SqliteCrushes, SqliteTelChanges
from lovewire.storage.sqlite.inline import InlineConnection
from lovewire.storage.sqlite.pictures import SqlitePictures
from lovewire.storage.sqlite.pushes import SqlitePushes

__all__ = ["SqliteUnit"]


class SqliteUnit(Unit):
    """The repositories bound to one connection (a reader's refuses every write)."""

    def __init__(
        self, db: aiosqlite.Connection | InlineConnection, *, writable: bool = True
    ) -> None:
        super().__init__(writable=writable)
        self.db = db
        self.users = SqliteUsers(db)
        self.tokens = SqliteTokens(db)
        self.codes = SqliteCodes(db)
        self.sms = SqliteSmsLog(db)
        self.pushes = SqlitePushes(db)
        self.crushes = SqliteCrushes(db)
        self.tel_changes = SqliteTelChanges(db)
        self.pictures = SqlitePictures(db)
        self.chats = SqliteChats(db)
