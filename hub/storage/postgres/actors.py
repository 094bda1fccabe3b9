"""PostgreSQL's step "who acted: kind, name and display; token names"
(hub.storage.migrations.STEPS); what each column is for is told beside the SQLite twin
(hub.storage.sqlite.schema.actors)."""

from __future__ import annotations

from typing import Any

import psycopg

# Safe to run again, like every later step. Nullable columns without a default: adding them
# rewrites no table, however long the journal and the change log are.
_COLUMNS = (
    ("alert_journal", "by_kind"),
    ("alert_journal", "by_name"),
    ("alert_journal", "by_display"),
    ("audit_log", "by_kind"),
    ("audit_log", "by_name"),
    ("audit_log", "by_display"),
    ("alerts", "acknowledged_kind"),
    ("alerts", "acknowledged_name"),
    ("alerts", "acknowledged_display"),
    ("tokens", "name"),
)


def actors(conn: psycopg.Connection[Any]) -> None:
    for table, column in _COLUMNS:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} text")
