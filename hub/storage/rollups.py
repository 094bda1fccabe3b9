"""Rollup tiers (1 minute, 1 hour, 12 hours): kept as batches are stored, read by series and
stats.

Maintenance. Each tier row is a partial aggregate of one sensor over one bucket: min, max,
sum, count, and the first and last reading by (ts, id). Two partials of the same bucket merge
exactly (min of mins, sum of sums, the earlier first), so a batch folds into its buckets by
an upsert, and a late reading (an edge back-filling after an outage) lands in its old bucket
like any other. The fold runs inside the batch's own transaction, over the rows that the
insert really stored (a re-sent (gateway, seq) is skipped by the insert and by the fold):
a crash either keeps the readings and their rollups, or neither.

Reads. A range splits into pieces that each tier covers whole: the coarsest tier that can
answer the buckets in the middle, the next finer ones at its edges, raw readings for the last
part-minutes at either end. Each piece is aggregated into the answer's buckets and the pieces
merge like partials do, and the numbers are those of the raw readings (an average to the last
bits of float addition).

Why 12 hours: a chart of a year at ``points=1000`` gets 12-hour buckets (hub.api.history), and
grouping a year of hour rows into them (8,760 rows) was most of that chart's time; the 12-hour
tier answers it with 730 rows read as they are, and every coarser width a chart picks (1 d,
2 d, whole weeks) is a whole multiple of 12 hours. It costs one more upsert per batch with a
row per sensor and half-day, next to the minute tier's row per sensor and minute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar, cast

from hub.storage.dialect import Dialect
from hub.storage.model import Bucket, Stats, StorageError, TierUsage
from hub.storage.sqlbase import Conn, Database, expire_rows, oldest_in
from hub.storage.tiers import (
    BY_NAME,
    COARSEST,
    RAW,
    TIER_NAMES,
    TIERS,
    Partial,
    Row,
    Tier,
    fold_partials,
    merge,
    split_range,
    tier_named,
    upsert_sql,
    usable_tiers,
)

__all__ = ["TIERS", "Rollups"]

T = TypeVar("T")


class LatestReading(Protocol):
    """Where the newest readings come from (hub.storage.reads): the tiers bound the search."""

    def latest(self, sensor_id: int) -> tuple[int, float, float] | None: ...

    def last_readings(
        self, sensor_id: int, limit: int, within: tuple[float, float] | None = None
    ) -> list[tuple[int, float, float]]: ...


# How far back a search for a sensor's newest readings (before some moment) looks, in turn,
# before it reads the sensor's whole history: on PostgreSQL each bound keeps the query to
# those days' partitions.
LOOK_BACK_S = (86400.0, 8 * 86400.0, 64 * 86400.0)


def look_back(read: Callable[[float | None], list[T]], limit: int, anchor: float) -> list[T]:
    """``read(since)`` over windows reaching back from ``anchor`` (:data:`LOOK_BACK_S`) until
    one holds ``limit`` rows, else ``read(None)`` (all of it): the sensor's newest rows before
    some moment without a query that reads every day of its history."""
    for window in LOOK_BACK_S:
        rows = read(anchor - window)
        if len(rows) >= limit:
            return rows
    return read(None)


def _between(column: str, lo: float | None, hi: float | None) -> tuple[str, list[float]]:
    sql, params = "", []
    if lo is not None:
        sql += f" AND {column} >= ?"
        params.append(lo)
    if hi is not None:
        sql += f" AND {column} < ?"
        params.append(hi)
    return sql, params


class Rollups:
    """The rollup tiers of every sensor: folded at ingest, read by series and stats,
    expired by retention. ``reads``: the raw-readings answer of :meth:`latest` for a sensor
    whose tiers hold nothing (rollups off)."""

    def __init__(self, db: Database, dialect: Dialect, reads: LatestReading) -> None:
        self._db = db
        self._dialect = dialect
        self._reads = reads
        # False only in benchmarks: ingest then skips rollup maintenance (hub.toml ``rollups``).
        self.maintain = True

    # -- maintenance -------------------------------------------------------------------

    def fold(self, conn: Conn, rows: Sequence[Row]) -> None:
        """Fold stored-just-now rows into every tier (inside their write transaction)."""
        if not rows or not self.maintain:
            return
        # In key order (as fold_partials returns them): the upserts walk each tier's primary
        # key forwards, and two writers folding into the same buckets lock them in one order.
        for tier, parts in zip(TIERS, fold_partials(rows), strict=True):
            conn.executemany(upsert_sql(tier.table), parts)

    def delete_sensor(self, conn: Conn, sensor_id: int) -> None:
        """Remove a sensor's rollups; for whoever deletes a sensor, in their transaction."""
        for tier in TIERS:
            conn.execute(f"DELETE FROM {tier.table} WHERE sensor_id = ?", (sensor_id,))

    # -- reads -------------------------------------------------------------------------

    def _raw_buckets(
        self, sensor_id: int, lo: float | None, hi: float | None, width: float, limit: int
    ) -> tuple[str, list[Any]]:
        where, params = _between("ts", lo, hi)
        # Window functions name each bucket's first and last reading by (ts, id).
        sql = (
            "SELECT b, min(value) AS mn, max(value) AS mx, sum(value) AS sm, count(*) AS n, "
            "min(ts) AS fts, min(fid) AS fid, min(fv) AS fv, max(ts) AS lts, min(lid) AS lid, "
            "min(lv) AS lv FROM ("
            "SELECT b, ts, value, first_value(id) OVER w AS fid, first_value(value) OVER w AS fv, "
            "last_value(id) OVER w AS lid, last_value(value) OVER w AS lv FROM ("
            f"SELECT {self._dialect.bucket_start} AS b, id, ts, value FROM readings "
            f"WHERE sensor_id = ?{where}) r "
            "WINDOW w AS (PARTITION BY b ORDER BY ts, id "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) x "
            "GROUP BY b ORDER BY b LIMIT ?"
        )
        return sql, [width, width, sensor_id, *params, limit]

    def _tier_buckets(
        self,
        tier: Tier,
        sensor_id: int,
        lo: float | None,
        hi: float | None,
        width: float,
        limit: int,
    ) -> tuple[str, list[Any]]:
        where, params = _between("bucket", lo, hi)
        t = tier.table
        if width == tier.width:
            # One tier row per answer bucket: read them as they are (a 30-day chart of
            # hours is 720 rows of one index range).
            sql = (
                "SELECT bucket, min, max, sum, count, first_ts, first_id, first_value, "
                f"last_ts, last_id, last_value FROM {t} WHERE sensor_id = ?{where} "
                "ORDER BY bucket LIMIT ?"
            )
            return sql, [sensor_id, *params, limit]
        # The first/last tier row of each answer bucket carries its first/last reading:
        # tier rows of one sensor never overlap in time.
        sql = (
            "SELECT g.b, g.mn, g.mx, g.sm, g.n, f.first_ts, f.first_id, f.first_value, "
            "l.last_ts, l.last_id, l.last_value FROM ("
            f"SELECT {self._dialect.tier_bucket_start} AS b, min(min) AS mn, max(max) AS mx, "
            "sum(sum) AS sm, CAST(sum(count) AS bigint) AS n, min(bucket) AS fb, "
            f"max(bucket) AS lb FROM {t} WHERE sensor_id = ?{where} "
            "GROUP BY b ORDER BY b LIMIT ?) g "
            f"JOIN {t} f ON f.sensor_id = ? AND f.bucket = g.fb "
            f"JOIN {t} l ON l.sensor_id = ? AND l.bucket = g.lb"
        )
        whole = int(width)  # usable_tiers: a whole multiple of the tier's width
        return sql, [whole, whole, sensor_id, *params, limit, sensor_id, sensor_id]

    def buckets(
        self, sensor_id: int, start: float | None, end: float | None, bucket: float, limit: int
    ) -> list[Bucket]:
        parts: list[str] = []
        params: list[Any] = []
        for i, (source, lo, hi) in enumerate(split_range(start, end, usable_tiers(bucket))):
            if source == RAW:
                sql, p = self._raw_buckets(sensor_id, lo, hi, bucket, limit)
            else:
                sql, p = self._tier_buckets(tier_named(source), sensor_id, lo, hi, bucket, limit)
            parts.append(f"SELECT * FROM ({sql}) p{i}")
            params += p
        # One statement for all pieces: one round trip, and one snapshot of the data (a
        # batch committed meanwhile is in every piece or in none).
        merged: dict[float, Partial] = {}
        for row in self._db.fetchall(" UNION ALL ".join(parts), params):
            b = float(row[0])
            part = list(row[1:])
            if b in merged:
                merge(merged[b], part)
            else:
                merged[b] = part
        out: list[Bucket] = []
        for b in sorted(merged)[:limit]:
            p = merged[b]
            count = int(p[3])
            out.append((b, p[0], p[1], p[2] / count, count, p[4], p[6], p[7], p[9]))
        return out

    def series(
        self, sensor_id: int, start: float | None, end: float | None, bucket: float, limit: int
    ) -> list[tuple[float, float, float, float, int]]:
        return [b[:5] for b in self.buckets(sensor_id, start, end, bucket, limit)]

    def stats(self, sensor_id: int, start: float | None, end: float | None) -> Stats:
        parts: list[str] = []
        params: list[Any] = []
        for i, (source, lo, hi) in enumerate(split_range(start, end, len(TIERS))):
            if source == RAW:
                where, p = _between("ts", lo, hi)
                sql = (
                    "SELECT min(value) AS mn, max(value) AS mx, sum(value) AS sm, "
                    "count(*) AS n, min(ts) AS fts, max(ts) AS lts "
                    f"FROM readings WHERE sensor_id = ?{where}"
                )
                p = [sensor_id, *p]
            else:
                table = tier_named(source).table
                where, p = _between("bucket", lo, hi)
                sql = (
                    "SELECT g.mn, g.mx, g.sm, g.n, f.first_ts, l.last_ts FROM ("
                    "SELECT min(min) AS mn, max(max) AS mx, sum(sum) AS sm, "
                    "CAST(sum(count) AS bigint) AS n, min(bucket) AS fb, max(bucket) AS lb "
                    f"FROM {table} WHERE sensor_id = ?{where}) g "
                    f"JOIN {table} f ON f.sensor_id = ? AND f.bucket = g.fb "
                    f"JOIN {table} l ON l.sensor_id = ? AND l.bucket = g.lb"
                )
                p = [sensor_id, *p, sensor_id, sensor_id]
            parts.append(f"SELECT * FROM ({sql}) p{i}")
            params += p
        acc: list[Any] | None = None
        for row in self._db.fetchall(" UNION ALL ".join(parts), params):
            if not row[3]:
                continue  # an empty piece of raw readings: one row of NULLs
            lo_v, hi_v, total, n, first, last = row
            if acc is None:
                acc = [lo_v, hi_v, total, int(n), first, last]
                continue
            acc[0] = min(acc[0], lo_v)
            acc[1] = max(acc[1], hi_v)
            acc[2] += total
            acc[3] += int(n)
            acc[4] = min(acc[4], first)
            acc[5] = max(acc[5], last)
        if acc is None:
            return (None, None, None, 0, None, None)
        return cast(Stats, (acc[0], acc[1], acc[2] / acc[3], acc[3], acc[4], acc[5]))

    def history_span(self, sensor_id: int) -> tuple[float, float] | None:
        # Two primary-key probes of the coarsest tier (it holds at least what any other
        # holds), where min/max of raw ts would read every reading of the sensor (or every
        # day partition).
        t = COARSEST.table
        row = self._db.fetchone(
            f"SELECT (SELECT first_ts FROM {t} WHERE sensor_id = ? ORDER BY bucket LIMIT 1), "
            f"(SELECT last_ts FROM {t} WHERE sensor_id = ? ORDER BY bucket DESC LIMIT 1)",
            (sensor_id, sensor_id),
        )
        if row is None or row[0] is None:
            return None
        return float(row[0]), float(row[1])

    def latest(self, sensor_id: int) -> tuple[int, float, float] | None:
        # The newest bucket's last reading by (ts, id) is the sensor's newest reading: one
        # primary-key probe (on PostgreSQL the raw query visits every day partition).
        row = self._db.fetchone(
            f"SELECT last_id, last_ts, last_value FROM {COARSEST.table} WHERE sensor_id = ? "
            "ORDER BY bucket DESC LIMIT 1",
            (sensor_id,),
        )
        if row is None:
            return self._reads.latest(sensor_id)
        return int(row[0]), float(row[1]), float(row[2])

    def last_readings(self, sensor_id: int, limit: int) -> list[tuple[int, float, float]]:
        """The newest ``limit`` readings, oldest first (an anomaly scan's window).

        Unbounded, the query reads the newest rows of every day partition on PostgreSQL
        (8.7 ms with three years of days, where one day's takes 0.1 ms): the coarsest tier
        gives the newest reading's ts, and a window back from it that holds ``limit``
        readings is the answer. A sparse sensor widens the window, then reads it all."""
        row = self._db.fetchone(
            f"SELECT last_ts FROM {COARSEST.table} WHERE sensor_id = ? "
            "ORDER BY bucket DESC LIMIT 1",
            (sensor_id,),
        )
        if row is None or row[0] is None:
            return self._reads.last_readings(sensor_id, limit)
        newest = float(row[0])
        return look_back(
            lambda since: self._reads.last_readings(
                sensor_id, limit, None if since is None else (since, newest)
            ),
            limit,
            newest,
        )

    # -- retention ---------------------------------------------------------------------

    def expire(self, tier: str, cutoff: float, max_rows: int) -> int:
        if tier == RAW:
            return self._dialect.expire_raw(cutoff, max_rows)
        if tier not in BY_NAME:
            raise StorageError(f"no such tier {tier!r}; tiers are {', '.join(TIER_NAMES)}")
        t = BY_NAME[tier]
        # A bucket goes once all of it is older than the cutoff (it ends at b + width).
        return expire_rows(self._db, t.table, "bucket", "bucket", "<=", cutoff - t.width, max_rows)

    def _oldest(self, conn: Conn, tier: str) -> float | None:
        if tier == RAW:
            return self._dialect.oldest_raw(conn)
        return oldest_in(conn, tier_named(tier).table, "bucket")

    def _table_rows(self, conn: Conn, table: str) -> int:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def tier_usage(self) -> list[TierUsage]:
        out: list[TierUsage] = []
        with self._db.reader() as conn:
            for tier, table in ((RAW, "readings"), *((t.name, t.table) for t in TIERS)):
                out.append(
                    TierUsage(
                        tier,
                        self._table_rows(conn, table),
                        self._dialect.table_bytes(conn, table),
                        self._oldest(conn, tier),
                    )
                )
        return out

    def record_tier_status(self, rows: Sequence[tuple[TierUsage, float | None]], at: float) -> None:
        with self._db.write() as conn:
            conn.executemany(
                "INSERT INTO retention_status (tier, rows, bytes, oldest, next_expiry, "
                "measured_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tier) DO UPDATE SET "
                "rows = excluded.rows, bytes = excluded.bytes, oldest = excluded.oldest, "
                "next_expiry = excluded.next_expiry, measured_at = excluded.measured_at",
                [(u.tier, u.rows, u.bytes, u.oldest, nxt, at) for u, nxt in rows],
            )

    def exclusive_job(self, name: str) -> AbstractContextManager[bool]:
        return self._dialect.exclusive_job(name)

    def tier_status(self) -> list[dict[str, Any]]:
        return self._db.all_dicts(
            "SELECT tier, rows, bytes, oldest, next_expiry, measured_at FROM retention_status "
            "ORDER BY tier"
        )
