"""Where ``edge-hub``'s commands print, and the database they work on.

The process's streams, or the ones ``main()`` was given by a caller running a command in its
own process (devtools.stack.hub_cli): a context variable, so other threads of that process
keep printing to theirs.
"""

from __future__ import annotations

import contextvars
import sys
from typing import TextIO

from hub.config import HubSettings
from hub.storage import DatabaseUnavailable, NoWritableHost, Storage, open_storage

STREAMS: contextvars.ContextVar[tuple[TextIO, TextIO] | None] = contextvars.ContextVar(
    "edge_hub_cli_streams", default=None
)


def out() -> TextIO:
    given = STREAMS.get()
    return sys.stdout if given is None else given[0]


def err() -> TextIO:
    given = STREAMS.get()
    return sys.stderr if given is None else given[1]


def open_migrated(settings: HubSettings) -> Storage:
    storage = open_storage(settings.database, settings.database_waits(), settings.read_database)
    storage.init_schema()
    return storage


def open_serving(settings: HubSettings) -> tuple[Storage, bool]:
    """The hub's storage and whether its schema is migrated now. A database that does not
    answer yet is no reason not to start (the caller migrates once it does, and is not
    ready until then); a URL whose hosts are all standbys is (NoWritableHost), as is any
    other StorageError."""
    storage = open_storage(settings.database, settings.database_waits(), settings.read_database)
    try:
        storage.init_schema()
    except NoWritableHost:
        storage.close()
        raise
    except DatabaseUnavailable as exc:
        print(f"edge-hub: {exc}; not ready until it answers, then migrating", file=err())
        return storage, False
    return storage, True
