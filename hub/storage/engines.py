"""Which engine a ``database`` setting names (hub.storage.url; deploy/hub.toml)."""

from __future__ import annotations

from hub.storage.interface import Storage
from hub.storage.url import parse_database


def engine_class(target: str) -> type[Storage]:
    """The engine for a ``database`` URL, or for a plain path (an SQLite file)."""
    if parse_database(target).engine == "postgresql":
        from hub.storage.postgres import PostgresStorage

        return PostgresStorage
    from hub.storage.sqlite import SQLiteStorage

    return SQLiteStorage


def open_storage(target: str) -> Storage:
    """The engine for ``target``, connected lazily (nothing is opened until first use)."""
    return engine_class(target)(target)
