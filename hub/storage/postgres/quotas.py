"""PostgreSQL's step "rate limits and read budgets shared by every hub process"
(hub.storage.migrations.STEPS); what each column means is told beside its SQLite twin
(hub/storage/sqlite/schema/quotas.py)."""

from __future__ import annotations

from typing import Any

import psycopg

from hub.storage.migrations import statements

# Safe to run again, like every later step.
_QUOTAS = """
CREATE TABLE IF NOT EXISTS quota_buckets (
    kind    text NOT NULL,
    key     bigint NOT NULL,
    tokens  double precision NOT NULL,
    at      double precision NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS quota_buckets_at ON quota_buckets (at)
"""


def shared_quotas(conn: psycopg.Connection[Any]) -> None:
    for statement in statements(_QUOTAS):
        conn.execute(statement)
