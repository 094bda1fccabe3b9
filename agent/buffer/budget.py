"""The disk budget (``[buffer] max_bytes``) and the eviction that keeps the buffer inside it.

What counts is live pages plus the WAL: deleted rows' pages go on SQLite's freelist and the
next inserts reuse them before the file grows, so free pages are room, not usage. The file
never shrinks (no VACUUM on the hot path), but it also never grows while the freelist has
pages; that keeps file + WAL within the budget as long as live pages + WAL are.

Invariants:

* The WAL's share of the budget is bounded: after every commit the WAL is at most
  :func:`wal_limit` bytes or :meth:`Budget.bound_wal` truncates it (autocheckpoint and
  journal_size_limit keep it there only while no reader is in it), one append carries at
  most :meth:`Budget.txn_readings_cap` readings, whose pages fit in one WAL limit, and
  :meth:`Budget.used_bytes` always counts a reserve of three WAL limits for it: the limit
  before a transaction plus that transaction's pages (row pages and the b-tree, freelist
  and counter pages around them, 1.5 limits at a 1 MB budget).
* So the file never grows past ``max_bytes`` minus the reserve (it grows only when live
  pages do), the WAL never past the reserve, and file + WAL stay within ``max_bytes``.
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

from agent.buffer.db import truncate_wal

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
        # The WAL is written at COMMIT, after the budget check ran: up to one wal_limit left
        # from before (bound_wal) plus one transaction's pages. Every WAL frame is a page plus
        # a 24-byte header, hence the 1.01.
        self.wal_reserve = int(3 * self.wal_limit * 1.01)

    def wal_bytes(self) -> int:
        try:
            return os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            return 0

    def bound_wal(self) -> None:
        """After a commit: a WAL past wal_limit is checkpointed and truncated to nothing.

        The automatic checkpoint is PASSIVE and the WAL starts over from its beginning only
        if no reader has a snapshot in it when the next transaction begins; the sync's
        read-ahead thread often has. Each missed restart stacks the next transaction's pages
        onto the WAL: 692 KB, 10 wal limits, at a 1 MB budget in the unit test that
        reads during every write."""
        if self.wal_bytes() > self.wal_limit:
            truncate_wal(self.db)

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
