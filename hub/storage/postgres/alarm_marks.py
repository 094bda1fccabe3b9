"""PostgreSQL's steps "alert chattering and stale marks", "alert peak value" and
"alert journal by action and time" (hub.storage.migrations.STEPS)."""

from __future__ import annotations

from typing import Any

import psycopg

# As on SQLite (hub/storage/sqlite/schema/alarm_marks.py): each mark with the time it was set.
# Safe to run again, like every later step (a schema wound back and migrated forward).
_COLUMNS = (
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS chattering boolean NOT NULL DEFAULT FALSE",
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS chattering_at double precision",
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS stale boolean NOT NULL DEFAULT FALSE",
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS stale_at double precision",
    "CREATE INDEX IF NOT EXISTS alerts_source_cleared ON alerts (sensor_id, kind, cleared_at)",
)


def alarm_marks(conn: psycopg.Connection[Any]) -> None:
    for statement in _COLUMNS:
        conn.execute(statement)


def peak_value(conn: psycopg.Connection[Any]) -> None:
    # As on SQLite: the most extreme value an alert reached while active.
    conn.execute("ALTER TABLE alerts ADD COLUMN IF NOT EXISTS peak_value double precision")


def journal_by_action(conn: psycopg.Connection[Any]) -> None:
    # The alarm report reads a period's shelve transitions: a range of this index, where it
    # scanned the whole journal (two entries per alarm and more).
    conn.execute("CREATE INDEX IF NOT EXISTS alert_journal_action_at ON alert_journal (action, at)")


def edge_rule_ids(conn: psycopg.Connection[Any]) -> None:
    """Step "edge alerts name the rule that fired", as on SQLite."""
    conn.execute("ALTER TABLE edge_alerts ADD COLUMN IF NOT EXISTS rule_id bigint")


def alarm_sources(conn: psycopg.Connection[Any]) -> None:
    """Step "one alarm per sensor: edge alerts as its sources, one severity scale", as on SQLite."""
    conn.execute("ALTER TABLE edge_alerts ADD COLUMN IF NOT EXISTS alarm_id bigint")
    for sql in SOURCES_AND_SCALE:
        conn.execute(sql)


# As on SQLite (hub/storage/sqlite/schema/alarm_marks.py). Safe to run again.
SOURCES_AND_SCALE = (
    "UPDATE edge_alerts e SET alarm_id = a.id FROM alerts a WHERE e.alarm_id IS NULL "
    "AND a.gateway_id = e.gateway_id AND a.edge_alert_id = e.alert_id",
    "CREATE INDEX IF NOT EXISTS edge_alerts_alarm ON edge_alerts (alarm_id)",
    "UPDATE alerts SET severity = 'warning' WHERE severity IN ('medium', 'high')",
    "UPDATE alert_journal SET severity = 'warning' WHERE severity IN ('medium', 'high')",
)
