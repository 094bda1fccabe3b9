"""The MQTT redelivery table: which messages the buffer has already committed.

The broker redelivers (DUP flag, same packet id) every message whose PUBACK it did not get.
For a message the agent committed but died before acking, that redelivery must be acked
without storing it again (agent/ingest.py explains the whole check and its limits).

Invariants:

* A message's packet id and topic+payload digest are recorded in the same transaction as its
  readings (:meth:`Redelivery.remember` runs inside the append), so "committed" and
  "recorded" can never disagree, not even after a crash.
* One row per packet id: a new message that reuses an id replaces the old row, so a DUP can
  only match the latest message sent under its id.
* At least :data:`RECENT_MESSAGES` and the last two batches are kept: far more than can be in
  flight, far fewer than the 65535 packet ids a broker cycles through.
* A session the broker starts afresh clears the table (:meth:`Redelivery.forget`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import NamedTuple


class MessageId(NamedTuple):
    """An MQTT message as the redelivery check knows it: packet id and content digest."""

    mid: int
    digest: bytes


# How many committed messages the redelivery check remembers (~40 bytes each).
RECENT_MESSAGES = 4096


class Redelivery:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        # Commit counter of the newest row and the row count, read once, then kept in step.
        self._n: int | None = None
        self._rows = 0

    def remember(self, messages: Sequence[MessageId]) -> None:
        """Inside the append transaction: record committed messages, keep the newest.

        Keyed on the packet id alone (the rowid, no second index) and pruned in small steps,
        so that a commit touches few extra pages: they count against the budget, WAL included.
        """
        if self._n is None:
            n, rows = self.db.execute(
                "SELECT coalesce(max(n), 0), count(*) FROM mqtt_committed"
            ).fetchone()
            self._n, self._rows = int(n), int(rows)
        first = self._n + 1
        self.db.executemany(
            "INSERT OR REPLACE INTO mqtt_committed(mid, digest, n) VALUES (?, ?, ?)",
            [(mid, digest, first + i) for i, (mid, digest) in enumerate(messages)],
        )
        self._n = first + len(messages) - 1
        # An overcount (replaced rows, a rolled-back commit) only brings the prune forward.
        self._rows += len(messages)
        # At least the last two batches, so a batch whose PUBACKs were lost is always covered.
        keep = max(RECENT_MESSAGES, 2 * len(messages))
        if self._rows > keep + 256:
            self.db.execute("DELETE FROM mqtt_committed WHERE n <= ?", (self._n - keep,))
            self._rows = keep

    def redelivered(self, messages: Sequence[MessageId]) -> set[MessageId]:
        """Those of ``messages`` (redeliveries with the DUP flag) already committed."""
        found: set[MessageId] = set()
        for mid, digest in messages:
            row = self.db.execute(
                "SELECT 1 FROM mqtt_committed WHERE mid = ? AND digest = ?", (mid, digest)
            ).fetchone()
            if row is not None:
                found.add(MessageId(mid, digest))
        return found

    def forget(self) -> None:
        """The broker started a new session: nothing from before can be redelivered, and a
        packet id it hands out from now on names a new message."""
        self.db.execute("DELETE FROM mqtt_committed")
        self._rows = 0
