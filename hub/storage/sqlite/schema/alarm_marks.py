"""SQLite's step "alert chattering and stale marks" (hub.storage.migrations.STEPS)."""

from __future__ import annotations

import sqlite3

# chattering: the alert's source (gateway, sensor, kind, breach) cleared [alarms]
# chattering_count times within chattering_window_s; stale: active longer than
# stale_after_s. Each mark keeps the time it was set (hub.storage.alarm_marks), so a report
# can measure how long alerts were chattering or stale.
_COLUMNS = (
    "ALTER TABLE alerts ADD COLUMN chattering BOOLEAN NOT NULL DEFAULT FALSE",
    "ALTER TABLE alerts ADD COLUMN chattering_at REAL",
    "ALTER TABLE alerts ADD COLUMN stale BOOLEAN NOT NULL DEFAULT FALSE",
    "ALTER TABLE alerts ADD COLUMN stale_at REAL",
    "CREATE INDEX alerts_source_cleared ON alerts (sensor_id, kind, cleared_at)",
)


def alarm_marks(conn: sqlite3.Connection) -> None:
    for statement in _COLUMNS:
        conn.execute(statement)
