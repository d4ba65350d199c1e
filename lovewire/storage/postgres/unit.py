"""The PostgreSQL unit: every repository bound to one pooled connection's transaction."""

from __future__ import annotations

from lovewire.storage.base import Unit
from lovewire.storage.postgres.accounts import PgCodes, PgSmsLog, PgTokens, PgUsers
from lovewire.storage.postgres.chat import PgChats
from lovewire.storage.postgres.crush import PgCrushes, PgTelChanges
from lovewire.storage.postgres.pictures import PgPictures
from lovewire.storage.postgres.pushes import PgPushes
from lovewire.storage.postgres.repo import Session

__all__ = ["PgUnit"]


class PgUnit(Unit):
    """The repositories of one transaction (a read unit's is READ ONLY)."""

    def __init__(self, session: Session) -> None:
        super().__init__(writable=session.writable)
        self.session = session
        self.users = PgUsers(session)
        self.tokens = PgTokens(session)
        self.codes = PgCodes(session)
        self.sms = PgSmsLog(session)
        self.pushes = PgPushes(session)
        self.crushes = PgCrushes(session)
        self.tel_changes = PgTelChanges(session)
        self.pictures = PgPictures(session)
        self.chats = PgChats(session)
