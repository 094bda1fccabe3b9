"""What a request's reads learned about where they were answered: the read database's
replication lag, for ``meta.lag_s`` (hub.app adds it to the envelope).

A context variable, set by the app around one handler call and filled by the read
database's pool (hub.storage.postgres.replica) when a read borrows a connection there, so
no handler has to pass it along. The handler runs in the thread that set it, so it sees the
same note.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class ReadNote:
    # Seconds the read database was behind its primary when this request read there (0: it
    # is a primary, or has replayed all it received); None: nothing was read there.
    lag_s: float | None = None


_NOTE: ContextVar[ReadNote | None] = ContextVar("edge_hub_read_note", default=None)


@contextmanager
def noting_reads() -> Iterator[ReadNote]:
    """A fresh note for the reads made inside the block."""
    note = ReadNote()
    token = _NOTE.set(note)
    try:
        yield note
    finally:
        _NOTE.reset(token)


def current_note() -> ReadNote | None:
    """The note of the request being answered (None outside one: a job, the CLI)."""
    return _NOTE.get()
