"""PostgreSQL's step "out-of-service periods of sensors and machines"
(hub.storage.migrations.STEPS); the table is told in hub/storage/service_schema.py."""

from __future__ import annotations

from typing import Any

import psycopg

from hub.storage.migrations import statements
from hub.storage.service_schema import POSTGRES, backfill, periods
from shared.timeutil import now

# suppressed: as on SQLite (sqlite/schema/service.py), where it needs a look first.
_SUPPRESSED = (
    "ALTER TABLE edge_alerts ADD COLUMN IF NOT EXISTS suppressed boolean NOT NULL DEFAULT FALSE"
)


def service_periods(conn: psycopg.Connection[Any]) -> None:
    for statement in statements(periods(POSTGRES)):
        conn.execute(statement)
    conn.execute(_SUPPRESSED)
    conn.execute(backfill("%s"), (now(),))
