"""Storage: the interface (`base`, `records`, `errors`), the backend chosen from settings
(`backends.store_from_settings`), and the SQLite store (`sqlite/`)."""
