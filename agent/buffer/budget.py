"""The disk budget (``[buffer] max_bytes``) and the eviction that keeps the buffer inside it.

What counts is live pages plus the WAL: deleted rows' pages go on SQLite's freelist and the
next inserts reuse them before the file grows, so free pages are room, not usage. The file
never shrinks (no VACUUM on the hot path), but it also never grows while the freelist has
pages; that keeps file + WAL within the budget as long as live pages + WAL are.

Invariants:

* The WAL's share of the budget is bounded: the writer connection keeps it near
  :func:`wal_limit` bytes (autocheckpoint, journal_size_limit), :meth:`Budget.used_bytes`
  always counts a reserve of a few WAL limits for it, and one append carries at most
  :meth:`Budget.txn_readings_cap` readings, whose pages fit in one WAL limit.
* ``drop_oldest`` evicts *before* inserting (so the insert fills freed pages instead of
  growing the file) and checks again after; both inside the append's transaction, so the
  readings, the eviction and the ``dropped`` counter commit together.
* ``drop_newest`` and ``block`` decide from :meth:`Budget.fits` before the transaction, with
  two pages of slack for the per-row estimate being an average.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Protocol

WhenFull = Literal["drop_oldest", "drop_newest", "block"]

# Bytes a reading costs on disk beyond its key and unit (rowid, three floats, record header,
# b-tree cell overhead). Only used to guess before anything is stored.
ROW_OVERHEAD = 48


class _Sized(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def unit(self) -> str | None: ...


def wal_limit(max_bytes: int) -> int:
    """The WAL size the writer keeps to: 1/40 of the budget, within 64 KiB..64 MiB."""
    return max(64 * 1024, min(64 * 1024 * 1024, max_bytes // 40))


class Budget:
    def __init__(
        self, db: sqlite3.Connection, path: Path, max_bytes: int, backlog: Callable[[], int]
    ) -> None:
        self.db = db
        # The outbox's committed row count (its in-memory copy of backlog_count).
        self.backlog = backlog
        self.path = path
        self.max_bytes = max_bytes
        self.page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        self.wal_limit = wal_limit(max_bytes)
        # The WAL is written at COMMIT, after the budget check ran, and one transaction can
        # carry it past journal_size_limit before the next checkpoint (further while the sync's
        # read-ahead holds a snapshot): reserve room for that. Every WAL frame is a page plus a
        # 24-byte header, hence the 1.01; measured overshoot with 2x and no headers was ~1.7%.
        self.wal_reserve = int(3 * self.wal_limit * 1.01)

    def wal_bytes(self) -> int:
        try:
            return os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            return 0

    def _live_bytes(self) -> int:
        pages, free = self.db.execute(
            "SELECT * FROM pragma_page_count(), pragma_freelist_count()"
        ).fetchone()
        return (int(pages) - int(free)) * self.page_size

    def used_bytes(self) -> int:
        """Bytes that count against the budget: live pages plus the WAL (or its reserve)."""
        return self._live_bytes() + max(self.wal_bytes(), self.wal_reserve)

    def disk_bytes(self) -> int:
        return self.path.stat().st_size + self.wal_bytes()

    def bytes_per_row(self, sample: Sequence[_Sized]) -> float:
        """What one more reading will cost: measured once there is a backlog to measure,
        else estimated from ``sample``."""
        backlog = self.backlog()
        if backlog > 100:
            return max(16.0, self._live_bytes() / backlog)
        if not sample:
            return float(ROW_OVERHEAD)
        return ROW_OVERHEAD + sum(len(r.key) + len(r.unit or "") for r in sample) / len(sample)

    def txn_readings_cap(self, sample: Sequence[_Sized]) -> int:
        """Readings one append should carry at most. A transaction's pages sit in the WAL
        until a checkpoint after its commit, and the WAL's share of max_bytes is the reserve
        (a few wal_limit): one WAL limit's worth keeps file + WAL within the budget even when
        the rows fill pages a drain freed (the file never shrinks)."""
        return max(1, int(self.wal_limit / self.bytes_per_row(sample)))

    def fits(self, sample: Sequence[_Sized]) -> int:
        """How many readings like ``sample`` still fit under max_bytes (drop_newest, block)."""
        # Two pages of slack: the per-row estimate is an average, and the insert takes
        # whole pages (a 1 MB budget was once overshot by 1.4 KB without it).
        room = self.max_bytes - self.used_bytes() - 2 * self.page_size
        return max(0, math.floor(room / self.bytes_per_row(sample)))

    def evict_oldest(self, backlog: int, incoming: float = 0.0) -> int:
        """Inside the append transaction: delete the oldest unsynced rows until under budget
        (with ``incoming`` bytes about to be inserted); returns how many went.

        The oldest rows sit together at the left of the seq b-tree, so deleting them empties
        whole leaf pages; those go to the freelist at once and the used size drops.
        """
        evicted = 0
        for _ in range(20):
            excess = self.used_bytes() + incoming - self.max_bytes
            if excess <= 0 or backlog - evicted <= 0:
                break
            per_row = self.bytes_per_row(())
            n = min(backlog - evicted, max(64, math.ceil(excess / per_row * 1.1)))
            cur = self.db.execute(
                "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings ORDER BY seq LIMIT ?)",
                (n,),
            )
            evicted += cur.rowcount
            incoming = 0.0
        return evicted
