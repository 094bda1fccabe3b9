"""Readings are range-partitioned by ``ts``, one partition per UTC day.

A partition exists before any row lands in it: the days ahead are made in advance, and a
batch whose readings fall on days without a partition (an edge back-filling after a long
outage, a gateway whose clock was off) gets them created first, in a short transaction of
its own, before the batch's transaction starts. There is no DEFAULT partition: rows it caught
would have to be moved out before a partition for their day could ever be created (and while
it holds any, each new partition means a scan of it under lock: pg_partman #620, #652).

Retention drops whole partitions (a day at a time, no row-by-row delete, no bloat); the
name of a partition gives its day, so the oldest are found without reading them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg

DAY_S = 86400
# Days made in advance of today, so the day boundary never waits on DDL.
AHEAD_DAYS = 7
# pg_advisory_xact_lock key for partition DDL ("edgepart"): concurrent hubs creating the same
# day serialise on it instead of racing in the catalog.
LOCK_KEY = 0x6564676570617274


def day_of(ts: float) -> int:
    return int(ts // DAY_S)


def partition_name(day: int) -> str:
    try:
        return "readings_" + datetime.fromtimestamp(day * DAY_S, UTC).strftime("%Y%m%d")
    except (OverflowError, ValueError, OSError):
        # Outside datetime's years 1..9999: the day number keeps names unique.
        return f"readings_d{day}".replace("-", "m")


class Partitions:
    """The days that have a partition, as far as this process knows, and how to add some."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: set[int] | None = None

    def forget(self) -> None:
        """Reload from the catalog next time (another process dropped one)."""
        with self._lock:
            self._known = None

    def _load(self, conn: psycopg.Connection[Any]) -> set[int]:
        rows = conn.execute(
            "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'readings'::regclass"
        ).fetchall()
        days: set[int] = set()
        for (bound,) in rows:
            # FOR VALUES FROM ('1732233600') TO ('1732320000')
            lo = bound.split("(", 1)[1].split(")", 1)[0].strip("'")
            days.add(day_of(float(lo)))
        return days

    def all_known(self, days: Iterable[int]) -> bool:
        """True when this process knows a partition for each of ``days`` (no query)."""
        with self._lock:
            return self._known is not None and set(days) <= self._known

    def missing(self, conn: psycopg.Connection[Any], days: Iterable[int]) -> list[int]:
        with self._lock:
            if self._known is None:
                self._known = self._load(conn)
            return sorted(set(days) - self._known)

    def ensure(self, conn: psycopg.Connection[Any], days: Iterable[int]) -> int:
        """Create the partitions of ``days`` that do not exist yet; returns how many were made.

        ``conn`` must be outside a transaction (autocommit): the DDL commits on its own.
        """
        todo = self.missing(conn, days)
        if not todo:
            return 0
        made = 0
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            present = self._load(conn)
            for day in todo:
                if day in present:
                    continue
                lo, hi = float(day * DAY_S), float((day + 1) * DAY_S)
                conn.execute(
                    f'CREATE TABLE "{partition_name(day)}" PARTITION OF readings '
                    f"FOR VALUES FROM ({lo!r}) TO ({hi!r})"
                )
                present.add(day)
                made += 1
        with self._lock:
            self._known = present
        return made

    def ensure_ahead(self, conn: psycopg.Connection[Any], now: float) -> int:
        today = day_of(now)
        return self.ensure(conn, range(today - 1, today + AHEAD_DAYS + 1))
