"""The shared side of the per-token rate limit and read budget (hub.ratelimit): one token
bucket per (kind, key) row, which every hub process and host leases from.

A process does not come here for each request: it takes a chunk of a bucket's tokens at a
time and spends them from memory (hub.ratelimit says how much, and when it comes back).
Each visit is one write transaction: the row is created full if new, locked (the upsert
locks it on PostgreSQL; SQLite writes one at a time), refilled for the time since it was
last seen, credited with what the process hands back, and debited by what it takes.
"""

from __future__ import annotations

from hub.ratelimit import Draw, settle
from hub.storage.sqlbase import Database

# Lock the row and read it as it is; a new key starts with a full bucket.
_LOCK = """
INSERT INTO quota_buckets (kind, key, tokens, at) VALUES (?, ?, ?, ?)
ON CONFLICT (kind, key) DO UPDATE SET tokens = quota_buckets.tokens
RETURNING tokens, at
"""

# Rows not visited this long hold a full bucket anyway (every burst refills in far less).
_IDLE_S = 3600.0


class Quotas:
    def __init__(self, db: Database) -> None:
        self._db = db

    def lease(self, kind: str, key: int, draw: Draw) -> tuple[float | None, float]:
        """One visit to bucket (``kind``, ``key``), as :func:`hub.ratelimit.settle` says:
        (tokens taken, or None when fewer than ``draw.need`` were there; tokens left)."""
        with self._db.write() as conn:
            row = conn.execute(_LOCK, (kind, key, draw.burst, draw.at)).fetchone()
            taken, left, seen = settle(float(row[0]), float(row[1]), draw)
            conn.execute(
                "UPDATE quota_buckets SET tokens = ?, at = ? WHERE kind = ? AND key = ?",
                (left, seen, kind, key),
            )
        return taken, left

    def sweep(self, at: float) -> int:
        """Drop buckets nobody has drawn on for an hour: they are full, as a new one is."""
        with self._db.write() as conn:
            cur = conn.execute("DELETE FROM quota_buckets WHERE at < ?", (at - _IDLE_S,))
            return cur.rowcount
