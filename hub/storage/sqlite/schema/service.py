"""SQLite's step "out-of-service periods of sensors and machines" (hub.storage.migrations.STEPS)."""

from __future__ import annotations

import sqlite3

from hub.storage.migrations import statements
from shared.timeutil import now

# service_periods: one row per time a sensor (sensor_id) or a whole machine (machine_id,
# while its status is MAINTENANCE or OFFLINE) was out of service: ISA-18.2's "removed from
# service", when the hub opens no alerts for it and announces none. ended_at NULL: still out
# of service; at most one open period per sensor and per machine. factory_id for the
# alarm report's per-factory figure. Who began and ended it (token id, role, kind, name,
# display, as the journal keeps them), and why (comment).
_PERIODS = """
CREATE TABLE IF NOT EXISTS service_periods (
    id              INTEGER PRIMARY KEY,
    factory_id      INTEGER NOT NULL,
    sensor_id       INTEGER,
    machine_id      INTEGER,
    machine_status  TEXT,
    started_at      REAL NOT NULL,
    token_id        INTEGER,
    role            TEXT NOT NULL,
    by_kind         TEXT,
    by_name         TEXT,
    by_display      TEXT,
    comment         TEXT,
    ended_at        REAL,
    ended_token_id  INTEGER,
    ended_role      TEXT,
    ended_by_kind   TEXT,
    ended_by_name   TEXT,
    ended_by_display TEXT,
    CHECK ((sensor_id IS NULL) <> (machine_id IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS service_periods_sensor_open ON service_periods (sensor_id)
    WHERE ended_at IS NULL AND sensor_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS service_periods_machine_open ON service_periods (machine_id)
    WHERE ended_at IS NULL AND machine_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS service_periods_started ON service_periods (started_at)
"""

# Machines already in MAINTENANCE or OFFLINE are out of service from the migration on: when
# their status was set is not known.
BACKFILL = (
    "INSERT INTO service_periods (factory_id, machine_id, machine_status, started_at, role, "
    "by_kind) "
    "SELECT m.factory_id, m.id, m.status, ?, 'system', 'system' FROM machines m "
    "WHERE m.status IN ('MAINTENANCE', 'OFFLINE') AND NOT EXISTS (SELECT 1 FROM "
    "service_periods p WHERE p.machine_id = m.id AND p.ended_at IS NULL)"
)


def service_periods(conn: sqlite3.Connection) -> None:
    for statement in statements(_PERIODS):
        conn.execute(statement)
    # suppressed: an edge alert that arrived while its sensor was out of service, so the hub
    # opened no alert for it (the alarm report counts them). No IF NOT EXISTS on SQLite.
    present = {row[1] for row in conn.execute("PRAGMA table_info(edge_alerts)")}
    if "suppressed" not in present:
        conn.execute("ALTER TABLE edge_alerts ADD COLUMN suppressed BOOLEAN NOT NULL DEFAULT FALSE")
    conn.execute(BACKFILL, (now(),))
