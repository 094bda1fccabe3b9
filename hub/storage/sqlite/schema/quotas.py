"""SQLite's step "rate limits and read budgets shared by every hub process"
(hub.storage.migrations.STEPS)."""

from __future__ import annotations

import sqlite3

# Safe to run again, like every later step. One token bucket per kind ("requests" or
# "read_rows") and key (a token's id, or minus a person's id): the tokens left when it was
# last visited (negative: a debt of rows read beyond the budget) and that visit's wall time.
_QUOTAS = (
    """CREATE TABLE IF NOT EXISTS quota_buckets (
    kind    TEXT NOT NULL,
    key     INTEGER NOT NULL,
    tokens  REAL NOT NULL,
    at      REAL NOT NULL,
    PRIMARY KEY (kind, key)
)""",
    "CREATE INDEX IF NOT EXISTS quota_buckets_at ON quota_buckets (at)",
)


def shared_quotas(conn: sqlite3.Connection) -> None:
    for statement in _QUOTAS:
        conn.execute(statement)
