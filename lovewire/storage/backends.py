"""The store a deployment runs on, chosen from its settings (`LOVEWIRE_DATABASE_URL`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from lovewire.config import Settings
from lovewire.storage.base import Store
from lovewire.storage.errors import BackendUnavailable

__all__ = ["store_from_settings"]

#: The file of the SQLite store, in the data dir.
SQLITE_FILE = "lovewire.db"


def store_from_settings(settings: Settings) -> Store:
    """The store `settings.database_url` names: SQLite in the data dir when it is empty,
    PostgreSQL for a `postgresql://` URL.

    Raises `BackendUnavailable` for a URL naming no backend of this build (the message
    names the scheme only: a URL may hold a password).
    """
    url = settings.database_url.strip()
    if not url:
        from lovewire.storage.sqlite import SqliteStore

        return SqliteStore(settings.data_dir / SQLITE_FILE)
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("postgresql", "postgres"):
        from lovewire.storage.postgres import PgStore

        return PgStore(url, pool_size=settings.database_pool)
    raise BackendUnavailable(
        f"LOVEWIRE_DATABASE_URL: unknown database scheme {scheme!r};"
        " leave it empty for SQLite in the data dir"
    )
