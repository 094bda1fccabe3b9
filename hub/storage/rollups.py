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

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from hub.storage.interface import Bucket, Stats, TierUsage
from hub.storage.model import StorageError
from hub.storage.sqlbase import Conn, SqlStorage
from threshold_checker import rollup_partials

RAW = "raw"


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    width: float
    table: str


MINUTE = Tier("1m", 60.0, "rollup_1m")
HOUR = Tier("1h", 3600.0, "rollup_1h")
HALF_DAY = Tier("12h", 43200.0, "rollup_12h")
# Finest first; each width a whole multiple of the one before (the tiers nest).
TIERS = (MINUTE, HOUR, HALF_DAY)
TIER_NAMES = (RAW, *(t.name for t in TIERS))
_BY_NAME = {t.name: t for t in TIERS}
# Holds at least what any other tier holds ([retention] keeps each tier at least as long as
# the finer ones): where the span of a sensor's history and its newest reading are read.
COARSEST = TIERS[-1]

# [min, max, sum, count, first_ts, first_id, first_value, last_ts, last_id, last_value]
Partial = list[Any]
# (id, sensor_id, ts, value, ...): the head of a reading row as ingest builds it.
Row = tuple[Any, ...]
# (sensor_id, bucket, *Partial): a tier table's row, in its column order.
TierRow = tuple[Any, ...]
TIER_WIDTHS = [t.width for t in TIERS]


def bucket_of(ts: float, width: float) -> float:
    # Division then floor, as both engines' SQL computes it (CAST / floor of ts / width), so
    # a reading falls in the same bucket whichever side computes it.
    return math.floor(ts / width) * width


def merge(into: Partial, part: Partial) -> None:
    if part[0] < into[0]:
        into[0] = part[0]
    if part[1] > into[1]:
        into[1] = part[1]
    into[2] += part[2]
    into[3] += part[3]
    if (part[4], part[5]) < (into[4], into[5]):
        into[4:7] = part[4:7]
    if (part[7], part[8]) > (into[7], into[8]):
        into[7:10] = part[7:10]


def fold_partials(rows: Sequence[Row]) -> list[list[TierRow]]:
    """The partials of ``rows`` (id, sensor_id, ts, value, ...) for each tier of
    :data:`TIERS`, as the tier tables' rows, each list sorted by (sensor_id, bucket).

    The hot loop of rollup maintenance (every stored reading passes here once) runs in the
    native module: summed in Python it was most of a wide batch's store time. The bucket
    rule is :func:`bucket_of`'s; each tier buckets the finer tier's starts, so they nest."""
    return rollup_partials(rows, TIER_WIDTHS)


def tier_named(name: str) -> Tier:
    return _BY_NAME[name]


def upsert_sql(table: str) -> str:
    """Fold one partial into its stored bucket (or store it). Written once for both engines:
    CASE instead of SQLite's min()/PostgreSQL's least(), row values for (ts, id) order."""
    t = table
    earlier = f"(excluded.first_ts, excluded.first_id) < ({t}.first_ts, {t}.first_id)"
    later = f"(excluded.last_ts, excluded.last_id) > ({t}.last_ts, {t}.last_id)"
    return (
        f"INSERT INTO {t} (sensor_id, bucket, min, max, sum, count, first_ts, first_id, "
        "first_value, last_ts, last_id, last_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (sensor_id, bucket) DO UPDATE SET "
        f"min = CASE WHEN excluded.min < {t}.min THEN excluded.min ELSE {t}.min END, "
        f"max = CASE WHEN excluded.max > {t}.max THEN excluded.max ELSE {t}.max END, "
        f"sum = {t}.sum + excluded.sum, count = {t}.count + excluded.count, "
        f"first_ts = CASE WHEN {earlier} THEN excluded.first_ts ELSE {t}.first_ts END, "
        f"first_id = CASE WHEN {earlier} THEN excluded.first_id ELSE {t}.first_id END, "
        f"first_value = CASE WHEN {earlier} THEN excluded.first_value ELSE {t}.first_value END, "
        f"last_ts = CASE WHEN {later} THEN excluded.last_ts ELSE {t}.last_ts END, "
        f"last_id = CASE WHEN {later} THEN excluded.last_id ELSE {t}.last_id END, "
        f"last_value = CASE WHEN {later} THEN excluded.last_value ELSE {t}.last_value END"
    )


def id_range(rows: Sequence[Row]) -> tuple[int, int] | None:
    """The (lowest, highest) id of ``rows`` when they are one narrow range, else None.

    A batch is one gateway's run of seqs, so its ids usually are: then one range scan of the
    primary key finds what is stored already (usually nothing), on either engine."""
    if not rows:
        return None
    # Tuples compare by their first item (the id) first: min/max find the id range in C.
    lo, hi = min(rows)[0], max(rows)[0]
    return (lo, hi) if hi - lo <= 4 * len(rows) + 1024 else None


def stored_ids(conn: Conn, rows: Sequence[Row]) -> set[int]:
    """Which ids of ``rows`` are stored already (SQLite). Call inside the write transaction
    that then inserts the others."""
    if not rows:
        return set()
    span = id_range(rows)
    if span is not None:
        found = conn.execute("SELECT id FROM readings WHERE id BETWEEN ? AND ?", span)
        return {r[0] for r in found.fetchall()}
    stored: set[int] = set()
    unique = sorted({r[0] for r in rows})
    for i in range(0, len(unique), 500):
        part = unique[i : i + 500]
        marks = ", ".join("?" * len(part))
        found = conn.execute(f"SELECT id FROM readings WHERE id IN ({marks})", part)
        stored.update(r[0] for r in found.fetchall())
    return stored


def first_of_each(rows: Sequence[Row], skip: set[int]) -> list[Row]:
    """``rows`` without ids in ``skip``, each id once (the first, as INSERT OR IGNORE keeps)."""
    if not skip and len({row[0] for row in rows}) == len(rows):
        return list(rows)  # the usual batch: nothing stored before, no seq twice (a C loop)
    seen = set(skip)
    out: list[Row] = []
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            out.append(row)
    return out


# -- ranges ------------------------------------------------------------------------------


Piece = tuple[str, float | None, float | None]  # (tier name or "raw", from, to), [from, to)


def _ceil_to(x: float, w: float) -> float:
    return math.ceil(x / w) * w


def split_range(start: float | None, end: float | None, finest: int) -> list[Piece]:
    """[start, end) as pieces each answered whole by one source: raw at the part-minute
    edges, minutes at the part-hour edges, hours between. ``finest``: how many tiers may be
    used (0: raw only, 1: minutes, 2: hours too)."""
    if finest == 0:
        return [(RAW, start, end)]
    tier = TIERS[finest - 1]
    lo = None if start is None else _ceil_to(start, tier.width)
    hi = None if end is None else bucket_of(end, tier.width)
    if lo is not None and hi is not None and lo >= hi:
        # Not one whole bucket of this tier inside: the next finer one answers it all.
        return split_range(start, end, finest - 1)
    pieces: list[Piece] = []
    if start is not None and lo is not None and start < lo:
        pieces += split_range(start, lo, finest - 1)
    pieces.append((tier.name, lo, hi))
    if end is not None and hi is not None and hi < end:
        pieces += split_range(hi, end, finest - 1)
    return pieces


def usable_tiers(width: float | None) -> int:
    """How many tiers can answer buckets of ``width`` seconds (None: one bucket, stats)."""
    n = 0
    for tier in TIERS:
        if width is None or (width % tier.width == 0 and width >= tier.width):
            n += 1
    return n


def _between(column: str, lo: float | None, hi: float | None) -> tuple[str, list[float]]:
    sql, params = "", []
    if lo is not None:
        sql += f" AND {column} >= ?"
        params.append(lo)
    if hi is not None:
        sql += f" AND {column} < ?"
        params.append(hi)
    return sql, params


class RollupsMixin(SqlStorage):
    # From the engine: the start of ts's bucket of width ?, with the width given twice.
    _BUCKET_START: ClassVar[str]
    # The interface's flag, repeated so this mixin stands on its own (hub.toml ``rollups``).
    maintain_rollups: bool = True

    # From the engine: the start of a tier row's answer bucket of a whole width ? (given
    # twice, as an int). Tier buckets are whole multiples of 60 and a width a tier answers is
    # a whole multiple of the tier's, so integer division is exact here; on SQLite it is
    # twice as fast as the REAL division and CAST (a year of hours, 8,760 rows per chart).
    _TIER_BUCKET_START: ClassVar[str]

    # -- maintenance -------------------------------------------------------------------

    def _fold(self, conn: Conn, rows: Sequence[Row]) -> None:
        """Fold stored-just-now rows into every tier (inside their write transaction)."""
        if not rows or not self.maintain_rollups:
            return
        # In key order (as fold_partials returns them): the upserts walk each tier's primary
        # key forwards, and two writers folding into the same buckets lock them in one order.
        for tier, parts in zip(TIERS, fold_partials(rows), strict=True):
            conn.executemany(upsert_sql(tier.table), parts)

    def delete_rollups(self, conn: Conn, sensor_id: int) -> None:
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
            f"SELECT {self._BUCKET_START} AS b, id, ts, value FROM readings "
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
            f"SELECT {self._TIER_BUCKET_START} AS b, min(min) AS mn, max(max) AS mx, "
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
        for row in self._fetchall(" UNION ALL ".join(parts), params):
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
        for row in self._fetchall(" UNION ALL ".join(parts), params):
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
        row = self._fetchone(
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
        row = self._fetchone(
            f"SELECT last_id, last_ts, last_value FROM {COARSEST.table} WHERE sensor_id = ? "
            "ORDER BY bucket DESC LIMIT 1",
            (sensor_id,),
        )
        if row is None:
            return super().latest(sensor_id)  # type: ignore[safe-super]
        return int(row[0]), float(row[1]), float(row[2])

    # -- retention ---------------------------------------------------------------------

    def _expire_rows(
        self, table: str, column: str, key: str, op: str, cutoff: float, max_rows: int
    ) -> int:
        """Delete at most ``max_rows`` rows of ``table`` whose ``column`` ``op`` ``cutoff``, in one
        short transaction, sensor by sensor along the (sensor_id, time) index (no index on
        time alone is needed); returns how many went (0: nothing older is left)."""
        left = max_rows
        with self._write() as conn:
            sensors = [r[0] for r in conn.execute("SELECT id FROM sensors ORDER BY id").fetchall()]
            for sensor_id in sensors:
                found = conn.execute(
                    f"SELECT {key} FROM {table} WHERE sensor_id = ? AND {column} {op} ? "
                    f"ORDER BY {column} LIMIT ?",
                    (sensor_id, cutoff, left),
                ).fetchall()
                if found:
                    conn.executemany(
                        f"DELETE FROM {table} WHERE sensor_id = ? AND {key} = ?",
                        [(sensor_id, r[0]) for r in found],
                    )
                    left -= len(found)
                    if left <= 0:
                        break
        return max_rows - left

    def expire(self, tier: str, cutoff: float, max_rows: int) -> int:
        if tier == RAW:
            return self._expire_rows("readings", "ts", "id", "<", cutoff, max_rows)
        if tier not in _BY_NAME:
            raise StorageError(f"no such tier {tier!r}; tiers are {', '.join(TIER_NAMES)}")
        t = _BY_NAME[tier]
        # A bucket goes once all of it is older than the cutoff (it ends at b + width).
        return self._expire_rows(t.table, "bucket", "bucket", "<=", cutoff - t.width, max_rows)

    def _oldest(self, conn: Conn, tier: str) -> float | None:
        table, column = ("readings", "ts")
        if tier != RAW:
            table, column = tier_named(tier).table, "bucket"
        # Per sensor along the (sensor_id, time) index: a min() over the whole table would
        # read all of it.
        row = conn.execute(
            f"SELECT min(m) FROM (SELECT (SELECT min({column}) FROM {table} t "
            "WHERE t.sensor_id = s.id) AS m FROM sensors s) x"
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def _table_bytes(self, conn: Conn, table: str) -> int | None:
        """Bytes a table takes with its indexes, where the engine can tell (this: SQLite's
        dbstat table, when the library is built with it; PostgreSQL overrides)."""
        names = [
            table,
            *(
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,)
                ).fetchall()
            ),
        ]
        marks = ", ".join("?" * len(names))
        try:
            row = conn.execute(
                f"SELECT sum(pgsize) FROM dbstat WHERE aggregate = TRUE AND name IN ({marks})",
                names,
            ).fetchone()
        except Exception:  # no such table: dbstat (not compiled in)
            return None
        return None if row is None or row[0] is None else int(row[0])

    def _table_rows(self, conn: Conn, table: str) -> int:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def tier_usage(self) -> list[TierUsage]:
        out: list[TierUsage] = []
        with self._reader() as conn:
            for tier, table in ((RAW, "readings"), *((t.name, t.table) for t in TIERS)):
                out.append(
                    TierUsage(
                        tier,
                        self._table_rows(conn, table),
                        self._table_bytes(conn, table),
                        self._oldest(conn, tier),
                    )
                )
        return out

    def record_tier_status(self, rows: Sequence[tuple[TierUsage, float | None]], at: float) -> None:
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO retention_status (tier, rows, bytes, oldest, next_expiry, "
                "measured_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tier) DO UPDATE SET "
                "rows = excluded.rows, bytes = excluded.bytes, oldest = excluded.oldest, "
                "next_expiry = excluded.next_expiry, measured_at = excluded.measured_at",
                [(u.tier, u.rows, u.bytes, u.oldest, nxt, at) for u, nxt in rows],
            )

    @contextmanager
    def exclusive_job(self, name: str) -> Iterator[bool]:
        # SQLite: one hub process per database file, and every step of a job is a bounded
        # write transaction, so a second runner would only repeat the same steps.
        yield True

    def tier_status(self) -> list[dict[str, Any]]:
        return self._all_dicts(
            "SELECT tier, rows, bytes, oldest, next_expiry, measured_at FROM retention_status "
            "ORDER BY tier"
        )
