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
from hub.storage import Storage, open_storage

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
