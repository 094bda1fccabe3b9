"""The shared side of the per-token rate limit and read budget (hub.ratelimit): one token
bucket per (kind, key) row, which every hub process and host leases from.

A process does not come here for each request: it takes a chunk of a bucket's tokens at a
time and spends them from memory (hub.ratelimit says how much, and when it comes back).

A visit reads the row, settles it in Python (:func:`hub.ratelimit.settle`: refilled for the
time since it was last seen, credited with what the process hands back, debited by what it
takes) and writes it back only if it still holds what was read: a compare-and-swap on the
row's whole state, so a visit that raced another one is simply made again on the new state.
That is two statements, each its own transaction (on PostgreSQL two round trips, where a
locking transaction takes four), and the rule is written once. Visits to one bucket rarely
race (a token's requests come one after another; a lease spares most of them), and after a
few lost races the visit locks the row instead.
"""

from __future__ import annotations

from hub.ratelimit import Draw, settle
from hub.storage.sqlbase import Database

_READ = "SELECT tokens, at FROM quota_buckets WHERE kind = ? AND key = ?"
# Written only if nobody wrote since it was read (a new bucket: only if nobody made it).
_CREATE = (
    "INSERT INTO quota_buckets (kind, key, tokens, at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (kind, key) DO NOTHING"
)
_SWAP = (
    "UPDATE quota_buckets SET tokens = ?, at = ? "
    "WHERE kind = ? AND key = ? AND tokens = ? AND at = ?"
)
# Lock the row and read it as it is; a new key starts with a full bucket.
_LOCK = """
INSERT INTO quota_buckets (kind, key, tokens, at) VALUES (?, ?, ?, ?)
ON CONFLICT (kind, key) DO UPDATE SET tokens = quota_buckets.tokens
RETURNING tokens, at
"""
# Swaps lost to other visits before one visit locks the row instead.
_SWAP_TRIES = 3

# Rows not visited this long hold a full bucket anyway (every burst refills in far less).
_IDLE_S = 3600.0


class Quotas:
    def __init__(self, db: Database) -> None:
        self._db = db

    def lease(self, kind: str, key: int, draw: Draw) -> tuple[float | None, float]:
        """One visit to bucket (``kind``, ``key``), as :func:`hub.ratelimit.settle` says:
        (tokens taken, or None when fewer than ``draw.need`` were there; tokens left)."""
        for _ in range(_SWAP_TRIES):
            row = self._db.fetchone(_READ, (kind, key))
            if row is None:
                taken, left, seen = settle(draw.burst, draw.at, draw)
                swapped = self._db.write_one(_CREATE, (kind, key, left, seen))
            else:
                # The values as read, not as converted: the swap compares them exactly.
                taken, left, seen = settle(float(row[0]), float(row[1]), draw)
                swapped = self._db.write_one(_SWAP, (left, seen, kind, key, row[0], row[1]))
            if swapped == 1:
                return taken, left
        return self._locked_lease(kind, key, draw)

    def _locked_lease(self, kind: str, key: int, draw: Draw) -> tuple[float | None, float]:
        """The visit in one transaction that holds the row (the upsert locks it on
        PostgreSQL; SQLite writes one at a time): never races, four round trips."""
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
