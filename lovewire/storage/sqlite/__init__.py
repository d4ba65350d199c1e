"""The SQLite store: the embedded default, one file in the data dir.

`store` (the store and its group commit), `unit` (the repositories of one connection),
`repo` (their base), and one module of repositories per feature: `accounts`, `pushes`,
`crush`, `pictures`. The numbered migrations are `migrations/*.sql`.
"""

from lovewire.storage.sqlite.repo import SqliteRepo
from lovewire.storage.sqlite.store import GROUP_MAX, READERS, SqliteStore, migrations
from lovewire.storage.sqlite.unit import SqliteUnit

__all__ = ["GROUP_MAX", "READERS", "SqliteRepo", "SqliteStore", "SqliteUnit", "migrations"]
