"""SQLite's steps "alert chattering and stale marks", "alert peak value" and
"alert journal by action and time" (hub.storage.migrations.STEPS)."""

from __future__ import annotations

import sqlite3

# chattering: the alert's source (gateway, sensor, kind, breach) cleared [alarms]
# chattering_count times within chattering_window_s; stale: active longer than
# stale_after_s. Each mark keeps the time it was set (hub.storage.alarm_marks), so a report
# can measure how long alerts were chattering or stale.
_COLUMNS = (
    ("chattering", "BOOLEAN NOT NULL DEFAULT FALSE"),
    ("chattering_at", "REAL"),
    ("stale", "BOOLEAN NOT NULL DEFAULT FALSE"),
    ("stale_at", "REAL"),
)


def alarm_marks(conn: sqlite3.Connection) -> None:
    # Safe to run again, like every later step (a schema wound back and migrated forward);
    # SQLite's ADD COLUMN has no IF NOT EXISTS.
    present = {row[1] for row in conn.execute("PRAGMA table_info(alerts)")}
    for column, definition in _COLUMNS:
        if column not in present:
            conn.execute(f"ALTER TABLE alerts ADD COLUMN {column} {definition}")
    conn.execute(
        "CREATE INDEX IF NOT EXISTS alerts_source_cleared ON alerts (sensor_id, kind, cleared_at)"
    )


def peak_value(conn: sqlite3.Connection) -> None:
    # The most extreme value an alert reached while active (hub.storage.alarm_peaks); NULL
    # for a gateway's alert and for alerts stored before this step.
    present = {row[1] for row in conn.execute("PRAGMA table_info(alerts)")}
    if "peak_value" not in present:
        conn.execute("ALTER TABLE alerts ADD COLUMN peak_value REAL")


def journal_by_action(conn: sqlite3.Connection) -> None:
    # The alarm report reads a period's shelve transitions: a range of this index, where it
    # scanned the whole journal (two entries per alarm and more).
    conn.execute("CREATE INDEX IF NOT EXISTS alert_journal_action_at ON alert_journal (action, at)")


def edge_rule_ids(conn: sqlite3.Connection) -> None:
    """Step "edge alerts name the rule that fired": ``edge_alerts.rule_id``, the hub rule a
    rule alert's edge named (NULL: an agent that names none, or another kind of alert)."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(edge_alerts)")}
    if "rule_id" not in present:
        conn.execute("ALTER TABLE edge_alerts ADD COLUMN rule_id INTEGER")


def alarm_sources(conn: sqlite3.Connection) -> None:
    """Step "one alarm per sensor: edge alerts as its sources, one severity scale":
    ``edge_alerts.alarm_id``, the fleet alert an edge alert is a source of
    (hub.storage.alarm_sources), filled for the alerts of older releases (one source each);
    severities on the one scale (hub.storage.severity)."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(edge_alerts)")}
    if "alarm_id" not in present:
        conn.execute("ALTER TABLE edge_alerts ADD COLUMN alarm_id INTEGER")
    for sql in SOURCES_AND_SCALE:
        conn.execute(sql)


# Shared with PostgreSQL's step (hub/storage/postgres/alarm_marks.py). Safe to run again.
SOURCES_AND_SCALE = (
    "UPDATE edge_alerts SET alarm_id = (SELECT a.id FROM alerts a WHERE a.gateway_id = "
    "edge_alerts.gateway_id AND a.edge_alert_id = edge_alerts.alert_id) WHERE alarm_id IS NULL",
    "CREATE INDEX IF NOT EXISTS edge_alerts_alarm ON edge_alerts (alarm_id)",
    "UPDATE alerts SET severity = 'warning' WHERE severity IN ('medium', 'high')",
    "UPDATE alert_journal SET severity = 'warning' WHERE severity IN ('medium', 'high')",
)
