"""Schema of the rollup tiers (both engines): migration steps for each engine.

``rollup_1m`` and ``rollup_1h`` hold one row per (sensor, bucket start): min, max, sum and
count, and the first and last reading by (ts, id) with their ts and id. Sum and count make
averages of any coarser bucket exact; first/last keep their (ts, id) so a late reading that
lands in an old bucket, or two partial buckets merged, pick the right one (hub.storage.rollups).

The step also fills both tiers from the readings already stored, so a database upgraded
from a release without rollups answers series and stats from them at once, with the same
numbers as before. The hour tier is built from the minute tier (the tiers nest exactly).

A later step adds ``rollup_12h`` (hub.storage.rollups says why) and fills it from the hour
tier in the same way, so an upgraded database answers from it at once.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from hub.storage.migrations import statements

TIER_TABLES = ("rollup_1m", "rollup_1h")

_TABLE = """
CREATE TABLE {table} (
    sensor_id    {int} NOT NULL,
    bucket       {real} NOT NULL,
    min          {real} NOT NULL,
    max          {real} NOT NULL,
    sum          {real} NOT NULL,
    count        {int} NOT NULL,
    first_ts     {real} NOT NULL,
    first_id     {int} NOT NULL,
    first_value  {real} NOT NULL,
    last_ts      {real} NOT NULL,
    last_id      {int} NOT NULL,
    last_value   {real} NOT NULL,
    PRIMARY KEY (sensor_id, bucket)
){suffix}
"""

# What the retention job last measured per tier, read by /metrics in whichever hub process
# answers the scrape (the job runs in one of them; see hub.retention).
_STATUS = """
CREATE TABLE retention_status (
    tier         text PRIMARY KEY,
    rows         {int} NOT NULL,
    bytes        {int},
    oldest       {real},
    next_expiry  {real},
    measured_at  {real} NOT NULL
)
"""


def fill_from_readings(bucket_expr: str, first: str, last: str) -> str:
    """INSERT ... SELECT of minute buckets from every stored reading. ``first``/``last``: the
    engine's "value of the first/last row by (ts, id)" aggregate over a column name."""
    return (
        "INSERT INTO rollup_1m (sensor_id, bucket, min, max, sum, count, first_ts, first_id, "
        "first_value, last_ts, last_id, last_value) "
        f"SELECT sensor_id, b, min(value), max(value), sum(value), count(*), min(ts), "
        f"{first.format(col='id')}, {first.format(col='value')}, max(ts), "
        f"{last.format(col='id')}, {last.format(col='value')} "
        f"FROM (SELECT sensor_id, {bucket_expr} AS b, id, ts, value FROM readings) r "
        "GROUP BY sensor_id, b"
    )


def fill_hours(bucket_expr: str) -> str:
    """INSERT ... SELECT of hour buckets from the minute tier (the first/last minute row of
    each hour carries the hour's first/last reading)."""
    return fill_coarser("rollup_1h", "rollup_1m", bucket_expr)


def fill_coarser(table: str, finer: str, bucket_expr: str) -> str:
    """INSERT ... SELECT of ``table``'s buckets from the tier ``finer`` (``bucket_expr``: the
    coarser bucket of a finer row's ``bucket``)."""
    return (
        f"INSERT INTO {table} (sensor_id, bucket, min, max, sum, count, first_ts, first_id, "
        "first_value, last_ts, last_id, last_value) "
        "SELECT g.sensor_id, g.h, g.mn, g.mx, g.sm, g.n, f.first_ts, f.first_id, f.first_value, "
        "l.last_ts, l.last_id, l.last_value FROM ("
        f"SELECT sensor_id, {bucket_expr} AS h, min(min) AS mn, max(max) AS mx, "
        "sum(sum) AS sm, CAST(sum(count) AS bigint) AS n, min(bucket) AS fb, "
        f"max(bucket) AS lb FROM {finer} GROUP BY sensor_id, h) g "
        f"JOIN {finer} f ON f.sensor_id = g.sensor_id AND f.bucket = g.fb "
        f"JOIN {finer} l ON l.sensor_id = g.sensor_id AND l.bucket = g.lb"
    )


def sqlite_step(conn: sqlite3.Connection) -> None:
    types = {"int": "INTEGER", "real": "REAL"}
    for table in TIER_TABLES:
        # WITHOUT ROWID: the primary key is the table; an upsert touches one b-tree.
        conn.execute(_TABLE.format(table=table, suffix=" WITHOUT ROWID", **types))
    conn.execute(_STATUS.format(**types))
    # SQLite's bare column next to min()/max() is not enough (two of each per group):
    # window functions name the first and last row of each bucket.
    conn.execute(
        "INSERT INTO rollup_1m (sensor_id, bucket, min, max, sum, count, first_ts, first_id, "
        "first_value, last_ts, last_id, last_value) "
        "SELECT sensor_id, b, min(value), max(value), sum(value), count(*), min(ts), min(fid), "
        "min(fv), max(ts), min(lid), min(lv) FROM ("
        "SELECT sensor_id, b, ts, value, first_value(id) OVER w AS fid, "
        "first_value(value) OVER w AS fv, last_value(id) OVER w AS lid, "
        "last_value(value) OVER w AS lv FROM ("
        "SELECT sensor_id, CAST(ts / 60 AS INTEGER) * 60 AS b, id, ts, value FROM readings) "
        "WINDOW w AS (PARTITION BY sensor_id, b ORDER BY ts, id "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) GROUP BY sensor_id, b"
    )
    conn.execute(fill_hours("CAST(bucket / 3600 AS INTEGER) * 3600"))


def postgres_step(conn: Any) -> None:
    types = {"int": "bigint", "real": "double precision"}
    for statement in statements(_STATUS.format(**types)):
        conn.execute(statement)
    for table in TIER_TABLES:
        conn.execute(_TABLE.format(table=table, suffix="", **types))
    conn.execute(
        fill_from_readings(
            "floor(ts / 60) * 60",
            "(array_agg({col} ORDER BY ts, id))[1]",
            "(array_agg({col} ORDER BY ts DESC, id DESC))[1]",
        )
    )
    conn.execute(fill_hours("floor(bucket / 3600) * 3600"))


def sqlite_half_day_step(conn: sqlite3.Connection) -> None:
    types = {"int": "INTEGER", "real": "REAL"}
    conn.execute(_TABLE.format(table="rollup_12h", suffix=" WITHOUT ROWID", **types))
    conn.execute(fill_coarser("rollup_12h", "rollup_1h", "CAST(bucket AS INTEGER) / 43200 * 43200"))


def postgres_half_day_step(conn: Any) -> None:
    types = {"int": "bigint", "real": "double precision"}
    conn.execute(_TABLE.format(table="rollup_12h", suffix="", **types))
    conn.execute(fill_coarser("rollup_12h", "rollup_1h", "floor(bucket / 43200) * 43200"))


# Room left on each tier page for a row's next versions. Every batch updates its sensors' hour
# and half-day rows; an update whose new version fits on the same page is HOT (no new index
# entry, pruned without vacuum), on full pages each one adds to the primary key too. Measured
# on a 3M-reading drain, twice each way: PostgreSQL CPU 8% lower and the drain 7% faster at 60
# than at the default 100; the tiers are small next to the raw readings.
ROLLUP_FILLFACTOR = 60


def postgres_fillfactor_step(conn: Any) -> None:
    """The tiers' fillfactor (applies to pages written from now on)."""
    for table in ("rollup_1m", "rollup_1h", "rollup_12h"):
        conn.execute(f"ALTER TABLE {table} SET (fillfactor = {ROLLUP_FILLFACTOR})")
