"""The errors of the storage interface, the same whichever backend raises them.

The engine and handlers catch these, never a backend's own exceptions.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "ReadOnlyUnit",
    "StoreClosed",
    "StoreError",
    "UnknownUser",
]


class StoreError(Exception):
    """A storage operation failed; a write unit that raised it kept nothing."""


class StoreClosed(StoreError):
    """The store is closed."""


class ReadOnlyUnit(StoreError):
    """A write was attempted in a read unit (`Store.read()`)."""


class UnknownUser(StoreError, LookupError):
    """A repository method needing a user row found none."""


class BackendUnavailable(StoreError):
    """The configured database URL names no backend this build has."""
