"""The PostgreSQL store: several lovewire processes sharing one database.

`store` (the store, its pool and migrations), `unit` (the repositories of one
transaction), `repo` (their base: query helpers, error translation, named locks), and one
module of repositories per feature: `accounts`, `pushes`, `crush`, `pictures`. The
numbered migrations are `migrations/*.sql`.
"""

from lovewire.storage.postgres.repo import PgRepo, Session
from lovewire.storage.postgres.store import POOL_SIZE, PgStore, migrations
from lovewire.storage.postgres.unit import PgUnit

__all__ = ["POOL_SIZE", "PgRepo", "PgStore", "PgUnit", "Session", "migrations"]
