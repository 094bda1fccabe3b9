"""SQLite's step "out-of-service periods of sensors and machines" (hub.storage.migrations.STEPS);
the table is told in hub/storage/service_schema.py."""

from __future__ import annotations

import sqlite3

from hub.storage.migrations import statements
from hub.storage.service_schema import SQLITE, backfill, periods
from shared.timeutil import now


def service_periods(conn: sqlite3.Connection) -> None:
    for statement in statements(periods(SQLITE)):
        conn.execute(statement)
    # suppressed: an edge alert that arrived while its sensor was out of service, so the hub
    # opened no alert for it (the alarm report counts them). No IF NOT EXISTS on SQLite.
    present = {row[1] for row in conn.execute("PRAGMA table_info(edge_alerts)")}
    if "suppressed" not in present:
        conn.execute("ALTER TABLE edge_alerts ADD COLUMN suppressed BOOLEAN NOT NULL DEFAULT FALSE")
    conn.execute(backfill("?"), (now(),))
