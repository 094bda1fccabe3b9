"""Which engine a ``database`` setting names (hub.storage.url; deploy/hub.toml)."""

from __future__ import annotations

from hub.storage.interface import Storage, engine_class

__all__ = ["engine_class", "open_storage"]


def open_storage(target: str) -> Storage:
    """The engine for ``target``, connected lazily (nothing is opened until first use)."""
    return engine_class(target)(target)
