"""Rollups and retention on PostgreSQL (the shared parts: hub.storage.rollups).

Ingest: one statement moves the staged batch into ``readings`` and folds exactly the rows
that ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` reports as new into both tiers: a
(gateway, seq) stored before returns nothing and counts nowhere, and the statement is part
of the batch's transaction.

Retention of raw readings drops whole day partitions, detached first with ``DETACH
PARTITION ... CONCURRENTLY`` (it waits for queries on the partition and never takes the
lock that would stop ingest into the other days); rollups go by bounded batched deletes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import structlog

from hub.storage.rollups import HOUR, MINUTE, RAW, RollupsMixin, Tier
from hub.storage.sqlbase import Conn

log = structlog.get_logger("hub.storage.retention")

_COLUMNS = (
    "sensor_id, bucket, min, max, sum, count, first_ts, first_id, first_value, "
    "last_ts, last_id, last_value"
)


def _on_conflict(t: str) -> str:
    earlier = f"(excluded.first_ts, excluded.first_id) < ({t}.first_ts, {t}.first_id)"
    later = f"(excluded.last_ts, excluded.last_id) > ({t}.last_ts, {t}.last_id)"
    return (
        "ON CONFLICT (sensor_id, bucket) DO UPDATE SET "
        f"min = least({t}.min, excluded.min), max = greatest({t}.max, excluded.max), "
        f"sum = {t}.sum + excluded.sum, count = {t}.count + excluded.count, "
        f"first_ts = CASE WHEN {earlier} THEN excluded.first_ts ELSE {t}.first_ts END, "
        f"first_id = CASE WHEN {earlier} THEN excluded.first_id ELSE {t}.first_id END, "
        f"first_value = CASE WHEN {earlier} THEN excluded.first_value ELSE {t}.first_value END, "
        f"last_ts = CASE WHEN {later} THEN excluded.last_ts ELSE {t}.last_ts END, "
        f"last_id = CASE WHEN {later} THEN excluded.last_id ELSE {t}.last_id END, "
        f"last_value = CASE WHEN {later} THEN excluded.last_value ELSE {t}.last_value END"
    )


# Staged rows -> readings, and the new ones -> minute partials -> both tiers; answers how
# many rows were new. ORDER BY in each insert: concurrent batches lock rows in one order.
INSERT_AND_FOLD = (
    "WITH ins AS (INSERT INTO readings SELECT * FROM readings_in ORDER BY id "
    "ON CONFLICT (id, ts) DO NOTHING RETURNING id, sensor_id, ts, value), "
    "m AS (SELECT sensor_id, floor(ts / 60) * 60 AS bucket, min(value) AS min, "
    "max(value) AS max, sum(value) AS sum, count(*) AS count, "
    "min(ts) AS first_ts, (array_agg(id ORDER BY ts, id))[1] AS first_id, "
    "(array_agg(value ORDER BY ts, id))[1] AS first_value, "
    "max(ts) AS last_ts, (array_agg(id ORDER BY ts DESC, id DESC))[1] AS last_id, "
    "(array_agg(value ORDER BY ts DESC, id DESC))[1] AS last_value "
    "FROM ins GROUP BY 1, 2), "
    f"um AS (INSERT INTO {MINUTE.table} ({_COLUMNS}) SELECT {_COLUMNS} FROM m ORDER BY 1, 2 "
    f"{_on_conflict(MINUTE.table)}), "
    f"uh AS (INSERT INTO {HOUR.table} ({_COLUMNS}) "
    "SELECT sensor_id, floor(bucket / 3600) * 3600, min(min), max(max), sum(sum), "
    "CAST(sum(count) AS bigint), min(first_ts), "
    "(array_agg(first_id ORDER BY first_ts, first_id))[1], "
    "(array_agg(first_value ORDER BY first_ts, first_id))[1], max(last_ts), "
    "(array_agg(last_id ORDER BY last_ts DESC, last_id DESC))[1], "
    "(array_agg(last_value ORDER BY last_ts DESC, last_id DESC))[1] "
    f"FROM m GROUP BY 1, 2 ORDER BY 1, 2 {_on_conflict(HOUR.table)}) "
    "SELECT coalesce(sum(count), 0) FROM m"
)

INSERT_ONLY = (
    "INSERT INTO readings SELECT * FROM readings_in ORDER BY id ON CONFLICT (id, ts) DO NOTHING"
)


def insert_staged(cur: psycopg.Cursor[Any], fold: bool) -> int:
    """Move the staged rows into readings (and their rollups); returns how many were new."""
    if not fold:
        cur.execute(INSERT_ONLY)
        return cur.rowcount
    cur.execute(INSERT_AND_FOLD)
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _partitions(conn: Any) -> list[tuple[str, float, float, bool]]:
    """Every partition of readings: (name, from, to, detach pending)."""
    rows = conn.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), i.inhdetachpending "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'readings'::regclass"
    ).fetchall()
    out = []
    for name, bound, pending in rows:
        # FOR VALUES FROM ('1732233600') TO ('1732320000')
        lo, hi = (part.split(")", 1)[0].strip("'") for part in bound.split("(")[1:3])
        out.append((str(name), float(lo), float(hi), bool(pending)))
    return out


class PgRollupsMixin(RollupsMixin):
    def _raw_pool(self) -> Any:
        return self._pool  # type: ignore[attr-defined]

    def _drop_one_day(self, cutoff: float) -> int:
        """Drop the oldest day partition that ends at or before ``cutoff``; returns its
        estimated rows (at least 1), or 0 when there is none."""
        with self._raw_pool().connection() as conn:
            old = sorted(p for p in _partitions(conn) if p[2] <= cutoff)
            if not old:
                return 0
            name, _lo, _hi, pending = old[0]
            estimate = conn.execute(
                "SELECT reltuples FROM pg_class WHERE relname = %s", (name,)
            ).fetchone()
            # Never wait long behind a query for the catalog lock: the next round retries.
            conn.execute("SET lock_timeout = '5s'")
            try:
                if pending:  # a DETACH ... CONCURRENTLY that was interrupted
                    conn.execute(f'ALTER TABLE readings DETACH PARTITION "{name}" FINALIZE')
                else:
                    conn.execute(f'ALTER TABLE readings DETACH PARTITION "{name}" CONCURRENTLY')
                conn.execute(f'DROP TABLE "{name}"')
            finally:
                conn.execute("RESET lock_timeout")
        self._partitions.forget()  # type: ignore[attr-defined]
        log.info("dropped a day of raw readings", partition=name)
        return max(1, int(estimate[0]) if estimate and estimate[0] and estimate[0] > 0 else 1)

    @contextmanager
    def exclusive_job(self, name: str) -> Iterator[bool]:
        """Hold a session advisory lock named after the job for the block: yields False at
        once when another hub process holds it (that process runs the round)."""
        key = int.from_bytes(
            hashlib.blake2b(f"edge-hub:{name}".encode(), digest_size=8).digest(), "big", signed=True
        )
        with self._raw_pool().connection() as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            got = bool(row and row[0])
            try:
                yield got
            finally:
                if got:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def expire(self, tier: str, cutoff: float, max_rows: int) -> int:
        if tier == RAW:
            return self._drop_one_day(cutoff)
        return super().expire(tier, cutoff, max_rows)

    def _table_bytes(self, conn: Conn, table: str) -> int | None:
        if table == "readings":
            row = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                "WHERE inhparent = 'readings'::regclass"
            ).fetchone()
        else:
            row = conn.execute("SELECT pg_total_relation_size(?::regclass)", (table,)).fetchone()
        return int(row[0])


__all__ = ["INSERT_AND_FOLD", "PgRollupsMixin", "Tier", "insert_staged"]
