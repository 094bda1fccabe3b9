"""Which engine a ``database`` setting names (hub.storage.url; deploy/hub.toml)."""

from __future__ import annotations

from typing import Any

from hub.storage.interface import Storage, engine_class
from hub.storage.model import StorageError, Waits
from hub.storage.url import parse_database

__all__ = ["engine_class", "open_storage"]


def open_storage(
    target: str, waits: Waits | None = None, read_target: str | None = None
) -> Storage:
    """The engine for ``target``, connected lazily (nothing is opened until first use).
    ``waits`` bound a PostgreSQL server's connections (SQLite has no network to wait on);
    ``read_target``: PostgreSQL's read database for history reads (hub.toml's
    ``read_database``)."""
    engine: Any = engine_class(target)
    if parse_database(target).engine == "postgresql":
        storage: Storage = engine(target, waits=waits, read_url=read_target)
    elif read_target is not None:
        raise StorageError("read_database is for PostgreSQL; database is SQLite")
    else:
        storage = engine(target)
    return storage
