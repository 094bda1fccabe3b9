"""The alert outbox: alerts raised at the edge, kept until the hub has each one's last state.

Invariants:

* An alert's row changes in the same transaction as the readings that changed it (the
  append runs :meth:`AlertOutbox.store_events` inside its transaction), so readings and the
  alerts they raised commit together or not at all.
* At most one open alert per sensor and rule (a unique partial index; an "open" event
  closes a stray one first).
* ``version`` goes up with every change; the hub has acked a row when ``synced_version``
  reached it. A row is deleted only once it is closed *and* synced, so the hub always
  gets the close. Sending a version twice is harmless: the hub upserts on (gateway_id, id).
* Ids are AUTOINCREMENT: never reused, even after the row is gone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import threshold_checker as tc


class AlertRow(NamedTuple):
    """An alert as stored in the ``alerts`` outbox, with the event that last changed it."""

    id: int
    key: str
    rule: str
    breach_type: str
    severity: str
    threshold_value: float
    value: float
    opened_at: float
    closed_at: float | None
    reading_seq: int | None  # the reading that opened it
    version: int  # bumped by every change; synced when the hub has acked this version
    rule_id: int | None = None  # a rule alert's hub rule, the one deciding it now
    event: str = ""  # "open" | "update" | "close": what just happened (not stored)
    ts: float = 0.0  # time of the reading behind that event (not stored)


_COLS = (
    "id, key, rule, breach_type, severity, threshold_value, value, opened_at, closed_at,"
    " reading_seq, version, rule_id"
)


class AlertOutbox:
    def __init__(self, db: sqlite3.Connection, reader: Callable[[], sqlite3.Connection]) -> None:
        self.db = db
        # The read-only connection of the sync's read-ahead thread (see Buffer.claim).
        self.reader = reader

    def store_events(self, events: Sequence[tc.AlertEvent]) -> list[AlertRow]:
        """Inside a transaction: apply alert lifecycle events to the outbox."""
        out: list[AlertRow] = []
        for ev in events:
            closed_at = ev.ts if ev.kind == "close" else None
            row = None
            if ev.kind != "open":
                # A close is stamped with the reading that cleared it, which may be older than
                # the one that opened it (readings out of order): then it took no time.
                row = self.db.execute(
                    "UPDATE alerts SET severity = ?, value = ?, closed_at = max(?, opened_at),"
                    " rule_id = ?, version = version + 1"
                    " WHERE key = ? AND rule = ? AND closed_at IS NULL"
                    f" RETURNING {_COLS}",
                    (ev.severity, ev.value, closed_at, ev.rule_id, ev.key, ev.rule),
                ).fetchone()
            else:
                # Never two open alerts for one sensor and rule: close a stray one first.
                self.db.execute(
                    "UPDATE alerts SET closed_at = max(?, opened_at), version = version + 1"
                    " WHERE key = ? AND rule = ? AND closed_at IS NULL",
                    (ev.ts, ev.key, ev.rule),
                )
            if row is None:  # an open, or an update/close whose open row is gone
                row = self.db.execute(
                    "INSERT INTO alerts(key, rule, breach_type, severity, threshold_value,"
                    " value, opened_at, closed_at, reading_seq, rule_id)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?)"
                    f" RETURNING {_COLS}",
                    (
                        ev.key,
                        ev.rule,
                        ev.breach_type,
                        ev.severity,
                        ev.threshold_value,
                        ev.value,
                        ev.opened_at,
                        None if closed_at is None else max(closed_at, ev.opened_at),
                        ev.opened_seq,
                        ev.rule_id,
                    ),
                ).fetchone()
            out.append(AlertRow(*row)._replace(event=ev.kind, ts=ev.ts))
        return out

    def open(self) -> list[AlertRow]:
        """Alerts not closed yet (to restore the rule engine after a restart)."""
        return [
            AlertRow(*r)
            for r in self.db.execute(
                f"SELECT {_COLS} FROM alerts WHERE closed_at IS NULL ORDER BY id"
            )
        ]

    def claim(self, limit: int, *, ahead: bool = False) -> list[AlertRow]:
        """Alerts the hub has not acked in their current version, oldest first."""
        db = self.reader() if ahead else self.db
        return [
            AlertRow(*r)
            for r in db.execute(
                f"SELECT {_COLS} FROM alerts WHERE version > synced_version ORDER BY id LIMIT ?",
                (limit,),
            )
        ]

    def ack(self, sent: Iterable[tuple[int, int]]) -> None:
        """Inside a transaction: mark ``(id, version)`` pairs as synced; drop closed alerts
        the hub has in full. An alert that changed since it was sent stays unsynced (its
        version moved on)."""
        self.db.executemany(
            "UPDATE alerts SET synced_version = max(synced_version, ?) WHERE id = ?",
            [(version, alert_id) for alert_id, version in sent],
        )
        self.db.execute(
            "DELETE FROM alerts WHERE closed_at IS NOT NULL AND synced_version >= version"
        )

    def pending(self) -> int:
        row = self.db.execute("SELECT count(*) FROM alerts WHERE version > synced_version")
        return int(row.fetchone()[0])
