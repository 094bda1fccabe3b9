"""Schema of the stale marks a gateway sends for the sensors of Sparkplug B edge nodes
(both engines): one migration step per engine, listed in each engine's ``MIGRATIONS``.

* ``sensors.stale``: true from the NDEATH of the sensor's edge node (or DDEATH of its
  device) until its next birth; the sensor object shows it as ``"stale": true``.
* ``sensors.stale_at``: when the agent saw that death or birth (epoch seconds). A mark is
  applied only if it is not older than the one stored, so marks re-sent or reordered by
  retries change nothing (IngestMixin.apply_marks).
"""

from __future__ import annotations

import sqlite3
from typing import Any

_SQLITE_COLUMNS = (
    ("stale", "BOOLEAN NOT NULL DEFAULT FALSE"),
    ("stale_at", "REAL NOT NULL DEFAULT 0"),
)
_PG_COLUMNS = (
    ("stale", "boolean NOT NULL DEFAULT false"),
    ("stale_at", "double precision NOT NULL DEFAULT 0"),
)


def sqlite_marks(conn: sqlite3.Connection) -> None:
    for column, definition in _SQLITE_COLUMNS:
        conn.execute(f"ALTER TABLE sensors ADD COLUMN {column} {definition}")


def postgres_marks(conn: Any) -> None:
    for column, definition in _PG_COLUMNS:
        conn.execute(f"ALTER TABLE sensors ADD COLUMN {column} {definition}")
