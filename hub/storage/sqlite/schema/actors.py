"""SQLite's step "who acted: kind, name and display; token names"
(hub.storage.migrations.STEPS)."""

from __future__ import annotations

import sqlite3

# Who acted is kept as it was at the time of the act, beside the role (hub.storage.changelog):
# by_kind is user, token, gateway or system; by_name the user's, token's or gateway's name;
# by_display the person's full name. A copy, not a key into users: an account renamed or
# removed later leaves its past acts readable as they were. Rows from before this step have
# them NULL and read as a token (or the role's system/gateway) with no name.
# tokens.name: a label for a machine's or script's token (``token add --name``).
_COLUMNS = (
    ("alert_journal", "by_kind", "TEXT"),
    ("alert_journal", "by_name", "TEXT"),
    ("alert_journal", "by_display", "TEXT"),
    ("audit_log", "by_kind", "TEXT"),
    ("audit_log", "by_name", "TEXT"),
    ("audit_log", "by_display", "TEXT"),
    ("alerts", "acknowledged_kind", "TEXT"),
    ("alerts", "acknowledged_name", "TEXT"),
    ("alerts", "acknowledged_display", "TEXT"),
    ("tokens", "name", "TEXT"),
)


def actors(conn: sqlite3.Connection) -> None:
    # Safe to run again, like every later step; SQLite's ADD COLUMN has no IF NOT EXISTS.
    present: dict[str, set[str]] = {}
    for table, column, definition in _COLUMNS:
        if table not in present:
            present[table] = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present[table]:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
