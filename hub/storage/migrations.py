"""Versioned schema migrations: each engine lists its steps, numbered from 1, never edited
once released; a database records the last one it ran and gets the rest, in order, inside
the engine's own lock, so several hub processes starting at once migrate it exactly once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from hub.storage.model import StorageError

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class Migration(Generic[C]):
    version: int
    name: str
    apply: Callable[[C], None]


def check_sequence(migrations: Sequence[Migration[C]]) -> int:
    """The latest version; raises if the steps are not numbered 1, 2, 3, ..."""
    for expected, m in enumerate(migrations, start=1):
        if m.version != expected:
            raise AssertionError(f"migration {m.name!r} is numbered {m.version}, not {expected}")
    return len(migrations)


def pending(migrations: Sequence[Migration[C]], current: int, where: str) -> list[Migration[C]]:
    """The steps after ``current``; StorageError when the database is newer than this code."""
    latest = check_sequence(migrations)
    if current > latest:
        raise StorageError(
            f"database {where} has schema version {current}; this edge-hub knows {latest}. "
            "Upgrade edge-hub."
        )
    return list(migrations[current:])


def statements(script: str) -> list[str]:
    """A script of ';'-separated statements (no ';' inside them) as a list."""
    return [s.strip() for s in script.split(";") if s.strip()]
