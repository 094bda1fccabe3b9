"""The rollup tiers and the pure arithmetic over them: buckets, partials and how a range
splits into pieces that each tier answers whole (how the tiers are used: hub.storage.rollups).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.storage.sqlbase import Conn
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
BY_NAME = {t.name: t for t in TIERS}
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
    return BY_NAME[name]


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
    return (lo, hi) if narrow(lo, hi, len(rows)) else None


def narrow(lo: int, hi: int, n: int) -> bool:
    """Whether ids ``lo`` to ``hi`` of ``n`` rows are one range a primary-key scan takes."""
    return hi - lo <= 4 * n + 1024


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
