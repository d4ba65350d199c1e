"""Storage: the interface (`base`, `records`, `errors`), the backend chosen from settings
(`backends.store_from_settings`), the SQLite store (`sqlite/`) and the PostgreSQL store
(`postgres/`)."""
