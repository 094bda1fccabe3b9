"""Rollups on PostgreSQL: the fold of a batch by COPY (the shared parts: hub.storage.rollups).

Ingest: the staged batch moves into ``readings`` by ``INSERT ... ON CONFLICT DO NOTHING
RETURNING``, and exactly the rows it reports as new are folded into every tier in the same
transaction: a (gateway, seq) stored before returns nothing and counts nowhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from hub.storage.tiers import TIERS, Row, Tier, first_of_each, fold_partials

_COLUMNS = (
    "sensor_id, bucket, min, max, sum, count, first_ts, first_id, first_value, "
    "last_ts, last_id, last_value"
)


def on_conflict(t: str) -> str:
    """How a partial row folds into tier table ``t``'s row of the same bucket."""
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


# Per pooled connection (pool.py creates it with readings_in): the partials of one batch,
# every tier, on their way into the tier tables.
ROLLUP_STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS rollup_in (tier smallint, sensor_id bigint, "
    "bucket double precision, min double precision, max double precision, "
    "sum double precision, count bigint, first_ts double precision, first_id bigint, "
    "first_value double precision, last_ts double precision, last_id bigint, "
    "last_value double precision) ON COMMIT DELETE ROWS"
)
_ROLLUP_TYPES = ["int2", "int8", "float8", "float8", "float8", "float8", "int8", "float8",
                 "int8", "float8", "float8", "int8", "float8"]  # fmt: skip

INSERT_ONLY = (
    "INSERT INTO readings SELECT * FROM readings_in ORDER BY id ON CONFLICT (id, ts) DO NOTHING"
)
# The staged rows into readings; answers how many were new and, unless all were, which.
INSERT_RETURNING_NEW = (
    "WITH ins AS (INSERT INTO readings SELECT * FROM readings_in ORDER BY id "
    "ON CONFLICT (id, ts) DO NOTHING RETURNING id) "
    "SELECT count(*), CASE WHEN count(*) = %s THEN NULL ELSE array_agg(id) END FROM ins"
)


def _fold_sql(tier: Tier, number: int) -> str:
    # ORDER BY: concurrent batches lock the tier rows they share in one order.
    return (
        f"INSERT INTO {tier.table} ({_COLUMNS}) SELECT {_COLUMNS} FROM rollup_in "
        f"WHERE tier = {number} ORDER BY sensor_id, bucket {on_conflict(tier.table)}"
    )


# rollup_in.tier: 1, 2, ... for TIERS in order. Every tier in one statement (one round trip
# where one per tier took three): the finer tiers as data-modifying WITH parts, the coarsest
# as the statement itself. Each part runs to its end on its own table, in this order in
# every batch, so two batches lock the tier rows they share in one order still.
_FOLD = (
    "WITH "
    + ", ".join(f"t{n} AS ({_fold_sql(tier, n)})" for n, tier in enumerate(TIERS[:-1], 1))
    + " "
    + _fold_sql(TIERS[-1], len(TIERS))
)


def fold_rows(cur: psycopg.Cursor[Any], rows: Sequence[Row]) -> None:
    """Fold ``rows``, stored by this transaction, into every tier: the partials are summed
    by the native fold (hub.storage.rollups, as on SQLite; measured faster than array_agg in
    SQL), copied in, then one upsert of every tier."""
    tiers = fold_partials(rows)
    with cur.copy(
        "COPY rollup_in (tier, sensor_id, bucket, min, max, sum, count, first_ts, first_id, "
        "first_value, last_ts, last_id, last_value) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(_ROLLUP_TYPES)
        for number, parts in enumerate(tiers, 1):
            for part in parts:
                copy.write_row((number, *part))
    cur.execute(_FOLD)


def insert_staged(cur: psycopg.Cursor[Any], rows: Sequence[Row], fold: bool) -> int:
    """Move the staged ``rows`` into readings and fold the ones it stored into every tier
    (the same transaction); returns how many were new.

    Which rows were new comes from the insert itself (RETURNING): in the usual case all of
    them, and only a count travels back."""
    if not fold:
        cur.execute(INSERT_ONLY)
        return cur.rowcount
    cur.execute(INSERT_RETURNING_NEW, (len(rows),))
    got = cur.fetchone()
    count = int(got[0]) if got else 0
    if count == 0:
        return 0
    new: Sequence[Row] = rows
    if got is not None and got[1] is not None:
        ids = set(got[1])
        new = first_of_each([r for r in rows if r[0] in ids], set())
    fold_rows(cur, new)
    return count


def list_partitions(conn: Any) -> list[tuple[str, float, float, bool]]:
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


__all__ = ["ROLLUP_STAGING_DDL", "fold_rows", "insert_staged", "list_partitions"]
