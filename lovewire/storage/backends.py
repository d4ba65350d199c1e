"""The store a deployment runs on, and where its pictures live, chosen from its settings
(`LOVEWIRE_DATABASE_URL`): SQLite and files in the data dir, or PostgreSQL for both.

The code-hashing key follows the store (`Store.secret`): `secret.key` in the data dir
with SQLite, a row of the database with PostgreSQL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from lovewire.config import Settings
from lovewire.media import FileMedia, MediaStore
from lovewire.storage.base import Store
from lovewire.storage.errors import BackendUnavailable

__all__ = ["MEDIA_DIR", "media_from_settings", "store_from_settings"]

#: The file of the SQLite store, in the data dir.
SQLITE_FILE = "lovewire.db"
#: The directory of stored pictures, in the data dir, when they are files.
MEDIA_DIR = "uploads"


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
    if _is_postgres(url):
        from lovewire.storage.postgres import PgStore

        return PgStore(url, pool_size=settings.database_pool)
    scheme = urlsplit(url).scheme.lower()
    raise BackendUnavailable(
        f"LOVEWIRE_DATABASE_URL: unknown database scheme {scheme!r};"
        " leave it empty for SQLite in the data dir"
    )


def _is_postgres(url: str) -> bool:
    return urlsplit(url).scheme.lower() in ("postgresql", "postgres")


def media_from_settings(settings: Settings) -> MediaStore:
    """Where pictures live beside `store_from_settings`'s store: the `media` table of a
    PostgreSQL database (every process serves them), else files in `<data_dir>/uploads`."""
    url = settings.database_url.strip()
    if url and _is_postgres(url):
        from lovewire.storage.postgres.media import PgMedia

        return PgMedia(url)
    return FileMedia(settings.data_dir / MEDIA_DIR)
